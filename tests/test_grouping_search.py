"""Groups in a real store and index: incremental grouping, collapse, expand, dupes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nivl import Library, Settings, groups
from nivl.errors import RecordNotFound
from nivl.groups import update_groups
from nivl.query import SearchRequest

DEPARTURE = Path(__file__).parent / "fixtures" / "departure.jsonl"
ALL = {"media_type": ("image",)}  # matches every record of the departure fixture


@pytest.fixture(scope="module")
def departure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    settings = Settings.from_env({}, home=str(tmp_path_factory.mktemp("departure") / "home"))
    with Library(settings) as lib:
        lib.import_paths([DEPARTURE])
        yield lib


def collapsed(lib: Library, collapse: str, **params: object) -> list:  # type: ignore[type-arg]
    """Every card of a collapsed search, page after page."""
    cards, page = [], 1
    while True:
        result = lib.search(SearchRequest(collapse=collapse, page=page, **params))  # type: ignore[arg-type]
        cards.extend(result.hits)
        if not result.has_next:
            return cards
        page += 1


def test_collapse_caption_gives_27_cards_and_event_about_15(departure: Library) -> None:
    by_caption = departure.search(SearchRequest(collapse="caption", page_size=100, **ALL))
    by_event = departure.search(SearchRequest(collapse="event", page_size=100, **ALL))
    assert by_caption.total_hits == by_event.total_hits == 100
    assert by_caption.total_groups == len(by_caption.hits) == 27
    assert by_event.total_groups == len(by_event.hits)
    assert 15 <= len(by_event.hits) <= 16
    for result in (by_caption, by_event):
        ids = [hit.group.id for hit in result.hits if hit.group]
        assert len(ids) == len(set(ids)) == len(result.hits)  # no group twice
        assert sum(hit.group.size for hit in result.hits if hit.group) == 100


def test_collapsed_pages_have_no_repeats_or_gaps(departure: Library) -> None:
    whole = departure.search(SearchRequest(collapse="caption", page_size=100, **ALL)).hits
    paged = collapsed(departure, "caption", page_size=4, **ALL)
    assert [h.row_id for h in paged] == [h.row_id for h in whole]


def test_a_collapsed_card_is_the_groups_best_ranked_hit(departure: Library) -> None:
    plain = departure.search(SearchRequest(q="departure", page_size=100)).hits
    cards = departure.search(SearchRequest(q="departure", collapse="event", page_size=100))
    first_rows = {}
    for hit in plain:  # the first hit of each event, in rank order
        level_id = departure.store.groups_by_row_ids([hit.row_id])[hit.row_id][2]
        first_rows.setdefault(level_id, hit.row_id)
    assert [h.row_id for h in cards.hits] == list(first_rows.values())
    assert cards.total_hits == len(plain)


def test_collapse_none_leaves_hits_ungrouped(departure: Library) -> None:
    result = departure.search(SearchRequest(page_size=10, **ALL))
    assert result.total_groups is None and all(h.group is None for h in result.hits)


def test_expanding_a_group_lists_its_members_in_date_order(departure: Library) -> None:
    cards = departure.search(SearchRequest(collapse="event", page_size=100, **ALL)).hits
    sts97 = next(h for h in cards if "T-38 jet trainer" in h.raw)
    assert sts97.group is not None and sts97.group.size == 5
    first = departure.group_page(sts97.group.id, page_size=3)
    second = departure.group_page(sts97.group.id, page=2, page_size=3)
    assert (first.level, first.size, first.has_next, second.has_next) == ("event", 5, True, False)
    items = [json.loads(raw)["data"][0] for raw in first.raws + second.raws]
    assert len({item["nasa_id"] for item in items}) == 5
    keys = [(item["date_created"], item["nasa_id"]) for item in items]
    assert keys == sorted(keys)
    filtered = departure.search(SearchRequest(group_level="event", group_id=sts97.group.id))
    assert filtered.total_hits == 5


def test_an_unknown_group_is_not_found(departure: Library) -> None:
    with pytest.raises(RecordNotFound):
        departure.group_page(12345)


def test_dupes_reports_the_largest_groups_and_what_each_level_hides(departure: Library) -> None:
    report = departure.dupes(level="caption", limit=2)
    assert report.records == 100
    assert [g.size for g in report.groups] == [46, 27]
    assert report.hidden["caption"] == 100 - 27
    assert report.hidden["caption"] <= report.hidden["near"] <= report.hidden["event"]
    everything = departure.dupes(min_size=5)
    assert {g.level for g in everything.groups} == {"caption", "near", "event"}
    assert all(g.size >= 5 for g in everything.groups)


def test_incremental_grouping_equals_a_full_rebuild(
    settings: Settings, tmp_path: Path, records_path: Path
) -> None:
    lines = records_path.read_text().splitlines()
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("\n".join(lines[::2]) + "\n")  # interleaved, so groups straddle files
    second.write_text("\n".join(lines[1::2]) + "\n")
    with Library(settings) as lib:
        lib.import_paths([first])
        lib.import_paths([second, DEPARTURE])
        rows = list(range(1, lib.store.count() + 1))
        incremental = lib.store.groups_by_row_ids(rows)
        update = lib.group(rebuild=True)
        assert update.full and update.changed == 0
        assert lib.store.groups_by_row_ids(rows) == incremental
        assert len(incremental) == len(rows)


def test_grouping_in_worker_processes_equals_grouping_in_one(
    settings: Settings, records_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(groups, "BATCH_ROWS", 150)  # about ten batches of whole days
    with Library(settings) as lib:
        lib.import_paths([records_path, DEPARTURE])
        rows = list(range(1, lib.store.count() + 1))
        single = update_groups(lib.store, rebuild=True, workers=1)
        one_process = lib.store.groups_by_row_ids(rows), lib.dupes(limit=50)
        several = update_groups(lib.store, rebuild=True, workers=2)
        assert (single.records, several.records) == (len(rows), len(rows))
        assert several.changed == 0  # the same ids for every row
        assert (lib.store.groups_by_row_ids(rows), lib.dupes(limit=50)) == one_process
        assert len({ids[2] for ids in one_process[0].values()}) < len(rows) - 300


def test_a_changed_record_moves_to_its_new_group_and_the_index_follows(
    settings: Settings, tmp_path: Path
) -> None:
    items = [json.loads(line) for line in DEPARTURE.read_text().splitlines()]
    with Library(settings) as lib:
        lib.import_paths([DEPARTURE])
        moved = items[0]  # one of the 46 "Artemis Departure Media Event"
        moved["data"][0]["description"] = "A different caption about a Mars rover test."
        changed = tmp_path / "changed.jsonl"
        changed.write_text(json.dumps(moved) + "\n")
        lib.import_paths([changed])
        result = lib.search(SearchRequest(collapse="caption", page_size=100, **ALL))
        sizes = sorted((h.group.size for h in result.hits if h.group), reverse=True)
        assert sizes[:2] == [45, 27] and len(result.hits) == 28
        assert lib.dupes(level="caption", limit=1).groups[0].size == 45


def test_collapse_on_the_shared_records(loaded: Library) -> None:
    plain = loaded.search(SearchRequest(q="apollo", page_size=1))
    result = loaded.search(SearchRequest(q="apollo", collapse="event", page_size=10))
    assert result.total_hits == plain.total_hits
    assert result.total_groups is not None and result.total_groups < result.total_hits
    cards = collapsed(loaded, "event", q="apollo", page_size=25)
    assert len(cards) == result.total_groups
    assert len({h.group.id for h in cards if h.group}) == len(cards)
