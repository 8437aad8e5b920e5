"""SQLite store: the source of truth. The only module that speaks SQL.

One write connection behind a lock; reads use per-thread ``query_only``
connections, so a web server can read while an import writes (WAL mode).
Every write goes through ``upsert_batch``, idempotent by ``nasa_id``: each
batch is one transaction, so a crash leaves the old row or the new one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RecordNotFound, StoreError
from .migrations import apply_migrations
from .records import Record
from .urls import shown

Tracer = Callable[[str, Sequence[Any]], None]
#: The meta key of ``known_count``'s memo: "REV:COUNT".
COUNT_KEY = "count_at_rev"


@dataclass
class UpsertResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    changed_ids: list[str] = field(default_factory=list)
    #: Those of ``changed_ids`` that were there before (changed in place, same row id).
    updated_ids: list[str] = field(default_factory=list)

    def __iadd__(self, other: UpsertResult) -> UpsertResult:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.changed_ids.extend(other.changed_ids)
        self.updated_ids.extend(other.updated_ids)
        return self


@dataclass(frozen=True)
class StoredRow:
    id: int
    nasa_id: str
    raw: str
    rev: int


@contextlib.contextmanager
def sqlite_errors(action: str) -> Iterator[None]:
    """Translate ``sqlite3.Error`` into ``StoreError`` at the adapter's edge."""
    try:
        yield
    except sqlite3.Error as exc:
        message = str(exc)
        if "database or disk is full" in message:
            message = "the disk is full (nothing from this batch was written)"
        raise StoreError(f"{action} failed: {message}") from exc


#: How much of the database a reader maps (SQLite lowers it to its compile-time cap).
MMAP_BYTES = 2**40


