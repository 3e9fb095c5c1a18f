"""Quality of digit images: a held-out-validated classifier's verdicts and Frechet distances to real digits.

``python -m sdelab.models.digits_quality`` samples the shipped model with DDIM (eta = 0) and DDPM (eta = 1)
at 50 and 100 steps and prints a markdown table beside the same figures for real held-out digits and
baselines (uniform noise, blurred real digits); ``--figure`` also saves ``figures/digits_samples.png``.
``--conditional`` scores the class-conditional model instead: its null class (prompt None) like the
unconditional model, and samples asked for each digit (n / 10 per class, prompts "0".."9") at every
``--guidance``, with the fraction the judge labels as the digit asked for ("as asked") and that fraction per
class; ``--figure`` then saves ``figures/digits_cond_samples.png``.

The judge is fit once on the "train" split of ``digits_dataset`` (the split the DDPM is trained on):
- an MLP classifier (scikit-learn, 256 pixels -> 64 ReLU -> 10 classes, strong L2 penalty alpha = 1 and a
  fixed budget of 200 Adam epochs); its accuracy on the "test" split is reported. The penalty keeps it
  calibrated off the data: it is confident (max probability > 0.9) on ~77% of real test digits but on
  ~0-2% of noise images and ~9% of averages of two digits, whereas an unpenalised MLP calls uniform noise
  a confident "4". Samples are scored by that confident fraction, the number of classes among the
  confident verdicts and the entropy of the predicted-class histogram (log2(10) = 3.32 bits is uniform);
- two Frechet distances to the 450 "test" digits, ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), in fixed
  feature spaces: the classifier's 64 hidden ReLU units ("FD-MLP", FID-like) and a 32-component PCA of
  the train pixels ("FD-PCA"). Both are biased upwards at small n, so compare values at the same n.
"""

from __future__ import annotations

import argparse
import textwrap
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from sdelab.data.digits import digits_dataset

CONFIDENT = 0.9  # a verdict counts as confident when the top class probability exceeds this


def _flat(images) -> np.ndarray:
    """(n, 1, 16, 16) tensor or array in [0, 1] -> (n, 256) float64."""
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (1, 16, 16):
        raise ValueError(f"images must have shape (n, 1, 16, 16), got {images.shape}")
    return images.reshape(len(images), -1).astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fit to the rows of a (n, d) and b (m, d)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # dead ReLU units make the covariances singular: expected, harmless
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


@dataclass
class DigitsJudge:
    """A classifier and two fixed feature maps fit on real train digits, with the real test digits to compare to."""

    classifier: MLPClassifier
    pca: PCA
    test_images: np.ndarray  # (450, 256)
    test_accuracy: float

    @classmethod
    def fit(cls, seed: int = 0) -> DigitsJudge:
        x_train, y_train = digits_dataset(split="train", return_labels=True)
        x_test, y_test = digits_dataset(split="test", return_labels=True)
        x_train, x_test = _flat(x_train), _flat(x_test)
        classifier = MLPClassifier(hidden_layer_sizes=(64,), alpha=1.0, max_iter=200, random_state=seed)
        # a fixed epoch budget, not convergence, defines the judge; one BLAS thread is faster at this size
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier.fit(x_train, y_train.numpy())
        accuracy = float((classifier.predict(x_test) == y_test.numpy()).mean())
        pca = PCA(n_components=32, random_state=seed).fit(x_train)
        return cls(classifier, pca, x_test, accuracy)

    def hidden(self, x: np.ndarray) -> np.ndarray:
        """The classifier's hidden layer, ReLU(x W1 + b1): (n, 256) -> (n, 64)."""
        return np.maximum(x @ self.classifier.coefs_[0] + self.classifier.intercepts_[0], 0)

    def score(self, images, labels=None) -> dict:
        """Classifier verdicts on images (n, 1, 16, 16) in [0, 1] and their Frechet distances to the test digits.

        labels: (n,) the digit each image was asked to be; adds "as_asked" (the fraction judged as its label)
        and "as_asked_per_class" (that fraction for each digit 0-9).
        """
        x = _flat(images)
        prob = self.classifier.predict_proba(x)  # (n, 10)
        confident = prob.max(1) > CONFIDENT
        counts = np.bincount(prob.argmax(1), minlength=10)
        p = counts / counts.sum()
        asked = {}
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(x),):
                raise ValueError(f"labels must have shape ({len(x)},), got {labels.shape}")
            hit = prob.argmax(1) == labels
            asked = {"as_asked": float(hit.mean()),
                     "as_asked_per_class": [float(hit[labels == k].mean()) if (labels == k).any() else None
                                            for k in range(10)]}
        return asked | {
            "n": len(x),
            "confident": float(confident.mean()),
            "classes": int(len(np.unique(prob.argmax(1)[confident]))),
            "entropy_bits": float(-(p[p > 0] * np.log2(p[p > 0])).sum()),
            "histogram": counts.tolist(),
            "fd_mlp": frechet_distance(self.hidden(x), self.hidden(self.test_images)),
            "fd_pca": frechet_distance(self.pca.transform(x), self.pca.transform(self.test_images)),
        }


