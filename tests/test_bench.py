"""DragBench data and metrics: both loaders on the fixtures, every malformed case reported and skipped, the
restricted unpickler, the resizing to a model's size, and the metrics on cases with known answers."""

import json
import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE
from PIL import Image
from skimage.metrics import structural_similarity

from sdelab.bench.data import load_dragbench, safe_unpickle
from sdelab.bench.examples import D_SAMPLES, S_SAMPLES, write_examples
from sdelab.bench.metrics import (
    ImageFidelity,
    latent_features,
    match_points,
    mean_distance,
    point_distances,
    psnr_outside,
    ssim_outside,
)
from sdelab.models import tiny_stable_diffusion

FIXTURES = Path(__file__).parent / "fixtures"
S_ROOT, D_ROOT = FIXTURES / "dragbench_s", FIXTURES / "dragbench_d"


@pytest.fixture(scope="module")
def tiny():
    return tiny_stable_diffusion(device=DEVICE)


# ---- the loaders on the fixtures -------------------------------------------------------------------------------
def test_dragbench_s_fixture_loads_as_written():
    bench = load_dragbench(S_ROOT)
    assert bench.layout == "dragbench-s" and bench.skipped == []
    assert [s.id for s in bench.samples] == sorted(S_SAMPLES)
    for sample in bench.samples:
        picture, ellipse, sources, targets, prompt = S_SAMPLES[sample.id]
        with Image.open(sample.image_path) as im:
            assert sample.size == im.size[::-1]
        assert sample.sources == [tuple(map(float, p)) for p in sources]
        assert sample.targets == [tuple(map(float, p)) for p in targets]
        assert sample.prompt == prompt and sample.benchmark == "dragbench-s"
        if ellipse is None:
            assert sample.mask is None  # mask.png is optional: the whole image is editable
        else:
            with Image.open(sample.image_path.parent / "mask.png") as m:
                assert np.array_equal(sample.mask, np.asarray(m) == 255)
            assert 0 < sample.mask.mean() < 1
    assert len({s.size for s in bench.samples}) == 3  # square, landscape and portrait
    assert bench.samples[0].image().mode == "RGB"


def test_dragbench_d_fixture_loads_with_alternating_points_and_nonzero_masks():
    bench = load_dragbench(D_ROOT)
    assert bench.layout == "dragbench-d" and bench.skipped == []
    assert [s.id for s in bench.samples] == sorted(D_SAMPLES)
    for sample in bench.samples:
        picture, (left, top, right, bottom), points, prompt = D_SAMPLES[sample.id]
        assert sample.sources == [tuple(map(float, p)) for p in points[0::2]]
        assert sample.targets == [tuple(map(float, p)) for p in points[1::2]]
        expected = np.zeros(sample.size, dtype=bool)
        expected[top:bottom, left:right] = True  # stored as 0 / 1: any non-zero value is editable
        assert np.array_equal(sample.mask, expected) and sample.prompt == prompt
    camera = next(s for s in bench.samples if "camera" in s.id)
    with Image.open(camera.image_path) as im:
        assert im.mode == "L"
    assert camera.image().mode == "RGB"  # grayscale replicated


def test_the_committed_fixtures_are_what_write_examples_makes(tmp_path):
    for made, committed in zip(write_examples(tmp_path), (S_ROOT, D_ROOT), strict=True):
        a, b = load_dragbench(made), load_dragbench(committed)
        assert [s.id for s in a.samples] == [s.id for s in b.samples]
        for x, y in zip(a.samples, b.samples, strict=True):
            assert (x.size, x.sources, x.targets, x.prompt) == (y.size, y.sources, y.targets, y.prompt)
            assert (x.mask is None and y.mask is None) or np.array_equal(x.mask, y.mask)
            pixels = np.abs(np.asarray(x.image(), float) - np.asarray(y.image(), float))
            assert pixels.max() <= 2  # the same pictures (resampling may differ by a level across Pillow versions)


