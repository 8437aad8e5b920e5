"""The pipelined import (parsing here, writing in a writer thread) leaves what the
sequential one did: the same rows, revs, assets, groups and index answers.

The reference is the old order, written out here: read an entry, write its batch, read
the next. Both run over the shared records and synthetic ones (``bench/synth.py``), with
small batches and the same ``nasa_id`` changing across batches, so that the writer is
always behind the reader and a wrong order of writes would show.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nivl import Library, Settings, parse_request
from nivl.errors import StoreError
from nivl.ingest import AssetManifest, EmptyFile, ImportSummary, import_paths, read_entries
from nivl.query import SearchRequest
from nivl.records import Record
from nivl.store import Store

REPO = Path(__file__).resolve().parents[1]


def sequential_import(store: Store, paths: list[Path], batch_size: int) -> ImportSummary:
    """The import as it was before the writer thread: one step after the other."""
    summary = ImportSummary()
    batch: list[Record] = []

    def flush() -> None:
        result = store.upsert_batch(batch)
        summary.new += result.new
        summary.updated += result.updated
        summary.unchanged += result.unchanged
        batch.clear()

    for path in paths:
        for entry in read_entries(path):
            if isinstance(entry, Record):
                summary.read += 1
                batch.append(entry)
                if len(batch) >= batch_size:
                    flush()
            elif isinstance(entry, AssetManifest):
                store.put_asset(entry.nasa_id, manifest=entry.raw)
                summary.assets += 1
            elif isinstance(entry, EmptyFile):
                summary.empty.append(entry.source)
            else:
                summary.reject(entry)
    if batch:
        flush()
    return summary


def dump(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table nivl writes, in a fixed order (timestamps aside)."""
    conn = sqlite3.connect(db)
    try:
        return {
            "records": conn.execute(
                "SELECT id, nasa_id, media_type, center, year, date_created, title, raw, rev "
                "FROM records ORDER BY id"
            ).fetchall(),
            "assets": conn.execute("SELECT * FROM assets ORDER BY nasa_id").fetchall(),
            "record_groups": conn.execute("SELECT * FROM record_groups ORDER BY id").fetchall(),
            "groups": conn.execute("SELECT * FROM groups ORDER BY id").fetchall(),
            "group_keys": conn.execute("SELECT * FROM group_keys ORDER BY key, row_id").fetchall(),
            "meta": conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('rev', 'grouped_rev', 'indexed_rev') "
                "ORDER BY key"
            ).fetchall(),
        }
    finally:
        conn.close()


def answer(library: Library, request: SearchRequest) -> tuple[Any, ...]:
    """A search's totals, and its hits when it does not collapse, equal scores in any order.

    tantivy's order of ties, and so which member of a group shows, depends on how its
    indexing threads split documents into segments: it differs between two runs of
    either import, so only what does not depend on it is compared.
    """
    result = library.search(request)
    if request.collapse != "none":
        return result.total_hits, result.total_groups
    hits = sorted((round(h.score, 4), h.row_id, h.raw_json, h.group) for h in result.hits)
    return result.total_hits, hits


def corpus(tmp_path: Path, records_path: Path, shared_items: list[dict[str, Any]]) -> list[Path]:
    synthetic = tmp_path / "synth.jsonl"
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "synth.py"), "3000", str(synthetic)],
        check=True,
        capture_output=True,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )
    # The same records again with other captions, a broken line and a manifest between
    # them: later copies must win, in file order, whichever thread writes them.
    changed = tmp_path / "changed.jsonl"
    lines = []
    for n, item in enumerate(shared_items[:400]):
        copy = json.loads(json.dumps(item))
        copy["data"][0]["description"] = f"changed caption {n % 7}"
        lines.append(json.dumps(copy))
        if n == 150:
            lines.append("{broken")
            manifest = {
                "collection": {
                    "version": "1.0",
                    "href": "https://images-api.nasa.gov/asset/" + item["data"][0]["nasa_id"],
                    "items": [{"href": "https://images-assets.nasa.gov/image/x/x~orig.jpg"}],
                }
            }
            lines.append(json.dumps(manifest))
    changed.write_text("\n".join(lines) + "\n")
    return [records_path, synthetic, changed, records_path]


def test_pipelined_import_writes_what_the_sequential_one_did(
    tmp_path: Path, records_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    paths = corpus(tmp_path, records_path, shared_items)
    homes = {}
    for name in ("sequential", "pipelined"):
        home = tmp_path / name
        with Library(Settings.from_env({}, home=str(home))) as library:
            with library.lock.hold():
                if name == "sequential":
                    summary = sequential_import(library.store, paths, batch_size=7)
                else:
                    summary = import_paths(library.store, paths, batch_size=7)
            library.reindex()  # groups and index, as an import does after the store step
            library.group()
            answers = [
                answer(library, request)
                for request in map(
                    parse_request,
                    (
                        {"q": "changed caption", "page_size": "1000"},
                        {"q": "apollo", "collapse": "event", "page_size": "1000"},
                        {
                            "q": "space station",
                            "collapse": "caption",
                            "sort": "date_desc",
                            "page_size": "1000",
                        },
                        {"media_type": "video", "page_size": "1000"},
                    ),
                )
            ]
        homes[name] = (summary.as_dict(), summary.seconds.keys(), dump(home / "nivl.db"), answers)
    sequential, pipelined = homes["sequential"], homes["pipelined"]
    assert pipelined[0] == sequential[0]
    assert pipelined[0]["rejected"] == 1 and pipelined[0]["assets"] == 1
    assert pipelined[0]["updated"] > 0 and pipelined[0]["unchanged"] > 0
    assert pipelined[2] == sequential[2]
    assert len(pipelined[2]["records"]) > 4000
    assert pipelined[3] == sequential[3]
    assert all(pipelined[3])


def test_a_failed_write_stops_the_import_with_one_error(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    source = tmp_path / "items.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in shared_items))
    store = Store(tmp_path / "nivl.db")
    store.upsert_batch([])  # the schema exists; now the table cannot be written
    conn = sqlite3.connect(tmp_path / "nivl.db")
    refused = shared_items[500]["data"][0]["nasa_id"].replace("'", "''")
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON records "
        f"WHEN NEW.nasa_id = '{refused}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="refused by the test"):
        import_paths(store, [source], batch_size=100)
    # The batches before the refused one are written, none after it (as sequentially).
    assert store.count() == 500
    store.close()
