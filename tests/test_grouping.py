"""grouping.py: pure functions over records, checked on real captions and labelled pairs."""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nivl import grouping
from nivl.grouping import (
    LEVELS,
    Thresholds,
    _similar_pairs,
    blocking_keys,
    caption_key,
    group_id,
    group_records,
    key_hash,
    normalise_text,
    photo_number,
    representative,
    score_pairs,
    strip_stamp,
)
from nivl.records import Record, parse_item

FIXTURES = Path(__file__).parent / "fixtures"
DEPARTURE = FIXTURES / "departure.jsonl"
PAIRS = FIXTURES / "grouping_pairs.tsv"

#: Floors a little under what bench/grouping_quality.py measured with the default
#: thresholds, so a change that makes grouping clearly worse fails here.
F1_FLOORS = {"caption": 0.95, "near": 0.75, "event": 0.88}


def departure_items() -> list[dict]:
    return [json.loads(line) for line in DEPARTURE.read_text().splitlines() if line.strip()]


def departure_records() -> list[Record]:
    return [parse_item(item) for item in departure_items()]


def labelled_pairs() -> list[tuple[str, str, str]]:
    lines = [line for line in PAIRS.read_text().splitlines() if not line.startswith("#")]
    return [tuple(line.split("\t")[:3]) for line in lines[1:]]  # type: ignore[misc]


def record(nasa_id: str, description: str = "", **fields: object) -> Record:
    return Record(nasa_id=nasa_id, media_type="image", raw="", description=description, **fields)


@pytest.fixture(scope="module")
def shared_records(shared_items: list[dict]) -> list[Record]:
    return [parse_item(item) for item in shared_items]


@pytest.fixture(scope="module")
def shared_grouping(shared_records: list[Record]):  # type: ignore[no-untyped-def]
    return group_records(shared_records)


# --- text -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("JSC2000-E-29123 (27 November 2000) --- Astronaut Michael", "Astronaut Michael"),
        ("iss054e022060 (Jan. 13, 2018) --- Flight Engineers", "Flight Engineers"),
        ("ISS047e109559 (05/11/2016) --- The SpaceX Dragon", "The SpaceX Dragon"),
        ("ISS027-E-015441 (22 April 2011) --- Russian cosmonaut", "Russian cosmonaut"),
        ("CAPE CANAVERAL, Fla. -- Workers", "CAPE CANAVERAL, Fla. -- Workers"),
        ("STS-38 Pilot Frank L. Culbertson waves", "STS-38 Pilot Frank L. Culbertson waves"),
    ],
)
def test_strip_stamp_removes_only_a_leading_id_and_date(text: str, expected: str) -> None:
    assert strip_stamp(text) == expected


def test_normalised_captions_ignore_case_punctuation_spacing_and_stamps() -> None:
    a = record("a", "JSC2000-E-29123 (27 November 2000) --- The crew’s  T-38, at Ellington.")
    b = record("b", "the crews t 38 at ellington")
    assert caption_key(a) == caption_key(b) == "the crews t 38 at ellington"
    assert normalise_text(" Artemis  Departure Media Event") == "artemis departure media event"
    assert caption_key(record("c", "")) == ""


def test_photo_numbers_are_read_from_ids_with_a_series() -> None:
    assert photo_number(record("JSC2000-E-29120")) == ("JSC2000-E-", 29120)
    assert photo_number(record("iss054e022060")) == ("ISS054E", 22060)
    assert photo_number(record("0002272")) is None  # no series: not a run
    assert photo_number(record("PIA")) is None


#: What ``photo_number`` matched before it was written out by hand (8 µs an id).
PHOTO_NUMBER_PATTERN = re.compile(r"^(.*[A-Za-z].*?)(\d{3,})$")


@settings(max_examples=500, deadline=None)
@given(
    st.text(
        st.sampled_from(list("aZ-_ .\n\t0123456789") + ["\u0663", "\uff15", "\u00e9", "\u00b2"]),
        max_size=14,
    )
)
def test_photo_numbers_are_what_the_pattern_matched(nasa_id: str) -> None:
    """Arabic-Indic and fullwidth digits are digits, superscripts and newlines are not."""
    match = PHOTO_NUMBER_PATTERN.match(nasa_id.strip())
    expected = (match[1].upper(), int(match[2])) if match else None
    assert photo_number(record(nasa_id)) == expected


