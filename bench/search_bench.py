"""Import throughput and query latency: nivl vs raw tantivy vs SQLite FTS5, in one run.

Usage::

    python bench/search_bench.py                                   # the shared real records
    python bench/search_bench.py --data /tmp/nivl-bench/synth-100k.jsonl --queries 1000

Each system imports the same JSONL file in a fresh child process (so its peak RSS is its
own), then answers the same fixed, seeded queries in another fresh child:

- **nivl**: ``Library(Settings.from_env({}, home=tmp)).import_paths([path])`` (SQLite store
  plus tantivy index), then ``Library.search(parse_request({...}))`` for a page of 100,
  which returns the stored raw items; with ``collapse=event`` too when grouping exists;
- **tantivy**: raw tantivy-py over the same text fields (same boosts, ``en_stem``), the
  same filters as tantivy queries, top 100 (addresses only, ``count=True``);
- **fts5**: one SQLite FTS5 table (``porter unicode61``) over the same text fields with
  UNINDEXED filter/sort columns, top 100 rowids in bm25 order (same column weights).

Both baselines read the file with orjson and take the texts the way nivl does
(``nivl.records`` helpers for keywords and dates), and store nothing else. Queries are
1-4 words drawn from the corpus (a record's title/keywords, or the description
vocabulary by frequency), some with media_type/center/year filters or a date sort; every
system runs them once to warm up, then once timed. Results: a table on stdout and JSON in
``bench/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import bisect
import importlib.util
import itertools
import json
import multiprocessing
import os
import platform
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import tantivy
from common import RESULTS, peak_rss_mb, percentile, shared_records
from rich.console import Console
from rich.table import Table

from nivl import Library, Settings
from nivl.query import Q_FIELDS, parse_request
from nivl.records import normalise_list, parse_date
from nivl.search_index import WRITER_HEAP, indexing_threads

#: Text fields of the baselines, in FTS5 column order; weights are nivl's ``q`` boosts.
TEXT_FIELDS = tuple(Q_FIELDS)
STOPWORDS = frozenset(
    "the and for with from this that are was were has have had its into onto over under "
    "about after before during image photo credit nasa will which their there these those "
    "been being also more than then they them what when where while who whom whose".split()
)
_WORD = re.compile(r"[A-Za-z][A-Za-z]{2,}")
CENTERS = ("JPL", "HQ", "JSC", "GSFC", "GRC", "KSC", "ARC", "MSFC", "AFRC", "LRC")
HAS_GROUPING = importlib.util.find_spec("nivl.grouping") is not None
TANTIVY_HEAP = WRITER_HEAP  # the same writer heap and thread count nivl uses
BATCH = 1000


# --- the texts, as every system sees them ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Doc:
    texts: tuple[str, ...]  # in TEXT_FIELDS order
    nasa_id: str
    media_type: str
    center: str
    year: int | None
    ts: int


def read_docs(path: Path) -> Iterator[Doc]:
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                yield to_doc(orjson.loads(line))


def to_doc(item: dict[str, Any]) -> Doc:
    data = item["data"][0]
    year, _date, ts = parse_date(data.get("date_created") or "")
    keywords = normalise_list(data.get("keywords"))
    album = normalise_list(data.get("album"), split=False)
    values = {
        "keywords": " \n".join(keywords),
        "album_text": " \n".join(album),
        "ids": data["nasa_id"],
    }
    texts = tuple(values[name] if name in values else _text(data.get(name)) for name in TEXT_FIELDS)
    return Doc(
        texts=texts,
        nasa_id=data["nasa_id"],
        media_type=data["media_type"],
        center=_text(data.get("center")).upper(),
        year=year,
        ts=ts if ts is not None else -(2**62),
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# --- queries -------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    words: tuple[str, ...]
    media_type: str = ""
    center: str = ""
    year_start: int | None = None
    year_end: int | None = None
    sort: str = "relevance"

    def params(self, collapse: str = "none") -> dict[str, str]:
        out = {"q": " ".join(self.words), "page_size": "100", "sort": self.sort}
        if collapse != "none":
            out["collapse"] = collapse
        if self.media_type:
            out["media_type"] = self.media_type
        if self.center:
            out["center"] = self.center
        if self.year_start is not None:
            out["year_start"] = str(self.year_start)
            out["year_end"] = str(self.year_end)
        return out


def make_queries(path: Path, count: int, seed: int, sample: int = 20_000) -> list[Spec]:
    """``count`` queries from the first ``sample`` items of ``path``, the same for a seed."""
    titles: list[list[str]] = []
    vocabulary: Counter[str] = Counter()
    years: list[int] = []
    with path.open("rb") as f:
        for line in itertools.islice(f, sample):
            data = orjson.loads(line)["data"][0]
            head = f"{data.get('title', '')} {' '.join(normalise_list(data.get('keywords')))}"
            words = [w for w in dict.fromkeys(_WORD.findall(head.lower())) if w not in STOPWORDS]
            if words:
                titles.append(words)
            vocabulary.update(
                w
                for w in _WORD.findall(_text(data.get("description"))[:2000].lower())
                if w not in STOPWORDS
            )
            year, _, _ = parse_date(data.get("date_created") or "")
            if year is not None:
                years.append(year)
    names = sorted(vocabulary)
    cumulative = list(itertools.accumulate(vocabulary[n] for n in names))
    rng = random.Random(seed)
    specs: list[Spec] = []
    for _ in range(count):
        k = rng.choice((1, 1, 2, 2, 2, 3, 4))
        if rng.random() < 0.65:
            source = rng.choice(titles)
            words = tuple(rng.sample(source, min(k, len(source))))
        else:
            drawn = (
                names[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])]
                for _ in range(min(k, 2))
            )
            words = tuple(dict.fromkeys(drawn))
        year_start = rng.choice(years) if rng.random() < 0.15 else None
        draw = rng.random()
        sort = "date_desc" if draw < 0.15 else "date_asc" if draw < 0.2 else "relevance"
        specs.append(
            Spec(
                words=words,
                media_type=rng.choice(("image", "video", "audio", "image,video"))
                if rng.random() < 0.2
                else "",
                center=rng.choice(CENTERS) if rng.random() < 0.15 else "",
                year_start=year_start,
                year_end=None if year_start is None else year_start + rng.randint(0, 10),
                sort=sort,
            )
        )
    return specs


# --- nivl ---------------------------------------------------------------------------


def import_nivl(path: Path, where: Path) -> dict[str, Any]:
    started = time.perf_counter()
    library = Library(Settings.from_env({}, home=where))
    summary = library.import_paths([path])
    seconds = time.perf_counter() - started
    library.close()
    return {
        "seconds": seconds,
        "records": summary.read,
        "rejected": summary.rejected,
        "steps": {name: round(value, 1) for name, value in summary.seconds.items()},
    }


def query_nivl(
    where: Path, specs: list[Spec], warm: list[Spec], collapse: str
) -> tuple[list[int], list[int], list[int]]:
    library = Library(Settings.from_env({}, home=where))
    limits = library.limits

    def run(spec: Spec) -> int:
        result = library.search(parse_request(spec.params(collapse), limits))
        return len(result.hits)

    return _timed(specs, warm, run)


# --- raw tantivy ----------------------------------------------------------------------


def tantivy_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    for name in TEXT_FIELDS:
        builder.add_text_field(name, tokenizer_name="en_stem")
    builder.add_text_field("nasa_id", tokenizer_name="raw", stored=True)
    builder.add_text_field("media_type", tokenizer_name="raw", fast=True)
    builder.add_text_field("center", tokenizer_name="raw", fast=True)
    builder.add_integer_field("year", indexed=True, fast=True)
    builder.add_integer_field("ts", indexed=True, fast=True)
    return builder.build()


def import_tantivy(path: Path, where: Path) -> dict[str, Any]:
    started = time.perf_counter()
    where.mkdir(parents=True)
    index = tantivy.Index(tantivy_schema(), path=str(where))
    writer = index.writer(heap_size=TANTIVY_HEAP, num_threads=indexing_threads())
    records = 0
    for doc in read_docs(path):
        document = tantivy.Document()
        for name, text in zip(TEXT_FIELDS, doc.texts, strict=True):
            if text:
                document.add_text(name, text)
        document.add_text("nasa_id", doc.nasa_id)
        document.add_text("media_type", doc.media_type)
        document.add_text("center", doc.center)
        if doc.year is not None:
            document.add_integer("year", doc.year)
        document.add_integer("ts", doc.ts)
        writer.add_document(document)
        records += 1
    writer.commit()
    writer.wait_merging_threads()
    return {"seconds": time.perf_counter() - started, "records": records}


def query_tantivy(
    where: Path, specs: list[Spec], warm: list[Spec]
) -> tuple[list[int], list[int], list[int]]:
    index = tantivy.Index.open(str(where))
    schema = tantivy_schema()
    searcher = index.searcher()
    boosts = dict(Q_FIELDS)

    def run(spec: Spec) -> int:
        text = " ".join(f"+{w}" for w in spec.words)
        parts = [
            (tantivy.Occur.Must, index.parse_query(text, list(TEXT_FIELDS), field_boosts=boosts))
        ]
        if spec.media_type:
            kinds = spec.media_type.split(",")
            parts.append(
                (tantivy.Occur.Must, tantivy.Query.term_set_query(schema, "media_type", kinds))
            )
        if spec.center:
            parts.append(
                (tantivy.Occur.Must, tantivy.Query.term_query(schema, "center", spec.center))
            )
        if spec.year_start is not None:
            year = tantivy.Query.range_query(
                schema, "year", tantivy.FieldType.Integer, spec.year_start, spec.year_end
            )
            parts.append((tantivy.Occur.Must, year))
        query = parts[0][1] if len(parts) == 1 else tantivy.Query.boolean_query(parts)
        if spec.sort == "relevance":
            result = searcher.search(query, 100)
        else:
            order = tantivy.Order.Desc if spec.sort == "date_desc" else tantivy.Order.Asc
            result = searcher.search(query, 100, order_by_field="ts", order=order)
        return len(result.hits)

    return _timed(specs, warm, run)


# --- SQLite FTS5 ------------------------------------------------------------------------


def import_fts5(path: Path, where: Path) -> dict[str, Any]:
    started = time.perf_counter()
    where.mkdir(parents=True)
    conn = sqlite3.connect(where / "fts.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    columns = ", ".join(TEXT_FIELDS)
    conn.execute(
        f"CREATE VIRTUAL TABLE docs USING fts5({columns}, nasa_id UNINDEXED, "
        "media_type UNINDEXED, center UNINDEXED, year UNINDEXED, ts UNINDEXED, "
        "tokenize='porter unicode61')"
    )
    placeholders = ", ".join("?" * (len(TEXT_FIELDS) + 5))
    sql = f"INSERT INTO docs VALUES ({placeholders})"
    records = 0
    docs = read_docs(path)
    while batch := list(itertools.islice(docs, BATCH)):
        conn.execute("BEGIN")
        conn.executemany(
            sql, [(*d.texts, d.nasa_id, d.media_type, d.center, d.year, d.ts) for d in batch]
        )
        conn.execute("COMMIT")
        records += len(batch)
    conn.close()
    return {"seconds": time.perf_counter() - started, "records": records}


def query_fts5(
    where: Path, specs: list[Spec], warm: list[Spec]
) -> tuple[list[int], list[int], list[int]]:
    conn = sqlite3.connect(where / "fts.db")
    conn.execute("PRAGMA query_only=1")
    weights = ", ".join(str(w) for w in Q_FIELDS.values())

    def run(spec: Spec) -> int:
        where_sql = ["docs MATCH ?"]
        args: list[Any] = [" ".join(f'"{w}"' for w in spec.words)]
        if spec.media_type:
            kinds = spec.media_type.split(",")
            where_sql.append(f"media_type IN ({', '.join('?' * len(kinds))})")
            args.extend(kinds)
        if spec.center:
            where_sql.append("center = ?")
            args.append(spec.center)
        if spec.year_start is not None:
            where_sql.append("year BETWEEN ? AND ?")
            args.extend((spec.year_start, spec.year_end))
        order = {"relevance": f"bm25(docs, {weights})", "date_desc": "ts DESC"}.get(
            spec.sort, "ts ASC"
        )
        sql = f"SELECT rowid FROM docs WHERE {' AND '.join(where_sql)} ORDER BY {order} LIMIT 100"
        return len(conn.execute(sql, args).fetchall())

    return _timed(specs, warm, run)


# --- running -----------------------------------------------------------------------------


def _timed(
    specs: list[Spec], warm: list[Spec], run: Callable[[Spec], int]
) -> tuple[list[int], list[int], list[int]]:
    """Wall and on-CPU (this thread) nanoseconds per query, and hits.

    The CPU time does not count waiting for a core, so it stays meaningful on a machine
    that other work shares; every system here searches in the calling thread.
    """
    for spec in warm:  # warm-up: caches, mmap'd files, lazily opened readers
        run(spec)
    wall: list[int] = []
    cpu: list[int] = []
    hits: list[int] = []
    for spec in specs:
        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
        hits.append(run(spec))
        cpu.append(time.thread_time_ns() - started_cpu)
        wall.append(time.perf_counter_ns() - started)
    return wall, cpu, hits


def _child(target: Callable[..., Any], args: tuple[Any, ...], out: Any) -> None:
    started = time.process_time()
    result = target(*args)
    if isinstance(result, dict):
        result["cpu_seconds"] = time.process_time() - started  # all threads of the process
    out.put((result, peak_rss_mb()))


def in_child(target: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Run ``target(*args)`` in a fresh process; its result and that process's peak RSS."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(target, args, queue))
    process.start()
    result, rss = queue.get()
    process.join()
    if process.exitcode:
        raise RuntimeError(f"{target.__name__} failed with exit code {process.exitcode}")
    return result, rss


def disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def summarise(wall_ns: list[int], cpu_ns: list[int], hits: list[int]) -> dict[str, float]:
    ms = sorted(v / 1e6 for v in wall_ns)
    cpu = sorted(v / 1e6 for v in cpu_ns)
    return {
        "queries": len(ms),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "mean_ms": sum(ms) / len(ms),
        "cpu_p50_ms": percentile(cpu, 50),
        "cpu_p95_ms": percentile(cpu, 95),
        "cpu_p99_ms": percentile(cpu, 99),
        "qps": len(ms) / (sum(ms) / 1000),
        "mean_hits": sum(hits) / len(hits),
        "zero_hit_share": sum(1 for h in hits if h == 0) / len(hits),
    }


IMPORTERS: dict[str, Callable[[Path, Path], dict[str, Any]]] = {
    "nivl": import_nivl,
    "tantivy": import_tantivy,
    "fts5": import_fts5,
}


@dataclass(frozen=True)
class Options:
    data: Path
    out: Path
    queries: int = 1000
    seed: int = 7
    repeat: int = 1
    warmup: int | None = None  # queries run untimed first (None: all of them)
    systems: tuple[str, ...] = tuple(IMPORTERS)
    keep: Path | None = None


def run(options: Options) -> dict[str, Any]:
    """Import with each system, then query each; the JSON is rewritten after every step."""
    base = Path(tempfile.mkdtemp(prefix="nivl-search-bench-", dir=options.keep))
    specs = make_queries(options.data, options.queries, options.seed)
    warm = specs if options.warmup is None else specs[: options.warmup]
    result: dict[str, Any] = {
        "data": str(options.data),
        "queries": options.queries,
        "warmup": len(warm),
        "seed": options.seed,
        "repeat": options.repeat,
        "grouping": HAS_GROUPING,
        "machine": machine(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_at_start": os.getloadavg()[0],
        "import": {},
        "query": {},
    }

    def save(step: str) -> None:
        result["load_average_at_end"] = os.getloadavg()[0]
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(result, indent=2) + "\n")
        log(f"{step} done ({datetime.now(UTC):%H:%M:%S})")

    try:
        for name in options.systems:
            runs = []
            for attempt in range(options.repeat):
                where = base / f"{name}-{attempt}"
                outcome, rss = in_child(IMPORTERS[name], options.data, where)
                runs.append({**outcome, "peak_rss_mb": rss, "disk_mb": disk_mb(where)})
                if attempt < options.repeat - 1:
                    shutil.rmtree(where)
            best = min(runs, key=lambda r: r["seconds"])
            result["import"][name] = {
                **best,
                "records_per_s": best["records"] / best["seconds"],
                "all_seconds": [r["seconds"] for r in runs],
            }
            save(f"import {name}")
        last = options.repeat - 1
        variants: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
        if "nivl" in options.systems:
            home = base / f"nivl-{last}"
            variants.append(("nivl", query_nivl, (home, specs, warm, "none")))
            if HAS_GROUPING:
                variants.append(("nivl collapse=event", query_nivl, (home, specs, warm, "event")))
        if "tantivy" in options.systems:
            variants.append(("tantivy", query_tantivy, (base / f"tantivy-{last}", specs, warm)))
        if "fts5" in options.systems:
            variants.append(("fts5", query_fts5, (base / f"fts5-{last}", specs, warm)))
        for name, target, args in variants:
            (wall, cpu, hits), rss = in_child(target, *args)
            result["query"][name] = {**summarise(wall, cpu, hits), "peak_rss_mb": rss}
            save(f"queries {name}")
    finally:
        if options.keep is None:
            shutil.rmtree(base, ignore_errors=True)
        else:
            result["kept"] = str(base)
            save("all")
    return result


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    meminfo = Path("/proc/meminfo")
    mem = meminfo.read_text().split()[1] if meminfo.exists() else "0"
    return {
        "cpu": cpu,
        "cores": multiprocessing.cpu_count(),
        "memory_gb": round(int(mem) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "tantivy_py": _version("tantivy"),
        "nivl": _version("nivl"),
        "commit": _commit(),
    }


def _commit() -> str:
    """The commit of the tree nivl is imported from (``+`` if its src/ is modified)."""
    import nivl

    tree = Path(nivl.__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(tree), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+" if dirty else "")


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def render(result: dict[str, Any], console: Console) -> None:
    first = next(iter(result["import"].values()), {"records": 0})
    title = f"Import + index: {first['records']:,} records from {Path(result['data']).name}"
    imports = Table(title=title)
    columns = (
        "system",
        "seconds",
        "records/s",
        "vs nivl",
        "CPU s",
        "records/CPU-s",
        "peak RSS MB",
        "on disk MB",
    )
    for column in columns:
        imports.add_column(column, justify="left" if column == "system" else "right")
    nivl_rate = result["import"].get("nivl", {}).get("records_per_s")
    for name, row in result["import"].items():
        imports.add_row(
            name,
            f"{row['seconds']:.2f}",
            f"{row['records_per_s']:,.0f}",
            f"{row['records_per_s'] / nivl_rate:.2f}x" if nivl_rate else "-",
            f"{row['cpu_seconds']:.2f}" if "cpu_seconds" in row else "-",
            f"{row['records'] / row['cpu_seconds']:,.0f}" if "cpu_seconds" in row else "-",
            f"{row['peak_rss_mb']:,.0f}",
            f"{row['disk_mb']:,.1f}",
        )
    console.print(imports)
    steps = result["import"].get("nivl", {}).get("steps")
    if steps:
        console.print("nivl's steps (wall s): " + ", ".join(f"{k} {v}" for k, v in steps.items()))
    queries = Table(
        title=f"Query latency: {result['queries']} queries, top 100, seed {result['seed']}"
    )
    columns = (
        "system",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "mean ms",
        "p50 vs tantivy",
        "CPU p50",
        "CPU p99",
        "mean hits",
        "zero-hit",
    )
    for column in columns:
        queries.add_column(column, justify="left" if column == "system" else "right")
    base = result["query"].get("tantivy", {}).get("p50_ms")
    for name, row in result["query"].items():
        queries.add_row(
            name,
            f"{row['p50_ms']:.3f}",
            f"{row['p95_ms']:.3f}",
            f"{row['p99_ms']:.3f}",
            f"{row['mean_ms']:.3f}",
            f"{row['p50_ms'] / base:.2f}x" if base else "-",
            f"{row['cpu_p50_ms']:.3f}" if "cpu_p50_ms" in row else "-",
            f"{row['cpu_p99_ms']:.3f}" if "cpu_p99_ms" in row else "-",
            f"{row['mean_hits']:.1f}",
            f"{row['zero_hit_share']:.0%}",
        )
    console.print(queries)
    m = result["machine"]
    console.print(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}, "
        f"SQLite {m['sqlite']}, tantivy-py {m['tantivy_py']}, nivl {m['nivl']} "
        f"({m.get('commit', '?')}); load average "
        f"{result.get('load_average_at_start', float('nan')):.1f} at start, "
        f"{result.get('load_average_at_end', float('nan')):.1f} "
        "at end (other work shares the cores)"
    )


def markdown(result: dict[str, Any]) -> str:
    """The two tables as Markdown, for bench/README.md."""
    lines = [
        "| system | import s | records/s | CPU s | records/CPU-s | peak RSS MB | on disk MB |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name, row in result["import"].items():
        cpu = row.get("cpu_seconds")
        lines.append(
            f"| {name} | {row['seconds']:.1f} | {row['records_per_s']:,.0f} | "
            + (f"{cpu:.1f} | {row['records'] / cpu:,.0f}" if cpu else "- | -")
            + f" | {row['peak_rss_mb']:,.0f} | {row['disk_mb']:,.0f} |"
        )
    base = result["query"].get("tantivy", {}).get("cpu_p50_ms")
    lines += [
        "",
        "| system | p50 ms | p95 ms | p99 ms | CPU p50 ms | CPU p95 ms | CPU p99 ms "
        "| CPU p50 vs tantivy | mean hits |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, row in result["query"].items():
        ratio = f"{row['cpu_p50_ms'] / base:.1f}x" if base and "cpu_p50_ms" in row else "-"
        lines.append(
            f"| {name} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row.get('cpu_p50_ms', float('nan')):.2f} | {row.get('cpu_p95_ms', float('nan')):.2f}"
            f" | {row.get('cpu_p99_ms', float('nan')):.2f} | {ratio} | {row['mean_hits']:.1f} |"
        )
    return "\n".join(lines)


def scaling(results: list[dict[str, Any]]) -> str:
    """One Markdown row per (run, system): how each figure grows with the corpus."""
    lines = [
        "| records | system | import records/s | records/CPU-s | peak RSS MB | on disk MB "
        "| CPU p50 ms | CPU p95 ms | CPU p99 ms | wall p50 ms | wall p99 ms | load | grouping |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for result in results:
        for name in ("nivl", "nivl collapse=event", "tantivy", "fts5"):
            imp = result["import"].get(name.split()[0], {})
            query = result["query"].get(name, {})
            if (not imp and not query) or (name != name.split()[0] and not query):
                continue
            records = imp.get("records") or next(iter(result["import"].values()))["records"]
            cells = [f"{records:,}", name]
            cpu = imp.get("cpu_seconds")
            own = bool(imp) and name == name.split()[0]
            cells += [f"{imp['records_per_s']:,.0f}" if own else ""]
            cells += [f"{imp['records'] / cpu:,.0f}" if own and cpu else ""]
            cells += [f"{imp['peak_rss_mb']:,.0f}", f"{imp['disk_mb']:,.0f}"] if imp else ["", ""]
            for key in ("cpu_p50_ms", "cpu_p95_ms", "cpu_p99_ms", "p50_ms", "p99_ms"):
                cells.append(f"{query[key]:.2f}" if key in query else "not run")
            start, end = result.get("load_average_at_start"), result.get("load_average_at_end")
            cells.append(f"{start:.0f}-{end:.0f}" if start is not None and end is not None else "")
            cells.append("yes" if result.get("grouping") else "no")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared_records(), help="JSONL of items")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--warmup", type=int, help="untimed queries first (default: all)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="imports per system (best kept; default 3 under 10k records, else 1)",
    )
    parser.add_argument(
        "--systems", default=",".join(IMPORTERS), help="comma list of nivl,tantivy,fts5"
    )
    parser.add_argument("--keep", type=Path, help="keep the built stores under this directory")
    parser.add_argument("--out", type=Path, help="JSON results (default: bench/results/...)")
    parser.add_argument("--show", type=Path, help="print the tables of a results JSON and stop")
    parser.add_argument("--markdown", action="store_true", help="with --show: as Markdown")
    parser.add_argument(
        "--scaling", type=Path, nargs="+", help="one Markdown table over several results JSONs"
    )
    args = parser.parse_args(argv)
    if args.scaling:
        print(scaling([json.loads(path.read_text()) for path in args.scaling]))
        return 0
    if args.show is not None:
        shown = json.loads(args.show.read_text())
        if args.markdown:
            print(markdown(shown))
        else:
            render(shown, Console(width=120))
        return 0
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    if not systems or set(systems) - set(IMPORTERS):
        parser.error(f"--systems takes a comma list of {', '.join(IMPORTERS)}")
    if args.repeat is None:
        with args.data.open("rb") as f:
            lines = sum(1 for _ in itertools.islice(f, 10_000))
        args.repeat = 3 if lines < 10_000 else 1
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    options = Options(
        data=args.data,
        out=args.out or RESULTS / f"search-{args.data.stem}-{stamp}.json",
        queries=args.queries,
        seed=args.seed,
        repeat=args.repeat,
        warmup=args.warmup,
        systems=systems,
        keep=args.keep,
    )
    result = run(options)
    render(result, Console(width=120))
    log(f"results: {options.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
