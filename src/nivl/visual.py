"""Visual duplicates: perceptual hashes of pictures, and near pairs in Hamming space; pure.

A picture's hashes are imagehash's 64-bit pHash (DCT of a 32x32 greyscale) and dHash
(gradient signs of a 9x8 greyscale), of the picture without a plain border. Two
pictures match when both are within their thresholds (``Thresholds``, chosen by
``bench/visual_quality.py``): pHash survives resizing, recompression, brightness and
a caption burned in; dHash, checked as well, guards against the pairs a looser pHash
lets through (different parts of one starfield: at pHash 12, precision 0.93 without it,
1.0 with it), and a very close dHash takes the dark, low-contrast pictures whose pHash
bits are unstable (recall 0.873 without that rule, 0.929 with it).

``HammingIndex`` finds every pair within a radius without comparing all pairs:
multi-index hashing (Norouzi, Punjani and Fleet 2012). The 64 bits are cut into ``m``
chunks; two hashes within ``radius`` of each other are, by pigeonhole, within
``radius // m`` in at least one chunk, so each chunk is a sorted table probed with
every value that near the query's chunk, and only what the probes find is compared in
full. With about log2(n) bits a chunk, a probe finds a handful of entries at any n
(``bench/visual_dupes.py`` at 1M random hashes: built in 1.5 s; 10k queries in 3.6 s at
radius 10, 5x faster than a brute-force scan, and 0.5 s at radius 8, 46x).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UnreadableImage

BITS = 64
#: Largest picture decoded, in pixels (PIL's own default bomb limit is 89M and only warns).
MAX_PIXELS = 60_000_000
#: Fewest chunks: a chunk of at most 22 bits keeps its direct table within 4M offsets.
MIN_CHUNKS = 3
#: Grey levels a border pixel may differ from the corner's (JPEG noise at the edge).
_TONE = 24
#: Probes looked up per batch: bounds the memory of a query, not its result.
_PROBES_PER_BATCH = 1 << 21


@dataclass(frozen=True)
class Thresholds:
    """Largest Hamming distances of a matching pair; chosen by ``bench/visual_quality.py``.

    pHash distances are even (each hash sets half its bits), so 10 means 11 too. A pHash
    radius of 12 finds a little more (recall 0.943 against 0.929, both at precision 1.0)
    but costs its index about 5x the probes (``bench/visual_dupes.py``).
    """

    phash: int = 10  # pHash within this, and dHash within ``dhash``: a match
    dhash: int = 20
    close_dhash: int = 8  # or dHash within this, and pHash within ``loose_phash``: dark,
    loose_phash: int = 24  # low-contrast pictures (a launch at night) move pHash's bits


@dataclass(frozen=True)
class Hashes:
    phash: int  # unsigned 64-bit
    dhash: int


def picture_hashes(path: Path) -> Hashes:
    """The hashes of the picture in ``path``, or ``UnreadableImage`` (not a picture,
    truncated, or too large to decode safely)."""
    import imagehash
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data": on stderr, a traceback-like pair
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise UnreadableImage(f"{path.name}: {width}x{height} pixels is too large")
                image.draft("RGB", (128, 128))  # JPEG: decode at 1/2..1/8 scale, much faster
                grey = image.convert("L")
                factor = min(grey.size) // 256
                if factor > 1:  # a box filter down to 256-511 px: the hashes look at 32
                    grey = grey.reduce(factor)
                grey = _trimmed(grey)
    except UnreadableImage:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(f"{path.name}: {exc}") from exc
    except Image.DecompressionBombWarning as exc:
        raise UnreadableImage(f"{path.name}: {exc}") from exc
    return Hashes(_bits(imagehash.phash(grey).hash), _bits(imagehash.dhash(grey).hash))


def _trimmed(grey: Any) -> Any:
    """``grey`` without a plain border (a frame of one tone added around the picture):
    the pixels that differ from the corner's tone by more than ``_TONE`` bound it."""
    from PIL import ImageChops

    corner = grey.getpixel((0, 0))
    away = ImageChops.difference(grey, grey.point(lambda _: corner)).point(
        lambda v: 255 if v > _TONE else 0
    )
    box = away.getbbox()
    if box is None:
        return grey
    left, top, right, bottom = box
    if (right - left) * (bottom - top) < 0.5 * grey.width * grey.height:
        return grey  # mostly one tone: a dark sky, not a frame; hash it whole
    return grey.crop(box)


def _bits(matrix: np.ndarray) -> int:
    return int.from_bytes(np.packbits(matrix.ravel()).tobytes(), "big")


