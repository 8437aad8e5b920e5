"""Memory and latency of nivl's vector index at scale, projected to 1M vectors.

Usage: python bench/vector_scale.py [--vectors 100000] [--queries 200]

Needs nivl's [semantic] extra. Fills a ``VectorIndex`` (usearch HNSW, cosine, f16,
nivl's connectivity and expansion settings) with N random unit vectors of the model's
width (384), then reports the time to add them, the index's own memory and file size,
the process's RSS growth, and the latency of an HNSW top-200 search and of the exact
search over a 50,000-row filtered subset (``hybrid.EXACT_LIMIT``). Memory is linear in
N (vectors + graph links), so the 1M figure is N's scaled by 1M / N.
Random vectors are harder for HNSW than real embeddings; recall is not measured here.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from nivl.embeddings import DIMENSIONS
from nivl.hybrid import DEPTH, EXACT_LIMIT
from nivl.vector_index import VectorIndex


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentiles(times: list[float]) -> str:
    times = sorted(times)
    p50 = times[len(times) // 2]
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    n = args.vectors
    with tempfile.TemporaryDirectory() as tmp:
        before = rss_mib()
        index = VectorIndex(Path(tmp) / "vectors.usearch")
        start = time.perf_counter()
        for first in range(0, n, 10_000):
            block = rng.standard_normal((min(10_000, n - first), DIMENSIONS)).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            index.add(list(range(first + 1, first + 1 + len(block))), block)
        added = time.perf_counter() - start
        index.save()
        size = (Path(tmp) / "vectors.usearch").stat().st_size
        grown = rss_mib() - before
        queries = rng.standard_normal((args.queries, DIMENSIONS)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        hnsw = []
        for q in queries:
            t = time.perf_counter()
            index.search(q, DEPTH)
            hnsw.append((time.perf_counter() - t) * 1000)
        subset = rng.choice(np.arange(1, n + 1), size=min(EXACT_LIMIT, n), replace=False)
        exact = []
        for q in queries[:50]:
            t = time.perf_counter()
            index.exact(q, subset.tolist(), DEPTH)
            exact.append((time.perf_counter() - t) * 1000)
    scale = 1_000_000 / n
    print(f"{n} vectors: added in {added:.1f} s ({n / added:.0f}/s)")
    print(
        f"index memory {index.memory_usage / 2**20:.1f} MiB, file {size / 2**20:.1f} MiB, "
        f"process RSS +{grown:.1f} MiB"
    )
    print(
        f"projected at 1M: index memory {index.memory_usage * scale / 2**30:.2f} GiB, "
        f"file {size * scale / 2**30:.2f} GiB, RSS +{grown * scale / 1024:.2f} GiB"
    )
    print(f"HNSW top-{DEPTH}: {percentiles(hnsw)}")
    print(f"exact top-{DEPTH} over {len(subset)} filtered rows: {percentiles(exact)}")


if __name__ == "__main__":
    main()
