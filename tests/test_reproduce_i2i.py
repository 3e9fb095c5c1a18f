"""python -m sdelab reproduce i2i: the JSON rows on the shipped class-conditional digits model."""

import json

import pytest

from sdelab.__main__ import main


def test_cli_json_rows(capsys):
    assert main(["reproduce", "i2i", "--n", "6", "--t0", "0.4", "--steps", "10", "--bootstrap", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["rows"]
    got = {(r["edit"], r["sampler"], r["t0"]) for r in rows}
    assert got == {("input", None, None), ("diffedit", "ode", 0.4), ("diffedit", "cycle-sde", 0.4),
                   ("sdedit", "ode", 0.4), ("sdedit", "sde", 0.4), ("sdedit", "cycle-sde", 0.4)}
    keys = {"target", "fd", "fd_mlp", "distance", "change_outside", "ci"}
    assert all(keys <= set(r) for r in rows)
    for r in rows:
        assert r["change_outside"] == 0 if r["edit"] != "sdedit" else r["change_outside"] > 0
        for name, (lo, hi) in r["ci"].items():
            assert lo <= hi, name
    assert next(r for r in rows if r["edit"] == "input")["distance"] == 0
    assert out["settings"]["steps_run"] == [4] and 0 < out["settings"]["mask_fraction"] < 1
    assert {(d["edit"], d["sampler"], d["t0"]) for d in out["differences"]} == {
        ("diffedit", "cycle-sde", 0.4), ("sdedit", "sde", 0.4), ("sdedit", "cycle-sde", 0.4)}
    for d in out["differences"]:  # each against the ODE's row of the same edit
        ode = next(r for r in rows if (r["edit"], r["sampler"]) == (d["edit"], "ode"))
        own = next(r for r in rows if (r["edit"], r["sampler"]) == (d["edit"], d["sampler"]))
        assert d["target"] == pytest.approx(own["target"] - ode["target"])
        assert d["fd"] == pytest.approx(own["fd"] - ode["fd"])


def test_cli_rejects_bad_input(capsys):
    with pytest.raises(SystemExit) as err:
        main(["reproduce", "i2i", "--t0", "1.5"])
    assert err.value.code == 2 and "--t0" in capsys.readouterr().err
    assert main(["reproduce", "i2i", "--guidance", "0.5"]) == 2
