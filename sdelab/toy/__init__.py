"""Toy Gaussian-mixture experiments: exact scores, marginals and KL curves (SPEC sections 2-3)."""

from sdelab.toy.gmm import GaussianMixture, bimodal_1d, ring_2d

__all__ = ["GaussianMixture", "bimodal_1d", "ring_2d"]
