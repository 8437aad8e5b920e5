"""Visual-duplicate quality on the labelled set: precision, recall and F1 of same-group pairs.

    python bench/visual_quality.py            # the table at the default thresholds
    python bench/visual_quality.py --sweep    # F1 over a grid of thresholds
    python bench/visual_quality.py --holdout  # choose on half the originals, score the rest

The set (bench/visual_set.py) is built into a temporary folder from the real photographs
inside scikit-image and removed afterwards. A pair of pictures is positive when both
come from one original; nivl's visual groups are the connected components of matching
pairs (visual.py), so pairs are scored on the groups, as grouping_quality.py does. Also
reports the time to hash the pictures, per 10k.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from visual_set import build  # noqa: E402

from nivl.visual import Thresholds, components, matching_pairs, picture_hashes  # noqa: E402


def score(labels: np.ndarray, groups: np.ndarray) -> tuple[float, float, float, int, int, int]:
    upper = np.triu_indices(len(labels), 1)
    gold = (labels[:, None] == labels[None, :])[upper]
    found = (groups[:, None] == groups[None, :])[upper]
    tp = int((gold & found).sum())
    fp = int((~gold & found).sum())
    fn = int((gold & ~found).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, tp, fp, fn


def grouped(phash: np.ndarray, dhash: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    return components(len(phash), matching_pairs(phash, dhash, thresholds))


def _thumb_seconds(folder: Path, labelled: list[tuple[Path, str]]) -> float:
    """Seconds to hash 10k ``~thumb.jpg``-like files (100 px wide JPEGs of the set)."""
    from PIL import Image

    paths = []
    for number, (path, _) in enumerate(labelled[:200]):
        with Image.open(path) as image:
            small = image.convert("RGB")
        small.thumbnail((100, 100))
        paths.append(folder / f"thumb-{number}.jpg")
        small.save(paths[-1], "JPEG", quality=85)
    started = time.perf_counter()
    for path in paths:
        picture_hashes(path)
    return (time.perf_counter() - started) / len(paths) * 10_000


def _holdout(
    labels: np.ndarray,
    phash: np.ndarray,
    dhash: np.ndarray,
    grid: list[tuple[str, Thresholds]],
) -> None:
    """Thresholds chosen on every other original (best F1 at precision >= 0.98, pHash
    radius at most 10 for the index's sake), scored on the others."""
    names = sorted(set(labels.tolist()))
    tune = np.isin(labels, names[0::2])
    best = max(
        (t for t in grid if t[1].phash <= 10),
        key=lambda t: (lambda s: (s[0] >= 0.98, s[2]))(
            score(labels[tune], grouped(phash[tune], dhash[tune], t[1]))
        ),
    )
    for part, mask in (("tuned on", tune), ("held out", ~tune)):
        p, r, f1, *_ = score(labels[mask], grouped(phash[mask], dhash[mask], best[1]))
        print(f"{part}: {best[0]}  P {p:.3f}  R {r:.3f}  F1 {f1:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--holdout", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nivl-visual-set-") as folder:
        labelled = build(Path(folder))
        started = time.perf_counter()
        hashes = [picture_hashes(path) for path, _ in labelled]
        seconds = time.perf_counter() - started
        thumbs = _thumb_seconds(Path(folder), labelled)
    labels = np.array([label for _, label in labelled])
    phash = np.array([h.phash for h in hashes], dtype=np.uint64)
    dhash = np.array([h.dhash for h in hashes], dtype=np.uint64)
    print(
        f"{len(labelled)} pictures of {len(set(labels.tolist()))} originals; "
        f"{int((labels[:, None] == labels[None, :]).sum() - len(labels)) // 2} positive pairs"
    )
    print(f"hashing: {seconds / len(hashes) * 10_000:.1f} s per 10k pictures of the set")
    print(f"hashing: {thumbs:.1f} s per 10k thumbnails (100 px JPEG, as mirrored)")
    default = Thresholds()
    rows = [
        (f"pHash<={default.phash} only", Thresholds(default.phash, 64, -1)),
        (f"+ dHash<={default.dhash}", Thresholds(default.phash, default.dhash, -1)),
        (f"+ or dHash<={default.close_dhash} (default)", default),
        ("the same with pHash<=12", Thresholds(12, default.dhash, default.close_dhash)),
    ]
    grid = [
        (f"p<={p} d<={d} | d<={c}", Thresholds(p, d, c))
        for p in (8, 10, 12, 14)
        for d in (16, 20, 64)
        for c in (-1, 6, 8, 10)
    ]
    if args.holdout:
        _holdout(labels, phash, dhash, grid)
        return
    if args.sweep:
        rows = grid
    print(f"{'thresholds':<32} {'P':>6} {'R':>6} {'F1':>6} {'tp':>6} {'fp':>6} {'fn':>6}")
    for name, thresholds in rows:
        p, r, f1, tp, fp, fn = score(labels, grouped(phash, dhash, thresholds))
        print(f"{name:<32} {p:6.3f} {r:6.3f} {f1:6.3f} {tp:6d} {fp:6d} {fn:6d}")


if __name__ == "__main__":
    main()
