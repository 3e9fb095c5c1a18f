"""SDE-Drag and ODE-Drag on the digits model and the tiny SD: sub-steps, copy-paste, exactness, masks, LoRA,
bad input and the command line."""

import math

import numpy as np
import pytest
import torch
from conftest import DEVICE
from PIL import Image

from sdelab.__main__ import main
from sdelab.data.digits import digits_dataset
from sdelab.edit.drag import copy_paste, default_radius, drag_substeps, ode_drag, sde_drag
from sdelab.edit.inversion import roundtrip
from sdelab.models import load_digits_model, tiny_stable_diffusion
from sdelab.models.base import DiffusionModel, linear_ramp
from sdelab.models.images import model_image, resize_image, scale_points, working_size
from sdelab.models.lora import lora_layers
from sdelab.schedules import VPSchedule, time_grid

FAST = dict(steps=8, t0=0.4, progress=False)  # a short grid: the properties below hold on any grid


@pytest.fixture(scope="module")
def digits():
    return load_digits_model(device=DEVICE)


@pytest.fixture(scope="module")
def digit():
    return digits_dataset(split="test")[3]  # (1, 16, 16) in [0, 1]


@pytest.fixture(scope="module")
def tiny():
    return tiny_stable_diffusion(device=DEVICE)


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8))


def pts(*xy):
    return torch.tensor(xy, dtype=torch.int64).reshape(-1, 2)


# ---- sub-steps ---------------------------------------------------------------------------------------------
def test_a_short_drag_is_one_substep():
    steps = drag_substeps(pts(3, 3), pts(4, 4), step_size=2.0)  # |d| = 1.41 <= 2
    assert len(steps) == 1 and torch.equal(steps[0][0], pts(3, 3)) and torch.equal(steps[0][1], pts(4, 4))


@pytest.mark.parametrize("distance, m", [(2, 1), (3, 2), (4, 2), (5, 3), (6, 3), (7, 4), (20, 10), (21, 11)])
def test_substep_count_rounds_to_the_step_size(distance, m):
    # m = floor(D / 2), plus one when D / (m + 1) is closer to 2: 5 -> 2.5 vs 1.67 -> 3; 21 -> 2.1 vs 1.91 -> 11
    assert len(drag_substeps(pts(0, 0), pts(distance, 0), step_size=2.0)) == m


def test_substeps_truncate_toward_zero_and_end_at_the_target():
    steps = drag_substeps(pts(10, 10), pts(3, 15), step_size=2.0)  # d = (-7, 5), |d| = 8.6 -> m = 4
    assert len(steps) == 4
    expected = [(10 + math.trunc(i / 4 * -7), 10 + math.trunc(i / 4 * 5)) for i in range(5)]
    assert [tuple(s[0][0].tolist()) for s in steps] == expected[:-1]
    assert [tuple(s[1][0].tolist()) for s in steps] == expected[1:]
    for (_, prev_target), (source, _) in zip(steps, steps[1:], strict=False):
        assert torch.equal(prev_target, source)  # each sub-step starts where the last one ended


def test_multi_pair_drags_share_m_from_the_longest_pair():
    steps = drag_substeps(pts(0, 0, 10, 10), pts(8, 0, 11, 10), step_size=2.0)  # |d| = 8 and 1: m = 4
    assert len(steps) == 4
    assert [s[1][1].tolist() for s in steps] == [[10, 10], [10, 10], [10, 10], [11, 10]]  # trunc(i/4 * 1)


def test_default_radius_scales_with_the_latent():
    assert [default_radius(w) for w in (64, 96, 16, 8)] == [5, 8, 2, 2]


