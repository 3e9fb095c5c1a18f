"""The shapes world: procedural scenes of simple objects, on which a drag has a right answer.

A scene is a flat grey background with 1-3 objects (disc, square, triangle), each of its own palette colour, so
an object is known by its colour. Moving an object gives another scene of the world, rendered exactly: every drag
has a ground truth. docs/shapes.md states the world's rules and the judge's thresholds.

- ``Shape``, ``Scene``: frozen dataclasses, JSON-serialisable with ``dataclasses.asdict`` (``Scene.from_dict``
  reads them back).
- ``random_scene``, ``random_scenes``: seeded scenes; ``render``, ``render_batch``: anti-aliased RGB images;
  ``moved``: the scene with one object moved, the ground truth of a drag.
- ``parse``, ``parse_batch``: the judge; the scene an image shows and whether a clean scene explains it.
- ``drag_cases``, ``band_masks``: one drag per scene with its ground truth, and the band mask around it.
- ``SceneBatch``, ``random_scene_batch``, ``render_scene_batch``, ``train_batches``: the same world drawn and
  rendered batch-wise in torch from a ``torch.Generator``, for training (``python -m sdelab train shapes``).

Coordinates are (x, y) pixels with pixel (row i, column j) centred at (x = j, y = i), so an image of side S spans
[-0.5, S - 0.5] on both axes and a rounded centre is the pixel that holds it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy import ndimage

SIZE = 32  # the canvas side in pixels
CHANNELS = 3  # RGB
PROMPTS = ()  # no class prompts: the shapes model is unconditional (sdelab.recipes)
SUPERSAMPLE = 8  # samples per pixel along each axis (64 per pixel)
KINDS = ("disc", "square", "triangle")
# the 8 corners of the RGB cube shrunk to [0.1, 0.9], around the background at its centre: every colour is
# 0.4 * sqrt(3) = 0.69 away from the background and at least 70.5 degrees from every other colour, seen from it
PALETTE = {
    "black": (0.1, 0.1, 0.1), "red": (0.9, 0.1, 0.1), "green": (0.1, 0.9, 0.1), "blue": (0.1, 0.1, 0.9),
    "yellow": (0.9, 0.9, 0.1), "magenta": (0.9, 0.1, 0.9), "cyan": (0.1, 0.9, 0.9), "white": (0.9, 0.9, 0.9),
}
BACKGROUND = (0.5, 0.5, 0.5)
CONTRAST = 0.4 * math.sqrt(3)  # |colour - background| for every colour: the judge's unit of error
SIZE_RANGE = (5.0, 8.0)  # an object's size: the square root of its area in pixels
MAX_OBJECTS = 3
GAP = 1.0  # the least distance in pixels between two objects' circumscribed circles
MARGIN = 1.0  # the least distance in pixels between an object's circumscribed circle and the image border
# circumradius / size: disc r = s / sqrt(pi); square of side s; equilateral triangle of side 2 s / 3^(1/4)
CIRCUMRADIUS = {"disc": 1 / math.sqrt(math.pi), "square": 1 / math.sqrt(2), "triangle": 2 / 3**0.75}
DRAG_RANGE = (3.0, 8.0)  # the length of a drag in pixels

# the judge (docs/shapes.md): per-pixel error |image - re-render| / CONTRAST
MAX_ERROR = 0.3  # no pixel may be off by more than this
LOOSE_ERROR, MAX_LOOSE = 0.15, 4  # nor may more than MAX_LOOSE pixels be off by more than LOOSE_ERROR
TOLERANCE = 0.5  # pixels of slack on the world's size range and placement rules
CORE = 0.5  # coverage above which a pixel belongs to an object's core
MIN_CORE = 4  # core pixels that make an object


@dataclass(frozen=True)
class Shape:
    """One object: its kind, palette colour, centre (x, y) in pixels (the centroid) and size (sqrt of its area)."""

    kind: str
    colour: str
    x: float
    y: float
    size: float

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.colour not in PALETTE:
            raise ValueError(f"colour must be one of {tuple(PALETTE)}, got {self.colour!r}")
        if not self.size > 0:
            raise ValueError(f"size must be > 0 pixels, got {self.size!r}")

    @property
    def radius(self) -> float:
        """The circumscribed circle's radius in pixels."""
        return CIRCUMRADIUS[self.kind] * self.size


