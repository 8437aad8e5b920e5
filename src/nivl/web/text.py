"""Captions from upstream as safe display text; pure.

Upstream descriptions carry bits of HTML (``<b><a href="...">NASA image use
policy</a></b>``, ``&amp;``, ``<br>``). Nothing from a caption is ever passed
through as markup: the text is parsed, and the page's markup is rebuilt from
escaped text plus the few things nivl itself decides to show — line breaks,
links whose target is http(s) (``urls.safe_url``, re-exported here as ``text.safe_url``),
and ``<mark>`` around matched words.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from markupsafe import Markup, escape

from ..urls import safe_url

__all__ = ["plain", "rich", "safe_url", "shorten", "snippet"]

_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}’”"
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")
_TAG = re.compile(r"<[^<>]*>")
_BREAKS = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"}
_DROPPED = {"script", "style", "template", "noscript", "iframe", "object", "svg", "math"}


class _Caption(HTMLParser):
    """Collects (text, href) runs; href is set inside an ``<a>`` with an http(s) target."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.runs: list[tuple[str, str | None]] = []
        self._href: list[str | None] = []
        self._dropped = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self._dropped += 1
        elif tag == "a":
            self._href.append(safe_url(dict(attrs).get("href")))
        elif tag in _BREAKS:
            self.runs.append(("\n", None))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKS:
            self.runs.append(("\n", None))

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self._dropped = max(0, self._dropped - 1)
        elif tag == "a" and self._href:
            self._href.pop()
        elif tag in _BREAKS and tag != "br":
            self.runs.append(("\n", None))

    def handle_data(self, data: str) -> None:
        if not self._dropped:
            href = next((h for h in reversed(self._href) if h), None)
            self.runs.append((data, href))


def _runs(text: str) -> list[tuple[str, str | None]]:
    if "<" not in text and "&" not in text:
        return [(text, None)]
    parser = _Caption()
    parser.feed(text)
    parser.close()
    return parser.runs


def plain(text: str) -> str:
    """Caption → one line of plain text (tags dropped, entities decoded, spaces squeezed)."""
    joined = "".join(run for run, _ in _runs(text))
    return " ".join(joined.split())


def shorten(value: str, limit: int) -> str:
    """Plain text cut to at most ``limit`` characters at a word boundary, with an ellipsis
    when cut (a feed entry's or a IIIF manifest's summary of a 90 kB transcript)."""
    if len(value) <= limit:
        return value
    head = value[: limit - 1]
    cut = head.rsplit(" ", 1)[0] if " " in head else head
    return cut.rstrip(",.;: ") + "…"


def rich(text: str) -> Markup:
    """Caption → escaped text with its paragraphs, line breaks and http(s) links kept."""
    out: list[str] = []
    for run, href in _runs(text):
        run = _SPACES.sub(" ", run)
        if href:
            out.append(_link(href, run))
        else:
            out.append(_linkify(run))
    body = _SPACES.sub(" ", "".join(out)).strip()
    body = _BLANK_LINES.sub("\n\n", body)
    body = "\n".join(line.strip() for line in body.split("\n"))
    return Markup(body)


def _link(href: str, label: str) -> str:
    return (
        f'<a href="{escape(href)}" rel="nofollow noopener noreferrer">'
        f"{escape(label.strip() or href)}</a>"
    )


def _linkify(text: str) -> str:
    out: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        end = match.start() + len(url)
        out.append(str(escape(text[last : match.start()])))
        target = safe_url(url)
        out.append(_link(target, url) if target else str(escape(url)))
        last = end
    out.append(str(escape(text[last:])))
    return "".join(out)


def snippet(marked: str | None) -> Markup | None:
    """tantivy's ``snippet.to_html()`` → escaped plain text with ``<mark>`` on matches.

    tantivy escapes the caption and adds only ``<b>``/``</b>`` around matches (checked in
    tests/test_ui_text.py); the caption's own markup arrives escaped. That markup is
    removed here (the same text ``plain`` shows), and every character is escaped again,
    so nothing of the snippet is trusted as markup.
    """
    if not marked:
        return None
    chars: list[str] = []
    flags: list[bool] = []
    for i, part in enumerate(re.split(r"</?b>", marked)):
        text = html.unescape(part)
        chars.extend(text)
        flags.extend([i % 2 == 1] * len(text))
    text = "".join(chars)
    keep = [True] * len(text)
    spans = [m.span() for m in _TAG.finditer(text)]
    first_close, first_open = text.find(">"), text.find("<")
    if first_close != -1 and (first_open == -1 or first_close < first_open):
        if '="' in text[:first_close] or "/" in text[:first_close]:
            spans.append((0, first_close + 1))  # the fragment starts inside a tag
    last_open = text.rfind("<")
    if last_open != -1 and ">" not in text[last_open:]:
        spans.append((last_open, len(text)))  # … or ends inside one
    for start, end in spans:
        for k in range(start, end):
            keep[k] = False
    out: list[str] = []
    run: list[str] = []
    state = False
    for ch, flag, kept in zip(text, flags, keep, strict=True):
        if not kept:
            ch, flag = " ", False
        if flag != state:
            out.append(_close(run, state))
            run, state = [], flag
        run.append(ch)
    out.append(_close(run, state))
    result = " ".join("".join(out).split())
    return Markup(result) if result else None


def _close(run: list[str], marked: bool) -> str:
    text = str(escape(html.unescape("".join(run))))  # the caption's own entities (&amp;)
    if not marked:
        return text
    return f"<mark>{text}</mark>" if text.strip() else text
