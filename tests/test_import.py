"""Import of JSONL, upstream response files and .gz, through the library and the CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from nivl import Library
from nivl.search_index import SearchIndex

from .conftest import RESPONSES


def test_import_shared_records_round_trips_verbatim(
    library: Library, records_path: Path, shared_items: list[dict]
) -> None:
    summary = library.import_paths([records_path])
    assert summary.as_dict()["new"] == len(shared_items)
    assert summary.rejected == 0
    for item in shared_items:
        assert json.loads(library.store.get_raw(item["data"][0]["nasa_id"])) == item
    assert library.index.num_docs() == len(shared_items)


def test_reimport_changes_nothing_and_updates_count(
    library: Library, tmp_path: Path, shared_items: list[dict]
) -> None:
    path = tmp_path / "few.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in shared_items[:10]))
    library.import_paths([path])
    again = library.import_paths([path])
    assert (again.new, again.updated, again.unchanged) == (0, 0, 10)
    changed = json.loads(json.dumps(shared_items[3]))
    changed["data"][0]["title"] = "A title nobody else has: zyzzyva"
    path.write_text(json.dumps(changed))
    summary = library.import_paths([path])
    assert (summary.new, summary.updated) == (0, 1)
    assert library.index.num_docs() == 10
    from nivl import parse_request

    hits = library.search(parse_request({"q": "zyzzyva"}))
    assert hits.total_hits == 1


def test_broken_lines_are_reported_and_the_rest_lands(
    library: Library, tmp_path: Path, shared_items: list[dict]
) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps(shared_items[0]),
        "{not json",
        "",
        json.dumps({"data": [{}]}),
        json.dumps(shared_items[1]),
        "[1, 2]",
    ]
    path.write_text("\n".join(lines) + "\n")
    summary = library.import_paths([path])
    assert summary.new == 2
    assert [(r.line, r.reason.split(":")[0]) for r in summary.rejections] == [
        (2, "broken JSON"),
        (4, "item has no 'nasa_id'"),
        (6, "item is a JSON list, not an object"),
    ]
    assert all(r.source == str(path) for r in summary.rejections)


def test_gzip_and_upstream_response_files(
    library: Library, tmp_path: Path, shared_items: list[dict]
) -> None:
    gz = tmp_path / "items.jsonl.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write("\n".join(json.dumps(i) for i in shared_items[:5]))
    search_file = RESPONSES / "search__q=helmet__src-RobEato.json"
    expected = json.loads(search_file.read_text())["collection"]["items"]
    summary = library.import_paths([gz, search_file])
    assert summary.read == 5 + len(expected)
    assert summary.new + summary.updated + summary.unchanged == summary.read
    for item in expected:
        assert json.loads(library.store.get_raw(item["data"][0]["nasa_id"])) == item


def test_pretty_printed_collection_gz_and_asset_manifest(library: Library, tmp_path: Path) -> None:
    source = RESPONSES / "search__q=mars__src-NickBansal.json"
    document = json.loads(source.read_text())
    gz = tmp_path / "mars.json.gz"
    with gzip.open(gz, "wt") as handle:
        json.dump(document, handle, indent=2)
    manifest = RESPONSES / "asset__as11-40-5874__src-dees101.json"
    summary = library.import_paths([gz, manifest])
    assert summary.read == len(document["collection"]["items"])
    assert summary.assets == 1
    stored = library.store.get_asset("as11-40-5874")["manifest"]
    assert stored and json.loads(stored) == json.loads(manifest.read_text())


def test_empty_and_garbage_files(library: Library, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    garbage = tmp_path / "garbage.json.gz"
    garbage.write_bytes(b"\x1f\x8b not really gzip")
    summary = library.import_paths([empty, garbage])
    assert summary.read == 0
    assert len(summary.rejections) == 1 and "cannot read" in summary.rejections[0].reason


def test_index_catches_up_after_a_crash_between_store_and_index(
    library: Library,
    tmp_path: Path,
    shared_items: list[dict],
) -> None:
    from nivl.records import parse_item

    library.store.upsert_records(parse_item(i) for i in shared_items[:50])  # no index sync
    reopened = SearchIndex(library.settings.index_path)
    assert reopened.sync(library.store) == 50
    assert reopened.num_docs() == 50
    assert reopened.sync(library.store) == 0


def test_an_index_missing_documents_is_repaired_on_open(
    library: Library, records_path: Path
) -> None:
    library.import_paths([records_path])
    writer = library.index.index.writer(heap_size=50_000_000, num_threads=1)
    for row_id in library.store.sample_row_ids(5, seed=1):
        writer.delete_documents_by_term("rid", row_id)
    writer.commit()
    writer.wait_merging_threads()
    library.index.reload()
    assert library.index.num_docs() < library.store.count()
    reopened = SearchIndex(library.settings.index_path)
    assert not reopened.agrees_with(library.store)
    assert reopened.sync(library.store) == library.store.count()
    assert reopened.agrees_with(library.store)
