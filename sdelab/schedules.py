"""Variance-preserving noise schedules: q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I), alpha^2 + sigma^2 = 1.

Continuous schedules take t in [t_min, t_max] (about [0, 1]) and also give the drift f(t) and the
diffusion g(t)^2 of the forward SDE; discrete schedules (Stable Diffusion) take integer t in
[0, T - 1] and are built from an ``alphas_cumprod`` table. ``time_grid`` hides the difference.
"""

from __future__ import annotations

import math

import torch


def _as_time(t) -> torch.Tensor:
    return t if isinstance(t, torch.Tensor) else torch.as_tensor(t)


class VPSchedule:
    """A VP schedule: ``alpha(t)``, ``sigma(t)`` and, when continuous, ``f(t)`` and ``g2(t)``.

    Use the constructors: ``linear``, ``cosine``, ``from_alphas_cumprod``, ``stable_diffusion``.
    """

    def __init__(self, log_alpha=None, dlog_alpha=None, alphas_cumprod=None, *, name: str,
                 t_min: float = 0.0, t_max: float = 1.0):
        if (log_alpha is None) == (alphas_cumprod is None):
            raise ValueError("give exactly one of log_alpha (continuous) or alphas_cumprod (discrete)")
        self.name = name
        self.t_min = t_min  # the lowest and highest time that time_grid uses
        self.t_max = t_max
        self._log_alpha = log_alpha
        self._dlog_alpha = dlog_alpha
        self.alphas_cumprod = alphas_cumprod  # (T,) float64, discrete schedules only

    # ---- constructors -------------------------------------------------------------------------
    @classmethod
    def linear(cls, beta_min: float = 0.1, beta_max: float = 20.0) -> VPSchedule:
        """Linear VP-SDE (Song et al. 2021): beta(t) = beta_min + t (beta_max - beta_min), t in [0, 1]."""
        if not 0 < beta_min < beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max, got beta_min={beta_min}, beta_max={beta_max}")

        def log_alpha(t):  # log alpha_t = -int_0^t beta / 2
            return -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min

        def dlog_alpha(t):  # f(t) = -beta(t) / 2
            return -0.5 * (beta_min + t * (beta_max - beta_min))

        return cls(log_alpha, dlog_alpha, name=f"linear(beta_min={beta_min}, beta_max={beta_max})",
                   t_min=1e-3, t_max=1.0)

    @classmethod
    def cosine(cls, s: float = 0.008) -> VPSchedule:
        """Cosine schedule (Nichol & Dhariwal 2021): alpha_t = cos(pi/2 (t+s)/(1+s)) / cos(pi/2 s/(1+s))."""
        if not 0 <= s < 1:
            raise ValueError(f"s must lie in [0, 1), got {s}")
        c = math.pi / 2 / (1 + s)
        log_alpha0 = math.log(math.cos(c * s))

        def log_alpha(t):
            return torch.log(torch.cos(c * (t + s))) - log_alpha0

        def dlog_alpha(t):
            return -c * torch.tan(c * (t + s))

        # alpha_1 = 0 exactly; stop just short of it so that x0_hat = (x - sigma eps) / alpha is finite
        return cls(log_alpha, dlog_alpha, name=f"cosine(s={s})", t_min=1e-3, t_max=0.999)

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod, name: str = "discrete") -> VPSchedule:
        """Discrete schedule from a table alphas_cumprod[t] = alpha_t^2, t = 0 .. T-1 (decreasing)."""
        ac = torch.as_tensor(alphas_cumprod).to(torch.float64)
        if ac.ndim != 1 or len(ac) < 2:
            raise ValueError(f"alphas_cumprod must be a 1-D table of length >= 2, got shape {tuple(ac.shape)}")
        if not (ac > 0).all() or not (ac <= 1).all() or not (ac[1:] <= ac[:-1]).all():
            raise ValueError("alphas_cumprod must be non-increasing with values in (0, 1]")
        return cls(alphas_cumprod=ac, name=name, t_min=0, t_max=len(ac) - 1)

    @classmethod
    def stable_diffusion(cls, num_train_timesteps: int = 1000, beta_start: float = 0.00085,
                         beta_end: float = 0.012) -> VPSchedule:
        """Stable Diffusion's schedule: 1000 'scaled_linear' betas, alphas_cumprod = prod(1 - beta).

        Computed in float32 exactly as diffusers' DDIMScheduler does (the tests check equality), without
        importing diffusers, so toy code stays light.
        """
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
        return cls.from_alphas_cumprod(torch.cumprod(1.0 - betas, dim=0), name="stable_diffusion")

    # ---- evaluation ---------------------------------------------------------------------------
    @property
    def discrete(self) -> bool:
        return self.alphas_cumprod is not None

    @property
    def num_train_timesteps(self) -> int:
        if not self.discrete:
            raise ValueError(f"{self.name} is continuous: it has no num_train_timesteps")
        return len(self.alphas_cumprod)

    def _check(self, t: torch.Tensor) -> None:
        if self.discrete:
            if t.is_floating_point() and not torch.equal(t, t.round()):
                raise ValueError(f"t must be integer timesteps for the discrete schedule {self.name}")
        hi = self.t_max if self.discrete else 1.0
        if (t < 0).any() or (t > hi).any():
            raise ValueError(f"t must lie in [0, {hi}] for {self.name}, "
                             f"got values in [{t.min().item()}, {t.max().item()}]")

    def alpha(self, t) -> torch.Tensor:
        """alpha_t (float64 for discrete tables, the dtype of t for continuous schedules); any shape."""
        t = _as_time(t)
        self._check(t)
        if self.discrete:
            return self.alphas_cumprod.to(t.device)[t.long()].sqrt()
        return torch.exp(self._log_alpha(t if t.is_floating_point() else t.double()))

    def sigma(self, t) -> torch.Tensor:
        """sigma_t = sqrt(1 - alpha_t^2)."""
        t = _as_time(t)
        if self.discrete:
            self._check(t)
            return (1 - self.alphas_cumprod.to(t.device)[t.long()]).sqrt()
        # -expm1(2 log alpha) = 1 - alpha^2 without cancellation at small t
        return torch.sqrt(-torch.expm1(2 * torch.log(self.alpha(t))))

    def f(self, t) -> torch.Tensor:
        """Drift coefficient f(t) = d log alpha_t / dt of the forward SDE dx = f x dt + g dw."""
        if self.discrete:
            raise ValueError(f"f(t) is defined for continuous schedules only, not {self.name}")
        t = _as_time(t)
        self._check(t)
        return self._dlog_alpha(t if t.is_floating_point() else t.double())

    def g2(self, t) -> torch.Tensor:
        """Squared diffusion g(t)^2 = d sigma_t^2/dt - 2 f sigma_t^2, which equals -2 f(t) for VP schedules."""
        return -2 * self.f(t)

    def __repr__(self) -> str:
        return f"VPSchedule.{self.name}"


