"""Quality and speed of lexical, semantic and hybrid search over the shared records.

Usage:
    python bench/semantic_quality.py [--cache DIR] [--sets old,heldout] [--lexical-only]
                                     [--builtin-only] [--variants] [--pool [--judge]]
                                     [--latency N] [--model DIR] [--split SEED] [--depth N]

Needs nivl's [semantic] extra (not with --lexical-only or --builtin-only). semantic-builtin and
hybrid-builtin use the built-in static model (what every install's hybrid uses: blend with
BUILTIN_DENSE_WEIGHT); nivl-hybrid is Library.search with mode=hybrid, as a person gets it.
Imports
../shared/data/nasa/records.jsonl (read in place, never copied) into a temporary home, embeds
every record (vectors cached in --cache, keyed by the text variant, so reruns skip the model),
then for each judged query in bench/judgements.json (the set tuned on: "same" = the captions'
words, "different" = a user's words for the same thing) and bench/judgements_heldout.json (held
out, never tuned on: keyword, sentence, question, paraphrase, misspelling, name) computes
nDCG@10 (grades 0/1/2, gain 2^g - 1, unjudged = 0) per query kind for: lexical (nivl's default
plan), bm25 (the plain baseline: tantivy's default query parser, OR, over title, description
and keywords), semantic (vectors only), hybrid-blend (0.7 dense / 0.3 BM25, min-max scaled) and
hybrid-rrf (k=60); and the share of multi-word queries for which lexical and bm25 find nothing.
Also printed: embedding throughput (records per wall second and per CPU second), query latency
p50/p99 per mode, and the vector index's memory per vector.

--variants also compares what is embedded (title; +keywords; +description 200/400/1000
characters) by semantic nDCG@10. --pool prints, per query, the pooled top 10 of every mode
with its current grade, for judging; new results show as "?". --judge (with --pool) grades
the "?" results of a set whose queries carry a "rule" by that rule and writes the file back
(to be read and corrected by hand).

--model DIR uses the static model in DIR (scripts/build_model.py --out DIR) as the built-in
one, for the built-in rows and nivl-hybrid alike. --split SEED is the split check: only the
records of half B (scripts/build_model.py's ``half(nasa_id, SEED) == 1``) are imported, each
query's grades are cut to those records, and the queries left with no relevant record are
dropped; with a model built by ``build_model.py --exclude-half SEED`` every record ranked is
one the model never saw. --depth N fuses N candidates a side instead of hybrid.DEPTH, in the
bench's fusion rows and in nivl-hybrid's Library.search alike (how DEPTH was chosen).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from nivl import Library, Settings, search_index
from nivl.embeddings import Embedder, StaticEmbedder, record_text
from nivl.hybrid import (
    BUILTIN_DENSE_WEIGHT,
    DEPTH,
    blend,
    dense_ranking,
    filter_plan,
    lexical_ranking,
    rank,
    rrf,
)
from nivl.query import parse_request
from nivl.records import parse_item
from nivl.vector_index import MatrixIndex, VectorIndex

ROOT = Path(__file__).resolve().parent.parent
RECORDS = (
    Path(os.environ.get("NIVL_SHARED_DATA") or ROOT.parent / "shared/data/nasa") / "records.jsonl"
)
JUDGEMENT_SETS = {
    "old": ROOT / "bench" / "judgements.json",
    "heldout": ROOT / "bench" / "judgements_heldout.json",
}
MODES = ("lexical", "bm25", "semantic", "hybrid-blend", "hybrid-rrf")
#: The built-in static model (no extra needed): what every install's hybrid uses.
BUILTIN_MODES = ("semantic-builtin", "hybrid-builtin", "nivl-hybrid")
LEXICAL_MODES = ("lexical", "bm25")
BM25_FIELDS = ["title", "description", "keywords"]
VARIANTS = {
    "title": {"description_chars": 0, "keywords": False},
    "title+kw": {"description_chars": 0, "keywords": True},
    "title+kw+desc200": {"description_chars": 200, "keywords": True},
    "title+kw+desc400": {"description_chars": 400, "keywords": True},
    "title+kw+desc1000": {"description_chars": 1000, "keywords": True},
}
DEFAULT_VARIANT = "title+kw+desc400"
K = 10


def build_script():  # type: ignore[no-untyped-def]
    """scripts/build_model.py as a module: its ``half`` defines the split."""
    spec = importlib.util.spec_from_file_location("build_model", ROOT / "scripts/build_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def split_records(seed: int, folder: Path) -> tuple[Path, set[str]]:
    """Half B of the shared records, as a JSONL file in ``folder``, and its nasa_ids."""
    half = build_script().half
    kept: set[str] = set()
    path = folder / "half-b.jsonl"
    with RECORDS.open("rb") as lines, path.open("wb") as out:
        for line in lines:
            raw = line.decode()
            nasa_id = parse_item(orjson.loads(raw), raw=raw).nasa_id
            if half(nasa_id, seed) == 1:
                kept.add(nasa_id)
                out.write(line)
    return path, kept


def split_queries(queries: list[dict], kept: set[str]) -> list[dict]:
    """The queries with a relevant record among ``kept``, their grades cut to those."""
    cut = []
    for query in queries:
        grades = {k: v for k, v in query["grades"].items() if k in kept}
        if any(int(v) > 0 for v in grades.values()):
            cut.append(query | {"grades": grades})
    return cut


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


def builtin_vectors(library: Library, embedder: StaticEmbedder) -> MatrixIndex:
    """Every record embedded by the built-in model, timed as the import stage does it."""
    index = MatrixIndex(None, dimensions=embedder.dimensions, mark="bench")
    wall, cpu = time.perf_counter(), time.process_time()
    count = index.sync(library.store, embedder.embed, batch_size=1024)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"built-in model: {count} records embedded in {wall:.2f} s wall ({count / wall:.0f}/s), "
        f"{cpu:.2f} s CPU ({count / cpu:.0f}/CPU-s), record text parsing included; load "
        f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    return index


def bm25_ranking(library: Library, q: str, depth: int = DEPTH) -> list[tuple[int, float]]:
    """The plain baseline: tantivy's default query parser (OR) over title, description and
    keywords, with nivl's analyzer; lenient, so user punctuation is not syntax."""
    query, _errors = library.index.index.parse_query_lenient(q, BM25_FIELDS)
    hits = library.view().snapshot.search(query, limit=depth)
    return list(zip(hits.row_ids, hits.scores, strict=True))


