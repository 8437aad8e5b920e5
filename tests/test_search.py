"""Search over the shared records: every parameter, sorts, paging, hostile text."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nivl import Library, parse_request
from nivl.errors import InvalidParameter, MissingParameters
from nivl.query import text_terms


def _data(hit) -> dict:
    return json.loads(hit.raw)["data"][0]


def _all(loaded: Library, **params: str) -> list[dict]:
    """Every hit, walking pages of 500."""
    found: list[dict] = []
    page = 1
    while True:
        result = loaded.search(parse_request({**params, "page": str(page), "page_size": "500"}))
        found += [_data(h) for h in result.hits]
        if not result.has_next:
            break
        page += 1
    assert len(found) == result.total_hits
    return found


def test_filters_match_the_source_data(loaded: Library, shared_items: list[dict]) -> None:
    source = [i["data"][0] for i in shared_items]
    for media in ("image", "video", "audio"):
        got = _all(loaded, media_type=media)
        assert len(got) == sum(1 for d in source if d["media_type"] == media)
    videos_and_audio = _all(loaded, media_type="video,audio")
    assert {d["media_type"] for d in videos_and_audio} == {"video", "audio"}
    jsc = _all(loaded, center="jsc")
    assert len(jsc) == sum(1 for d in source if d.get("center") == "JSC")
    years = _all(loaded, year_start="1969", year_end="1972")
    assert len(years) == sum(1 for d in source if 1969 <= int(d["date_created"][:4]) <= 1972)
    assert len(_all(loaded, year_start="2023")) == sum(
        1 for d in source if int(d["date_created"][:4]) >= 2023
    )


def test_field_parameters_search_their_field(loaded: Library) -> None:
    for field, word in [
        ("title", "apollo"),
        ("description", "nebula"),
        ("photographer", "bill"),
        ("location", "greenbelt"),
        ("secondary_creator", "nasa"),
        ("description_508", "astronaut"),
    ]:
        got = _all(loaded, **{field: word})
        assert got, field
        assert all(word in (d.get(field) or "").lower() for d in got), field


def test_keywords_are_a_comma_list_that_must_all_match(loaded: Library) -> None:
    both = _all(loaded, keywords="Apollo 11,Moon")
    assert both
    for d in both:
        joined = " ".join(d.get("keywords") or []).lower()
        assert "apollo 11" in joined and "moon" in joined
    assert len(both) < len(_all(loaded, keywords="Moon"))


def test_nasa_id_exact_and_in_q(loaded: Library, shared_items: list[dict]) -> None:
    spaced = next(
        i["data"][0]["nasa_id"] for i in shared_items if " " in i["data"][0]["nasa_id"].strip()
    )
    assert [d["nasa_id"] for d in _all(loaded, nasa_id=spaced)] == [spaced]
    first = shared_items[0]["data"][0]["nasa_id"]
    assert first in [d["nasa_id"] for d in _all(loaded, q=first)]


def test_known_item_search_by_exact_title(loaded: Library, shared_items: list[dict]) -> None:
    from collections import Counter

    titles = Counter(i["data"][0]["title"] for i in shared_items)
    sample = [i for i in shared_items if titles[i["data"][0]["title"]] <= 3][::10]
    assert len(sample) > 50
    misses = []
    for item in sample:
        data = item["data"][0]
        result = loaded.search(parse_request({"q": data["title"], "page_size": "10"}))
        if data["nasa_id"] not in {_data(h)["nasa_id"] for h in result.hits}:
            misses.append(data["title"])
    assert len(misses) <= len(sample) // 10, misses


def test_sort_by_date(loaded: Library) -> None:
    newest = _all(loaded, q="moon", sort="date_desc")
    dates = [d["date_created"] for d in newest]
    assert dates == sorted(dates, reverse=True)
    oldest = _all(loaded, q="moon", sort="date_asc")
    assert [d["date_created"] for d in oldest] == sorted(dates)


def test_paging_walks_the_hit_set_without_repeats_or_gaps(loaded: Library) -> None:
    everything = [d["nasa_id"] for d in _all(loaded, q="space", sort="date_asc")]
    walked = []
    page = 1
    while True:
        result = loaded.search(
            parse_request({"q": "space", "sort": "date_asc", "page": str(page), "page_size": "7"})
        )
        walked += [_data(h)["nasa_id"] for h in result.hits]
        if not result.has_next:
            break
        page += 1
    assert len(walked) == len(set(walked)) == len(everything)
    assert set(walked) == set(everything)


def test_facets_count_the_whole_hit_set(loaded: Library) -> None:
    result = loaded.search(
        parse_request({"q": "apollo", "page_size": "1", "facets": "media_type,center,year"})
    )
    assert sum(result.facets["media_type"].values()) == result.total_hits
    hits = _all(loaded, q="apollo")
    assert result.facets["center"]["JSC"] == sum(1 for d in hits if d.get("center") == "JSC")
    years = [int(y) for y in result.facets["year"]]
    assert years == sorted(years)


def test_highlights_are_separate_and_escaped(loaded: Library) -> None:
    result = loaded.search(parse_request({"q": "moon", "highlight": "true", "page_size": "5"}))
    assert any("<b>" in (h.highlight or {}).get("title", "") for h in result.hits)
    assert all("<b>" not in h.raw for h in result.hits)


@pytest.mark.parametrize(
    "text",
    [
        '"unbalanced',
        "a AND",
        "title:moon",
        "moon*",
        "(((",
        "NOT",
        "'; DROP TABLE records; --",
        "火星",
        "\u202ealert",
        "a" * 900,
        "OR OR AND",
        "[1 TO 2]",
        "\\",
        "~2 ^3",
    ],
)
def test_hostile_query_text_never_fails(loaded: Library, text: str) -> None:
    result = loaded.search(parse_request({"q": text}))
    assert result.total_hits >= 0


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(min_size=1, max_size=200))
def test_any_unicode_query_searches(loaded: Library, text: str) -> None:
    try:
        request = parse_request({"q": text})
    except MissingParameters:
        assert not text.strip()
        return
    except InvalidParameter:
        assert "\x00" in text
        return
    loaded.search(request)


def test_quoted_phrases_are_phrases(loaded: Library) -> None:
    assert text_terms('"apollo 11" launch') == ('"apollo 11"', "launch")
    phrase = _all(loaded, q='"launch pad"')
    loose = _all(loaded, q="launch pad")
    assert 0 < len(phrase) <= len(loose)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"q": "x", "page": "0"}, "page"),
        ({"q": "x", "page_size": "-1"}, "page_size"),
        ({"q": "x", "page_size": "100000"}, "page_size"),
        ({"q": "x", "year_start": "abc"}, "year_start"),
        ({"media_type": "hologram"}, "media_type"),
        ({"q": "x", "page": "1e9"}, "page"),
        ({"q": "x", "sort": "random"}, "sort"),
        ({"q": "x", "facets": "colour"}, "facets"),
        ({"q": "x" * 10_001}, "q"),  # past max_query_length
        ({"q": "x", "year_start": "2000", "year_end": "1990"}, "year_start"),
        ({"q": "x", "page": "5000", "page_size": "100"}, "page"),
    ],
)
def test_invalid_values_name_their_parameter(params: dict, parameter: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_request(params)
    assert info.value.parameter == parameter


def test_no_parameter_at_all_is_an_error() -> None:
    with pytest.raises(MissingParameters):
        parse_request({})
    with pytest.raises(MissingParameters):
        parse_request({"page": "2", "q": "  "})