def baselines(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Reference image sets of size n: real train digits, the same blurred (Gaussian, sigma 1 px), uniform noise."""
    from scipy.ndimage import gaussian_filter

    gen = torch.Generator().manual_seed(seed)
    train = digits_dataset(split="train")
    real = train[torch.randperm(len(train), generator=gen)[:n]]  # (n, 1, 16, 16)
    blurred = torch.as_tensor(gaussian_filter(real.numpy(), sigma=(0, 0, 1, 1)))
    return {"real train digits": real, "blurred real (sigma 1 px)": blurred,
            "uniform noise": torch.rand(real.shape, generator=gen)}


def table(rows: dict[str, dict], judge: DigitsJudge) -> str:
    """A markdown table of ``DigitsJudge.score`` results, one row per image set (with "as asked" columns when
    some rows were scored against the labels they were asked for)."""
    asked = any("as_asked" in r for r in rows.values())
    head = ("| images | n | confident (p>0.9) | classes | entropy (bits) | FD-MLP | FD-PCA | histogram 0..9 |"
            + (" as asked | as asked per class 0..9 |" if asked else "") + "\n"
            + "|---" * (10 if asked else 8) + "|")

    def fd(v: float) -> str:  # the test set's distance to itself is -1e-13 by round-off: print 0.00, not -0.00
        return f"{round(v, 2) + 0.0:.2f}"

    def as_asked(r: dict) -> str:
        if not asked:
            return ""
        if "as_asked" not in r:
            return " | |"
        return f" {r['as_asked']:.3f} | {' '.join(f'{v:.2f}' for v in r['as_asked_per_class'])} |"

    lines = [f"| {name} | {r['n']} | {r['confident']:.3f} | {r['classes']} | {r['entropy_bits']:.2f} | "
             f"{fd(r['fd_mlp'])} | {fd(r['fd_pca'])} | {' '.join(map(str, r['histogram']))} |{as_asked(r)}"
             for name, r in rows.items()]
    note = f"classifier accuracy on the {len(judge.test_images)} held-out test digits: {judge.test_accuracy:.3f}"
    return "\n".join([head, *lines, "", note])


def samples_figure(grids: dict[str, torch.Tensor], cols: int = 8):
    """One panel per image set (n, 1, 16, 16), drawn as a grid of cols columns (ink black on white)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(grids), figsize=(2.4 * len(grids), 2.7))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.07, top=0.9, wspace=0.06)
    for ax, (name, images) in zip(np.atleast_1d(axes), grids.items(), strict=True):
        rows = len(images) // cols
        tiles = F.pad(images[: rows * cols, 0].cpu(), (1, 1, 1, 1))  # (rows * cols, 18, 18): a blank border
        tiles = tiles.reshape(rows, cols, 18, 18).permute(0, 2, 1, 3).reshape(rows * 18, cols * 18)
        ax.imshow(1 - tiles.numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(textwrap.fill(name, 26), fontsize=8)
        ax.axis("off")
    return fig


def main(argv: list[str] | None = None) -> int:
    from sdelab.models.pixel import load_digits_model
    from sdelab.plotting import save_figure

    parser = argparse.ArgumentParser(prog="python -m sdelab.models.digits_quality", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="model folder (default: the shipped weights)")
    parser.add_argument("--conditional", action="store_true",
                        help="the class-conditional model (default folder: sdelab/weights/digits_cond)")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0],
                        help="classifier-free guidance scales of the class-conditional rows (--conditional)")
    parser.add_argument("--n", type=int, default=450, help="samples per sampler (450 = the test split's size)")
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", action="store_true", help="save figures/digits_samples.png")
    args = parser.parse_args(argv)
    judge = DigitsJudge.fit(args.seed)
    model = load_digits_model(args.weights, conditional=args.conditional)
    rows = {"real test digits (held out)": judge.score(digits_dataset(split="test"))}
    rows.update({name: judge.score(images) for name, images in baselines(args.n, args.seed).items()})
    samples, labels = {}, {}
    asked = torch.arange(args.n) % 10  # (n,) the digit asked for: n / 10 of each
    for steps in args.steps:
        for eta, name in ((0.0, "DDIM"), (1.0, "DDPM")):
            gen = torch.Generator(device=model.device).manual_seed(args.seed)
            null = " (null class)" if model.conditional else ""
            samples[f"{name} eta={eta:g}, {steps} steps{null}"] = model.sample(args.n, steps=steps, eta=eta,
                                                                              generator=gen)
            for g in args.guidance if model.conditional else ():
                gen = torch.Generator(device=model.device).manual_seed(args.seed)
                key = f"{name} eta={eta:g}, {steps} steps, asked for k, cfg {g:g}"
                samples[key] = model.sample(args.n, steps=steps, eta=eta, generator=gen,
                                            prompt=[str(int(k)) for k in asked], guidance=g)
                labels[key] = asked.numpy()
    rows.update({name: judge.score(images, labels.get(name)) for name, images in samples.items()})
    print(table(rows, judge))
    if args.figure:
        grids = {"real test digits": digits_dataset(split="test")[:64]}
        shown = [name for name in samples if f"{args.steps[0]} steps" in name  # conditional: DDIM rows only
                 and (not model.conditional or name.startswith("DDIM"))]
        grids.update({name: samples[name][:64] for name in shown})
        stem = "digits_cond_samples" if model.conditional else "digits_samples"
        path = save_figure(samples_figure(grids), stem,
                           setup=f"{model.name} ({args.weights or 'shipped weights'}), {args.steps[0]} steps, "
                                 f"seed {args.seed}")
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
