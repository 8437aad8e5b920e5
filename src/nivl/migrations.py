"""Schema migrations: decorated functions applied once each, in order, recorded by name."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(function: Migration) -> Migration:
    MIGRATIONS.append((function.__name__, function))
    return function


def apply_migrations(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this database has not seen; each in its own transaction."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for name, function in MIGRATIONS:
        if name in done:
            continue
        with conn:
            function(conn)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, datetime('now'))", (name,)
            )
        applied.append(name)
    return applied


@migration
def m001_records(conn: sqlite3.Connection) -> None:
    conn.executescript(
        """
        CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            nasa_id TEXT NOT NULL UNIQUE,
            media_type TEXT NOT NULL,
            center TEXT NOT NULL DEFAULT '',
            year INTEGER,
            date_created TEXT NOT NULL DEFAULT '',
            title TEXT NOT NULL DEFAULT '',
            raw TEXT NOT NULL,
            rev INTEGER NOT NULL,
            updated_at TEXT NOT NULL DEFAULT (datetime('now'))
        );
        CREATE INDEX records_rev ON records (rev);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE assets (
            nasa_id TEXT PRIMARY KEY,
            manifest TEXT,
            metadata_location TEXT,
            captions_location TEXT
        );
        """
    )


@migration
def m002_groups(conn: sqlite3.Connection) -> None:
    """Group ids per record, blocking keys for incremental grouping, and groups of 2+."""
    conn.executescript(
        """
        ALTER TABLE records ADD COLUMN caption_group INTEGER;
        ALTER TABLE records ADD COLUMN near_group INTEGER;
        ALTER TABLE records ADD COLUMN event_group INTEGER;
        CREATE INDEX records_caption_group ON records (caption_group);
        CREATE INDEX records_near_group ON records (near_group);
        CREATE INDEX records_event_group ON records (event_group, date_created);
        CREATE TABLE group_keys (
            key INTEGER NOT NULL,
            row_id INTEGER NOT NULL,
            PRIMARY KEY (key, row_id)
        ) WITHOUT ROWID;
        CREATE INDEX group_keys_row ON group_keys (row_id);
        CREATE TABLE groups (
            id INTEGER PRIMARY KEY,
            level TEXT NOT NULL,
            size INTEGER NOT NULL,
            representative INTEGER NOT NULL
        );
        CREATE INDEX groups_level_size ON groups (level, size);
        """
    )


@migration
def m003_record_groups(conn: sqlite3.Connection) -> None:
    """Group ids move to a narrow table of their own: as columns after ``raw`` they cost
    a walk of each row's overflow pages to read, and a rewrite of the whole row to set."""
    conn.executescript(
        """
        CREATE TABLE record_groups (
            id INTEGER PRIMARY KEY,
            caption_group INTEGER NOT NULL,
            near_group INTEGER NOT NULL,
            event_group INTEGER NOT NULL
        );
        INSERT INTO record_groups (id, caption_group, near_group, event_group)
            SELECT id, caption_group, near_group, event_group FROM records
            WHERE event_group IS NOT NULL;
        CREATE INDEX record_groups_caption ON record_groups (caption_group);
        CREATE INDEX record_groups_near ON record_groups (near_group);
        CREATE INDEX record_groups_event ON record_groups (event_group);
        DROP INDEX records_caption_group;
        DROP INDEX records_near_group;
        DROP INDEX records_event_group;
        ALTER TABLE records DROP COLUMN caption_group;
        ALTER TABLE records DROP COLUMN near_group;
        ALTER TABLE records DROP COLUMN event_group;
        """
    )


@migration
def m004_stage_marks(conn: sqlite3.Connection) -> None:
    """The derived stages' marks are keyed by stage name: they were keyed by the index's
    path as typed, so ``--home data`` and ``--home /abs/data`` kept two marks for one
    index. Where several spellings left marks, the lowest wins (re-deriving is safe)."""
    for name in ("indexed_rev", "embedded_rev"):
        rows = conn.execute(
            "SELECT value FROM meta WHERE key LIKE ? AND key != ?",
            (f"{name}:%", f"{name}:memory"),
        ).fetchall()
        if rows:
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (name, str(min(int(value or 0) for (value,) in rows))),
            )
    cursors = conn.execute(
        "SELECT value FROM meta WHERE key LIKE 'embedded_cursor:%' AND value != ''"
    ).fetchall()
    if len(cursors) == 1:  # one run in flight carries on; of several, none can be trusted
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('embedded_cursor', ?)", cursors[0]
        )
    conn.execute(
        "DELETE FROM meta WHERE key LIKE 'indexed_rev:%' OR key LIKE 'embedded_rev:%'"
        " OR key LIKE 'embedded_cursor:%'"
    )


@migration
def m005_visual(conn: sqlite3.Connection) -> None:
    """Perceptual hashes of mirrored pictures (one per record: its smallest image
    rendition) and the visual group of each record that has one of two or more."""
    conn.executescript(
        """
        CREATE TABLE picture_hashes (
            nasa_id TEXT PRIMARY KEY,
            file TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            folder_mtime_ns INTEGER NOT NULL,
            phash INTEGER,
            dhash INTEGER,
            problem TEXT
        );
        CREATE TABLE visual_groups (
            id INTEGER PRIMARY KEY,
            visual_group INTEGER NOT NULL
        );
        CREATE INDEX visual_groups_group ON visual_groups (visual_group);
        """
    )
