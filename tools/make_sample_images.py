"""Write the sample images that ship with sdelab (sdelab/data/*.jpg, 512 x 512) from scikit-image's bundled data.

    python tools/make_sample_images.py

Licences (scikit-image's ``skimage.data`` docstrings): astronaut, NASA, public domain; chelsea (the cat) and
coffee, CC0 by their photographers. Each is centre-cropped to a square and resized to 512 x 512 (Lanczos).
"""

from pathlib import Path

from PIL import Image
from skimage import data

OUT = Path(__file__).resolve().parents[1] / "sdelab" / "data"


def square(image: Image.Image, size: int = 512) -> Image.Image:
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
    return image.crop(box).resize((size, size), Image.Resampling.LANCZOS)


if __name__ == "__main__":
    for name in ("astronaut", "chelsea", "coffee"):
        square(Image.fromarray(getattr(data, name)())).convert("RGB").save(OUT / f"{name}.jpg", quality=90)
        print(OUT / f"{name}.jpg")
