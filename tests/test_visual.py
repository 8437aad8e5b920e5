"""Issue 18 req 1, the pure core (visual.py): the Hamming index against brute force, and
the hashes of real NASA photographs (scikit-image's) under the changes a mirror meets."""

from __future__ import annotations

import importlib.util
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageOps

from nivl.errors import UnreadableImage
from nivl.visual import (
    HammingIndex,
    Thresholds,
    components,
    distance,
    matching_pairs,
    picture_hashes,
    to_signed,
    to_unsigned,
)

SKIMAGE = Path(next(iter(importlib.util.find_spec("skimage").submodule_search_locations)))  # type: ignore[union-attr, arg-type]
DATA = SKIMAGE / "data"


def _brute(hashes: list[int], queries: list[int], radius: int) -> set[tuple[int, int]]:
    return {
        (q, t)
        for q, a in enumerate(queries)
        for t, b in enumerate(hashes)
        if bin(a ^ b).count("1") <= radius
    }


def _flip(value: int, bits: list[int]) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


hash64 = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def planted(draw: st.DrawFn) -> list[int]:
    """Random hashes, some with near copies (a few bits flipped), some repeated."""
    base = draw(st.lists(hash64, min_size=0, max_size=40))
    out = list(base)
    for value in base[:15]:
        flips = draw(st.lists(st.integers(0, 63), max_size=14))
        out.append(_flip(value, flips))
    if base:
        out.append(base[0])
    return out


@settings(max_examples=60, deadline=None)
@given(planted(), st.integers(0, 20), st.one_of(st.none(), st.integers(1, 12)))
def test_index_pairs_are_exactly_the_brute_force_pairs(
    values: list[int], radius: int, chunks: int | None
) -> None:
    index = HammingIndex(np.array(values, dtype=np.uint64), radius, chunks=chunks)
    found = {(int(i), int(j)) for i, j in index.pairs().tolist()}
    expected = {(q, t) for q, t in _brute(values, values, radius) if q < t}
    assert found == expected


@settings(max_examples=40, deadline=None)
@given(planted(), st.lists(hash64, max_size=10), st.integers(0, 16))
def test_index_search_finds_every_hash_within_the_radius(
    values: list[int], extra: list[int], radius: int
) -> None:
    queries = values[::3] + extra
    index = HammingIndex(np.array(values, dtype=np.uint64), radius)
    q, t = index.search(np.array(queries, dtype=np.uint64))
    assert set(zip(q.tolist(), t.tolist(), strict=True)) == _brute(values, queries, radius)


