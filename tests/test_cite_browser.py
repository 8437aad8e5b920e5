"""The item page's Cite box in a real headless Chromium: the style switcher works by
keyboard and pointer, the copy button puts the shown citation on the clipboard, and the
results page advertises its feed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .test_ui_browser import Tab, browser  # noqa: F401  (a fixture)

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser
JSC_PHOTO = "iss042e283219"
SCREENSHOT = Path(os.environ.get("NIVL_SCREENSHOTS", "/tmp")) / "nivl-cite-box.png"


@pytest.fixture
def tab(browser: Any, api_url: str) -> Iterator[Tab]:  # noqa: F811
    opened = Tab(browser, api_url)
    opened.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=api_url)
    yield opened
    assert not opened.dialogs
    assert not [c for c in opened.console if "Content Security Policy" in c], opened.console
    opened.close()


def _shown(tab: Tab) -> str:
    visible = tab.page.locator(".citation:visible .citation-text")
    assert visible.count() == 1  # one style at a time
    return str(visible.inner_text())


def _clipboard(tab: Tab) -> str:
    return str(tab.page.evaluate("navigator.clipboard.readText()"))


def test_switching_style_changes_the_text_and_copy_puts_it_on_the_clipboard(tab: Tab) -> None:
    tab.goto(f"/item/{JSC_PHOTO}")
    box = tab.page.locator("section.cite")
    box.scroll_into_view_if_needed()
    assert _shown(tab).startswith("Virts, T. (2015). Virts Self-Portrait during EVA 29")
    assert box.locator(".citation:visible i").inner_text() == "Virts Self-Portrait during EVA 29"

    tab.page.click("label[for=cite-mla]")
    mla = _shown(tab)
    assert mla.startswith("Virts, Terry. Virts Self-Portrait During EVA 29. Photograph.")
    copy = box.locator("button.copy-citation")
    assert copy.is_visible()  # the script shows it only where it can copy
    copy.click()
    expect(box.locator(".copy-status")).to_have_text("Copied MLA")
    assert _clipboard(tab) == mla

    # Keyboard: Tab reaches the checked style, arrow keys move through the styles.
    tab.page.focus("#cite-mla")
    tab.page.keyboard.press("ArrowRight")
    assert tab.page.evaluate("document.activeElement.id") == "cite-chicago"
    assert _shown(tab).startswith("Virts, Terry. 2015.")
    tab.page.keyboard.press("ArrowRight")
    bibtex = _shown(tab)
    assert bibtex.startswith("@misc{iss042e283219,")
    outline = tab.page.evaluate(
        "getComputedStyle(document.querySelector('[for=cite-bibtex]')).outlineStyle"
    )
    assert outline == "solid"  # the focused style is marked, though its radio is hidden
    tab.page.keyboard.press("Tab")  # on to the next control
    assert tab.page.evaluate("document.activeElement.className") == "copy-citation"
    tab.page.keyboard.press("Enter")
    expect(box.locator(".copy-status")).to_have_text("Copied BibTeX")
    assert _clipboard(tab).rstrip("\n") == bibtex.rstrip("\n")  # innerText drops the last
    tab.page.click("label[for=cite-ris]")
    assert box.locator(".copy-status").inner_text() == ""  # "Copied" was of another style
    box.screenshot(path=str(SCREENSHOT))
    tab.page.click("label[for=cite-mla]")
    box.screenshot(path=str(SCREENSHOT.with_name("nivl-cite-box-mla.png")))
    assert not tab.blocked or all("images-assets" not in url for url in tab.blocked)


def test_results_page_links_its_feed(tab: Tab) -> None:
    tab.goto("/?q=apollo&center=JSC")
    alternate = tab.page.locator("link[rel=alternate][type='application/atom+xml']")
    href = alternate.get_attribute("href")
    assert href == "/feed?q=apollo&center=JSC&collapse=event"
    visible = tab.page.locator("a.feed-link")
    assert visible.get_attribute("href") == href
    response = tab.context.request.get(tab.base + href)
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
