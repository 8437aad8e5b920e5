"""The ``*_shared`` fields hold group ids only for groups of two or more (schema 4).

A collapsed search counts its groups over them, so a group of one has no bucket there;
singletons were most of the distinct values of large hit sets. That is exact only if
every member of a larger group has the value, so a group that grows from one to two gets
its first member reindexed even though that member's group id (from its group's smallest
``nasa_id``) stays the same.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from nivl import Library, SearchIndex, Settings, Store
from nivl.query import parse_request, plan_query
from nivl.records import parse_item
from nivl.search_index import GROUP_FIELDS, SCHEMA_VERSION, SHARED_FIELDS

from .test_search_counts import _item, _write

DAY = "1999-05-05T00:00:00Z"


def _values(library: Library, field: str) -> dict[str, int | None]:
    """nasa_id → the index's value of ``field``, for every record with "quasar"."""
    snapshot = library.index.snapshot()
    query = snapshot.compile(plan_query(parse_request({"q": "quasar"})))
    hits = snapshot.search(query, limit=1000)
    values = snapshot.fast_values(field, hits.addresses)
    raws = library.store.raw_map(hits.row_ids)
    return {
        orjson.loads(raws[row_id])["data"][0]["nasa_id"]: value
        for row_id, value in zip(hits.row_ids, values, strict=True)
    }


def _collapsed(library: Library) -> tuple[int | None, list[tuple[str, int]]]:
    result = library.search(parse_request({"q": "quasar", "collapse": "event"}))
    return result.total_groups, [
        (orjson.loads(hit.raw_json)["data"][0]["nasa_id"], hit.group.size if hit.group else 1)
        for hit in result.hits
    ]


def test_a_group_that_grows_to_two_gives_its_first_member_the_id(tmp_path: Path) -> None:
    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    alone = _item("qa0001", "Quasar mosaic tile", "A tile of the deep quasar mosaic.", DAY)
    other = _item("qz0001", "Quasar survey plate", "A plate of another survey.", "1971-02-02")
    with Library(settings) as library:
        library.import_paths([_write(tmp_path / "a.jsonl", [alone, other])])
        assert _values(library, "event_shared") == {"qa0001": None, "qz0001": None}
        assert None not in _values(library, "event_group").values()  # as before
        assert _collapsed(library) == (2, [("qa0001", 1), ("qz0001", 1)])
        # a later record of the same caption and day: qa0001 stays its group's smallest
        # nasa_id, so its group id does not change, yet its document must gain it
        twin = _item("qa0002", "Quasar mosaic tile", "A tile of the deep quasar mosaic.", DAY)
        library.import_paths([_write(tmp_path / "b.jsonl", [twin])])
        values = _values(library, "event_shared")
        assert values["qa0001"] is not None
        assert values["qa0001"] == values["qa0002"]
        assert values["qz0001"] is None
        total, page = _collapsed(library)  # a page of few hits counts its groups itself:
        assert total == 2
        assert sorted((name[:2], size) for name, size in page) == [("qa", 2), ("qz", 1)]
        # the count over the index, as a page of many hits takes it
        snapshot = library.index.snapshot()
        query = snapshot.compile(plan_query(parse_request({"q": "quasar"})))
        assert snapshot.count_distinct(query, "event_group") == 2


def test_an_index_of_schema_3_is_rebuilt_without_singleton_values(tmp_path: Path) -> None:
    """An index written before (every record with a group id, singletons too) is replaced
    on open and rebuilt from the store: afterwards only shared groups have values."""
    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    items = [
        _item("qa0001", "Quasar mosaic tile", "A tile of the deep quasar mosaic.", DAY),
        _item("qa0002", "Quasar mosaic tile", "A tile of the deep quasar mosaic.", DAY),
        _item("qz0001", "Quasar survey plate", "A plate of another survey.", "1971-02-02"),
    ]
    with Library(settings) as library:
        library.import_paths([_write(tmp_path / "a.jsonl", items)])
    store = Store(settings.db_path)
    groups = store.groups_by_row_ids(list(range(1, 10)))
    assert len(groups) == 3  # every record has its ids in the store, singletons too
    (settings.index_path / "nivl-schema").write_text("3")
    index = SearchIndex(settings.index_path)
    assert index.num_docs() == 0  # the old layout was dropped
    assert index.sync(store) == 3
    snapshot = index.snapshot()
    hits = snapshot.search(snapshot.compile(plan_query(parse_request({"q": "quasar"}))), limit=9)
    for field in GROUP_FIELDS[:3]:
        assert None not in snapshot.fast_values(field, hits.addresses)
        values = snapshot.fast_values(SHARED_FIELDS[field], hits.addresses)
        assert sum(value is None for value in values) == 1, field  # qz0001's
    assert (settings.index_path / "nivl-schema").read_text() == SCHEMA_VERSION
    store.close()


def test_a_visual_group_that_grows_to_two_rereads_its_first_member(tmp_path: Path) -> None:
    """The same rule for pictures: the second copy of a photograph joins the first one's
    visual group, whose id stays; both documents then carry it in ``visual_shared``."""
    store = Store(tmp_path / "nivl.db")
    store.upsert_records(
        [
            parse_item(_item("qa0001", "Quasar plate", "A plate.", DAY)),
            parse_item(_item("qa0002", "Quasar copy", "A copy of the plate.", DAY)),
        ]
    )
    first, second = 10**6 + 1, 10**6 + 2
    store.write_visual_groups({1: first, 2: second}, [], 0)  # two pictures of their own
    index = SearchIndex(tmp_path / "index")
    index.sync(store)
    before = store.max_rev()
    store.write_visual_groups({1: first, 2: first}, [(first, 2, 1)], 1)  # row 2 joins row 1
    assert {row.id for row in store.iter_rows(since_rev=before)} == {1, 2}
    index.sync(store)
    snapshot = index.snapshot()
    hits = snapshot.search(snapshot.compile(plan_query(parse_request({"q": "quasar"}))), limit=9)
    assert snapshot.fast_values("visual_shared", hits.addresses) == [first, first]
    query = snapshot.compile(plan_query(parse_request({"q": "quasar"})))
    assert snapshot.count_distinct(query, "visual_group") == 1
    store.close()
