"""Groups in the store: (re)grouping after imports, expanding a group, the dupes report.

``grouping.py`` decides groups, purely; this module feeds it records from the store
and writes the results back. Each grouped row keeps its blocking keys in the store
(``group_keys``): its day and, when it has one, its normalised caption; every rule
pairs records of one day except the caption rule, which pairs equal captions.

An update regroups only the neighbourhood of the rows changed since the last one: the
rows sharing a blocking key with them (their days and their captions' rows), and every
member of those rows' event groups. It is closed under the rules: a new edge touches a
changed row, so it joins groups that already hold a neighbour; the event groups are
taken whole, so nothing they reach through older edges is left out; and a day's pairs
are decided by the two records alone, whatever else is compared with them (a
photo-number run by the numbers between them, which are in the same event group). So
the result equals a full regrouping, ids and representatives included
(``tests/test_grouping_incremental.py``), at the cost of the neighbourhood, not of the
library.

Both paths compare whole days in batches of about ``BATCH_ROWS``; a full regrouping
compares them in worker processes that die with this one (``_worker_pool``).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import Any

import orjson

from .errors import RecordNotFound
from .grouping import (
    ALL_LEVELS,
    FEATURE_CHUNK,
    Compared,
    Grouper,
    Thresholds,
    by_day,
    compare,
    each_blocking_keys,
    warm_up,
)
from .records import Record, normalise_list, parse_date, parse_item
from .store import Store, StoredRow, iter_read_rows


@dataclass(frozen=True)
class GroupUpdate:
    records: int  # records regrouped (the changed rows and their neighbourhood)
    changed: int  # records whose group ids changed
    full: bool


@dataclass(frozen=True)
class GroupPage:
    """One page of a group's members, in date order (``raws`` are stored items)."""

    id: int
    level: str
    size: int
    page: int
    page_size: int
    raws: list[str] = field(default_factory=list)

    @property
    def has_next(self) -> bool:
        return self.page * self.page_size < self.size


@dataclass(frozen=True)
class DupeGroup:
    id: int
    level: str
    size: int
    nasa_id: str  # the representative's
    title: str


@dataclass(frozen=True)
class DupesReport:
    records: int
    hidden: dict[str, int]  # level → records a collapse at that level hides
    groups: list[DupeGroup]


def update_groups(
    store: Store,
    *,
    rebuild: bool = False,
    thresholds: Thresholds | None = None,
    progress: Callable[[int], object] | None = None,
    workers: int | None = None,
    indexed: int | None = None,
) -> GroupUpdate:
    """Group the rows changed since the last update (all rows on the first or a rebuild).

    A full grouping of more than one batch compares batches in ``workers`` processes
    (default: one per core). ``indexed`` is the index stage's mark when it runs next
    (``derived.py``): rows above it keep their ``rev`` (``Store.write_groups``).
    """
    thresholds = thresholds or Thresholds()
    since = int(store.get_meta("grouped_rev", "0") or 0)
    top = store.max_rev()
    if rebuild or since == 0 or since > top:
        return _full(store, top, thresholds, progress, workers or os.cpu_count() or 1, indexed)
    if since == top:
        return GroupUpdate(0, 0, False)
    changed = {row.id: _record(row) for row in store.iter_rows(since_rev=since)}
    keys = set().union(*each_blocking_keys(list(changed.values()), thresholds))
    neighbours = store.rows_sharing_keys(keys)
    old = store.groups_by_row_ids(sorted(neighbours | set(changed)))
    members = store.rows_in_events(ids[2] for ids in old.values())
    subset = dict(changed)
    missing = sorted((neighbours | members) - set(subset))
    subset.update((row.id, _record(row)) for row in store.rows_by_ids(missing))
    old = store.groups_by_row_ids(sorted(subset))
    grouper = Grouper(thresholds)
    by_row = {record.nasa_id: rid for rid, record in subset.items()}
    batch: list[Record] = []
    for day in by_day(subset[rid] for rid in sorted(subset)):
        batch.extend(day)
        if len(batch) >= BATCH_ROWS:  # a few compares of whole days, not one per day
            grouper.add(batch, [by_row[record.nasa_id] for record in batch])
            batch = []
    if batch:
        grouper.add(batch, [by_row[record.nasa_id] for record in batch])
    count = _write(store, grouper, top, drop=old.values(), full=False, unread_after=indexed)
    if progress is not None:
        progress(len(subset))
    return GroupUpdate(len(subset), count, False)


#: Rows read and compared at a time by a regrouping (whole days, so a batch can be a
#: little larger): this bounds its memory, not its result. Small, so the workers share
#: the heavy days (long transcripts are recent) instead of one waiting on the other.
BATCH_ROWS = 5_000


def _full(
    store: Store,
    top: int,
    thresholds: Thresholds,
    progress: Callable[[int], object] | None,
    workers: int,
    indexed: int | None,
) -> GroupUpdate:
    grouper = Grouper(thresholds)
    batches = list(_day_batches(store, BATCH_ROWS))
    if workers > 1 and len(batches) > 1 and "fork" in multiprocessing.get_all_start_methods():
        # Batches hold whole days, so they compare independently: in parallel, each
        # worker reading its rows itself; caption pairs and components are found here.
        warm_up()  # once here, not in each worker
        with _worker_pool(min(workers, len(batches))) as pool:
            gc.freeze()  # the workers' collections then never touch (so copy) this one's
            try:
                compared = pool.map(_compare_rows, repeat(store.path), batches, repeat(thresholds))
            finally:
                gc.unfreeze()
            for row_ids, result in compared:
                grouper.extend(result, row_ids)
                if progress is not None:
                    progress(len(row_ids))
    else:
        for batch in batches:
            row_ids, result = _compare_rows(store.path, batch, thresholds)
            grouper.extend(result, row_ids)
            if progress is not None:
                progress(len(row_ids))
    with _no_collections():
        count = _write(store, grouper, top, drop=(), full=True, unread_after=indexed)
    return GroupUpdate(len(grouper.keys), count, True)


