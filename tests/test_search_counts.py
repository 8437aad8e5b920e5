"""The counting shortcuts of collapsed and relaxed searches, against brute force.

A collapsed page that its first batch cannot fill reads all the remaining hits at once,
a snapshot keeps the group counts of its searches for their next pages, and matching
counts a candidate query with that query's own page search (search.py, matching.py).
Each is checked against an uncollapsed walk of every hit with the store's groups, on
real homes built by real imports.
"""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from nivl import Library, Settings
from nivl.query import parse_request, plan_query

from .test_collapse_paging import collapse_in_order

ASSETS = "https://images-assets.nasa.gov/image"


def _item(nasa_id: str, title: str, description: str, date: str) -> dict[str, object]:
    return {
        "href": f"{ASSETS}/{nasa_id}/collection.json",
        "data": [
            {
                "nasa_id": nasa_id,
                "media_type": "image",
                "title": title,
                "description": description,
                "center": "JPL",
                "date_created": date,
            }
        ],
    }


def _write(path: Path, items: list[dict[str, object]]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(item) for item in items) + b"\n")
    return path


def _distinct(prefix: str, count: int, year: int) -> list[dict[str, object]]:
    """``count`` quasar records of different captions, days and years: many groups."""
    return [
        _item(
            f"{prefix}{i:04d}",
            f"Quasar field {prefix} {i} {'abcdefghij'[i % 10]}{i // 10}",
            f"Survey plate {i} of the {prefix} quasar catalog, exposure {i * 7 % 97}.",
            f"{year + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00Z",
        )
        for i in range(count)
    ]


def _alike(prefix: str, count: int) -> list[dict[str, object]]:
    """``count`` quasar records of one caption on one day: one group at every level."""
    return [
        _item(
            f"{prefix}{i:04d}",
            "Quasar mosaic tile",
            "A tile of the deep quasar mosaic taken on the same night.",
            "1999-05-05T00:00:00Z",
        )
        for i in range(count)
    ]


def every_hit(library: Library, params: dict[str, str]) -> list[int]:
    """Row ids of every hit, in rank order, from uncollapsed pages of 1000."""
    hits: list[int] = []
    page = 1
    while True:
        result = library.search(parse_request({**params, "page": str(page), "page_size": "1000"}))
        hits.extend(hit.row_id for hit in result.hits)
        if len(hits) >= result.total_hits or not result.hits:
            return hits
        page += 1


def walk(library: Library, params: dict[str, str], collapse: str, size: int) -> list[int]:
    """Every collapsed page by ``has_next``, checking each page's ``total_groups``."""
    seen: list[int] = []
    totals = set()
    page = 1
    while True:
        request = {**params, "collapse": collapse, "page": str(page), "page_size": str(size)}
        result = library.search(parse_request(request))
        totals.add(result.total_groups)
        seen.extend(hit.row_id for hit in result.hits)
        if not result.has_next:
            break
        assert len(result.hits) == size
        page += 1
    assert totals == {len(seen)}
    return seen


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    return Settings.from_env({}, home=str(tmp_path / "home"))


@pytest.mark.parametrize("sort", ["relevance", "date_desc"])
def test_hits_crowded_into_few_groups_page_like_a_brute_force_collapse(
    home: Settings, tmp_path: Path, sort: str
) -> None:
    """600 hits of one caption among 60 of their own: the first batch of 200 holds few
    groups, so the rest are read at once; every page and count still equal brute force."""
    items = _alike("tile", 600) + _distinct("field", 60, 1970)
    with Library(home) as library:
        library.import_paths([_write(tmp_path / "a.jsonl", items)])
        params = {"q": "quasar", "sort": sort}
        hits = every_hit(library, params)
        assert len(hits) == 660
        for collapse in ("caption", "event"):
            expected = collapse_in_order(library.store, hits, collapse)
            assert len(expected) < 100  # the tiles do group
            for size in (5, 25, 50):
                assert walk(library, params, collapse, size) == expected


