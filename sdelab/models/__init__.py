"""Image diffusion models behind one interface (``DiffusionModel``)."""

from sdelab.models.base import DiffusionModel
from sdelab.models.digits import DigitsDiffusion, digits_dataset, load_digits_model
from sdelab.models.stable_diffusion import (
    StableDiffusion,
    load_stable_diffusion,
    load_stable_diffusion_or_tiny,
    tiny_stable_diffusion,
)

__all__ = ["DiffusionModel", "StableDiffusion", "load_stable_diffusion", "load_stable_diffusion_or_tiny",
           "tiny_stable_diffusion", "DigitsDiffusion", "digits_dataset", "load_digits_model"]
