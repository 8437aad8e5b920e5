"""The labelled set for visual duplicates, built from real photographs into a folder.

    python bench/visual_set.py /tmp/visual-set      # writes the images and labels.tsv

Sources are the photographs that ship inside scikit-image (a test dependency), read
from its data folder; nothing generated is kept in the repo. The NASA ones are
public domain: ``astronaut.png`` (Eileen Collins, NASA Great Images), ``rocket.jpg``
(the DSCOVR launch, released into the public domain) and ``hubble_deep_field.jpg``
(the Hubble eXtreme Deep Field). Each *original* is either one of these or a tile of a
larger one (3x3 tiles of the deep field, 2x2 of the astronaut photograph: different
regions of one picture, the hardest negatives), plus the package's other real photos
(moon, camera, coffee, ...) as negatives of another kind. Every original gets the
variants a mirror meets (``VARIANTS``): its copies are labelled with it, so a pair is
positive exactly when both come from one original.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

NASA = ("astronaut.png", "rocket.jpg", "hubble_deep_field.jpg")
#: Tiled into regions (rows, columns): each tile is an original of its own.
TILED = {"hubble_deep_field.jpg": (3, 3), "astronaut.png": (2, 2)}
#: Other real photographs in the package (the stereo motorcycle pair is left out: two
#: cameras' views of one scene are neither clearly the same picture nor clearly not).
OTHERS = (
    "moon.png",
    "camera.png",
    "coffee.png",
    "chelsea.png",
    "coins.png",
    "retina.jpg",
    "cell.png",
    "horse.png",
    "page.png",
    "text.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "phantom.png",
    "ihc.png",
    "clock_motion.png",
    "color.png",
)


def _data_folder() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the visual set needs scikit-image (pip install -e '.[test]')")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _scale(image: Image.Image, factor: float) -> Image.Image:
    w, h = image.size
    return image.resize((max(8, round(w * factor)), max(8, round(h * factor))), Image.LANCZOS)


def _crop(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = image.size
    return image.crop(
        (round(w * left), round(h * top), round(w * (1 - right)), round(h * (1 - bottom)))
    )


def _border(image: Image.Image, fraction: float, colour: str) -> Image.Image:
    w, h = image.size
    return ImageOps.expand(
        image.convert("RGB"), border=max(1, round(min(w, h) * fraction)), fill=colour
    )


def _caption(image: Image.Image) -> Image.Image:
    """A credit line burned into the lower edge, as agencies and newspapers do."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    w, h = out.size
    draw.rectangle((0, round(h * 0.9), w, h), fill="black")
    draw.text((4, round(h * 0.91)), "NASA/JSC  S63-E-5001  1995", fill="white")
    return out


#: Variant name → transformation; each is applied to every original.
VARIANTS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "png": lambda im: im,
    "half": lambda im: _scale(im, 0.5),
    "thumb": lambda im: im.resize((100, max(8, round(100 * im.height / im.width))), Image.LANCZOS),
    "up": lambda im: _scale(im, 1.5),
    "q30": lambda im: im,
    "q50": lambda im: im,
    "q95": lambda im: im,
    "crop2": lambda im: _crop(im, 0.02, 0.02, 0.02, 0.02),
    "crop5": lambda im: _crop(im, 0.05, 0.05, 0.0, 0.0),
    "crop5r": lambda im: _crop(im, 0.0, 0.0, 0.05, 0.05),
    "border_black": lambda im: _border(im, 0.04, "black"),
    "border_white": lambda im: _border(im, 0.04, "white"),
    "brighter": lambda im: ImageEnhance.Brightness(im.convert("RGB")).enhance(1.25),
    "darker": lambda im: ImageEnhance.Brightness(im.convert("RGB")).enhance(0.75),
    "caption": _caption,
    "thumb_q60": lambda im: _scale(im, 0.3),
    "crop3_q40": lambda im: _crop(im, 0.03, 0.0, 0.0, 0.03),
}
#: Variants saved as JPEG, at this quality (the rest as PNG).
QUALITY = {"q30": 30, "q50": 50, "q95": 95, "thumb_q60": 60, "crop3_q40": 40, "half": 85}


def originals() -> list[tuple[str, Image.Image]]:
    """(label, picture) of every original."""
    folder = _data_folder()
    found: list[tuple[str, Image.Image]] = []
    for name in (*NASA, *OTHERS):
        with Image.open(folder / name) as opened:
            image = opened.convert("RGB")
        found.append((name, image))
        rows, cols = TILED.get(name, (0, 0))
        for r in range(rows):
            for c in range(cols):
                w, h = image.width // cols, image.height // rows
                found.append(
                    (f"{name}#{r}{c}", image.crop((c * w, r * h, (c + 1) * w, (r + 1) * h)))
                )
    return found


def build(folder: Path) -> list[tuple[Path, str]]:
    """Write every variant of every original to ``folder``; (path, label) of each."""
    folder.mkdir(parents=True, exist_ok=True)
    labelled: list[tuple[Path, str]] = []
    for number, (label, image) in enumerate(originals()):
        for variant, make in VARIANTS.items():
            picture = make(image)
            quality = QUALITY.get(variant)
            path = folder / f"{number:03d}-{variant}.{'png' if quality is None else 'jpg'}"
            if quality is None:
                picture.save(path, "PNG")
            else:
                picture.save(path, "JPEG", quality=quality)
            labelled.append((path, label))
    return labelled


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/nivl-visual-set")
    rows = build(target)
    (target / "labels.tsv").write_text("".join(f"{p.name}\t{label}\n" for p, label in rows))
    print(f"{len(rows)} images of {len({label for _, label in rows})} originals in {target}")
