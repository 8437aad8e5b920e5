"""Rough edges left by issues 17 and 18, over HTTP on loopback and the CLI in a subprocess:
bounded IIIF summaries, bounded echoes in 404s, Host headers (IPv6, ports, hostile ones),
``next`` links at the result window's edge, and every link nivl writes from a hostile
record's ``links`` passing ``safe_url``.
"""

from __future__ import annotations

import csv
import dataclasses
import http.client
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from nivl import Library, Settings
from nivl.web.app import create_app

from .conftest import read_parquet
from .servers import running
from .test_iiif import MarkupCheck
from .test_ui import HOSTILE_ID, Page, hostile_items

TRANSCRIPT = "Ep 101_ Lesser known stories of Apollo 11"  # an 89,685-character description
SHORT = "PIA13083"
#: A tag URI (RFC 4151): tag:DNSname,date:specific
TAG = re.compile(r"tag:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?,\d{4}(?:-\d\d){0,2}:\S+")


def raw_get(url: str, path: str, host: str | None) -> tuple[int, dict[str, str], str]:
    """A GET with exactly this Host header (None: none at all), as a client may send it."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read().decode()
    finally:
        conn.close()


def plain_summary(document: dict[str, Any]) -> str:
    (value,) = document["summary"]["en"]
    text: str = MarkupCheck.text_of(value) if value.startswith("<span>") else value
    return text


# --- 1: IIIF summaries ---------------------------------------------------------------------


def test_a_transcripts_manifest_summary_is_bounded_and_links_the_whole_text(
    http: httpx.Client,
) -> None:
    from iiif_prezi3 import Manifest

    from nivl.web.text import plain

    response = http.get(f"/iiif/{quote(TRANSCRIPT, safe='')}/manifest.json")
    assert response.status_code == 200
    document = response.json()
    Manifest.model_validate(document)
    assert len(response.content) < 20_000  # it carried the whole 90 kB transcript
    summary = plain_summary(document)
    whole = http.get("/search", params={"nasa_id": TRANSCRIPT}).json()
    (item,) = whole["collection"]["items"]
    full = plain(item["data"][0]["description"])
    assert len(full) > 80_000
    assert 500 < len(summary) <= 1_000
    assert summary.endswith("…")
    kept = summary[:-1]
    assert full.startswith(kept) and full[len(kept.rstrip(",.;: "))] in " ,.;:"  # a word's end
    (see_also,) = document["seeAlso"]
    assert see_also["format"] == "application/json"
    linked = httpx.get(see_also["id"], timeout=30).json()
    assert (
        linked["collection"]["items"][0]["data"][0]["description"] == item["data"][0]["description"]
    )
    assert document["homepage"][0]["id"].endswith("/item/" + quote(TRANSCRIPT, safe=""))


def test_a_short_description_is_the_whole_summary(http: httpx.Client) -> None:
    from nivl.web.text import plain

    document = http.get(f"/iiif/{SHORT}/manifest.json").json()
    item = http.get("/search", params={"nasa_id": SHORT}).json()["collection"]["items"][0]
    assert plain_summary(document) == plain(item["data"][0]["description"])


# --- 2: what a 404 repeats -------------------------------------------------------------------

HOSTILE_NAME = "<img src=x onerror=alert(1)>" + "A" * 5_000  # no "/": one path segment


@pytest.mark.parametrize(
    "path",
    [
        "/album/" + quote(HOSTILE_NAME, safe=""),
        "/iiif/album/" + quote(HOSTILE_NAME, safe="") + "/manifest.json",
        "/asset/" + quote(HOSTILE_NAME, safe=""),
        "/iiif/" + quote(HOSTILE_NAME, safe="") + "/manifest.json",
        "/cite/" + quote(HOSTILE_NAME, safe=""),
        "/groups/" + quote(HOSTILE_NAME, safe=""),
    ],
)
def test_a_404_repeats_a_bounded_name_as_json(http: httpx.Client, path: str) -> None:
    response = http.get(path, headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    reason = response.json()["reason"]
    assert "'<img src=x onerror=alert(1)>AAA" in reason  # named, as the other 404s name things
    assert "(5,028 characters)" in reason
    assert b"<img" not in response.content  # \u003c: no markup even pasted into a page
    assert len(reason) < 300, len(reason)


@pytest.mark.parametrize(
    "path",
    [
        "/group/event/" + quote(HOSTILE_NAME, safe=""),
        "/group/" + quote(HOSTILE_NAME, safe="") + "/1",
        "/item/" + quote(HOSTILE_NAME, safe=""),
    ],
)
def test_a_pages_404_repeats_a_bounded_escaped_name(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 404
    assert "<img src=x" not in response.text
    assert "&lt;img src=x onerror=alert(1)&gt;AAA" in response.text
    assert "A" * 200 not in response.text


@pytest.mark.parametrize(
    "path", ["/album/nasa%20sciencecasts", "/iiif/album/nasa%20sciencecasts/manifest.json"]
)
def test_an_album_404_names_its_case_variants(http: httpx.Client, path: str) -> None:
    reason = http.get(path).json()["reason"]
    assert reason.startswith("No album named 'nasa sciencecasts'")
    assert reason.endswith("did you mean 'NASA ScienceCasts'?")


# --- 3: absolute URLs from the Host header --------------------------------------------------


@pytest.mark.parametrize("host", ["[::1]:8000", "[::1]", "[2001:db8::7]:8443"])
def test_an_ipv6_host_gives_valid_urls_and_tag_ids(api_url: str, host: str) -> None:
    import feedparser

    base = f"http://{host}"
    status, _, body = raw_get(api_url, "/feed?q=apollo&page_size=5", host)
    assert status == 200, body[:300]
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.bozo_exception
    ids = [feed.feed.id] + [entry.id for entry in feed.entries]
    assert len(ids) == 6
    for tag in ids:
        assert TAG.fullmatch(tag), tag
    assert len(set(ids)) == len(ids)
    assert "nivl: apollo; page size: 5" == feed.feed.title
    for entry in feed.entries:
        assert entry.link.startswith(base + "/item/"), entry.link
    status, _, body = raw_get(api_url, "/search?q=apollo&page_size=5", host)
    assert status == 200
    document = json.loads(body)["collection"]
    assert document["href"].startswith(base + "/search?")
    assert [link["href"] for link in document["links"]][0].startswith(base + "/search?")
    status, _, body = raw_get(api_url, f"/iiif/{SHORT}/manifest.json", host)
    assert status == 200
    assert json.loads(body)["id"] == f"{base}/iiif/{SHORT}/manifest.json"
    status, _, body = raw_get(api_url, f"/item/{SHORT}", host)
    assert status == 200
    (permalink,) = [a for a in Page(body).all("a") if a.get("class") == "permalink"]
    assert permalink["href"] == f"{base}/item/{SHORT}"


@pytest.mark.parametrize(
    "host", ["localhost.", "nivl_web:8000", "xn--nivl-9ra.example", "10.0.0.7"]
)
def test_ordinary_hosts_are_answered(api_url: str, host: str) -> None:
    status, _, body = raw_get(api_url, "/search?q=apollo&page_size=1", host)
    assert status == 200, body
    assert json.loads(body)["collection"]["href"].startswith(f"http://{host}/search?")


def test_a_host_with_a_port_keeps_it_and_tag_ids_leave_it_out(api_url: str) -> None:
    status, _, body = raw_get(api_url, "/feed?q=apollo&page_size=2", "Example.org:8080")
    assert status == 200
    assert "<id>tag:example.org,2026:item/" in body
    assert 'href="http://Example.org:8080/item/' in body


def test_no_host_or_an_empty_one_uses_the_address_reached(api_url: str) -> None:
    status, _, body = raw_get(api_url, "/search?q=apollo&page_size=1", "")
    assert status == 200
    assert json.loads(body)["collection"]["href"].startswith(api_url + "/search?")


HOSTILE_HOSTS = ['evil"<x', "evil.example'><script>", "a" * 3_000, "ex%20ample", "[::1", "h:99999"]
#: What no answer may repeat of them: markup, and more than a bounded part.
ECHOED = ('evil"<x', "<script>", "a" * 200)
HOST_PATHS = [
    "/search?q=apollo",
    "/feed?q=apollo",
    f"/iiif/{SHORT}/manifest.json",
    "/iiif/album/NASA%20ScienceCasts/manifest.json",
    "/album/NASA%20ScienceCasts",
    f"/item/{SHORT}",
    "/?q=apollo",
]


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_a_hostile_host_is_a_400_everywhere_urls_are_built(api_url: str, host: str) -> None:
    for path in HOST_PATHS:  # each page cached first, as the address's own Host gives it
        assert raw_get(api_url, path, urlsplit(api_url).netloc)[0] == 200
    for path in HOST_PATHS:
        status, headers, body = raw_get(api_url, path, host)
        assert status == 400, (path, body[:200])
        assert not [echo for echo in ECHOED if echo in body], (path, body[:300])
        if headers["content-type"] == "application/json":
            assert "names no server" in json.loads(body)["reason"]
        else:
            assert "names no server" in body
    status, _, _ = raw_get(api_url, "/healthz", host)  # nothing built from it: answered
    assert status == 200


# --- 5: next at the result window's edge ---------------------------------------------------


@pytest.fixture(scope="module")
def narrow_url(loaded_settings: Settings) -> Iterator[str]:
    """The shared records served with a result window of 50 (page x page_size <= 50)."""
    settings = dataclasses.replace(loaded_settings, max_result_window=50)
    with running(create_app(settings)) as url:
        yield url


def follow(client: httpx.Client, url: str) -> list[int]:
    """Every page's status, following ``next`` links from ``url`` until there is none."""
    statuses = []
    while url:
        response = client.get(url)
        statuses.append(response.status_code)
        if response.status_code != 200:
            break
        links = response.json()["collection"].get("links", [])
        url = next((link["href"] for link in links if link["rel"] == "next"), "")
    return statuses