# ---- copy-paste --------------------------------------------------------------------------------------------
def test_copy_paste_writes_alpha_source_and_mixes_the_source_window():
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = copy_paste(x, pts(4, 5), pts(10, 9), radius=2, alpha=1.1, beta=0.3,
                     generator=torch.Generator().manual_seed(1))
    source = x[:, :, 3:7, 2:6]  # rows y-2..y+1, cols x-2..x+1: the window [p - r, p + r)
    assert torch.equal(out[:, :, 7:11, 8:12], 1.1 * source)
    noise = torch.randn(4, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(out[0, :, 3:7, 2:6], 0.3 * source[0] + math.sqrt(1 - 0.09) * noise)
    untouched = torch.ones(16, 16, dtype=torch.bool)
    untouched[3:7, 2:6] = untouched[7:11, 8:12] = False
    assert torch.equal(out[..., untouched], x[..., untouched])


def test_copy_paste_clips_both_windows_alike_at_the_border():
    x = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    out = copy_paste(x, pts(1, 6), pts(6, 1), radius=3, alpha=2.0, beta=1.0)  # beta = 1: the source is kept
    # x: below min(3, 1, 6) = 1, above min(3, 7 - 1, 7 - 6) = 1; y: below min(3, 6, 1) = 1, above min(3, 1, 6) = 1
    assert torch.equal(out[0, 0, 0:2, 5:7], 2.0 * x[0, 0, 5:7, 0:2])
    assert torch.equal(out[0, 0, 5:7, 0:2], x[0, 0, 5:7, 0:2])
    changed = (out != x)[0, 0]
    assert changed.sum() == 4 and changed[0:2, 5:7].all()


def test_copy_paste_later_pairs_see_earlier_pastes_and_per_image_points():
    x = torch.arange(64.0).reshape(1, 1, 8, 8).repeat(2, 1, 1, 1)
    sources = torch.stack([pts(2, 2, 5, 5), pts(1, 1, 1, 1)])  # (n, k, 2)
    targets = torch.stack([pts(5, 5, 6, 6), pts(1, 1, 1, 1)])
    out = copy_paste(x, sources, targets, radius=1, alpha=1.0, beta=1.0)
    assert out[0, 0, 6, 6] == x[0, 0, 2, 2]  # pair 2 copies what pair 1 pasted at (5, 5)
    assert torch.equal(out[1], x[1])  # image 2's identity drag


# ---- the editors on real models ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["digits", "tiny"])
def test_black_mask_returns_the_input_whatever_the_drag(name, digits, digit, tiny, photo):
    model, image = (digits, digit) if name == "digits" else (tiny, photo)
    side = 16 if name == "digits" else 64
    black = np.zeros((side, side), dtype=np.uint8)
    a = sde_drag(model, image, [(2, 3)], [(9, 9)], mask=black, frames=False, **FAST)
    b = sde_drag(model, image, [(12, 12)], [(4, 5)], mask=black, frames=False, **FAST)
    x0 = model.encode(model_image(image, model.image_channels).to(model.device),
                      generator=torch.Generator(device=model.device).manual_seed(1234))
    assert torch.equal(a.latent, x0) and torch.equal(b.latent, x0)


@pytest.mark.parametrize("method", [sde_drag, ode_drag])
def test_same_seed_same_output_and_another_seed_differs(method, digits, digit):
    a, b = (method(digits, digit, [(5, 6)], [(9, 6)], frames=False, **FAST) for _ in range(2))
    assert torch.equal(a.latent, b.latent) and a.unet_calls == b.unet_calls > 0
    c = method(digits, digit, [(5, 6)], [(9, 6)], seed=7, frames=False, **FAST)
    assert not torch.equal(a.latent, c.latent)


def test_identity_copy_paste_sde_drag_returns_the_input_exactly(digit):
    model = load_digits_model(dtype=torch.float64)  # float64: Cycle-SDE's exactness shows to ~1e-12
    res = sde_drag(model, digit, [(7, 7)], [(7, 7)], alpha=1.0, beta=1.0, **FAST)
    x0 = model.encode(digit[None])
    assert (res.latent - x0).abs().max() <= 1e-10
    assert len(res.frames) == 2 and res.image.size == (16, 16) and res.settings["m"] == 1


def test_identity_copy_paste_ode_drag_is_the_ddim_round_trip(tiny, photo):
    res = ode_drag(tiny, photo, [(20, 20)], [(20, 20)], prompt="a cat", alpha=1.0, beta=1.0, frames=False, **FAST)
    x0 = tiny.encode(model_image(photo, 3), generator=torch.Generator().manual_seed(1234))
    guidance = linear_ramp(time_grid(tiny.schedule, FAST["steps"], FAST["t0"]), 1.0, 3.0)
    expected = roundtrip(tiny, x0, FAST["steps"], FAST["t0"], "ode", prompt="a cat", guidance=guidance,
                         progress=False)
    assert torch.allclose(res.latent, expected, atol=1e-6)
    assert not torch.allclose(res.latent, x0, atol=1e-3)  # a random UNet's DDIM round trip is not exact


def test_sde_and_ode_drag_move_the_copy_window_on_the_digits(digits, digit):
    """A drag changes the image near the target and leaves far pixels close to the input (mask: a band)."""
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[2:12, 2:14] = 255
    for method in (sde_drag, ode_drag):
        res = method(digits, digit, [(6, 7)], [(10, 7)], mask=mask, frames=True, **FAST)
        out = torch.from_numpy(np.asarray(res.image, dtype=np.float32) / 255)
        assert torch.equal(out[mask == 0], torch.round(digit[0][mask == 0] * 255) / 255)  # the outside is kept
        assert (out - digit[0]).abs()[mask == 255].max() > 0.1  # and something moved inside
        assert len(res.frames) == 1 + res.settings["m"] and res.settings["radius_used"] == 2


def test_one_lora_step_changes_the_adapter_and_leaves_the_model_as_before(tiny, photo):
    before = {k: v.clone() for k, v in tiny.unet.state_dict().items()}
    res = sde_drag(tiny, photo, [(8, 8)], [(40, 40)], prompt="a cat", lora_steps=1, frames=False, **FAST)
    assert len(res.lora_losses) == 1 and res.settings["lora_steps"] == 1
    after = tiny.unet.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert not lora_layers(tiny.unet)
    without = sde_drag(tiny, photo, [(8, 8)], [(40, 40)], prompt="a cat", frames=False, **FAST)
    assert not torch.allclose(res.latent, without.latent)  # the adapter acted during the edit


def test_the_adapter_changes_with_one_training_step(tiny):
    from sdelab.models.lora import remove_lora, train_lora

    x0 = torch.randn(tiny.latent_shape(1), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    try:
        train_lora(tiny, x0, "a cat", steps=1, rank=4, generator=gen, progress=False)
        trained = {n: p.clone() for n, p in tiny.unet.named_parameters() if "lora_" in n}
    finally:
        remove_lora(tiny.unet)
    from sdelab.models.lora import add_lora

    torch.manual_seed(0)  # LoRA's gaussian init of A draws from the global RNG: compare B, which starts at 0
    add_lora(tiny.unet, 4)
    fresh = {n: p for n, p in tiny.unet.named_parameters() if "lora_B" in n}
    remove_lora(tiny.unet)
    assert fresh and all(torch.count_nonzero(p) == 0 for p in fresh.values())
    assert any(torch.count_nonzero(trained[n]) > 0 for n in fresh)


# ---- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, name", [
    (dict(source_points=[(20, 3)]), "source_points"),  # outside the 16x16 image: nothing is clamped
    (dict(target_points=[(3, -1)]), "target_points"),
    (dict(source_points=[(3, 3), (4, 4)]), "source_points and target_points"),
    (dict(source_points=[], target_points=[]), "source_points"),
    (dict(source_points=[(3, 3, 3)]), "source_points"),
    (dict(source_points=[("a", 3)]), "source_points"),
    (dict(mask=np.zeros((8, 8), dtype=np.uint8)), "mask"),
    (dict(image=torch.rand(1, 8, 8)), "images must have shape"),
    (dict(t0=0.0), "t0"), (dict(t0=1.5), "t0"),
    (dict(steps=0), "steps"),
    (dict(alpha=0.0), "alpha"),
    (dict(beta=1.5), "beta"), (dict(beta=-0.1), "beta"),
    (dict(radius=0), "radius"),
    (dict(step_size=0), "step_size"),
    (dict(lora_steps=-1), "lora_steps"),
    (dict(prompt="a three"), "prompt"),
])
def test_bad_input_raises_naming_the_argument_before_any_unet_call(kwargs, name, digits, digit):
    args = dict(image=digit, source_points=[(3, 3)], target_points=[(6, 6)]) | kwargs
    calls = []
    hook = digits.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(ValueError, match=name):
            sde_drag(digits, args.pop("image"), args.pop("source_points"), args.pop("target_points"), progress=False,
                     **args)
    finally:
        hook.remove()
    assert not calls


