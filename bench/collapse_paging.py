"""Collapsed search pages: nivl's exact paging against a one-pass baseline, same run.

Usage::

    python bench/collapse_paging.py --home DIR            # a home already imported
    python bench/collapse_paging.py --data FILE.jsonl     # import FILE into a temporary home

nivl (``Library.search``) reads hits in growing batches until a page's groups are found
and counts the groups of every hit exactly with one aggregation (the values two or more
hits share). The baseline reads every hit's group id in one pass (one search and one
fast-field read over all hits), which is exact too; it is timed without building the page
(raw items, group sizes), so it is a lower bound of that design's cost. Both run on the
same searcher; figures are the best of ``--repeat`` runs in ms, and the ratio baseline /
nivl (above 1: nivl is faster).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import shared_records

from nivl import Library, Settings
from nivl.query import parse_request, plan_query

QUERIES = ("the", "apollo", "departure", "")
PAGES = ((1, 100), (50, 100), (2, 500))


def best_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * min(times)


def one_pass_groups(library: Library, params: dict[str, str]) -> int:
    """Every hit's group id in one read: the exact baseline (its count only)."""
    request = parse_request(params, library.limits)
    index = library.index
    query = index.compile(plan_query(request))
    first = index.search(query, limit=1, sort=request.sort)
    hits = index.search(query, limit=max(1, first.total), sort=request.sort)
    ids = index.fast_values(f"{request.collapse}_group", hits.addresses)
    return len({g if g is not None else -r for g, r in zip(ids, hits.row_ids, strict=False)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="an imported home (default: a temporary one)")
    parser.add_argument("--data", type=Path, help="records to import into a temporary home")
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = args.home or Path(scratch) / "home"
        settings = Settings.from_env({}, home=str(home))
        with Library(settings) as library:
            if args.home is None:
                library.import_paths([args.data or shared_records()])
            print(f"{'query':12} {'sort':9} {'page':>4} {'size':>4} {'hits':>7} "
                  f"{'groups':>7} {'nivl ms':>8} {'1-pass ms':>9} {'ratio':>6}")  # fmt: skip
            for q in QUERIES:
                base = {"q": q} if q else {"media_type": "image,video,audio"}
                for sort in ("relevance", "date_desc"):
                    for page, size in PAGES:
                        params = {**base, "collapse": "event", "sort": sort}
                        paged = {**params, "page": str(page), "page_size": str(size)}
                        request = parse_request(paged, library.limits)
                        result = library.search(request)
                        assert result.total_groups == one_pass_groups(library, params)
                        ours = best_ms(lambda r=request: library.search(r), args.repeat)
                        theirs = best_ms(lambda p=paged: one_pass_groups(library, p), args.repeat)
                        print(
                            f"{q!r:12} {sort:9} {page:>4} {size:>4} {result.total_hits:>7} "
                            f"{result.total_groups:>7} {ours:>8.1f} {theirs:>9.1f} "
                            f"{theirs / ours:>6.1f}"
                        )


if __name__ == "__main__":
    main()
