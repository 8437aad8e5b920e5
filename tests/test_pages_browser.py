"""Issue 17's pages in a real headless Chromium: /docs offline (18), the HTML 404 (19).

The browser reaches nothing but the loopback server: every other request is aborted and
recorded, so a page that still needed a CDN would show up in ``tab.blocked``.
"""

from __future__ import annotations

from typing import Any

import pytest

from .test_ui import ARTIFACTS
from .test_ui_browser import Tab, browser  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser


def _csp_errors(tab: Tab) -> list[str]:
    return [c for c in tab.console if "Content Security Policy" in c]


def test_docs_render_every_operation_offline(browser: Any, api_url: str) -> None:  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    tab = Tab(browser, api_url, thumbnails=False)
    try:
        response = tab.goto("/docs")
        assert response.status == 200
        tab.page.wait_for_selector(".opblock-summary-path", timeout=20_000)
        paths = tab.page.locator(".opblock-summary-path").all_inner_texts()
        assert {"/search", "/asset/{nasa_id}", "/album/{album_name}", "/groups/{group_id}"} <= {
            p.replace("\u200b", "").strip() for p in paths
        }, paths
        tab.page.click("#operations-upstream-search_search_get .opblock-summary")
        tab.page.wait_for_selector("text=Free text search terms")
        tab.page.screenshot(path=str(ARTIFACTS / "docs-1280.png"))
        assert tab.blocked == [], tab.blocked
        assert not _csp_errors(tab), tab.console
        assert "default-src 'self'" in response.headers["content-security-policy"]
    finally:
        tab.close()


def test_redoc_renders_offline(browser: Any, api_url: str) -> None:  # noqa: F811
    tab = Tab(browser, api_url, thumbnails=False)
    asked: list[str] = []
    tab.page.on("request", lambda request: asked.append(request.url))
    try:
        assert tab.goto("/redoc").status == 200
        tab.page.wait_for_selector("h2:has-text('Search')", timeout=20_000)
        tab.page.wait_for_selector("text=API docs by Redocly", timeout=20_000)
        tab.page.screenshot(path=str(ARTIFACTS / "redoc-1280.png"))
        assert tab.blocked == [], tab.blocked
        # ReDoc's "API docs by Redocly" logo was a CDN image, refused by the CSP (a
        # console error and a broken image on every visit): it is no longer even asked for.
        assert not _csp_errors(tab), tab.console
        assert not [c for c in tab.console if "redoc.ly" in c], tab.console
        assert all(u.startswith((api_url, "data:")) for u in asked), asked
        sources = tab.page.eval_on_selector_all("img", "els => els.map(e => e.src)")
        assert all(src.startswith((api_url, "data:")) for src in sources), sources
    finally:
        tab.close()


def test_an_unknown_url_shows_the_404_page(browser: Any, api_url: str) -> None:  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    tab = Tab(browser, api_url)
    try:
        response = tab.goto("/no/such/page")
        assert response.status == 404
        assert response.headers["content-type"].startswith("text/html")
        assert tab.page.locator("h1").inner_text() == "We couldn’t find that"
        assert "/no/such/page" in tab.page.locator(".reason").inner_text()
        tab.page.screenshot(path=str(ARTIFACTS / "not-found-1280.png"))
        tab.page.fill("#q", "moon")
        tab.page.press("#q", "Enter")
        tab.page.wait_for_url(tab.base + "/?q=moon")
        assert tab.page.locator("li.card").count() > 0
        assert not _csp_errors(tab), tab.console
    finally:
        tab.close()