@dataclass(frozen=True)
class Scene:
    """Objects of distinct colours on the background of a canvas ``size`` pixels wide."""

    shapes: tuple[Shape, ...]
    size: int = SIZE

    def __post_init__(self):
        if not isinstance(self.size, int) or self.size < 8:
            raise ValueError(f"size must be an integer >= 8 pixels, got {self.size!r}")
        colours = [s.colour for s in self.shapes]
        if len(set(colours)) != len(colours):
            raise ValueError(f"shapes must have distinct colours, got {colours}")

    @classmethod
    def from_dict(cls, data: dict) -> Scene:
        """The scene that ``dataclasses.asdict`` wrote (e.g. read back from JSON)."""
        return cls(tuple(Shape(**s) for s in data["shapes"]), data["size"])


# ---- the rules of the world -----------------------------------------------------------------------------------
def placement_problem(scene: Scene, tolerance: float = 0.0) -> str:
    """Why ``scene`` breaks the world's rules ("" if it does not), each rule loosened by ``tolerance`` pixels:
    1 to MAX_OBJECTS objects, sizes in SIZE_RANGE, circumscribed circles MARGIN inside the image and GAP apart."""
    if not 1 <= len(scene.shapes) <= MAX_OBJECTS:
        return f"{len(scene.shapes)} objects, not 1 to {MAX_OBJECTS}"
    lo, hi = SIZE_RANGE[0] - tolerance, SIZE_RANGE[1] + tolerance
    for s in scene.shapes:
        if not lo <= s.size <= hi:
            return f"the {s.colour} {s.kind}'s size {s.size:.2f} lies outside [{lo}, {hi}]"
        reach = s.radius + MARGIN - tolerance
        if not (reach - 0.5 <= min(s.x, s.y) and max(s.x, s.y) <= scene.size - 0.5 - reach):
            return f"the {s.colour} {s.kind} at ({s.x:.2f}, {s.y:.2f}) is not {MARGIN - tolerance} px inside the image"
    for i, a in enumerate(scene.shapes):
        for b in scene.shapes[i + 1:]:
            if math.hypot(a.x - b.x, a.y - b.y) < a.radius + b.radius + GAP - tolerance:
                return f"the {a.colour} {a.kind} and the {b.colour} {b.kind} are closer than {GAP - tolerance} px"
    return ""


def random_scene(rng: np.random.Generator | int, n_objects: int | None = None, size: int = SIZE) -> Scene:
    """A scene drawn from the world: 1-3 objects (or ``n_objects``), kinds uniform, colours without replacement,
    sizes uniform in SIZE_RANGE, centres uniform where the object fits, redrawn until the rules hold.

    rng: a ``numpy.random.Generator`` or an integer seed."""
    rng = np.random.default_rng(rng)
    if n_objects is not None and not 1 <= n_objects <= MAX_OBJECTS:
        raise ValueError(f"n_objects must lie in [1, {MAX_OBJECTS}], got {n_objects}")
    if not isinstance(size, int) or size < 2 * (CIRCUMRADIUS["triangle"] * SIZE_RANGE[1] + MARGIN) + 1:
        raise ValueError(f"size must be an integer >= 18 pixels (the largest object must fit), got {size!r}")
    while True:
        count = n_objects or int(rng.integers(1, MAX_OBJECTS + 1))
        colours = rng.choice(list(PALETTE), size=count, replace=False)
        shapes: list[Shape] = []
        for colour in colours:
            shape = _place(rng, str(colour), shapes, size)
            if shape is None:
                break
            shapes.append(shape)
        else:
            return Scene(tuple(shapes), size)


def _place(rng: np.random.Generator, colour: str, others: list[Shape], size: int, tries: int = 100) -> Shape | None:
    """One object of ``colour`` at a uniform place where it fits beside ``others``; None after ``tries`` misses."""
    kind, s = KINDS[int(rng.integers(len(KINDS)))], float(rng.uniform(*SIZE_RANGE))
    reach = CIRCUMRADIUS[kind] * s + MARGIN
    for _ in range(tries):
        x, y = rng.uniform(reach - 0.5, size - 0.5 - reach, 2)
        shape = Shape(kind, colour, float(x), float(y), s)
        if not placement_problem(Scene((*others, shape), size)):
            return shape
    return None


