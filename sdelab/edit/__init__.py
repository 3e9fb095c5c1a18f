"""Editors over the DiffusionModel interface: noise to t0, edit, denoise (inversion, drag, inpainting, i2i)."""

from sdelab._lazy import lazy_exports

__all__ = ["Inversion", "cycle_noises", "invert", "reconstruct", "roundtrip"]
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__, "sdelab.edit.inversion"))