def rankings(
    library: Library,
    vectors: VectorIndex | None,
    embedder: Embedder | None,
    q: str,
    depth: int = DEPTH,
    builtin: tuple[MatrixIndex, StaticEmbedder] | None = None,
) -> dict[str, list[tuple[int, float]]]:
    request = parse_request({"q": q})
    lexical = lexical_ranking(library.view().snapshot, request, depth)
    bm25 = bm25_ranking(library, q, depth)
    found = {"lexical": lexical, "bm25": bm25}
    snapshot = library.view().snapshot
    if builtin is not None:
        matrix, static = builtin
        dense = dense_ranking(snapshot, matrix, static.embed_query(q), filter_plan(request), depth)
        found["semantic-builtin"] = dense
        found["hybrid-builtin"] = blend(lexical, dense, weight=BUILTIN_DENSE_WEIGHT)
        # what a person gets: Library.search in hybrid mode (the home's built-in vectors,
        # the typo correction embedded, no results when no word matches)
        hybrid = parse_request({"q": q, "mode": "hybrid", "collapse": "none", "page_size": "10"})
        hits = library.search(hybrid).hits
        found["nivl-hybrid"] = [(hit.row_id, hit.score) for hit in hits]
    if vectors is None or embedder is None:
        return found
    vector = embedder.embed_query(q)
    dense = dense_ranking(snapshot, vectors, vector, filter_plan(request), depth)
    return found | {
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
    kinds = list(next(iter(scores.values())))
    print(f"\n{title}")
    print(f"{'mode':<14}{'all':>7}" + "".join(f"{k:>12}" for k in kinds) + f"{'judged@10':>11}")
    for name, by_kind in scores.items():
        every = [v for k in kinds for v in by_kind[k]]
        cells = [statistics.fmean(every)] + [statistics.fmean(by_kind[k]) for k in kinds]
        print(
            f"{name:<14}{cells[0]:>7.3f}"
            + "".join(f"{c:>12.3f}" for c in cells[1:])
            + f"{statistics.fmean(judged[name]):>11.0%}"
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
    parser.add_argument("--sets", default="old,heldout", help="judged sets: old, heldout")
    parser.add_argument(
        "--lexical-only", action="store_true", help="lexical and bm25 only (no model)"
    )
    parser.add_argument(
        "--builtin-only", action="store_true", help="lexical, bm25 and the built-in model"
    )
    parser.add_argument("--variants", action="store_true", help="compare embedded texts")
    parser.add_argument("--pool", action="store_true", help="print pooled results to judge")
    parser.add_argument("--judge", action="store_true", help="grade '?' by each query's rule")
    parser.add_argument("--latency", type=int, default=20, help="repeats per query for latency")
    parser.add_argument("--model", type=Path, help="the built-in model's folder to use instead")
    parser.add_argument("--split", type=int, metavar="SEED", help="rank and score half B only")
    parser.add_argument("--depth", type=int, default=DEPTH, help="fused candidates a side")
    args = parser.parse_args()
    assert rank.__kwdefaults__ is not None
    rank.__kwdefaults__["depth"] = args.depth  # Library.search's fusion, as a user's has it
    sets = {name: json.loads(JUDGEMENT_SETS[name].read_text()) for name in args.sets.split(",")}
    whole = {name: json.loads(JUDGEMENT_SETS[name].read_text()) for name in sets}
    # one indexing thread: documents keep the file's order, so equal scores (the many
    # duplicate captions) break ties the same way in every run
    search_index.indexing_threads = lambda: 1
    with tempfile.TemporaryDirectory() as home:
        records = RECORDS
        if args.split is not None:
            records, kept = split_records(args.split, Path(home))
            for document in sets.values():
                document["queries"] = split_queries(document["queries"], kept)
            print(f"split check, seed {args.split}: half B, {len(kept)} records")
        library = Library(Settings.from_env({}, home=str(Path(home) / "home")))
        static = StaticEmbedder()
        if args.model is not None:
            from model2vec import StaticModel

            static._model = StaticModel.from_pretrained(str(args.model), force_download=False)
            print(f"built-in model: {args.model}")
        library._static = static  # the import's vectors stage and nivl-hybrid use it too
        library.import_paths([records])
        embedder: Embedder | None = None
        vectors: VectorIndex | None = None
        modes = LEXICAL_MODES if args.lexical_only else (*LEXICAL_MODES, *BUILTIN_MODES)
        if not args.lexical_only:
            args.builtin = (builtin_vectors(library, static), static)
        else:
            args.builtin = None
        if not args.lexical_only and not args.builtin_only:
            modes = (*MODES, *BUILTIN_MODES)
            started = time.perf_counter()
            embedder = Embedder()
            print(f"model loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            vectors, timing = vectors_for(library, DEFAULT_VARIANT, args.cache, embedder)
            if timing:
                print(
                    f"embedding: {timing['records']} records in {timing['wall_s']:.1f} s wall "
                    f"({timing['records'] / timing['wall_s']:.1f}/s), {timing['cpu_s']:.1f} s "
                    f"CPU ({timing['records'] / timing['cpu_s']:.1f}/CPU-s); load average "
                    f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
                )
        print(f"records: {library.store.count()}")
        for set_name, document in sets.items():
            judged = document["queries"]
            evaluate(library, vectors, embedder, set_name, judged, modes, args)
            if args.judge and any("rule" in query for query in judged):
                # new grades (of half B's records, with --split) go into the whole file
                graded = {query["q"]: query["grades"] for query in judged}
                for query in whole[set_name]["queries"]:
                    query["grades"] |= graded.get(query["q"], {})
                JUDGEMENT_SETS[set_name].write_text(
                    json.dumps(whole[set_name], indent=1, ensure_ascii=False) + "\n"
                )
        if vectors is not None and embedder is not None:
            latency(library, vectors, embedder, sets[next(iter(sets))]["queries"], args.latency)
            print(
                f"\nvector index: {len(vectors)} vectors, {vectors.memory_usage / 2**20:.1f} MiB"
                f" ({vectors.memory_usage / max(len(vectors), 1):.0f} B/vector)"
            )
        library.close()


def evaluate(
    library: Library,
    vectors: VectorIndex | None,
    embedder: Embedder | None,
    set_name: str,
    judged: list[dict],
    modes: tuple[str, ...],
    args: argparse.Namespace,
) -> None:
    """Print one judged set's nDCG@10 table and its zero-result rates."""
    kinds = list(dict.fromkeys(query["kind"] for query in judged))
    scores = {m: {k: [] for k in kinds} for m in modes}
    judged_share: dict[str, list[float]] = {m: [] for m in modes}
    variant_rankings: dict[str, list[list[tuple[int, float]]]] = {}
    if args.variants and embedder is not None:
        for variant in VARIANTS:
            index, _ = vectors_for(library, variant, args.cache, embedder)
            for query in judged:
                dense = rankings(library, index, embedder, query["q"])["semantic"]
                variant_rankings.setdefault(query["q"], []).append(dense)
    for query in judged:
        ranked = rankings(
            library, vectors, embedder, query["q"], depth=args.depth, builtin=args.builtin
        )
        if args.pool:
            pool = [ranked[m] for m in modes] + variant_rankings.get(query["q"], [])
            if args.judge and "rule" in query:
                judge(library, query, pool)
            print_pool(library, query, pool)
        grades = {key: int(value) for key, value in query["grades"].items()}
        for mode in modes:
            ids = nasa_ids(library, ranked[mode])
            scores[mode][query["kind"]].append(ndcg(ids, grades))
            judged_share[mode].append(coverage(ids, grades))
    table(f"[{set_name}: {len(judged)} queries] nDCG@10", scores, judged_share)
    multi = [query["q"] for query in judged if len(query["q"].split()) > 1]
    lexical_zero = sum(
        1
        for q in multi
        if library.search(parse_request({"q": q, "page_size": "1"})).total_hits == 0
    )
    bm25_zero = sum(1 for q in multi if not bm25_ranking(library, q, 1))
    print(
        f"multi-word queries with zero results: lexical {lexical_zero}/{len(multi)} "
        f"({lexical_zero / max(len(multi), 1):.0%}), bm25 {bm25_zero}/{len(multi)} "
        f"({bm25_zero / max(len(multi), 1):.0%})"
    )
    if args.variants and embedder is not None:
        by_variant = {v: {k: [] for k in kinds} for v in VARIANTS}
        variant_judged: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for query in judged:
            grades = {key: int(value) for key, value in query["grades"].items()}
            for variant, dense in zip(VARIANTS, variant_rankings[query["q"]], strict=True):
                ids = nasa_ids(library, dense)
                by_variant[variant][query["kind"]].append(ndcg(ids, grades))
                variant_judged[variant].append(coverage(ids, grades))
        table(f"[{set_name}] semantic nDCG@10 by what is embedded", by_variant, variant_judged)


def judge(library: Library, query: dict, rankings: list[list[tuple[int, float]]]) -> None:
    """Grade the pool's unjudged results by the query's rule: every regex of "2" matches
    (title, keywords, first 500 characters of the description), else every regex of "1"."""
    rule = {grade: [re.compile(p, re.I) for p in pats] for grade, pats in query["rule"].items()}
    for row in library.store.rows_by_ids([r for ranking in rankings for r, _ in ranking[:K]]):
        if row.nasa_id in query["grades"]:
            continue
        data = orjson.loads(row.raw)["data"][0]
        keywords = data.get("keywords") or []
        text = " | ".join(
            [
                str(data.get("title", "")),
                "; ".join(map(str, keywords if isinstance(keywords, list) else [keywords])),
                " ".join(str(data.get("description", "")).split())[:500],
            ]
        )
        grade = 0
        for level in ("2", "1"):
            if rule.get(level) and all(p.search(text) for p in rule[level]):
                grade = int(level)
                break
        query["grades"][row.nasa_id] = grade


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
