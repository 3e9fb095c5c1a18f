"""Whole files or none: every file the benchmark code writes goes to a temporary name beside it and is renamed.

A process killed at any point leaves only whole files (and perhaps a hidden ``.<name>.<pid>.tmp``), so the runner
can resume and a generated data set is either there or not, file by file.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from PIL import Image


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def png_bytes(image: Image.Image) -> bytes:
    """The PNG file of a PIL image (the same pixels give the same bytes)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def json_bytes(obj) -> bytes:
    """Indented JSON with a final newline."""
    return (json.dumps(obj, indent=1) + "\n").encode()
