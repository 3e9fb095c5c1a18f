"""Samplers over any eps model: the generalised DDIM step (Eq. 6), the forward chain (Eq. 7), the
Cycle-SDE noises (Eq. 8), DDIM inversion, masked denoising, and the continuous-time reverse SDE
(Eq. 4) and probability-flow ODE (Eq. 5).

An eps model is any callable ``eps_model(x, t) -> eps`` with eps of x's shape; t is a 0-dim tensor
of the schedule's time type. x may be points (n, d) or image latents (n, c, h, w), float32 or float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from sdelab.schedules import VPSchedule

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor], None]


def _scalar(v, like: torch.Tensor) -> torch.Tensor:
    """A float or tensor coefficient as a tensor on x's device and dtype (broadcasts against x)."""
    return torch.as_tensor(v).to(device=like.device, dtype=like.dtype)


def _check_levels(alpha_t, alpha_s) -> None:
    if (torch.as_tensor(alpha_s) < torch.as_tensor(alpha_t)).any():
        raise ValueError(f"alpha_s must be >= alpha_t (s is the less noisy level), got alpha_t={alpha_t}, "
                         f"alpha_s={alpha_s}")


def check_eta(eta: float) -> None:
    """Raise ValueError unless eta lies in [0, 1] (Eq. 6's noise knob)."""
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must lie in [0, 1] (0 = ODE/DDIM, 1 = SDE/DDPM), got {eta}")


def _check_like(name: str, value: torch.Tensor, x: torch.Tensor) -> None:
    if value.shape != x.shape:
        raise ValueError(f"{name} must have the shape of x_t {tuple(x.shape)}, got {tuple(value.shape)}")


def rho(alpha_t, sigma_t, alpha_s, sigma_s, eta):
    """Noise scale of Eq. 6: rho_s = eta * (sigma_s / sigma_t) * sqrt(1 - alpha_t^2 / alpha_s^2)."""
    return eta * (sigma_s / sigma_t) * (1 - alpha_t**2 / alpha_s**2) ** 0.5


def _coefficients(x, alpha_t, sigma_t, alpha_s, sigma_s, eta):
    a_t, s_t, a_s, s_s = (_scalar(v, x) for v in (alpha_t, sigma_t, alpha_s, sigma_s))
    r = rho(a_t, s_t, a_s, s_s, eta)
    direction = (s_s**2 - r**2).clamp(min=0).sqrt()  # >= 0 in exact arithmetic for eta <= 1
    return a_t, s_t, a_s, r, direction


def ddim_step(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s, eta=0.0, noise=None, generator=None):
    """Generalised DDIM step t -> s (Eq. 6): x_s = alpha_s x0_hat + sqrt(sigma_s^2 - rho_s^2) eps + rho_s w.

    eta = 0 is DDIM (the ODE sampler), eta = 1 is DDPM (the SDE sampler). With eta > 0 the noise w is
    ``noise`` when given, else drawn from ``generator``. Coefficients may be floats or tensors.
    """
    check_eta(eta)
    _check_levels(alpha_t, alpha_s)
    _check_like("eps", eps, x_t)
    a_t, s_t, a_s, r, direction = _coefficients(x_t, alpha_t, sigma_t, alpha_s, sigma_s, eta)
    x0_hat = (x_t - s_t * eps) / a_t
    x_s = a_s * x0_hat + direction * eps
    if eta > 0:
        if noise is None:
            noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        _check_like("noise", noise, x_t)
        x_s = x_s + r * noise
    return x_s


def cycle_noise(x_t, x_s, eps, alpha_t, sigma_t, alpha_s, sigma_s, eta=1.0):
    """Cycle-SDE noise (Eq. 8): the w'_s for which Eq. 6 maps the stored x'_t exactly onto the stored x'_s.

    w'_s = (x'_s - alpha_s x0_hat(x'_t) - sqrt(sigma_s^2 - rho_s^2) eps(x'_t, t)) / rho_s.
    """
    check_eta(eta)
    _check_levels(alpha_t, alpha_s)
    a_t, s_t, a_s, r, direction = _coefficients(x_t, alpha_t, sigma_t, alpha_s, sigma_s, eta)
    if not (r > 0).all():
        raise ValueError("Cycle-SDE needs rho_s > 0 at every step: eta must be > 0 and the grid must end at "
                         "a positive noise level (sigma_s > 0), as time_grid's grids do")
    x0_hat = (x_t - s_t * eps) / a_t
    return (x_s - a_s * x0_hat - direction * eps) / r


