"""The two benchmarks named DragBench, read into one sample type; malformed samples are reported and skipped.

- DragBench-S (SDE-Drag's, 100 samples): a folder per sample with ``origin_image.png``, an optional
  ``mask.png`` (grayscale, white = editable; >= 128 counts, as the official code thresholds it) and
  ``prompt.json`` = {"source": [[x, y], ...], "target": [[x, y], ...], "prompt": "..."}; a generated set with
  ground truth (``sdelab.bench.shapes_set``) adds ``gt_image.png``, the true edited image at the input's size.
- DragBench-D (DragDiffusion's, 205 samples in category folders): a folder per sample with
  ``original_image.png`` and ``meta_data.pkl`` = {"prompt": str, "points": [handle, target, handle, ...]
  as (x, y), "mask": an (H, W) array, any non-zero value editable (the set stores 0 and 1)}.

Either may nest its sample folders in category folders; a sample's id is its folder relative to the root.
Pickles are read by ``safe_unpickle``, which builds plain Python and numpy arrays only (a benchmark folder is
untrusted input).
"""

from __future__ import annotations

import builtins
import codecs
import io
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sdelab.inputs import check_points

S_FILES = ("origin_image.png", "prompt.json", "mask.png")  # any of them marks a DragBench-S sample folder
D_FILES = ("original_image.png", "meta_data.pkl")  # any of them marks a DragBench-D sample folder
LAYOUTS = {"dragbench-s": S_FILES, "dragbench-d": D_FILES}


class BadSample(ValueError):
    """A sample that cannot be used; its message is the reason reported for it."""


@dataclass(eq=False)
class DragSample:
    """One drag task of either benchmark: (x, y) image-pixel points paired in order, a mask and a prompt."""

    id: str  # the sample folder relative to the benchmark root, '/'-separated (e.g. "animals/cat_01")
    benchmark: str  # "dragbench-s" or "dragbench-d"
    image_path: Path
    size: tuple[int, int]  # (height, width) of the image
    sources: list[tuple[float, float]]  # handle points (x, y)
    targets: list[tuple[float, float]]  # target points (x, y), one per handle
    mask: np.ndarray | None  # bool (H, W), True = editable; None = the whole image is editable
    prompt: str
    truth_path: Path | None = None  # the true edited image (gt_image.png), where the set has one

    def image(self) -> Image.Image:
        """The input as an RGB PIL image (alpha composited on white, grayscale replicated)."""
        from sdelab.models.images import load_image, to_pil

        return to_pil(load_image(self.image_path))[0]

    def truth(self) -> Image.Image | None:
        """The true edited image as an RGB PIL image, or None where the set has none (the two public layouts)."""
        if self.truth_path is None:
            return None
        from sdelab.models.images import load_image, to_pil

        return to_pil(load_image(self.truth_path))[0]


@dataclass
class DragBench:
    """A benchmark folder read: its layout, the usable samples sorted by id, and (id, reason) for the rest."""

    root: Path
    layout: str
    samples: list[DragSample]
    skipped: list[tuple[str, str]] = field(default_factory=list)


# ---- a restricted unpickler ---------------------------------------------------------------------------------
def _numpy_builders() -> dict[tuple[str, str], object]:
    """The callables numpy's own pickles name (numpy 1 and 2 module paths), found from numpy's reducers."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy(._)core.multiarray._reconstruct
    scalar = np.float64(0).__reduce__()[0]  # numpy(._)core.multiarray.scalar
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # numpy(._)core.numeric._frombuffer (pickle protocol 5)
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        allowed |= {(f"{core}.multiarray", "_reconstruct"): reconstruct, (f"{core}.multiarray", "scalar"): scalar,
                    (f"{core}.numeric", "_frombuffer"): frombuffer}
    for dtype in {type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDG"}:  # numpy 2 names dtype classes
        allowed[("numpy.dtypes", dtype.__name__)] = dtype
    for module in ("builtins", "__builtin__"):  # protocols 0-2 write Python 2's module name
        allowed |= {(module, n): getattr(builtins, n) for n in ("set", "frozenset", "complex", "bytearray", "slice")}
    allowed[("_codecs", "encode")] = codecs.encode  # how protocol-2 pickles write bytes
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """Builds plain Python objects (dict, list, tuple, str, numbers, ...) and numpy arrays, nothing else."""

    ALLOWED = _numpy_builders()

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to build {module}.{name}: only plain Python and numpy types "
                                         "are allowed") from None


def safe_unpickle(data: bytes):
    """Unpickle untrusted bytes with ``SafeUnpickler``; pickle.UnpicklingError for anything it refuses."""
    return SafeUnpickler(io.BytesIO(data)).load()


# ---- checks, each raising BadSample with the reason -----------------------------------------------------------
def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) of a readable image file."""
    if not path.is_file():
        raise BadSample(f"missing {path.name}")
    try:
        with Image.open(path) as im:
            im.load()  # decode it all: a truncated file fails here, not in the middle of a run
            return im.size[::-1]
    except (OSError, SyntaxError, ValueError) as err:  # PIL raises SyntaxError for some broken PNG chunks
        raise BadSample(f"unreadable {path.name} ({err})") from None


def _points(value, name: str, size: tuple[int, int]) -> list[tuple[float, float]]:
    """A non-empty list of (x, y) pairs of finite numbers inside an image of size (height, width), else BadSample."""
    try:
        return check_points(value, name, size)
    except ValueError as err:
        raise BadSample(str(err)[:200]) from None