def test_api_next_links_stop_at_the_last_page_a_request_may_reach(narrow_url: str) -> None:
    with httpx.Client(timeout=60) as client:
        assert follow(client, f"{narrow_url}/search?q=apollo&page_size=7") == [200] * 7
        assert follow(client, f"{narrow_url}/search?q=apollo&page_size=10") == [200] * 5
        past = client.get(f"{narrow_url}/search?q=apollo&page_size=7&page=8")
        assert past.status_code == 400  # the window itself is unchanged
        total = client.get(f"{narrow_url}/search?q=apollo&page_size=7").json()
        assert total["collection"]["metadata"]["total_hits"] > 50


def test_the_ui_pager_stops_at_the_last_reachable_page(narrow_url: str) -> None:
    with httpx.Client(base_url=narrow_url, timeout=60) as client:
        url: str | None = "/?q=apollo&page_size=7&collapse=none"
        pages = 0
        while url:
            response = client.get(url)
            assert response.status_code == 200, url
            pages += 1
            url = next(
                (a["href"] for a in Page(response.text).all("a") if a.get("rel") == "next"), None
            )
        assert pages == 7


# --- 8: every link nivl writes from a record passes safe_url -----------------------------


@pytest.fixture(scope="module")
def hostile_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("hostile-links") / "home"
    source = home.parent / "hostile.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in hostile_items()))
    settings = Settings.from_env({}, home=str(home), upstream_url="http://127.0.0.1:9")
    with Library(settings) as library:
        assert library.import_paths([source]).rejected == 0
    with running(create_app(settings)) as url:
        yield url, home