def test_a_kept_group_count_is_never_another_revisions(home: Settings, tmp_path: Path) -> None:
    """Page 2 reuses page 1's group count; after an import adds groups, it is counted again."""
    params = {"q": "quasar"}
    with Library(home) as library:
        library.import_paths([_write(tmp_path / "a.jsonl", _distinct("old", 400, 1960))])
        before = collapse_in_order(library.store, every_hit(library, params), "event")
        for page in (1, 2):  # page 2 can only take page 1's count from the snapshot
            request = {**params, "collapse": "event", "page": str(page), "page_size": "10"}
            result = library.search(parse_request(request))
            assert result.total_groups == len(before)
            assert [hit.row_id for hit in result.hits] == before[(page - 1) * 10 : page * 10]
        library.import_paths([_write(tmp_path / "b.jsonl", _distinct("new", 80, 2001))])
        after = collapse_in_order(library.store, every_hit(library, params), "event")
        assert len(after) > len(before)
        result = library.search(
            parse_request({**params, "collapse": "event", "page": "2", "page_size": "10"})
        )
        assert result.total_groups == len(after)
        assert [hit.row_id for hit in result.hits] == after[10:20]
        assert result.has_next == (20 < len(after))
        last = math.ceil(len(after) / 10)
        result = library.search(
            parse_request({**params, "collapse": "event", "page": str(last), "page_size": "10"})
        )
        assert [hit.row_id for hit in result.hits] == after[(last - 1) * 10 :]
        assert not result.has_next


@pytest.mark.parametrize(
    "params",
    [
        {"q": "quasar field"},  # strict: both words, enough records
        {"q": "quasar mosaic catalog"},  # no record has all three: relaxed
        {"q": "quasar mosaic catalog", "sort": "date_desc"},  # strong fields first
        {"q": '"survey plate" mosaic'},  # a phrase is required, the word relaxes
        {"q": "quasar catalog exposure", "year_start": "1980", "year_end": "1990"},
        {"q": "quasar tile", "match": "all"},
    ],
)
def test_a_query_chosen_by_its_own_page_search_pages_as_searched_afresh(
    home: Settings, tmp_path: Path, params: dict[str, str]
) -> None:
    """Matching counts its candidates with the page's own search and hands that page on:
    the pages, counts and matching decisions equal compiling first, then searching; and
    the query that groups are counted on holds exactly the records of the searched one."""
    items = _alike("tile", 30) + _distinct("field", 120, 1970)
    with Library(home) as library:
        library.import_paths([_write(tmp_path / "a.jsonl", items)])
        snapshot = library.index.snapshot()
        for page, size in ((1, 10), (3, 7), (1, 1000)):
            request = parse_request({**params, "page": str(page), "page_size": str(size)})
            plan = plan_query(request)
            query, unscored, matched, hits = snapshot.compile_and_search(
                plan, limit=size, offset=(page - 1) * size, sort=request.sort
            )
            fresh = library.index.snapshot()  # no words or counts kept from the first
            alone, matched_alone = fresh.compile_matching(plan)
            again = fresh.search(alone, limit=size, offset=(page - 1) * size, sort=request.sort)
            assert (hits.row_ids, hits.total) == (again.row_ids, again.total)
            assert hits.scores == pytest.approx(again.scores)
            assert (matched is None) == (matched_alone is None)
            if matched is not None and matched_alone is not None:
                assert matched.relaxed == matched_alone.relaxed
                assert matched.count in (None, again.total)
            assert every_hit(library, params)[(page - 1) * size : page * size] == hits.row_ids
            # the query the groups are counted on holds the same records, unscored
            walked = fresh.search(unscored, limit=1000, sort="added_desc")
            assert set(walked.row_ids) == set(fresh.search(query, limit=1000).row_ids)
            assert walked.total == again.total
            # a relaxed candidate may be searched wider (a collapsed page reads it at once)
            _, _, matched_wide, wide = snapshot.compile_and_search(
                plan, limit=size, offset=(page - 1) * size, sort=request.sort, relaxed_limit=25
            )
            wider = fresh.search(
                alone, limit=max(size, 25), offset=(page - 1) * size, sort=request.sort
            )
            assert wide.row_ids == wider.row_ids[: len(wide.row_ids)]
            assert len(wide.row_ids) in (len(again.row_ids), len(wider.row_ids))
            assert wide.total == again.total
            assert matched_wide is not None and matched is not None
            assert matched_wide.relaxed == matched.relaxed
