"""The web UI over HTTP (real uvicorn on loopback): pages, statuses, escaping, page weight."""

from __future__ import annotations

import gzip
import json
import re
import statistics
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from nivl import Library, Settings
from nivl.web.app import create_app

from .servers import running

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
HOSTILE_ID = 'evil"><img src=x onerror=alert(1)> id '  # trailing space kept: ids may end in one
PWN = "window.__pwned=1"


def hostile_items() -> list[dict[str, Any]]:
    """Records whose every field tries to run script; built here, never written to shared data."""
    return [
        {
            "href": "javascript:alert('href')",
            "data": [
                {
                    "nasa_id": HOSTILE_ID,
                    "media_type": "image",
                    "title": f"<script>{PWN}</script>Hostile moon <b onmouseover=alert(1)>x</b>",
                    "description": (
                        f'Moon <img src=x onerror="{PWN}"> <svg onload="{PWN}"></svg> '
                        f'<a href="javascript:{PWN}">click me</a> '
                        f'<a href="https://example.org/ok" onclick="{PWN}">safe link</a>\n'
                        f'second line <iframe src="javascript:{PWN}"></iframe> '
                        f"javascript:{PWN} <script>{PWN}</script>"
                    ),
                    "description_508": f'"><script>{PWN}</script>',
                    "keywords": [f"<script>{PWN}</script>", '" onmouseover="alert(1)', "moon"],
                    "center": f"JSC<script>{PWN}</script>",
                    "photographer": f"<img src=x onerror={PWN}>",
                    "location": "javascript:alert(1)",
                    "album": [f"<script>{PWN}</script>"],
                    "date_created": "2021-04-16T00:00:00Z",
                }
            ],
            "links": [
                {"href": f"javascript:{PWN}", "rel": "preview", "render": "image"},
                {"href": f"data:text/html,<script>{PWN}</script>", "rel": "alternate"},
            ],
        },
        {
            "href": "https://images-assets.nasa.gov/image/plain-moon/collection.json",
            "data": [
                {
                    "nasa_id": "plain-moon",
                    "media_type": "audio",
                    "title": "A plain moon record",
                    "description": "Nothing odd here: the moon.",
                    "center": "HQ",
                    "date_created": "1969-07-20T00:00:00Z",
                }
            ],
        },
    ]


@pytest.fixture(scope="session")
def hostile_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("hostile") / "home"
    source = home.parent / "hostile.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in hostile_items()))
    settings = Settings.from_env({}, home=str(home))
    with Library(settings) as library:
        summary = library.import_paths([source])
        assert summary.rejected == 0
    with running(create_app(settings)) as url:
        yield url


