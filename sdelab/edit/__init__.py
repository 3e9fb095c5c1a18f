"""Editors over the DiffusionModel interface: noise to t0, edit, denoise (inversion, drag, inpainting, i2i)."""

from sdelab.edit.inversion import Inversion, invert, reconstruct, roundtrip

__all__ = ["Inversion", "invert", "reconstruct", "roundtrip"]
