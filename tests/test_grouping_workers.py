"""A grouping worker holds one chunk of its batch's stored items at a time, not the batch.

Batches are whole days, and a day of podcast transcripts (descriptions of tens of kB)
made each of the two workers of a 300k import hold over a gigabyte.
"""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import orjson
import pytest

from nivl import grouping, groups
from nivl.grouping import Thresholds
from nivl.records import parse_item
from nivl.store import Store

RECORDS = 120
DESCRIPTION_CHARS = 100_000


def _items() -> list[bytes]:
    words = random.Random(7).choices([f"w{n}" for n in range(5000)], k=DESCRIPTION_CHARS // 5)
    items = []
    for n in range(RECORDS):
        text = " ".join(words[n:] + words[:n])  # distinct long descriptions, one day
        data = {
            "nasa_id": f"pod{n:04d}",
            "media_type": "audio",
            "title": f"Episode {n}",
            "description": text,
            "date_created": "2019-03-04T00:00:00Z",
        }
        items.append(orjson.dumps({"href": "x", "data": [data]}))
    return items


def _peak_of_a_worker_batch(path: Path) -> tuple[int, list[int], grouping.Compared]:
    with Store(path) as store:
        row_ids = [row_id for row_id, _ in store.iter_dates()]
    tracemalloc.start()
    try:
        found, compared = groups._compare_rows(path, row_ids, Thresholds())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, found, compared


def test_a_worker_holds_one_chunk_of_long_transcripts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "nivl.db"
    with Store(path) as store:
        store.upsert_records(parse_item(orjson.loads(raw), raw=raw.decode()) for raw in _items())
    whole = RECORDS * DESCRIPTION_CHARS  # the batch's descriptions, once
    _, found_at_once, at_once = _peak_of_a_worker_batch(path)
    chunk = 20
    monkeypatch.setattr(groups, "FEATURE_CHUNK", chunk)
    monkeypatch.setattr(grouping, "FEATURE_CHUNK", chunk)
    peak, found, compared = _peak_of_a_worker_batch(path)
    assert peak < whole, f"peak {peak:,} bytes for {whole:,} of descriptions"
    assert found == found_at_once  # and chunks change nothing of what is compared
    assert compared.captions == at_once.captions
    assert compared.near.tolist() == at_once.near.tolist()
    assert compared.event.tolist() == at_once.event.tolist()


def test_a_group_write_gives_back_its_larger_page_cache(tmp_path: Path) -> None:
    """The write's 64 MB cache is for its index inserts, not for the import after it."""
    path = tmp_path / "nivl.db"
    with Store(path) as store:
        store.upsert_records(parse_item(orjson.loads(raw), raw=raw.decode()) for raw in _items())
        writer = store._writer
        assert writer is not None
        before = writer.execute("PRAGMA cache_size").fetchone()[0]
        seen: list[int] = []
        writer.set_trace_callback(
            lambda sql: seen.append(1) if "INSERT INTO record_groups" in sql else None
        )
        groups.update_groups(store, workers=1)
        assert seen  # the groups were written on this connection
        assert writer.execute("PRAGMA cache_size").fetchone()[0] == before
        assert store.groups_by_row_ids([1])
