"""DragPicker: pick drag points and paint an editable mask on an image in a notebook (no torch needed).

>>> picker = DragPicker(image)          # show it: the last expression of a cell
>>> picker.source_points, picker.target_points, picker.mask

Points are (x, y) integer image pixels (x to the right, y down, (0, 0) the top-left pixel); the mask is a
PIL "L" image of the image's size, 255 = editable, 0 = kept, or None while nothing is painted. The front end
(``_widget/picker.js``) is an anywidget ES module, so the same widget runs in JupyterLab, Notebook 7, VS Code
and Colab; ``preview()`` draws the same picture with PIL for places where widgets do not render.
"""

from __future__ import annotations

import io
import math
from numbers import Integral
from pathlib import Path

import anywidget
import numpy as np
import traitlets
from ipywidgets.widgets.trait_types import bytes_serialization
from PIL import Image, ImageDraw, ImageFont

from sdelab.inputs import as_picture, check_points, uint8

_FRONT_END = Path(__file__).parent / "_widget"
SOURCE_COLOUR = (224, 0, 0)
TARGET_COLOUR = (0, 80, 255)
MASK_RGBA = (0, 200, 80, 110)  # the overlay where the mask is 255
DOT_RADIUS = 5  # pixels; picker.js uses the same colours and sizes


def _mask_to_json(mask: Image.Image | None, widget) -> bytes | None:
    return None if mask is None else mask.tobytes()


def _mask_from_json(data, widget) -> Image.Image | None:
    return None if data is None else Image.frombytes("L", widget.image.size, bytes(data))


