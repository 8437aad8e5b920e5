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
