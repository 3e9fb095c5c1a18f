"""How exactly inversion + reconstruction without an edit returns x0, over step counts and float precisions.

``roundtrip_errors`` runs ``sdelab.edit.roundtrip`` for every (method, dtype, steps) and keeps the largest
absolute error max |x0_hat - x0| in the model's x0 space (notebook 05). Expected: DDIM inversion's error
falls like the step size (its local error is O(h^2), its global error O(h): slope -1 on log-log axes);
Cycle-SDE's is floating-point rounding at every step count (Eq. 8 makes each step land on the stored chain).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from sdelab.edit.inversion import METHODS, roundtrip
from sdelab.models.base import DiffusionModel
from sdelab.samplers import SAMPLERS

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class RoundtripErrors:
    """``errors[method, dtype, steps]``: max |x0_hat - x0|; ``reconstructions[...]``: the x0_hat themselves."""

    steps: list[int]
    methods: list[str]
    dtypes: list[str]
    errors: dict = field(default_factory=dict)
    reconstructions: dict = field(default_factory=dict)

    def curve(self, method: str, dtype: str) -> np.ndarray:
        """The errors of one method and dtype over ``steps``, shape (len(steps),)."""
        return np.array([self.errors[method, dtype, s] for s in self.steps])

    def slope(self, method: str, dtype: str, last: int = 3) -> float:
        """Least-squares slope of log(error) against log(steps) over the ``last`` finest step counts."""
        if not 2 <= last <= len(self.steps):
            raise ValueError(f"last must lie in [2, {len(self.steps)}], got {last}")
        steps, errors = np.array(self.steps[-last:], dtype=float), self.curve(method, dtype)[-last:]
        return float(np.polyfit(np.log(steps), np.log(errors), 1)[0])

    def table(self) -> str:
        """One row per method and dtype, one column per step count."""
        head = f"{'method':<12}{'dtype':<9}" + "".join(f"{s:>11}" for s in self.steps) + "   <- steps"
        rows = [f"{m:<12}{d:<9}" + "".join(f"{e:>11.2e}" for e in self.curve(m, d))
                for m in self.methods for d in self.dtypes]
        return "\n".join([head, *rows])


def roundtrip_errors(model: DiffusionModel, x0: torch.Tensor, steps: Sequence[int], t0: float = 0.6,
                     methods: Sequence[str] = ("ode", "cycle-sde"), dtypes: Sequence[str] = ("float32", "float64"),
                     *, seed: int = 0, progress: bool = True, **conditioning) -> RoundtripErrors:
    """Invert and reconstruct x0 for every method, dtype (of x0 and the sampler's arithmetic) and step count.

    Every run draws its forward-chain noise from a generator seeded with ``seed`` on the model's device.
    conditioning: prompt / guidance for ``roundtrip`` (conditional models).
    """
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"methods must be among {list(SAMPLERS)}, got {method!r}")
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(f"dtypes must be among {list(DTYPES)}, got {dtype!r}")
    if not steps or any(not isinstance(s, int) or s < 1 for s in steps) or list(steps) != sorted(set(steps)):
        raise ValueError(f"steps must be increasing positive integers, got {list(steps)}")
    out = RoundtripErrors(list(steps), list(methods), list(dtypes))
    runs = [(m, d, s) for d in dtypes for s in steps for m in methods]
    for method, dtype, n in tqdm(runs, desc="invert + reconstruct", disable=not progress):
        gen = torch.Generator(device=model.device).manual_seed(seed)
        x0_hat = roundtrip(model, x0.to(DTYPES[dtype]), n, t0, method, generator=gen, progress=False, **conditioning)
        out.reconstructions[method, dtype, n] = x0_hat
        out.errors[method, dtype, n] = (x0_hat.double() - x0.double()).abs().max().item()
    return out