def test_index_at_scale_finds_planted_pairs_among_random_ones() -> None:
    rng = np.random.default_rng(18)
    values = rng.integers(0, 2**63, size=50_000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    near = values[:500] ^ np.uint64(0b1010_0000_0001_0000_0100_0001)  # 5 bits away
    index = HammingIndex(np.concatenate([values, near]), 12)
    pairs = {tuple(p) for p in index.pairs().tolist()}
    assert {(i, 50_000 + i) for i in range(500)} <= pairs


@given(hash64)
def test_signed_round_trip(value: int) -> None:
    signed = to_signed(value)
    assert -(2**63) <= signed < 2**63 and to_unsigned(signed) == value


def test_components_join_chains_and_leave_singletons_alone() -> None:
    labels = components(6, np.array([[0, 1], [1, 2], [4, 5]]))
    assert labels[0] == labels[1] == labels[2] and labels[4] == labels[5]
    assert len({labels[0], labels[3], labels[4]}) == 3


# --- hashes of real photographs -----------------------------------------------------


def _save(image: Image.Image, path: Path, **options: object) -> Path:
    image.save(path, **options)
    return path


def _variants(tmp_path: Path, name: str) -> list[Path]:
    with Image.open(DATA / name) as opened:
        image = opened.convert("RGB")
    w, h = image.size
    captioned = image.copy()
    ImageDraw.Draw(captioned).rectangle((0, int(h * 0.92), w, h), fill="black")
    ImageDraw.Draw(captioned).text((4, int(h * 0.93)), "NASA/JSC 1995", fill="white")
    stem = name.split(".")[0]
    return [
        _save(image.resize((100, round(100 * h / w))), tmp_path / f"{stem}-thumb.jpg", quality=80),
        _save(image, tmp_path / f"{stem}-q30.jpg", quality=30),
        _save(image.crop((0, 0, int(w * 0.96), int(h * 0.96))), tmp_path / f"{stem}-crop.png"),
        _save(ImageOps.expand(image, 20, fill="white"), tmp_path / f"{stem}-border.png"),
        _save(captioned, tmp_path / f"{stem}-caption.jpg", quality=85),
    ]


def test_copies_of_one_photograph_match_and_other_photographs_do_not(tmp_path: Path) -> None:
    paths = _variants(tmp_path, "astronaut.png") + _variants(tmp_path, "rocket.jpg")
    hashes = [picture_hashes(p) for p in paths]
    phash = np.array([h.phash for h in hashes], dtype=np.uint64)
    dhash = np.array([h.dhash for h in hashes], dtype=np.uint64)
    labels = components(len(paths), matching_pairs(phash, dhash))
    assert len(set(labels[:5].tolist())) == 1 and len(set(labels[5:].tolist())) == 1
    assert labels[0] != labels[5]
    t = Thresholds()
    assert all(distance(hashes[0].phash, h.phash) > t.phash for h in hashes[5:])


def test_regions_of_one_starfield_are_different_pictures(tmp_path: Path) -> None:
    """The hard negatives: tiles of the Hubble Deep Field look alike to a coarse hash."""
    with Image.open(DATA / "hubble_deep_field.jpg") as opened:
        field = opened.convert("RGB")
    w, h = field.width // 3, field.height // 3
    paths = [
        _save(field.crop((c * w, r * h, (c + 1) * w, (r + 1) * h)), tmp_path / f"t{r}{c}.png")
        for r in range(3)
        for c in range(3)
    ]
    hashes = [picture_hashes(p) for p in paths]
    pairs = matching_pairs(
        np.array([x.phash for x in hashes], dtype=np.uint64),
        np.array([x.dhash for x in hashes], dtype=np.uint64),
    )
    assert len(pairs) == 0


# --- hostile files ------------------------------------------------------------------


def test_truncated_picture_is_unreadable(tmp_path: Path) -> None:
    out = io.BytesIO()
    Image.open(DATA / "rocket.jpg").save(out, "JPEG")
    path = tmp_path / "cut~thumb.jpg"
    path.write_bytes(out.getvalue()[: len(out.getvalue()) // 3])
    with pytest.raises(UnreadableImage, match="cut~thumb.jpg"):
        picture_hashes(path)


def test_file_that_is_no_picture_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "video~thumb.jpg"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    with pytest.raises(UnreadableImage):
        picture_hashes(path)


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb's trick)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(bytes(width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "side",
    [
        8_000,  # 64M pixels: under PIL's own limits, over nivl's
        10_000,  # 100M: PIL only warns (a warning nivl takes as a refusal)
        40_000,  # 1.6G: PIL refuses at open
    ],
)
def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path, side: int) -> None:
    path = tmp_path / "bomb~thumb.png"
    path.write_bytes(_png_header_claiming(side, side))
    with pytest.raises(UnreadableImage, match="too large|decompression bomb"):
        picture_hashes(path)


def test_a_picture_pillow_warns_about_is_one_line_from_the_cli(tmp_path: Path) -> None:
    # Pillow warns ("Corrupt EXIF data") on a TIFF cut short in its header: Python printed
    # the warning and its source line on stderr, beside nivl's own one line.
    import json

    from .test_cli import nivl

    home = tmp_path / "home"
    records = tmp_path / "one.jsonl"
    records.write_text(json.dumps({"data": [{"nasa_id": "cut", "media_type": "image"}]}) + "\n")
    assert nivl("import", str(records), home=home).returncode == 0
    out = io.BytesIO()
    Image.open(DATA / "rocket.jpg").save(out, "TIFF")
    (home / "media" / "cut").mkdir(parents=True)
    (home / "media" / "cut" / "cut~thumb.tif").write_bytes(out.getvalue()[:9])
    done = nivl("stats", home=home)
    assert done.returncode == 0
    assert done.stderr.splitlines() == [done.stderr.strip()] and "not hashed (cut)" in done.stderr