class Page(HTMLParser):
    """What a page's markup holds: tags with their attributes, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def assert_safe(html: str) -> Page:
    page = Page(html)
    for tag, attrs in page.tags:
        for name in attrs:
            assert not name.startswith("on"), (tag, attrs)
        assert tag not in ("iframe", "object", "embed", "svg"), tag
    assert [s.get("src") for s in page.all("script")] == ["/static/nivl.js"]
    for attrs in page.all("a"):
        href = attrs.get("href") or ""
        assert href.startswith(("/", "https://", "http://", "#", "?")), href
    for attrs in page.all("img") + page.all("video") + page.all("audio") + page.all("track"):
        src = attrs.get("src") or ""
        assert src.startswith(("https://", "/media/", "/item/")), src
    return page


# --- search page -------------------------------------------------------------------


def test_search_page_keeps_the_query_and_shows_cards(http: httpx.Client) -> None:
    response = http.get("/", params={"q": "departure"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    page = assert_safe(response.text)
    (box,) = [a for a in page.all("input") if a.get("id") == "q"]
    assert box["value"] == "departure"
    cards = [a for a in page.all("li") if "data-nasa-id" in a]
    assert cards
    assert "<mark>" in response.text
    assert "Server-Timing" in response.headers


def test_search_page_has_facets_switch_sort_and_paging(http: httpx.Client) -> None:
    html = http.get("/", params={"q": "moon", "collapse": "none"}).text
    page = Page(html)
    facets = {a.get("data-facet") for a in page.all("a") if a.get("data-facet")}
    assert facets == {"media_type", "center", "year", "keywords"}
    collapses = {a["data-collapse"]: a for a in page.all("a") if a.get("data-collapse")}
    assert set(collapses) == {"event", "caption", "none"}
    assert "aria-current" in collapses["none"]
    assert collapses["event"]["href"] == "/?q=moon"  # event is the UI's default
    sorts = {a["data-sort"] for a in page.all("a") if a.get("data-sort")}
    assert sorts == {"relevance", "date_desc", "date_asc"}
    assert any(a.get("rel") == "next" for a in page.all("a"))


def test_browsing_without_words_sorts_newest_first(http: httpx.Client) -> None:
    page = Page(http.get("/", params={"media_type": "image", "collapse": "none"}).text)
    dates = [a["datetime"] for a in page.all("time")]
    assert len(dates) == 100
    assert dates == sorted(dates, reverse=True)


def test_keyword_and_year_filters(http: httpx.Client) -> None:
    response = http.get(
        "/", params={"keywords": "Apollo 11", "year_start": "1969", "year_end": "1969"}
    )
    assert response.status_code == 200
    page = Page(response.text)
    assert all(a["datetime"].startswith("1969") for a in page.all("time"))
    assert "Remove keyword Apollo 11" in response.text


def test_upstream_field_parameters_show_as_removable_filters(http: httpx.Client) -> None:
    html = http.get("/", params={"photographer": "Bill Ingalls", "collapse": "none"}).text
    assert "Photographer: Bill Ingalls" in html
    assert 'href="/?collapse=none" aria-label="Remove filter: photographer Bill Ingalls"' in html


def test_empty_results_get_a_friendly_page(http: httpx.Client) -> None:
    response = http.get("/", params={"q": "zzqxv nonexistentword", "media_type": "audio"})
    assert response.status_code == 200
    assert "No results for" in response.text
    assert "Search again without the filters" in response.text


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"page": "0"}, "page"),
        ({"year_start": "abc"}, "year_start"),
        ({"media_type": "hologram"}, "media_type"),
        ({"sort": "random"}, "sort"),
        ({"collapse": "everything"}, "collapse"),
        ({"page_size": "100000"}, "page_size"),
    ],
)
def test_bad_parameters_get_a_friendly_400_page(
    http: httpx.Client, params: dict[str, str], named: str
) -> None:
    response = http.get("/", params={"q": "moon", **params})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "That request needs a fix" in response.text
    assert f"&#39;{named}&#39;" in response.text
    assert "Traceback" not in response.text


def test_unknown_item_and_group_get_a_friendly_404_page(http: httpx.Client) -> None:
    for path in ("/item/no-such-id", "/group/event/987654321", "/group/987654321", "/group/x/1"):
        response = http.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html"), path
        assert "We couldn’t find that" in response.text
    assert http.get("/group/event/not-a-number").status_code == 404


# --- item page ---------------------------------------------------------------------


def test_item_page_shows_everything_about_a_record(
    http: httpx.Client, shared_items: list[dict[str, Any]]
) -> None:
    item = next(
        i
        for i in shared_items
        if "<a href" in i["data"][0].get("description", "") and i["data"][0].get("keywords")
    )
    data = item["data"][0]
    response = http.get(f"/item/{data['nasa_id']}")
    assert response.status_code == 200
    page = assert_safe(response.text)
    hrefs = [a.get("href") for a in page.all("a")]
    assert f"https://images.nasa.gov/details/{data['nasa_id']}" in hrefs
    assert any(h and h.endswith(f"/item/{data['nasa_id']}") for h in hrefs)  # permanent URL
    assert any(h and h.startswith("/?keywords=") for h in hrefs)
    img = page.all("img")[0]  # the large preview comes first
    assert img["alt"] and img["src"].startswith("https://")
    text = "".join(page.text)
    for name in data:
        assert name in text or name == "description"  # shown above the table
    assert 'class="description"' in response.text
    assert 'rel="nofollow noopener noreferrer">' in response.text  # the caption's own link


def test_item_page_with_a_manifest(tmp_path: Path, shared_items: list[dict[str, Any]]) -> None:
    item = shared_items[0]
    nasa_id = item["data"][0]["nasa_id"]
    source = tmp_path / "one.jsonl"
    source.write_text(json.dumps(item) + "\n")
    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    manifest = {
        "collection": {
            "version": "1.0",
            "href": f"https://images-api.nasa.gov/asset/{nasa_id}",
            "items": [
                {"href": f"http://images-assets.nasa.gov/image/{nasa_id}/{nasa_id}~orig.jpg"},
                {"href": f"http://images-assets.nasa.gov/image/{nasa_id}/{nasa_id}~medium.jpg"},
                {"href": "javascript:alert(1)"},
            ],
        }
    }
    with Library(settings) as library:
        library.import_paths([source])
        library.store.put_asset(nasa_id, manifest=json.dumps(manifest))
    with running(create_app(settings)) as url:
        html = httpx.get(f"{url}/item/{nasa_id}").text
    page = assert_safe(html)
    assert "Downloads" in html
    hrefs = [a.get("href") for a in page.all("a")]
    assert f"https://images-assets.nasa.gov/image/{nasa_id}/{nasa_id}~orig.jpg" in hrefs
    img = page.all("img")[0]  # the large preview comes first
    assert img["src"].endswith("~medium.jpg")  # the large preview, from the manifest
    assert "javascript" not in html


# --- hostile records ---------------------------------------------------------------


def test_hostile_record_is_escaped_everywhere(hostile_url: str) -> None:
    with httpx.Client(base_url=hostile_url) as client:
        pages = [
            client.get("/", params={"q": "moon"}),
            client.get("/", params={"q": "moon", "collapse": "none", "sort": "date_asc"}),
            client.get("/item/" + quote(HOSTILE_ID, safe="")),
        ]
    search, _, item = pages
    for response in pages:
        assert response.status_code == 200, response.url
        assert_safe(response.text)
    escaped = HOSTILE_ID.replace('"', "&#34;").replace("<", "&lt;").replace(">", "&gt;")
    assert f'data-nasa-id="{escaped}"' in search.text
    assert (
        '<a href="https://example.org/ok" rel="nofollow noopener noreferrer">safe link</a>'
        in item.text
    )
    assert "Hostile moon" in item.text
    assert "Moon click me <a" in item.text  # the javascript: link dropped, its label kept
    assert "safe link</a></p>\n<p>second line" in item.text  # line breaks kept


# --- page weight and server time -----------------------------------------------------


def test_search_page_weight_and_server_time(http: httpx.Client) -> None:
    """Measured, not asserted against a clock: written to test-artifacts/ui-metrics.json."""
    params = {"media_type": "image", "collapse": "none"}
    response = http.get("/", params=params, headers={"Accept-Encoding": "identity"})
    cards = response.text.count('<li class="card"')
    assert cards == 100
    raw = len(response.content)
    zipped = len(gzip.compress(response.content, 6))
    css = len(http.get("/static/nivl.css").content)
    js = len(http.get("/static/nivl.js").content)
    round_trips, server, cached = [], [], []
    for i in range(30):
        # an ignored parameter makes each URL new to the page cache: every page is rendered
        started = time.perf_counter()
        answer = http.get("/", params={**params, "run": str(i)})
        round_trips.append((time.perf_counter() - started) * 1000)
        server.append(dict(re.findall(r"(\w+);dur=([\d.]+)", answer.headers["server-timing"])))
        started = time.perf_counter()
        again = http.get("/", params={**params, "run": str(i)})
        cached.append((time.perf_counter() - started) * 1000)
        assert again.headers["server-timing"] == 'cache;desc="hit"'
    metrics = {
        "cards": cards,
        "html_kb": round(raw / 1024, 1),
        "html_gzip_kb": round(zipped / 1024, 1),
        "css_kb": round(css / 1024, 1),
        "js_kb": round(js / 1024, 1),
        "requests": len(round_trips),
        "median_server_search_ms": round(statistics.median(float(t["search"]) for t in server), 1),
        "median_server_total_ms": round(statistics.median(float(t["app"]) for t in server), 1),
        "median_round_trip_ms": round(statistics.median(round_trips), 1),
        "median_round_trip_cached_ms": round(statistics.median(cached), 1),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "ui-metrics.json").write_text(json.dumps(metrics, indent=2))
    print(metrics)
    assert zipped < 40 * 1024  # a budget: 100 cards stay light on a phone


# --- contrast (WCAG AA) ------------------------------------------------------------

CSS = Path(__file__).resolve().parents[1] / "src" / "nivl" / "web" / "static" / "nivl.css"


def _luminance(colour: str) -> float:
    value = colour.lstrip("#")
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize(
    ("fg", "bg"),
    [
        ("--fg", "--bg"),
        ("--muted", "--bg"),
        ("--muted", "--panel"),
        ("--fg", "--panel"),
        ("--accent", "--bg"),
        ("--accent", "--panel"),
        ("--accent", "#e3ebf7"),  # chips and keyword tags
        ("--accent-fg", "--accent"),
        ("--ph-fg", "--ph"),
        ("--fg", "--mark"),
        ("#343b42", "--bg"),  # snippets
    ],
)
def test_colours_pass_wcag_aa(fg: str, bg: str) -> None:
    variables = dict(re.findall(r"(--[\w-]+):\s*(#[0-9a-fA-F]{6})", CSS.read_text()))
    ratio = contrast(variables.get(fg, fg), variables.get(bg, bg))
    assert ratio >= 4.5, f"{fg} on {bg}: {ratio:.2f}"


def test_search_pages_are_cached_until_the_data_changes(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text(json.dumps(shared_items[0]) + "\n")
    second.write_text(json.dumps(shared_items[1]) + "\n")
    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    with Library(settings) as library:
        library.import_paths([first])
    with running(create_app(settings)) as url, httpx.Client(base_url=url) as client:
        fresh = client.get("/")
        assert fresh.headers["server-timing"].startswith("search;")
        again = client.get("/")
        assert again.headers["server-timing"] == 'cache;desc="hit"'
        assert again.text == fresh.text
        assert again.headers["content-security-policy"] == fresh.headers["content-security-policy"]
        unchanged = client.get("/", headers={"If-None-Match": again.headers["etag"]})
        assert unchanged.status_code == 304
        with Library(settings) as writer:  # another process importing into the same home
            writer.import_paths([second])
        changed = client.get("/", headers={"If-None-Match": again.headers["etag"]})
        assert changed.status_code == 200
        assert changed.text.count('<li class="card"') == 2


def test_pages_answer_head(http: httpx.Client, shared_items: list[dict[str, Any]]) -> None:
    nasa_id = shared_items[0]["data"][0]["nasa_id"]
    for path in ("/?q=moon", f"/item/{quote(nasa_id, safe='')}"):
        response = http.head(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
    assert http.head("/item/no-such-id").status_code == 404


def test_an_empty_mirror_says_how_to_fill_it(tmp_path: Path) -> None:
    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    with running(create_app(settings)) as url:
        response = httpx.get(url + "/")
    assert response.status_code == 200
    assert "This mirror holds no records yet" in response.text
    assert_safe(response.text)


def test_item_page_shows_more_like_this(http: httpx.Client) -> None:
    response = http.get("/item/0002272")  # "History of Chandra X-Ray Observatory"
    assert response.status_code == 200
    section = response.text.split('id="like-h"', 1)[1].split("</section>", 1)[0]
    ids = re.findall(r'data-nasa-id="([^"]+)"', section)
    assert ids and "0002272" not in ids
    assert section.count("Chandra") + section.count("X-Ray") >= 2
