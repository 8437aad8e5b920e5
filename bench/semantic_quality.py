"""Quality and speed of lexical, semantic and hybrid search over the shared records.

Usage:
    python bench/semantic_quality.py [--cache DIR] [--variants] [--pool] [--latency N]

Needs nivl's [semantic] extra. Imports ../shared/data/nasa/records.jsonl (read in place,
never copied) into a temporary home, embeds every record (vectors cached in --cache, keyed
by the text variant, so reruns skip the model), then for each judged query in
bench/judgements.json computes nDCG@10 (grades 0/1/2, gain 2^g - 1, unjudged = 0) for:
lexical (BM25, nivl's default plan), semantic (vectors only), hybrid-blend (0.7 dense /
0.3 BM25, min-max scaled) and hybrid-rrf (k=60), per query kind ("same": the caption's
words; "different": a user's words for the same thing). Also printed: embedding throughput
(records per wall second and per CPU second), query latency p50/p99 per mode, and the
vector index's memory per vector.

--variants also compares what is embedded (title; +keywords; +description 200/400/1000
characters) by semantic nDCG@10. --pool prints, per query, the pooled top 10 of every mode
with its current grade, for judging; new results show as "?".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from nivl import Library, Settings
from nivl.embeddings import Embedder, record_text
from nivl.hybrid import blend, dense_ranking, filter_plan, lexical_ranking, rank, rrf
from nivl.query import parse_request
from nivl.records import parse_item
from nivl.vector_index import VectorIndex

ROOT = Path(__file__).resolve().parent.parent
RECORDS = (
    Path(os.environ.get("NIVL_SHARED_DATA") or ROOT.parent / "shared/data/nasa") / "records.jsonl"
)
JUDGEMENTS = ROOT / "bench" / "judgements.json"
MODES = ("lexical", "semantic", "hybrid-blend", "hybrid-rrf")
VARIANTS = {
    "title": {"description_chars": 0, "keywords": False},
    "title+kw": {"description_chars": 0, "keywords": True},
    "title+kw+desc200": {"description_chars": 200, "keywords": True},
    "title+kw+desc400": {"description_chars": 400, "keywords": True},
    "title+kw+desc1000": {"description_chars": 1000, "keywords": True},
}
DEFAULT_VARIANT = "title+kw+desc400"
K = 10


def ndcg(ranked: list[str], grades: dict[str, int], k: int = K) -> float:
    gains = [2 ** grades.get(nasa_id, 0) - 1 for nasa_id in ranked[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted((2**g - 1 for g in grades.values()), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def vectors_for(
    library: Library, variant: str, cache: Path, embedder: Embedder
) -> tuple[VectorIndex, dict[str, float]]:
    rows = list(library.store.iter_rows())
    texts = [
        record_text(parse_item(orjson.loads(r.raw), raw=r.raw), **VARIANTS[variant]) for r in rows
    ]
    digest = hashlib.blake2b("\n".join(texts).encode(), digest_size=8).hexdigest()
    path = cache / f"{variant}-{digest}.npy"
    timing: dict[str, float] = {}
    if path.exists():
        matrix = np.load(path)
    else:
        wall, cpu = time.perf_counter(), time.process_time()
        matrix = embedder.embed(texts, threads=os.cpu_count())
        timing = {
            "records": len(texts),
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
        }
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, matrix)
    index = VectorIndex(None)
    index.add([r.id for r in rows], matrix)
    return index, timing


def rankings(
    library: Library, vectors: VectorIndex, embedder: Embedder, q: str, depth: int = 100
) -> dict[str, list[tuple[int, float]]]:
    request = parse_request({"q": q})
    lexical = lexical_ranking(library.view().snapshot, request, depth)
    vector = embedder.embed_query(q)
    dense = dense_ranking(library.view().snapshot, vectors, vector, filter_plan(request), depth)
    return {
        "lexical": lexical,
        "semantic": dense,
        "hybrid-blend": blend(lexical, dense),
        "hybrid-rrf": rrf(lexical, dense),
    }


def nasa_ids(library: Library, ranking: list[tuple[int, float]], k: int = K) -> list[str]:
    rows = library.store.rows_by_ids([row_id for row_id, _ in ranking[:k]])
    return [row.nasa_id for row in rows]


def table(
    title: str, scores: dict[str, dict[str, list[float]]], judged: dict[str, list[float]]
) -> None:
    """nDCG@10 per mode and kind, and the share of each mode's top 10 that was judged."""
    kinds = ("same", "different")
    print(f"\n{title}")
    print(f"{'mode':<20}{'all':>8}{'same':>8}{'different':>11}{'judged@10':>11}")
    for name, by_kind in scores.items():
        every = by_kind["same"] + by_kind["different"]
        cells = [statistics.fmean(every)] + [statistics.fmean(by_kind[k]) for k in kinds]
        print(
            f"{name:<20}{cells[0]:>8.3f}{cells[1]:>8.3f}{cells[2]:>11.3f}"
            f"{statistics.fmean(judged[name]):>11.0%}"
        )


def coverage(ids: list[str], grades: dict[str, int]) -> float:
    """Share of the results that are judged (1.0 for no results: nothing left to judge)."""
    return sum(1 for i in ids if i in grades) / len(ids) if ids else 1.0


