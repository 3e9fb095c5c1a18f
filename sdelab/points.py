"""(x, y) image points: the one check that the editors, the picker, DragBench and its metrics apply (no torch here).

Points are (x, y) in image pixels (docs/conventions.md); a point lies in an image of size (height, width) when
0 <= x < width and 0 <= y < height. Nothing is clamped: a point outside is an error naming the argument.
"""

from __future__ import annotations

import math
from numbers import Integral, Real


def check_points(points, name: str, size: tuple[int, int], *, integers: bool = False,
                 allow_empty: bool = False) -> list[tuple]:
    """``points`` as a list of (x, y) tuples inside an image of size = (height, width), else ValueError naming ``name``.

    integers: the coordinates must be whole numbers (the picker's clicks); else any finite real numbers.
    """
    h, w = size
    kind = "integers" if integers else "numbers"
    wanted = Integral if integers else Real
    try:
        pairs = [tuple(p) for p in points]
        ok = not isinstance(points, str | bytes | dict) and all(
            len(p) == 2 and all(isinstance(v, wanted) and not isinstance(v, bool) for v in p) for p in pairs)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a list of (x, y) pairs of {kind}, got {points!r}"[:300])
    pairs = [(int(x), int(y)) if integers else (float(x), float(y)) for x, y in pairs]
    if not pairs and not allow_empty:
        raise ValueError(f"{name} must hold at least one point")
    if not all(math.isfinite(v) for p in pairs for v in p):
        raise ValueError(f"{name} must be finite numbers, got {pairs}")
    for x, y in pairs:
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"{name} has the point ({x:g}, {y:g}) outside the {w}x{h} image: 0 <= x < {w}, "
                             f"0 <= y < {h} (nothing is clamped)")
    return pairs
