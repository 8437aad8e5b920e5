"""The search box's autocomplete in a real headless Chromium, over the real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .test_ui import ARTIFACTS
from .test_ui_browser import Tab, browser  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser


@pytest.fixture(params=[1280, 360])
def tab(request: Any, browser: Any, api_url: str) -> Iterator[Tab]:  # noqa: F811
    opened = Tab(browser, api_url, width=request.param)
    yield opened
    assert not opened.dialogs
    assert not [c for c in opened.console if "Content Security Policy" in c], opened.console
    opened.close()


def test_type_apo_pick_a_suggestion_with_the_keyboard(tab: Tab) -> None:
    page = tab.page
    tab.goto("/")
    page.click("#q")
    page.keyboard.type("apo", delay=30)
    listbox = page.locator("#q-suggestions[role=listbox]")
    listbox.wait_for(state="visible")
    options = listbox.locator("[role=option]")
    assert options.count() >= 2
    assert options.nth(0).inner_text().startswith("Apollo")
    assert options.nth(1).inner_text().startswith("Apollo 11")
    assert page.get_attribute("#q", "aria-expanded") == "true"
    width = page.viewport_size["width"]
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert options.nth(1).get_attribute("aria-selected") == "true"
    assert page.get_attribute("#q", "aria-activedescendant") == options.nth(1).get_attribute("id")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"suggest-{width}.png"))
    # Escape closes the list and leaves what was typed
    page.keyboard.press("Escape")
    assert listbox.is_hidden()
    assert page.input_value("#q") == "apo"
    # type on: the list comes back; ArrowUp wraps to the last, Enter picks "Apollo 11"
    page.keyboard.type(" ", delay=30)
    page.keyboard.press("Backspace")
    listbox.wait_for(state="visible")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url("**/?q=Apollo+11")
    assert page.input_value("#q") == "Apollo 11"
    assert page.locator("li.card").count() > 0