def grid_levels(schedule: VPSchedule, grid: torch.Tensor):
    """alpha, sigma at every time of a 1-D grid of >= 2 times, as float64 (cast per step to x's dtype)."""
    if grid.ndim != 1 or len(grid) < 2:
        raise ValueError(f"grid must be a 1-D tensor of >= 2 times, got shape {tuple(grid.shape)}")
    return schedule.alpha(grid).double(), schedule.sigma(grid).double()


def forward_chain(x0, schedule: VPSchedule, grid, generator=None) -> list[torch.Tensor]:
    """Markov forward chain (Eq. 7) from the data up the grid; returns chain[i] at level grid[i].

    x'_t = (alpha_t / alpha_s) x'_s + sqrt(1 - alpha_t^2 / alpha_s^2) z with z ~ N(0, I). grid runs
    from t0 down to the data level, so chain[-1] is x0 and chain[0] is x'_{t0}.
    """
    alpha, _ = grid_levels(schedule, grid)
    chain = [x0]
    for i in range(len(grid) - 2, -1, -1):
        ratio = _scalar(alpha[i] / alpha[i + 1], x0)
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        chain.append(ratio * chain[-1] + (1 - ratio**2).sqrt() * z)
    return chain[::-1]


def cycle_sde_noises(eps_model: EpsModel, schedule: VPSchedule, grid, chain: Sequence[torch.Tensor],
                     eta: float = 1.0) -> list[torch.Tensor]:
    """Eq. 8 for every step of the grid: noises[i] maps chain[i] onto chain[i + 1] (eps on chain[i])."""
    alpha, sigma = grid_levels(schedule, grid)
    if len(chain) != len(grid):
        raise ValueError(f"chain must hold one sample per grid time ({len(grid)}), got {len(chain)}")
    return [cycle_noise(chain[i], chain[i + 1], eps_model(chain[i], grid[i]),
                        alpha[i], sigma[i], alpha[i + 1], sigma[i + 1], eta)
            for i in range(len(grid) - 1)]


def denoise(eps_model: EpsModel, schedule: VPSchedule, x, grid, eta: float = 0.0, *, generator=None,
            noises: Sequence[torch.Tensor] | None = None, chain: Sequence[torch.Tensor] | None = None,
            replay: bool = False, mask=None, callback: Callback | None = None,
            progress: bool = False) -> torch.Tensor:
    """Sample from grid[0] down to grid[-1] with Eq. 6 at the given eta; all samplers of the paper.

    - ODE (DDIM): eta=0.  SDE (DDPM): eta=1, fresh noise from ``generator``.
    - Given noises: ``noises[i]`` is used at step i (Cycle-SDE with noises from ``cycle_sde_noises``).
    - Cycle-SDE, batched: ``replay=True`` with the stored ``chain`` (``forward_chain``); at each step
      eps of x and of chain[i] come from one batched call and Eq. 8 gives the noise on the fly.
    - Masked: with ``mask`` (bool, broadcastable to x; True = editable) and ``chain``, after every
      step the entries outside the mask are replaced by the stored chain sample of the same level.
    ``callback(i, t_s, x_s)`` runs after every step.
    """
    check_eta(eta)
    alpha, sigma = grid_levels(schedule, grid)
    n = len(grid) - 1
    if noises is not None and len(noises) != n:
        raise ValueError(f"noises must hold one tensor per step ({n}), got {len(noises)}")
    if (replay or mask is not None) and (chain is None or len(chain) != n + 1):
        raise ValueError(f"replay and mask need the stored chain with one sample per grid time ({n + 1})")
    if replay and (eta == 0 or noises is not None):
        raise ValueError("replay=True is Cycle-SDE: it needs eta > 0 and computes its own noises")
    if mask is not None:
        mask = torch.as_tensor(mask, device=x.device).bool()
    for i in tqdm(range(n), disable=not progress, desc=f"denoise eta={eta}"):
        t = grid[i]
        coeffs = (alpha[i], sigma[i], alpha[i + 1], sigma[i + 1])
        if replay:
            eps, eps_chain = eps_model(torch.cat([x, chain[i]]), t).chunk(2)
            noise = cycle_noise(chain[i], chain[i + 1], eps_chain, *coeffs, eta)
        else:
            eps = eps_model(x, t)
            noise = None if noises is None else noises[i]
        x = ddim_step(x, eps, *coeffs, eta=eta, noise=noise, generator=generator)
        if mask is not None:
            x = torch.where(mask, x, chain[i + 1])
        if callback is not None:
            callback(i, grid[i + 1], x)
    return x


