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


def sampler(name: str | Sampler) -> Sampler:
    """The Sampler called ``name`` ('ode', 'sde' or 'cycle-sde'), or the Sampler given; ValueError otherwise."""
    if isinstance(name, Sampler):
        return name
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {name!r}")
    return SAMPLERS[name]


def sampler_at(eta: float, replay: bool = False) -> Sampler:
    """The paper's sampler with this eta and noise, or one in between (0 < eta < 1): name 'eta=0.5' or
    'cycle-sde eta=0.5', label 'eta = 0.5' or 'Cycle-SDE eta = 0.5'."""
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must lie in [0, 1] (0 = ODE/DDIM, 1 = SDE/DDPM), got {eta}")
    for s in SAMPLERS.values():
        if (s.eta, s.replay) == (float(eta), replay):
            return s
    prefix = ("cycle-sde ", "Cycle-SDE ") if replay else ("", "")
    return Sampler(f"{prefix[0]}eta={eta:g}", f"{prefix[1]}eta = {eta:g}", float(eta), replay)
