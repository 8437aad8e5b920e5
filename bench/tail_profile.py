"""The slowest queries of ``http_latency.py``'s query set, and where their time goes.

Usage::

    python bench/tail_profile.py --home DIR --data synth-300k.jsonl [--queries 300] [--tail 5]
        [--clock process]

In process, on the same queries ``http_latency.py`` sends (a page of 100, ``collapse`` as
asked), each query's thread CPU time is split into what an uncached ``/search`` does: the
search (``Library.search``), the page's JSON (``search_document``), gzip (ISA-L, as the
server) and the ETag. Then the slowest ``--tail`` percent are run again under cProfile and
its top functions printed by own time (tantivy's calls show as builtins: ``search``,
``aggregate``, ``fast_field_values``; SQLite's as ``execute``/``fetchall``), with the
queries themselves, so a tail can be traced to its cause. ``--clock process`` counts
every thread's CPU: a collapsed search counts its groups on a pool thread, which the
thread clock (the default, as in earlier figures) does not see. ``--calls`` also prints,
per tantivy call (``search``, ``aggregate``, ...) and store read, its CPU and how many
calls a query makes (mean and median), from a searcher that times each call it passes on.
``--encoding`` compresses as the server does for that client (``responses.compressed``:
zstd, or gzip stitched from kept per-item fragments for a large page); ``--rounds N`` runs
the query set N times and reports the last, as a server that has seen the queries before
(its snapshot's kept counts and decisions, its kept fragments) answers them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

from common import percentile
from isal import igzip
from search_bench import make_queries

from nivl import Library, Settings
from nivl.documents import search_document, search_parts
from nivl.query import parse_request
from nivl.web.responses import body_of, compressed, etag

STEPS = ("search", "document", "gzip", "etag")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the queries' words come from it")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--collapse", choices=("event", "caption", "none"), default="event")
    parser.add_argument("--tail", type=float, default=5.0, help="percent of queries profiled")
    parser.add_argument("--top", type=int, default=25, help="profile rows printed")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument(
        "--clock",
        choices=("thread", "process"),
        default="thread",
        help="process: CPU of every thread (collapsed searches count groups on a pool thread)",
    )
    parser.add_argument(
        "--calls", action="store_true", help="CPU and count of each tantivy call and store read"
    )
    parser.add_argument(
        "--encoding",
        choices=("igzip", "gzip", "zstd"),
        default="igzip",
        help="igzip: the joined page, level 1 (earlier figures); gzip/zstd: as the server",
    )
    parser.add_argument("--rounds", type=int, default=1, help="run the queries N times")
    args = parser.parse_args()

    library = Library(Settings.from_env({}, home=args.home), sync=False)
    clock = time.thread_time if args.clock == "thread" else time.process_time
    calls = Calls(clock) if args.calls else None
    if calls is not None:
        calls.attach(library)
    specs = make_queries(args.data, args.queries, args.seed)
    requests = []
    for spec in specs:
        params = spec.params(args.collapse)
        requests.append((params, parse_request(params, library.limits)))
    for _params, request in requests[:20]:  # warm the caches a running server has warm
        library.search(request)

    rows: list[tuple[float, dict[str, float], dict[str, str], int, int]] = []
    for _round in range(max(1, args.rounds)):
        rows.clear()
        if calls is not None:
            calls.spent.clear()
        for params, request in requests:
            times = {}
            if calls is not None:
                calls.start()
            started = clock()
            result = library.search(request)
            times["search"] = clock() - started
            if calls is not None:
                calls.stop()
            mark = clock()
            parts = search_parts(result, "http://127.0.0.1:8000")
            body = b"".join(parts)
            times["document"] = clock() - mark
            mark = clock()
            if args.encoding == "igzip":
                igzip.compress(body, compresslevel=1, mtime=0)
            else:  # as the server: a large page's gzip from its pieces
                compressed(body_of(parts, 0), args.encoding, None, ())
            times["gzip"] = clock() - mark
            mark = clock()
            etag(body)
            times["etag"] = clock() - mark
            total = sum(times.values())
            rows.append((total, times, params, result.total_hits, len(body)))

    totals = sorted(r[0] for r in rows)
    print(
        f"{len(rows)} queries (round {max(1, args.rounds)}), collapse={args.collapse}, "
        f"{args.encoding}: {args.clock} CPU ms mean {sum(totals) / len(totals) * 1000:.2f}, p50 "
        f"{percentile(totals, 50) * 1000:.2f}, p95 {percentile(totals, 95) * 1000:.2f}, "
        f"p99 {percentile(totals, 99) * 1000:.2f}, max {totals[-1] * 1000:.2f}"
    )
    print(
        "median ms per step: "
        + ", ".join(f"{step} {median(r[1][step] for r in rows) * 1000:.2f}" for step in STEPS)
    )
    if calls is not None:
        calls.report(times_search=[r[1]["search"] for r in rows])
    rows.sort(key=lambda r: r[0], reverse=True)
    tail = rows[: max(1, round(len(rows) * args.tail / 100))]
    print(f"\nslowest {len(tail)} (ms: total = " + " + ".join(STEPS) + "; hits; body KB):")
    for total, times, params, hits, size in tail:
        steps = " + ".join(f"{times[s] * 1000:.1f}" for s in STEPS)
        print(f"  {total * 1000:6.1f} = {steps}; {hits:>7} hits; {size // 1024:>5} KB  {params}")

    profiler = cProfile.Profile()
    for _total, _times, params, _hits, _size in tail:
        request = parse_request(params, library.limits)
        profiler.enable()
        for _ in range(3):
            body = search_document(library.search(request), "http://127.0.0.1:8000")
            igzip.compress(body, compresslevel=1, mtime=0)
            etag(body)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(args.top)
    print("\n" + out.getvalue(), file=sys.stdout)
    library.close()


class Calls:
    """CPU and count of each tantivy searcher call and store read of each query."""

    STORE_READS = ("raw_map", "group_sizes")

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.spent: list[dict[str, tuple[int, float]]] = []
        self._now: dict[str, tuple[int, float]] | None = None

    def attach(self, library: Library) -> None:
        snapshot = library._view.snapshot  # the revision every search of this run reads
        snapshot._searcher = self._timed(snapshot._searcher)  # type: ignore[assignment]
        for name in self.STORE_READS:
            setattr(library.store, name, self._wrap(name, getattr(library.store, name)))

    def _timed(self, searcher: Any) -> Any:
        calls = self

        class Timed:
            def __getattr__(self, name: str) -> Any:
                value = getattr(searcher, name)
                return calls._wrap(name, value) if callable(value) else value

        return Timed()

    def _wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = self.clock()
            try:
                return function(*args, **kwargs)
            finally:
                if self._now is not None:
                    count, spent = self._now.get(name, (0, 0.0))
                    self._now[name] = (count + 1, spent + self.clock() - started)

        return timed

    def start(self) -> None:
        self._now = {}

    def stop(self) -> None:
        assert self._now is not None
        self.spent.append(self._now)
        self._now = None

    def report(self, times_search: list[float]) -> None:
        names = sorted(
            {n for q in self.spent for n in q},
            key=lambda n: -sum(q.get(n, (0, 0))[1] for q in self.spent),
        )
        n = len(self.spent)
        print("\nper query (CPU ms mean / median, calls mean):")
        for name in names:
            spent = [q.get(name, (0, 0.0))[1] * 1000 for q in self.spent]
            count = sum(q.get(name, (0, 0.0))[0] for q in self.spent) / n
            print(f"  {name:18s} {sum(spent) / n:6.2f} / {median(spent):6.2f}  x{count:.2f}")
        rest = [
            t * 1000 - sum(v[1] for v in q.values()) * 1000
            for t, q in zip(times_search, self.spent, strict=True)
        ]
        print(f"  {'the rest of search':18s} {sum(rest) / n:6.2f} / {median(rest):6.2f}")


if __name__ == "__main__":
    main()
