"""Opening an index must not rewrite it: a marker rewritten in place at every open was read
empty by a second process opening the same home at that moment, which then took the index
for an old layout and deleted it (a 300k benchmark home lost its index that way)."""

from __future__ import annotations

import os
from pathlib import Path

from nivl import SearchIndex, Store
from nivl.records import parse_item
from nivl.search_index import SCHEMA_VERSION


def _files(path: Path) -> dict[str, tuple[int, int, int]]:
    return {
        f.name: (f.stat().st_ino, f.stat().st_mtime_ns, f.stat().st_size)
        for f in path.iterdir()
        if f.is_file() and not f.name.endswith(".lock")
    }


def test_opening_an_up_to_date_index_rewrites_nothing_in_it(
    tmp_path: Path, shared_items: list[dict[str, object]]
) -> None:
    store = Store(tmp_path / "nivl.db")
    store.upsert_records([parse_item(item) for item in shared_items[:50]])
    path = tmp_path / "index"
    SearchIndex(path).sync(store)
    before = _files(path)
    assert before["nivl-schema"][2] == len(SCHEMA_VERSION)
    for _ in range(3):
        again = SearchIndex(path, verify=True)
        assert again.num_docs() == 50
    assert _files(path) == before  # the marker included: same file, same time, same size
    store.close()


def test_an_index_of_another_schema_is_still_replaced(
    tmp_path: Path, shared_items: list[dict[str, object]]
) -> None:
    store = Store(tmp_path / "nivl.db")
    store.upsert_records([parse_item(item) for item in shared_items[:20]])
    path = tmp_path / "index"
    SearchIndex(path).sync(store)
    (path / "nivl-schema").write_text("2")
    reopened = SearchIndex(path)
    assert (path / "nivl-schema").read_text() == SCHEMA_VERSION
    assert reopened.num_docs() == 0  # derived data in an old layout: rebuilt by sync
    assert reopened.sync(store) == 20
    assert not [name for name in os.listdir(path) if name.endswith(".tmp")]
    store.close()
