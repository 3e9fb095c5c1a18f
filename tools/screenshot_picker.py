"""Screenshot of the DragPicker in JupyterLab for the README: ``python tools/screenshot_picker.py [--out PNG]``.

Starts JupyterLab on 127.0.0.1 in a temporary folder, runs a two-cell notebook in headless chromium (Debian's,
through playwright), clicks two (source, target) pairs and paints two strokes on a 16x16 digit as a user
would, runs the second cell to show what Python received, and saves the two cells as figures/drag_picker.png.
About 20 s; needs the dev extras (jupyterlab, playwright) and chromium on PATH.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.browser import ROOT, chromium, chromium_page, jupyter_lab, run_notebook  # noqa: E402

CELLS = [
    "from sdelab.data.digits import digits_dataset\n"
    "from sdelab.widgets import DragPicker\n\n"
    "image = digits_dataset()[0, 0].numpy()  # 16x16, float in [0, 1]\n"
    "picker = DragPicker(image, display_size=320)\n"
    "picker",
    "picker.source_points, picker.target_points, picker.mask",
]
SCALE = 320 / 16  # CSS pixels per image pixel
PAIRS = [((4, 7), (1, 7)), ((11, 9), (14, 9))]  # (source, target) in image pixels: widen the zero
STROKES = [((3.5, 3.5), (3.5, 12.5)), ((12.5, 3.5), (12.5, 12.5))]  # image pixels
BRUSH = 70  # CSS pixels across
RUN_SECOND_CELL_JS = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  panel.content.activeCellIndex = 1;
  await window.jupyterapp.commands.execute("notebook:run-cell");
}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=(ROOT / "figures" / "drag_picker").with_suffix(".png"))
    parser.add_argument("--scale", type=float, default=2, help="device pixels per CSS pixel (default 2)")
    args = parser.parse_args(argv)
    if chromium() is None:
        parser.error("chromium is not on PATH (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as folder:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, Path(folder) / "picker.ipynb")
        with jupyter_lab(Path(folder)) as url, chromium_page(width=900, height=900, scale=args.scale) as page:
            run_notebook(page, url, "picker.ipynb")
            page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # the notebook gets the width
            picker = page.locator(".sdelab-picker")
            top = picker.locator("canvas.sdelab-picker-top")
            top.wait_for(timeout=60_000)
            box = top.bounding_box()

            def at(x, y):
                return box["x"] + x * SCALE, box["y"] + y * SCALE

            for source, target in PAIRS:
                page.mouse.click(*at(source[0] + 0.5, source[1] + 0.5))
                page.mouse.click(*at(target[0] + 0.5, target[1] + 0.5))
            picker.get_by_role("button", name="Mask", exact=True).click()
            picker.locator(".sdelab-picker-slider").evaluate(
                f"s => {{ s.value = {BRUSH}; s.dispatchEvent(new Event('input', {{bubbles: true}})); }}")
            for start, end in STROKES:
                page.mouse.move(*at(*start))
                page.mouse.down()
                page.mouse.move(*at(*end), steps=10)
                page.mouse.up()
            page.mouse.move(0, 0)  # no brush outline in the picture
            page.evaluate(RUN_SECOND_CELL_JS)
            page.get_by_text("mode=L size=16x16").wait_for(timeout=30_000)
            first, last = page.locator(".jp-Cell").first.bounding_box(), page.locator(".jp-Cell").last.bounding_box()
            clip = {"x": first["x"], "y": first["y"], "width": first["width"],
                    "height": last["y"] + last["height"] - first["y"]}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, clip=clip)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
