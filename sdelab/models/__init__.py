"""Image diffusion models behind one interface (``DiffusionModel``)."""

from sdelab.models.base import DiffusionModel

__all__ = ["DiffusionModel"]
