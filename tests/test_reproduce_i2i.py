"""python -m sdelab reproduce i2i: the JSON rows on the shipped class-conditional digits model."""

import json

import pytest
import torch

from sdelab.__main__ import main


def test_cli_json_rows(capsys):
    assert main(["reproduce", "i2i", "--n", "6", "--t0", "0.4", "--steps", "10", "--bootstrap", "8", "--workers", "1",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["rows"]
    got = {(r["edit"], r["sampler"], r["t0"]) for r in rows}
    assert got == {("input", None, None), ("diffedit", "ode", 0.4), ("diffedit", "cycle-sde", 0.4),
                   ("sdedit", "ode", 0.4), ("sdedit", "sde", 0.4), ("sdedit", "cycle-sde", 0.4),
                   ("null", "ode", 0.4), ("null", "cycle-sde", 0.4)}
    keys = {"target", "fd_pca", "fd_mlp", "distance", "change_outside"}
    assert all(set(r["scores"]) == keys for r in rows)
    for r in rows:
        change = r["scores"]["change_outside"]["value"]
        assert change == 0 if r["edit"] in ("input", "diffedit") else change > 0
    assert next(r for r in rows if r["edit"] == "input")["scores"]["distance"]["value"] == 0
    assert out["settings"]["steps_run"] == [4] and 0 < out["settings"]["mask_fraction"] < 1
    assert {(d["edit"], d["sampler"], d["t0"]) for d in out["differences"]} == {
        ("diffedit", "cycle-sde", 0.4), ("sdedit", "sde", 0.4), ("sdedit", "cycle-sde", 0.4),
        ("null", "cycle-sde", 0.4)}
    for d in out["differences"]:  # each against the ODE's row of the same edit
        ode = next(r for r in rows if (r["edit"], r["sampler"]) == (d["edit"], "ode"))
        own = next(r for r in rows if (r["edit"], r["sampler"]) == (d["edit"], d["sampler"]))
        for key in ("target", "fd_pca"):
            assert d["minus_ode"][key]["value"] == pytest.approx(own["scores"][key]["value"]
                                                                 - ode["scores"][key]["value"])


def test_cli_rejects_bad_input(capsys):
    with pytest.raises(SystemExit) as err:
        main(["reproduce", "i2i", "--t0", "1.5"])
    assert err.value.code == 2 and "--t0" in capsys.readouterr().err
    assert main(["reproduce", "i2i", "--guidance", "0.5"]) == 2
    assert "--guidance must be >= 1" in capsys.readouterr().err
    for experiment in ("i2i", "inpainting", "drag"):  # checked past argparse: one line and status 2, no traceback
        assert main(["reproduce", experiment, "--n", "451", "--workers", "1", "--json"]) == 2
        assert capsys.readouterr().err == f"reproduce {experiment}: error: n must lie in [1, 450], got 451\n"


def test_one_inversion_per_sampler_gives_diffedit_and_sdedit():
    """edits_at shares each sampler's inversion (and Cycle-SDE's Eq. 8 noises) between the edits: the outputs are
    those of the public editors run one by one; the null edit is SDEdit with the target equal to the source."""
    from sdelab.edit.i2i import diffedit, diffedit_mask, sdedit
    from sdelab.reproduce.i2i import EDITS, _inputs, edits_at

    model, _, _, x0, source, target = _inputs(6, None)
    mask = diffedit_mask(model, x0, source, target, guidance=2.0, generator=torch.Generator().manual_seed(0))
    outputs = edits_at(model, x0, source, target, mask, 0.4, 10, 2.0, seed=0)
    assert set(outputs) == {(edit, name) for edit, names in EDITS.items() for name in names}
    for (edit, name), out in outputs.items():
        kwargs = dict(method=name, t0=0.4, steps=10, guidance=2.0, generator=torch.Generator().manual_seed(0))
        if edit == "diffedit":
            expected, _ = diffedit(model, x0, source, target, mask=mask, **kwargs)
        else:
            expected = sdedit(model, x0, target if edit == "sdedit" else source, source=source, **kwargs)
        assert torch.allclose(out, model.decode(expected), atol=1e-6), (edit, name)
    assert (outputs["sdedit", "ode"] - outputs["null", "ode"]).abs().max() > 0.1  # the condition matters


@pytest.mark.slow
def test_two_worker_processes_give_the_one_process_table():
    from sdelab.reproduce.i2i import reproduce_i2i

    args = dict(n=6, t0s=(0.3, 0.4), steps=10, reps=8, progress=False)
    one, two = reproduce_i2i(**args, workers=1), reproduce_i2i(**args, workers=2)
    assert one.rows == two.rows and one.differences == two.differences
    assert [r.t0 for r in two.rows[1:4]] == [0.3] * 3  # in the order of t0s, whatever ran first
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        reproduce_i2i(**args, workers=0)
