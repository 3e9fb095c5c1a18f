"""Sample quality of the digits models: the judge's verdicts and Frechet distances to the held-out digits.

``python -m sdelab reproduce quality`` samples the shipped model with DDIM (eta = 0) and DDPM (eta = 1) at 50 and
100 steps and scores the samples beside real train digits and baselines (blurred real digits, uniform noise) with
the digits judge (``sdelab.eval.judge``). ``--conditional`` scores the class-conditional model instead: its null class
(prompt None) like the unconditional model, and samples asked for each digit (n / 10 per class, prompts "0".."9") at
every guidance, with the fraction the judge labels as the digit asked for ("as asked") and that fraction per class.

The reference set of this table is the 450 held-out test digits (the usual FID reference of a generative model: the
edit experiments score edits *of* those digits and so take the training digits instead). Frechet distances are
biased upwards at small n: compare values at the same n.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sdelab.data.digits import digits_dataset
from sdelab.eval.frechet import FrechetReference
from sdelab.eval.judge import DigitsJudge
from sdelab.eval.tables import cell, markdown_table

REFERENCE = "the 450 held-out test digits"


@dataclass(frozen=True)
class QualityRow:
    """The judge's verdicts on one image set and its Frechet distances to the reference set."""

    images: str
    verdicts: dict  # DigitsJudge.verdicts: n, confident, classes, entropy_bits, histogram (and as_asked)
    fd_pca: float
    fd_mlp: float


@dataclass
class QualityResult:
    rows: list[QualityRow]
    settings: dict
    examples: dict | None = None  # the first 64 images of each set shown in the figure


def score(judge: DigitsJudge, references: dict[str, FrechetReference], name: str, images,
          labels=None) -> QualityRow:
    """The row of one image set (n, 1, 16, 16) in [0, 1]; labels: (n,) the digit each image was asked to be."""
    f = judge.features(images)
    return QualityRow(name, judge.verdicts(images, labels), references["fd_pca"].distance(f["fd_pca"]),
                      references["fd_mlp"].distance(f["fd_mlp"]))


def baselines(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Reference image sets of size n: real train digits, the same blurred (Gaussian, sigma 1 px), uniform noise."""
    from scipy.ndimage import gaussian_filter

    gen = torch.Generator().manual_seed(seed)
    train = digits_dataset(split="train")
    real = train[torch.randperm(len(train), generator=gen)[:n]]  # (n, 1, 16, 16)
    blurred = torch.as_tensor(gaussian_filter(real.numpy(), sigma=(0, 0, 1, 1)))
    return {"real train digits": real, "blurred real (sigma 1 px)": blurred,
            "uniform noise": torch.rand(real.shape, generator=gen)}


def reproduce_quality(model, n: int = 450, steps=(50, 100), guidance=(1.0, 3.0), seed: int = 0,
                      keep: bool = False) -> QualityResult:
    """Rows for the held-out digits, the baselines and the model's samples (DDIM and DDPM at every step count; for
    a conditional model also asked for each digit at every ``guidance``). keep: also return the first 64 images of
    the sets the figure shows (the real test digits and the first step count's samples; DDIM only if conditional)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    judge = DigitsJudge.fit(seed)
    test = digits_dataset(split="test")
    references = judge.references(test)
    rows = [score(judge, references, "real test digits (held out)", test)]
    rows += [score(judge, references, name, images) for name, images in baselines(n, seed).items()]
    examples = {"real test digits": test[:64]}
    asked = torch.arange(n) % 10  # (n,) the digit asked for: n / 10 of each
    for k in steps:
        for eta, name in ((0.0, "DDIM"), (1.0, "DDPM")):
            gen = torch.Generator(device=model.device).manual_seed(seed)
            null = " (null class)" if model.conditional else ""
            label = f"{name} eta={eta:g}, {k} steps{null}"
            images = model.sample(n, steps=k, eta=eta, generator=gen)
            rows.append(score(judge, references, label, images))
            if k == steps[0] and (not model.conditional or name == "DDIM"):
                examples[label] = images[:64]
            for g in guidance if model.conditional else ():
                gen = torch.Generator(device=model.device).manual_seed(seed)
                label = f"{name} eta={eta:g}, {k} steps, asked for k, cfg {g:g}"
                images = model.sample(n, steps=k, eta=eta, generator=gen, prompt=[str(int(c)) for c in asked],
                                      guidance=g)
                rows.append(score(judge, references, label, images, asked.numpy()))
                if k == steps[0] and name == "DDIM":
                    examples[label] = images[:64]
    settings = dict(model=model.name, n=n, steps=list(steps), guidance=list(guidance) if model.conditional else None,
                    reference=REFERENCE, judge_test_accuracy=judge.test_accuracy, seed=seed)
    return QualityResult(rows, settings, examples if keep else None)


def markdown(result: QualityResult) -> str:
    """One row per image set (with "as asked" columns when some rows were asked for a digit)."""
    asked = any("as_asked" in r.verdicts for r in result.rows)
    header = ["images", "n", "confident (p>0.9)", "classes", "entropy (bits)", "FD-MLP", "FD-PCA", "histogram 0..9"]
    rows = []
    for r in result.rows:
        v = r.verdicts
        row = [r.images, str(v["n"]), cell(v["confident"], 3), str(v["classes"]), cell(v["entropy_bits"]),
               cell(r.fd_mlp), cell(r.fd_pca), " ".join(map(str, v["histogram"]))]
        if asked:
            row += ([cell(v["as_asked"], 3), " ".join(f"{p:.2f}" for p in v["as_asked_per_class"])]
                    if "as_asked" in v else ["", ""])
        rows.append(row)
    if asked:
        header += ["as asked", "as asked per class 0..9"]
    caption = (f"*FD-MLP / FD-PCA: Frechet distances to {result.settings['reference']} in the judge's 64 hidden units "
               "/ its 32-component PCA of the training pixels; confident: the judge's top class probability above "
               f"0.9. The judge's accuracy on the held-out digits: {result.settings['judge_test_accuracy']:.3f}.*")
    return markdown_table(header, rows, caption)
