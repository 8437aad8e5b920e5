"""Issue 18's additions to the results and item pages at phone widths, in headless Chromium
over the real server: the fourth "Show" option (Distinct pictures) and the card grids of
"Same picture elsewhere" / "More like this" must fit a 390 px phone, not only a 360 px one."""

from __future__ import annotations

from typing import Any

import pytest

from .test_ui_browser import Tab, browser  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser

#: Common phone widths: 360 (small Android), 390 (iPhone 12-15), 430 (the large ones).
PHONES = (360, 390, 430)


@pytest.mark.parametrize("width", PHONES)
def test_every_show_and_sort_option_can_be_tapped_on_a_phone(
    browser: Any,  # noqa: F811
    api_url: str,
    width: int,
) -> None:
    tab = Tab(browser, api_url, width=width)
    try:
        tab.goto("/?q=apollo&collapse=visual")  # the picture option shows, as it is asked for
        links = tab.page.locator("nav.switch a")
        assert links.count() == 7  # Events, captions, pictures, All results; three sorts
        for i in range(links.count()):
            link = links.nth(i)
            # What a tap on the link's middle reaches: the link, not the list that clips it.
            reached = link.evaluate(
                """a => { const r = a.getBoundingClientRect();
                          const x = r.left + r.width / 2, y = r.top + r.height / 2;
                          return x < innerWidth && document.elementFromPoint(x, y) === a; }"""
            )
            assert reached, f"{link.inner_text()!r} cannot be tapped at {width}px"
    finally:
        tab.close()


@pytest.mark.parametrize("width", PHONES)
def test_cards_are_one_a_row_on_a_phone(
    browser: Any,  # noqa: F811
    api_url: str,
    width: int,
) -> None:
    # The phone layout puts the thumbnail beside the text: two such cards side by side
    # left the titles a few letters wide ("Apol lo …").
    tab = Tab(browser, api_url, width=width)
    try:
        tab.goto("/?q=apollo")
        lefts = tab.page.locator("ol.grid > li.card").evaluate_all(
            "cards => cards.slice(0, 6).map(c => Math.round(c.getBoundingClientRect().left))"
        )
        assert len(lefts) == 6 and len(set(lefts)) == 1, lefts
        title = tab.page.locator("ol.grid > li.card .title").first
        assert title.evaluate("t => t.getBoundingClientRect().width") > 150
    finally:
        tab.close()


def test_the_count_names_distinct_pictures_when_collapsed_by_picture(http: Any) -> None:
    page = http.get("/", params={"q": "apollo", "collapse": "visual"}).text
    count = page.split('class="count"', 1)[1].split("</p>", 1)[0]
    assert "distinct picture" in count and "caption" not in count
