"""Item pages with media in a real headless Chromium (issue 16 req 4): an image, a video
and an audio item of the shared records at 1280 and 360 px, screenshots in test-artifacts/."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from nivl import Library, Settings
from nivl.web.app import create_app

from .servers import running
from .test_ui import ARTIFACTS
from .test_ui_browser import Tab, browser  # noqa: F401  (a fixture)
from .test_ui_media import (  # noqa: F401  (fixtures)
    AUDIO,
    IMAGE,
    VIDEO,
    jpeg,
    manifest,
    media_settings,
    media_url,
)

pytestmark = pytest.mark.browser
THUMB_ONLY = "PIA13083"  # a JPL image of the shared records
KINDS = {"image": IMAGE, "video": VIDEO, "audio": AUDIO}
CREDITS = {
    "image": "Image credit: NASA/JPL/Arizona State University",  # its secondary creator
    "video": "Video credit: NASA",  # HQ
    "audio": "Audio credit: NASA/Johnson Space Center",
}
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.mark.parametrize("width", [1280, 360])
@pytest.mark.parametrize("kind", list(KINDS))
def test_item_pages_lay_out_at_both_widths(
    browser: Any,  # noqa: F811
    media_url: str,  # noqa: F811
    kind: str,
    width: int,
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    tab = Tab(browser, media_url, width=width)
    try:
        assert tab.goto("/item/" + quote(KINDS[kind], safe="")).status == 200
        tab.page.wait_for_load_state("networkidle")
        tab.page.screenshot(path=str(ARTIFACTS / f"item-{kind}-{width}.png"), full_page=True)
        assert tab.page.evaluate(OVERFLOW) <= 0, f"horizontal scroll at {width}px"
        figure = tab.page.locator("figure.preview").bounding_box()
        assert figure is not None and figure["height"] < 900  # no block as tall as the text
        credit = tab.page.locator(".credit").inner_text()
        assert credit == CREDITS[kind]
        if kind == "audio":
            assert figure["height"] < 300
            assert tab.page.locator("audio").is_visible()
            details = tab.page.locator("details.more-text")
            assert details.get_attribute("open") is None
            assert tab.page.locator(".description > p").count() <= 3
            details.locator("summary").click()
            assert details.locator("p").count() > 20
        assert not [c for c in tab.console if "Content Security Policy" in c], tab.console
    finally:
        tab.close()


def test_video_has_a_webvtt_caption_track(browser: Any, media_url: str) -> None:  # noqa: F811
    tab = Tab(browser, media_url)
    try:
        tab.goto("/item/" + quote(VIDEO, safe=""))
        track = tab.page.locator("video track")
        assert track.count() == 1 and track.get_attribute("kind") == "captions"
        answer = tab.page.evaluate(
            """async () => {
              const t = document.querySelector('video track');
              const r = await fetch(t.src);
              return [r.status, r.headers.get('content-type'), (await r.text()).slice(0, 40),
                      document.querySelector('video').textTracks[0].mode];
            }"""
        )
        status, content_type, body, mode = answer
        assert status == 200 and content_type.startswith("text/vtt")
        assert body.startswith("WEBVTT\n\n00:00:01.230 --> ")
        assert mode == "showing"  # default: the captions are on
        assert not [c for c in tab.console if "Content Security Policy" in c], tab.console
    finally:
        tab.close()


def test_mirrored_thumbnail_on_card_and_item_page(browser: Any, media_url: str) -> None:  # noqa: F811
    tab = Tab(browser, media_url, thumbnails=False)  # offline: upstream refused
    try:
        tab.goto(f"/?q={IMAGE}&collapse=none")
        card = tab.page.locator(f'li.card[data-nasa-id="{IMAGE}"]')
        local = f"/media/{IMAGE}/{IMAGE}~thumb.jpg"
        served = tab.page.evaluate(f"fetch('{local}').then(r => r.status)") == 200
        if served:  # the /media route is there: the mirrored picture shows
            card.locator("img").wait_for()
            assert card.locator("img").get_attribute("src") == local
            assert card.locator("img").evaluate("i => i.decode().then(() => i.naturalWidth)") == 320
        else:  # not yet: the local src is used, and a failed load falls back cleanly
            tab.page.wait_for_selector(f'li.card[data-nasa-id="{IMAGE}"] .thumb.failed')
        assert all(not u.endswith(f"{IMAGE}~thumb.jpg") for u in tab.blocked)
        tab.goto("/item/" + IMAGE)
        tab.page.wait_for_load_state("networkidle")
        if served:
            assert tab.page.locator(".preview img").get_attribute("src") == (
                f"/media/{IMAGE}/{IMAGE}~medium.jpg"
            )
        assert tab.page.locator(".preview .ph").is_visible() or served
        tab.page.screenshot(path=str(ARTIFACTS / "item-image-mirrored-1280.png"))
        tab.goto("/?media_type=video&collapse=none")  # offline: placeholders, not blanks
        tab.page.wait_for_selector(".thumb.failed")
        tab.page.screenshot(path=str(ARTIFACTS / "search-offline-placeholders-1280.png"))
        assert tab.page.evaluate(OVERFLOW) <= 0
    finally:
        tab.close()


def test_an_offline_mirror_of_thumbnails_shows_the_mirrored_picture(
    browser: Any,  # noqa: F811
    loaded_settings: Settings,
    tmp_path: Path,
) -> None:
    """Only the thumbnail is mirrored and upstream cannot be reached: the item page's big
    picture (upstream's medium) fails, and the page shows the mirrored copy, not a blank."""
    home = tmp_path / "home"
    shutil.copytree(loaded_settings.home, home)
    settings = Settings.from_env({}, home=str(home), upstream_url=loaded_settings.upstream_url)
    names = [f"{THUMB_ONLY}~{size}.jpg" for size in ("orig", "medium", "thumb")]
    with Library(settings) as library:
        library.store.put_asset(THUMB_ONLY, manifest=manifest(THUMB_ONLY, "image", names))
    (home / "media" / THUMB_ONLY).mkdir(parents=True)
    (home / "media" / THUMB_ONLY / f"{THUMB_ONLY}~thumb.jpg").write_bytes(
        jpeg(160, 120, (30, 160, 90))
    )
    with running(create_app(settings)) as url:
        tab = Tab(browser, url, thumbnails=False)  # every request off this host fails
        try:
            tab.goto("/item/" + quote(THUMB_ONLY, safe=""))
            picture = tab.page.locator("figure.preview img")
            picture.wait_for(state="attached")
            tab.page.wait_for_function(
                "() => { const i = document.querySelector('figure.preview img');"
                " return i && i.complete && i.naturalWidth > 0; }",
                timeout=15_000,
            )
            assert picture.evaluate("i => [i.naturalWidth, new URL(i.src).pathname]") == [
                160,
                f"/media/{THUMB_ONLY}/{THUMB_ONLY}~thumb.jpg",
            ]
            assert any("images-assets.nasa.gov" in blocked for blocked in tab.blocked)
        finally:
            tab.close()
