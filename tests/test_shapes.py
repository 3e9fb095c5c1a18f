"""The shapes world: rendering, the judge (parse) on clean scenes and on the artefacts it must reject, drag cases."""

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
from scipy import ndimage

from sdelab.data.shapes import (
    CHANNELS,
    KINDS,
    PALETTE,
    PROMPTS,
    SIZE,
    SIZE_RANGE,
    Scene,
    Shape,
    band_masks,
    coverage,
    drag_cases,
    moved,
    parse,
    parse_batch,
    placement_problem,
    random_scene,
    random_scene_batch,
    random_scenes,
    render,
    render_batch,
    render_scene_batch,
    train_batches,
)
from sdelab.edit.drag import default_radius, drag_substeps, paste_only


@pytest.fixture(scope="module")
def scenes():
    return random_scenes(1000, seed=1)


@pytest.fixture(scope="module")
def parses(scenes):
    return parse_batch(render_batch(scenes))


@pytest.fixture(scope="module")
def cases():
    return drag_cases(200, seed=5)


def by_colour(scene: Scene) -> dict[str, Shape]:
    return {s.colour: s for s in scene.shapes}


def valid_rate(images) -> float:
    return float(np.mean([p.valid for p in parse_batch(images)]))


# ---- the world -------------------------------------------------------------------------------------------------
def test_render_is_rgb_in_unit_range_with_exact_areas():
    scene = Scene((Shape("disc", "red", 10.3, 12.7, 6.0), Shape("triangle", "cyan", 22.0, 20.5, 7.5)))
    image = render(scene)
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    for shape in scene.shapes:  # size is the square root of the area: the coverage sums to size^2
        assert coverage(shape, 32).sum() == pytest.approx(shape.size**2, rel=0.02)
    big = render(scene, 128)  # the same scene at 4x: the same picture, finer
    assert big.shape == (3, 128, 128)
    assert torch.nn.functional.avg_pool2d(big[None], 4)[0].sub(image).abs().max() < 0.05
    assert render_batch([scene, scene]).shape == (2, 3, 32, 32)


def test_random_scenes_follow_the_rules_and_are_seeded(scenes):
    counts = np.bincount([len(s.shapes) for s in scenes], minlength=4)
    assert counts[0] == 0 and min(counts[1:]) > 250  # 1-3 objects, about uniform
    kinds = {s.kind for scene in scenes for s in scene.shapes}
    assert kinds == {"disc", "square", "triangle"}
    sizes = [s.size for scene in scenes for s in scene.shapes]
    assert SIZE_RANGE[0] <= min(sizes) and max(sizes) <= SIZE_RANGE[1]
    assert random_scenes(20, seed=1) == scenes[:20] and random_scenes(20, seed=2) != scenes[:20]
    assert random_scene(7) == random_scene(np.random.default_rng(7))
    assert all(len(random_scene(s, n_objects=3).shapes) == 3 for s in range(20))


def test_scenes_are_json_serialisable():
    scene = random_scene(3)
    assert Scene.from_dict(json.loads(json.dumps(asdict(scene)))) == scene


def test_moved_moves_one_object_and_keeps_the_others():
    scene = Scene((Shape("square", "blue", 8.0, 8.0, 6.0), Shape("disc", "yellow", 22.0, 22.0, 6.0),
                   Shape("triangle", "white", 8.0, 23.0, 6.0)))
    after = moved(scene, 0, 4.5, -1.0)
    assert after.shapes[0] == Shape("square", "blue", 12.5, 7.0, 6.0)
    assert after.shapes[1:] == scene.shapes[1:]
    with pytest.raises(ValueError, match=r"i must lie in \[0, 2\]"):
        moved(scene, 3, 1, 1)
    with pytest.raises(ValueError, match="dx, dy .* closer than"):
        moved(scene, 0, 12.0, 12.0)  # onto the yellow disc
    with pytest.raises(ValueError, match="dx, dy .* inside the image"):
        moved(scene, 0, -5.0, 0.0)


