"""DDIM inversion and Cycle-SDE over the DiffusionModel interface: exact reconstruction, masks, conditioning."""


import pytest
import torch
from conftest import DEVICE

from sdelab.edit import Inversion, cycle_noises, invert, reconstruct
from sdelab.models import DiffusionModel, load_digits_model, tiny_stable_diffusion
from sdelab.models.base import linear_ramp
from sdelab.models.images import load_mask
from sdelab.sampling import StoredNoise, cycle_sde_noises, denoise
from sdelab.schedules import VPSchedule, time_grid


class PixelToy(DiffusionModel):
    """A weightless pixel-space model: a fixed non-linear network of t and the prompt, guided by DiffusionModel.eps."""

    name, conditional = "pixel-toy", True

    def __init__(self, dtype=torch.float64):
        self.schedule = VPSchedule.stable_diffusion()
        self.unet = torch.nn.Linear(1, 1, dtype=dtype)  # no part in eps: it gives the model's device and dtype

    def encode(self, images, generator=None):
        return 2 * images.to(self.dtype) - 1

    def decode(self, x0):
        return ((x0 + 1) / 2).clamp(0, 1)

    def condition(self, prompt, n):
        return torch.full((n, 1, 1, 1), len(prompt or "") / 10, dtype=self.dtype)

    def network(self, x, t, condition):
        tt = t.to(x.dtype).reshape(-1, 1, 1, 1) / 1000  # (n, 1, 1, 1)
        return torch.tanh(1.7 * x + tt + condition) * torch.cos(3 * tt * x)

    def latent_shape(self, n):
        return (n, 1, 8, 8)


# ---- models: any DiffusionModel ------------------------------------------------------------------------------
MODELS = {"pixel-toy": PixelToy, "tiny-sd": lambda: tiny_stable_diffusion(device=DEVICE),
          "digits": lambda: load_digits_model(device=DEVICE)}
UNCONDITIONAL = {"digits"}  # models that take no prompt and guidance 1 only
_cache = {}


def model_named(name):
    if name not in _cache:
        _cache[name] = MODELS[name]()
    return _cache[name]


def conditioning(name, grid):
    """(prompt, guidance) for a test: text with CFG rising in t, as SDE-Drag's (1 at the data end, 3 at t0)."""
    return (None, 1.0) if name in UNCONDITIONAL else ("a cat", linear_ramp(grid, 1.0, 3.0))


def clean_latent(model, dtype, seed=0):
    """x0 = encode(an image at the model's resolution), in the sampler dtype; the image is decode(noise)."""
    gen = torch.Generator(device=model.device).manual_seed(seed)
    images = model.decode(torch.randn(model.latent_shape(1), generator=gen, device=model.device)).float()
    return model.encode(images, generator=gen).to(dtype)


@pytest.mark.parametrize("name", list(MODELS))
def test_cycle_sde_reconstruction_is_exact(name):
    """No edit: Cycle-SDE returns x0 to rounding (float64 ~1e-14; float32 <= 1e-5), with t-dependent CFG."""
    model = model_named(name)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        x0 = clean_latent(model, dtype)
        prompt, guidance = conditioning(name, time_grid(model.schedule, 8, 0.6))
        inv = invert(model, x0, steps=8, t0=0.6, prompt=prompt, guidance=guidance,
                     generator=torch.Generator(device=model.device).manual_seed(1), progress=False)
        assert inv.method == "cycle-sde" and torch.equal(inv.x0, x0) and inv.x_t0.dtype == dtype
        out = reconstruct(model, inv, progress=False)
        assert out.dtype == dtype and (out - x0).abs().max().item() <= tol, name


