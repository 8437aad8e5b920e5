"""The page-fetch step of nivl's search, alone: SQLite reading options compared.

Usage::

    python bench/fetch_bench.py --home DIR --data FILE [--queries 1000] [--whole-search]

``DIR`` is a nivl home (e.g. kept by ``search_bench.py --keep``) built from ``FILE``. The
benchmark's seeded queries are run through nivl's index once to get each page's row ids;
then every variant reads the same pages' raw items (``SELECT id, raw ... WHERE id IN``,
as ``Store.raw_by_ids`` does) on its own connection, twice, and the second pass is timed
in CPU time of this thread. The profile of ``Library.search`` at 100k records puts more
than half of its time in this step: a page of 100 carries about 1 MB of raw JSON.
``--whole-search`` then times the whole ``Library.search`` as it is and with its read
connections opened with ``PRAGMA mmap_size``, in A B B A order (CPU time per query).
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from common import percentile, shared_records
from search_bench import make_queries, query_nivl

import nivl.store
from nivl import Library, Settings
from nivl.query import parse_request, plan_query


def _mmap(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA mmap_size=4000000000")


def _cache(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA cache_size=-200000")


def _bytes(conn: sqlite3.Connection) -> None:
    conn.text_factory = bytes


def _mmap_bytes(conn: sqlite3.Connection) -> None:
    _mmap(conn)
    _bytes(conn)


VARIANTS: dict[str, Callable[[sqlite3.Connection], None]] = {
    "as nivl reads (text)": lambda conn: None,
    "mmap_size 4 GB": _mmap,
    "cache_size 200 MB": _cache,
    "bytes (no UTF-8 decode)": _bytes,
    "mmap + bytes": _mmap_bytes,
}


def pages(home: Path, data: Path, queries: int) -> list[list[int]]:
    library = Library(Settings.from_env({}, home=home))
    out = []
    for spec in make_queries(data, queries, 7):
        request = parse_request(spec.params(), library.limits)
        query = library.index.compile(plan_query(request))
        out.append(library.index.search(query, limit=100, sort=request.sort).row_ids)
    library.close()
    return [ids for ids in out if ids]


def fetch_all(conn: sqlite3.Connection, pages: list[list[int]]) -> int:
    size = 0
    for ids in pages:
        sql = f"SELECT id, raw FROM records WHERE id IN ({','.join('?' * len(ids))})"
        size += sum(len(raw) for _id, raw in conn.execute(sql, ids).fetchall())
    return size


def whole_search(home: Path, data: Path, queries: int) -> None:
    """``Library.search`` as is vs with mmap'd read connections, in A B B A order."""
    specs = make_queries(data, queries, 7)
    plain = nivl.store.Store._connect

    def mapped(self: nivl.store.Store, *, read_only: bool = False) -> sqlite3.Connection:
        conn = plain(self, read_only=read_only)
        if read_only:
            conn.execute("PRAGMA mmap_size=4000000000")
        return conn

    print(f"{'Library.search':<26} {'CPU p50':>8} {'p95':>8} {'p99':>8} {'mean':>8}  (ms)")
    for label, connect in (("as is", plain), ("mmap", mapped), ("mmap", mapped), ("as is", plain)):
        nivl.store.Store._connect = connect  # type: ignore[method-assign]
        _wall, cpu_ns, _hits = query_nivl(home, specs, specs, "none")
        cpu = sorted(v / 1e6 for v in cpu_ns)
        print(
            f"{label:<26} {percentile(cpu, 50):>8.3f} {percentile(cpu, 95):>8.3f} "
            f"{percentile(cpu, 99):>8.3f} {sum(cpu) / len(cpu):>8.3f}"
        )
    nivl.store.Store._connect = plain  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=shared_records())
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--whole-search", action="store_true", help="also time Library.search with mmap readers"
    )
    args = parser.parse_args(argv)
    todo = pages(args.home, args.data, args.queries)
    rows = sum(map(len, todo)) / len(todo)
    print(f"{len(todo)} non-empty pages, {rows:.1f} rows a page")
    print(f"{'variant':<26} {'CPU ms/page':>12} {'KB/page':>9}")
    for name, configure in VARIANTS.items():
        conn = sqlite3.connect(args.home / "nivl.db")
        conn.execute("PRAGMA query_only=1")
        configure(conn)
        fetch_all(conn, todo)  # warm
        started = time.thread_time()
        size = fetch_all(conn, todo)
        cpu = time.thread_time() - started
        print(f"{name:<26} {cpu / len(todo) * 1000:>12.3f} {size / len(todo) / 1000:>9.0f}")
        conn.close()
    if args.whole_search:
        whole_search(args.home, args.data, args.queries)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
