"""Captions → safe display text (web/text.py), and what it relies on in tantivy; no fixtures."""

from __future__ import annotations

import pytest

from nivl.records import parse_item
from nivl.search_index import SearchIndex, highlight_document, record_document
from nivl.web import text

HOSTILE = (
    'Moon rocks <b><a href="http://www.nasa.gov/policy" rel="nofollow">NASA policy</a></b> '
    '&amp; <img src=x onerror="alert(1)"> <script>alert(2)</script> moon '
    '<a href="javascript:alert(3)">click</a> javascript:alert(4)'
)


def test_safe_url_keeps_only_http_and_https() -> None:
    assert text.safe_url("https://a.example/x.jpg") == "https://a.example/x.jpg"
    assert text.safe_url("http://a.example/x.jpg") == "https://a.example/x.jpg"
    assert text.safe_url("HTTPS://a.example/") == "HTTPS://a.example/"
    assert text.safe_url("https://a.example/a b/c%20d~thumb.jpg") == (
        "https://a.example/a%20b/c%20d~thumb.jpg"
    )
    assert text.safe_url('https://a.example/"><x\ny') == "https://a.example/%22%3E%3Cx%0Ay"
    for bad in (
        "javascript:alert(1)",
        " javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/x",
        "https://",
        "java\nscript:alert(1)",
        "vbscript:x",
        None,
        42,
    ):
        assert text.safe_url(bad) is None, bad


def test_plain_drops_markup_and_decodes_entities() -> None:
    assert text.plain(HOSTILE) == ("Moon rocks NASA policy & moon click javascript:alert(4)")
    assert text.plain("a\n\n  b") == "a b"


def test_rich_keeps_breaks_and_http_links_only() -> None:
    out = str(text.rich(HOSTILE + "<br>next line https://go.nasa.gov/abc."))
    assert '<a href="https://www.nasa.gov/policy" rel="nofollow noopener noreferrer">' in out
    assert '<a href="https://go.nasa.gov/abc"' in out
    assert "<script" not in out and "<img" not in out and "onerror" not in out
    assert "javascript:alert(3)" not in out  # the link is dropped, its label kept
    assert "click" in out
    assert "\nnext line" in out
    assert out.count("<a ") == 2


def test_rich_escapes_text_that_looks_like_markup() -> None:
    out = str(text.rich('1 &lt; 2 and x<y> & "quotes"'))
    assert "&lt;" in out and "<y>" not in out and "&#34;quotes&#34;" in out


def _snippet_html(description: str, query: str) -> str:
    index = SearchIndex(None)
    record = parse_item(
        {"href": "x", "data": [{"nasa_id": "h", "media_type": "image", "description": description}]}
    )
    writer = index.index.writer()
    writer.add_document(record_document(1, record))
    writer.commit()
    index.reload()
    q = index.index.parse_query(query, ["description"])
    snapshot = index.snapshot()
    assert snapshot.search(q, limit=1).total == 1
    generator = snapshot.snippet_generator(q, "description")
    # the index stores no text: the snippet is cut from the stored item
    return str(generator.snippet_from_doc(highlight_document(record.raw)).to_html())


def test_tantivy_snippet_html_escapes_the_caption() -> None:
    """``text.snippet`` relies on this: the caption's markup arrives escaped; <b> is tantivy's."""
    html = _snippet_html(HOSTILE, "moon nasa")
    assert "<script" not in html and "<img" not in html and "<a " not in html
    assert "&lt;script&gt;" in html
    assert html.replace("<b>", "").replace("</b>", "").count("<") == 0


def test_snippet_marks_matches_and_never_passes_markup_through() -> None:
    out = text.snippet(_snippet_html(HOSTILE, "moon nasa"))
    assert out is not None
    html = str(out)
    assert html.startswith("<mark>Moon</mark> rocks <mark>NASA</mark> policy &amp; ")
    assert "href" not in html  # the word matched inside the href is dropped with the tag
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert html.replace("<mark>", "").replace("</mark>", "").count("<") == 0


@pytest.mark.parametrize(
    "marked",
    [
        "&lt;b&gt;fake&lt;/b&gt; <b>real</b>",
        "ref=&quot;x&quot;&gt; <b>tail</b> &lt;a href=&quot;http",
        "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>",
        "",
    ],
)
def test_snippet_is_escaped_whatever_it_gets(marked: str) -> None:
    out = text.snippet(marked)
    html = str(out or "")
    assert html.replace("<mark>", "").replace("</mark>", "").count("<") == 0
    assert "<b>" not in html
