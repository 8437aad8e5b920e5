"""Incremental grouping against a full one: same groups, and what an increment costs.

Usage::

    python bench/synth.py 100000 /tmp/nivl-bench/synth-100k.jsonl
    python bench/grouping_incremental.py /tmp/nivl-bench/synth-100k.jsonl --first 42000
    python bench/synth.py 101000 /tmp/nivl-bench/synth-101k.jsonl
    python bench/grouping_incremental.py /tmp/nivl-bench/synth-101k.jsonl --first 100000 --workers 1

The records (in file order) go into one store at once and into another in two imports
(the first ``--first`` records, then the rest), each grouped after its import as
``nivl import`` does (stores only: no index). It prints the groups per level of both,
whether the partitions and ids agree, and the wall and CPU seconds each grouping took
(``--workers 1`` keeps all of it in this process); the exit status is 1 when they
disagree. The second command times an increment of 1,000 records into a 100k home.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import orjson

from nivl.grouping import LEVELS
from nivl.groups import update_groups
from nivl.records import parse_item
from nivl.store import Store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path)
    parser.add_argument("--first", type=int, required=True, help="records of the first import")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    lines = args.records.read_bytes().splitlines()
    records = [parse_item(orjson.loads(line), raw=line.decode()) for line in lines if line]
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        full, _ = grouped(Path(one), [records], args.workers)
        split, seconds = grouped(
            Path(two), [records[: args.first], records[args.first :]], args.workers
        )
    same = True
    for level, name in enumerate(LEVELS):
        a, b = partition(full, level), partition(split, level)
        same &= a == b
        print(f"{name}: {len(a):,} groups at once, {len(b):,} in two imports, same={a == b}")
    differ = sum(full[n] != split[n] for n in full)
    print(f"records with other ids: {differ:,}")
    for n, (wall, cpu) in enumerate(seconds, 1):  # CPU: this process's, not its workers'
        print(f"grouping import {n} of 2: {wall:.2f} s wall, {cpu:.2f} s CPU")
    return 0 if same and not differ else 1


def grouped(
    home: Path, imports: list[list], workers: int | None
) -> tuple[dict[str, tuple[int, int, int]], list[tuple[float, float]]]:
    seconds = []
    with Store(home / "nivl.db") as store:
        for batch in imports:
            store.upsert_records(batch)
            started, cpu = time.perf_counter(), time.process_time()
            update_groups(store, workers=workers)
            seconds.append((time.perf_counter() - started, time.process_time() - cpu))
        names = {row.id: row.nasa_id for row in store.iter_rows(since_rev=0)}
        ids = store.groups_by_row_ids(sorted(names))
    return {names[row]: groups for row, groups in ids.items()}, seconds


def partition(ids: dict[str, tuple[int, int, int]], level: int) -> set[frozenset[str]]:
    members: dict[int, set[str]] = defaultdict(set)
    for nasa_id, groups in ids.items():
        members[groups[level]].add(nasa_id)
    return {frozenset(m) for m in members.values()}


if __name__ == "__main__":
    sys.exit(main())
