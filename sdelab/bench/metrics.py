"""DragBench's measures: DragDiffusion's Mean Distance (DIFT point matching), 1 - LPIPS, and PSNR / SSIM outside
the mask.

Mean Distance (Shi et al., DragDiffusion, CVPR 2024; features of Tang et al., DIFT, NeurIPS 2023): the input and
the output are each encoded, noised to t = 261 with ``ensemble`` = 8 noise draws, and passed once through the
UNet with the prompt; the output of up-block 1, averaged over the draws and upsampled (bilinear) to the input's
size, is the feature map. For each handle point, the output position whose feature has the largest cosine
similarity with the input's feature at the handle is where the handle went; its distance to the target, in
input pixels, averaged over the points. The original uses SD 2.1 and draws fresh noise for each image; here any
loaded model's UNet is used and both images get the same noise (drawn from the sample's seed), so an output
equal to its input scores exactly the drag length. The hook works on any diffusers UNet with ``up_blocks``: Stable
Diffusion's ``UNet2DConditionModel`` (with the prompt) and a pixel model's ``UNet2DModel`` (unconditional: no
prompt; its "skip" up blocks return (hidden states, skip image), of which the hidden states are the features).

Image Fidelity (DragDiffusion's): 1 - LPIPS (AlexNet) between input and output at 224 x 224, when the optional
``lpips`` package and its backbone weights are there. PSNR and SSIM (scikit-image's, 7 x 7 window) over the
pixels the mask leaves alone: what the edit should not have changed.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sdelab.inputs import check_points
from sdelab.models.base import DiffusionModel
from sdelab.models.images import load_image, model_image, working_size
from sdelab.sampling import add_noise

DIFT_T = 261  # DragDiffusion's evaluation: t = 261, up-block 1, an ensemble of 8 noise draws
DIFT_UP_BLOCK = 1
DIFT_ENSEMBLE = 8
SSIM_WINDOW = 7  # scikit-image's default
CHUNK = 64  # feature channels upsampled at a time (SD's 1280 channels at 512 x 512 would be 1.3 GB at once)


def native_size(model: DiffusionModel) -> int:
    """The image side the model was trained at: 512 for SD 1.5, 64 for the tiny SD."""
    return model.latent_shape(1)[-1] * model.pixels_per_latent


# ---- Mean Distance ------------------------------------------------------------------------------------------
@torch.no_grad()
def latent_features(model: DiffusionModel, x0: torch.Tensor, prompt: str | None = None, t: int = DIFT_T,
                    up_block: int = DIFT_UP_BLOCK, ensemble: int = DIFT_ENSEMBLE,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """DIFT features of latents x0 (1 or ensemble, C, h, w): x_t = add_noise(x0, t) with ``ensemble`` noise draws,
    one UNet call (prompt, no guidance), the output of ``model.unet.up_blocks[up_block]`` averaged: (1, C', h', w').
    An up block that returns a tuple (diffusers' Skip*UpBlock2D: hidden states, skip image) gives its hidden states."""
    blocks = model.unet.up_blocks
    if not 0 <= up_block < len(blocks):
        raise ValueError(f"up_block must lie in [0, {len(blocks) - 1}] for {model.name}, got {up_block}")
    if not isinstance(ensemble, int) or ensemble < 1:
        raise ValueError(f"ensemble must be an integer >= 1, got {ensemble!r}")
    x0 = x0.expand(ensemble, -1, -1, -1) if len(x0) == 1 else x0
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = add_noise(x0, model.schedule, t, noise)
    captured = []
    hook = blocks[up_block].register_forward_hook(
        lambda module, args, out: captured.append(out[0] if isinstance(out, tuple) else out))
    try:
        model.eps(x_t, t, prompt=prompt or None)
    finally:
        hook.remove()
    return captured[0].float().mean(0, keepdim=True)


@torch.no_grad()
def image_features(model: DiffusionModel, image: Image.Image, prompt: str | None = None, seed: int = 0,
                   t: int = DIFT_T, up_block: int = DIFT_UP_BLOCK, ensemble: int = DIFT_ENSEMBLE) -> torch.Tensor:
    """DIFT features of a PIL image at a size the model takes (as the model takes it: RGB, or grayscale for a
    one-channel model such as the digits): ``ensemble`` posterior samples of the encoder, then ``latent_features``;
    all noise from one generator seeded with ``seed`` (on the model's device)."""
    gen = torch.Generator(device=model.device).manual_seed(seed)
    pixels = model_image(image, model.image_channels)  # (1, c, H, W)
    x0 = model.encode(pixels.expand(ensemble, -1, -1, -1), generator=gen)  # (ensemble, C, h, w)
    return latent_features(model, x0, prompt, t, up_block, ensemble, gen)


def _upsampled(features: torch.Tensor, size: tuple[int, int]):
    """Bilinear upsampling of (1, C, h, w) to size, CHUNK channels at a time: yields (chunk, H, W) float32."""
    for c in range(0, features.shape[1], CHUNK):
        yield F.interpolate(features[:, c:c + CHUNK].float(), size, mode="bilinear", align_corners=False)[0]


def match_points(source_features: torch.Tensor, output_features: torch.Tensor, handles, size: tuple[int, int]):
    """Where each handle (x, y) went: the (x, y) of the output's feature most cosine-similar to the source's
    feature at the handle, both maps upsampled (bilinear) to size = (height, width) first, as DragDiffusion
    does. Handles index pixel (row, col) = (int(y), int(x)); ties go to the first position in row-major order."""
    h, w = size
    handles = check_points(handles, "handles", size, allow_empty=True)
    rows = torch.tensor([int(y) for _, y in handles], dtype=torch.int64)
    cols = torch.tensor([int(x) for x, _ in handles], dtype=torch.int64)
    dots = norms = vec_norms = 0
    for src, out in zip(_upsampled(source_features, size), _upsampled(output_features, size), strict=True):
        vecs = src[:, rows, cols]  # (chunk, k): the source features at the handles
        dots = dots + torch.einsum("ck,chw->khw", vecs, out)
        norms = norms + (out**2).sum(0)  # (H, W)
        vec_norms = vec_norms + (vecs**2).sum(0)  # (k,)
    cos = dots / (vec_norms.sqrt()[:, None, None] * norms.sqrt()[None]).clamp_min(1e-12)  # (k, H, W)
    flat = cos.flatten(1).argmax(1)
    return [(int(i % w), int(i // w)) for i in flat.tolist()]


def point_distances(matched, targets) -> list[float]:
    """Euclidean distance of each matched (x, y) to its target (x, y), in pixels."""
    return [math.hypot(mx - tx, my - ty) for (mx, my), (tx, ty) in zip(matched, targets, strict=True)]


def mean_distance(model: DiffusionModel, source: Image.Image, output: Image.Image, handles, targets,
                  prompt: str = "", model_size: tuple[int, int] | None = None, seed: int = 0, t: int = DIFT_T,
                  up_block: int = DIFT_UP_BLOCK, ensemble: int = DIFT_ENSEMBLE) -> list[float]:
    """DragDiffusion's Mean Distance, per point: the distance from where each handle went to its target.

    source, output: PIL images of one size (H, W) (resize the output first, as the original does); handles and
    targets (x, y) in its pixels. Both images are brought to ``model_size`` (height, width; default: the working
    size at the model's native size, ``sdelab.models.images.working_size``) and the features back to (H, W).
    Average the list for the sample's Mean Distance.
    """
    if source.size != output.size:
        raise ValueError(f"source and output must have one size, got {source.size} and {output.size}")
    if len(handles) != len(targets):
        raise ValueError(f"handles and targets must pair up, got {len(handles)} and {len(targets)}")
    size = source.size[::-1]
    model_size = model_size or working_size(size, native_size(model), model.pixels_per_latent)
    if tuple(model_size) != size:
        source, output = (im.resize(model_size[::-1], Image.Resampling.BICUBIC) for im in (source, output))
    prompt = prompt if model.conditional else None
    feats = [image_features(model, im, prompt, seed, t, up_block, ensemble) for im in (source, output)]
    return point_distances(match_points(*feats, handles, size), targets)


# ---- Image Fidelity: 1 - LPIPS ---------------------------------------------------------------------------------
class ImageFidelity:
    """1 - LPIPS (AlexNet, 224 x 224, inputs in [-1, 1]) as DragDiffusion measures it, if ``lpips`` can load.

    ``reason`` says why not otherwise (the package is an optional extra; its AlexNet backbone comes from
    torchvision's weights, which must be in the local cache offline), and every score is then None.
    """

    def __init__(self, device="cpu"):
        self.net, self.reason = None, None
        try:
            import lpips
        except ImportError:
            self.reason = "the optional lpips package is not installed (pip install lpips)"
            return
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.net = lpips.LPIPS(net="alex", verbose=False).to(device).eval()
        except (OSError, RuntimeError, ValueError) as err:  # no AlexNet weights offline: URLError is an OSError
            self.reason = f"lpips could not load its AlexNet backbone ({type(err).__name__}: {err})"
        self.device = device

    @torch.no_grad()
    def __call__(self, source: Image.Image, output: Image.Image) -> float | None:
        if self.net is None:
            return None
        a, b = (F.interpolate(load_image(im).to(self.device) * 2 - 1, (224, 224), mode="bilinear")
                for im in (source, output))
        return 1 - float(self.net(a, b))


# ---- outside the mask ---------------------------------------------------------------------------------------------
def _outside(source: Image.Image, output: Image.Image, mask: np.ndarray | None):
    a, b = (np.asarray(im.convert("RGB"), dtype=np.float64) for im in (source, output))
    if a.shape != b.shape:
        raise ValueError(f"source and output must have one size, got {source.size} and {output.size}")
    if mask is not None and mask.shape != a.shape[:2]:
        raise ValueError(f"mask must have the images' size (height, width) = {a.shape[:2]}, got {mask.shape}")
    keep = None if mask is None else ~mask  # (H, W) True where the edit should change nothing
    return a, b, keep


def psnr_outside(source: Image.Image, output: Image.Image, mask: np.ndarray | None) -> float | None:
    """PSNR (dB, peak 255) over the pixels outside the editable mask; None without a mask or outside pixels;
    inf for identical pixels there."""
    a, b, keep = _outside(source, output, mask)
    if keep is None or not keep.any():
        return None
    mse = float(((a[keep] - b[keep]) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def ssim_outside(source: Image.Image, output: Image.Image, mask: np.ndarray | None) -> float | None:
    """Mean SSIM over the pixels outside the mask: scikit-image's SSIM map (7 x 7 uniform window, per channel)
    averaged there, leaving out the 3-pixel image border as scikit-image's own mean SSIM does."""
    from skimage.metrics import structural_similarity

    a, b, keep = _outside(source, output, mask)
    if keep is None or min(a.shape[:2]) < SSIM_WINDOW:
        return None
    pad = (SSIM_WINDOW - 1) // 2
    keep = keep[pad:-pad, pad:-pad]
    if not keep.any():
        return None
    _, ssim_map = structural_similarity(a, b, win_size=SSIM_WINDOW, channel_axis=2, data_range=255, full=True)
    return float(ssim_map[pad:-pad, pad:-pad][keep].mean())  # ssim_map (H, W, 3)
