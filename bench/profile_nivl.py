"""Profile nivl's import and search paths with cProfile; print the top costs.

Usage::

    python bench/profile_nivl.py import --data /tmp/nivl-bench/synth-100k.jsonl
    python bench/profile_nivl.py search --home DIR [--queries 1000]

``import`` profiles ``Library.import_paths`` into a fresh temporary home; ``search``
profiles ``Library.search`` over an existing home (e.g. one kept by
``search_bench.py --keep``) with the benchmark's seeded queries. Native code (tantivy,
SQLite) shows up as the Python call that enters it. Raw profiles go to bench/results/.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
import time
from pathlib import Path

from common import RESULTS, shared_records
from search_bench import make_queries

from nivl import Library, Settings
from nivl.query import parse_request


def profile_import(data: Path, top: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="nivl-profile-"))
    try:
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        library = Library(Settings.from_env({}, home=home))
        summary = library.import_paths([data])
        profiler.disable()
        seconds = time.perf_counter() - started
        library.close()
        print(f"imported {summary.read:,} records in {seconds:.1f} s under cProfile")
        report(profiler, "import", top)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def profile_search(home: Path, data: Path, queries: int, collapse: str, top: int) -> None:
    library = Library(Settings.from_env({}, home=home))
    specs = make_queries(data, queries, 7)
    limits = library.limits
    for spec in specs:  # warm up as the benchmark does
        library.search(parse_request(spec.params(collapse), limits))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for spec in specs:
        library.search(parse_request(spec.params(collapse), limits))
    profiler.disable()
    print(f"{queries} searches in {time.perf_counter() - started:.2f} s under cProfile")
    report(profiler, "search", top)


def report(profiler: cProfile.Profile, name: str, top: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"profile-{name}.pstats"
    profiler.dump_stats(path)
    stats = pstats.Stats(profiler)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    print(f"raw profile: {path} (open with python -m pstats or snakeviz)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", choices=("import", "search"))
    parser.add_argument("--data", type=Path, default=shared_records())
    parser.add_argument("--home", type=Path, help="existing nivl home (search)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--collapse", default="none")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    if args.path == "import":
        profile_import(args.data, args.top)
    else:
        if args.home is None:
            parser.error("search needs --home (a home built by search_bench.py --keep)")
        profile_search(args.home, args.data, args.queries, args.collapse, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