def to_signed(value: int) -> int:
    """An unsigned 64-bit hash as SQLite's signed INTEGER (and back with ``to_unsigned``)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class HammingIndex:
    """The hashes within ``radius`` of a query, by multi-index hashing over ``chunks``
    (default: about log2(n) bits each, at least 8 and at most 22)."""

    def __init__(self, hashes: np.ndarray, radius: int, *, chunks: int | None = None) -> None:
        if not 0 <= radius < BITS:
            raise ValueError(f"radius {radius} is not in 0..{BITS - 1}")
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        self.radius = radius
        n = len(self.hashes)
        if chunks is None:
            chunks = round(BITS / max(8.0, math.log2(max(n, 2))))
        self.chunks = max(MIN_CHUNKS, min(chunks, BITS // 4))
        self.sub_radius = radius // self.chunks
        edges = np.linspace(0, BITS, self.chunks + 1).round().astype(int)
        self._spans = [(int(a), int(b - a)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        #: Per chunk: where each chunk value's run starts in ``order`` (a direct table of
        #: 2**width + 1 offsets: one lookup a probe), the positions sorted by chunk, and
        #: the hashes in that order (a probe's candidates are then one contiguous run).
        self._tables: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._masks: list[np.ndarray] = []
        for shift, width in self._spans:
            keys = self._chunk(self.hashes, shift, width)
            order = np.argsort(keys, kind="stable")
            starts = np.searchsorted(keys[order], np.arange((1 << width) + 1, dtype=np.uint64))
            self._tables.append(
                (starts.astype(np.int32 if n < 2**31 else np.int64), order, self.hashes[order])
            )
            self._masks.append(_masks(width, self.sub_radius))

    @staticmethod
    def _chunk(values: np.ndarray, shift: int, width: int) -> np.ndarray:
        return (values >> np.uint64(shift)) & np.uint64((1 << width) - 1)

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query positions, hash positions) of every pair within the radius, sorted."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        found_q: list[np.ndarray] = []
        found_t: list[np.ndarray] = []
        for batch in _batches(len(queries), max(1, _PROBES_PER_BATCH // self._widest_probe())):
            q, t = self._search_batch(queries[batch], batch.start)
            found_q.append(q)
            found_t.append(t)
        if not found_q:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        return np.concatenate(found_q), np.concatenate(found_t)

    def _widest_probe(self) -> int:
        return max(len(m) for m in self._masks)

    def _search_batch(self, queries: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.hashes)
        keys: list[np.ndarray] = []
        for (shift, width), (starts, order, ordered), masks in zip(
            self._spans, self._tables, self._masks, strict=True
        ):
            probes = (self._chunk(queries, shift, width)[:, None] ^ masks[None, :]).ravel()
            lo = starts[probes]
            counts = starts[probes + np.uint64(1)] - lo
            hit = np.flatnonzero(counts)
            if not len(hit):
                continue
            lo, counts = lo[hit], counts[hit]
            total = int(counts.sum())
            # each probe's run of candidates: positions lo .. lo + count - 1 in ``ordered``
            index = np.arange(total) + np.repeat(lo - (np.cumsum(counts) - counts), counts)
            owner = np.repeat(hit // len(masks), counts)
            near = np.flatnonzero(np.bitwise_count(queries[owner] ^ ordered[index]) <= self.radius)
            keys.append((owner[near] + start) * n + order[index[near]])
        if not keys:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        unique = np.unique(np.concatenate(keys))
        return unique // n, unique % n

    def pairs(self) -> np.ndarray:
        """Every pair (i, j), i < j, of indexed hashes within the radius, as an (k, 2) array."""
        q, t = self.search(self.hashes)
        keep = q < t
        return np.stack([q[keep], t[keep]], axis=1)


def _masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit value with at most ``radius`` bits set."""
    values = [0]
    for k in range(1, min(radius, width) + 1):
        values.extend(sum(1 << b for b in bits) for bits in combinations(range(width), k))
    return np.array(values, dtype=np.uint64)


def _batches(size: int, step: int) -> Iterator[slice]:
    for start in range(0, size, step):
        yield slice(start, min(size, start + step))


def matching_pairs(
    phashes: np.ndarray, dhashes: np.ndarray, thresholds: Thresholds = Thresholds()
) -> np.ndarray:
    """Pairs (i, j), i < j, that match by ``thresholds``: each rule's candidates come
    from an index over the hash it bounds most tightly, then the other hash is checked."""
    phashes = np.asarray(phashes, dtype=np.uint64)
    dhashes = np.asarray(dhashes, dtype=np.uint64)
    found = []
    for first, second, radius, limit in (
        (phashes, dhashes, thresholds.phash, thresholds.dhash),
        (dhashes, phashes, thresholds.close_dhash, thresholds.loose_phash),
    ):
        if radius < 0:  # the rule is off
            continue
        pairs = HammingIndex(first, radius).pairs()
        if len(pairs):
            close = np.bitwise_count(second[pairs[:, 0]] ^ second[pairs[:, 1]]) <= limit
            found.append(pairs[close])
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0)


def components(size: int, pairs: np.ndarray) -> np.ndarray:
    """A label per position: the connected components of the pairs' graph."""
    if not size:
        return np.zeros(0, dtype=np.int64)
    from scipy import sparse  # type: ignore[import-untyped]  # here: a third of a second
    from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]

    graph = sparse.coo_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1]))
        if len(pairs)
        else ([], ([], [])),
        shape=(size, size),
    )
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels, dtype=np.int64)
