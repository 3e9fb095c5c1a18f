"""Samplers over any eps model: the generalised DDIM step (Eq. 6), the forward chain (Eq. 7), the
Cycle-SDE noises (Eq. 8), DDIM inversion, masked denoising, and the continuous-time reverse SDE
(Eq. 4) and probability-flow ODE (Eq. 5).

An eps model is any callable ``eps_model(x, t) -> eps`` with eps of x's shape; t is a 0-dim tensor
of the schedule's time type. x may be points (n, d) or image latents (n, c, h, w), float32 or float64.

Every sampler and inversion has one signature, ``(eps_model, schedule, x, grid, *, generator=None,
callback=None, progress=False)`` (the forward chain has no eps model: ``(schedule, x, grid, ...)``),
so that one can stand in for another. ``callback`` receives one dict after every step:
``{"i": step index, "t": time of the new x, "x": the new x, "x0_hat": the clean-data prediction the
step used}``. The samplers' names: ``sdelab.samplers``; grids and the data level: docs/conventions.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from sdelab.schedules import VPSchedule

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict], None]


# ---- checks ---------------------------------------------------------------------------------------
def check_eta(eta: float) -> None:
    """Raise ValueError unless eta lies in [0, 1] (Eq. 6's noise knob)."""
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must lie in [0, 1] (0 = ODE/DDIM, 1 = SDE/DDPM), got {eta}")


def _check_like(name: str, value: torch.Tensor, x: torch.Tensor) -> None:
    if value.shape != x.shape:
        raise ValueError(f"{name} must have the shape of x_t {tuple(x.shape)}, got {tuple(value.shape)}")


def check_mask(mask, x: torch.Tensor) -> torch.Tensor:
    """A bool mask (True = editable) that broadcasts to x, on x's device; ValueError otherwise."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError("mask must be a bool tensor (True = editable), e.g. from sdelab.models.images.load_mask, "
                         f"got {mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__}")
    try:
        torch.broadcast_shapes(mask.shape, x.shape)
    except RuntimeError:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to x {tuple(x.shape)}") from None
    return mask.to(x.device)


def grid_levels(schedule: VPSchedule, grid: torch.Tensor):
    """alpha, sigma at every time of a 1-D grid of >= 2 times, as float64 (cast per step to x's dtype)."""
    if grid.ndim != 1 or len(grid) < 2:
        raise ValueError(f"grid must be a 1-D tensor of >= 2 times, got shape {tuple(grid.shape)}")
    return schedule.alpha(grid).double(), schedule.sigma(grid).double()


def _cast(c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A float64 coefficient cast to x's dtype (on the CPU, so devices without float64 work), then moved."""
    return c.to(like.dtype).to(like.device)


def _per_sample(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A scalar or (n,) coefficient shaped to broadcast against x (n, ...): (n, 1, ..., 1)."""
    return c.reshape(c.shape + (1,) * (x.ndim - c.ndim)) if c.ndim else c


# ---- Eq. 6 and what is built from it --------------------------------------------------------------
def rho(alpha_t, sigma_t, alpha_s, sigma_s, eta):
    """Noise scale of Eq. 6: rho_s = eta * (sigma_s / sigma_t) * sqrt(1 - alpha_t^2 / alpha_s^2)."""
    if float(eta) == 0:  # also for an upward (inversion) step, where the square root is not real
        return torch.zeros_like(torch.as_tensor(sigma_s, dtype=torch.float64))
    return eta * (sigma_s / sigma_t) * (1 - alpha_t**2 / alpha_s**2) ** 0.5


def eq6_coefficients(alpha_t, sigma_t, alpha_s, sigma_s, eta: float):
    """Eq. 6 as x_s = c_x x_t + c_eps eps + rho_s w, with float64 coefficients (c_x, c_eps, rho_s).

    From x0_hat = (x_t - sigma_t eps) / alpha_t and x_s = alpha_s x0_hat + sqrt(sigma_s^2 - rho_s^2) eps + rho_s w:
    c_x = alpha_s / alpha_t and c_eps = sqrt(sigma_s^2 - rho_s^2) - alpha_s sigma_t / alpha_t. Combining in
    float64 before casting keeps float32 samplers from losing digits to cancellation.
    """
    check_eta(eta)
    a_t, s_t, a_s, s_s = (torch.as_tensor(v, dtype=torch.float64) for v in (alpha_t, sigma_t, alpha_s, sigma_s))
    if float(eta) > 0 and (a_s < a_t).any():
        raise ValueError(f"alpha_s must be >= alpha_t (s is the less noisy level) when eta > 0; only the "
                         f"deterministic step (eta = 0) runs upwards, got alpha_t={alpha_t}, alpha_s={alpha_s}")
    r = rho(a_t, s_t, a_s, s_s, eta)
    direction = (s_s**2 - r**2).clamp(min=0).sqrt()  # >= 0 in exact arithmetic for eta <= 1
    return a_s / a_t, direction - a_s * s_t / a_t, r


def predict_x0(x_t, eps, alpha_t, sigma_t) -> torch.Tensor:
    """The clean-data prediction x0_hat = (x_t - sigma_t eps) / alpha_t of Eq. 6 (x_t's dtype)."""
    a_t, s_t = (_per_sample(_cast(torch.as_tensor(v, dtype=torch.float64), x_t), x_t) for v in (alpha_t, sigma_t))
    return (x_t - s_t * eps) / a_t


def ddim_step(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s, eta=0.0, noise=None, generator=None):
    """Generalised DDIM step t -> s (Eq. 6): x_s = alpha_s x0_hat + sqrt(sigma_s^2 - rho_s^2) eps + rho_s w.

    eta = 0 is DDIM (the ODE sampler), eta = 1 is DDPM (the SDE sampler). With eta > 0 the noise w is
    ``noise`` when given, else drawn from ``generator``. With eta = 0 the step may also run upwards
    (alpha_s < alpha_t): that is DDIM inversion. Coefficients may be floats or tensors.
    """
    _check_like("eps", eps, x_t)
    c_x, c_eps, r = (_per_sample(_cast(c, x_t), x_t) for c in eq6_coefficients(alpha_t, sigma_t, alpha_s, sigma_s,
                                                                                eta))
    x_s = c_x * x_t + c_eps * eps
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
    c_x, c_eps, r = eq6_coefficients(alpha_t, sigma_t, alpha_s, sigma_s, eta)
    if not (r > 0).all():
        raise ValueError("Cycle-SDE needs rho_s > 0 at every step: eta must be > 0 and the grid must end at "
                         "a positive noise level (sigma_s > 0), as time_grid's grids do")
    c_x, c_eps, r = (_per_sample(_cast(c, x_t), x_t) for c in (c_x, c_eps, r))
    return (x_s - c_x * x_t - c_eps * eps) / r


def add_noise(x0, schedule: VPSchedule, t, noise) -> torch.Tensor:
    """A sample of q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I): x_t = alpha_t x0 + sigma_t noise.

    t: one time, or one per sample ((n,) for x0 (n, ...)), as the training loss draws them.
    """
    _check_like("noise", noise, x0)
    t = torch.as_tensor(t)
    if t.ndim > 1 or (t.ndim == 1 and len(t) != len(x0)):
        raise ValueError(f"t must be one time or one per sample ({len(x0)}), got shape {tuple(t.shape)}")
    a, s = (_per_sample(_cast(v.double(), x0), x0) for v in (schedule.alpha(t.cpu()), schedule.sigma(t.cpu())))
    return a * x0 + s * noise


# ---- samplers -------------------------------------------------------------------------------------
def forward_chain(schedule: VPSchedule, x, grid, *, generator=None, callback: Callback | None = None,
                  progress: bool = False) -> list[torch.Tensor]:
    """Markov forward chain (Eq. 7) from the data x up the grid; returns chain[i] at level grid[i].

    x'_t = (alpha_t / alpha_s) x'_s + sqrt(1 - alpha_t^2 / alpha_s^2) z with z ~ N(0, I). grid runs
    from t0 down to the data level, so chain[-1] is x and chain[0] is x'_{t0}. The callback's x0_hat
    is x itself (the chain knows its clean sample).
    """
    alpha, _ = grid_levels(schedule, grid)
    chain = [x]
    for i in tqdm(range(len(grid) - 2, -1, -1), disable=not progress, desc="forward chain"):
        ratio = alpha[i] / alpha[i + 1]
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        chain.append(_cast(ratio, x) * chain[-1] + _cast((1 - ratio**2).sqrt(), x) * z)
        if callback is not None:
            callback({"i": i, "t": grid[i], "x": chain[-1], "x0_hat": x})
    return chain[::-1]


def cycle_sde_noises(eps_model: EpsModel, schedule: VPSchedule, chain: Sequence[torch.Tensor], grid, *,
                     eta: float = 1.0, batch_steps: int = 1, callback: Callback | None = None,
                     progress: bool = False) -> list[torch.Tensor]:
    """Eq. 8 for every step of the grid: noises[i] maps chain[i] onto chain[i + 1] (eps on chain[i]).

    The chain's eps does not depend on the sample being denoised, so it can be computed before the backward
    pass: ``batch_steps`` > 1 evaluates the chain samples of that many steps in one eps call, with one time per
    sample (the eps model must accept t of shape (n,)). The callback's x is the noise of the step and x0_hat the
    prediction from chain[i].
    """
    alpha, sigma = grid_levels(schedule, grid)
    if len(chain) != len(grid):
        raise ValueError(f"chain must hold one sample per grid time ({len(grid)}), got {len(chain)}")
    if not isinstance(batch_steps, int) or batch_steps < 1:
        raise ValueError(f"batch_steps must be an integer >= 1, got {batch_steps!r}")
    steps, noises = len(grid) - 1, []
    for start in tqdm(range(0, steps, batch_steps), disable=not progress, desc="Cycle-SDE noises"):
        block = range(start, min(start + batch_steps, steps))
        if len(block) == 1:
            eps_block = [eps_model(chain[start], grid[start])]
        else:  # (len(block) * n, ...) in one call, one time per sample
            times = grid[start: block[-1] + 1].repeat_interleave(len(chain[start]))
            eps_block = eps_model(torch.cat([chain[i] for i in block]), times).chunk(len(block))
        for i, eps in zip(block, eps_block, strict=True):
            noises.append(cycle_noise(chain[i], chain[i + 1], eps, alpha[i], sigma[i], alpha[i + 1], sigma[i + 1],
                                      eta))
            if callback is not None:
                callback({"i": i, "t": grid[i + 1], "x": noises[-1], "x0_hat": predict_x0(chain[i], eps, alpha[i],
                                                                                           sigma[i])})
    return noises


def denoise(eps_model: EpsModel, schedule: VPSchedule, x, grid, *, eta: float = 0.0, generator=None,
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
    Conditioning that changes per step (guidance, a LoRA scale) lives in the eps_model closure.
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
        mask = check_mask(mask, x)
    for i in tqdm(range(n), disable=not progress, desc=f"denoise eta={eta}"):
        levels = (alpha[i], sigma[i], alpha[i + 1], sigma[i + 1])
        if replay:
            eps, eps_chain = eps_model(torch.cat([x, chain[i]]), grid[i]).chunk(2)
            noise = cycle_noise(chain[i], chain[i + 1], eps_chain, *levels, eta)
        else:
            eps = eps_model(x, grid[i])
            noise = None if noises is None else noises[i]
        x0_hat = predict_x0(x, eps, alpha[i], sigma[i]) if callback is not None else None
        x = ddim_step(x, eps, *levels, eta=eta, noise=noise, generator=generator)
        if mask is not None:
            x = torch.where(mask, x, chain[i + 1])
        if callback is not None:
            callback({"i": i, "t": grid[i + 1], "x": x, "x0_hat": x0_hat})
    return x


def ddim_invert(eps_model: EpsModel, schedule: VPSchedule, x, grid, *, generator=None,
                callback: Callback | None = None, progress: bool = False) -> list[torch.Tensor]:
    """DDIM inversion: Eq. 6 with eta = 0 run in the noising direction, from grid[-1] up to grid[0].

    x_t = alpha_t x0_hat(x_s) + sigma_t eps(x_s, s). Returns the trajectory in grid order (like
    ``forward_chain``): out[0] is the inverted x_{t0}, out[-1] is x. Deterministic: ``generator`` is
    accepted only so that every sampler has one signature.
    """
    alpha, sigma = grid_levels(schedule, grid)
    xs = [x]
    for i in tqdm(range(len(grid) - 2, -1, -1), disable=not progress, desc="DDIM inversion"):
        eps = eps_model(xs[-1], grid[i + 1])
        xs.append(ddim_step(xs[-1], eps, alpha[i + 1], sigma[i + 1], alpha[i], sigma[i], eta=0.0))
        if callback is not None:
            callback({"i": i, "t": grid[i], "x": xs[-1], "x0_hat": predict_x0(xs[-2], eps, alpha[i + 1],
                                                                               sigma[i + 1])})
    return xs[::-1]


# ---- continuous time (toy schedules) ----------------------------------------------------------------
def reverse_drift(eps, schedule: VPSchedule, x, t, probability_flow: bool = False):
    """Reverse-time drift: f x + (g^2 / sigma) eps (SDE, Eq. 4) or f x + (g^2 / (2 sigma)) eps (ODE, Eq. 5).

    eps: the noise prediction at (x, t), a tensor of x's shape.
    """
    t = torch.as_tensor(t, dtype=torch.float64)
    f, g2, s = (_cast(v, x) for v in (schedule.f(t), schedule.g2(t), schedule.sigma(t)))
    return f * x + (0.5 if probability_flow else 1.0) * g2 / s * eps


def _check_continuous(schedule: VPSchedule) -> None:
    if schedule.discrete:
        raise ValueError(f"continuous-time samplers need a continuous schedule, got {schedule}")


def _report(callback, i, s, x, eps, schedule, t):
    if callback is not None:
        t = torch.as_tensor(t, dtype=torch.float64)
        callback({"i": i, "t": s, "x": x, "x0_hat": predict_x0(x, eps, schedule.alpha(t), schedule.sigma(t))})


def reverse_sde_euler_maruyama(eps_model: EpsModel, schedule: VPSchedule, x, grid, *, generator=None,
                               callback: Callback | None = None, progress: bool = False) -> torch.Tensor:
    """Euler-Maruyama for the reverse SDE (Eq. 4): x_s = x_t + drift (s - t) + g(t) sqrt(t - s) z."""
    _check_continuous(schedule)
    for i in tqdm(range(len(grid) - 1), disable=not progress, desc="reverse SDE (Euler-Maruyama)"):
        t, s = grid[i], grid[i + 1]
        h = _cast(torch.as_tensor(s - t).double(), x)
        eps = eps_model(x, t)
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_new = x + reverse_drift(eps, schedule, x, t) * h + _cast(schedule.g2(t).double(), x).sqrt() * (-h).sqrt() * z
        _report(callback, i, s, x_new, eps, schedule, t)
        x = x_new
    return x


def probability_flow_heun(eps_model: EpsModel, schedule: VPSchedule, x, grid, *, generator=None,
                          callback: Callback | None = None, progress: bool = False) -> torch.Tensor:
    """Heun's method (2nd order) for the probability-flow ODE (Eq. 5). Deterministic: ``generator`` unused."""
    _check_continuous(schedule)
    for i in tqdm(range(len(grid) - 1), disable=not progress, desc="probability-flow ODE (Heun)"):
        t, s = grid[i], grid[i + 1]
        h = _cast(torch.as_tensor(s - t).double(), x)
        eps = eps_model(x, t)
        d1 = reverse_drift(eps, schedule, x, t, probability_flow=True)
        x_euler = x + d1 * h
        d2 = reverse_drift(eps_model(x_euler, s), schedule, x_euler, s, probability_flow=True)
        x_new = x + 0.5 * (d1 + d2) * h
        _report(callback, i, s, x_new, eps, schedule, t)
        x = x_new
    return x