def random_scenes(n: int, seed: int = 0, size: int = SIZE) -> list[Scene]:
    """``n`` scenes from ``random_scene`` with one ``numpy.random.default_rng(seed)``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    return [random_scene(rng, size=size) for _ in range(n)]


def moved(scene: Scene, i: int, dx: float, dy: float) -> Scene:
    """``scene`` with object ``i`` moved by (dx, dy) pixels and every other object kept: a drag's ground truth.

    Raises ValueError if the moved object leaves the image or comes closer than GAP to another object."""
    if not 0 <= i < len(scene.shapes):
        raise ValueError(f"i must lie in [0, {len(scene.shapes) - 1}], got {i}")
    shapes = list(scene.shapes)
    s = shapes[i]
    shapes[i] = Shape(s.kind, s.colour, s.x + dx, s.y + dy, s.size)
    result = Scene(tuple(shapes), scene.size)
    problem = placement_problem(result)
    if problem:
        raise ValueError(f"dx, dy = ({dx}, {dy}) must keep the scene in the world's rules: {problem}")
    return result


# ---- rendering -------------------------------------------------------------------------------------------------
def _inside(kind: str, dx: np.ndarray, dy: np.ndarray, size: float) -> np.ndarray:
    """Whether the points at offsets (dx, dy) from an object's centroid lie in it (broadcast arrays)."""
    if kind == "disc":
        return dx * dx + dy * dy <= size * size / math.pi
    if kind == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= size / 2
    # the equilateral triangle pointing up (apex at the smaller y): three half-planes at the inradius
    inradius = CIRCUMRADIUS["triangle"] * size / 2
    slanted = np.abs(dx) * (math.sqrt(3) / 2) - dy / 2
    return (dy <= inradius) & (slanted <= inradius)


def coverage(shape: Shape, side: int, scale: float = 1.0, factor: int = SUPERSAMPLE) -> np.ndarray:
    """(side, side) float64: the fraction of each pixel that ``shape`` covers, by ``factor`` x ``factor``
    supersampling; ``scale`` maps the shape's canvas onto the image (pixel edges onto pixel edges)."""
    x, y = (shape.x + 0.5) * scale - 0.5, (shape.y + 0.5) * scale - 0.5
    s = shape.size * scale
    reach = shape.radius * scale
    c0, c1 = max(0, math.floor(x - reach)), min(side, math.ceil(x + reach) + 1)
    r0, r1 = max(0, math.floor(y - reach)), min(side, math.ceil(y + reach) + 1)
    out = np.zeros((side, side))
    if c0 >= c1 or r0 >= r1:
        return out
    offsets = (np.arange(factor) + 0.5) / factor - 0.5  # (factor,) sample offsets from a pixel centre
    xs = (np.arange(c0, c1)[:, None] + offsets).ravel() - x  # (w * factor,)
    ys = (np.arange(r0, r1)[:, None] + offsets).ravel() - y  # (h * factor,)
    inside = _inside(shape.kind, xs[None, :], ys[:, None], s)  # (h * factor, w * factor)
    out[r0:r1, c0:c1] = inside.reshape(r1 - r0, factor, c1 - c0, factor).mean(axis=(1, 3))
    return out


def _render_array(scene: Scene, size: int) -> np.ndarray:
    """(3, size, size) float64: the background with each object composited over it in order."""
    image = np.broadcast_to(np.array(BACKGROUND)[:, None, None], (3, size, size)).copy()
    for shape in scene.shapes:
        a = coverage(shape, size, size / scene.size)  # (size, size)
        image += a * (np.array(PALETTE[shape.colour])[:, None, None] - image)
    return image


def render(scene: Scene, size: int | None = None) -> torch.Tensor:
    """(3, size, size) float32 RGB in [0, 1]: ``scene`` anti-aliased by SUPERSAMPLE^2 samples per pixel, at
    the scene's own side (32 by default) or scaled to ``size``."""
    size = scene.size if size is None else size
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return torch.from_numpy(_render_array(scene, size)).float()


