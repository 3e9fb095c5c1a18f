"""python -m sdelab reproduce: every experiment shares the flags of one parent parser, with one meaning."""

import argparse
import importlib

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
    args = parser.parse_args(["image-gap"])
    assert (args.workers, args.bootstrap, args.repeats) == (3, 100, 3)
    assert parser.parse_args(["drag"]).bootstrap == 200

