"""Images and masks in and out of the models: PIL / arrays / tensors <-> float (n, 3, H, W) in [0, 1].

Conventions (shared by the models and the editors):
- grayscale images are replicated to 3 channels; RGBA (and LA, or palette images with transparency)
  are composited on a white background, so transparent pixels become white;
- sizes are (height, width), like tensor shapes; nothing is resized unless a size is asked for
  (``working_size`` and ``resize_image`` bring an image to a working size, ``scale_points`` moves its points along);
- masks: white (>= 128 after resizing to the latent size) = editable, as in the official SDE-Drag code
  (docs/conventions.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdelab.inputs import as_picture, check_points


def _rgb(image: Image.Image) -> Image.Image:
    """A PIL image as RGB: alpha composited on white, grayscale replicated."""
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return image.convert("RGB")


def _pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL -> (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.asarray(_rgb(image), dtype=np.float32) / 255).permute(2, 0, 1)


def _tensor_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """(n, c, H, W) float in [0, 1] with c in {1, 3, 4} -> (n, 3, H, W)."""
    c = images.shape[1]
    if c == 1:
        return images.expand(-1, 3, -1, -1)
    if c == 4:
        rgb, a = images[:, :3], images[:, 3:]
        return rgb * a + (1 - a)  # composite on white
    if c == 3:
        return images
    raise ValueError(f"images must have 1 (grayscale), 3 (RGB) or 4 (RGBA) channels, got {c}")


def to_image_tensor(images, multiple: int = 1) -> torch.Tensor:
    """Images -> float32 (n, 3, H, W) in [0, 1]; H and W must be multiples of ``multiple``.

    images: a float tensor (n, c, H, W) or (c, H, W) in [0, 1] with c in {1, 3, 4}; a PIL image;
    a uint8 array (H, W) or (H, W, c); or a list of PIL images / arrays of one size. A model's encoder
    passes its downsampling factor as ``multiple`` (8 for Stable Diffusion); resize with ``load_image``.
    """
    if isinstance(images, torch.Tensor):
        if not images.is_floating_point():
            raise ValueError(f"image tensors must be floating point in [0, 1], got dtype {images.dtype}")
        x = images[None] if images.ndim == 3 else images
        if x.ndim != 4:
            raise ValueError(f"image tensors must be (n, c, H, W) or (c, H, W), got shape {tuple(images.shape)}")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"image values must lie in [0, 1], got [{x.min().item():.3g}, {x.max().item():.3g}]")
        x = _tensor_to_rgb(x.float().cpu())
    else:
        items = list(images) if isinstance(images, list | tuple) else [images]
        if not items:
            raise ValueError("images is an empty list")
        pils = [Image.fromarray(np.asarray(im)) if isinstance(im, np.ndarray) else im for im in items]
        if not all(isinstance(im, Image.Image) for im in pils):
            raise ValueError(f"images must be tensors, PIL images or uint8 arrays, got {type(items[0]).__name__}")
        sizes = {im.size for im in pils}
        if len(sizes) > 1:
            raise ValueError(f"all images must have one size, got (width, height) sizes {sorted(sizes)}")
        x = torch.stack([_pil_to_tensor(im) for im in pils])
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"images must have height and width divisible by {multiple}, got (height, width) = "
                         f"({h}, {w}); resize explicitly, e.g. load_image(image, size=({h - h % multiple}, "
                         f"{w - w % multiple}))")
    return x.contiguous()


def load_image(image, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A path, PIL image or uint8 array (``sdelab.inputs.as_picture``) -> float32 (1, 3, H, W) in [0, 1], resized
    (bicubic) to size = (height, width) if given."""
    image = _rgb(as_picture(image))
    if size is not None:
        h, w = size
        image = image.resize((w, h), Image.Resampling.BICUBIC)
    return to_image_tensor(image)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(n, 3, H, W) or (n, 1, H, W) in [0, 1] -> a list of PIL images (values rounded to uint8)."""
    x = (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)  # display only
    return [Image.fromarray(im.permute(1, 2, 0).squeeze(-1).numpy()) for im in x]


def load_mask(mask, size: tuple[int, int]) -> torch.Tensor:
    """A mask -> bool (h, w) at the latent size = (h, w): white (>= 128 after resizing) = True = editable.

    mask: a path or PIL image (converted to grayscale, alpha ignored); a uint8 or bool array (H, W);
    or a tensor (H, W), (1, H, W) or (1, 1, H, W) that is bool, uint8 (0..255) or float in [0, 1].
    It is resized to the latent size with PIL's bicubic filter, then thresholded at 128 (as the official
    SDE-Drag code does).
    The result broadcasts against latents (n, c, h, w).
    """
    if isinstance(mask, str | Path):
        mask = Image.open(mask)
    if isinstance(mask, torch.Tensor):
        m = mask.detach().cpu()
        while m.ndim > 2 and m.shape[0] == 1:
            m = m[0]
        if m.ndim != 2:
            raise ValueError(f"mask tensors must be (H, W), (1, H, W) or (1, 1, H, W), got {tuple(mask.shape)}")
        if m.is_floating_point():
            if m.numel() and (m.min() < 0 or m.max() > 1):
                raise ValueError(f"float masks must lie in [0, 1], got [{m.min().item():.3g}, {m.max().item():.3g}]")
            m = (m * 255).round()
        elif m.dtype == torch.bool:
            m = m.to(torch.uint8) * 255
        mask = m.to(torch.uint8).numpy()
    if isinstance(mask, np.ndarray):
        if mask.ndim != 2:
            raise ValueError(f"mask arrays must be (H, W), got shape {mask.shape}")
        if mask.dtype not in (np.bool_, np.uint8):
            raise ValueError(f"mask arrays must be bool or uint8 (0..255), got dtype {mask.dtype}")
        mask = Image.fromarray(mask.astype(np.uint8) * 255 if mask.dtype == np.bool_ else mask)
    if not isinstance(mask, Image.Image):
        raise ValueError(f"mask must be a path, PIL image, array or tensor, got {type(mask).__name__}")
    h, w = (int(s) for s in size)
    small = mask.convert("L").resize((w, h), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(small) >= 128)


def mask_size(mask) -> tuple[int, int]:
    """(height, width) of a mask in any form ``load_mask`` accepts."""
    if isinstance(mask, str | Path):
        with Image.open(mask) as im:
            return im.size[::-1]
    if isinstance(mask, Image.Image):
        return mask.size[::-1]
    shape = tuple(np.shape(mask))
    return shape[-2:] if len(shape) >= 2 else shape


def image_mask(mask, image_size: tuple[int, int], latent_size: tuple[int, int]) -> torch.Tensor:
    """A mask drawn at the image's size -> bool (h, w) at the latent size (``load_mask``); ValueError naming
    ``mask`` when its size is not the image's (nothing is resized silently from another size)."""
    if tuple(mask_size(mask)) != tuple(image_size):
        raise ValueError(f"mask must have the image's size (height, width) = {tuple(image_size)}, "
                         f"got {tuple(mask_size(mask))}")
    return load_mask(mask, latent_size)


