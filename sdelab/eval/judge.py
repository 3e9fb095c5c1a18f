"""The digits judge: a held-out-validated classifier and the two fixed feature maps every digits score uses.

Fit once on the "train" split of ``digits_dataset`` (the split the DDPM is trained on):
- an MLP classifier (scikit-learn, 256 pixels -> 64 ReLU -> 10 classes, strong L2 penalty alpha = 1 and a fixed
  budget of 200 Adam epochs); its accuracy on the "test" split is kept. The penalty keeps it calibrated off the
  data: it is confident (max probability > 0.9) on ~77% of real test digits but on ~0-2% of noise images and ~9% of
  averages of two digits, whereas an unpenalised MLP calls uniform noise a confident "4";
- the feature maps of the Frechet distances (``features``): "fd_pca", a 32-component PCA of the training pixels,
  and "fd_mlp", the classifier's 64 hidden ReLU units (FID-like). The reference set a distance is taken to is the
  caller's choice and every table names it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from sdelab.data.digits import SIZE, digits_dataset
from sdelab.eval.frechet import FrechetReference

CONFIDENT = 0.9  # a verdict counts as confident when the top class probability exceeds this
FEATURES = ("fd_pca", "fd_mlp")  # the judge's feature maps, named by the Frechet distance they feed


def flat(images) -> np.ndarray:
    """(n, 1, 16, 16) images in [0, 1] (tensor or array) -> (n, 256) float64."""
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (1, SIZE, SIZE):
        raise ValueError(f"images must have shape (n, 1, {SIZE}, {SIZE}), got {images.shape}")
    return images.reshape(len(images), -1).astype(np.float64)


@dataclass
class DigitsJudge:
    """A classifier and two fixed feature maps fit on the real train digits."""

    classifier: MLPClassifier
    pca: PCA
    test_accuracy: float

    @classmethod
    def fit(cls, seed: int = 0) -> DigitsJudge:
        x_train, y_train = digits_dataset(split="train", return_labels=True)
        x_test, y_test = digits_dataset(split="test", return_labels=True)
        x_train, x_test = flat(x_train), flat(x_test)
        classifier = MLPClassifier(hidden_layer_sizes=(64,), alpha=1.0, max_iter=200, random_state=seed)
        # a fixed epoch budget, not convergence, defines the judge; one BLAS thread is faster at this size
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier.fit(x_train, y_train.numpy())
        accuracy = float((classifier.predict(x_test) == y_test.numpy()).mean())
        pca = PCA(n_components=32, random_state=seed).fit(x_train)
        return cls(classifier, pca, accuracy)

    def hidden(self, x: np.ndarray) -> np.ndarray:
        """The classifier's hidden layer, ReLU(x W1 + b1): (n, 256) -> (n, 64)."""
        return np.maximum(x @ self.classifier.coefs_[0] + self.classifier.intercepts_[0], 0)

    def features(self, images) -> dict[str, np.ndarray]:
        """Both feature maps of images (n, 1, 16, 16): {"fd_pca": (n, 32), "fd_mlp": (n, 64)}. The PCA is linear, so
        images outside [0, 1] (noisy diffusion states mapped by (x + 1) / 2) have features too."""
        x = flat(images)
        return {"fd_pca": self.pca.transform(x), "fd_mlp": self.hidden(x)}

    def references(self, images) -> dict[str, FrechetReference]:
        """Frechet references of a set of real images (n, 1, 16, 16) in both feature maps, keyed as ``features``."""
        return {name: FrechetReference(f) for name, f in self.features(images).items()}

    def probabilities(self, images) -> np.ndarray:
        """Class probabilities (n, 10) of images (n, 1, 16, 16) in [0, 1]."""
        return self.classifier.predict_proba(flat(images))

    def verdicts(self, images, labels=None) -> dict:
        """The classifier's verdicts on a set of images (n, 1, 16, 16) in [0, 1]: the confident fraction, the number
        of classes among the confident verdicts, the entropy of the predicted-class histogram (log2(10) = 3.32 bits
        is uniform) and the histogram. labels: (n,) the digit each image was asked to be; adds "as_asked" (the
        fraction judged as its label) and "as_asked_per_class" (that fraction for each digit 0-9)."""
        prob = self.probabilities(images)  # (n, 10)
        confident = prob.max(1) > CONFIDENT
        counts = np.bincount(prob.argmax(1), minlength=10)
        p = counts / counts.sum()
        asked = {}
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(prob),):
                raise ValueError(f"labels must have shape ({len(prob)},), got {labels.shape}")
            hit = prob.argmax(1) == labels
            asked = {"as_asked": float(hit.mean()),
                     "as_asked_per_class": [float(hit[labels == k].mean()) if (labels == k).any() else None
                                            for k in range(10)]}
        return asked | {
            "n": len(prob),
            "confident": float(confident.mean()),
            "classes": int(len(np.unique(prob.argmax(1)[confident]))),
            "entropy_bits": float(-(p[p > 0] * np.log2(p[p > 0])).sum()),
            "histogram": counts.tolist(),
        }