@contextmanager
def _no_collections() -> Iterator[None]:
    """No garbage collection for a block that makes a few objects per record and no
    cycles: at a million records, each collection walked millions of tuples for nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of forked workers that exit when this process does, however it ends.

    Fork, not spawn: spawn re-imports the caller's main module, which a script using
    the library need not guard; the children touch no inherited connection.

    Each worker watches a pipe whose write end only this process keeps open; when it
    ends, SIGKILL included, the kernel closes that end and the worker reads end of file.
    (A pipe rather than Linux's PR_SET_PDEATHSIG: it works on any POSIX system, fires
    however the parent ends, has no window before it is armed, and does not depend on
    which of the parent's threads forked.) An exception here (Ctrl-C) closes it too, so
    workers stop at once instead of finishing their batches.
    """
    read, write = os.pipe()
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=watch_parent, initargs=(read, write)
    )
    try:
        yield pool
    except BaseException:
        os.close(write)
        write = -1
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        if write >= 0:
            os.close(write)
        os.close(read)


def watch_parent(read: int, write: int) -> None:
    """In a worker: exit as soon as the pipe's write end is closed everywhere."""
    os.close(write)  # this worker's inherited copy, which would keep the pipe open
    _drop_inherited_write_lock()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent to handle
    threading.Thread(target=_exit_at_end_of_file, args=(read,), daemon=True).start()


def _drop_inherited_write_lock() -> None:
    """Close this worker's copy of the parent's ``HOME/write.lock`` descriptor: a flock
    belongs to the open file, so a worker still finishing after its parent was killed
    would hold the home locked, and the next open could not repair what the kill left."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.endswith("/write.lock"):
            try:
                os.close(int(name))
            except OSError:
                pass


def _exit_at_end_of_file(read: int) -> None:
    while os.read(read, 1):  # nothing is ever written: this returns only at end of file
        pass
    os._exit(1)


def _compare_rows(
    path: Path, row_ids: Sequence[int], thresholds: Thresholds
) -> tuple[list[int], Compared]:
    found: list[int] = []

    def records() -> Iterator[Record]:
        for row in iter_read_rows(path, row_ids, FEATURE_CHUNK):
            found.append(row.id)
            yield _record(row)

    compared = compare(records(), thresholds)
    return found, compared


def _day_batches(store: Store, size: int) -> Iterator[list[int]]:
    """Row ids in batches of whole days (by the date grouping sees), in day order."""
    days: dict[str, list[int]] = defaultdict(list)
    for row_id, date_created in store.iter_dates():
        days[_day(date_created) or ""].append(row_id)
    batch: list[int] = []
    for day in sorted(days):
        batch.extend(days[day])
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write(
    store: Store,
    grouper: Grouper,
    seen_rev: int,
    *,
    drop: Iterable[tuple[int, int, int]],
    full: bool,
    unread_after: int | None,
) -> int:
    row_ids = grouper.keys
    ids, multi = grouper.assign()
    groups = [(gid, level, int(members.size), row_ids[best]) for level, gid, members, best in multi]
    return store.write_groups(
        dict(zip(row_ids, map(tuple, ids.tolist()), strict=True)),
        groups,
        keys=dict(zip(row_ids, grouper.blocking_keys(), strict=True)),
        drop_groups={gid for ids in drop for gid in ids},
        seen_rev=seen_rev,
        full=full,
        unread_after=unread_after,
    )


def _record(row: StoredRow) -> Record:
    """The fields grouping reads, from a stored (so already validated) item; no raw text."""
    data = orjson.loads(row.raw)["data"][0]
    return Record(
        nasa_id=row.nasa_id,
        media_type=data["media_type"],
        raw="",
        title=_text(data, "title"),
        description=_text(data, "description"),
        keywords=normalise_list(data.get("keywords")),
        center=_text(data, "center"),
        date=_day(_text(data, "date_created")),
    )


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


@lru_cache(maxsize=65536)
def _day(date_created: str) -> str | None:
    return parse_date(date_created)[1]


def group_page(store: Store, group_id: int, *, page: int = 1, page_size: int = 100) -> GroupPage:
    """A group's members, paged in date order; ``RecordNotFound`` for an unknown id."""
    level = store.group_level(group_id)
    if level is None:
        raise RecordNotFound(f"No group with id {group_id}")
    size, rows = store.group_members(
        level, group_id, limit=page_size, offset=(page - 1) * page_size
    )
    return GroupPage(group_id, level, size, page, page_size, [row.raw for row in rows])


def dupes(
    store: Store, *, level: str | None = None, min_size: int = 2, limit: int = 20
) -> DupesReport:
    """The largest groups (of one level, or of each) and what each level would hide."""
    levels = [level] if level else list(ALL_LEVELS)
    groups = []
    for name in levels:
        for group_id, size, row in store.largest_groups(name, min_size=min_size, limit=limit):
            record = parse_item(orjson.loads(row.raw), raw=row.raw)
            groups.append(DupeGroup(group_id, name, size, record.nasa_id, record.title))
    return DupesReport(store.count(), store.hidden_by_level(), groups)
