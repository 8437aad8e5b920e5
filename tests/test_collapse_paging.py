"""Collapsed paging is exact: every page against a brute-force collapse of the same hits.

The brute force reads every hit of the query without collapsing (page after page, in
rank order), takes each hit's group ids from the store (the source of truth, not the
index's fast fields) and keeps the first hit of each group: that list is what the pages
of a collapsed search must hold, ``page_size`` at a time, with ``total_groups`` its length.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nivl import Library, SearchIndex, Settings, Store
from nivl.query import SORTS, SearchRequest, parse_request
from nivl.records import parse_item
from nivl.search import search

QUERIES = ("the", "apollo", "launch", "departure", "moon", "nasa", "")
LEVELS = {"caption": 0, "near": 1, "event": 2}  # index into Store.groups_by_row_ids' tuples
_brute: dict[tuple[str, str, str], list[int]] = {}


def params_for(q: str) -> dict[str, str]:
    """``q``, or every record (a filter every record passes) for the empty query."""
    return {"q": q} if q else {"media_type": "image,video,audio"}


def brute_force(library: Library, q: str, collapse: str, sort: str) -> list[int]:
    """Row ids of the first hit of each group, in rank order, from uncollapsed pages."""
    key = (q, collapse, sort)
    if key not in _brute:
        hits: list[int] = []
        page = 1
        while True:
            request = parse_request(
                {**params_for(q), "sort": sort, "page": str(page), "page_size": "1000"}
            )
            result = library.search(request)
            hits.extend(hit.row_id for hit in result.hits)
            if len(hits) >= result.total_hits or not result.hits:
                break
            page += 1
        assert len(hits) == result.total_hits
        _brute[key] = collapse_in_order(library.store, hits, collapse)
    return _brute[key]


def collapse_in_order(store: Store, row_ids: list[int], collapse: str) -> list[int]:
    groups = store.groups_by_row_ids(row_ids)
    seen: set[object] = set()
    firsts = []
    for row_id in row_ids:
        found = groups.get(row_id)
        key: object = found[LEVELS[collapse]] if found else ("alone", row_id)
        if key not in seen:
            seen.add(key)
            firsts.append(row_id)
    return firsts


def collapsed_page(library: Library, q: str, collapse: str, sort: str, page: int, size: int):  # type: ignore[no-untyped-def]
    request = {**params_for(q), "collapse": collapse, "sort": sort}
    return library.search(parse_request({**request, "page": str(page), "page_size": str(size)}))


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    q=st.sampled_from(QUERIES),
    collapse=st.sampled_from(("caption", "event")),
    sort=st.sampled_from(SORTS),
    page_size=st.one_of(st.integers(1, 1000), st.sampled_from((1, 10, 100, 500, 1000))),
    data=st.data(),
)
def test_collapsed_pages_equal_a_brute_force_collapse(
    loaded: Library, q: str, collapse: str, sort: str, page_size: int, data: st.DataObject
) -> None:
    expected = brute_force(loaded, q, collapse, sort)
    last = max(1, math.ceil(len(expected) / page_size))
    pages = {1, last, last + 1, data.draw(st.integers(1, last + 1), label="page")}
    for page in sorted(pages):
        if page * page_size > loaded.limits.max_result_window:
            continue  # the request itself is refused (a 400): nothing to page
        result = collapsed_page(loaded, q, collapse, sort, page, page_size)
        start = (page - 1) * page_size
        assert [hit.row_id for hit in result.hits] == expected[start : start + page_size]
        assert result.total_groups == len(expected)
        assert result.has_next == (start + page_size < len(expected))


def test_every_page_of_a_small_page_size_walks_all_groups(loaded: Library) -> None:
    """Page after page by ``has_next`` alone: each full but the last, then it stops."""
    expected = brute_force(loaded, "apollo", "caption", "relevance")
    seen: list[int] = []
    page = 1
    while True:
        result = collapsed_page(loaded, "apollo", "caption", "relevance", page, 7)
        assert result.total_groups == len(expected)
        seen.extend(hit.row_id for hit in result.hits)
        if not result.has_next:
            break
        assert len(result.hits) == 7
        page += 1
    assert seen == expected
    assert page == math.ceil(len(expected) / 7)


@pytest.fixture(scope="module")
def half_grouped(tmp_path_factory: pytest.TempPathFactory, records_path: Path) -> Iterator[Any]:
    """A home whose second half was never grouped (as a read-only home with stale groups):
    those records carry no group id and each is a group of its own."""
    settings = Settings.from_env({}, home=str(tmp_path_factory.mktemp("half") / "home"))
    lines = records_path.read_bytes().splitlines()
    first = settings.home / "first.jsonl"
    first.parent.mkdir(parents=True, exist_ok=True)
    first.write_bytes(b"\n".join(lines[: len(lines) // 2]))
    with Library(settings) as library:
        library.import_paths([first])
    store = Store(settings.db_path)
    store.upsert_records([parse_item(orjson.loads(line)) for line in lines[len(lines) // 2 :]])
    index = SearchIndex(settings.index_path)
    index.sync(store)
    yield store, index.snapshot()
    store.close()


@pytest.mark.parametrize("page_size", [1, 10, 100])
def test_ungrouped_records_count_as_groups_of_one(half_grouped: Any, page_size: int) -> None:
    store, index = half_grouped
    everything = search(store, index, SearchRequest(q="the", page_size=1000, page=1))
    rest = search(store, index, SearchRequest(q="the", page_size=1000, page=2))
    hits = [hit.row_id for hit in everything.hits + rest.hits]
    assert len(hits) == everything.total_hits
    expected = collapse_in_order(store, hits, "event")
    assert len(expected) < len(hits)  # the grouped half does group
    first = search(store, index, SearchRequest(q="the", collapse="event", page_size=page_size))
    assert first.total_groups == len(expected)
    last_page = math.ceil(len(expected) / page_size)
    last = search(
        store,
        index,
        SearchRequest(q="the", collapse="event", page_size=page_size, page=last_page),
    )
    start = (last_page - 1) * page_size
    assert [hit.row_id for hit in last.hits] == expected[start:]
    assert not last.has_next


def test_the_api_pages_of_the_issue_are_exact(http: httpx.Client, loaded: Library) -> None:
    """``collapse=caption&page_size=500&q=the`` by its ``next`` links, as a client walks it."""
    expected = brute_force(loaded, "the", "caption", "relevance")
    nasa_ids = [
        orjson.loads(raw)["data"][0]["nasa_id"] for raw in loaded.store.raw_by_ids(expected)
    ]
    url: str | None = "/search?q=the&collapse=caption&page_size=500"
    pages = []
    while url is not None:
        collection = http.get(url).raise_for_status().json()["collection"]
        pages.append(collection)
        links = collection.get("links", [])
        url = next((link["href"] for link in links if link["rel"] == "next"), None)
    walked = [item["data"][0]["nasa_id"] for c in pages for item in c["items"]]
    assert walked == nasa_ids
    assert [len(c["items"]) for c in pages[:-1]] == [500] * (len(pages) - 1)
    assert 0 < len(pages[-1]["items"]) <= 500
    assert {c["metadata"]["total_groups"] for c in pages} == {len(nasa_ids)}
    past = http.get(
        "/search", params={"q": "the", "collapse": "caption", "page_size": "500", "page": "3"}
    ).json()["collection"]
    assert past["items"] == []
    assert not [link for link in past.get("links", []) if link["rel"] == "next"]


def test_an_exact_count_past_tantivys_bucket_limit() -> None:
    """70,000 groups of two and 10 ungrouped hits: more shared values than one tantivy
    aggregation may hold (65,000 buckets), so the count reads every hit instead."""
    from tantivy import Document, Query

    index = SearchIndex(None)
    writer = index.index.writer(heap_size=100_000_000, num_threads=1)
    pairs = 70_000
    for row_id in range(1, 2 * pairs + 1):
        doc = Document()
        doc.add_integer("rid", row_id)
        doc.add_unsigned("caption_group", 10**6 + row_id % pairs)
        doc.add_unsigned("caption_shared", 10**6 + row_id % pairs)  # a group of two
        writer.add_document(doc)
    for row_id in range(2 * pairs + 1, 2 * pairs + 11):
        doc = Document()
        doc.add_integer("rid", row_id)
        writer.add_document(doc)
    writer.commit()
    index.reload()
    assert index.snapshot().count_distinct(Query.all_query(), "caption_group") == pairs + 10
