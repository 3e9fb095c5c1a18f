"""Toy Gaussian-mixture experiments: exact scores, marginals and KL curves (the paper's Theorems 3.1-3.3)."""

from sdelab._lazy import lazy_exports

__all__ = ["GaussianMixture", "bimodal_1d", "ring_2d"]
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__, "sdelab.toy.gmm"))