def test_group_ids_are_positive_63_bit_and_differ_by_level() -> None:
    ids = {group_id(level, "JSC2000-E-29120") for level in LEVELS}
    assert len(ids) == 3
    assert all(0 < i < 2**63 for i in ids)


def test_representative_prefers_longest_description_then_keywords_then_earliest_id() -> None:
    short = record("a", "short")
    long_ = record("z", "a much longer description")
    tagged = record("y", "a much longer description", keywords=("ISS",))
    assert representative([short, long_]) is long_
    assert representative([short, long_, tagged]) is tagged
    assert representative([record("b", "same"), record("a", "same")]).nasa_id == "a"


# --- groups on the departure page ---------------------------------------------------


def test_departure_page_has_27_captions_and_about_15_events() -> None:
    grouping = group_records(departure_records())
    counts = {
        level: len({getattr(a, level) for a in grouping.assignments.values()}) for level in LEVELS
    }
    assert counts["caption"] == 27
    assert 15 <= counts["event"] <= 16  # the two Expedition 42 photos are a day apart
    assert counts["caption"] >= counts["near"] >= counts["event"]


def test_departure_events_match_the_labels_without_merging_different_ones() -> None:
    items = departure_items()
    grouping = group_records([parse_item(item) for item in items])
    by_event: dict[int, set[str]] = defaultdict(set)
    for item in items:
        nasa_id = item["data"][0]["nasa_id"]
        by_event[grouping.assignments[nasa_id].event].add(item["x-label"]["event"])
    assert all(len(labels) == 1 for labels in by_event.values()), by_event  # no false merge
    wanted = {item["x-label"]["event"] for item in items}
    assert len(by_event) - len(wanted) <= 1  # at most the Expedition 42 split


def test_groups_nest_caption_in_near_in_event(shared_grouping) -> None:  # type: ignore[no-untyped-def]
    near_of_caption: dict[int, set[int]] = defaultdict(set)
    event_of_near: dict[int, set[int]] = defaultdict(set)
    for a in shared_grouping.assignments.values():
        near_of_caption[a.caption].add(a.near)
        event_of_near[a.near].add(a.event)
    assert all(len(v) == 1 for v in near_of_caption.values())
    assert all(len(v) == 1 for v in event_of_near.values())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(list(range(100))))
def test_the_same_records_in_any_order_get_the_same_ids(order: list[int]) -> None:
    records = departure_records()
    assert group_records([records[i] for i in order]).assignments == (
        group_records(records).assignments
    )


def test_adding_a_record_renumbers_only_the_group_it_joins() -> None:
    records = departure_records()
    before = group_records(records).assignments
    newcomer = replace(records[88], nasa_id="JSC2000-E-29122")  # joins the STS-97 run
    stranger = record("zz-unrelated", "A photo of a galaxy far away", date="1999-01-01")
    after = group_records([*records, newcomer, stranger]).assignments
    assert after["JSC2000-E-29123"].event == after["JSC2000-E-29122"].event
    changed = {n for n in before if before[n] != after[n]}
    assert changed <= {r.nasa_id for r in records if r.nasa_id.startswith("JSC2000-E-")}
    assert after["zz-unrelated"].event not in {a.event for a in before.values()}


def test_a_photo_number_run_on_one_day_is_one_event() -> None:
    day = {"date": "2000-11-27", "center": "JSC"}
    run = [
        record("JSC2000-E-29120", "Astronaut Noriega climbs into a jet.", **day),
        record("JSC2000-E-29131", "Commander Jett in the cockpit.", **day),
        record("JSC2000-E-29126", "Unrelated words entirely here.", **day),
    ]
    other_day = record("JSC2000-E-29121", "Tanner checks the jet.", date="2000-11-28")
    far = record("JSC2000-E-29180", "Far away in the roll.", **day)
    grouping = group_records([*run, other_day, far])
    events = {n: a.event for n, a in grouping.assignments.items()}
    assert len({events[r.nasa_id] for r in run}) == 1
    assert events["JSC2000-E-29121"] != events["JSC2000-E-29120"]
    assert events["JSC2000-E-29180"] != events["JSC2000-E-29120"]


