"""KL(p~_t || p_t) from t0 to 0 on the 1-D toy (Theorems 3.1-3.3): python -m sdelab toy-kl.

    python -m sdelab toy-kl --sampler {ode,sde,cycle-sde} --prior {shifted,narrow,skewed} [--steps N] [--t0 T] [--json]

ode and sde are exact (densities propagated through Eq. 6 on an x-grid); cycle-sde is Monte Carlo with a
kNN KL and a bootstrap band, since its noises depend on the forward path (``sdelab.toy.toy_kl``).
"""

from __future__ import annotations

import argparse
import json

from sdelab.cli.args import positive_int, unit_interval
from sdelab.samplers import SAMPLERS
from sdelab.toy.canonical import PRIORS_1D


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--sampler", required=True, choices=list(SAMPLERS),
                        help="ode and sde: exact density propagation; cycle-sde: Monte Carlo + kNN KL")
    parser.add_argument("--prior", required=True, choices=sorted(PRIORS_1D),
                        help="the edited start at t0: " + ", ".join(f"{k} = N({m}, {s}^2)"
                                                                    for k, (m, s) in PRIORS_1D.items()))
    parser.add_argument("--steps", type=positive_int, default=120, help="sampling steps from t0 to 0 (120)")
    parser.add_argument("--t0", type=unit_interval, default=0.6, help="start level, fraction of the diffusion (0.6)")
    parser.add_argument("--json", action="store_true", help='print {"t": [...], "kl": [...]} (t0 first)')
    parser.add_argument("--points", type=positive_int, default=2000, help="x-grid points, exact samplers (2000)")
    parser.add_argument("--samples", type=positive_int, default=5000, help="Monte Carlo chains, cycle-sde (5000)")
    parser.add_argument("--checkpoints", type=positive_int, default=13,
                        help="grid times with a KL estimate, cycle-sde (13; the exact samplers report every one)")
    parser.add_argument("--seed", type=int, default=0, help="random seed, cycle-sde (0)")


def run(args: argparse.Namespace) -> int:
    from sdelab.toy.toy_kl import toy_kl

    try:
        curve = toy_kl(args.sampler, args.prior, args.steps, args.t0, points=args.points, samples=args.samples,
                       checkpoints=args.checkpoints, seed=args.seed)
    except ValueError as err:  # a bad combination of arguments (e.g. more steps than timesteps below t0)
        raise SystemExit(f"toy-kl: error: {err}") from None
    if args.json:
        print(json.dumps(curve))
        return 0
    exact = args.sampler != "cycle-sde"
    how = f"exact, {args.points}-point x-grid" if exact else f"Monte Carlo, {args.samples} chains, kNN KL, 95% band"
    print(f"KL(p~_t || p_t), sampler {args.sampler} ({how}), prior {args.prior}, Stable Diffusion schedule, "
          f"{args.steps} steps from t0 = {args.t0}")
    print(f"{'t':>6}  {'KL':>12}" + ("" if exact else f"  {'band':>21}"))
    for i, (t, kl) in enumerate(zip(curve["t"], curve["kl"], strict=True)):
        band = "" if exact else f"  [{curve['low'][i]:9.5f}, {curve['high'][i]:9.5f}]"
        print(f"{t:>6}  {kl:12.8f}{band}")
    return 0
