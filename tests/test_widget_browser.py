"""DragPicker in a real browser: JupyterLab, Debian's chromium and playwright; clicks and a stroke reach the kernel.

Skipped (with the reason) only where chromium or playwright is missing; CI installs both (.ci/run).
The notebook writes the pickers' state to state.json on every change; the test polls that file.
"""

import json
import math
import time

import nbformat
import numpy as np
import pytest

from tools.browser import chromium, chromium_page, jupyter_lab, run_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = """\
import json, os
import ipywidgets
import numpy as np
from PIL import Image
from sdelab.widgets import DragPicker

y, x = np.mgrid[0:40, 0:64]
wide = DragPicker(Image.fromarray(np.stack([x * 4, y * 6, 128 + 0 * x], -1).astype(np.uint8)), display_size=512)
digit = DragPicker(np.eye(16), display_size=256)  # 16x16, shown 16 times enlarged
pickers = {"wide": wide, "digit": digit}

def dump(change=None):
    state = {name: {"sources": p.source_points, "targets": p.target_points,
                    "mask": None if p.mask is None else np.argwhere(np.asarray(p.mask))[:, ::-1].tolist()}
             for name, p in pickers.items()}
    with open("state.json.tmp", "w") as f:
        json.dump(state, f)
    os.replace("state.json.tmp", "state.json")

for p in pickers.values():
    p.observe(dump, names=["source_points", "target_points", "mask"])
ipywidgets.VBox([wide, digit])
"""
WIDE_SCALE, DIGIT_SCALE = 512 / 64, 256 / 16  # CSS pixels per image pixel
WIDE_SOURCES, WIDE_TARGETS = [[10, 10], [40, 30]], [[30, 20], [20, 35]]
STROKE = ((5.5, 30.5), (25.5, 30.5))  # image pixels, from, to
BRUSH = 40  # CSS pixels across: a radius of 2.5 image pixels in `wide`


def _distance_to_stroke(x: float, y: float) -> float:
    (x0, y0), (x1, y1) = STROKE
    u = np.clip(((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2), 0, 1)
    return math.hypot(x - x0 - u * (x1 - x0), y - y0 - u * (y1 - y0))


def _in_view(canvas) -> dict:
    """Scroll a picker's top canvas to the middle of the notebook; its box, checked to take clicks at its corners."""
    canvas.evaluate("c => c.scrollIntoView({block: 'center'})")
    box = canvas.bounding_box()
    corners = [[box["x"] + 1, box["y"] + 1], [box["x"] + box["width"] - 1, box["y"] + box["height"] - 1]]
    hit = canvas.evaluate("(c, corners) => corners.map(([x, y]) => document.elementFromPoint(x, y) === c)", corners)
    assert all(hit), f"the picker is partly hidden (corners reachable: {hit}); make the page taller"
    return box


def _wait_for_state(path, done, timeout: float = 15) -> dict:
    """Poll the notebook's state file until done(state); return the last state read (or {})."""
    state, deadline = {}, time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            state = json.loads(path.read_text())
            if done(state):
                break
        time.sleep(0.1)
    return state


@pytest.fixture
def page():
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if chromium() is None:
        pytest.skip("chromium is not on PATH (Debian: apt-get install chromium)")
    with chromium_page() as page:
        yield page


def test_clicks_and_a_stroke_reach_the_kernel(page, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "picker.ipynb")
    # time limits (s): server 30, opening and running the notebook 40, drawing 30, state 15: a hang fails in 2 min
    with jupyter_lab(tmp_path, timeout=30) as url:
        run_notebook(page, url, "picker.ipynb", timeout=40)
        wide, digit = page.locator(".sdelab-picker").nth(0), page.locator(".sdelab-picker").nth(1)
        digit.locator("canvas.sdelab-picker-top").wait_for(timeout=30_000)
        box = _in_view(wide.locator("canvas.sdelab-picker-top"))

        def at(x, y, scale=WIDE_SCALE, b=box):  # image pixels -> page coordinates
            return b["x"] + x * scale, b["y"] + y * scale

        # point mode: clicks inside pixels (not on their edges), then one click too many, undone
        for (sx, sy), (tx, ty) in zip(WIDE_SOURCES, WIDE_TARGETS, strict=True):
            page.mouse.click(*at(sx + 0.3, sy + 0.7))
            page.mouse.click(*at(tx + 0.6, ty + 0.4))
        page.mouse.click(*at(50.5, 5.5))
        wide.get_by_role("button", name="Undo", exact=True).click()
        # mask mode: one stroke with a 40 px brush
        wide.get_by_role("button", name="Mask", exact=True).click()
        wide.locator(".sdelab-picker-slider").evaluate(
            f"s => {{ s.value = {BRUSH}; s.dispatchEvent(new Event('input', {{bubbles: true}})); }}")
        (x0, y0), (x1, y1) = STROKE
        page.mouse.move(*at(x0, y0))
        page.mouse.down()
        page.mouse.move(*at(x1, y1), steps=10)
        page.mouse.up()
        # the 16x16 picker: its corner pixels
        digit_box = _in_view(digit.locator("canvas.sdelab-picker-top"))
        page.mouse.click(*at(0.5, 0.5, DIGIT_SCALE, digit_box))
        page.mouse.click(*at(15.9, 15.9, DIGIT_SCALE, digit_box))

        state = _wait_for_state(tmp_path / "state.json", lambda s: s["wide"]["mask"] and s["digit"]["targets"]
                                and len(s["wide"]["sources"]) == 2)

    assert state, "the notebook never wrote its state"
    assert state["wide"]["sources"] == WIDE_SOURCES and state["wide"]["targets"] == WIDE_TARGETS
    assert state["digit"] == {"sources": [[0, 0]], "targets": [[15, 15]], "mask": None}
    painted = {tuple(p) for p in state["wide"]["mask"]}
    radius = BRUSH / 2 / WIDE_SCALE
    core = {(x, y) for x in range(64) for y in range(40) if _distance_to_stroke(x + 0.5, y + 0.5) <= radius - 0.5}
    assert core <= painted, f"the stroke left {sorted(core - painted)} unpainted"
    far = [p for p in painted if _distance_to_stroke(p[0] + 0.5, p[1] + 0.5) > radius + 1]
    assert not far, f"painted far from the stroke: {far}"
