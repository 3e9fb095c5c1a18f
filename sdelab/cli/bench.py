"""Run SDE-Drag or ODE-Drag over DragBench (either benchmark of that name), resumable, on one or many GPUs.

    python -m sdelab bench --data DIR [--sampler {cycle-sde,ode}] [--model ID|PATH|tiny|shapes] [--steps N]
        [--t0 T] [--lora-steps N] [--seed S] [--limit K] [--device cpu] --out DIR
    accelerate launch --num_processes K -m sdelab bench ...      # K processes (GPUs) share the samples

Writes OUT/<sample id>.png (at the input's size), OUT/results.csv and OUT/results.json (settings, each
sample's seed, seconds and metrics, a summary), and prints the summary. A run killed at any point resumes
where it stopped when started again with the same settings; samples already done are skipped. The layout
(DragBench-S: origin_image.png + prompt.json; DragBench-D: original_image.png + meta_data.pkl) is detected;
malformed samples are reported with the reason and skipped. Several CPU processes: `accelerate launch
--multi_gpu --num_processes K -m sdelab bench ... --device cpu` (accelerate's --cpu starts one process).
--model tiny is a random-weight SD (offline; its pictures and numbers mean nothing); --model shapes (or digits, or
a pixel-model folder) drags with a pixel model on any CPU, e.g. on the shapes set of `python -m sdelab bench-data
shapes`, whose gt_image.png adds the ground-truth metrics (drag error, success, validity, PSNR to the truth) and
how well Mean Distance agrees with the true drag error (Spearman).
"""

from __future__ import annotations

import argparse
import sys

from sdelab.cli.args import non_negative_int, positive_int, unit_interval

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SAMPLERS = ("cycle-sde", "ode")  # SDE-Drag, ODE-Drag (sdelab.edit.drag.EDITORS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--data", required=True, help="a DragBench folder (either layout; category folders allowed)")
    parser.add_argument("--sampler", choices=SAMPLERS, default="cycle-sde",
                        help="cycle-sde: SDE-Drag, the paper's editor (default); ode: ODE-Drag, its baseline")
    parser.add_argument("--model", default=SD15,
                        help=f"hub id, local folder, 'tiny' or a shipped pixel model such as 'shapes' (default {SD15})")
    parser.add_argument("--steps", type=positive_int, default=120, help="steps from t0 to the data level (120)")
    parser.add_argument("--t0", type=unit_interval, default=0.6, help="start level, fraction of the diffusion (0.6)")
    parser.add_argument("--lora-steps", type=non_negative_int,
                        help="LoRA fine-tuning steps per sample (default: 100 for Stable Diffusion, the official "
                             "DragBench run; 0 for a pixel model, trained on its own world)")
    parser.add_argument("--seed", type=int, default=1234, help="base seed; each sample's seed derives from it (1234)")
    parser.add_argument("--limit", type=positive_int, help="only the first K samples (sorted by id)")
    parser.add_argument("--device", choices=["auto", "cpu"], default="auto",
                        help="auto: the GPU accelerate assigns (CUDA if present), cpu: the CPU (default auto)")
    parser.add_argument("--out", required=True, help="output folder (created; a previous run there is resumed)")


def run(args: argparse.Namespace) -> int:
    import torch
    from accelerate import PartialState

    from sdelab.bench.data import load_dragbench
    from sdelab.bench.runner import markdown, run_bench
    from sdelab.cli.models import load_model
    from sdelab.models.pixel import PixelDiffusion

    def fail(message: str) -> int:
        print(f"bench: error: {message}", file=sys.stderr)
        return 2

    state = PartialState(cpu=args.device == "cpu" or not torch.cuda.is_available())
    try:
        bench = load_dragbench(args.data)
        model = load_model(args.model, device=state.device)
        lora_steps = args.lora_steps if args.lora_steps is not None else 0 if isinstance(model, PixelDiffusion) else 100
        if getattr(model, "random_weights", False) and state.is_main_process:
            print(f"{model.name} has RANDOM weights: its outputs and metrics mean nothing", file=sys.stderr)
        results = run_bench(model, bench, args.out, sampler=args.sampler, steps=args.steps,
                            t0=args.t0, lora_steps=lora_steps, seed=args.seed, limit=args.limit, state=state,
                            log=lambda m: print(m, file=sys.stderr))
    except (ValueError, OSError) as err:
        return fail(str(err).splitlines()[0])
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if results is not None:
        print(markdown(results))
        print(f"{len(results['rows'])} outputs, results.csv and results.json in {args.out}", file=sys.stderr)
    return 0
