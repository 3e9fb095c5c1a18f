"""Samplers over any eps model: the generalised DDIM step (Eq. 6), the forward chain (Eq. 7), the
Cycle-SDE noises (Eq. 8), DDIM inversion, masked denoising, and the continuous-time reverse SDE
(Eq. 4) and probability-flow ODE (Eq. 5). Eq. 6's noise is a strategy passed to ``denoise``: fresh
(``FreshNoise``, DDPM), stored (``StoredNoise``) or replayed from a stored chain (``CycleNoise``, Cycle-SDE).

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


# ---- Eq. 6's noise w: fresh, stored, or replayed from a stored chain (Cycle-SDE) ------------------------------
class Noise:
    """Where Eq. 6's w comes from at each step of ``denoise`` (as k-diffusion passes a ``noise_sampler``).

    ``noise(i, x, eps_extra)`` is w for the step grid[i] -> grid[i + 1] of x. A noise that needs eps of other
    samples at grid[i] (Cycle-SDE's chain sample) names them in ``extra(i)``; ``denoise`` evaluates them in the
    step's own eps call and passes their eps as ``eps_extra``. ``check(grid, x, eta)`` raises ValueError where the
    noise cannot serve that run.
    """

    def check(self, grid: torch.Tensor, x: torch.Tensor, eta: float) -> None:
        """ValueError where this noise cannot serve ``denoise`` on this grid, x and eta (default: it can)."""

    def extra(self, i: int) -> torch.Tensor | None:
        """Samples whose eps at grid[i] the noise of step i needs from the step's own eps call (default: none)."""
        return None

    def __call__(self, i: int, x: torch.Tensor, eps_extra: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError


class FreshNoise(Noise):
    """Fresh w ~ N(0, I) at every step, drawn from ``generator`` on x's device (DDPM: the SDE sampler)."""

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def __call__(self, i, x, eps_extra=None):
        return torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)


class StoredNoise(Noise):
    """Given noises, ``noises[i]`` at step i (e.g. Cycle-SDE's from ``cycle_sde_noises``, computed once for several
    runs from one chain)."""

    def __init__(self, noises: Sequence[torch.Tensor]):
        self.noises = noises

    def check(self, grid, x, eta):
        if len(self.noises) != len(grid) - 1:
            raise ValueError(f"noises must hold one tensor per step ({len(grid) - 1}), got {len(self.noises)}")

    def __call__(self, i, x, eps_extra=None):
        return self.noises[i]


class CycleNoise(Noise):
    """Cycle-SDE (Eq. 8) replayed from a stored forward chain: the w'_s of step i maps chain[i] onto chain[i + 1].

    eps of chain[i] (x'_t) comes from the sampler's own eps call at that step, batched with x (``eps_model`` None:
    the chain takes the backward pass's conditioning), or from ``eps_model`` (another conditioning, or the noises
    computed ahead of the backward pass), ``batch_steps`` steps of the chain per call with one time per sample.
    """

    def __init__(self, schedule: VPSchedule, chain: Sequence[torch.Tensor], grid: torch.Tensor, *, eta: float = 1.0,
                 eps_model: EpsModel | None = None, batch_steps: int = 1):
        self.alpha, self.sigma = grid_levels(schedule, grid)
        if len(chain) != len(grid):
            raise ValueError(f"chain must hold one sample per grid time ({len(grid)}), got {len(chain)}")
        if not isinstance(batch_steps, int) or batch_steps < 1:
            raise ValueError(f"batch_steps must be an integer >= 1, got {batch_steps!r}")
        self.chain, self.grid, self.eta, self.eps_model, self.batch_steps = chain, grid, eta, eps_model, batch_steps
        self._eps: dict[int, torch.Tensor] = {}  # eps of the chain's current block of steps

    def check(self, grid, x, eta):
        if len(grid) != len(self.grid) or not torch.equal(grid, self.grid):
            raise ValueError("grid must be the grid of the Cycle-SDE noise's chain")
        if float(eta) != float(self.eta):
            raise ValueError(f"eta must be the Cycle-SDE noise's eta {self.eta} (Eq. 8 solves Eq. 6 at it), got {eta}")

    def extra(self, i):
        return self.chain[i] if self.eps_model is None else None

    def eps_chain(self, i: int) -> torch.Tensor:
        """eps of chain[i] at grid[i] from the noise's own eps model, ``batch_steps`` steps per call."""
        if i not in self._eps:
            block = range(i, min(i + self.batch_steps, len(self.grid) - 1))
            if len(block) == 1:
                eps = [self.eps_model(self.chain[i], self.grid[i])]
            else:  # (len(block) * n, ...) in one call, one time per sample
                times = self.grid[i: block[-1] + 1].repeat_interleave(len(self.chain[i]))
                eps = self.eps_model(torch.cat([self.chain[j] for j in block]), times).chunk(len(block))
            self._eps = dict(zip(block, eps, strict=True))
        return self._eps[i]

    def __call__(self, i, x=None, eps_extra=None):
        eps = self.eps_chain(i) if self.eps_model is not None else eps_extra
        levels = (self.alpha[i], self.sigma[i], self.alpha[i + 1], self.sigma[i + 1])
        return cycle_noise(self.chain[i], self.chain[i + 1], eps, *levels, self.eta)


def cycle_sde_noises(eps_model: EpsModel, schedule: VPSchedule, chain: Sequence[torch.Tensor], grid, *,
                     eta: float = 1.0, batch_steps: int = 1, callback: Callback | None = None,
                     progress: bool = False) -> list[torch.Tensor]:
    """Eq. 8 for every step of the grid, ahead of the backward pass: the noises of ``CycleNoise``, as a list.

    The chain's eps does not depend on the sample being denoised, so one list serves several backward passes
    (``StoredNoise``). ``batch_steps`` > 1 evaluates the chain samples of that many steps in one eps call, with one
    time per sample (the eps model must accept t of shape (n,)). The callback's x is the noise of the step and
    x0_hat the prediction from chain[i].
    """
    noise = CycleNoise(schedule, chain, grid, eta=eta, eps_model=eps_model, batch_steps=batch_steps)
    noises = []
    for i in tqdm(range(len(grid) - 1), disable=not progress, desc="Cycle-SDE noises"):
        noises.append(noise(i))
        if callback is not None:
            x0_hat = predict_x0(chain[i], noise.eps_chain(i), noise.alpha[i], noise.sigma[i])
            callback({"i": i, "t": grid[i + 1], "x": noises[-1], "x0_hat": x0_hat})
    return noises


def denoise(eps_model: EpsModel, schedule: VPSchedule, x, grid, *, eta: float = 0.0, generator=None,
            noise: Noise | None = None, mask=None, chain: Sequence[torch.Tensor] | None = None,
            callback: Callback | None = None, progress: bool = False) -> torch.Tensor:
    """Sample from grid[0] down to grid[-1] with Eq. 6 at the given eta; all samplers of the paper.

    - ODE (DDIM): eta=0 (no noise).  SDE (DDPM): eta=1 and ``noise`` None: fresh noise from ``generator``.
    - Cycle-SDE: eta=1 and ``noise=CycleNoise(schedule, chain, grid)``, the stored chain's Eq. 8 noises (or
      ``StoredNoise(cycle_sde_noises(...))``, the same noises computed ahead).
    - Masked: with ``mask`` (bool, broadcastable to x; True = editable) and ``chain`` (one sample per grid time),
      after every step the entries outside the mask are replaced by the chain sample of the same level.
    Conditioning that changes per step (guidance, a LoRA scale) lives in the eps_model closure.
    """
    check_eta(eta)
    alpha, sigma = grid_levels(schedule, grid)
    n = len(grid) - 1
    noise = FreshNoise(generator) if noise is None else noise
    noise.check(grid, x, eta)
    if mask is not None:
        if chain is None or len(chain) != n + 1:
            raise ValueError(f"mask needs the chain to paste, with one sample per grid time ({n + 1})")
        mask = check_mask(mask, x)
    for i in tqdm(range(n), disable=not progress, desc=f"denoise eta={eta}"):
        extra = noise.extra(i) if eta > 0 else None
        if extra is None:
            eps, eps_extra = eps_model(x, grid[i]), None
        else:  # the noise's samples in the step's own call: (2n, ...)
            eps, eps_extra = eps_model(torch.cat([x, extra]), grid[i]).chunk(2)
        w = noise(i, x, eps_extra) if eta > 0 else None
        x0_hat = predict_x0(x, eps, alpha[i], sigma[i]) if callback is not None else None
        x = ddim_step(x, eps, alpha[i], sigma[i], alpha[i + 1], sigma[i + 1], eta=eta, noise=w)
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
