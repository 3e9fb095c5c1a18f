"""python -m sdelab reproduce drag: the drag cases, the band masks, and measures validated on known cases."""

import json

import numpy as np
import pytest
import torch

from sdelab.__main__ import main
from sdelab.data.digits import band_masks, drag_cases
from sdelab.edit.drag import drag_substeps, paste_each
from sdelab.models.pixel import load_digits_model
from sdelab.reproduce.drag import ink_transfer, mean_distance


@pytest.fixture(scope="module")
def cases():
    return drag_cases(60, radius=2, seed=0)


def test_drag_cases_start_on_ink_and_keep_whole_windows(cases):
    again = drag_cases(60, radius=2, seed=0)
    assert torch.equal(cases.source, again.source) and torch.equal(cases.target, again.target)
    length = (cases.target - cases.source).double().norm(dim=1)
    assert ((length >= 3) & (length <= 5)).all()
    for p in (cases.source, cases.target):
        assert ((p >= 3) & (p <= 12)).all()  # radius + 1 from the border: windows [p - 2, p + 2) are whole
    ink = cases.images[torch.arange(60), 0, cases.source[:, 1], cases.source[:, 0]]
    assert (ink > 0.5).all()
    assert len({tuple(d) for d in (cases.target - cases.source).tolist()}) > 10  # directions vary


def test_band_masks_cover_the_segment_and_nothing_far(cases):
    bands = band_masks(cases, 2)
    i = torch.arange(60)
    assert bands[i, 0, cases.source[:, 1], cases.source[:, 0]].all() and bands[i, 0, cases.target[:, 1],
                                                                              cases.target[:, 0]].all()
    width = bands.flatten(1).sum(1).double()
    assert (width >= 4 * 4).all() and (width <= (5 + 4) * 5).all()  # about (length + 2r) x 2r pixels


def test_the_drag_measures_separate_no_edit_from_a_copy_paste(cases):
    model = load_digits_model()
    x0 = model.encode(cases.images)
    per_image = [drag_substeps(s[None], t[None], 2.0) for s, t in zip(cases.source, cases.target, strict=True)]
    pasted = paste_each(x0, per_image, 2, 1.1, 0.3, torch.Generator().manual_seed(0))
    pasted = model.decode(pasted)[:, 0].numpy().astype(float)
    x = cases.images[:, 0].numpy().astype(float)
    s, t = cases.source.numpy(), cases.target.numpy()
    # the unedited input: the source window is found where it is, |target - source| away; nothing transferred
    assert np.allclose(mean_distance(x, x, s, t, 2), np.linalg.norm(t - s, axis=1))
    assert np.allclose(ink_transfer(x, x, s, t, 2), 0)
    # the copy-paste: the window is found at the target, and ink arrived there
    assert mean_distance(x, pasted, s, t, 2).mean() < 0.5
    assert ink_transfer(x, pasted, s, t, 2).mean() > 0.2


def test_cli_json_rows_and_saved_outputs(tmp_path, capsys):
    assert main(["reproduce", "drag", "--n", "6", "--t0", "0.2", "--intervals", "20", "--bootstrap", "8", "--json",
                 "--save", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["rows"]
    assert {(r["method"], r["mask"]) for r in rows} == {(m, k) for m in ("input", "copy-paste", "ode-drag", "sde-drag")
                                                        for k in ("none", "band")}
    keys = {"fd_pca", "fd_mlp", "confident", "class_kept", "mean_distance", "transfer", "change_outside"}
    assert all(set(r["scores"]) == keys for r in rows) and out["settings"]["steps"] == [4]
    band = [r for r in rows if r["mask"] == "band" and r["method"] != "input"]
    assert all(r["scores"]["change_outside"]["value"] == 0 for r in band)  # the band mask keeps every pixel outside it
    assert main(["reproduce", "drag", "--n", "6", "--t0", "0.2", "--intervals", "20", "--bootstrap", "8", "--json",
                 "--load", str(tmp_path)]) == 0  # re-measured from the saved outputs: the same table
    again = json.loads(capsys.readouterr().out)
    assert again["rows"] == rows and again["settings"]["seconds_of_the_run"] == out["settings"]["seconds"]
    saved = np.load(tmp_path / "drag_digits_t0=0.2_mask=none.npz")
    assert saved["sde_drag"].shape == (6, 1, 16, 16) and saved["source"].shape == (6, 2)
    assert saved["sde_drag"].dtype == np.float32 and 0 <= saved["ode_drag"].min() and saved["ode_drag"].max() <= 1


@pytest.mark.slow
def test_two_worker_processes_give_the_one_process_table():
    from sdelab.reproduce.drag import reproduce_drag

    args = dict(n=6, t0s=(0.2,), intervals=20, reps=8, progress=False)
    one, two = reproduce_drag(**args, workers=1), reproduce_drag(**args, workers=2)
    assert one.rows == two.rows and one.comparisons == two.comparisons
    with pytest.raises(ValueError, match="workers must be 1 or 2"):
        reproduce_drag(**args, workers=3)
