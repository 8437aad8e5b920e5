"""A gzip client's multi-MB /search page is stitched from per-item deflate fragments
(web/responses.py ``stitched_gzip``): it must decode, in every client, to the very page
an identity client gets, and an item already deflated is not deflated again."""

from __future__ import annotations

import gzip
import sqlite3
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nivl.settings import Settings
from nivl.web import responses

from .test_ui_browser import ARGS, CHROMIUM

#: Every audio record of the shared sample: most are long podcast transcripts.
TRANSCRIPTS = {"media_type": "audio", "page_size": "100"}


def _raw(http: httpx.Client, params: dict[str, str], encoding: str) -> httpx.Response:
    """The response with its body as sent (not decoded)."""
    with http.stream("GET", "/search", params=params, headers={"Accept-Encoding": encoding}) as r:
        r.raw_body = b"".join(r.iter_raw())  # type: ignore[attr-defined]
        return r


def test_a_large_page_goes_to_a_gzip_client_as_one_member_of_the_identity_page(
    http: httpx.Client, api_url: str, loaded_settings: Settings
) -> None:
    params = {**TRANSCRIPTS, "bench": "stitched-1"}
    plain = http.get("/search", params=params, headers={"Accept-Encoding": "identity"})
    zipped = _raw(http, params, "gzip")  # from the body cache: still stitched, from its cuts
    assert len(plain.content) >= responses.STITCH_MIN  # the page this is about
    assert (
        sum(
            len(i["data"][0].get("description", "")) > 16_000
            for i in plain.json()["collection"]["items"]
        )
        >= 10
    )
    assert zipped.headers["content-encoding"] == "gzip"
    sent: bytes = zipped.raw_body  # type: ignore[attr-defined]
    assert int(zipped.headers["content-length"]) == len(sent)
    assert gzip.decompress(sent) == plain.content
    one = zlib.decompressobj(zlib.MAX_WBITS | 16)  # what httpx and urllib3 run: one member
    assert one.decompress(sent) + one.flush() == plain.content
    assert one.eof and one.unused_data == b""
    # stitched: the page's longest stored item's own fragment is in it, as made alone
    ids = [item["data"][0]["nasa_id"] for item in plain.json()["collection"]["items"]]
    with sqlite3.connect(f"file:{Path(loaded_settings.home) / 'nivl.db'}?mode=ro", uri=True) as db:
        (longest,) = db.execute(
            "SELECT CAST(raw AS BLOB) FROM records WHERE nasa_id IN ({}) "
            "ORDER BY length(raw) DESC LIMIT 1".format(",".join("?" * len(ids))),
            ids,
        ).fetchone()
    assert longest in plain.content
    assert responses.deflated(longest) in sent
    # curl, as a shell user would fetch it
    url = str(httpx.URL(f"{api_url}/search", params=params))
    fetched = subprocess.run(
        ["curl", "-sS", "--compressed", "-H", "Accept-Encoding: gzip", url],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert fetched == plain.content


def test_an_item_deflated_for_one_page_is_not_deflated_again_for_the_next(
    http: httpx.Client,
) -> None:
    responses.FRAGMENTS.clear()  # the server runs in this process: its fragments
    before = responses.FRAGMENTS.made
    first = _raw(http, {**TRANSCRIPTS, "bench": "stitched-2"}, "gzip")
    made = responses.FRAGMENTS.made
    assert made - before >= 10  # its long items were deflated alone
    # another URL (so not the body cache's), the same long items in another order
    params = {**TRANSCRIPTS, "sort": "date_asc", "bench": "stitched-3"}
    second = _raw(http, params, "gzip")
    assert responses.FRAGMENTS.made == made  # every large item's fragment was kept
    plain = http.get("/search", params=params, headers={"Accept-Encoding": "identity"})
    assert gzip.decompress(second.raw_body) == plain.content  # type: ignore[attr-defined]
    assert first.raw_body != second.raw_body  # type: ignore[attr-defined]


def test_stitched_pieces_decode_to_their_join_whatever_their_sizes() -> None:
    fragments = responses.Fragments(max_bytes=2**20)
    big = b'{"t":"' + b"transcript words " * 3000 + b'"}'
    parts: list[responses.Chunk] = [
        b'{"items":[',
        big,
        b",",
        memoryview(big)[:-1],
        b',"group":1}',
        b"",
        big,
        b"]}",
    ]
    data = b"".join(parts)
    sent = responses.stitched_gzip(parts, data, fragments)
    assert gzip.decompress(sent) == data
    assert fragments.made == 2  # ``big`` twice as a whole, once cut: two fragments
    # a cached body keeps where its pieces ended: its gzip is these very bytes again
    body = responses.body_of(parts, 1)
    again = responses.stitched_gzip(responses.pieces(body.data, body.cuts or ()), data, fragments)
    assert again == sent
    assert fragments.made == 2


def test_fragments_stay_within_their_budget() -> None:
    fragments = responses.Fragments(max_bytes=40_000)
    pieces = [bytes(range(256)) * (80 + n) for n in range(40)]  # barely compressible
    for piece in pieces:
        assert zlib.decompress(fragments.get(piece) + b"\x03\x00", -15) == piece
    assert 0 < fragments._bytes <= 40_000
    assert len(fragments._keys) == len(fragments._entries)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.mark.browser
def test_chromium_reads_the_stitched_gzip_page(
    browser: Any, http: httpx.Client, api_url: str
) -> None:
    params = {**TRANSCRIPTS, "bench": "stitched-browser"}
    plain = http.get("/search", params=params, headers={"Accept-Encoding": "identity"})
    page = browser.new_page()
    try:
        page.set_extra_http_headers({"Accept-Encoding": "gzip"})  # not zstd, which it prefers
        page.goto(f"{api_url}/healthz")
        seen = page.evaluate(
            """async (url) => {
                const r = await fetch(url);
                return [r.headers.get("content-encoding"), await r.text()];
            }""",
            str(httpx.URL(f"{api_url}/search", params=params)),
        )
    finally:
        page.close()
    assert seen[0] == "gzip"
    assert seen[1].encode() == plain.content