class DragPicker(anywidget.AnyWidget):
    """Pick (source, target) point pairs and paint the editable mask on an image, in a notebook.

    image: a PIL image, a path, or an (H, W) / (H, W, 1|3|4) array (uint8, or float in [0, 1]).
    display_size: the longer side on screen, in CSS pixels; small images are enlarged pixel by pixel.

    Point mode: a click places a source (red), the next its target (blue), joined by a numbered arrow.
    Mask mode: a round brush paints the editable region (a translucent overlay); the eraser removes it.
    Undo takes back the last point or stroke. While a source waits for its target, ``source_points`` is
    one longer than ``target_points``. ``observe`` works on ``source_points``, ``target_points`` and ``mask``.
    """

    _esm = _FRONT_END / "picker.js"
    _css = _FRONT_END / "picker.css"
    _png = traitlets.Bytes().tag(sync=True, **bytes_serialization)
    _width = traitlets.Int().tag(sync=True)
    _height = traitlets.Int().tag(sync=True)
    display_size = traitlets.Int(512).tag(sync=True)
    source_points = traitlets.List(traitlets.Tuple(traitlets.Int(), traitlets.Int())).tag(sync=True)
    target_points = traitlets.List(traitlets.Tuple(traitlets.Int(), traitlets.Int())).tag(sync=True)
    mask = traitlets.Instance(Image.Image, allow_none=True).tag(
        sync=True, to_json=_mask_to_json, from_json=_mask_from_json)

    def __init__(self, image, *, display_size: int = 512):
        image = as_picture(image)
        if not isinstance(display_size, Integral) or display_size < 1:
            raise ValueError(f"display_size must be a positive integer (CSS pixels), got {display_size!r}")
        png = io.BytesIO()
        image.save(png, format="PNG")
        self.image = image  # the picture as shown, for preview(); read by the mask's from_json
        super().__init__(_png=png.getvalue(), _width=image.width, _height=image.height,
                         display_size=int(display_size))

    @traitlets.validate("source_points", "target_points")
    def _valid_points(self, proposal):
        return check_points(proposal["value"], proposal["trait"].name, self.image.size[::-1], integers=True,
                            allow_empty=True)

    @traitlets.validate("mask")
    def _valid_mask(self, proposal):
        mask = proposal["value"]
        if mask is None:
            return None
        if mask.size != self.image.size:
            raise ValueError(f"mask must have the image's (width, height) = {self.image.size}, got {mask.size}")
        binary = (np.asarray(mask.convert("L")) >= 128).astype(np.uint8) * 255
        return Image.fromarray(binary, mode="L") if binary.any() else None

    def set_points(self, sources, targets) -> None:
        """Set the (source, target) pairs from code: two equally long sequences of (x, y) integer pixels."""
        sources = check_points(sources, "sources", self.image.size[::-1], integers=True, allow_empty=True)
        targets = check_points(targets, "targets", self.image.size[::-1], integers=True, allow_empty=True)
        if len(sources) != len(targets):
            raise ValueError(f"sources and targets must pair up: got {len(sources)} sources and {len(targets)} "
                             "targets")
        with self.hold_sync():
            self.source_points = sources
            self.target_points = targets

    def set_mask(self, mask) -> None:
        """Set the mask from code: None, a PIL image or an (H, W) array (bool, uint8, or float in [0, 1]).

        Pixels >= 128 (0.5 for floats) are editable; the mask must have the image's size. A mask with no
        editable pixel is stored as None, as when nothing is painted.
        """
        if isinstance(mask, np.ndarray):
            if mask.ndim != 2:
                raise ValueError(f"mask as an array must be (H, W), got shape {mask.shape}")
            mask = Image.fromarray(uint8(mask, "mask"))
        elif mask is not None and not isinstance(mask, Image.Image):
            raise ValueError(f"mask must be None, a PIL image or a numpy array, got {type(mask).__name__}")
        self.mask = mask

    def preview(self, size: int | None = None) -> Image.Image:
        """The picker's picture as a PIL RGB image: the image, the mask overlay and the numbered arrows.

        size: the longer side in pixels (default: display_size); enlarging is nearest-neighbour.
        """
        size = self.display_size if size is None else size
        if not isinstance(size, Integral) or size < 1:
            raise ValueError(f"size must be a positive integer (pixels), got {size!r}")
        w, h = self.image.size
        scale = size / max(w, h)
        out_size = (max(1, round(w * scale)), max(1, round(h * scale)))
        resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
        rgba = self.image.convert("RGBA")
        picture = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).resize(out_size, resample)
        if self.mask is not None:
            alpha = self.mask.resize(out_size, Image.Resampling.NEAREST).point(lambda v: MASK_RGBA[3] if v else 0)
            overlay = Image.new("RGBA", out_size, MASK_RGBA[:3])
            overlay.putalpha(alpha)
            picture = Image.alpha_composite(picture, overlay)
        picture = picture.convert("RGB")
        draw = ImageDraw.Draw(picture)
        font = ImageFont.load_default(size=13)

        def centre(point):
            return ((point[0] + 0.5) * out_size[0] / w, (point[1] + 0.5) * out_size[1] / h)

        for i, (s, t) in enumerate(zip(self.source_points, self.target_points, strict=False), start=1):
            (x0, y0), (xt, yt) = centre(s), centre(t)
            angle = math.atan2(yt - y0, xt - x0)
            back = min(DOT_RADIUS + 1, math.hypot(xt - x0, yt - y0))  # the tip touches the target dot
            x1, y1 = xt - back * math.cos(angle), yt - back * math.sin(angle)
            head = [(x1 - 10 * math.cos(angle + side * 0.45), y1 - 10 * math.sin(angle + side * 0.45))
                    for side in (-1, 1)]
            for colour, width in (("black", 4), ("white", 2)):  # a dark halo under a white arrow
                draw.line([(x0, y0), (x1, y1)], fill=colour, width=width)
                for end in head:
                    draw.line([end, (x1, y1)], fill=colour, width=width)
            draw.text((x0 + 7, y0 - 7), str(i), fill="white", font=font, anchor="ls", stroke_width=2,
                      stroke_fill="black")
        for points, colour in ((self.source_points, SOURCE_COLOUR), (self.target_points, TARGET_COLOUR)):
            for point in points:
                x, y = centre(point)
                draw.ellipse([x - DOT_RADIUS, y - DOT_RADIUS, x + DOT_RADIUS, y + DOT_RADIUS], fill=colour,
                             outline="white")
        return picture
