"""python -m sdelab reproduce inpainting: the stroke masks and the JSON rows."""

import json

import pytest
import torch

from sdelab.__main__ import main
from sdelab.data.digits import stroke_masks


def test_stroke_masks_cover_exactly_the_asked_fraction_and_repeat_with_the_seed():
    for fraction, pixels in ((0.2, 51), (0.4, 102)):
        masks = stroke_masks(40, fraction, seed=3)
        assert masks.shape == (40, 1, 16, 16) and masks.dtype == torch.bool
        assert (masks.flatten(1).sum(1) == pixels).all()
        assert torch.equal(masks, stroke_masks(40, fraction, seed=3))
    a, b = stroke_masks(40, 0.2, seed=0), stroke_masks(40, 0.2, seed=1)
    assert not torch.equal(a, b) and len({m.numpy().tobytes() for m in a}) == 40  # every image its own mask
    # strokes, not scattered pixels: most painted pixels have a painted 4-neighbour
    m = a[:, 0]
    neighbours = torch.zeros_like(m)
    neighbours[:, 1:] |= m[:, :-1]
    neighbours[:, :-1] |= m[:, 1:]
    neighbours[:, :, 1:] |= m[:, :, :-1]
    neighbours[:, :, :-1] |= m[:, :, 1:]
    assert (m & neighbours).sum() >= 0.95 * m.sum()
    with pytest.raises(ValueError, match="fraction must lie in"):
        stroke_masks(2, 1.0)


def test_cli_json_rows(capsys):
    assert main(["reproduce", "inpainting", "--n", "8", "--steps", "3", "--bootstrap", "8", "--workers", "1",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["rows"]
    got = {(r["sampler"], r["mask"], r["steps"]) for r in rows}
    assert got == {("input", None, None), ("blank", "small", None), ("blank", "large", None)} | {
        (s, m, 3) for s in ("ode", "sde") for m in ("small", "large")}
    keys = {"fd_pca", "fd_mlp", "class_kept", "confident", "change_outside"}
    assert all(set(r["scores"]) == keys for r in rows)
    assert all(r["scores"]["change_outside"]["value"] == 0 for r in rows)  # the known region is the input, always
    inputs = next(r for r in rows if r["sampler"] == "input")
    assert inputs["scores"]["class_kept"]["value"] == 1.0  # the judge agrees with itself on the uncorrupted inputs
    assert {(d["mask"], d["steps"]) for d in out["differences"]} == {("small", 3), ("large", 3)}
    assert out["settings"]["coverage"] == {"small": 51 / 256, "large": 102 / 256}


def test_cli_rejects_bad_input(capsys):
    with pytest.raises(SystemExit) as err:
        main(["reproduce", "inpainting", "--steps", "0"])
    assert err.value.code == 2 and "--steps" in capsys.readouterr().err


@pytest.mark.slow
def test_two_worker_processes_give_the_one_process_table():
    from sdelab.reproduce.inpainting import reproduce_inpainting

    args = dict(n=6, steps=(2, 3), reps=8, progress=False)
    one, two = reproduce_inpainting(**args, workers=1), reproduce_inpainting(**args, workers=2)
    assert one.rows == two.rows and one.differences == two.differences
    assert [r.steps for r in two.rows[3:]] == [2] * 4 + [3] * 4  # in the order of steps, whatever ran first
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        reproduce_inpainting(**args, workers=0)