def render_batch(scenes: list[Scene], size: int | None = None) -> torch.Tensor:
    """(n, 3, size, size) float32: ``render`` of every scene."""
    if not scenes:
        raise ValueError("scenes must hold at least one scene")
    return torch.stack([render(s, size) for s in scenes])


# ---- the judge -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parse:
    """What ``parse`` read from an image: the scene, whether it explains the image, the largest per-pixel error
    of its re-render (in CONTRAST units), and why the image is invalid ("" when valid)."""

    scene: Scene
    valid: bool
    residual: float
    reason: str


def colour_weight(image: np.ndarray, colour: str) -> np.ndarray:
    """How much of palette ``colour`` each pixel of image (3, H, W) shows as a mix with the background: (H, W) in
    [0, 1] (the projection on the colour's direction from the background, clipped)."""
    direction = np.array(PALETTE[colour]) - np.array(BACKGROUND)  # (3,)
    d = image - np.array(BACKGROUND)[:, None, None]  # (3, H, W)
    return np.clip(np.einsum("c,chw->hw", direction, d) / CONTRAST**2, 0, 1)


def _colour_coverage(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel the palette colour that best explains it as a mix with the background, and that mix's weight.

    image (3, H, W) -> (label (H, W) int palette index, weight (H, W) in [0, 1])."""
    d = image - np.array(BACKGROUND)[:, None, None]  # (3, H, W)
    directions = np.array(list(PALETTE.values())) - np.array(BACKGROUND)  # (K, 3)
    weights = np.clip(np.einsum("kc,chw->khw", directions, d) / CONTRAST**2, 0, 1)  # (K, H, W)
    misfit = ((d[None] - weights[:, None] * directions[:, :, None, None]) ** 2).sum(1)  # (K, H, W)
    label = misfit.argmin(0)
    return label, np.take_along_axis(weights, label[None], 0)[0]


def _object_region(own: np.ndarray) -> np.ndarray | None:
    """own (H, W): one colour's weight. The largest connected core (weight > CORE, 8-connected), grown by two
    pixels to take its anti-aliased rim; None if the core has fewer than MIN_CORE pixels."""
    labels, count = ndimage.label(own > CORE, structure=np.ones((3, 3)))
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    if sizes.max() < MIN_CORE:
        return None
    core = labels == 1 + sizes.argmax()
    return ndimage.binary_dilation(core, structure=np.ones((3, 3)), iterations=2) & (own > 0)


def _fit_shape(colour: str, own: np.ndarray) -> Shape | None:
    """The object of ``colour`` whose coverage best matches own (H, W): centre and size from the moments of its
    region, the kind of least L1 misfit among KINDS."""
    region = _object_region(own)
    if region is None:
        return None
    w = np.where(region, own, 0.0)
    mass = w.sum()
    ys, xs = np.indices(own.shape)
    x, y = (w * xs).sum() / mass, (w * ys).sum() / mass
    side = own.shape[0]
    candidates = [Shape(kind, colour, float(x), float(y), float(math.sqrt(mass))) for kind in KINDS]
    misfits = [np.abs(coverage(c, side) - w).sum() for c in candidates]
    return candidates[int(np.argmin(misfits))]


def _judge(image: np.ndarray, scene: Scene) -> tuple[bool, float, str]:
    """Whether ``scene`` explains image (3, S, S): its re-render is close everywhere and it obeys the world's
    rules loosened by TOLERANCE. Returns (valid, the largest per-pixel error, reason)."""
    error = np.sqrt(((image - _render_array(scene, scene.size)) ** 2).sum(0)) / CONTRAST  # (S, S)
    worst = float(error.max())
    if not scene.shapes:
        return False, worst, "no object"
    if worst > MAX_ERROR:
        y, x = np.unravel_index(error.argmax(), error.shape)
        return False, worst, f"the re-render is off by {worst:.2f} > {MAX_ERROR} at (x, y) = ({x}, {y})"
    loose = int((error > LOOSE_ERROR).sum())
    if loose > MAX_LOOSE:
        return False, worst, f"{loose} pixels are off by more than {LOOSE_ERROR} (at most {MAX_LOOSE} may be)"
    problem = placement_problem(scene, TOLERANCE)
    return not problem, worst, problem


def parse(image: torch.Tensor | np.ndarray) -> Parse:
    """The scene that image (3, S, S) RGB in [0, 1] shows, and the judge's verdict (docs/shapes.md).

    Each pixel is read as the background mixed with the palette colour that fits it best; each colour with a core
    of at least MIN_CORE pixels is one object, its centre the weighted centroid, its size the square root of its
    weight, its kind the best of KINDS re-rendered there. The image is valid if the re-rendered scene matches it
    within MAX_ERROR at every pixel and LOOSE_ERROR at all but MAX_LOOSE pixels, and the scene keeps the world's
    rules within TOLERANCE pixels. Ghosts, half objects, blurs, blends and noisy pastes all fail the first test."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[0] != 3 or image.shape[1] != image.shape[2] or image.shape[1] < 8:
        raise ValueError(f"image must have shape (3, S, S) with S >= 8, got {tuple(image.shape)}")
    label, weight = _colour_coverage(image)
    shapes = []
    for k, colour in enumerate(PALETTE):
        shape = _fit_shape(colour, np.where(label == k, weight, 0.0))
        if shape is not None:
            shapes.append(shape)
    scene = Scene(tuple(shapes), image.shape[1])
    return Parse(scene, *_judge(image, scene))


def parse_batch(images: torch.Tensor | np.ndarray) -> list[Parse]:
    """``parse`` of every image in (n, 3, S, S)."""
    return [parse(image) for image in np.asarray(images, dtype=np.float64)]


# ---- drags with their ground truth -------------------------------------------------------------------------------
@dataclass
class DragCases:
    """One drag per scene: object ``index`` moves from its centre ``source`` to ``target`` ((x, y) pixels)."""

    images: torch.Tensor  # (n, 3, S, S) the inputs in [0, 1]
    truth: torch.Tensor  # (n, 3, S, S) the ground truth: the same scene with the object moved
    scenes: list[Scene]
    truth_scenes: list[Scene]
    index: torch.Tensor  # (n,) int64 the dragged object in each scene
    source: torch.Tensor  # (n, 2) int64 the object's centre
    target: torch.Tensor  # (n, 2) int64 its centre in the ground truth

    def to_dict(self) -> dict:
        """The scenes and points, JSON-serialisable (the images follow from the scenes)."""
        return {"scenes": [asdict(s) for s in self.scenes], "truth_scenes": [asdict(s) for s in self.truth_scenes],
                "index": self.index.tolist(), "source": self.source.tolist(), "target": self.target.tolist()}


def _drag(rng: np.random.Generator, size: int, tries: int = 100) -> tuple[Scene, Scene, int, tuple, tuple] | None:
    """One random scene whose dragged object sits on a pixel centre, and a drag of it that keeps the rules:
    (scene, truth, i, source, target), or None if none of ``tries`` drags fits."""
    scene = random_scene(rng, size=size)
    i = int(rng.integers(len(scene.shapes)))
    s = scene.shapes[i]
    sx, sy = round(s.x), round(s.y)
    try:
        scene = moved(scene, i, sx - s.x, sy - s.y)  # on the pixel: the drag's integer points are exact
    except ValueError:
        return None
    for _ in range(tries):
        angle, length = rng.uniform(0, 2 * math.pi), rng.uniform(*DRAG_RANGE)
        dx, dy = round(length * math.cos(angle)), round(length * math.sin(angle))
        if not DRAG_RANGE[0] <= math.hypot(dx, dy) <= DRAG_RANGE[1]:
            continue
        try:
            truth = moved(scene, i, dx, dy)
        except ValueError:
            continue
        return scene, truth, i, (sx, sy), (sx + dx, sy + dy)
    return None


def drag_cases(n: int = 300, seed: int = 0, size: int = SIZE) -> DragCases:
    """``n`` drags drawn with ``numpy.random.default_rng(seed)``: in each random scene one object (uniform) is put on
    the nearest pixel centre and dragged from there by an integer vector of length 3 to 8 px in a uniform direction,
    to a place where it fits (the world's rules hold for the moved scene). Scenes without such a drag are redrawn."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    drags = []
    while len(drags) < n:
        drag = _drag(rng, size)
        if drag is not None:
            drags.append(drag)
    scenes, truths, index, source, target = zip(*drags, strict=True)
    return DragCases(render_batch(list(scenes)), render_batch(list(truths)), list(scenes), list(truths),
                     torch.tensor(index), torch.tensor(source), torch.tensor(target))


def band_masks(cases: DragCases, radius: float | torch.Tensor) -> torch.Tensor:
    """bool (n, 1, S, S): pixels whose centre lies within ``radius`` of the segment from source to target; radius in
    pixels, one for every case or (n,) one per case."""
    r = torch.as_tensor(radius, dtype=torch.float64)
    if r.ndim > 1 or (r.ndim == 1 and len(r) != len(cases.source)) or bool((r < 0).any()):
        raise ValueError(f"radius must be >= 0 pixels, one number or one per case ({len(cases.source)}), got {radius}")
    side = cases.images.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(float(side)), torch.arange(float(side)), indexing="ij")
    p = torch.stack([xx, yy], -1)[None]  # (1, S, S, 2)
    s, t = cases.source.double()[:, None, None], cases.target.double()[:, None, None]  # (n, 1, 1, 2)
    d = t - s
    u = ((p - s) * d).sum(-1, keepdim=True) / (d * d).sum(-1, keepdim=True)
    closest = s + u.clamp(0, 1) * d
    return ((p - closest).norm(dim=-1) <= r.reshape(-1, 1, 1))[:, None]  # r: () or (n,) -> broadcast


# ---- batches for training: the same world, drawn and rendered in torch -----------------------------------------
@dataclass
class SceneBatch:
    """n scenes as tensors, MAX_OBJECTS slots each; slot k of scene i holds an object iff k < count[i]."""

    count: torch.Tensor  # (n,) int64 objects per scene, in [1, MAX_OBJECTS]
    kind: torch.Tensor  # (n, MAX_OBJECTS) int64 index into KINDS
    colour: torch.Tensor  # (n, MAX_OBJECTS) int64 index into PALETTE, distinct within a scene
    x: torch.Tensor  # (n, MAX_OBJECTS) float64 centres, pixels
    y: torch.Tensor  # (n, MAX_OBJECTS) float64
    size: torch.Tensor  # (n, MAX_OBJECTS) float64 sqrt of the area, pixels
    side: int = SIZE

    def scenes(self) -> list[Scene]:
        """The batch as ``Scene`` objects."""
        colours = list(PALETTE)
        return [Scene(tuple(Shape(KINDS[int(self.kind[i, k])], colours[int(self.colour[i, k])], float(self.x[i, k]),
                                  float(self.y[i, k]), float(self.size[i, k])) for k in range(int(self.count[i]))),
                      self.side) for i in range(len(self.count))]


def random_scene_batch(n: int, generator: torch.Generator, tries: int = 100) -> SceneBatch:
    """``n`` scenes of the world drawn like ``random_scene``, batch-wise, from the torch ``generator`` only: count,
    kinds and sizes uniform, colours without replacement, then each object's centre uniform where it fits, up to
    ``tries`` draws, beside the objects placed before it; a scene whose object finds no place is redrawn whole."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    shape = (n, MAX_OBJECTS)
    out = SceneBatch(torch.zeros(n, dtype=torch.int64), torch.zeros(shape, dtype=torch.int64),
                     torch.zeros(shape, dtype=torch.int64), *torch.zeros((3, *shape), dtype=torch.float64))
    circumradius = torch.tensor([CIRCUMRADIUS[k] for k in KINDS], dtype=torch.float64)
    todo = torch.arange(n)  # scenes still to draw
    while len(todo):
        m = len(todo)
        count = torch.randint(1, MAX_OBJECTS + 1, (m,), generator=generator)
        colour = torch.rand(m, len(PALETTE), generator=generator).argsort(1)[:, :MAX_OBJECTS]  # (m, MAX_OBJECTS)
        kind = torch.randint(len(KINDS), (m, MAX_OBJECTS), generator=generator)
        size = SIZE_RANGE[0] + (SIZE_RANGE[1] - SIZE_RANGE[0]) * torch.rand(m, MAX_OBJECTS, generator=generator,
                                                                             dtype=torch.float64)
        radius = circumradius[kind] * size  # (m, MAX_OBJECTS)
        lo = radius + MARGIN - 0.5  # centres uniform in [lo, hi] keep the margin
        xy = torch.zeros(m, MAX_OBJECTS, 2, dtype=torch.float64)
        ok = torch.ones(m, dtype=torch.bool)
        for k in range(MAX_OBJECTS):
            placed = count <= k  # scenes without an object k need no place for it
            for _ in range(tries):
                if placed.all():
                    break
                u = torch.rand(m, 2, generator=generator, dtype=torch.float64)
                candidate = lo[:, k, None] + u * (SIZE - 1 - 2 * lo[:, k, None])  # (m, 2)
                apart = (candidate[:, None] - xy[:, :k]).norm(dim=-1) >= radius[:, :k] + radius[:, k, None] + GAP
                fits = ~placed & apart.all(1)
                xy[fits, k] = candidate[fits]
                placed |= fits
            ok &= placed
        done = todo[ok]
        out.count[done], out.kind[done], out.colour[done] = count[ok], kind[ok], colour[ok]
        out.x[done], out.y[done], out.size[done] = xy[ok, :, 0], xy[ok, :, 1], size[ok]
        todo = todo[~ok]
    return out


def render_scene_batch(batch: SceneBatch) -> torch.Tensor:
    """(n, 3, S, S) float32 RGB in [0, 1]: every scene of ``batch`` rendered as ``render`` does (the same
    SUPERSAMPLE^2 samples per pixel and compositing), all objects of a kind at once."""
    n, side, f = len(batch.count), batch.side, SUPERSAMPLE
    samples = ((torch.arange(side, dtype=torch.float64)[:, None] + (torch.arange(f) + 0.5) / f - 0.5)
               .reshape(-1))  # (side * f,) sample coordinates, pixel centres at integers
    present = torch.arange(MAX_OBJECTS) < batch.count[:, None]  # (n, MAX_OBJECTS)
    cover = torch.zeros(n, MAX_OBJECTS, side, side, dtype=torch.float64)
    for k, kind in enumerate(KINDS):
        sel = present & (batch.kind == k)  # (n, MAX_OBJECTS)
        if not sel.any():
            continue
        dx = samples[None, None, :] - batch.x[sel][:, None, None]  # (m, 1, side * f)
        dy = samples[None, :, None] - batch.y[sel][:, None, None]  # (m, side * f, 1)
        s = batch.size[sel][:, None, None]
        if kind == "disc":
            inside = dx * dx + dy * dy <= s * s / math.pi
        elif kind == "square":
            inside = torch.maximum(dx.abs(), dy.abs()) <= s / 2
        else:  # the equilateral triangle pointing up, as in _inside
            inradius = CIRCUMRADIUS["triangle"] * s / 2
            inside = (dy <= inradius) & (dx.abs() * (math.sqrt(3) / 2) - dy / 2 <= inradius)
        cover[sel] = inside.reshape(-1, side, f, side, f).double().mean(dim=(2, 4))
    palette = torch.tensor(list(PALETTE.values()), dtype=torch.float64)  # (K, 3)
    image = torch.tensor(BACKGROUND, dtype=torch.float64)[None, :, None, None].repeat(n, 1, side, side)
    for k in range(MAX_OBJECTS):  # in order, like _render_array; absent slots have zero coverage
        a = cover[:, k, None]  # (n, 1, side, side)
        image += a * (palette[batch.colour[:, k]][:, :, None, None] - image)
    return image.float()


def train_batches():
    """Training batches of fresh random scenes: ``draw(batch_size, generator)`` -> images (b, 3, 32, 32) in [0, 1]
    and their object counts (b,) int64, drawn from the torch ``generator`` only (the world is procedural: there is
    no fixed training set, and one seed gives the same batches on every device)."""

    def draw(batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        batch = random_scene_batch(batch_size, generator)
        return render_scene_batch(batch), batch.count

    return draw
