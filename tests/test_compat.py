"""A real third-party client of the upstream API, pointed at nivl by its base URL only."""

from __future__ import annotations

import json
import urllib.parse

import httpx
import pytest

nasa_images = pytest.importorskip("nasa_images")  # PyPI: nasa-images-cli, pinned in [test]


@pytest.fixture
def client_at(api_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(nasa_images, "API_ROOT", api_url)  # the one change a user makes
    return nasa_images


def test_its_search_walks_nivl_pages_and_finds_albums(client_at, shared_items) -> None:  # type: ignore[no-untyped-def]
    albums = client_at._run_search("apollo", 5)
    records_by_album: dict[str, set[str]] = {}
    for item in shared_items:
        data = item["data"][0]
        # the client iterates `album or []`, so a plain-string album (real upstream data)
        # yields its characters: nivl returns items verbatim, so it must see the same
        for name in data.get("album") or []:
            records_by_album.setdefault(name, set()).add(data["title"])
    assert "201907_Apollo_50th_in_DC" in albums
    for name, titles in albums.items():
        assert titles <= records_by_album[name]


def test_its_album_download_listing_pages_through_nivl(client_at, shared_items) -> None:  # type: ignore[no-untyped-def]
    name = "201907_Apollo_50th_in_DC"
    base = f"{client_at.API_ROOT}/album/{urllib.parse.quote(name, safe='')}"
    first = client_at.get_json(f"{base}?page_size=100&page=1")
    expected = sum(1 for i in shared_items if name in (i["data"][0].get("album") or []))
    assert first["collection"]["metadata"]["total_hits"] == expected
    assert client_at.get_json(f"{client_at.API_ROOT}/album/no-such-album?page=1") is None


def test_a_browser_style_cross_origin_request(api_url: str) -> None:
    response = httpx.get(
        f"{api_url}/search?q=mars&media_type=image",
        headers={
            "Origin": "https://someones-app.example",
            "Accept": "application/json, text/plain, */*",
        },
    )
    assert response.headers["access-control-allow-origin"] == "*"
    assert json.loads(response.text)["collection"]["items"]
