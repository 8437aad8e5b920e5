"""The Hamming-space index (visual.py) at scale: build time and query time per 10k queries.

    python bench/visual_dupes.py                 # 1M hashes, 10k queries
    python bench/visual_dupes.py --size 100000   # smaller

The hashes are uniformly random 64-bit values plus planted near copies (a few bits
flipped, as a recompressed or resized copy moves a pHash), so every query has
something to find; recall of the planted pairs is checked against the plant, and a
sample of queries against a brute-force scan of all hashes. Reported for both radii the
matching rule uses (pHash 12, dHash 6), with the same run's brute-force scan as the
baseline.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nivl.visual import HammingIndex, Thresholds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    base = rng.integers(0, 2**64, size=args.size, dtype=np.uint64, endpoint=False)
    planted = args.size // 10  # a tenth of the hashes get a near copy
    thresholds = Thresholds()
    for radius in (thresholds.phash, thresholds.close_dhash):
        copies = base[:planted].copy()
        flips = rng.integers(1, radius + 1, size=planted)
        for i, count in enumerate(flips.tolist()):
            for bit in rng.choice(64, size=count, replace=False).tolist():
                copies[i] ^= np.uint64(1) << np.uint64(bit)
        hashes = np.concatenate([base[: args.size - planted], copies])
        started = time.perf_counter()
        index = HammingIndex(hashes, radius)
        built = time.perf_counter() - started
        queries = hashes[args.size - planted : args.size - planted + args.queries]  # copies
        started = time.perf_counter()
        q, t = index.search(queries)
        searched = time.perf_counter() - started
        found = set(zip(q.tolist(), t.tolist(), strict=True))
        recall = np.mean([(i, i) in found for i in range(len(queries))])  # copy i ↔ base i
        sample = queries[:100]
        started = time.perf_counter()
        brute = {
            (i, int(j))
            for i, value in enumerate(sample.tolist())
            for j in np.flatnonzero(np.bitwise_count(hashes ^ np.uint64(value)) <= radius)
        }
        brute_per_10k = (time.perf_counter() - started) / len(sample) * 10_000
        exact = brute == {(i, j) for i, j in found if i < len(sample)}
        per_10k = searched / len(queries) * 10_000
        print(
            f"radius {radius:>2} over {len(hashes):,} hashes ({index.chunks} chunks, "
            f"probe radius {index.sub_radius}): build {built:.2f} s, "
            f"query {per_10k:.2f} s per 10k (brute force {brute_per_10k:.1f} s, "
            f"{brute_per_10k / per_10k:.0f}x), planted found {recall:.3f}, "
            f"same as brute force on 100: {exact}"
        )


if __name__ == "__main__":
    main()
