"""Issue 18 req 1 in a real headless Chromium: an item page lists the records that show the
same picture under other ids ("Same picture elsewhere"), and its link opens the visual
group page. Screenshot: /tmp/nivl-visual-item.png."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from nivl.settings import Settings

from .conftest import OFFLINE
from .servers import running
from .test_ui_browser import Tab, browser  # noqa: F401  (a fixture)
from .test_visual_media import _photo_of, mirrored, replay  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser
SCREENSHOT = Path("/tmp/nivl-visual-item.png")


def test_item_page_shows_the_same_picture_elsewhere(
    browser: Any,  # noqa: F811
    mirrored: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    from nivl.web.app import create_app

    home = Path(shutil.copytree(mirrored, tmp_path / "home"))
    truth = _photo_of(home)
    nasa_id = sorted(truth)[0]
    same = {n for n, (photo, _) in truth.items() if photo == truth[nasa_id][0]} - {nasa_id}
    alone = sorted(n for n in _all_ids(home) if n not in truth)[0]
    settings = Settings.from_env({}, home=str(home), upstream_url=OFFLINE)
    with running(create_app(settings)) as url:
        tab = Tab(browser, url)
        try:
            assert tab.goto("/item/" + quote(nasa_id, safe="")).status == 200
            section = tab.page.locator("section.same-picture")
            assert section.locator("h2").inner_text().startswith("Same picture elsewhere")
            assert section.locator("h2 .n").inner_text() == str(len(same))
            links = section.locator("ol.grid a[href^='/item/']")
            shown = {
                _unquote(h.split("/item/", 1)[1])
                for h in links.evaluate_all("els => els.map(e => e.getAttribute('href'))")
            }
            assert shown and shown <= same and nasa_id not in shown
            section.scroll_into_view_if_needed()
            tab.page.screenshot(path=str(SCREENSHOT), full_page=True)
            section.locator("a.more").click()
            tab.page.wait_for_load_state()
            assert "/group/visual/" in tab.page.url
            assert "of the same picture" in tab.page.locator("h1").inner_text()
            assert tab.goto("/item/" + quote(alone, safe="")).status == 200
            assert tab.page.locator("section.same-picture").count() == 0  # no picture: alone
        finally:
            tab.close()


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def _all_ids(home: Path) -> list[str]:
    from nivl.library import Library

    with Library(Settings.from_env({}, home=str(home), upstream_url=OFFLINE)) as library:
        return [row.nasa_id for row in library.store.iter_rows()]
