"""Rough edges of the UI in a real headless Chromium: an album asked for in the wrong case
offers the album by name, and an audio record's mirrored picture shows on its card."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from nivl import Settings
from nivl.media import disk_name
from nivl.web.app import create_app

from .servers import running
from .test_iiif import photo
from .test_ui import ARTIFACTS
from .test_ui_browser import Tab, browser  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser
AUDIO = "Ep56_Dr Spaceman"  # a space in the id; no picture upstream


@pytest.fixture(scope="module")
def pictured_url(
    loaded_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The shared records, with a picture mirrored for one audio record (as ``nivl media
    fetch`` leaves a podcast's cover art, which pictures.py then hashes)."""
    home = tmp_path_factory.mktemp("pictured") / "home"
    shutil.copytree(loaded_settings.home, home)
    folder = home / "media" / disk_name(AUDIO)
    folder.mkdir(parents=True)
    (folder / f"{AUDIO}~thumb.jpg").write_bytes(photo(320, 240))
    settings = Settings.from_env({}, home=str(home), upstream_url="http://127.0.0.1:9")
    with running(create_app(settings)) as url:
        yield url


def test_an_album_in_the_wrong_case_offers_the_album(browser: Any, api_url: str) -> None:  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    tab = Tab(browser, api_url)
    try:
        tab.goto("/?album=nasa%20sciencecasts")
        hint = tab.page.locator("[data-album-hint]")
        assert hint.is_visible()
        assert "case-sensitive" in hint.inner_text()
        link = hint.locator("a")
        assert link.all_inner_texts() == ["NASA ScienceCasts"]
        tab.page.screenshot(path=str(ARTIFACTS / "album-case-hint.png"))
        link.click()
        tab.page.wait_for_load_state("load")
        assert tab.params()["album"] == ["NASA ScienceCasts"]
        assert tab.page.locator("li.card").count() == 11
        assert tab.page.locator("[data-album-hint]").count() == 0
        tab.goto("/?album=no%20such%20album")  # no other case: no hint, the usual advice
        assert tab.page.locator("[data-album-hint]").count() == 0
        assert tab.page.locator(".empty h2").inner_text() == "No results"
        assert not tab.blocked, tab.blocked
    finally:
        tab.close()


def test_an_audio_card_shows_its_mirrored_picture(browser: Any, pictured_url: str) -> None:  # noqa: F811
    tab = Tab(browser, pictured_url, thumbnails=False)
    try:
        tab.goto("/?q=spaceman&media_type=audio&collapse=none")
        card = tab.page.locator(f'li.card[data-nasa-id="{AUDIO}"]')
        picture = card.locator(".thumb img")
        assert (
            picture.get_attribute("src")
            == "/media/Ep56_Dr%2520Spaceman/Ep56_Dr%20Spaceman~thumb.jpg"  # disk_name folder
        )
        picture.scroll_into_view_if_needed()
        tab.page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=picture.element_handle()
        )
        assert picture.is_visible()
        card.screenshot(path=str(ARTIFACTS / "audio-card-picture.png"))
        others = tab.page.locator(f'li.card:not([data-nasa-id="{AUDIO}"]) .thumb-audio')
        assert others.count() > 0
        assert others.locator("img").count() == 0  # no picture: the audio placeholder still
        assert not tab.blocked, tab.blocked
    finally:
        tab.close()


def test_an_audio_item_page_shows_its_mirrored_picture_above_the_player(
    browser: Any,  # noqa: F811
    pictured_url: str,
) -> None:
    tab = Tab(browser, pictured_url, thumbnails=False)
    try:
        tab.goto("/item/" + quote(AUDIO, safe=""))
        picture = tab.page.locator("figure.preview img.audio-picture")
        tab.page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=picture.element_handle()
        )
        assert picture.is_visible()
        assert tab.page.locator("figure.preview .ph-audio").count() == 0
        tab.page.locator("figure.preview").screenshot(
            path=str(ARTIFACTS / "audio-item-picture.png")
        )
        assert not [c for c in tab.console if "Content Security Policy" in c], tab.console
    finally:
        tab.close()
