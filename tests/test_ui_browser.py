"""The web UI in a real headless Chromium (Debian's), over the real server on loopback.

The browser never reaches the internet: requests for upstream thumbnails are answered
with a generated picture (or refused, to exercise the placeholder), everything else off
loopback is aborted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from .test_ui import ARTIFACTS, HOSTILE_ID, hostile_url  # noqa: F401  (a fixture)

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


def _thumbnail(url: str) -> bytes:
    """A stand-in for an upstream thumbnail: a gradient whose colours come from the URL."""
    digest = hashlib.sha1(url.encode()).digest()
    a, b = digest[0] * 360 // 256, digest[1] * 360 // 256
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240">'
        '<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="hsl({a},45%,35%)"/>'
        f'<stop offset="1" stop-color="hsl({b},55%,15%)"/></linearGradient></defs>'
        '<rect width="320" height="240" fill="url(#g)"/>'
        f'<circle cx="{60 + digest[2] % 200}" cy="{40 + digest[3] % 160}" '
        f'r="{10 + digest[4] % 40}" fill="#e8eef7" opacity=".85"/></svg>'
    ).encode()


class Tab:
    """A page plus what it saw: dialogs, console errors, CSP violations, off-site requests."""

    def __init__(self, browser: Any, base: str, *, width: int = 1280, thumbnails: bool = True):
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.base = base
        self.dialogs: list[str] = []
        self.console: list[str] = []
        self.blocked: list[str] = []
        self.context.route("**/*", self._route(thumbnails))
        self.page = self.context.new_page()
        self.page.on("dialog", self._dialog)
        self.page.on(
            "console", lambda m: self.console.append(m.text) if m.type == "error" else None
        )

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _route(self, thumbnails: bool) -> Any:
        def handle(route: Any) -> None:
            url = route.request.url
            if url.startswith(self.base):
                route.continue_()
            elif thumbnails and url.startswith("https://images-assets.nasa.gov/"):
                route.fulfill(status=200, content_type="image/svg+xml", body=_thumbnail(url))
            else:
                self.blocked.append(url)
                route.abort()

        return handle

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        self.page.wait_for_load_state("load")
        return response

    def params(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.page.url).query)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any, api_url: str) -> Iterator[Tab]:
    opened = Tab(browser, api_url)
    yield opened
    assert not opened.dialogs
    assert not [c for c in opened.console if "Content Security Policy" in c], opened.console
    opened.close()


def _cards(tab: Tab) -> Any:
    return tab.page.locator("li.card")


def test_search_then_switch_facet_sort_and_page(tab: Tab) -> None:
    tab.goto("/")
    tab.page.fill("#q", "moon")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url("**/?q=moon")
    assert tab.page.input_value("#q") == "moon"
    assert _cards(tab).count() > 0
    assert tab.page.locator("li.card[data-nasa-id]").count() == _cards(tab).count()
    assert tab.page.locator(".switch a[data-collapse=event][aria-current]").count() == 1

    # collapse switch: all results
    tab.page.click(".switch a[data-collapse=none]")
    tab.page.wait_for_url("**collapse=none**")
    assert tab.params()["collapse"] == ["none"]
    assert tab.page.locator(".switch a[data-collapse=none][aria-current]").count() == 1
    total_all = _cards(tab).count()

    # a facet: media type
    link = tab.page.locator("a[data-facet=media_type]").first
    media = link.get_attribute("href")
    assert media is not None
    link.click()
    tab.page.wait_for_url("**media_type=**")
    chosen = tab.params()["media_type"][0]
    shown = {t.lower() for t in tab.page.locator("li.card .meta span:last-child").all_inner_texts()}
    assert shown == {chosen}
    assert tab.page.locator(".chips a").count() == 1
    assert _cards(tab).count() <= total_all

    # sort: oldest first
    tab.page.click(".switch a[data-sort=date_asc]")
    tab.page.wait_for_url("**sort=date_asc**")
    dates = tab.page.locator("li.card time").evaluate_all("ts => ts.map(t => t.dateTime)")
    assert dates == sorted(dates)

    # paging
    tab.goto("/?q=nasa&collapse=none")
    first_page = _cards(tab).evaluate_all("cs => cs.map(c => c.dataset.nasaId)")
    tab.page.click(".pager a[rel=next]")
    tab.page.wait_for_url("**page=2**")
    second_page = _cards(tab).evaluate_all("cs => cs.map(c => c.dataset.nasaId)")
    assert second_page and not set(first_page) & set(second_page)
    assert tab.page.locator(".pager a[aria-current=page]").inner_text() == "2"
    tab.page.click(".pager a[rel=prev]")
    tab.page.wait_for_url(lambda url: "page=" not in url)
    assert _cards(tab).evaluate_all("cs => cs.map(c => c.dataset.nasaId)") == first_page


def test_collapse_switch_and_groups(tab: Tab) -> None:
    tab.goto("/?q=departure&collapse=none")
    all_results = _cards(tab).count()
    tab.page.click(".switch a[data-collapse=caption]")
    tab.page.wait_for_url("**collapse=caption**")
    tab.page.click(".switch a[data-collapse=event]")
    tab.page.wait_for_url(lambda url: "collapse" not in url)  # events: the default
    assert tab.page.locator(".switch a[data-collapse=event][aria-current]").count() == 1
    groups = tab.page.locator("li.card[data-group-size]")
    if groups.count() == 0:
        pytest.skip(
            "grouping has not landed: search gives no groups yet, so the collapse switch is "
            "checked by URL and state only, and '+N similar' cannot be opened"
        )
    assert _cards(tab).count() <= all_results
    card = tab.page.locator("li.card:has(a.more)").first
    size = int(card.get_attribute("data-group-size") or 0)
    assert size > 1
    assert card.locator("a.more").inner_text() == f"+{size - 1} similar"
    card.locator("a.more").click()
    tab.page.wait_for_url("**/group/event/**")
    members = min(size, 100)
    assert _cards(tab).count() == members
    heading = tab.page.locator("h1").inner_text()
    assert str(size) in heading
    group_id = tab.page.url.split("/group/event/")[1].split("?")[0]
    tab.goto(f"/group/{group_id}")  # by id alone, as the API's /groups/{id}
    assert tab.page.locator("h1").inner_text() == heading
    tab.page.go_back()
    # an item of the group lists the other photos of its event
    _cards(tab).first.locator("a.card-link").click()
    tab.page.wait_for_url("**/item/**")
    assert tab.page.locator(".members li.card").count() == min(size - 1, 24)


def test_open_an_item_from_the_results(tab: Tab) -> None:
    tab.goto("/?q=apollo")
    card = _cards(tab).first
    nasa_id = card.get_attribute("data-nasa-id")
    card.locator("a.card-link").click()
    tab.page.wait_for_url("**/item/**")
    assert tab.page.locator("article.item").get_attribute("data-nasa-id") == nasa_id
    assert tab.page.locator(".preview img").get_attribute("alt")
    upstream = tab.page.locator(
        f'a[href="https://images.nasa.gov/details/{quote(nasa_id or "", safe="")}"]'
    )
    assert upstream.count() == 1
    permanent = tab.page.locator("a.permalink")
    assert permanent.get_attribute("href") == tab.page.url
    keyword = tab.page.locator(".tags a").first
    if keyword.count():
        word = keyword.inner_text()
        keyword.click()
        tab.page.wait_for_url("**/?keywords=**")
        assert tab.params()["keywords"] == [word]
        assert _cards(tab).count() > 0


def test_keyboard_reaches_search_and_results(tab: Tab) -> None:
    tab.goto("/?q=moon")
    tab.page.keyboard.press("Tab")  # the skip link comes first
    assert tab.page.evaluate("document.activeElement.className") == "skip"
    tab.page.locator("body").click(position={"x": 5, "y": 300})
    tab.page.keyboard.press("/")
    assert tab.page.evaluate("document.activeElement.id") == "q"
    tab.page.focus("li.card a.card-link >> nth=0")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url("**/item/**")


def test_failed_thumbnails_fall_back_to_the_placeholder(browser: Any, api_url: str) -> None:
    refused = Tab(browser, api_url, thumbnails=False)
    try:
        refused.goto("/?q=moon&collapse=none")
        refused.page.wait_for_selector(".thumb.failed", timeout=10_000)
        assert refused.page.locator(".thumb.failed img").count() == 0
        visible = refused.page.locator(".thumb.failed .ph").first
        assert visible.is_visible()
        assert refused.blocked and all(
            u.startswith("https://images-assets.nasa.gov/") for u in refused.blocked
        )
    finally:
        refused.close()


def test_hostile_record_never_runs_script(browser: Any, hostile_url: str) -> None:  # noqa: F811
    tab = Tab(browser, hostile_url)
    try:
        tab.page.add_init_script("window.__pwned = undefined;")
        for path in (
            "/?q=moon",
            "/?q=moon&collapse=none&sort=date_asc",
            "/item/" + quote(HOSTILE_ID, safe=""),
        ):
            response = tab.goto(path)
            assert response.status == 200
            assert tab.page.evaluate("window.__pwned") is None
            assert tab.page.locator("script:not([src='/static/nivl.js'])").count() == 0
            assert tab.page.locator("iframe, svg, object, embed").count() == 0
            bad = tab.page.evaluate(
                """() => [...document.querySelectorAll('*')].flatMap(el =>
                    [...el.attributes].filter(a => a.name.startsWith('on') ||
                      (['href', 'src', 'poster'].includes(a.name) &&
                       /^\\s*(javascript|data|vbscript):/i.test(a.value)))
                    .map(a => el.tagName + ' ' + a.name + '=' + a.value))"""
            )
            assert bad == []
            for link in tab.page.locator("main a").all():
                link.hover()
        tab.page.click("text=click me", timeout=2000)
        assert tab.page.evaluate("window.__pwned") is None
        assert tab.dialogs == []
        title = tab.page.locator("h1").inner_text()
        assert title.startswith("Hostile moon")
    finally:
        tab.close()


def test_friendly_error_pages(tab: Tab) -> None:
    response = tab.goto("/item/no-such-record")
    assert response.status == 404
    assert tab.page.locator("h1").inner_text() == "We couldn’t find that"
    response = tab.goto("/?q=moon&page=0")
    assert response.status == 400
    assert "page" in tab.page.locator(".reason").inner_text()
    tab.page.click("text=Back to search")
    tab.page.wait_for_url(tab.base + "/")


def test_screenshots_and_page_weight(browser: Any, api_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    metrics: dict[str, Any] = {}
    for width, name in ((1280, "search-1280.png"), (360, "search-360.png")):
        tab = Tab(browser, api_url, width=width)
        try:
            tab.goto("/?q=departure")
            tab.page.wait_for_load_state("networkidle")  # the thumbnails in view
            tab.page.screenshot(path=str(ARTIFACTS / name))
            overflow = tab.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"horizontal scroll at {width}px"
        finally:
            tab.close()
    tab = Tab(browser, api_url, width=360)
    try:
        tab.goto("/?q=departure")
        tab.page.click(".facets summary")
        tab.page.screenshot(path=str(ARTIFACTS / "search-360-filters.png"))
        tab.goto("/item/" + quote(_cards(tab).first.get_attribute("data-nasa-id") or "", safe=""))
        tab.page.screenshot(path=str(ARTIFACTS / "item-360.png"), full_page=True)
        overflow = tab.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, "horizontal scroll on the item page at 360px"
    finally:
        tab.close()
    tab = Tab(browser, api_url)
    try:
        tab.goto("/?media_type=image&collapse=none")
        assert _cards(tab).count() == 100
        metrics = tab.page.evaluate(
            """() => {
              const nav = performance.getEntriesByType('navigation')[0];
              const own = performance.getEntriesByType('resource')
                .filter(r => r.name.startsWith(location.origin));
              return {
                html_transfer_kb: nav.transferSize / 1024,
                html_decoded_kb: nav.decodedBodySize / 1024,
                css_js_transfer_kb: own.reduce((s, r) => s + r.transferSize, 0) / 1024,
                time_to_first_byte_ms: nav.responseStart - nav.requestStart,
                server_timing: nav.serverTiming.map(t => [t.name, t.duration]),
                dom_content_loaded_ms: nav.domContentLoadedEventEnd - nav.startTime,
              };
            }"""
        )
        tab.page.screenshot(path=str(ARTIFACTS / "search-100-cards.png"))
        # lazy thumbnails below the fold are not mistaken for failed ones
        tab.page.mouse.wheel(0, 100_000)
        tab.page.wait_for_load_state("networkidle")
        assert tab.page.locator(".thumb.failed").count() == 0
        assert tab.page.locator(".thumb img").count() == 100
        item = tab.page.locator("li.card").first.get_attribute("data-nasa-id")
        tab.goto("/item/" + quote(item or "", safe=""))
        tab.page.screenshot(path=str(ARTIFACTS / "item-1280.png"), full_page=True)
    finally:
        tab.close()
    (ARTIFACTS / "ui-browser-metrics.json").write_text(json.dumps(metrics, indent=2))
    print("screenshots:", sorted(str(p) for p in ARTIFACTS.glob("*.png")))
    print("100-card page:", metrics)
    assert metrics["html_transfer_kb"] < 40


def test_typo_shows_results_for_the_correction_and_offers_the_words_as_typed(tab: Tab) -> None:
    """Issue 14: "Showing results for saturn rings. Search instead for saturn rigns"."""
    tab.goto("/")
    tab.page.fill("#q", "saturn rigns")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url("**q=saturn+rigns**")
    note = tab.page.locator("[data-suggestion]")
    assert "Showing results for saturn rings" in " ".join(note.inner_text().split())
    titles = " ".join(_cards(tab).all_inner_texts()[:5]).lower()
    assert _cards(tab).count() > 0 and "ring" in titles
    note.locator("a", has_text="saturn rigns").click()
    tab.page.wait_for_url("**match=all**")
    assert _cards(tab).count() == 0
    assert "No results" in tab.page.inner_text("main")
    tab.page.locator("[data-suggestion] a", has_text="saturn rings").click()
    tab.page.wait_for_url("**q=saturn+rings**")
    assert _cards(tab).count() > 0
    assert tab.page.locator("[data-suggestion]").count() == 0