@pytest.mark.parametrize("name", ["pixel-toy", "tiny-sd"])
def test_fully_black_mask_returns_the_original_latent(name):
    model = model_named(name)
    x0 = clean_latent(model, torch.float32)
    black = load_mask(torch.zeros(64, 64, dtype=torch.bool), x0.shape[-2:])
    black, half = black.to(x0.device), torch.zeros_like(black, device=x0.device)
    half[:, : x0.shape[-1] // 2] = True
    for method in ("ode", "cycle-sde"):
        gen = torch.Generator(device=x0.device).manual_seed(0)
        inv = invert(model, x0, steps=5, method=method, generator=gen, progress=False)
        edited = inv.x_t0 + 0.5
        assert torch.equal(reconstruct(model, inv, edited, mask=black, progress=False), x0)
        out = reconstruct(model, inv, edited, mask=half, progress=False)
        assert torch.equal(out[..., ~half], x0[..., ~half]) and not torch.allclose(out[..., half], x0[..., half])


def test_ddim_inversion_improves_with_steps():
    model = model_named("tiny-sd")
    x0 = clean_latent(model, torch.float64)

    def error(steps):
        inv = invert(model, x0, steps=steps, method="ode", progress=False)
        assert len(inv.trajectory) == steps + 1 and torch.equal(inv.x0, x0)
        return (reconstruct(model, inv, progress=False) - x0).abs().max().item()

    assert error(24) < error(4) / 2


def test_cycle_sde_with_another_backward_prompt_uses_the_inversions_noises():
    """Image-to-image: Eq. 8 noises under the source conditioning, backward pass under the target."""
    model = model_named("pixel-toy")
    x0 = clean_latent(model, torch.float64)
    inv = invert(model, x0, steps=10, prompt="source", guidance=2.0, generator=torch.Generator().manual_seed(0),
                 progress=False)
    noises = cycle_sde_noises(model.eps_model("source", 2.0), model.schedule, inv.trajectory, inv.grid)
    expected = denoise(model.eps_model("target", 3.0), model.schedule, inv.x_t0, inv.grid, eta=1.0,
                       noise=StoredNoise(noises))
    out = reconstruct(model, inv, prompt="target", guidance=3.0, progress=False)
    assert (out - expected).abs().max() <= 1e-12 and (out - x0).abs().max() > 1e-3

    mask = torch.zeros_like(x0, dtype=torch.bool)
    mask[..., :4] = True
    noises = cycle_noises(model, inv)  # once for two reconstructions: another target, a mask
    assert (reconstruct(model, inv, prompt="target", guidance=3.0, noises=noises, progress=False) - out).abs().max() \
        <= 1e-12
    masked = reconstruct(model, inv, prompt="target", guidance=3.0, mask=mask, progress=False)
    assert torch.equal(reconstruct(model, inv, prompt="target", guidance=3.0, mask=mask, noises=noises,
                                   progress=False), masked)
    assert torch.equal(masked[~mask], x0[~mask]) and (masked - x0).abs().max() > 1e-3


def test_cycle_noises_only_for_cycle_sde():
    model = model_named("pixel-toy")
    x0 = clean_latent(model, torch.float64)
    gen = torch.Generator().manual_seed(0)
    cycle = invert(model, x0, steps=3, generator=gen, progress=False)
    ode = invert(model, x0, steps=3, method="ode", progress=False)
    with pytest.raises(ValueError, match="inversion must be a Cycle-SDE inversion"):
        cycle_noises(model, ode)
    noises = cycle_noises(model, cycle)
    with pytest.raises(ValueError, match="noises are Cycle-SDE's"):
        reconstruct(model, ode, noises=noises, progress=False)
    with pytest.raises(ValueError, match="chain_batch"):
        reconstruct(model, cycle, noises=noises, chain_batch=2, progress=False)
    with pytest.raises(ValueError, match="one tensor per step"):
        reconstruct(model, cycle, noises=noises[:2], progress=False)


def test_bad_arguments_raise():
    model = model_named("pixel-toy")
    x0 = clean_latent(model, torch.float64)
    with pytest.raises(ValueError, match="method"):
        invert(model, x0, method="ddim")  # the sampler names are "ode", "sde", "cycle-sde"
    inv = invert(model, x0, steps=3, progress=False)
    assert isinstance(inv, Inversion)
    with pytest.raises(ValueError, match="shape"):
        reconstruct(model, inv, x0[..., :4], progress=False)
    with pytest.raises(ValueError, match="bool"):
        reconstruct(model, inv, mask=torch.ones(8, 8), progress=False)
    with pytest.raises(ValueError, match="broadcast"):
        reconstruct(model, inv, mask=torch.ones(3, 3, dtype=torch.bool), progress=False)


# ---- roundtrip_errors (notebook 05's sweep) ----------------------------------------------------------------
def test_roundtrip_errors_ode_first_order_cycle_sde_rounding():
    from sdelab.edit.roundtrip_errors import roundtrip_errors

    model = PixelToy()
    x0 = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    out = roundtrip_errors(model, x0, [10, 20, 40], t0=0.6, dtypes=["float64"], prompt="", progress=False)
    ode, cycle = out.curve("ode", "float64"), out.curve("cycle-sde", "float64")
    assert (cycle < 1e-10).all() and (ode > 1e-6).all()
    assert -1.4 < out.slope("ode", "float64") < -0.7  # DDIM's global error O(h)
    assert out.reconstructions["cycle-sde", "float64", 10].shape == x0.shape
    rows = out.table().splitlines()
    assert len(rows) == 3 and rows[0].split()[2:5] == ["10", "20", "40"]


@pytest.mark.parametrize("kwargs, match", [(dict(methods=["ddim"]), "methods"), (dict(dtypes=["float16"]), "dtypes"),
                                           (dict(steps=[20, 10]), "steps"), (dict(steps=[]), "steps")])
def test_roundtrip_errors_bad_arguments(kwargs, match):
    from sdelab.edit.roundtrip_errors import roundtrip_errors

    args = dict(steps=[2]) | kwargs
    with pytest.raises(ValueError, match=match):
        roundtrip_errors(PixelToy(), torch.zeros(1, 1, 8, 8, dtype=torch.float64), args.pop("steps"), progress=False,
                         **args)