def print_pool(library: Library, query: dict, rankings: list[list[tuple[int, float]]]) -> None:
    """The pooled top 10 of these rankings, with current grades ("?" = not judged yet)."""
    print(f"\n## {query['q']!r} ({query['kind']}): {query.get('need', '')}")
    seen: set[str] = set()
    for row in library.store.rows_by_ids([r for ranking in rankings for r, _ in ranking[:K]]):
        if row.nasa_id in seen:
            continue
        seen.add(row.nasa_id)
        data = orjson.loads(row.raw)["data"][0]
        grade = query["grades"].get(row.nasa_id, "?")
        text = " ".join(str(data.get("description", "")).split())[:160]
        print(f"  [{grade}] {row.nasa_id!r} | {data.get('title', '')[:70]} | {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "nivl-semantic-bench"
    )
    parser.add_argument("--variants", action="store_true", help="compare embedded texts")
    parser.add_argument("--pool", action="store_true", help="print pooled results to judge")
    parser.add_argument("--latency", type=int, default=20, help="repeats per query for latency")
    args = parser.parse_args()
    judged = json.loads(JUDGEMENTS.read_text())["queries"]
    with tempfile.TemporaryDirectory() as home:
        library = Library(Settings.from_env({}, home=home))
        library.import_paths([RECORDS])
        started = time.perf_counter()
        embedder = Embedder()
        print(f"model loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        vectors, timing = vectors_for(library, DEFAULT_VARIANT, args.cache, embedder)
        print(f"records: {library.store.count()}; queries: {len(judged)}")
        if timing:
            print(
                f"embedding: {timing['records']} records in {timing['wall_s']:.1f} s wall "
                f"({timing['records'] / timing['wall_s']:.1f}/s), "
                f"{timing['cpu_s']:.1f} s CPU ({timing['records'] / timing['cpu_s']:.1f}/CPU-s); "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
            )
        scores: dict[str, dict[str, list[float]]] = {
            m: {"same": [], "different": []} for m in MODES
        }
        judged_share: dict[str, list[float]] = {m: [] for m in MODES}
        variant_rankings: dict[str, list[list[tuple[int, float]]]] = {}
        if args.variants:
            for variant in VARIANTS:
                index, _ = vectors_for(library, variant, args.cache, embedder)
                for query in judged:
                    dense = rankings(library, index, embedder, query["q"])["semantic"]
                    variant_rankings.setdefault(query["q"], []).append(dense)
        for query in judged:
            ranked = rankings(library, vectors, embedder, query["q"])
            grades = {key: int(value) for key, value in query["grades"].items()}
            for mode in MODES:
                ids = nasa_ids(library, ranked[mode])
                scores[mode][query["kind"]].append(ndcg(ids, grades))
                judged_share[mode].append(coverage(ids, grades))
            if args.pool:
                pool = [ranked[m] for m in MODES] + variant_rankings.get(query["q"], [])
                print_pool(library, query, pool)
        table("nDCG@10 (title + keywords + 400 characters of description)", scores, judged_share)
        if args.variants:
            by_variant = {v: {"same": [], "different": []} for v in VARIANTS}
            variant_judged: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for query in judged:
                grades = {key: int(value) for key, value in query["grades"].items()}
                for variant, dense in zip(VARIANTS, variant_rankings[query["q"]], strict=True):
                    ids = nasa_ids(library, dense)
                    by_variant[variant][query["kind"]].append(ndcg(ids, grades))
                    variant_judged[variant].append(coverage(ids, grades))
            table("semantic nDCG@10 by what is embedded", by_variant, variant_judged)
        latency(library, vectors, embedder, judged, args.latency)
        print(
            f"\nvector index: {len(vectors)} vectors, {vectors.memory_usage / 2**20:.1f} MiB "
            f"({vectors.memory_usage / max(len(vectors), 1):.0f} B/vector)"
        )
        library.close()


def latency(
    library: Library, vectors: VectorIndex, embedder: Embedder, judged: list[dict], repeats: int
) -> None:
    """Per-mode latency of Library.search (page of 20), the query embedding included."""
    library._vectors = vectors  # the bench's in-memory index stands in for the home's file
    library._embedder = embedder
    load = os.getloadavg()[0]
    print(
        f"\nlatency of Library.search, page_size=20, {repeats} x {len(judged)} queries (ms; "
        f"load average {load:.1f} on {os.cpu_count()} cores, query embedding on 1 thread)"
    )
    for mode in ("lexical", "semantic", "hybrid"):
        times = []
        for _ in range(repeats):
            for query in judged:
                request = parse_request({"q": query["q"], "mode": mode, "page_size": "20"})
                start = time.perf_counter()
                library.search(request)
                times.append((time.perf_counter() - start) * 1000)
        print(f"  {mode:<22} {percentiles(times)}")
    embed_times, rank_times = [], []
    for _ in range(repeats):
        for query in judged:
            start = time.perf_counter()
            vector = embedder.embed_query(query["q"])
            embed_times.append((time.perf_counter() - start) * 1000)
            request = parse_request({"q": query["q"], "mode": "hybrid"})
            start = time.perf_counter()
            rank(library.view().snapshot, vectors, vector, request, mode="hybrid")
            rank_times.append((time.perf_counter() - start) * 1000)
    print(f"  {'of which: embed query':<22} {percentiles(embed_times)}")
    print(f"  {'hybrid ranking alone':<22} {percentiles(rank_times)}")


def percentiles(times: list[float]) -> str:
    times = sorted(times)
    p50 = times[len(times) // 2]
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return f"p50 {p50:7.2f}  p99 {p99:7.2f}"


if __name__ == "__main__":
    main()