def latent_points(points, image_size: tuple[int, int], pixels_per_latent: int, name: str = "points") -> torch.Tensor:
    """(x, y) image-pixel points -> int64 (k, 2) latent (x, y) by floor division: the one place this happens.

    Every point must be two finite numbers inside the image (``sdelab.inputs.check_points``); nothing is clamped.
    ``name`` names the argument in the errors.
    """
    p = torch.tensor(check_points(points, name, image_size), dtype=torch.float64).reshape(-1, 2)  # (k, 2)
    return torch.div(p, pixels_per_latent, rounding_mode="floor").long()


def model_image(image, channels: int) -> torch.Tensor:
    """One image for a model that takes ``channels`` (1 or 3) -> float32 (1, channels, H, W) in [0, 1].

    image: a path, a PIL image, or a float array / tensor (c, H, W) or (1, c, H, W) in [0, 1] (a uint8
    array (H, W[, c]) too). Grayscale models get PIL images converted to "L"; RGB models get RGB.
    """
    if isinstance(image, str | Path | Image.Image):
        image = as_picture(image)
        if channels == 1:
            return torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255)[None, None]
        return load_image(image)
    if isinstance(image, np.ndarray) and image.dtype != np.uint8:
        image = torch.from_numpy(image)
    if isinstance(image, torch.Tensor):
        x = image[None] if image.ndim == 3 else image
        if x.ndim != 4 or len(x) != 1:
            raise ValueError(f"image tensors must be (c, H, W) or (1, c, H, W), got shape {tuple(image.shape)}")
        if channels == 1:
            if x.shape[1] != 1 or not x.is_floating_point() or x.min() < 0 or x.max() > 1:
                raise ValueError(f"image must be a float (1, H, W) array in [0, 1] for this grayscale model, got "
                                 f"shape {tuple(image.shape)}, dtype {x.dtype}")
            return x.float().cpu()
        return to_image_tensor(x)
    if isinstance(image, np.ndarray):
        return model_image(Image.fromarray(image), channels)
    raise ValueError(f"image must be a path, a PIL image, an array or a tensor, got {type(image).__name__}")


# ---- a working size ----------------------------------------------------------------------------------------------
def working_size(size: tuple[int, int], longer: int, multiple: int) -> tuple[int, int]:
    """(height, width) of an image of ``size`` brought to a working size: the longer side ``longer`` pixels, the
    aspect ratio kept, each side rounded to the nearest multiple of ``multiple`` (at least one multiple).

    Stable Diffusion 1.5 works at ``longer`` = 512 with ``multiple`` = 8 (its VAE's factor): a 4000 x 3000 photo
    becomes 512 x 384, and 512 x 512 stays as it is. ValueError naming ``size`` unless ``longer`` is a positive
    multiple of ``multiple``.
    """
    h, w = (int(v) for v in size)
    if min(h, w) < 1:
        raise ValueError(f"the image's (height, width) must be positive, got {tuple(size)}")
    if not isinstance(longer, int) or isinstance(longer, bool) or longer < multiple or longer % multiple:
        raise ValueError(f"size must be a positive multiple of {multiple} pixels (the model's pixels per latent "
                         f"pixel), got {longer!r}")
    scale = longer / max(h, w)
    return tuple(max(multiple, multiple * round(side * scale / multiple)) for side in (h, w))


def resize_image(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """float (n, c, H, W) in [0, 1] -> (n, c, h, w) at size = (h, w): PIL's bicubic filter on each channel in
    float ("F" mode, no uint8 rounding), clipped back to [0, 1]. The same tensor when it has that size already."""
    h, w = (int(v) for v in size)
    if tuple(images.shape[-2:]) == (h, w):
        return images
    planes = images.detach().float().cpu().reshape(-1, *images.shape[-2:]).numpy()  # (n c, H, W)
    out = np.stack([np.asarray(Image.fromarray(p).resize((w, h), Image.Resampling.BICUBIC))
                    for p in planes])
    return torch.from_numpy(out).reshape(*images.shape[:-2], h, w).clamp(0, 1).to(images.dtype)


def scale_points(points, size: tuple[int, int], new_size: tuple[int, int]) -> list[tuple[float, float]]:
    """(x, y) pixels of an image of size = (H, W) -> the same places in it resized to new_size = (h, w):
    (x w / W, y h / H)."""
    (H, W), (h, w) = size, new_size
    return [(x * w / W, y * h / H) for x, y in points]
