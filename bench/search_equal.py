"""Dump what a tree's searches return, to compare two trees' results exactly.

Usage (the old tree, then the new, over the same home; then compare)::

    PYTHONPATH=/work/main/src python bench/search_equal.py --home DIR --data X.jsonl --out old.json
    PYTHONPATH=src python bench/search_equal.py --home DIR --data X.jsonl --out new.json
    python bench/search_equal.py --compare old.json new.json [--modulo-ties]

For each of ``--queries`` queries of ``http_latency.py``'s set (and each with a typo, and
pages 2 and 3 of collapsed ones) in each ``--collapse`` mode, it records the ids, the
scores, ``total_hits``, ``total_groups``, the group of each hit and the suggestion: a
speed change must leave all of them identical. Also prints the CPU time of the searches.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from search_bench import make_queries

from nivl import Library, Settings
from nivl.query import parse_request


def requests(data: Path, count: int, seed: int, modes: list[str]) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for spec in make_queries(data, count, seed):
        for mode in modes:
            params = spec.params(mode)
            out.append(params)
            word = params["q"].split()[0]
            if len(word) >= 5 and rng.random() < 0.3:  # a typo: one letter dropped
                cut = rng.randrange(1, len(word))
                typo = params["q"].replace(word, word[:cut] + word[cut + 1 :], 1)
                out.append({**params, "q": typo})
            if mode != "none" and rng.random() < 0.3:
                out.extend({**params, "page": str(page)} for page in (2, 3))
    return out


def dump(args: argparse.Namespace) -> None:
    library = Library(Settings.from_env({}, home=args.home), sync=False)
    rows: list[Any] = []
    spent = 0.0
    for params in requests(args.data, args.queries, args.seed, args.collapse.split(",")):
        request = parse_request(params, library.limits)
        started = time.process_time()
        result = library.search(request)
        spent += time.process_time() - started
        rows.append(
            {
                "params": params,
                "total_hits": result.total_hits,
                "total_groups": result.total_groups,
                "hits": [
                    (h.row_id, h.score, h.group and (h.group.id, h.group.size)) for h in result.hits
                ],
                "suggestion": result.suggestion,
                "corrected": result.corrected,
            }
        )
    args.out.write_bytes(orjson.dumps(rows))
    print(f"{len(rows)} searches, {spent / len(rows) * 1000:.3f} ms CPU each (process)")
    library.close()


def modulo_ties(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with the hits of each run of equal scores as a set (a collapsed hit as its
    group: a tie can make another member its group's first), and the first and last runs,
    which the page boundaries may cut, only by their length: two indexes built apart hold
    the same records in another order, and tantivy breaks ties by that order."""
    runs: list[tuple[float, list[str]]] = []
    for row_id, score, group in row["hits"]:
        if not runs or runs[-1][0] != score:
            runs.append((score, []))
        runs[-1][1].append(str(group or row_id))
    shown = [(score, sorted(hits)) for score, hits in runs]
    for i in {0, len(runs) - 1} if runs else set():
        shown[i] = (runs[i][0], [str(len(runs[i][1]))])
    return {**row, "hits": shown}


def compare(old_path: Path, new_path: Path, ties: bool = False) -> int:
    old, new = orjson.loads(old_path.read_bytes()), orjson.loads(new_path.read_bytes())
    if len(old) != len(new):
        print(f"different lengths: {len(old)} vs {len(new)}")
        return 1
    if ties:
        old, new = [modulo_ties(r) for r in old], [modulo_ties(r) for r in new]
    differ = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    for a, b in differ[:10]:
        print("differs:", a["params"])
        for key in a:
            if a[key] != b[key]:
                print(f"  {key}: {str(a[key])[:200]}\n  {' ' * len(key)}  {str(b[key])[:200]}")
    print(f"{len(old) - len(differ)} of {len(old)} searches identical")
    return 1 if differ else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--collapse", default="none,event")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"))
    parser.add_argument(
        "--modulo-ties",
        action="store_true",
        help="hits of equal score compared as sets (for two indexes built apart)",
    )
    args = parser.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare, ties=args.modulo_ties))
    dump(args)


if __name__ == "__main__":
    main()