BAD_SCHEMES = ("javascript:", "data:", "vbscript:")


def _not_web(value: str) -> bool:
    return value.strip().lower().startswith(BAD_SCHEMES)


def json_urls(value: Any) -> list[str]:
    """Every id, href and url string of a JSON document."""
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k in ("id", "href", "url") and isinstance(v, str)]
        return found + [u for v in value.values() for u in json_urls(v)]
    if isinstance(value, list):
        return [u for v in value for u in json_urls(v)]
    return []


def test_the_api_keeps_a_hostile_records_links_verbatim(hostile_home: tuple[str, Path]) -> None:
    url, _ = hostile_home
    document = httpx.get(f"{url}/search", params={"nasa_id": HOSTILE_ID}, timeout=30).json()
    (item,) = document["collection"]["items"]
    assert any(_not_web(link["href"]) for link in item["links"])  # the drop-in contract


def test_no_page_feed_manifest_or_citation_writes_a_hostile_href(
    hostile_home: tuple[str, Path],
) -> None:
    url, _ = hostile_home
    quoted = quote(HOSTILE_ID, safe="")
    with httpx.Client(base_url=url, timeout=30) as client:
        for path in (f"/item/{quoted}", "/?q=moon", "/?q=moon&media_type=audio"):
            page = Page(client.get(path).text)
            for tag, attrs in page.tags:
                for name in ("href", "src", "poster", "data-fallback"):
                    assert not _not_web(attrs.get(name) or ""), (path, tag, attrs)
        from lxml import etree

        feed = etree.fromstring(client.get("/feed", params={"q": "moon"}).content)
        assert feed.findall("{http://www.w3.org/2005/Atom}entry")
        for element in feed.iter():
            for name in ("href", "url", "src"):
                assert not _not_web(element.get(name) or ""), etree.tostring(element)
        manifest = client.get(f"/iiif/{quoted}/manifest.json").json()
        album = manifest["metadata"][
            [r["label"]["en"][0] for r in manifest["metadata"]].index("Album")
        ]
        name = album["value"]["none"][0]
        name = MarkupCheck.text_of(name) if name.startswith("<span>") else name
        collection = client.get(f"/iiif/album/{quote(name, safe='')}/manifest.json").json()
        for document in (manifest, collection):
            urls = json_urls(document)
            assert urls
            assert not [u for u in urls if _not_web(u)], urls
        for style in ("apa", "mla", "chicago", "bibtex", "ris"):
            cited = client.get(f"/cite/{quoted}", params={"style": style}).text
            assert not any(scheme in cited.lower() for scheme in ("javascript:alert", "data:text"))


