"""Result pages over HTTP: nouns that fit the media, keyword facets by case, past the end.

The real app on loopback (the shared records, and a small home built here for groups of
audio files and of mixed media, which the shared records do not have).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from nivl import Library, Settings
from nivl.query import SearchRequest
from nivl.records import parse_item
from nivl.search_index import merge_case_variants
from nivl.web.app import create_app
from nivl.web.ui import media_noun

from .servers import running
from .test_ui import Page


def heading(html: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert found is not None
    return " ".join(found.group(1).split())


def members_heading(html: str) -> str:
    found = re.search(r'<h2 id="members-h">(.*?)<span', html, re.S)
    assert found is not None, "the item page lists no other members"
    return " ".join(found.group(1).split())


def every_hit(library: Library, **params: Any) -> list[dict[str, Any]]:
    """Every hit's ``data`` object (keywords split as a record's), uncollapsed, page by page."""
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        result = library.search(SearchRequest(page=page, page_size=1000, **params))
        for hit in result.hits:
            record = parse_item(orjson.loads(hit.raw_json))  # keywords as nivl reads them
            out.append({**orjson.loads(hit.raw_json)["data"][0], "keywords": record.keywords})
        if len(out) >= result.total_hits or not result.hits:
            return out
        page += 1


# --- nouns (17.27) -----------------------------------------------------------------


def test_media_noun_names_one_kind_or_items() -> None:
    assert media_noun({"image": 3}, 3) == "photos"
    assert media_noun({"video": 2}, 2) == "videos"
    assert media_noun({"audio": 1}, 1) == "audio file"
    assert media_noun({"image": 1, "video": 1}, 2) == "items"
    assert media_noun({"image": 0, "video": 1}, 1) == "video"
    assert media_noun({}, 0) == "items"


def video_group(loaded: Library) -> tuple[int, int, list[str]]:
    """An event group of videos only: (id, size, member nasa_ids)."""
    found = loaded.search(SearchRequest(media_type=("video",), collapse="event", page_size=1000))
    for hit in found.hits:
        if hit.group is None or hit.group.size < 2:
            continue
        members = every_hit(loaded, group_level="event", group_id=hit.group.id)
        if {m["media_type"] for m in members} == {"video"}:
            return hit.group.id, hit.group.size, [m["nasa_id"] for m in members]
    raise AssertionError("the shared records hold no event group of videos")


def test_a_group_of_videos_is_called_videos(http: httpx.Client, loaded: Library) -> None:
    group_id, size, members = video_group(loaded)
    html = http.get(f"/group/event/{group_id}").text
    assert heading(html) == f"{size} videos of one event"
    assert "photos" not in html.lower().replace("photographer", "")
    item = http.get(f"/item/{members[0]}").text
    others = "video" if size == 2 else "videos"
    assert members_heading(item) == f"Other {others} of this event"


def test_a_group_of_photos_is_still_photos(http: httpx.Client) -> None:
    collection = http.get(
        "/search", params={"q": "evening with the stars", "collapse": "event", "page_size": "5"}
    ).json()["collection"]
    group = max((i["group"] for i in collection["items"]), key=lambda g: g["size"])
    html = http.get(f"/group/event/{group['id']}").text
    assert heading(html) == f"{group['size']} photos of one event"


@pytest.fixture(scope="module")
def mixed_url(tmp_path_factory: pytest.TempPathFactory, shared_items: list[dict]) -> Iterator[str]:
    """Two audio files sharing a caption (and a day and center: one event), and a photo
    and a video sharing another."""
    audio = [i for i in shared_items if i["data"][0]["media_type"] == "audio"][:2]
    photo = next(i for i in shared_items if i["data"][0]["media_type"] == "image")
    video = next(i for i in shared_items if i["data"][0]["media_type"] == "video")
    items = []
    for n, (item, caption) in enumerate(
        [
            (audio[0], "A talk about the Moon and the people who went there, recorded in Houston."),
            (audio[1], "A talk about the Moon and the people who went there, recorded in Houston."),
            (photo, "Engineers test the heat shield of a capsule in a vacuum chamber, in Ohio."),
            (video, "Engineers test the heat shield of a capsule in a vacuum chamber, in Ohio."),
        ]
    ):
        copy = json.loads(json.dumps(item))
        copy["data"][0].update(
            nasa_id=f"nouns-{n}",
            description=caption,
            date_created=f"2020-01-0{1 + n // 2}T00:00:00Z",  # a pair: one day
            center="JSC",
        )
        items.append(copy)
    home = tmp_path_factory.mktemp("nouns") / "home"
    source = home.parent / "nouns.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in items))
    settings = Settings.from_env({}, home=str(home))
    with Library(settings) as library:
        library.import_paths([source])
    with running(create_app(settings)) as url:
        yield url


@pytest.mark.parametrize(
    ("nasa_id", "noun", "other"),
    [("nouns-0", "audio files", "audio file"), ("nouns-2", "items", "video")],
)
def test_groups_of_audio_and_of_mixed_media(
    mixed_url: str, nasa_id: str, noun: str, other: str
) -> None:
    with httpx.Client(base_url=mixed_url, timeout=30) as client:
        document = client.get("/search", params={"nasa_id": nasa_id, "collapse": "caption"}).json()
        group = document["collection"]["items"][0]["group"]
        assert group["size"] == 2
        html = client.get(f"/group/caption/{group['id']}").text
        assert heading(html) == f"2 {noun} with the same caption"
        assert f"These {noun} share one caption" in html
        item = client.get(f"/item/{nasa_id}").text
    assert members_heading(item) == f"Other {other} of this event"  # its event: the pair


# --- keyword facets by case (17.28) ----------------------------------------------


def keyword_facet(html: str) -> dict[str, int]:
    """The keyword facet's values and counts as the page shows them."""
    section = html.split('id="f-keywords"', 1)[1].split("</section>", 1)[0]
    found = re.findall(r'data-facet="keywords">(.*?) <span class="n">([\d,]+)</span>', section)
    return {Page(value).text[0] if value else value: int(n.replace(",", "")) for value, n in found}