class Store:
    """``read_only``: open an existing database without writing to it or its directory
    (a read-only mount, a home the user may not write): no migrations, no writer."""

    def __init__(
        self,
        path: Path | str,
        *,
        tracer: Tracer | None = None,
        max_mb: int = 0,
        read_only: bool = False,
        mmap: bool = True,
    ) -> None:
        self.path = Path(path)
        self.tracer = tracer
        self.read_only = read_only
        self._mmap = MMAP_BYTES if mmap else 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._writer: sqlite3.Connection | None = None
        self._immutable = False
        if read_only:
            if not self.path.exists():
                raise StoreError(f"opening {self.path} failed: there is no database there")
            # A database with records, or one clear error now. Not a count: that reads the
            # rev index's scattered pages, 2 s cold at 1M; max(rev) reads one path of it.
            with sqlite_errors(f"opening {self.path}"):
                self._reader.execute("SELECT max(rev) FROM records").fetchone()
            return
        with sqlite_errors(f"opening {self.path}"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            writer = self._writer = self._connect()
            if writer.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                writer.execute("PRAGMA journal_mode=WAL")
            apply_migrations(writer)
            if max_mb:
                page_size = writer.execute("PRAGMA page_size").fetchone()[0]
                writer.execute(f"PRAGMA max_page_count = {max_mb * 2**20 // page_size}")

    def _connect(self, *, read_only: bool = False) -> sqlite3.Connection:
        if self.read_only:
            conn = self._connect_read_only()
        else:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        if read_only:
            conn.execute("PRAGMA query_only=1")
            # Readers map the file: a page's 100 raw items (0.7 MB at 300k synthetic) are
            # then read without a pread and a copy per 4 KB page, 1.1 → 0.4 ms of CPU, and
            # the mapped pages are the OS's page cache, shared by every worker process.
            # SQLite caps the size it maps (2 GB here); the rest of the file is read.
            # Not during ``plain_reads``, nor in a store opened with ``mmap=False``.
            conn.execute(f"PRAGMA mmap_size={self._mmap}")
        if self.tracer is not None:
            tracer = self.tracer
            conn.set_trace_callback(lambda sql: tracer(sql, ()))
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        """``mode=ro``, which reads the WAL through its ``-shm`` file; where that cannot be
        made (a read-only directory), ``immutable=1``: nobody can be writing there."""
        uri = self.path.resolve().as_uri()
        if not self._immutable:
            conn = sqlite3.connect(
                f"{uri}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
            try:
                conn.execute("PRAGMA busy_timeout=10000")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError:
                conn.close()
                self._immutable = True
        return sqlite3.connect(
            f"{uri}?mode=ro&immutable=1", uri=True, check_same_thread=False, isolation_level=None
        )

    @property
    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with sqlite_errors(f"opening {self.path}"):
                conn = self._connect(read_only=True)
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    @contextlib.contextmanager
    def plain_reads(self) -> Iterator[None]:
        """Readers read with ``read()``, not through the map, for the block (every thread's).

        For passes that read each row once (the derived stages of an import): mapped, the
        pages they touch stay in the process's resident set (the counted RSS) up to
        SQLite's 2 GB cap; read, they pass through the OS's page cache alone. Serving
        reads the same pages again and again, and keeps the map.
        """
        kept = self._mmap
        self._set_mmap(0)
        try:
            yield
        finally:
            self._set_mmap(kept)

    def _set_mmap(self, size: int) -> None:
        with self._lock:
            self._mmap = size
            readers = list(self._readers)
        for conn in readers:
            with sqlite_errors("reading the store"):
                conn.execute(f"PRAGMA mmap_size={size}")

    def close(self) -> None:
        with self._lock:
            for conn in [*self._readers, self._writer]:
                if conn is not None:
                    conn.close()
            self._readers.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT, ROLLBACK on any error)."""
        if self._writer is None:
            raise StoreError(f"{self.path} is open read-only: nothing can be written to it")
        with self._lock, sqlite_errors("writing to the store"):
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite has already rolled back after e.g. SQLITE_FULL
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- writes -----------------------------------------------------------------

    def upsert_records(self, records: Iterable[Record], *, batch_size: int = 1000) -> UpsertResult:
        total = UpsertResult()
        batch: list[Record] = []
        for record in records:
            batch.append(record)
            if len(batch) >= batch_size:
                total += self.upsert_batch(batch)
                batch = []
        if batch:
            total += self.upsert_batch(batch)
        return total

    def upsert_batch(
        self, records: Sequence[Record], *, checkpoint: Mapping[str, str] | None = None
    ) -> UpsertResult:
        """Write one batch (and an optional checkpoint) in a single transaction.

        A record whose raw JSON is unchanged is left alone, so re-importing
        changes nothing; a changed one replaces the old row and gets a new
        ``rev``, which is how the derived index finds what to refresh.
        """
        latest: dict[str, Record] = {}
        result = UpsertResult()
        for record in records:  # a later copy in the same batch wins, and is counted
            earlier = latest.get(record.nasa_id)
            if earlier is not None:
                if earlier.raw == record.raw:
                    result.unchanged += 1
                else:
                    result.updated += 1
            latest[record.nasa_id] = record
        with self.transaction() as conn:
            existing = dict(
                _select_in(
                    conn, "SELECT nasa_id, raw FROM records WHERE nasa_id IN ({})", list(latest)
                )
            )
            changed = [r for r in latest.values() if existing.get(r.nasa_id) != r.raw]
            result.unchanged += len(latest) - len(changed)
            if changed:
                rev = self._bump(conn, "rev")
                conn.executemany(
                    """
                    INSERT INTO records (nasa_id, media_type, center, year, date_created,
                                         title, raw, rev)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (nasa_id) DO UPDATE SET
                        media_type = excluded.media_type, center = excluded.center,
                        year = excluded.year, date_created = excluded.date_created,
                        title = excluded.title, raw = excluded.raw, rev = excluded.rev,
                        updated_at = datetime('now')
                    """,
                    [
                        (
                            r.nasa_id,
                            r.media_type,
                            r.center,
                            r.year,
                            r.date_created,
                            r.title,
                            r.raw,
                            rev,
                        )
                        for r in changed
                    ],
                )
            for record in changed:
                if record.nasa_id in existing:
                    result.updated += 1
                    result.updated_ids.append(record.nasa_id)
                else:
                    result.new += 1
                result.changed_ids.append(record.nasa_id)
            for key, value in (checkpoint or {}).items():
                _set_meta(conn, key, value)
        return result

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            _set_meta(conn, key, value)

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with sqlite_errors("reading the store"):
            row = self._reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _bump(self, conn: sqlite3.Connection, key: str) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        value = int(row[0]) + 1 if row else 1
        _set_meta(conn, key, str(value))
        return value

    def backup(self, target: Path) -> None:
        """A consistent copy of the database in the new file ``target`` (SQLite's online
        backup API: one read transaction's state), in rollback-journal mode so a read-only
        replica reads it without creating ``-wal``/``-shm`` files beside it."""
        with sqlite_errors(f"copying the store to {target}"):
            copy = sqlite3.connect(target, isolation_level=None)
            try:
                self._reader.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()

    # --- reads ------------------------------------------------------------------

    def count(self) -> int:
        with sqlite_errors("reading the store"):
            return int(self._reader.execute("SELECT count(*) FROM records").fetchone()[0])

    def known_count(self) -> int:
        """``count()``, taken from the last one remembered (``remember_count``) while the
        store's last rev is still the one it was taken at: rows are never deleted and
        every write gives its rows a new rev, so the count cannot have changed. A count
        reads the whole rev index: cold, about 2 s at 1M rows (its pages lie scattered)."""
        rev, _, count = (self.get_meta(COUNT_KEY, "") or "").partition(":")
        if rev.isdigit() and count.isdigit() and int(rev) == self.max_rev():
            return int(count)
        return self.count()

    def remember_count(self, count: int, rev: int) -> None:
        """Remember that the store held ``count`` rows at last rev ``rev`` (a writer's)."""
        self.set_meta(COUNT_KEY, f"{rev}:{count}")

    def max_rev(self) -> int:
        with sqlite_errors("reading the store"):
            row = self._reader.execute("SELECT max(rev) FROM records").fetchone()
        return int(row[0] or 0)

    def sample_row_ids(self, count: int, *, seed: int | None = None) -> list[int]:
        """Up to ``count`` row ids spread at random over the table, cheaply (no full scan)."""
        import random

        with sqlite_errors("reading the store"):
            low, high = self._reader.execute("SELECT min(id), max(id) FROM records").fetchone()
            if low is None:
                return []
            rng = random.Random(seed)
            found = set()
            for _ in range(count):
                row = self._reader.execute(
                    "SELECT id FROM records WHERE id >= ? ORDER BY id LIMIT 1",
                    (rng.randint(low, high),),
                ).fetchone()
                found.add(int(row[0]))
        return sorted(found)

    def count_rows(self, *, since_rev: int = 0, after_id: int = 0) -> int:
        """How many rows ``iter_rows`` would yield with these arguments."""
        with sqlite_errors("reading the store"):
            row = self._reader.execute(
                "SELECT count(*) FROM records WHERE id > ? AND rev > ?", (after_id, since_rev)
            ).fetchone()
        return int(row[0])

    def raw_by_ids(self, ids: Sequence[int]) -> list[bytes]:
        """Raw items for row ids as UTF-8 bytes, in the order given (missing ids are skipped).

        Bytes, because a page's items go out as bytes: reading them as ``BLOB`` spares
        decoding about 1 MB of text a page only to encode it again.
        """
        found = self.raw_map(ids)
        return [found[i] for i in ids if i in found]

    def raw_map(self, ids: Sequence[int]) -> dict[int, bytes]:
        """Row id → raw item as UTF-8 bytes, for the ids that exist."""
        with sqlite_errors("reading the store"):
            return dict(
                _select_in(
                    self._reader,
                    "SELECT id, CAST(raw AS BLOB) FROM records WHERE id IN ({})",
                    list(ids),
                )
            )

    def updated_map(self, ids: Sequence[int]) -> dict[int, str]:
        """Row id → when the store last wrote that record (UTC, ``YYYY-MM-DD HH:MM:SS``)."""
        with sqlite_errors("reading the store"):
            return dict(
                _select_in(
                    self._reader, "SELECT id, updated_at FROM records WHERE id IN ({})", list(ids)
                )
            )

    def rows_by_ids(self, ids: Sequence[int]) -> list[StoredRow]:
        with sqlite_errors("reading the store"):
            return _rows_by_ids(self._reader, ids)

    def get_raw(self, nasa_id: str) -> str:
        with sqlite_errors("reading the store"):
            row = self._reader.execute(
                "SELECT raw FROM records WHERE nasa_id = ?", (nasa_id,)
            ).fetchone()
        if row is None:
            raise RecordNotFound(f"No record with nasa_id {shown(nasa_id)}")
        return str(row[0])

    def iter_rows(
        self, *, since_rev: int = 0, after_id: int = 0, chunk: int = 2000
    ) -> Iterator[StoredRow]:
        """Rows changed after ``since_rev`` (all rows for 0), in id order, in chunks."""
        last_id = after_id
        while True:
            with sqlite_errors("reading the store"):
                rows = self._reader.execute(
                    "SELECT id, nasa_id, raw, rev FROM records WHERE id > ? AND rev > ? "
                    "ORDER BY id LIMIT ?",
                    (last_id, since_rev, chunk),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield StoredRow(*row)
            last_id = rows[-1][0]

    def iter_rows_by_nasa_ids(self, nasa_ids: Sequence[str]) -> Iterator[StoredRow]:
        """The rows of these nasa_ids (those found), a few hundred at a time."""
        for start in range(0, len(nasa_ids), 900):
            with sqlite_errors("reading the store"):
                rows = _select_in(
                    self._reader,
                    "SELECT id, nasa_id, raw, rev FROM records WHERE nasa_id IN ({})",
                    list(nasa_ids[start : start + 900]),
                )
            for row in sorted(rows):
                yield StoredRow(*row)

    def max_id(self) -> int:
        with sqlite_errors("reading the store"):
            return int(self._reader.execute("SELECT max(id) FROM records").fetchone()[0] or 0)

    def iter_dates(self) -> Iterator[tuple[int, str]]:
        """(row id, date_created) of every row: what bucketing by day needs, without raw."""
        with sqlite_errors("reading the store"):
            yield from self._reader.execute("SELECT id, date_created FROM records ORDER BY id")

    def iter_raw_by_nasa_id(self) -> Iterator[str]:
        """Every raw item in nasa_id order (for exports)."""
        last = ""  # nasa_ids are never empty, so "" sorts before every one of them
        while True:
            with sqlite_errors("reading the store"):
                rows = self._reader.execute(
                    "SELECT nasa_id, raw FROM records WHERE nasa_id > ? "
                    "ORDER BY nasa_id LIMIT 2000",
                    (last,),
                ).fetchall()
            if not rows:
                return
            for _nasa_id, raw in rows:
                yield raw
            last = rows[-1][0]

    def stats(self) -> dict[str, Any]:
        with sqlite_errors("reading the store"):
            conn = self._reader
            records = conn.execute("SELECT count(*) FROM records").fetchone()[0]
            by_media = dict(
                conn.execute(
                    "SELECT media_type, count(*) FROM records GROUP BY media_type "
                    "ORDER BY count(*) DESC, media_type"
                ).fetchall()
            )
            by_center = dict(
                conn.execute(
                    "SELECT center, count(*) FROM records GROUP BY center "
                    "ORDER BY count(*) DESC, center"
                ).fetchall()
            )
            low, high = conn.execute("SELECT min(year), max(year) FROM records").fetchone()
        return {
            "records": records,
            "by_media_type": by_media,
            "by_center": by_center,
            "years": [low, high] if low is not None else [],
        }

    # --- assets -----------------------------------------------------------------

    def put_asset(
        self,
        nasa_id: str,
        *,
        manifest: str | None = None,
        metadata_location: str | None = None,
        captions_location: str | None = None,
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                """
                INSERT INTO assets (nasa_id, manifest, metadata_location, captions_location)
                VALUES (?, ?, ?, ?)
                ON CONFLICT (nasa_id) DO UPDATE SET
                    manifest = coalesce(excluded.manifest, manifest),
                    metadata_location = coalesce(excluded.metadata_location, metadata_location),
                    captions_location = coalesce(excluded.captions_location, captions_location)
                """,
                (nasa_id, manifest, metadata_location, captions_location),
            )

    def get_asset(self, nasa_id: str) -> dict[str, str | None]:
        with sqlite_errors("reading the store"):
            row = self._reader.execute(
                "SELECT manifest, metadata_location, captions_location FROM assets "
                "WHERE nasa_id = ?",
                (nasa_id,),
            ).fetchone()
        if row is None:
            return {"manifest": None, "metadata_location": None, "captions_location": None}
        return dict(zip(("manifest", "metadata_location", "captions_location"), row, strict=True))

    def count_assets(self) -> int:
        """Records with a stored ``/asset`` manifest."""
        with sqlite_errors("reading the store"):
            row = self._reader.execute(
                "SELECT count(*) FROM assets WHERE manifest IS NOT NULL"
            ).fetchone()
        return int(row[0])

    def integrity_check(self) -> str:
        with sqlite_errors("checking the store"):
            return str(self._reader.execute("PRAGMA integrity_check").fetchone()[0])

    # --- groups (written by groups.py, read by search and the expand/dupes views) ---

    def rows_sharing_keys(self, keys: Iterable[int]) -> set[int]:
        """Row ids holding any of these blocking keys: the candidates a new record may join."""
        with sqlite_errors("reading the store"):
            rows = _select_in(
                self._reader, "SELECT row_id FROM group_keys WHERE key IN ({})", sorted(set(keys))
            )
        return {row[0] for row in rows}

    def rows_in_events(self, event_ids: Iterable[int]) -> set[int]:
        with sqlite_errors("reading the store"):
            rows = _select_in(
                self._reader,
                "SELECT id FROM record_groups WHERE event_group IN ({})",
                sorted(set(event_ids)),
            )
        return {row[0] for row in rows}

    def groups_by_row_ids(self, ids: Sequence[int]) -> dict[int, tuple[int, int, int]]:
        """(caption, near, event) group ids of grouped rows; ungrouped rows are left out."""
        with sqlite_errors("reading the store"):
            rows = _select_in(
                self._reader,
                "SELECT id, caption_group, near_group, event_group FROM record_groups "
                "WHERE id IN ({})",
                list(ids),
            )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def write_groups(
        self,
        assignments: Mapping[int, tuple[int, int, int]],
        groups: Iterable[tuple[int, str, int, int]],
        *,
        keys: Mapping[int, Iterable[int]],
        drop_groups: Iterable[int],
        seen_rev: int,
        full: bool = False,
        unread_after: int | None = None,
    ) -> int:
        """Store a grouping in one transaction; returns the rows whose groups changed.

        ``assignments`` maps row id → group ids, ``groups`` are (id, level, size,
        representative row id) of groups of two or more, ``keys`` the rows' new blocking
        keys. Rows whose ids changed get a new ``rev`` so the index re-reads them (and so do
        the members of a group that has just reached two, for its ``*_shared`` fields), except
        rows above ``unread_after`` (the index's mark), which it reads anyway: a first
        import rewrote every row for nothing. The grouping watermark moves to cover them
        only when nobody wrote since ``seen_rev``.
        """
        groups = list(groups)
        with self.transaction() as conn, _cache_of(conn, GROUP_WRITE_CACHE_KB):
            # groups of two or more that were not: their members' documents gain group ids
            # (the index keeps none for a group of one), even where the ids stay the same
            known = {
                row[0]
                for row in _select_in(
                    conn, "SELECT id FROM groups WHERE id IN ({})", [g[0] for g in groups]
                )
            }
            if full:
                conn.execute("DELETE FROM group_keys")
                conn.execute(
                    "DELETE FROM groups WHERE level != 'visual'"
                )  # visual ones: pictures.py's
            else:
                _delete_in(conn, "DELETE FROM group_keys WHERE row_id IN ({})", list(keys))
                _delete_in(conn, "DELETE FROM groups WHERE id IN ({})", sorted(set(drop_groups)))
            select = "SELECT id, caption_group, near_group, event_group FROM record_groups"
            found = (
                conn.execute(select).fetchall()  # one scan of a narrow table
                if full
                else _select_in(conn, select + " WHERE id IN ({})", list(assignments))
            )
            current = {row[0]: (row[1], row[2], row[3]) for row in found}
            changed = [rid for rid, ids in assignments.items() if current.get(rid) != tuple(ids)]
            unread = unread_after if unread_after is not None else 2**62
            latest = int(conn.execute("SELECT coalesce(max(rev), 0) FROM records").fetchone()[0])
            grown = {g[0] for g in groups} - known
            reread = changed
            if grown and unread > 0:  # (an index that read nothing yet reads every row)
                moved = set(changed)
                reread = changed + [
                    rid
                    for rid, ids in assignments.items()
                    if rid not in moved and not grown.isdisjoint(ids)
                ]
            if reread:
                rev = self._bump(conn, "rev")
                conn.executemany(
                    "INSERT INTO record_groups (id, caption_group, near_group, event_group) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                    "caption_group = excluded.caption_group, near_group = excluded.near_group, "
                    "event_group = excluded.event_group",
                    [(rid, *assignments[rid]) for rid in sorted(changed)],  # appends
                )
                if unread > 0:  # every rev is 1 or more: an index at 0 reads every row
                    conn.executemany(
                        "UPDATE records SET rev = ? WHERE id = ? AND rev <= ?",
                        [(rev, rid, unread) for rid in reread],
                    )
            conn.executemany(  # in key order: appends to the B-tree instead of random inserts
                "INSERT OR IGNORE INTO group_keys (key, row_id) VALUES (?, ?)",
                sorted((key, rid) for rid, row_keys in keys.items() for key in row_keys),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO groups (id, level, size, representative) "
                "VALUES (?, ?, ?, ?)",
                groups,
            )
            top = int(conn.execute("SELECT coalesce(max(rev), 0) FROM records").fetchone()[0])
            _set_meta(conn, "grouped_rev", str(top if latest <= seen_rev else seen_rev))
        return len(changed)

    def shared_group_ids(self) -> set[int]:
        """Ids of the groups of two or more, every level: the ones the index holds."""
        with sqlite_errors("reading the store"):
            return {int(row[0]) for row in self._reader.execute("SELECT id FROM groups")}

    def group_sizes(self, ids: Sequence[int]) -> dict[int, int]:
        """Sizes of groups of two or more; an id not found is a group of one."""
        with sqlite_errors("reading the store"):
            rows = _select_in(
                self._reader, "SELECT id, size FROM groups WHERE id IN ({})", list(ids)
            )
        return {row[0]: row[1] for row in rows}

    def group_level(self, group_id: int) -> str | None:
        """The level a group id belongs to (ids are unique across levels), or None."""
        with sqlite_errors("reading the store"):
            row = self._reader.execute(
                "SELECT level FROM groups WHERE id = ?", (group_id,)
            ).fetchone()
            if row is not None:
                return str(row[0])
            for level, column in GROUP_COLUMNS.items():
                found = self._reader.execute(
                    f"SELECT 1 FROM {GROUP_TABLES[level]} WHERE {column} = ? LIMIT 1", (group_id,)
                ).fetchone()
                if found is not None:
                    return level
        return None

    def group_members(
        self, level: str, group_id: int, *, limit: int, offset: int = 0
    ) -> tuple[int, list[StoredRow]]:
        """(size, one page of members in date order) of a group."""
        column, table = GROUP_COLUMNS[level], GROUP_TABLES[level]
        with sqlite_errors("reading the store"):
            size = self._reader.execute(
                f"SELECT count(*) FROM {table} WHERE {column} = ?", (group_id,)
            ).fetchone()[0]
            rows = self._reader.execute(
                f"SELECT r.id, r.nasa_id, r.raw, r.rev FROM {table} g "
                f"JOIN records r ON r.id = g.id WHERE g.{column} = ? "
                "ORDER BY r.date_created, r.nasa_id LIMIT ? OFFSET ?",
                (group_id, limit, offset),
            ).fetchall()
        return int(size), [StoredRow(*row) for row in rows]

    def largest_groups(
        self, level: str, *, min_size: int = 2, limit: int = 20
    ) -> list[tuple[int, int, StoredRow]]:
        """(id, size, representative row) of the largest groups at a level."""
        with sqlite_errors("reading the store"):
            rows = self._reader.execute(
                "SELECT g.id, g.size, r.id, r.nasa_id, r.raw, r.rev FROM groups g "
                "JOIN records r ON r.id = g.representative "
                "WHERE g.level = ? AND g.size >= ? ORDER BY g.size DESC, g.id LIMIT ?",
                (level, min_size, limit),
            ).fetchall()
        return [(row[0], row[1], StoredRow(*row[2:])) for row in rows]

    def has_groups(self, level: str) -> bool:
        with sqlite_errors("reading the store"):
            row = self._reader.execute(
                "SELECT 1 FROM groups WHERE level = ? LIMIT 1", (level,)
            ).fetchone()
        return row is not None

    def hidden_by_level(self) -> dict[str, int]:
        """Records a collapse at each level would hide: all but one per group."""
        with sqlite_errors("reading the store"):
            rows = self._reader.execute(
                "SELECT level, coalesce(sum(size - 1), 0) FROM groups GROUP BY level"
            ).fetchall()
        found = dict(rows)
        return {level: int(found.get(level, 0)) for level in GROUP_COLUMNS}

    # --- picture hashes and visual groups (written by pictures.py) -----------------

    def picture_files(self) -> dict[str, tuple[str, int, int, int]]:
        """nasa_id → (file, size, mtime_ns, its folder's mtime_ns) of every hashed (or
        tried) picture."""
        with sqlite_errors("reading the store"):
            rows = self._reader.execute(
                "SELECT nasa_id, file, size, mtime_ns, folder_mtime_ns FROM picture_hashes"
            ).fetchall()
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}

    def write_picture_hashes(
        self,
        found: Iterable[tuple[str, str, int, int, int, int | None, int | None, str | None]],
        *,
        removed: Iterable[str],
    ) -> None:
        """Store (nasa_id, file, size, mtime_ns, folder_mtime_ns, phash, dhash, problem)
        rows (hashes as signed 64-bit), drop ``removed`` ids, move ``hashes_rev``."""
        with self.transaction() as conn:
            _delete_in(conn, "DELETE FROM picture_hashes WHERE nasa_id IN ({})", list(removed))
            conn.executemany(
                "INSERT OR REPLACE INTO picture_hashes "
                "(nasa_id, file, size, mtime_ns, folder_mtime_ns, phash, dhash, problem) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                list(found),
            )
            self._bump(conn, "hashes_rev")

    def count_pictures(self) -> int:
        """Records with a readable, hashed picture."""
        with sqlite_errors("reading the store"):
            row = self._reader.execute(
                "SELECT COUNT(*) FROM picture_hashes WHERE phash IS NOT NULL"
            ).fetchone()
        return int(row[0])

    def picture_hashes(self) -> list[tuple[int, str, int, int]]:
        """(row id, nasa_id, phash, dhash) of every record with a readable picture."""
        with sqlite_errors("reading the store"):
            rows = self._reader.execute(
                "SELECT r.id, h.nasa_id, h.phash, h.dhash FROM picture_hashes h "
                "JOIN records r ON r.nasa_id = h.nasa_id WHERE h.phash IS NOT NULL "
                "ORDER BY h.nasa_id"
            ).fetchall()
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    def visual_groups_by_row_ids(self, ids: Sequence[int]) -> dict[int, int]:
        with sqlite_errors("reading the store"):
            rows = _select_in(
                self._reader,
                "SELECT id, visual_group FROM visual_groups WHERE id IN ({})",
                list(ids),
            )
        return {row[0]: row[1] for row in rows}

    def write_visual_groups(
        self, assignments: Mapping[int, int], groups: Iterable[tuple[int, int, int]], seen: int
    ) -> int:
        """Replace the visual groups (row id → group id; (id, size, representative row)
        of each); returns rows whose visual group changed, which get a new ``rev`` so the
        index re-reads them. The text groups' mark moves with them when it was current
        (their groups do not depend on pictures). ``seen`` is the ``hashes_rev`` taken in."""
        groups = list(groups)
        with self.transaction() as conn:
            current = dict(conn.execute("SELECT id, visual_group FROM visual_groups").fetchall())
            changed = sorted(
                rid
                for rid in set(current) | set(assignments)
                if current.get(rid) != assignments.get(rid)
            )
            # a group that grows to two: its first member's document gains the id (a group of
            # one has none in the index), though that member's id stays the same
            known = {row[0] for row in conn.execute("SELECT id FROM groups WHERE level = 'visual'")}
            grown = {g[0] for g in groups} - known
            regrouped = len(changed)
            if grown:
                moved = set(changed)
                changed += sorted(
                    rid for rid, gid in assignments.items() if gid in grown and rid not in moved
                )
            if changed:
                latest = conn.execute("SELECT coalesce(max(rev), 0) FROM records").fetchone()[0]
                mark = conn.execute("SELECT value FROM meta WHERE key = 'grouped_rev'").fetchone()
                grouped = int(mark[0] or 0) if mark else 0
                rev = self._bump(conn, "rev")
                conn.execute("DELETE FROM visual_groups")
                conn.executemany(
                    "INSERT INTO visual_groups (id, visual_group) VALUES (?, ?)",
                    sorted(assignments.items()),
                )
                conn.executemany(
                    "UPDATE records SET rev = ? WHERE id = ?", [(rev, rid) for rid in changed]
                )
                if grouped == int(latest):
                    _set_meta(conn, "grouped_rev", str(rev))
            conn.execute("DELETE FROM groups WHERE level = 'visual'")
            conn.executemany(
                "INSERT OR REPLACE INTO groups (id, level, size, representative) "
                "VALUES (?, 'visual', ?, ?)",
                groups,
            )
            _set_meta(conn, "visual_rev", str(seen))
        return regrouped

    # --- harvest checkpoints and asset backlog --------------------------------------

    def delete_meta_prefix(self, prefix: str) -> int:
        """Drop meta keys starting with ``prefix`` (a finished harvest's checkpoints)."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
            )
        return int(cursor.rowcount)

    def nasa_ids_without_asset(self) -> list[tuple[str, str]]:
        """(nasa_id, media_type) of records whose /asset documents were never fetched."""
        with sqlite_errors("reading the store"):
            rows = self._reader.execute(
                "SELECT nasa_id, media_type FROM records "
                "WHERE nasa_id NOT IN (SELECT nasa_id FROM assets) ORDER BY nasa_id"
            ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def count_where(self, *, media_type: str, year: int, center: str | None) -> int:
        """Records of one media type and year (and center, '' for none; None for any)."""
        sql, args = _where(media_type, year, center)
        with sqlite_errors("reading the store"):
            row = self._reader.execute(f"SELECT count(*) FROM records WHERE {sql}", args)
            return int(row.fetchone()[0])

    def raw_where(self, *, media_type: str, year: int, center: str | None) -> list[str]:
        """Raw items of one media type and year (and center), in id order."""
        sql, args = _where(media_type, year, center)
        with sqlite_errors("reading the store"):
            rows = self._reader.execute(
                f"SELECT raw FROM records WHERE {sql} ORDER BY id", args
            ).fetchall()
        return [row[0] for row in rows]


#: The page cache of a group write (SQLite's default is 2 MB): its rows go into three
#: indexes of random group ids and one of row ids, so at 300k rows most inserts missed
#: the cache, and half the write's CPU went to reading and spilling pages.
GROUP_WRITE_CACHE_KB = 65536


@contextlib.contextmanager
def _cache_of(conn: sqlite3.Connection, kilobytes: int) -> Iterator[None]:
    """A larger page cache on ``conn`` for a block, then its own size again (which
    frees the pages above it)."""
    before = int(conn.execute("PRAGMA cache_size").fetchone()[0])
    conn.execute(f"PRAGMA cache_size = {-int(kilobytes)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {before}")


def iter_read_rows(path: Path, ids: Sequence[int], chunk: int) -> Iterator[StoredRow]:
    """``Store.rows_by_ids`` on a read-only connection of its own (for worker processes),
    a chunk of ``ids`` at a time: a worker holds one chunk's raw items, not its batch's."""
    with sqlite_errors(f"reading {path}"):
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            for start in range(0, len(ids), chunk):
                yield from _rows_by_ids(conn, ids[start : start + chunk])
        finally:
            conn.close()


def _rows_by_ids(conn: sqlite3.Connection, ids: Sequence[int]) -> list[StoredRow]:
    """Rows in the order of ``ids``; ids not found are left out."""
    rows = _select_in(conn, "SELECT id, nasa_id, raw, rev FROM records WHERE id IN ({})", list(ids))
    found = {row[0]: StoredRow(*row) for row in rows}
    return [found[i] for i in ids if i in found]


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _select_in(conn: sqlite3.Connection, sql: str, values: list[Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` with an ``IN ({})`` placeholder over values, in chunks SQLite accepts."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(values), 900):
        chunk = values[start : start + 900]
        placeholders = ",".join("?" * len(chunk))
        rows.extend(conn.execute(sql.format(placeholders), chunk).fetchall())
    return rows


#: Group level → its column and table (the only names interpolated into SQL): the text
#: levels' in ``record_groups``, the visual level's in ``visual_groups``.
GROUP_COLUMNS = {
    "caption": "caption_group",
    "near": "near_group",
    "event": "event_group",
    "visual": "visual_group",
}
GROUP_TABLES = {level: "record_groups" for level in GROUP_COLUMNS} | {"visual": "visual_groups"}


def _delete_in(conn: sqlite3.Connection, sql: str, values: list[Any]) -> None:
    for start in range(0, len(values), 900):
        chunk = values[start : start + 900]
        conn.execute(sql.format(",".join("?" * len(chunk))), chunk)


def _where(media_type: str, year: int, center: str | None) -> tuple[str, tuple[Any, ...]]:
    if center is None:
        return "media_type = ? AND year = ?", (media_type, year)
    return "media_type = ? AND year = ? AND center = ?", (media_type, year, center)
