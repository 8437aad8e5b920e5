"""/search's fast path (web/fastpath.py) answers byte for byte what the whole stack did.

The page is checked against a document put together here from the raw items in the
store's SQLite file, and every response (identity, gzip, HEAD, 304, CORS, errors) against
the same request sent to the app without the fast path.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zstandard

from nivl.settings import Settings
from nivl.web import fastpath
from nivl.web.app import create_app

from .servers import running


@pytest.fixture(scope="module")
def whole_stack(loaded_settings: Settings) -> Iterator[httpx.Client]:
    """The app as it was before the fast path: every /search crosses every layer."""
    app = create_app(loaded_settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not fastpath.SearchFastPath]
    assert len(app.user_middleware) == 5  # the fast path was there, and only it went
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def _stored(settings: Settings) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(settings.home) / 'nivl.db'}?mode=ro", uri=True)


@pytest.mark.parametrize("collapse", ["none", "event"])
def test_search_page_is_the_stored_items_joined_as_upstream_does(
    http: httpx.Client, loaded_settings: Settings, collapse: str
) -> None:
    params = {"q": "apollo moon", "page_size": "7", "page": "2", "collapse": collapse}
    response = http.get("/search", params=params, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    sent = response.json()["collection"]
    base = str(http.base_url).rstrip("/")
    query = "q=apollo+moon&page=2&page_size=7" + ("&collapse=event" if collapse == "event" else "")
    with _stored(loaded_settings) as db:
        items = []
        for item in sent["items"]:
            nasa_id = item["data"][0]["nasa_id"]
            (raw,) = db.execute("SELECT raw FROM records WHERE nasa_id = ?", (nasa_id,)).fetchone()
            if collapse == "event":
                group = item["group"]["id"]
                found = db.execute("SELECT size FROM groups WHERE id = ?", (int(group),)).fetchone()
                size = found[0] if found else 1
                raw = raw[:-1] + f',"group":{{"id":"{group}","level":"event","size":{size}}}}}'
            items.append(raw)
    metadata = f'{{"total_hits":{sent["metadata"]["total_hits"]}'
    if collapse == "event":
        metadata += f',"total_groups":{sent["metadata"]["total_groups"]}'
    prev, after = (query.replace("page=2", f"page={n}") for n in (1, 3))
    links = [
        f'{{"rel":"prev","prompt":"Previous","href":"{base}/search?{prev}"}}',
        f'{{"rel":"next","prompt":"Next","href":"{base}/search?{after}"}}',
    ]
    expected = (
        f'{{"collection":{{"version":"1.0","href":"{base}/search?{query}","items":['
        + ",".join(items)
        + f'],"metadata":{metadata}}},"links":[{",".join(links)}]}}}}'
    )
    assert len(sent["items"]) == 7
    assert response.content == expected.encode()


def test_gzip_head_and_revalidation_carry_the_pages_tags(http: httpx.Client) -> None:
    params = {"q": "apollo mission", "page_size": "20", "bench": "one"}
    plain = http.get("/search", params=params, headers={"Accept-Encoding": "identity"})
    with http.stream(
        "GET", "/search", params=params, headers={"Accept-Encoding": "gzip"}
    ) as zipped:
        sent = b"".join(zipped.iter_raw())  # as sent, not decoded
    tag = plain.headers["etag"]
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["etag"] == tag[:-1] + '-gzip"'
    assert gzip.decompress(sent) == plain.content
    head = http.head("/search", params=params, headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == zipped.headers["content-length"]
    again = http.get("/search", params=params, headers={"If-None-Match": zipped.headers["etag"]})
    assert again.status_code == 304 and again.headers["etag"] == zipped.headers["etag"]
    identity = {"If-None-Match": f'"x", W/{tag}', "Accept-Encoding": "identity"}
    assert http.get("/search", params=params, headers=identity).status_code == 304


@pytest.mark.parametrize(
    ("sent", "chosen"),
    [
        ("gzip, deflate, zstd", "zstd"),
        ("br, zstd;q=0.9, gzip", "gzip"),
        ("zstd;q=0, *", "gzip"),
        ("*", "zstd"),
        ("deflate", None),
        ("zstd;q=0.000, gzip;q=0", None),
    ],
)
def test_json_goes_out_in_zstd_when_ranked_no_lower_than_gzip(
    http: httpx.Client, sent: str, chosen: str | None
) -> None:
    params = {"q": "apollo", "page_size": "20", "bench": "zstd"}
    plain = http.get("/search", params=params, headers={"Accept-Encoding": "identity"})
    with http.stream("GET", "/search", params=params, headers={"Accept-Encoding": sent}) as got:
        data = b"".join(got.iter_raw())
    assert got.headers.get("content-encoding") == chosen
    if chosen is None:
        assert data == plain.content and got.headers["etag"] == plain.headers["etag"]
        return
    unpack = zstandard.ZstdDecompressor().decompress if chosen == "zstd" else gzip.decompress
    assert unpack(data) == plain.content
    tag = plain.headers["etag"][:-1] + f'-{chosen}"'
    assert got.headers["etag"] == tag
    again = http.get(
        "/search", params=params, headers={"Accept-Encoding": sent, "If-None-Match": tag}
    )
    assert again.status_code == 304 and again.headers["etag"] == tag
    # The other JSON routes (through the whole stack) choose the same way.
    collapsed = http.get("/search", params={"q": "apollo", "collapse": "event"}).json()
    group = max(collapsed["collection"]["items"], key=lambda item: item["group"]["size"])
    members = http.get(f"/groups/{group['group']['id']}", headers={"Accept-Encoding": sent})
    assert members.headers["content-encoding"] == chosen and members.json()["collection"]["items"]


def test_a_bad_parameter_is_the_apis_json_reason(http: httpx.Client) -> None:
    response = http.get("/search", params={"q": "moon", "page": "0"})
    assert response.status_code == 400
    assert response.json() == {
        "reason": "Invalid value for 'page': '0' is not a positive whole number"
    }
    assert http.get("/search").json()["reason"]  # no parameter at all: one is required


CASES = [
    ("GET", {"q": "apollo", "page_size": "3"}, {"Accept-Encoding": "gzip, deflate, zstd"}),
    ("GET", {"q": "apollo", "page_size": "3"}, {"Accept-Encoding": "zstd;q=0.5, gzip"}),
    ("HEAD", {"q": "apollo", "page_size": "3"}, {"Accept-Encoding": "zstd"}),
    ("GET", {"q": "apollo"}, {}),
    ("GET", {"q": "apollo", "collapse": "event", "page_size": "3"}, {"Accept-Encoding": "gzip"}),
    ("GET", {"q": "apollo", "page_size": "3"}, {"Accept-Encoding": "identity"}),
    ("GET", {"q": "apollo", "page_size": "3"}, {"Accept-Encoding": "gzip;q=0, *;q=1"}),
    ("GET", {"q": "zzqx-nothing"}, {}),  # a lone page: no links, and under MIN_GZIP
    ("GET", {"q": "apollo", "page_size": "2"}, {"Origin": "https://elsewhere.example"}),
    ("GET", {"q": "apollo", "q2": "ignored", "page_size": "2"}, {"X-Request-ID": "a b\tc"}),
    ("HEAD", {"q": "apollo", "page_size": "4"}, {"Accept-Encoding": "gzip"}),
    ("HEAD", {"q": "apollo", "page_size": "4"}, {"Accept-Encoding": "identity"}),
    ("GET", {"q": "apollo", "highlight": "true", "facets": "center", "page_size": "2"}, {}),
    ("GET", {"q": "apollo", "page": "0"}, {}),
    ("GET", {"q": "apollo", "page_size": "many"}, {"Origin": "https://elsewhere.example"}),
    ("GET", {}, {}),
    ("GET", [("q", "apollo"), ("q", "moon"), ("page_size", "2")], {}),  # the last q counts
    ("GET", [("q", "apollo"), ("page", "1"), ("page", "x")], {}),
    ("GET", {"q": "apollo", "page_size": "2"}, {"Host": "evil.example/<b>"}),  # a 400
    ("GET", {"q": "apollo", "page_size": "2"}, {"Host": "api.example."}),
    (
        "OPTIONS",
        {"q": "apollo"},
        {"Origin": "https://a.example", "Access-Control-Request-Method": "GET"},
    ),
    ("POST", {"q": "apollo"}, {}),
]


@pytest.mark.parametrize(("method", "params", "headers"), CASES)
def test_the_fast_path_answers_as_the_whole_stack(
    http: httpx.Client,
    whole_stack: httpx.Client,
    method: str,
    params: dict[str, str] | list[tuple[str, str]],
    headers: dict[str, str],
) -> None:
    # One Host for both servers: the links in a page, so its ETag, are built from it.
    headers = {"X-Request-ID": "same-id", "Host": "api.example", **headers}
    answers = [
        client.request(method, "/search", params=params, headers=headers)
        for client in (http, whole_stack)
    ]
    for tags in ([], ["*"], [answers[0].headers.get("etag", '"none"')]):
        if tags and answers[0].status_code == 200:
            sent = {**headers, "If-None-Match": ", ".join(tags)}
            answers += [
                client.request(method, "/search", params=params, headers=sent)
                for client in (http, whole_stack)
            ]
    for fast, whole in zip(answers[::2], answers[1::2], strict=True):
        assert fast.status_code == whole.status_code
        assert [h for h in fast.headers.raw if h[0] != b"date"] == [
            h for h in whole.headers.raw if h[0] != b"date"
        ]
        assert fast.read() == whole.read()


def test_items_with_non_ascii_text_pass_through_unescaped(
    http: httpx.Client, loaded_settings: Settings
) -> None:
    with _stored(loaded_settings) as db:
        nasa_id, raw = db.execute(
            "SELECT nasa_id, raw FROM records WHERE raw GLOB '*[^ -~]*' LIMIT 1"
        ).fetchone()
    body = http.get("/search", params={"nasa_id": nasa_id}).content
    assert raw.encode() in body and json.loads(body)["collection"]["items"][0] == json.loads(raw)