# ---- the command line ----------------------------------------------------------------------------------------
def test_cli_drags_a_digit_and_writes_image_and_gif(tmp_path, digit):
    path = tmp_path / "digit.png"
    Image.fromarray((digit[0].numpy() * 255).astype(np.uint8)).save(path)
    out, gif = tmp_path / "out.png", tmp_path / "out.gif"
    assert main(["drag", str(path), "--source", "5,7", "--target", "9,7", "--model", "digits", "--steps", "6",
                 "--t0", "0.4", "--out", str(out), "--gif", str(gif)]) == 0
    assert Image.open(out).size == (16, 16) and Image.open(gif).n_frames == 3  # input + m = 2 sub-steps


@pytest.mark.parametrize("args, words", [
    (["--source", "50,7", "--target", "9,7"], "source_points has the point (50, 7) outside"),
    (["--source", "5,7", "--source", "6,7", "--target", "9,7"], "pair up"),
    (["--source", "5,7", "--target", "9,7", "--prompt", "a three"], "prompt"),
])
def test_cli_exits_2_with_one_line_on_bad_input(args, words, tmp_path, digit, capsys):
    path = tmp_path / "digit.png"
    Image.fromarray((digit[0].numpy() * 255).astype(np.uint8)).save(path)
    assert main(["drag", str(path), *args, "--model", "digits", "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_cli_rejects_a_malformed_point_with_status_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["drag", "x.png", "--source", "5;7", "--target", "9,7", "--out", "o.png"])
    assert exit_.value.code == 2 and "--source" in capsys.readouterr().err


# ---- images of any size ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, longer, multiple, expected", [
    ((512, 512), 512, 8, (512, 512)), ((512, 768), 512, 8, (344, 512)), ((60, 80), 64, 8, (48, 64)),
    ((72, 48), 64, 8, (64, 40)), ((64, 48), 64, 8, (64, 48)), ((10, 400), 64, 8, (8, 64)),
    ((3000, 4000), 512, 8, (384, 512)), ((4032, 3024), 512, 8, (512, 384))])
