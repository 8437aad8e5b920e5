"""Build time, size, query CPU and recall of the built-in model's vector search at scale.

Usage: python bench/vector_scale.py --matrix HOME/vectors.minilm-fitted-256-v3.npy
       [--rows N] [--k 100] [--threads 2] [--dtypes i8,f16] [--coarse-dims 64]

Reads (never writes) a home's built-in matrix file and compares, on real queries (the 75
judged queries of bench/judgements*.json, embedded by the built-in model, plus as many
stored vectors used as "more like this" queries):

- ``exact``: ``MatrixIndex.search`` as nivl runs it today (float16 -> float32 chunks);
- ``two-stage``: a float32 copy of the first D (PCA-ordered) dims as a coarse scan, then
  an exact rerank of R candidates with the full vectors;
- ``hnsw``: a usearch HNSW (cosine, i8 or f16 scalars, nivl's connectivity 16) built with
  ``--threads`` threads over the full vectors, and over the first D dims + exact rerank.

Recall@k is tie-aware: a returned row counts when its exact similarity is at least the
exact k-th best (synthetic homes hold many identical records, so set overlap would lie).
CPU is process time per query (BLAS threads included; wall time would measure the others).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nivl.embeddings import builtin_embedder
from nivl.vector_index import MatrixIndex, _map_arrays

BENCH = Path(__file__).parent


def queries(matrix: np.ndarray, extra: int) -> np.ndarray:
    texts = []
    for name in ("judgements.json", "judgements_heldout.json"):
        texts += [q["q"] for q in json.loads((BENCH / name).read_text())["queries"]]
    judged = builtin_embedder().embed(texts)
    rng = np.random.default_rng(7)
    picked = np.sort(rng.choice(len(matrix), size=min(extra, len(matrix)), replace=False))
    stored = np.asarray(matrix[picked], dtype=np.float32)
    stored /= np.maximum(np.linalg.norm(stored, axis=1, keepdims=True), 1e-12)
    return np.vstack([judged, stored])


def exact_scores(matrix: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Every query's similarity with every row (float32, chunked like MatrixIndex)."""
    out = np.empty((len(qs), len(matrix)), dtype=np.float32)
    for start in range(0, len(matrix), MatrixIndex.CHUNK):
        block = np.asarray(matrix[start : start + MatrixIndex.CHUNK], dtype=np.float32)
        out[:, start : start + len(block)] = qs @ block.T
    return out


def measure(
    name: str,
    search: Callable[[np.ndarray], np.ndarray],
    qs: np.ndarray,
    scores: np.ndarray,
    k: int,
) -> None:
    recalls, cpu = [], []
    for q, row_scores in zip(qs, scores, strict=True):
        start = time.process_time()
        found = search(q)
        cpu.append((time.process_time() - start) * 1000)
        kth = np.partition(row_scores, len(row_scores) - k)[len(row_scores) - k]
        recalls.append(float(np.sum(row_scores[found[:k]] >= kth - 1e-6)) / k)
    judged = len(qs) // 2
    cpu.sort()
    print(
        f"  {name:34s} cpu p50 {cpu[len(cpu) // 2]:7.2f} ms"
        f"  p99 {cpu[int(len(cpu) * 0.99)]:7.2f} ms"
        f"  recall@{k} judged {np.mean(recalls[:judged]):.3f} (min {min(recalls[:judged]):.2f})"
        f"  stored {np.mean(recalls[judged:]):.3f} (min {min(recalls[judged:]):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=0, help="first N rows only (0: all)")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtypes", default="i8", help="usearch scalars to try ('': no HNSW)")
    parser.add_argument("--rerank", default="2000,4000,8000,16000")
    parser.add_argument("--coarse-dims", type=int, default=64)
    parser.add_argument("--ef", default="64,128,256")
    args = parser.parse_args()
    ids, matrix, _coarse = _map_arrays(args.matrix)
    if args.rows:
        ids, matrix = ids[: args.rows], matrix[: args.rows]
    n, dims = matrix.shape
    k = args.k
    print(f"{n} rows x {dims} dims, file {args.matrix.stat().st_size / 2**20:.0f} MiB")
    qs = queries(matrix, 75)
    scores = exact_scores(matrix, qs)

    index = MatrixIndex(None, dimensions=dims, mark="bench")
    index._ids, index._matrix = np.arange(n, dtype=np.int64), matrix
    index.RERANK = n  # a quarter of the rows or more: MatrixIndex.search scans them all
    measure(
        "exact (full float16 scan)",
        lambda q: np.array([r for r, _ in index.search(q, k)]),
        qs,
        scores,
        k,
    )
    d = args.coarse_dims
    index.COARSE_DIMS = d
    start = time.process_time()
    coarse = index._coarse_matrix()  # what save() writes into the file as its third array
    took = time.process_time() - start
    print(f"two-stage: coarse copy of {d} dims {took:.1f} s CPU, {coarse.nbytes / 2**20:.0f} MiB")
    for rerank in (int(r) for r in args.rerank.split(",")):
        index.RERANK = rerank
        measure(
            f"MatrixIndex.search D={d} R={rerank}",
            lambda q: np.array([r for r, _ in index.search(q, k)]),
            qs,
            scores,
            k,
        )

    from usearch.index import Index

    for dtype in filter(None, args.dtypes.split(",")):
        for width in (dims, d):
            hnsw = Index(ndim=width, metric="cos", dtype=dtype, connectivity=16, expansion_add=64)
            keys = np.arange(n, dtype=np.uint64)
            wall, cpu = time.perf_counter(), time.process_time()
            for start in range(0, n, 65_536):
                block = np.asarray(matrix[start : start + 65_536, :width], dtype=np.float32)
                hnsw.add(keys[start : start + len(block)], block, threads=args.threads)
            built_wall, built_cpu = time.perf_counter() - wall, time.process_time() - cpu
            with tempfile.TemporaryDirectory() as tmp:
                hnsw.save(os.path.join(tmp, "v.usearch"))
                size = os.path.getsize(os.path.join(tmp, "v.usearch"))
            print(
                f"hnsw {dtype} {width} dims: build {built_wall:.1f} s wall, {built_cpu:.1f} s CPU"
                f" ({args.threads} threads), file {size / 2**20:.0f} MiB"
            )
            for ef in (int(e) for e in args.ef.split(",")):
                hnsw.expansion_search = ef
                if width == dims:
                    search = lambda q, h=hnsw: h.search(q, k, threads=1).keys.astype(np.int64)  # noqa: E731
                else:

                    def search(q: np.ndarray, h: Index = hnsw) -> np.ndarray:
                        cand = np.sort(h.search(q[:d], 4 * k, threads=1).keys.astype(np.int64))
                        fine = np.asarray(matrix[cand], dtype=np.float32) @ q
                        return cand[np.argsort(-fine)[:k]]

                label = f"hnsw {dtype} {width}d ef={ef}" + (" +rerank 4k" if width != dims else "")
                measure(label, search, qs, scores, k)
            del hnsw


if __name__ == "__main__":
    main()
