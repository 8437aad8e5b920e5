"""Groups in the store: (re)grouping after imports, expanding a group, the dupes report.

``grouping.py`` decides groups, purely; this module feeds it records from the store
and writes the results back. An update regroups only the neighbourhood of the rows
changed since the last one: the rows that share a blocking key with them (caption
text, an LSH band, a day and center, a photo-number bucket) and every member of those
rows' event groups. Grouping edges are decided pair by pair, and that neighbourhood is
closed under them, so the result equals a full regrouping — at the cost of the
neighbourhood, not of the library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import orjson

from .errors import RecordNotFound
from .grouping import LEVELS, Features, Thresholds, blocking_keys, features, group_records
from .records import Record, parse_item
from .store import Store, StoredRow


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
) -> GroupUpdate:
    """Group the rows changed since the last update (all rows on the first or a rebuild)."""
    thresholds = thresholds or Thresholds()
    since = int(store.get_meta("grouped_rev", "0") or 0)
    top = store.max_rev()
    if rebuild or since == 0 or since > top:
        return _full(store, top, thresholds, progress)
    if since == top:
        return GroupUpdate(0, 0, False)
    changed = {row.id: _record(row) for row in store.iter_rows(since_rev=since)}
    feats = {record.nasa_id: features(record, thresholds) for record in changed.values()}
    keys = {
        rid: blocking_keys(record, thresholds, feats[record.nasa_id])
        for rid, record in changed.items()
    }
    neighbours = store.rows_sharing_keys(k for row_keys in keys.values() for k in row_keys)
    old = store.groups_by_row_ids(sorted(neighbours | set(changed)))
    members = store.rows_in_events(ids[2] for ids in old.values())
    subset = dict(changed)
    missing = sorted((neighbours | members) - set(subset))
    subset.update((row.id, _record(row)) for row in store.rows_by_ids(missing))
    old = store.groups_by_row_ids(sorted(subset))
    count = _write(store, subset, keys, thresholds, top, drop=old.values(), full=False, feats=feats)
    if progress is not None:
        progress(len(subset))
    return GroupUpdate(len(subset), count, False)


def _full(
    store: Store, top: int, thresholds: Thresholds, progress: Callable[[int], object] | None
) -> GroupUpdate:
    records: dict[int, Record] = {}
    for row in store.iter_rows():
        records[row.id] = _record(row)
    feats = {record.nasa_id: features(record, thresholds) for record in records.values()}
    keys = {
        rid: blocking_keys(record, thresholds, feats[record.nasa_id])
        for rid, record in records.items()
    }
    count = _write(store, records, keys, thresholds, top, drop=(), full=True, feats=feats)
    if progress is not None:
        progress(len(records))
    return GroupUpdate(len(records), count, True)


def _write(
    store: Store,
    records: dict[int, Record],
    keys: dict[int, set[int]],
    thresholds: Thresholds,
    seen_rev: int,
    *,
    drop: Iterable[tuple[int, int, int]],
    full: bool,
    feats: Mapping[str, Features] | None = None,
) -> int:
    grouping = group_records(list(records.values()), thresholds, feats=feats)
    row_of = {record.nasa_id: rid for rid, record in records.items()}
    assignments = {
        row_of[nasa_id]: assignment.as_tuple()
        for nasa_id, assignment in grouping.assignments.items()
    }
    groups = [
        (group.id, group.level, len(group.members), row_of[group.representative])
        for group in grouping.groups
    ]
    return store.write_groups(
        assignments,
        groups,
        keys=keys,
        drop_groups={gid for ids in drop for gid in ids},
        seen_rev=seen_rev,
        full=full,
    )


def _record(row: StoredRow) -> Record:
    """The parsed record without its raw text: grouping never needs it, memory does."""
    return replace(parse_item(orjson.loads(row.raw), raw=""), raw="")


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
    levels = [level] if level else list(LEVELS)
    groups = []
    for name in levels:
        for group_id, size, row in store.largest_groups(name, min_size=min_size, limit=limit):
            record = parse_item(orjson.loads(row.raw), raw=row.raw)
            groups.append(DupeGroup(group_id, name, size, record.nasa_id, record.title))
    return DupesReport(store.count(), store.hidden_by_level(), groups)