def ddim_invert(eps_model: EpsModel, schedule: VPSchedule, x0, grid, *, callback: Callback | None = None,
                progress: bool = False) -> list[torch.Tensor]:
    """DDIM inversion: Eq. 6 with eta = 0 run in the noising direction, from grid[-1] up to grid[0].

    x_t = alpha_t x0_hat(x_s) + sigma_t eps(x_s, s). Returns the trajectory in grid order (like
    ``forward_chain``): out[0] is the inverted x_{t0}, out[-1] is x0.
    """
    alpha, sigma = grid_levels(schedule, grid)
    xs = [x0]
    for i in tqdm(range(len(grid) - 2, -1, -1), disable=not progress, desc="DDIM inversion"):
        x = xs[-1]
        eps = eps_model(x, grid[i + 1])
        x0_hat = (x - _scalar(sigma[i + 1], x) * eps) / _scalar(alpha[i + 1], x)
        xs.append(_scalar(alpha[i], x) * x0_hat + _scalar(sigma[i], x) * eps)
        if callback is not None:
            callback(i, grid[i], xs[-1])
    return xs[::-1]


# ---- continuous time (toy schedules) ----------------------------------------------------------------
def reverse_drift(eps_model: EpsModel, schedule: VPSchedule, x, t, probability_flow: bool = False):
    """Reverse-time drift: f x + (g^2 / sigma) eps (SDE, Eq. 4) or f x + (g^2 / (2 sigma)) eps (ODE, Eq. 5)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    f, g2, s = (_scalar(v, x) for v in (schedule.f(t), schedule.g2(t), schedule.sigma(t)))
    return f * x + (0.5 if probability_flow else 1.0) * g2 / s * eps_model(x, t)


def _check_continuous(schedule: VPSchedule) -> None:
    if schedule.discrete:
        raise ValueError(f"continuous-time samplers need a continuous schedule, got {schedule}")


def reverse_sde_euler_maruyama(eps_model: EpsModel, schedule: VPSchedule, x, grid, generator=None,
                               callback: Callback | None = None) -> torch.Tensor:
    """Euler-Maruyama for the reverse SDE (Eq. 4): x_s = x_t + drift (s - t) + g(t) sqrt(t - s) z."""
    _check_continuous(schedule)
    for i in range(len(grid) - 1):
        t, s = grid[i], grid[i + 1]
        h = _scalar(s - t, x)
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x + reverse_drift(eps_model, schedule, x, t) * h + _scalar(schedule.g2(t), x).sqrt() * (-h).sqrt() * z
        if callback is not None:
            callback(i, s, x)
    return x


def probability_flow_heun(eps_model: EpsModel, schedule: VPSchedule, x, grid,
                          callback: Callback | None = None) -> torch.Tensor:
    """Heun's method (2nd order) for the probability-flow ODE (Eq. 5)."""
    _check_continuous(schedule)
    for i in range(len(grid) - 1):
        t, s = grid[i], grid[i + 1]
        h = _scalar(s - t, x)
        d1 = reverse_drift(eps_model, schedule, x, t, probability_flow=True)
        d2 = reverse_drift(eps_model, schedule, x + d1 * h, s, probability_flow=True)
        x = x + 0.5 * (d1 + d2) * h
        if callback is not None:
            callback(i, s, x)
    return x