def test_same_day_and_center_with_unrelated_text_stay_apart() -> None:
    day = {"date": "2017-12-08", "center": "GSFC"}
    a = record("GSFC-a", "Hubble sees a spiral galaxy in the constellation Lynx.", **day)
    b = record("GSFC-b", "A solar flare erupts from the sun, seen by SDO.", **day)
    grouping = group_records([a, b])
    assert grouping.assignments["GSFC-a"].event != grouping.assignments["GSFC-b"].event


def test_records_without_text_stay_alone() -> None:
    grouping = group_records([record("a", date="2020-01-01"), record("b", date="2020-01-01")])
    assert grouping.assignments["a"] != grouping.assignments["b"]


# --- quality on labelled pairs -------------------------------------------------------


def test_labelled_pairs_cover_positives_and_hard_negatives(shared_records: list[Record]) -> None:
    pairs = labelled_pairs()
    assert len(pairs) >= 200
    known = {r.nasa_id for r in shared_records}
    assert all(a in known and b in known for a, b, _ in pairs)
    labels = [label for *_, label in pairs]
    assert {"caption", "near", "event", "none"} <= set(labels)
    assert labels.count("none") >= 50


def test_f1_per_level_stays_above_the_measured_floor(shared_grouping) -> None:  # type: ignore[no-untyped-def]
    scores = {s.level: s for s in score_pairs(shared_grouping.assignments, labelled_pairs())}
    for level, floor in F1_FLOORS.items():
        assert scores[level].f1 >= floor, scores[level]


def test_score_pairs_counts_nested_levels() -> None:
    grouping = group_records(
        [record("a", "same text here"), record("b", "same text here"), record("c", "other")]
    )
    pairs = [("a", "b", "caption"), ("a", "c", "event"), ("b", "c", "none")]
    scores = {s.level: s for s in score_pairs(grouping.assignments, pairs)}
    assert (scores["caption"].true_pos, scores["caption"].true_neg) == (1, 2)
    assert (scores["event"].true_pos, scores["event"].false_neg) == (1, 1)
    assert scores["event"].recall == 0.5 and scores["event"].precision == 1.0


# --- blocking keys: what incremental grouping relies on ------------------------------


def test_every_event_is_connected_through_shared_blocking_keys(
    shared_records: list[Record],
    shared_grouping,  # type: ignore[no-untyped-def]
) -> None:
    keys = {r.nasa_id: blocking_keys(r) for r in shared_records}
    members: dict[int, list[str]] = defaultdict(list)
    for nasa_id, assignment in shared_grouping.assignments.items():
        members[assignment.event].append(nasa_id)
    for ids in members.values():
        if len(ids) < 2:
            continue
        reached, frontier = {ids[0]}, [ids[0]]
        while frontier:
            current = frontier.pop()
            for other in ids:
                if other not in reached and keys[current] & keys[other]:
                    reached.add(other)
                    frontier.append(other)
        assert reached == set(ids)


def test_thresholds_are_parameters() -> None:
    records = departure_records()
    loose = group_records(records, Thresholds(near=0.2, event=0.05))
    strict = group_records(records, Thresholds(near=0.95, event=0.9, run_gap=0))
    count = {
        name: len({a.event for a in g.assignments.values()})
        for name, g in (("loose", loose), ("strict", strict))
    }
    assert count["loose"] <= count["strict"]
    assert list(itertools.islice(strict.groups, 1))  # the big caption groups remain


def test_near_identical_captions_on_different_days_are_different_events() -> None:
    text = (
        "The Orbital ATK Antares rocket, with the Cygnus spacecraft onboard, is seen on "
        "launch Pad-0A at NASA's Wallops Flight Facility in Virginia, {day}. Orbital ATK's "
        "eighth contracted cargo resupply mission with NASA to the International Space Station."
    )
    a = record("NHQ-a", text.format(day="Friday, Nov. 10, 2017"), date="2017-11-10")
    b = record("NHQ-b", text.format(day="Saturday, Nov. 11, 2017"), date="2017-11-11")
    c = record(
        "NHQ-c", text.format(day="Friday, Nov. 10, 2017") + " Credit: NASA", date="2017-11-10"
    )
    ids = group_records([a, b, c]).assignments
    assert ids["NHQ-a"].near == ids["NHQ-c"].near
    assert ids["NHQ-a"].event != ids["NHQ-b"].event