def test_working_size_keeps_the_aspect_ratio_on_multiples(size, longer, multiple, expected):
    assert working_size(size, longer, multiple) == expected


def test_resize_image_is_pils_bicubic_in_float_and_points_scale_alike():
    image = torch.rand(1, 3, 48, 72, generator=torch.Generator().manual_seed(0))
    small = resize_image(image, (64, 40))
    plane = Image.fromarray(image[0, 1].numpy()).resize((40, 64), Image.Resampling.BICUBIC)
    expected = torch.tensor(np.array(plane)).clamp(0, 1)
    assert small.shape == (1, 3, 64, 40) and torch.allclose(small[0, 1], expected)
    assert resize_image(image, (48, 72)) is image  # at its own size nothing moves
    assert scale_points([(24, 36)], (48, 72), (64, 40)) == [(24 * 40 / 72, 36 * 64 / 48)]


class _ZeroNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # the model's device and dtype come from the weights

    def forward(self, x):
        return torch.zeros_like(x)


class ZeroEps(DiffusionModel):
    """A weightless RGB pixel model whose network predicts eps = 0 on SD's schedule: DDIM inversion and DDIM are then
    exact inverses, so ODE-Drag returns the bare copy-paste, and a test can see where a window went."""

    name, image_channels, pixels_per_latent = "zero-eps", 3, 1

    def __init__(self):
        self.schedule, self.unet = VPSchedule.stable_diffusion(), _ZeroNet()

    def encode(self, images, generator=None):
        return 2 * images - 1

    def decode(self, x0):
        return ((x0 + 1) / 2).clamp(0, 1)

    def network(self, x, t, condition):
        return self.unet(x)


def test_a_phone_photo_is_dragged_at_the_working_size_and_comes_back_at_its_own_with_the_points_in_place():
    H, W = 3000, 4000  # a 12-megapixel phone photo: dark, with one bright square at the source
    photo = np.zeros((H, W, 3), dtype=np.uint8)
    (sx, sy), (tx, ty) = (1000, 1500), (1400, 1100)  # 400 px right, 400 px up, in the photo's pixels
    photo[sy - 40: sy + 40, sx - 40: sx + 40] = 255
    res = ode_drag(ZeroEps(), Image.fromarray(photo), [(sx, sy)], [(tx, ty)], size=512, steps=4, t0=0.4, alpha=1.0,
                   beta=1.0, radius=6, step_size=100.0, progress=False)  # one sub-step: the source window copied
    assert res.image.size == (W, H) and res.settings["working_size"] == [384, 512]
    out = np.asarray(res.image, dtype=np.float64).mean(-1) / 255
    assert out[ty, tx] > 0.9 and out[sy, sx] > 0.9  # copied to the target, kept at the source (beta = 1)
    assert out[ty + 300, tx - 300] < 0.05 and out[1000, 3000] < 0.05  # the rest stays dark
    # the working-size points are the photo's scaled by 512 / 4000, floored to latent pixels (1 px per latent here)
    assert res.substeps[0][0].tolist() == [[128, 192]] and res.substeps[0][1].tolist() == [[179, 140]]


