"""The one markdown table formatter behind every table sdelab prints: a caption naming what the numbers are
measured against, then the table; an ``Estimate`` cell shows its 95% interval."""

from __future__ import annotations

import numpy as np

from sdelab.eval.bootstrap import Estimate


def number(value: float, digits: int = 2, signed: bool = False) -> str:
    """value with ``digits`` decimals (and a sign if ``signed``); a round-off -0.00 prints as 0.00."""
    value = round(value, digits) + 0.0
    return f"{value:+.{digits}f}" if signed and value != 0 else f"{value:.{digits}f}"


def cell(value, digits: int = 2, signed: bool = False, interval: bool = True) -> str:
    """A table cell of a measured value: "" for None, an Estimate as "0.14 [0.09, 0.21]" (its value alone without
    ``interval``), a float with ``digits`` decimals, anything else (a label: a method, a t0) as str."""
    if value is None:
        return ""
    if isinstance(value, Estimate):
        text = number(value.value, digits, signed)
        return (f"{text} [{number(value.low, digits, signed)}, {number(value.high, digits, signed)}]" if interval
                else text)
    if isinstance(value, float | np.floating):
        return number(value, digits, signed)
    return str(value)


def label(value) -> str:
    """A table cell that names a row (a t0, a step count): "" for None, else the value as written."""
    return "" if value is None else str(value)


def markdown_table(header: list[str], rows: list[list[str]], caption: str) -> str:
    """The caption (what is measured, against which reference set, with which intervals), then the table."""
    if not caption:
        raise ValueError("caption must say what the table measures and against which reference set")
    if any(len(r) != len(header) for r in rows):
        sizes = sorted({len(r) for r in rows})
        raise ValueError(f"every row must have {len(header)} cells (the header's), got rows of {sizes}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join([caption, "", *lines])
