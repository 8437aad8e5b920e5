"""Atom feeds of searches (issue 18 req 5), read by a real feed reader library (feedparser),
from the real server on loopback; new records arrive by ``nivl import`` in a subprocess."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from nivl import Library, Settings
from nivl.web.app import create_app

from .conftest import OFFLINE
from .servers import running
from .test_cli import nivl

feedparser = pytest.importorskip("feedparser")

LATE = "S69-21783"  # "Recovery - Apollo 11", 24 July 1969: old, and imported last
HOSTILE = {
    "nasa_id": "feed <hostile> & 'id'",
    "media_type": "image",
    "title": "Apollo \x01control\x0b chars <b>bold</b> & ]]> \ufffe",
    "description": "A caption with <script>alert(1)</script> and \x02 in it",
    "date_created": "1999-01-01T00:00:00Z",
    "keywords": ["apollo", "x\x03y"],
}


def _item(data: dict[str, Any]) -> dict[str, Any]:
    return {"href": "https://images-assets.nasa.gov/image/x/collection.json", "data": [data]}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, shared_items: list[dict[str, Any]]
) -> Iterator[tuple[str, Path, Path]]:
    """A served home holding the shared records (but LATE) and one hostile record."""
    folder = tmp_path_factory.mktemp("feed")
    first = folder / "first.jsonl"
    with first.open("w") as out:
        for item in shared_items:
            if item["data"][0]["nasa_id"] != LATE:
                out.write(json.dumps(item) + "\n")
        out.write(json.dumps(_item(HOSTILE)) + "\n")
    late = folder / "late.jsonl"
    late.write_text(
        "".join(json.dumps(i) + "\n" for i in shared_items if i["data"][0]["nasa_id"] == LATE)
    )
    home = folder / "home"
    settings = Settings.from_env({}, home=str(home), upstream_url=OFFLINE)
    with Library(settings) as library:
        library.import_paths([first])
    with running(create_app(settings)) as url:
        yield url, late, home


def feed(url: str, params: dict[str, str] | str) -> Any:
    response = httpx.get(url + "/feed", params=params, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def nasa_id_of(entry: Any) -> str:
    return unquote(urlsplit(entry.link).path.removeprefix("/item/"))


def test_new_matching_record_tops_the_feed_after_an_incremental_import(
    served: tuple[str, Path, Path],
) -> None:
    url, late, home = served
    before = feed(url, {"q": "apollo"})
    assert before.entries and LATE not in {nasa_id_of(e) for e in before.entries}
    done = nivl("import", str(late), home=home)
    assert done.returncode == 0, done.stderr
    after = feed(url, {"q": "apollo"})
    top = after.entries[0]
    assert nasa_id_of(top) == LATE
    assert top.title == "Recovery - Apollo 11"
    # On top for being new in the mirror, not for its date: it is older than what follows.
    assert top.published.startswith("1969-07-24")
    assert top.published_parsed < after.entries[1].published_parsed
    assert top.updated_parsed >= after.entries[1].updated_parsed
    search = httpx.get(url + "/search", params={"q": "apollo", "sort": "added_desc"}, timeout=30)
    assert search.json()["collection"]["items"][0]["data"][0]["nasa_id"] == LATE  # same order
    assert [nasa_id_of(e) for e in after.entries[1:]] == [
        nasa_id_of(e) for e in before.entries[: len(after.entries) - 1]
    ]


def test_entries_link_the_item_page_with_summary_thumbnail_and_tag_ids(
    served: tuple[str, Path, Path],
) -> None:
    url, _, _ = served
    parsed = feed(url, {"nasa_id": "PIA13083"})
    assert parsed.feed.title == "nivl: nasa id: PIA13083"
    assert parsed.feed.id.startswith("tag:127.0.0.1,2026:feed?")
    assert {link.rel: link.href for link in parsed.feed.links} == {
        "self": f"{url}/feed?nasa_id=PIA13083",
        "alternate": f"{url}/?nasa_id=PIA13083",
    }
    (entry,) = parsed.entries
    assert entry.id == "tag:127.0.0.1,2026:item/PIA13083"
    assert entry.link == f"{url}/item/PIA13083"
    assert entry.title == "Thor Helmet"
    assert entry.summary.startswith("This heroic image from from NASA Wide-field Infrared")
    assert entry.author == "NASA/JPL-Caltech/UCLA"
    assert entry.published.startswith("2010-04-30")
    thumb = "https://images-assets.nasa.gov/image/PIA13083/PIA13083~thumb.jpg"
    assert [e.href for e in entry.enclosures] == [thumb]
    assert entry.enclosures[0].type == "image/jpeg"
    assert [t["url"] for t in entry.media_thumbnail] == [thumb]
    assert httpx.get(entry.link, timeout=30).status_code == 200  # the link is a real page


def test_the_feed_takes_the_search_filters(served: tuple[str, Path, Path]) -> None:
    url, _, _ = served
    parsed = feed(url, {"q": "mars", "center": "JPL", "media_type": "image", "page_size": "7"})
    assert 0 < len(parsed.entries) <= 7
    for entry in parsed.entries:
        page = httpx.get(url + "/search", params={"nasa_id": nasa_id_of(entry)}, timeout=30).json()
        data = page["collection"]["items"][0]["data"][0]
        assert data["center"] == "JPL" and data["media_type"] == "image"
    everything = feed(url, {})
    assert len(everything.entries) == 50  # no parameter needed: everything new
    ids = [nasa_id_of(e) for e in feed(url, {"q": "apollo", "collapse": "event"}).entries]
    assert len(ids) == len(set(ids))


def test_no_results_is_a_valid_empty_feed(served: tuple[str, Path, Path]) -> None:
    url, _, _ = served
    parsed = feed(url, {"q": "zzqxjvw nonexistentword"})
    assert parsed.entries == []
    assert parsed.feed.title.startswith("nivl: zzqxjvw")
    assert parsed.feed.updated_parsed is not None


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"page": "0"}, "page"),
        ({"page_size": "100000"}, "page_size"),
        ({"year_start": "abc"}, "year_start"),
        ({"media_type": "photo"}, "media_type"),
        ({"sort": "sideways"}, "sort"),
        ({"collapse": "all"}, "collapse"),
        ({"q": "a\x00b"}, "q"),
        ({"q": "apollo " * 3000}, "q"),  # 21,000 characters: past the query limit
    ],
)
def test_bad_parameters_get_400_json_like_search(
    served: tuple[str, Path, Path], params: dict[str, str], named: str
) -> None:
    url, _, _ = served
    response = httpx.get(url + "/feed", params=params, timeout=30)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert named in response.json()["reason"]
    assert httpx.get(url + "/search", params=params, timeout=30).status_code == 400


def test_hostile_text_and_parameters_still_make_a_well_formed_feed(
    served: tuple[str, Path, Path],
) -> None:
    url, _, _ = served
    parsed = feed(url, {"nasa_id": HOSTILE["nasa_id"]})
    (entry,) = parsed.entries
    # as the pages show a title: tags dropped; and no control characters (XML has none)
    assert entry.title == "Apollo control chars bold & ]]>"
    assert "<script>" not in entry.summary  # the caption's markup is text, then dropped
    assert nasa_id_of(entry) == HOSTILE["nasa_id"]
    assert re.fullmatch(r"tag:127\.0\.0\.1,2026:item/[\w%.~-]+", entry.id)
    for q in ('<feed> & "quotes" ]]>', "apollo\u202e\u0301", "x" * 9_000):
        hostile = feed(url, {"q": q, "title": "</title>"})
        assert hostile.feed.title.startswith("nivl: ")