@pytest.mark.parametrize("make, match", [
    (lambda: Shape("disc", "red", 5.0, 5.0, -1.0), "size must be > 0"),
    (lambda: Shape("star", "red", 5.0, 5.0, 6.0), r"kind must be one of \('disc', 'square', 'triangle'\)"),
    (lambda: Shape("disc", "purple", 5.0, 5.0, 6.0), "colour must be one of"),
    (lambda: Scene((Shape("disc", "red", 8, 8, 6), Shape("square", "red", 22, 22, 6))), "distinct colours"),
    (lambda: Scene((), size=4), "size must be an integer >= 8"),
    (lambda: random_scene(0, n_objects=4), r"n_objects must lie in \[1, 3\]"),
    (lambda: random_scenes(-1), "n must be >= 0"),
    (lambda: render(random_scene(0), 0), "size must be a positive integer"),
    (lambda: parse(torch.zeros(1, 32, 32)), r"image must have shape \(3, S, S\)"),
    (lambda: drag_cases(0), "n must be >= 1"),
])
def test_bad_input_raises_naming_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---- the judge on clean scenes ---------------------------------------------------------------------------------
def test_parse_recovers_kinds_colours_and_centres(scenes, parses):
    for scene, p in zip(scenes, parses, strict=True):
        truth, found = by_colour(scene), by_colour(p.scene)
        assert truth.keys() == found.keys()
        for colour, s in truth.items():
            assert found[colour].kind == s.kind
            assert math.hypot(found[colour].x - s.x, found[colour].y - s.y) <= 0.3
            assert abs(found[colour].size - s.size) <= 0.2


def test_real_scenes_are_valid(parses):
    assert np.mean([p.valid for p in parses]) >= 0.99
    assert all(p.reason == "" for p in parses if p.valid)


def test_the_data_level_noise_is_tolerated(scenes):
    # Stable Diffusion's schedule keeps sigma = 0.029 at timestep 0, i.e. 0.0146 in [0, 1] image units
    images = render_batch(scenes[:300])
    noisy = images + 0.0146 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    assert valid_rate(noisy) >= 0.99


# ---- the judge on artefacts ------------------------------------------------------------------------------------
def ghost(cases, k: int, opacity: float = 0.5) -> np.ndarray:
    """The ground truth with the dragged object left at ``opacity`` at its old place."""
    shape = cases.scenes[k].shapes[int(cases.index[k])]
    truth = cases.truth[k].numpy().astype(np.float64)
    a = opacity * coverage(shape, 32)
    return truth + a * (np.array(PALETTE[shape.colour])[:, None, None] - truth)


def half(cases, k: int, rng: np.random.Generator) -> np.ndarray:
    """The input with its dragged object cut by a straight line through its centre, one side erased."""
    scene, i = cases.scenes[k], int(cases.index[k])
    shape, angle = scene.shapes[i], rng.uniform(0, 2 * math.pi)
    rest = Scene(scene.shapes[:i] + scene.shapes[i + 1:], scene.size)
    yy, xx = np.mgrid[0:32, 0:32]
    side = (xx - shape.x) * math.cos(angle) + (yy - shape.y) * math.sin(angle) > 0
    return np.where(side, render(rest).numpy(), cases.images[k].numpy())


def test_ghosts_half_objects_blurs_and_blends_are_invalid(cases):
    n, rng = len(cases.images), np.random.default_rng(0)
    assert valid_rate(cases.images) == valid_rate(cases.truth) == 1.0
    assert valid_rate([ghost(cases, k) for k in range(n)]) == 0.0
    assert valid_rate([half(cases, k, rng) for k in range(n)]) == 0.0
    assert valid_rate(ndimage.gaussian_filter(cases.images.numpy(), (0, 0, 1, 1), mode="nearest")) == 0.0
    others = render_batch(random_scenes(n, seed=99))
    assert valid_rate(0.5 * cases.images + 0.5 * others) == 0.0


def test_parse_reports_where_the_image_is_not_explained(cases):
    p = parse(ghost(cases, 0))
    assert not p.valid and p.residual >= 0.4 and "re-render" in p.reason  # half a colour step (CONTRAST units)
    blank = parse(torch.full((3, 32, 32), 0.5))
    assert not blank.valid and blank.reason == "no object" and blank.scene.shapes == () and blank.residual == 0


@pytest.mark.parametrize("radius", ["default", "covering"])
@pytest.mark.parametrize("beta", [0.3, 1.0])
def test_the_bare_copy_paste_of_a_drag_is_invalid(cases, radius, beta):
    # the pixel-space editors' copy-paste on x0 = 2 image - 1, sub-step by sub-step, alpha 1.1, no diffusion;
    # beta = 0.3 leaves noise at the source, beta = 1 (noise-free) leaves the source as it was: a duplicate
    gen = torch.Generator().manual_seed(0)
    outputs = []
    for k in range(len(cases.images)):
        shape = cases.scenes[k].shapes[int(cases.index[k])]
        r = default_radius(32) if radius == "default" else math.ceil(shape.radius) + 1
        substeps = drag_substeps(cases.source[k][None], cases.target[k][None], 2.0)
        x = paste_only(2 * cases.images[k: k + 1] - 1, substeps, r, 1.1, beta, gen)
        outputs.append(((x[0] + 1) / 2).clamp(0, 1))
    assert valid_rate(torch.stack(outputs)) <= 0.01