def test_without_a_size_the_image_is_dragged_as_it_is_and_must_fit_the_latent_grid(tiny):
    odd = Image.fromarray(np.zeros((60, 70, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="multiples of 8; pass size"):
        sde_drag(tiny, odd, [(8, 8)], [(20, 20)], prompt="a cat", **FAST)
    res = sde_drag(tiny, odd, [(8, 8)], [(20, 20)], prompt="a cat", size=64, frames=False, **FAST)
    assert res.image.size == (70, 60) and res.settings["working_size"] == [56, 64]


@pytest.mark.parametrize("size", [0, -8, 500, 12.5, True])
def test_a_bad_size_is_refused_naming_it(size, tiny, photo):
    with pytest.raises(ValueError, match="size must be a positive"):
        sde_drag(tiny, photo, [(8, 8)], [(20, 20)], prompt="a cat", size=size, **FAST)


def test_the_default_radius_follows_the_longer_side(tiny):
    portrait = Image.fromarray(np.zeros((512, 384, 3), dtype=np.uint8))  # fitted to 512: a 64 x 48 latent
    res = sde_drag(tiny, portrait, [(100, 100)], [(110, 100)], prompt="a cat", frames=False, **FAST)
    assert res.settings["latent_size"] == [64, 48] and res.settings["radius_used"] == 5  # the official 5, not 4


def test_progress_counts_unet_steps_with_rate_and_time_left(tiny, photo, capsys):
    for fn, per_step in ((sde_drag, 1), (ode_drag, 2)):
        res = fn(tiny, photo, [(8, 8)], [(40, 40)], prompt="a cat", frames=False, steps=8, t0=0.4, progress=True)
        total = res.settings["m"] * 8 * per_step
        err = capsys.readouterr().err
        assert res.unet_calls == total and "UNet steps: 100%" in err and f"{total}/{total}" in err and "step/s" in err


# ---- LoRA in half precision --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny16():
    return tiny_stable_diffusion(device=DEVICE, dtype=torch.float16)


def test_lora_trains_in_float16_with_finite_falling_losses_and_a_finite_changed_edit(tiny16, photo):
    from sdelab.models.lora import lora_finetuned
    from sdelab.models.training import eps_mse_loss

    gen = torch.Generator(device=DEVICE).manual_seed(0)
    x0 = tiny16.encode(photo, generator=gen)  # float32 latent of a float16 network
    probe = torch.Generator().manual_seed(1)
    t, noise = torch.randint(1000, (16,), generator=probe), torch.randn((16, *x0.shape[1:]), generator=probe)

    def held_out_loss():  # eps-MSE at fixed (t, noise), as the network runs in the edit
        with torch.no_grad(), torch.autocast(torch.device(DEVICE).type, dtype=torch.float16):
            return eps_mse_loss(tiny16, x0.expand(16, -1, -1, -1), t, noise.to(DEVICE), "a cat").item()

    before = held_out_loss()
    with lora_finetuned(tiny16, x0, "a cat", steps=40, lr=1e-3, generator=gen, progress=False) as losses:
        assert {p.dtype for n, p in tiny16.unet.named_parameters() if "lora_" in n} == {torch.float32}
        after = held_out_loss()
        adapted = sde_drag(tiny16, photo, [(8, 8)], [(40, 40)], prompt="a cat", frames=False, **FAST)
    assert np.isfinite(losses).all() and np.mean(losses[-13:]) < np.mean(losses[:13]) and after < before
    plain = sde_drag(tiny16, photo, [(8, 8)], [(40, 40)], prompt="a cat", frames=False, **FAST)
    assert torch.isfinite(adapted.latent).all() and not torch.allclose(adapted.latent, plain.latent)
    assert np.asarray(adapted.image).std() > 0  # not the all-black image of a NaN latent
    assert not lora_layers(tiny16.unet)  # the block took the adapter off again


def test_lora_steps_in_the_editor_train_in_float16_too(tiny16, photo):
    res = sde_drag(tiny16, photo, [(8, 8)], [(40, 40)], prompt="a cat", lora_steps=3, frames=False, **FAST)
    assert np.isfinite(res.lora_losses).all() and torch.isfinite(res.latent).all() and not lora_layers(tiny16.unet)


def test_a_non_finite_loss_stops_the_training_with_an_error_and_removes_the_adapter(tiny16):
    from sdelab.models.lora import train_lora

    x0 = torch.full(tiny16.latent_shape(1), float("nan"))
    with pytest.raises(FloatingPointError, match="LoRA training diverged at step 1: loss nan"):
        train_lora(tiny16, x0, "a cat", steps=3, progress=False)
    assert not lora_layers(tiny16.unet)


def test_one_adapter_serves_both_editors_and_the_scale_ramp_is_applied(tiny, photo):
    from sdelab.models.lora import lora_finetuned

    gen = torch.Generator(device=DEVICE).manual_seed(0)
    x0 = tiny.encode(photo, generator=gen)
    with lora_finetuned(tiny, x0, "a cat", steps=2, generator=gen, progress=False):
        for layer in lora_layers(tiny.unet):  # B starts at zero: give the adapter an effect
            torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.5)
        runs = {fn.__name__: fn(tiny, photo, [(8, 8)], [(40, 40)], prompt="a cat", frames=False, **FAST)
                for fn in (sde_drag, ode_drag)}
        assert lora_layers(tiny.unet)  # the editors leave the caller's adapter on
    for name, fn in (("sde_drag", sde_drag), ("ode_drag", ode_drag)):
        plain = fn(tiny, photo, [(8, 8)], [(40, 40)], prompt="a cat", frames=False, **FAST)
        assert not torch.allclose(runs[name].latent, plain.latent)


def test_cli_drags_a_phone_photo_at_its_working_size_and_writes_it_back_at_its_own(tmp_path, capsys):
    path, out = tmp_path / "phone.jpg", tmp_path / "out.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((3000, 4000, 3)) * 255).astype(np.uint8)).save(path, quality=80)
    assert main(["drag", str(path), "--source", "1000,1500", "--target", "1400,1100", "--model", "tiny",
                 "--size", "512", "--steps", "2", "--t0", "0.2", "--out", str(out)]) == 0
    assert Image.open(out).size == (4000, 3000)
    err = capsys.readouterr().err
    assert "at 512 x 384 (input 4000 x 3000)" in err and "UNet steps: 100%" in err


def test_cli_out_of_memory_ends_with_one_line_saying_what_to_lower(tmp_path, digit, capsys, monkeypatch):
    import sdelab.edit.drag as drag_module

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(drag_module, "drag", out_of_memory)
    path = tmp_path / "digit.png"
    Image.fromarray((digit[0].numpy() * 255).astype(np.uint8)).save(path)
    assert main(["drag", str(path), "--source", "5,7", "--target", "9,7", "--model", "digits", "--gif", "f.gif",
                 "--out", str(tmp_path / "o.png")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "ran out of memory at --size 16: lower --size" in line and "drop --gif" in line


def test_drag_cost_counts_the_unet_calls_the_drag_makes(tiny, photo):
    from sdelab.edit.drag import DragSettings, drag_cost

    for fn, name in ((sde_drag, "cycle-sde"), (ode_drag, "ode")):
        settings = DragSettings(sampler=name, steps=8, t0=0.4)
        cost = drag_cost(tiny, (64, 64), [(8, 8)], [(40, 40)], "a cat", settings)
        res = fn(tiny, photo, [(8, 8)], [(40, 40)], prompt="a cat", frames=False, **FAST)
        assert (cost["substeps"], cost["unet_calls"]) == (res.settings["m"], res.unet_calls)
        per_call = cost["seconds_per_call"]
        assert per_call > 0 and cost["seconds"] == pytest.approx(res.unet_calls * per_call)


def test_paste_each_and_stack_substeps_batch_images_with_their_own_drags():
    from sdelab.edit.drag import paste_each, paste_only, stack_substeps

    x0 = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    per_image = [drag_substeps(pts(5, 5), pts(9, 5)), drag_substeps(pts(4, 8), pts(4, 12)),
                 drag_substeps(pts(8, 8), pts(9, 9))]
    gen, ref = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    together = paste_each(x0, per_image, [2, 3, 2], generator=gen)
    one_by_one = torch.cat([paste_only(x0[i: i + 1], s, r, generator=ref) for i, (s, r) in
                            enumerate(zip(per_image, [2, 3, 2], strict=True))])
    assert torch.equal(together, one_by_one)
    stacked = stack_substeps(per_image, [0, 1])  # two sub-steps each
    assert len(stacked) == 2 and stacked[0][0].shape == (2, 1, 2)
    assert torch.equal(stacked[1][1][1], per_image[1][1][1])