def _mask_matches(mask: np.ndarray, size: tuple[int, int], what: str) -> np.ndarray:
    if mask.shape != size:
        raise BadSample(f"{what} has size (height, width) = {mask.shape}, the image {size}")
    return mask


def _read_s(folder: Path, sid: str) -> DragSample:
    size = _image_size(folder / "origin_image.png")
    prompt_file = folder / "prompt.json"
    if not prompt_file.is_file():
        raise BadSample("missing prompt.json")
    try:
        meta = json.loads(prompt_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadSample(f"unreadable prompt.json ({err})") from None
    if not isinstance(meta, dict) or not {"source", "target", "prompt"} <= meta.keys():
        raise BadSample('prompt.json must be an object with "source", "target" and "prompt"')
    if not isinstance(meta["prompt"], str):
        raise BadSample(f"prompt must be a string, got {meta['prompt']!r}")
    sources, targets = _points(meta["source"], "source", size), _points(meta["target"], "target", size)
    if len(sources) != len(targets):
        raise BadSample(f"{len(sources)} source points but {len(targets)} target points")
    mask = None
    if (folder / "mask.png").exists():
        _image_size(folder / "mask.png")
        with Image.open(folder / "mask.png") as im:
            mask = _mask_matches(np.asarray(im.convert("L")) >= 128, size, "mask.png")
    truth = folder / "gt_image.png"
    if truth.exists() and _image_size(truth) != size:
        raise BadSample(f"gt_image.png has size (height, width) = {_image_size(truth)}, the image {size}")
    return DragSample(sid, "dragbench-s", folder / "origin_image.png", size, sources, targets, mask, meta["prompt"],
                      truth if truth.exists() else None)


def _read_d(folder: Path, sid: str) -> DragSample:
    size = _image_size(folder / "original_image.png")
    pkl = folder / "meta_data.pkl"
    if not pkl.is_file():
        raise BadSample("missing meta_data.pkl")
    try:
        meta = safe_unpickle(pkl.read_bytes())
    except pickle.UnpicklingError as err:
        raise BadSample(f"unreadable meta_data.pkl ({err})") from None
    except Exception as err:  # noqa: BLE001 - any failure of the unpickler on untrusted bytes means unreadable
        raise BadSample(f"unreadable meta_data.pkl ({type(err).__name__}: {err})") from None
    if not isinstance(meta, dict) or not {"prompt", "points", "mask"} <= meta.keys():
        raise BadSample('meta_data.pkl must hold a dict with "prompt", "points" and "mask"')
    if not isinstance(meta["prompt"], str):
        raise BadSample(f"prompt must be a string, got {meta['prompt']!r}")
    points = _points(meta["points"], "points", size)
    if len(points) % 2:
        raise BadSample(f"points must alternate handle and target: an even number, got {len(points)}")
    mask = meta["mask"]
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or not (mask.dtype == bool or mask.dtype.kind in "iuf"):
        raise BadSample(f"mask must be an (H, W) numeric array, got {type(mask).__name__} "
                        f"{getattr(mask, 'shape', '')}")
    mask = _mask_matches(mask != 0, size, "mask")
    return DragSample(sid, "dragbench-d", folder / "original_image.png", size, points[0::2], points[1::2], mask,
                      meta["prompt"])


READERS = {"dragbench-s": _read_s, "dragbench-d": _read_d}


# ---- the loaders ----------------------------------------------------------------------------------------------
def _sample_folders(root: Path) -> dict[str, list[Path]]:
    """Every folder under root holding a file of either layout, by layout (hidden folders skipped)."""
    found: dict[str, list[Path]] = {name: [] for name in LAYOUTS}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for name, markers in LAYOUTS.items():
            if any(f in files for f in markers):
                found[name].append(Path(folder))
    return found


def load_dragbench(root, layout: str | None = None) -> DragBench:
    """Read DragBench-S or DragBench-D from ``root`` (``layout`` "dragbench-s", "dragbench-d", or None: detect).

    Returns the usable samples sorted by id and (id, reason) for each malformed one (missing files, points
    outside the image or not paired, a mask of another size, unreadable image, JSON or pickle); those never
    stop the loading. ValueError for a root that is not a folder or holds no sample (or both layouts, unasked).
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data must be a DragBench folder, got {str(root)!r} (not a folder)")
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {list(LAYOUTS)} or None, got {layout!r}")
    found = _sample_folders(root)
    if layout is None:
        present = [name for name, folders in found.items() if folders]
        if not present:
            raise ValueError(f"data {str(root)!r} holds no DragBench sample: expected folders with origin_image.png "
                             "and prompt.json (DragBench-S) or original_image.png and meta_data.pkl (DragBench-D)")
        if len(present) > 1:
            raise ValueError(f"data {str(root)!r} mixes DragBench-S ({found['dragbench-s'][0]}) and DragBench-D "
                             f"({found['dragbench-d'][0]}) samples; pass layout to choose one")
        layout = present[0]
    samples, skipped = [], []
    for folder in found[layout]:
        sid = folder.relative_to(root).as_posix() if folder != root else root.name
        try:
            samples.append(READERS[layout](folder, sid))
        except BadSample as err:
            skipped.append((sid, str(err)))
    return DragBench(root, layout, sorted(samples, key=lambda s: s.id), sorted(skipped))