def _export(home: Path, fmt: str, out: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nivl", "export", "--format", fmt, "--home", str(home)]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_exports_write_only_web_links(hostile_home: tuple[str, Path], tmp_path: Path) -> None:
    _, home = hostile_home
    _export(home, "csv", tmp_path / "out.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    hostile = next(r for r in rows if r["nasa_id"].lstrip("'") == HOSTILE_ID)
    assert hostile["preview_href"] == ""  # its preview link is javascript:
    assert all(not _not_web(r["preview_href"]) for r in rows)
    _export(home, "parquet", tmp_path / "out.parquet")
    _, table = read_parquet(tmp_path / "out.parquet")
    assert [r["preview_href"] for r in table if r["nasa_id"] == HOSTILE_ID] == [None]
    for fmt in ("bibtex", "ris"):
        _export(home, fmt, tmp_path / f"out.{fmt}")
        lines = (tmp_path / f"out.{fmt}").read_text().splitlines()
        urls = [line for line in lines if line.strip().lower().startswith(("url ", "ur  -"))]
        assert urls
        assert all("https://images.nasa.gov/details/" in line for line in urls), urls


def test_cli_search_json_urls_bracket_an_ipv6_host_and_stop_at_the_window(
    loaded_settings: Settings,
) -> None:
    import os

    env = {**os.environ, "NIVL_HOST": "::1", "NIVL_PORT": "8123", "NIVL_MAX_RESULT_WINDOW": "50"}
    env.pop("NIVL_PUBLIC_URL", None)

    def search(page: int) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "nivl", "search", "apollo", "--json", "--collapse", "none"]
            + ["--page-size", "7", "--page", str(page), "--home", str(loaded_settings.home)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        document: dict[str, Any] = json.loads(done.stdout)["collection"]
        return document

    first = search(1)
    assert first["href"].startswith("http://[::1]:8123/search?")
    assert [link["rel"] for link in first["links"]] == ["next"]
    last = search(7)  # 49 results deep; page 8 would pass the window of 50
    assert [link["rel"] for link in last["links"]] == ["prev"]