def _discrete_grid(T: int, steps: int, t0: float) -> torch.Tensor:
    """round(linspace(t0 T, 0, steps + 1)) with the top clipped to T - 1 (may repeat a timestep)."""
    grid = torch.linspace(t0 * T, 0, steps + 1, dtype=torch.float64).round().long()
    grid[0] = min(int(grid[0]), T - 1)
    return grid


def _decreasing(grid: torch.Tensor) -> bool:
    return bool((grid[:-1] > grid[1:]).all())


def matched_t0(source: VPSchedule, t0: float, target: VPSchedule) -> float:
    """The t0 on the discrete ``target`` schedule whose signal alpha = sqrt(alpha_bar) is nearest to ``source``'s at t0:
    a noise level carried from one schedule to another by signal, not by the same fraction of the diffusion (the
    digits' linear betas keep alpha = 0.16 at t = 600, Stable Diffusion's 0.40, which the digits keep at t = 422)."""
    check_t0(t0)
    if not (source.discrete and target.discrete):
        raise ValueError("source and target must be discrete schedules (tables of alphas_cumprod)")
    level = source.alpha(min(round(t0 * source.num_train_timesteps), source.num_train_timesteps - 1))
    t = int((target.alphas_cumprod.sqrt() - level).abs().argmin())
    return t / target.num_train_timesteps


def check_t0(t0: float) -> float:
    """t0, the fraction of the diffusion at which an edit starts, if it lies in (0, 1]; else ValueError naming t0."""
    if not isinstance(t0, int | float) or isinstance(t0, bool) or not 0 < t0 <= 1:
        raise ValueError(f"t0 must lie in (0, 1], got {t0!r}")
    return t0


def time_grid(schedule: VPSchedule, steps: int, t0: float = 1.0) -> torch.Tensor:
    """Times from t0 down to the data level, ``steps + 1`` points, uniform in t.

    t0 in (0, 1] is the fraction of the diffusion at which sampling starts. Discrete schedules give
    integer timesteps ``round(linspace(t0 T, 0, steps + 1))`` (the top clipped to T - 1), so SDE-Drag's
    grid (the official code's N = 200 intervals over [0, T], t0 = 0.6) is ``time_grid(sd, steps=120, t0=0.6)``
    = [600, 595, ..., 5, 0]. Continuous schedules give ``linspace(t0 t_max, t_min, steps + 1)``.
    The last point is treated as the data level (alpha ~ 1, sigma > 0): docs/conventions.md.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    check_t0(t0)
    if schedule.discrete:
        T = schedule.num_train_timesteps
        grid = _discrete_grid(T, steps, t0)
        if not _decreasing(grid):
            most = min(int(t0 * T), T - 1)  # the largest step count whose timesteps are all distinct
            while not _decreasing(_discrete_grid(T, most, t0)):
                most -= 1
            raise ValueError(f"steps={steps} is too many for t0={t0} on {T} timesteps: allowed at most {most}")
        return grid
    return torch.linspace(t0 * schedule.t_max, schedule.t_min, steps + 1, dtype=torch.float64)