@settings(max_examples=200, deadline=None)
@given(
    sets=st.lists(
        st.tuples(st.sampled_from(["a", "b", None]), st.sets(st.integers(1, 9), max_size=4)),
        max_size=12,
    ),
    threshold=st.sampled_from([0.3, 0.5, 0.8]),
)
def test_similar_pairs_joins_exactly_the_pairs_reaching_the_threshold(
    sets: list[tuple[str | None, set[int]]], threshold: float
) -> None:
    """Small values make equal sums of different sets common ({1, 4} and {2, 3}): the old
    equal-set digest was such a sum, so it joined them, differently in different batches."""
    rows = np.array([i for i, (_, values) in enumerate(sets) for _ in values], np.int64)
    values = np.array([v for _, values in sets for v in sorted(values)], np.uint64)
    found = _similar_pairs(rows, values, [bucket for bucket, _ in sets], threshold)
    for a, b in found.T.tolist():
        (bucket_a, set_a), (bucket_b, set_b) = sets[a], sets[b]
        assert bucket_a == bucket_b is not None
        assert len(set_a & set_b) >= threshold * len(set_a | set_b) > 0
    wanted = [
        (a, b)
        for a, b in itertools.combinations(range(len(sets)), 2)
        if sets[a][0] == sets[b][0] is not None
        and sets[a][1]
        and len(sets[a][1] & sets[b][1]) >= threshold * len(sets[a][1] | sets[b][1])
    ]
    assert components(len(sets), found.T.tolist()) == components(len(sets), wanted)


@settings(max_examples=200, deadline=None)
@given(
    sets=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", None]),
            st.lists(st.integers(1, 12), max_size=6),  # repeats within a set, and values
        ),  # that only one set holds: they count in its size and pair it with none
        max_size=12,
    ),
    threshold=st.sampled_from([0.3, 0.5, 0.8, 1.0]),
    arrow=st.booleans(),
)
def test_similar_pairs_counts_a_value_repeated_in_a_set_once(
    sets: list[tuple[str | None, list[int]]], threshold: float, arrow: bool
) -> None:
    """Either way of numbering the values (pyarrow's hashing for many, numpy's sort)."""
    rows = np.array([i for i, (_, values) in enumerate(sets) for _ in values], np.int64)
    values = np.array([v for _, values in sets for v in values], np.uint64)
    with _values_through(arrow):
        found = _similar_pairs(rows, values, [bucket for bucket, _ in sets], threshold)
    distinct = [set(values) for _, values in sets]
    wanted = [
        (a, b)
        for a, b in itertools.combinations(range(len(sets)), 2)
        if sets[a][0] == sets[b][0] is not None
        and distinct[a]
        and len(distinct[a] & distinct[b]) >= threshold * len(distinct[a] | distinct[b])
    ]
    assert components(len(sets), found.T.tolist()) == components(len(sets), wanted)


@contextmanager
def _values_through(arrow: bool) -> Iterator[None]:
    """Number ``_similar_pairs``' values with pyarrow (however few) or with numpy."""
    saved = grouping.ARROW_VALUES
    grouping.ARROW_VALUES = 0 if arrow else 2**62
    try:
        yield
    finally:
        grouping.ARROW_VALUES = saved


def test_words_split_by_pyarrow_or_by_python_give_the_same_features(
    shared_records: list[Record],
) -> None:
    """Real captions (accents, stamps, long transcripts), a chunk split each way."""
    records = [*shared_records, *departure_records()]
    records.append(record("long", "word " * (grouping.MAX_CHARS // 3), date="2001-01-01"))
    each = []
    for arrow in (True, False):
        saved = grouping.ARROW_RECORDS
        grouping.ARROW_RECORDS = 1 if arrow else 2**62
        try:
            each.append(grouping.features(records))
        finally:
            grouping.ARROW_RECORDS = saved
    by_arrow, by_python = each
    assert by_arrow.captions == by_python.captions
    assert by_arrow.captions == [
        key_hash("caption", caption_key(r)) if caption_key(r) else 0 for r in records
    ]
    for name in ("shingle_rows", "shingles", "word_rows", "words"):
        assert getattr(by_arrow, name).tolist() == getattr(by_python, name).tolist(), name
    assert len(by_arrow.words) > 0


def components(size: int, pairs: list[tuple[int, int]] | list[list[int]]) -> set[frozenset[int]]:
    parent = list(range(size))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in pairs:
        parent[root(a)] = root(b)
    members: dict[int, set[int]] = defaultdict(set)
    for i in range(size):
        members[root(i)].add(i)
    return {frozenset(m) for m in members.values()}
