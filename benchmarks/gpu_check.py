"""GPU check of SD + inversions on the tiny offline SD: float32 (TF32 off / on) and float16, then the unit tests.

Run from the repository root on a CUDA machine; needs no network:   python benchmarks/gpu_check.py
(``python benchmarks/gpu_check.py cpu`` dry-runs the float32 checks on the CPU at 8x8 latents, without the tests.)
Prints a table (one column per precision), reruns tests/test_models_sd.py and tests/test_inversion.py on CUDA
(SDELAB_TEST_DEVICE=cuda), and exits non-zero if a hard check or a test fails. About a minute on an H100.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import torch

from sdelab.edit import invert, reconstruct
from sdelab.models import load_stable_diffusion, tiny_stable_diffusion
from sdelab.models.base import linear_ramp
from sdelab.schedules import VPSchedule, time_grid

DEVICE = sys.argv[1] if len(sys.argv) > 1 else "cuda"
CUDA = DEVICE.startswith("cuda")
PROMPT = "a photo of a cat"
STEPS = 30  # t0 = 0.6: the grid of N = 50 intervals
PRECISIONS = {"fp32": (torch.float32, False), "fp32+tf32": (torch.float32, True), "fp16": (torch.float16, False)}
if not CUDA:  # the CPU dry run: float16 convolutions are impractically slow there
    PRECISIONS = {"fp32": (torch.float32, False)}
SIDE = 64 if CUDA else 8  # latent side for the timings: 64 = a 512 x 512 image
RAMP = linear_ramp(time_grid(VPSchedule.stable_diffusion(), STEPS, 0.6), 1.0, 3.0)  # SDE-Drag's CFG: 1 -> 3 at t0


def set_tf32(on: bool) -> None:
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = on


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def timed(fn, repeats=20) -> float:
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def checks(dtype: torch.dtype, tf32: bool) -> dict[str, tuple[float | str, bool | None]]:
    """name -> (value, passed); passed None means 'reported only' (float16 and TF32 are not asserted)."""
    set_tf32(tf32)
    hard = dtype == torch.float32 and not tf32
    out = {}
    model = tiny_stable_diffusion(device=DEVICE, dtype=dtype)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))

    def gen(seed):
        return torch.Generator(device=DEVICE).manual_seed(seed)

    x0 = model.encode(images, generator=gen(1))
    same = torch.equal(x0, model.encode(images, generator=gen(1)))
    out["encode: same seed, same x0"] = ("equal" if same else "differs", same)
    out["x0 dtype / device"] = (f"{str(x0.dtype)[6:]} / {x0.device.type}", x0.dtype == torch.float32)

    x = torch.randn(3, 4, 8, 8, generator=gen(2), device=DEVICE)
    e_c, e_u = model.eps(x, 400, PROMPT), model.eps(x, 400, "")
    cfg = (model.eps(x, 400, PROMPT, 7.5) - (e_u + 7.5 * (e_c - e_u))).abs().max().item()
    out["CFG 7.5 batched vs separate, max |diff|"] = (cfg, cfg <= 5e-5 if hard else None)

    for latent in (torch.float32, torch.float64):
        inv = invert(model, x0.to(latent), STEPS, 0.6, prompt=PROMPT, guidance=RAMP, generator=gen(3), progress=False)
        err = (reconstruct(model, inv, progress=False) - x0.to(latent)).abs().max().item()
        bound = 1e-12 if latent == torch.float64 else 1e-5
        out[f"Cycle-SDE recon, {str(latent)[6:]} latents, max err"] = (err, err <= bound if hard else None)
    inv = invert(model, x0, STEPS, 0.6, "ode", prompt=PROMPT, progress=False)
    out["DDIM recon (random UNet), max err"] = ((reconstruct(model, inv, progress=False) - x0).abs().max().item(), None)

    inv = invert(model, x0, STEPS, 0.6, generator=gen(4), progress=False)
    black = torch.zeros(8, 8, dtype=torch.bool, device=DEVICE)
    same = torch.equal(reconstruct(model, inv, inv.x_t0 + 1, mask=black, progress=False), x0)
    out["all-False mask returns x0 exactly"] = ("equal" if same else "differs", same)

    with tempfile.TemporaryDirectory() as path:
        model.save_pretrained(path)
        loaded = load_stable_diffusion(path, device=DEVICE, dtype=dtype)
        same = torch.equal(loaded.eps(x, 321, PROMPT, 7.5), model.eps(x, 321, PROMPT, 7.5))
    out["save_pretrained -> load: same eps"] = ("equal" if same else "differs", same)
    decoded = model.decode(x0)
    finite = bool(decoded.isfinite().all())
    out["decode finite, in [0, 1]"] = ("yes" if finite else "no", finite)

    big = torch.randn(1, 4, SIDE, SIDE, generator=gen(5), device=DEVICE)  # tiny UNet on a 512 x 512 image's latent
    out[f"eps ms, 1 x 4x{SIDE}x{SIDE}, cfg 1"] = (1e3 * timed(lambda: model.eps(big, 500, PROMPT)), None)
    out[f"eps ms, 1 x 4x{SIDE}x{SIDE}, cfg 3"] = (1e3 * timed(lambda: model.eps(big, 500, PROMPT, 3.0)), None)
    if CUDA:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    reconstruct(model, invert(model, big, 120, 0.6, generator=gen(6), progress=False), progress=False)
    sync()
    out["Cycle-SDE 120 steps (SDE-Drag grid) s"] = (time.perf_counter() - start, None)
    if CUDA:
        out["peak GPU memory MiB"] = (torch.cuda.max_memory_allocated() / 2**20, None)
    return out


def digits_checks(n: int = 256, steps: int = 100) -> dict[str, tuple[float | str, bool | None]]:
    """The shipped digits DDPM on the device: sampling time and Cycle-SDE exactness (float32 asserted)."""
    from sdelab.data.digits import digits_dataset
    from sdelab.edit import roundtrip
    from sdelab.models.pixel import load_digits_model

    model = load_digits_model(device=DEVICE)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    start = time.perf_counter()
    images = model.sample(n, steps=steps, eta=1.0, generator=gen, progress=False)
    sync()
    out = {f"digits: {n} DDPM samples, {steps} steps, s": (time.perf_counter() - start, None),
           "digits: samples in [0, 1]": ("yes" if bool(((images >= 0) & (images <= 1)).all()) else "no", None)}
    x0 = model.encode(digits_dataset()[:64].to(DEVICE))
    err = (roundtrip(model, x0, generator=gen, progress=False) - x0).abs().max().item()
    out["digits: Cycle-SDE recon, fp32, max err"] = (err, err <= 1e-5)
    return out


def fmt(value, passed) -> str:
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    return text + {True: "  ok", False: "  FAIL", None: ""}[passed]


def main() -> int:
    if CUDA and not torch.cuda.is_available():
        print("no CUDA device: nothing to check (python benchmarks/gpu_check.py cpu dry-runs the checks)")
        return 1
    print(f"{torch.cuda.get_device_name(0) if CUDA else 'CPU'}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    results = {name: checks(dtype, tf32) for name, (dtype, tf32) in PRECISIONS.items()}
    set_tf32(False)
    rows = list(next(iter(results.values())))
    width = max(map(len, rows)) + 2
    print("\n" + "check".ljust(width) + "".join(name.rjust(18) for name in results))
    for row in rows:
        print(row.ljust(width) + "".join(fmt(*results[name][row]).rjust(18) for name in results))
    failed = [f"{name}: {row}" for name, res in results.items() for row, (_, passed) in res.items() if passed is False]
    if CUDA:
        digits = digits_checks()
        print("")
        for row, (value, passed) in digits.items():
            print(row.ljust(width) + fmt(value, passed).rjust(18))
        failed += [row for row, (_, passed) in digits.items() if passed is False]

    code = 0
    if CUDA:
        print("\nunit tests on CUDA (SDELAB_TEST_DEVICE=cuda):")
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                "tests/test_models_sd.py", "tests/test_inversion.py"],
                               env={**os.environ, "SDELAB_TEST_DEVICE": DEVICE}, capture_output=True, text=True)
        print("\n".join(tests.stdout.splitlines()[-25:]))
        code = tests.returncode
    print("\nFAILED checks: " + ("; ".join(failed) if failed else "none"))
    return int(bool(failed) or code != 0)


if __name__ == "__main__":
    sys.exit(main())
