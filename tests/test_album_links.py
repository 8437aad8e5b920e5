"""Album links as a user follows them, over the real server: upstream's album names carry
stray spaces (seven of the shared records name the album " "), the store keeps them
stripped, so the item page's link, the search's ``album`` and the album's IIIF collection
must take them stripped too."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nivl import Library, Settings
from nivl.web.app import create_app

from .conftest import OFFLINE
from .servers import running


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("albums")
    items = [
        {"nasa_id": "spaced-1", "album": [" Apollo Moon "], "title": "One"},
        {"nasa_id": "spaced-2", "album": ["Apollo Moon", " "], "title": "Two"},
        {"nasa_id": "other", "album": ["Elsewhere"], "title": "Three"},
    ]
    path = folder / "albums.jsonl"
    path.write_text(
        "".join(
            json.dumps({"data": [{**i, "media_type": "image", "date_created": "2001-01-01"}]})
            + "\n"
            for i in items
        )
    )
    settings = Settings.from_env({}, home=str(folder / "home"), upstream_url=OFFLINE)
    with Library(settings) as library:
        library.import_paths([Path(path)])
    with running(create_app(settings)) as served:
        yield served


def album_links(url: str, nasa_id: str) -> list[str]:
    page = httpx.get(f"{url}/item/{nasa_id}").text
    return [html.unescape(h) for h in re.findall(r'href="(/\?album=[^"]*)"', page)]


def test_an_album_link_with_stray_spaces_finds_the_album(url: str) -> None:
    (link,) = album_links(url, "spaced-1")
    page = httpx.get(url + link).text
    found = set(re.findall(r'data-nasa-id="([^"]+)"', page))
    assert found == {"spaced-1", "spaced-2"}
    api = httpx.get(f"{url}/album/%20Apollo%20Moon%20")
    assert api.status_code == 200, api.text
    assert api.json()["collection"]["metadata"]["total_hits"] == 2


def test_the_album_iiif_collection_of_a_spaced_name_lists_its_records(url: str) -> None:
    page = httpx.get(url + album_links(url, "spaced-1")[0]).text
    (iiif,) = re.findall(r'href="(/iiif/album/[^"]*)"', page)
    collection = httpx.get(url + html.unescape(iiif))
    assert collection.status_code == 200, collection.text
    assert len(collection.json()["items"]) == 2
    spaced = httpx.get(f"{url}/iiif/album/%20Apollo%20Moon%20/manifest.json")
    assert spaced.status_code == 200 and len(spaced.json()["items"]) == 2


def test_a_blank_album_name_is_no_link(url: str) -> None:
    assert album_links(url, "spaced-2") == ["/?album=Apollo%20Moon"]


@pytest.mark.parametrize("path", ["/album/%20", "/iiif/album/%20%20/manifest.json"])
def test_a_blank_album_name_is_no_album_not_every_record(url: str, path: str) -> None:
    response = httpx.get(url + path)
    assert response.status_code == 404, response.text[:200]
    assert "No album named" in response.json()["reason"]
