"""The counting shortcuts of collapsed and relaxed searches, against brute force.

A collapsed page that its first batch cannot fill reads all the remaining hits at once,
a snapshot keeps the group counts of its searches for their next pages, and matching
counts a candidate query with that query's own page search (search.py, matching.py).
Each is checked against an uncollapsed walk of every hit with the store's groups, on
real homes built by real imports.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import orjson
import pytest

from nivl import Library, Settings, matching
from nivl.query import parse_request, plan_query
from nivl.search_index import Snapshot

from .test_collapse_paging import collapse_in_order

ASSETS = "https://images-assets.nasa.gov/image"
search_module = importlib.import_module("nivl.search")  # ``nivl.search`` is also a function


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


def _events(count: int, size: int) -> list[dict[str, object]]:
    """``count`` events of ``size`` alike quasar records, each event on a day of its own."""
    return [
        _item(
            f"ev{k:03d}-{i:03d}",
            f"Quasar mosaic {k} tile",
            f"Tile of quasar mosaic number {k}, taken the same night.",
            f"{1950 + k}-03-0{1 + k % 7}T00:00:00Z",
        )
        for k in range(count)
        for i in range(size)
    ]


def test_a_page_of_crowded_hits_takes_the_batch_their_groups_say(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 events of 20 hits: a page of 50 groups needs about 1000 hits, and after the first
    200 (10 groups) the next pass reads as many as the rate says instead of doubling
    (200 → 400 → 800: three passes over the postings). The hits past the first batch are
    many (``REST_AT_ONCE`` lowered, as for a large collection), so they are not read all
    at once; the pages still equal brute force."""
    monkeypatch.setattr(search_module, "REST_AT_ONCE", 100)
    monkeypatch.setattr(search_module, "ALL_AT_ONCE", 100)
    passes: list[int] = []
    real = Snapshot.search

    def counted(self: Snapshot, query: object, **kwargs: object) -> object:
        passes.append(int(kwargs["limit"]))  # type: ignore[call-overload]
        return real(self, query, **kwargs)  # type: ignore[arg-type]

    with Library(home) as library:
        library.import_paths([_write(tmp_path / "a.jsonl", _events(60, 20))])
        params = {"q": "quasar", "sort": "date_desc"}
        hits = every_hit(library, params)
        expected = collapse_in_order(library.store, hits, "event")
        assert len(expected) == 60
        monkeypatch.setattr(Snapshot, "search", counted)
        request = {**params, "collapse": "event", "page_size": "50"}
        result = library.search(parse_request(request))
        assert [hit.row_id for hit in result.hits] == expected[:50]
        assert result.total_groups == 60
        assert len(passes) == 2, passes
        monkeypatch.setattr(Snapshot, "search", real)
        assert walk(library, params, "event", 50) == expected


def test_a_one_word_q_costs_no_counting_pass(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A word's count in the strong fields weighs the matched-words bonus of a q of several
    words and bounds its typo corrections; a q of one common word has neither, so its page
    search is its only pass. Two words still count each (the bonus needs their weights)."""
    counts: list[object] = []
    real = matching._count

    def counted(*args: object) -> int:
        counts.append(args[1])
        return real(*args)  # type: ignore[arg-type]

    with Library(home) as library:
        library.import_paths([_write(tmp_path / "a.jsonl", _distinct("field", 30, 1970))])
        monkeypatch.setattr(matching, "_count", counted)
        result = library.search(parse_request({"q": "quasar"}))
        assert result.total_hits == 30
        assert counts == []
        two = library.search(parse_request({"q": "quasar survey", "sort": "relevance"}))
        assert two.total_hits == 30
        assert len(counts) >= 2


@pytest.mark.parametrize(
    "params",
    [
        {"q": "quasar mosaic catalog"},  # relaxed: a strict probe, then the relaxed page
        {"q": "quasar mosaic catalog", "sort": "date_desc"},  # strong fields, then all
        {"q": "quasar mosaic catalog", "collapse": "event"},  # relaxed read wide at once
        {"q": "quasar field"},  # strict: its probe is its page already
    ],
)
def test_the_next_page_of_a_q_is_one_search_as_the_first_decided(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, params: dict[str, str]
) -> None:
    """A relaxed q probes strict (and fewer words) before its page; the snapshot keeps how
    each plan matched, so the same search's next page (or the same page again) searches
    once, and answers what a snapshot that never saw the plan answers."""
    passes: list[object] = []
    real = Snapshot.search

    def counted(self: Snapshot, query: object, **kwargs: object) -> object:
        passes.append(kwargs.get("offset"))
        return real(self, query, **kwargs)  # type: ignore[arg-type]

    items = _alike("tile", 30) + _distinct("field", 120, 1970)
    with Library(home) as library:
        library.import_paths([_write(tmp_path / "a.jsonl", items)])
        monkeypatch.setattr(Snapshot, "search", counted)
        first = library.search(parse_request({**params, "page_size": "10"}))
        probes = len(passes)
        passes.clear()
        second = library.search(parse_request({**params, "page_size": "10", "page": "2"}))
        assert len(passes) == 1, passes
        if params["q"] != "quasar field":
            assert probes >= 2  # the first page did probe: what the kept decision saves
        monkeypatch.setattr(Snapshot, "search", real)
        for page, result in ((1, first), (2, second)):
            request = parse_request({**params, "page_size": "10", "page": str(page)})
            fresh = search_module.search(library.store, library.index.snapshot(), request)
            assert [h.row_id for h in result.hits] == [h.row_id for h in fresh.hits]
            assert [h.score for h in result.hits] == [h.score for h in fresh.hits]
            assert (result.total_hits, result.total_groups, result.suggestion) == (
                fresh.total_hits,
                fresh.total_groups,
                fresh.suggestion,
            )