# ---- drag cases --------------------------------------------------------------------------------------------------
def test_drag_cases_have_exact_ground_truth(cases):
    n = len(cases.images)
    assert cases.images.shape == cases.truth.shape == (n, 3, 32, 32)
    for k in range(n):
        scene, truth, i = cases.scenes[k], cases.truth_scenes[k], int(cases.index[k])
        (sx, sy), (tx, ty) = cases.source[k].tolist(), cases.target[k].tolist()
        assert (scene.shapes[i].x, scene.shapes[i].y) == (sx, sy)  # dragged from its centre
        assert truth == moved(scene, i, tx - sx, ty - sy)
        assert 3 <= math.hypot(tx - sx, ty - sy) <= 8
        assert 0 <= min(sx, sy, tx, ty) and max(sx, sy, tx, ty) < 32
    assert torch.equal(cases.images, render_batch(cases.scenes))
    assert torch.equal(cases.truth, render_batch(cases.truth_scenes))
    for k, p in enumerate(parse_batch(cases.truth)):  # valid, and the judge finds the object at the target
        found = by_colour(p.scene)[cases.truth_scenes[k].shapes[int(cases.index[k])].colour]
        assert p.valid and math.dist((found.x, found.y), cases.target[k].tolist()) <= 0.1
    assert json.loads(json.dumps(cases.to_dict()))["index"] == cases.index.tolist()


def test_drag_cases_are_seeded():
    a, b, c = drag_cases(5, seed=3), drag_cases(5, seed=3), drag_cases(5, seed=4)
    assert a.scenes == b.scenes and torch.equal(a.target, b.target) and torch.equal(a.images, b.images)
    assert a.scenes != c.scenes


def test_band_masks_cover_the_drag(cases):
    bands = band_masks(cases, 2)
    assert bands.shape == (len(cases.images), 1, 32, 32) and bands.dtype == torch.bool
    for k, ((sx, sy), (tx, ty)) in enumerate(zip(cases.source.tolist(), cases.target.tolist(), strict=True)):
        assert bands[k, 0, sy, sx] and bands[k, 0, ty, tx]
    assert band_masks(cases, 4).sum() > bands.sum()
    per_case = torch.tensor([2.0, 4.0] * (len(cases.images) // 2) + [2.0] * (len(cases.images) % 2))
    for k, mask in enumerate(band_masks(cases, per_case)):  # one radius per case: each as if given alone
        assert torch.equal(mask, band_masks(cases, float(per_case[k]))[k])
    with pytest.raises(ValueError, match="radius must be >= 0"):
        band_masks(cases, -1)
    with pytest.raises(ValueError, match="one per case"):
        band_masks(cases, per_case[:-1])


# ---- training batches ------------------------------------------------------------------------------------------
def test_training_batches_are_scenes_of_the_world_rendered_as_render_does():
    batch = random_scene_batch(64, torch.Generator().manual_seed(3))
    scenes = batch.scenes()
    assert all(not placement_problem(s) for s in scenes)
    assert {len(s.shapes) for s in scenes} == {1, 2, 3}
    assert render_scene_batch(batch).equal(render_batch(scenes))  # the same samples, the same compositing


def test_training_batches_come_from_the_generator_only():
    draw = train_batches()
    state = torch.random.get_rng_state()
    images, counts = draw(16, torch.Generator().manual_seed(0))
    assert torch.random.get_rng_state().equal(state)  # the global RNG is left alone
    assert images.shape == (16, CHANNELS, SIZE, SIZE) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert counts.shape == (16,) and counts.dtype == torch.int64 and 1 <= counts.min() and counts.max() <= 3
    again, _ = draw(16, torch.Generator().manual_seed(0))
    other, _ = draw(16, torch.Generator().manual_seed(1))
    assert images.equal(again) and not images.equal(other)
    assert PROMPTS == ()  # an unconditional model


def test_training_batches_follow_the_worlds_distribution():
    batch = random_scene_batch(3000, torch.Generator().manual_seed(4))
    reference = random_scenes(3000, seed=4)
    kinds = np.bincount(batch.kind[torch.arange(3) < batch.count[:, None]].numpy(), minlength=3)
    kinds_ref = np.bincount([KINDS.index(s.kind) for scene in reference for s in scene.shapes], minlength=3)
    counts = np.bincount(batch.count.numpy(), minlength=4)[1:]
    counts_ref = np.bincount([len(s.shapes) for s in reference], minlength=4)[1:]
    # about 3000 x 2 objects: sampling noise of a fraction is ~0.006-0.009, so 0.03 fails a wrong law only
    assert np.abs(kinds / kinds.sum() - kinds_ref / kinds_ref.sum()).max() < 0.03
    assert np.abs(counts / counts.sum() - counts_ref / counts_ref.sum()).max() < 0.03


def test_random_scene_batch_refuses_a_bad_n():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        random_scene_batch(0, torch.Generator())
