"""python -m sdelab reproduce: every experiment shares the flags of one parent parser, with one meaning."""

import argparse
import importlib
import json

import pytest

from sdelab.cli import reproduce


@pytest.fixture(scope="module")
def parser():
    parser = argparse.ArgumentParser()
    reproduce.add_arguments(parser)
    return parser


@pytest.mark.parametrize("experiment", list(reproduce.EXPERIMENTS))
def test_every_experiment_takes_the_common_flags(parser, experiment):
    args = parser.parse_args([experiment])
    assert (args.model, args.seed, args.threads, args.json, args.figures) == ("digits", 0, 1, False, None)
    args = parser.parse_args([experiment, "--seed", "3", "--threads", "2", "--json", "--figures", "out"])
    assert (args.seed, args.threads, args.json, args.figures) == (3, 2, True, "out")
    assert parser.parse_args([experiment, "--figures"]).figures == "figures"  # alone: the repository's folder
    runs = importlib.import_module(reproduce.EXPERIMENTS[experiment]).RUNS
    assert hasattr(args, "workers") == runs and hasattr(args, "bootstrap") == runs
    if runs:
        args = parser.parse_args([experiment, "--workers", "1", "--bootstrap", "9"])
        assert (args.workers, args.bootstrap) == (1, 9)
        with pytest.raises(SystemExit):
            parser.parse_args([experiment, "--workers", "0"])


def test_image_gap_keeps_its_own_defaults(parser):
    from sdelab.cli.reproduce_image_gap import resolved

    args = resolved(parser.parse_args(["image-gap"]))
    assert (args.workers, args.bootstrap, args.repeats, args.n, len(args.edit)) == (3, 100, 3, 450, 5)
    args = resolved(parser.parse_args(["image-gap", "--model", "shapes"]))
    assert (args.repeats, args.n, args.intervals, args.checkpoints, args.edit) == (1, 300, 33, 6, ["none", "drag"])
    assert parser.parse_args(["drag"]).bootstrap == 200



def test_quality_table_measures_against_the_held_out_digits(capsys):
    from sdelab.__main__ import main

    assert main(["reproduce", "quality", "--n", "20", "--steps", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["images"]: r for r in out["rows"]}
    assert out["settings"]["reference"] == "the 450 held-out test digits"
    held_out = rows["real test digits (held out)"]
    assert held_out["verdicts"]["n"] == 450 and abs(held_out["fd_pca"]) < 1e-9  # the reference itself
    assert rows["uniform noise"]["fd_pca"] > 10 > rows["real train digits"]["fd_pca"]
    assert {"DDIM eta=0, 2 steps", "DDPM eta=1, 2 steps"} <= set(rows)
