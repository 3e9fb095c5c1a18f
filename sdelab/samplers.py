"""The paper's three samplers by name, as plain data (no torch): the one vocabulary of the command line,
the toy experiments and the editors. All three are Eq. 6 (``sdelab.sampling.ddim_step``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sampler:
    """A sampler of the paper: ``name`` for code and the command line, ``label`` for figures and tables."""

    name: str
    label: str
    eta: float  # Eq. 6's noise knob: 0 = ODE (DDIM), 1 = SDE (DDPM)
    replay: bool  # Cycle-SDE (Eq. 8): the stored forward chain's noises instead of fresh ones


SAMPLERS = {s.name: s for s in (Sampler("ode", "ODE", 0.0, False), Sampler("sde", "SDE", 1.0, False),
                                Sampler("cycle-sde", "Cycle-SDE", 1.0, True))}


def sampler(name: str) -> Sampler:
    """The Sampler called ``name`` ('ode', 'sde' or 'cycle-sde'); ValueError otherwise."""
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {name!r}")
    return SAMPLERS[name]
