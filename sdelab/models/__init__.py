"""Image diffusion models behind one interface (``DiffusionModel``)."""

from sdelab._lazy import lazy_exports

_WHERE = {
    "DiffusionModel": "sdelab.models.base",
    "StableDiffusion": "sdelab.models.stable_diffusion",
    "load_stable_diffusion": "sdelab.models.stable_diffusion",
    "load_stable_diffusion_or_tiny": "sdelab.models.stable_diffusion",
    "tiny_stable_diffusion": "sdelab.models.stable_diffusion",
    "PixelDiffusion": "sdelab.models.pixel",
    "load_pixel_model": "sdelab.models.pixel",
    "load_digits_model": "sdelab.models.pixel",
    "load_shapes_model": "sdelab.models.pixel",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