@pytest.mark.parametrize("q", ["apollo", "podcast", "moon"])
def test_keyword_facets_merge_case_variants(http: httpx.Client, loaded: Library, q: str) -> None:
    facet = keyword_facet(  # lexical, as every_hit counts: the facets' arithmetic
        http.get("/", params={"q": q, "collapse": "none", "mode": "lexical"}).text
    )
    folded = [value.casefold() for value in facet]
    assert len(folded) == len(set(folded)), facet
    hits = every_hit(loaded, q=q)
    for value, count in facet.items():
        variants: dict[str, int] = {}
        holding = 0
        for data in hits:
            mine = [k for k in (data.get("keywords") or []) if k.casefold() == value.casefold()]
            holding += bool(mine)
            for k in set(mine):
                variants[k] = variants.get(k, 0) + 1
        assert count == holding, (value, variants)
        assert variants[value] == max(variants.values())  # the most common spelling


def test_merged_keywords_show_the_most_common_spelling() -> None:
    counts = {"podcast": 43, "Podcast": 26, "ASTRONAUTS": 1, "astronauts": 1, "Astronauts": 1}
    assert merge_case_variants(counts, 20) == {"podcast": 69, "Astronauts": 3}
    assert merge_case_variants(counts, 1) == {"podcast": 69}


def test_the_issues_case_variants_are_one_facet_value(http: httpx.Client) -> None:
    facet = keyword_facet(http.get("/", params={"q": "apollo", "collapse": "none"}).text)
    assert "Apollo 11" in facet and "APOLLO 11" not in facet
    podcast = keyword_facet(http.get("/", params={"q": "podcast", "collapse": "none"}).text)
    assert len([v for v in podcast if v.casefold() == "podcast"]) == 1


def test_a_keyword_filter_matches_every_case_variant(http: httpx.Client, loaded: Library) -> None:
    holders = {
        data["nasa_id"]
        for data in every_hit(loaded, q="apollo")
        if any(k.casefold() == "apollo 11" for k in data.get("keywords") or [])
    }
    spellings = {
        k
        for data in every_hit(loaded, q="apollo")
        for k in data.get("keywords") or []
        if k.casefold() == "apollo 11"
    }
    assert {"Apollo 11", "APOLLO 11"} <= spellings
    for spelling in spellings:
        found = http.get(
            "/search", params={"q": "apollo", "keywords": spelling, "page_size": "1000"}
        ).json()["collection"]["items"]
        assert holders <= {i["data"][0]["nasa_id"] for i in found}, spelling


def test_a_chosen_keyword_shows_as_chosen_in_any_case(http: httpx.Client) -> None:
    html = http.get("/", params={"q": "apollo", "keywords": "apollo 11"}).text
    page = Page(html)
    chosen = [a for a in page.all("a") if a.get("data-facet") == "keywords" and "aria-current" in a]
    assert len(chosen) == 1
    assert "keywords" not in (chosen[0]["href"] or "")  # clicking it removes the filter


# --- past the end (17.29) ----------------------------------------------------------


def test_a_page_past_the_end_says_so_and_links_the_last_page(http: httpx.Client) -> None:
    first = http.get("/search", params={"q": "departure", "collapse": "event"}).json()
    groups = first["collection"]["metadata"]["total_groups"]
    # lexical, as /search counts (hybrid ranks up to 200 more by meaning)
    html = http.get("/", params={"q": "departure", "page": "1000", "mode": "lexical"}).text
    assert "past the end" in html
    assert "Check the spelling" not in html and "No results" not in html
    page = Page(html)
    (last,) = [a for a in page.all("a") if a.get("rel") == "last"]
    assert last["href"] == "/?q=departure&mode=lexical"  # page 1: the last with results
    assert math.ceil(groups / 100) == 1
    deep = http.get(
        "/",
        params={
            "q": "the",
            "collapse": "caption",
            "page_size": "10",
            "page": "500",
            "mode": "lexical",
        },
    )
    (last,) = [a for a in Page(deep.text).all("a") if a.get("rel") == "last"]
    assert last["href"] is not None
    shown = Page(http.get(last["href"]).text)
    assert [a for a in shown.all("li") if "data-nasa-id" in a]
    assert not [a for a in shown.all("a") if a.get("rel") == "next"]


def test_the_pager_reaches_exactly_the_groups(http: httpx.Client, loaded: Library) -> None:
    """``collapse=caption`` at 10 a page: the pager's last page is the last with cards."""
    from .test_collapse_paging import brute_force

    groups = len(brute_force(loaded, "the", "caption", "relevance"))
    params = {"q": "the", "collapse": "caption", "page_size": "10", "mode": "lexical"}
    page = Page(http.get("/", params=params).text)
    numbers = [
        int(a["aria-label"].split()[-1])
        for a in page.all("a")
        if (a.get("aria-label") or "").startswith("Page ")
    ]
    assert max(numbers) == math.ceil(groups / 10)
    last = Page(http.get("/", params={**params, "page": str(max(numbers))}).text)
    cards = [a for a in last.all("li") if "data-nasa-id" in a]
    assert len(cards) == groups - 10 * (max(numbers) - 1)
    assert not [a for a in last.all("a") if a.get("rel") == "next"]
    after = http.get("/", params={**params, "page": str(max(numbers) + 1)}).text
    assert "past the end" in after
