"""Collapsed paging, past-the-end pages and group nouns as a person sees them, in Chromium.

Screenshots of a collapsed search page and of a group of videos, at 1280 and 360 px, go
to test-artifacts/ for a person to look at.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .test_ui import ARTIFACTS
from .test_ui_browser import Tab, browser, tab  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def pager_numbers(tab: Tab) -> list[int]:  # noqa: F811
    return [int(n) for n in tab.page.locator(".pager li a").all_inner_texts()]


def test_the_pager_ends_where_the_groups_end(tab: Tab) -> None:  # noqa: F811
    tab.goto("/?q=the&collapse=caption&page_size=10")
    last = max(pager_numbers(tab))
    tab.page.locator(f".pager a[aria-label='Page {last}']").click()
    tab.page.wait_for_url(f"**page={last}**")
    assert tab.page.locator("li.card").count() > 0
    assert tab.page.locator(".pager a[rel=next]").count() == 0
    assert max(pager_numbers(tab)) == last
    tab.goto(f"/?q=the&collapse=caption&page_size=10&page={last + 1}")
    assert "past the end" in tab.page.locator(".past-end h2").inner_text()
    assert tab.page.locator("li.card").count() == 0
    assert "Check the spelling" not in tab.page.content()
    tab.page.locator(".past-end a[rel=last]").click()
    tab.page.wait_for_url(f"**page={last}**")
    assert tab.page.locator("li.card").count() > 0


def test_a_page_far_past_the_end_leads_back(tab: Tab) -> None:  # noqa: F811
    tab.goto("/?q=departure&page=1000")
    heading = tab.page.locator(".past-end h2").inner_text()
    assert heading == "Page 1,000 is past the end"
    ARTIFACTS.mkdir(exist_ok=True)
    tab.page.screenshot(path=str(ARTIFACTS / "past-the-end-1280.png"))
    tab.page.locator(".past-end a[rel=last]").click()
    tab.page.wait_for_url(lambda url: "page=" not in url)
    assert tab.page.locator("li.card").count() > 0


def video_group(http: httpx.Client) -> tuple[str, int]:
    collection = http.get(
        "/search", params={"media_type": "video", "collapse": "event", "page_size": "1000"}
    ).json()["collection"]
    groups = [i["group"] for i in collection["items"] if i.get("group", {}).get("size", 1) > 2]
    for group in sorted(groups, key=lambda g: -g["size"]):
        members = http.get(f"/groups/{group['id']}", params={"page_size": "100"}).json()
        kinds = {i["data"][0]["media_type"] for i in members["collection"]["items"]}
        if kinds == {"video"}:
            return group["id"], group["size"]
    raise AssertionError("no event group of videos in the shared records")


@pytest.mark.parametrize("width", [1280, 360])
def test_screenshots_of_a_collapsed_search_and_a_group_of_videos(
    browser: Any,  # noqa: F811
    api_url: str,
    http: httpx.Client,
    width: int,
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    opened = Tab(browser, api_url, width=width)
    try:
        opened.goto("/?q=apollo")
        assert opened.page.locator("li.card[data-group-size]").count() > 0
        overflow = opened.page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"the page scrolls sideways at {width}px"
        opened.page.screenshot(path=str(ARTIFACTS / f"collapsed-search-{width}.png"))
        group_id, size = video_group(http)
        opened.goto(f"/group/event/{group_id}")
        assert opened.page.locator("h1").inner_text() == f"{size} videos of one event"
        overflow = opened.page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"the group page scrolls sideways at {width}px"
        opened.page.screenshot(path=str(ARTIFACTS / f"video-group-{width}.png"))
        opened.page.locator("li.card a.card-link").first.click()
        opened.page.wait_for_url("**/item/**")
        members = opened.page.locator("#members-h").inner_text()
        assert members.startswith("Other videos of this event"), members
        opened.page.screenshot(path=str(ARTIFACTS / f"video-item-{width}.png"), full_page=True)
    finally:
        opened.close()
