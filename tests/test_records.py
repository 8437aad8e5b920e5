"""records.py: real upstream items → Records, and clear rejections."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nivl.errors import RecordRejected
from nivl.records import normalise_list, parse_date, parse_item


def test_every_shared_record_parses_and_keeps_its_raw_json(shared_items: list[dict]) -> None:
    records = [parse_item(item) for item in shared_items]
    assert len({r.nasa_id for r in records}) == len(shared_items)
    for item, record in zip(shared_items, records, strict=True):
        assert json.loads(record.raw) == item
        assert record.nasa_id == item["data"][0]["nasa_id"]  # never stripped


def test_nasa_ids_with_spaces_and_trailing_spaces_are_kept(shared_items: list[dict]) -> None:
    odd = [
        i["data"][0]["nasa_id"]
        for i in shared_items
        if i["data"][0]["nasa_id"] != i["data"][0]["nasa_id"].strip()
    ]
    assert odd, "the shared data is known to hold ids with outer whitespace"
    for nasa_id in odd:
        item = next(i for i in shared_items if i["data"][0]["nasa_id"] == nasa_id)
        assert parse_item(item).nasa_id == nasa_id


def test_keywords_joined_in_one_string_are_split(shared_items: list[dict]) -> None:
    joined = [
        i
        for i in shared_items
        if len(i["data"][0].get("keywords") or []) == 1 and "," in i["data"][0]["keywords"][0]
    ]
    assert joined
    for item in joined:
        record = parse_item(item)
        assert len(record.keywords) > 1
        assert all("," not in k for k in record.keywords)


def test_missing_keywords_album_as_string_and_items_without_links(
    shared_items: list[dict],
) -> None:
    no_keywords = next(i for i in shared_items if "keywords" not in i["data"][0])
    assert parse_item(no_keywords).keywords == ()
    album_str = next(i for i in shared_items if isinstance(i["data"][0].get("album"), str))
    assert parse_item(album_str).album == (album_str["data"][0]["album"],)
    audio = next(i for i in shared_items if "links" not in i)
    assert parse_item(audio).preview_href is None
    captions_only = next(
        i for i in shared_items if [link["rel"] for link in i.get("links", [])] == ["captions"]
    )
    record = parse_item(captions_only)
    assert record.captions_href and record.preview_href is None


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ([], "not an object"),
        ({"href": "x"}, "no 'data'"),
        ({"data": [{"media_type": "image"}]}, "no 'nasa_id'"),
        ({"data": [{"nasa_id": "   ", "media_type": "image"}]}, "no 'nasa_id'"),
        ({"data": [{"nasa_id": "a"}]}, "media_type missing"),
        ({"data": [{"nasa_id": "a", "media_type": "hologram"}]}, "'hologram'"),
    ],
)
def test_bad_items_are_rejected_with_a_reason(item: object, reason: str) -> None:
    with pytest.raises(RecordRejected, match=reason):
        parse_item(item)


def test_dates() -> None:
    assert parse_date("1969-07-20T00:00:00Z")[:2] == (1969, "1969-07-20")
    assert parse_date("2001-02")[:2] == (2001, "2001-02-01")
    assert parse_date("not a date") == (None, None, None)
    assert parse_date("") == (None, None, None)


def test_normalise_list() -> None:
    assert normalise_list(None) == ()
    assert normalise_list(["Earth; Humanity"]) == ("Earth", "Humanity")
    assert normalise_list(["a", "b", "a"]) == ("a", "b")
    assert normalise_list("Summer Series", split=False) == ("Summer Series",)
    assert normalise_list([1, None, " x "]) == ("x",)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "data",
                        "nasa_id",
                        "media_type",
                        "keywords",
                        "links",
                        "href",
                        "date_created",
                        "title",
                    ]
                )
                | st.text(),
                children,
                max_size=5,
            )
        ),
        max_leaves=20,
    )
)
def test_any_json_gives_a_record_or_a_clear_rejection(value: object) -> None:
    try:
        record = parse_item(value)
    except RecordRejected as exc:
        assert str(exc)
    else:
        assert record.nasa_id.strip() and record.media_type in ("image", "video", "audio")


def test_the_links_are_the_first_of_each_rel_with_a_string_href() -> None:
    """preview and captions come from one pass: the first of each whose href is text."""
    links = [
        "not a link",
        {"rel": "captions"},
        {"rel": "preview", "href": 3},
        {"rel": "captions", "href": "c1"},
        {"rel": "preview", "href": "p1"},
        {"rel": "preview", "href": "p2"},
        {"rel": "captions", "href": "c2"},
    ]
    item = {"data": [{"nasa_id": "x", "media_type": "image"}], "links": links}
    record = parse_item(item)
    assert (record.preview_href, record.captions_href) == ("p1", "c1")