def test_layout_detection_refuses_nothing_and_mixtures(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        load_dragbench(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="holds no DragBench sample"):
        load_dragbench(tmp_path)
    shutil.copytree(S_ROOT, tmp_path / "s")
    shutil.copytree(D_ROOT, tmp_path / "d")
    with pytest.raises(ValueError, match="mixes DragBench-S"):
        load_dragbench(tmp_path)
    assert len(load_dragbench(tmp_path, layout="dragbench-d").samples) == 3
    with pytest.raises(ValueError, match="layout must be one of"):
        load_dragbench(tmp_path, layout="dragbench")


# ---- malformed samples: reported by name with the reason, skipped, never fatal ----------------------------------
def _meta(folder: Path) -> dict:
    return safe_unpickle((folder / "meta_data.pkl").read_bytes())


def _pickle(folder: Path, meta: dict) -> None:
    (folder / "meta_data.pkl").write_bytes(pickle.dumps(meta))


def _prompt(folder: Path, **changes) -> None:
    meta = json.loads((folder / "prompt.json").read_text()) | changes
    (folder / "prompt.json").write_text(json.dumps(meta))


S_BREAKS = {
    "missing prompt.json": (lambda f: (f / "prompt.json").unlink(), "missing prompt.json"),
    "missing image": (lambda f: (f / "origin_image.png").unlink(), "missing origin_image.png"),
    "unreadable image": (lambda f: (f / "origin_image.png").write_bytes(b"\x89PNG not really"), "unreadable origin"),
    "unreadable JSON": (lambda f: (f / "prompt.json").write_text('{"source": [[1, 2]'), "unreadable prompt.json"),
    "JSON not an object": (lambda f: (f / "prompt.json").write_text("[1, 2]"), "must be an object"),
    "unpaired points": (lambda f: _prompt(f, target=[[1, 1], [2, 2], [3, 3]]), "source points but 3 target"),
    "point outside": (lambda f: _prompt(f, source=[[64, 10], [40, 30]]), r"outside the 64x64 image"),
    "negative point": (lambda f: _prompt(f, target=[[-1, 10], [40, 30]]), r"outside the 64x64 image"),
    "not points": (lambda f: _prompt(f, source="30,20"), "list of \\(x, y\\) pairs"),
    "mask of another size": (lambda f: Image.new("L", (32, 32), 255).save(f / "mask.png"), "mask.png has size"),
    "no prompt": (lambda f: _prompt(f, prompt=None), "prompt must be a string"),
}
D_BREAKS = {
    "missing pickle": (lambda f: (f / "meta_data.pkl").unlink(), "missing meta_data.pkl"),
    "missing image": (lambda f: (f / "original_image.png").unlink(), "missing original_image.png"),
    "odd number of points": (lambda f: _pickle(f, _meta(f) | {"points": [[30, 24], [38, 24], [1, 1]]}),
                             "an even number, got 3"),
    "point outside": (lambda f: _pickle(f, _meta(f) | {"points": [[30, 24], [30, 64]]}), "outside the 64x64"),
    "mask of another size": (lambda f: _pickle(f, _meta(f) | {"mask": np.ones((64, 48), np.uint8)}),
                             r"mask has size \(height, width\) = \(64, 48\)"),
    "mask not an array": (lambda f: _pickle(f, _meta(f) | {"mask": [[1, 0]]}), "mask must be an \\(H, W\\)"),
    "unreadable pickle": (lambda f: (f / "meta_data.pkl").write_bytes(b"\x80\x04garbage"), "unreadable meta_data"),
    "truncated pickle": (lambda f: (f / "meta_data.pkl").write_bytes(pickle.dumps(_meta(f))[:40]),
                         "unreadable meta_data"),
    "not a dict": (lambda f: _pickle(f, {"prompt": "x"}), 'a dict with "prompt", "points" and "mask"'),
}


@pytest.mark.parametrize("case", S_BREAKS)
def test_malformed_dragbench_s_sample_is_reported_and_skipped(tmp_path, case):
    shutil.copytree(S_ROOT, tmp_path / "s")
    break_it, reason = S_BREAKS[case]
    break_it(tmp_path / "s" / "space" / "astronaut_face")
    bench = load_dragbench(tmp_path / "s")
    assert [s.id for s in bench.samples] == ["animals/chelsea_eye", "objects/coffee_cup"]
    [(sid, message)] = bench.skipped
    assert sid == "space/astronaut_face"
    assert re.search(reason, message), message


@pytest.mark.parametrize("case", D_BREAKS)
def test_malformed_dragbench_d_sample_is_reported_and_skipped(tmp_path, case):
    shutil.copytree(D_ROOT, tmp_path / "d")
    break_it, reason = D_BREAKS[case]
    break_it(tmp_path / "d" / "human_upper_body" / "camera_man")
    bench = load_dragbench(tmp_path / "d")
    assert [s.id for s in bench.samples] == ["animals/cat_eyes", "other_objects/rocket"]
    [(sid, message)] = bench.skipped
    assert sid == "human_upper_body/camera_man"
    assert re.search(reason, message), message


class Exploit:
    """A pickle payload that would run a shell command when unpickled by pickle.load."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_builds_anything_else_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    shutil.copytree(D_ROOT, tmp_path / "d")
    folder = tmp_path / "d" / "animals" / "cat_eyes"
    _pickle(folder, _meta(folder) | {"prompt": Exploit(marker)})
    bench = load_dragbench(tmp_path / "d")
    [(sid, message)] = bench.skipped
    assert sid == "animals/cat_eyes" and re.search(r"refused to build \w+\.system", message)
    assert not marker.exists()
    assert len(bench.samples) == 2


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_safe_unpickle_builds_plain_python_and_numpy(protocol):
    meta = {"prompt": "a cat", "points": [(1, 2), [3.5, 4]], "mask": np.eye(3, dtype=np.uint8),
            "flags": np.array([True, False]), "scale": np.float32(0.5), "n": np.int64(7), "ids": {1, 2},
            "frozen": frozenset({3}), "blob": b"\x00\xff", "z": 1 + 2j, "none": None}
    back = safe_unpickle(pickle.dumps(meta, protocol=protocol))
    assert back.keys() == meta.keys() and back["points"] == meta["points"] and back["ids"] == {1, 2}
    assert np.array_equal(back["mask"], meta["mask"]) and back["mask"].dtype == np.uint8
    assert back["scale"] == np.float32(0.5) and back["blob"] == b"\x00\xff" and back["z"] == 1 + 2j


@pytest.mark.parametrize("payload", [os.system, eval, getattr, np.load, shutil.rmtree, Path])
def test_safe_unpickle_refuses_other_callables(payload):
    class Payload:
        def __reduce__(self):
            return payload, ("x",)

    with pytest.raises(pickle.UnpicklingError, match="refused to build"):
        safe_unpickle(pickle.dumps(Payload()))


# ---- metrics: Mean Distance ---------------------------------------------------------------------------------------
def test_matching_on_deterministic_features_finds_a_known_shift():
    # random features on a 6 x 8 grid, upsampled x8 to a 48 x 64 image; the output's features are the source's
    # shifted by (2 rows, -3 cols) cells = (16, -24) pixels; interior handles must land exactly there
    gen = torch.Generator().manual_seed(0)
    src = torch.randn(1, 16, 6, 8, generator=gen)
    out = torch.roll(src, (2, -3), (-2, -1))
    handles = [(36, 8), (44, 12), (40, 10)]  # (x, y) pixels, away from the wrapped and clamped borders
    matched = match_points(src, out, handles, (48, 64))
    assert matched == [(x - 24, y + 16) for x, y in handles]
    targets = [(x - 24 + 3, y + 16 - 4) for x, y in handles]  # 5 px from where each handle went
    assert point_distances(matched, targets) == pytest.approx([5.0] * 3)
    assert match_points(src, src, handles, (48, 64)) == handles  # no edit: every handle stays


def test_matching_is_insensitive_to_feature_scale_and_checks_its_points():
    gen = torch.Generator().manual_seed(1)
    src = torch.randn(1, 8, 4, 4, generator=gen)
    scaled = src * torch.rand(1, 1, 4, 4, generator=gen).add(0.5)  # cosine: per-position scale does not matter
    assert match_points(src, scaled, [(1, 1), (2, 3)], (4, 4)) == [(1, 1), (2, 3)]
    with pytest.raises(ValueError, match=r"handles has the point \(4, 0\) outside the 4x4 image"):
        match_points(src, src, [(4, 0)], (4, 4))


def test_tiny_unet_features_localise_a_translated_latent(tiny):
    # the tiny random UNet on an SD-like latent (std 1, smooth) shifted by (2, -4) latent pixels, circularly:
    # handles matched with DIFT features land on the shifted position (an unshifted match would be 4.5 px off)
    handles = [(x, y) for x in (7, 9, 12) for y in (3, 6, 10)]
    errors = []
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        x0 = F.avg_pool2d(F.interpolate(torch.randn(1, 4, 16, 16, generator=gen), scale_factor=2, mode="bilinear"), 2)
        x0 = (x0 / x0.std()).to(DEVICE)
        feats = [latent_features(tiny, x, "", generator=torch.Generator(DEVICE).manual_seed(0))
                 for x in (x0, torch.roll(x0, (2, -4), (-2, -1)))]
        errors += point_distances(match_points(*feats, handles, (16, 16)), [(x - 4, y + 2) for x, y in handles])
    assert np.median(errors) == 0 and np.mean(errors) < 1.0, errors


def test_mean_distance_of_an_unedited_output_is_the_drag_length(tiny):
    # the same noise for both images: an output equal to its input matches every handle to itself
    [sample] = [s for s in load_dragbench(D_ROOT).samples if s.id == "animals/cat_eyes"]
    image = sample.image()
    d = mean_distance(tiny, image, image.copy(), sample.sources, sample.targets, sample.prompt, seed=3)
    assert d == pytest.approx([np.hypot(4, 4), np.hypot(4, 4)])
    with pytest.raises(ValueError, match="one size"):
        mean_distance(tiny, image, image.resize((32, 24)), sample.sources, sample.targets)
    with pytest.raises(ValueError, match="up_block must lie in"):
        mean_distance(tiny, image, image, sample.sources, sample.targets, up_block=5)


# ---- metrics: outside the mask and LPIPS -------------------------------------------------------------------------
@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    mask = np.zeros((40, 48), dtype=bool)
    mask[10:30, 12:36] = True
    return source, mask


def test_psnr_outside_the_mask_ignores_the_editable_region(pair):
    source, mask = pair
    edited = source.copy()
    edited[mask] = 255 - edited[mask]  # change only what may change
    assert psnr_outside(Image.fromarray(source), Image.fromarray(edited), mask) == float("inf")
    shifted = edited.astype(int)
    shifted[~mask] = np.clip(shifted[~mask] + 5, 0, 255)
    outside = source[~mask].astype(float)
    expected = 10 * np.log10(255**2 / ((np.clip(outside + 5, 0, 255) - outside) ** 2).mean())
    assert psnr_outside(Image.fromarray(source), Image.fromarray(shifted.astype(np.uint8)), mask) == pytest.approx(
        expected)
    assert psnr_outside(Image.fromarray(source), Image.fromarray(edited), None) is None  # no mask: nothing outside
    assert psnr_outside(Image.fromarray(source), Image.fromarray(edited), np.ones_like(mask)) is None


def test_ssim_outside_the_mask_is_the_mean_of_scikit_images_map_there(pair):
    source, mask = pair
    rng = np.random.default_rng(1)
    noisy = np.clip(source + rng.normal(0, 20, source.shape), 0, 255).astype(np.uint8)
    a, b = Image.fromarray(source), Image.fromarray(noisy)
    whole = structural_similarity(source.astype(float), noisy.astype(float), channel_axis=2, data_range=255)
    assert ssim_outside(a, b, np.zeros_like(mask)) == pytest.approx(whole)  # nothing editable: the plain SSIM
    assert ssim_outside(a, a, mask) == pytest.approx(1.0)
    inside_changed = source.copy()
    inside_changed[mask] = 0
    # SSIM's 7 x 7 window lets pixels next to the mask see the change inside it: the mean stays below 1
    assert 0.5 < ssim_outside(a, Image.fromarray(inside_changed), mask) < 1.0
    with pytest.raises(ValueError, match="mask must have the images' size"):
        ssim_outside(a, b, mask[:, :40])


def test_image_fidelity_is_empty_with_a_reason_without_lpips():
    fidelity = ImageFidelity()
    image = Image.new("RGB", (32, 32), "white")
    if fidelity.net is None:
        assert "lpips" in fidelity.reason and fidelity(image, image) is None
    else:  # lpips and its AlexNet weights are installed: identical images have LPIPS 0
        assert fidelity.reason is None and fidelity(image, image) == pytest.approx(1.0, abs=1e-6)
