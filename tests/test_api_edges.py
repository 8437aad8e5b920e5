"""Issue 17's rough edges of the API, over real HTTP on loopback (items 15-17, 19-22, 24-26)."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from .conftest import RESPONSES

# --- 15: HEAD and the CORS preflight -------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/search?q=moon",
        "/healthz",
        "/metadata/0002272",
        "/album/NASA%20ScienceCasts",
        "/openapi.json",
        "/docs",
    ],
)
def test_head_answers_like_get_without_a_body(http: httpx.Client, path: str) -> None:
    got = http.get(path, headers={"Accept-Encoding": "identity"})
    head = http.head(path, headers={"Accept-Encoding": "identity"})
    assert got.status_code == 200
    assert head.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))
    if "etag" in got.headers:
        assert head.headers["etag"] == got.headers["etag"]


def test_head_of_an_error_is_the_error_status(http: httpx.Client) -> None:
    assert http.head("/search").status_code == 400
    assert http.head("/metadata/no-such-id").status_code == 404


def test_refused_cors_preflight_is_json_with_a_reason(http: httpx.Client) -> None:
    response = http.options(
        "/search",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "DELETE"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert "method" in response.json()["reason"]
    allowed = http.options(
        "/search",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "HEAD"},
    )
    assert allowed.status_code == 200


# --- 16: collection.links only when there is a next or previous page -----------------


def _recorded_single_pages() -> list[dict]:
    """Recorded upstream search pages that hold all their hits (no next page)."""
    pages = []
    for path in sorted(RESPONSES.glob("search__*.json")):
        collection = json.loads(path.read_text())["collection"]
        if collection["metadata"]["total_hits"] <= len(collection["items"]):
            pages.append(collection)
    return pages


def test_links_key_is_left_out_like_upstream_when_there_is_no_other_page(
    http: httpx.Client,
) -> None:
    recorded = _recorded_single_pages()
    assert len(recorded) >= 4  # keywords=abc, andromeda, saucer, the empty earthdsdsds
    assert all("links" not in collection for collection in recorded)
    for params in ({"q": "andromeda"}, {"q": "earthdsdsds"}, {"nasa_id": "0002272"}):
        collection = http.get("/search", params=params).json()["collection"]
        assert collection["metadata"]["total_hits"] <= len(collection["items"])
        assert set(collection) == {"version", "href", "items", "metadata"}, params
    # A client written against upstream, as documents.py describes: test the key, read [0].
    first = http.get("/search", params={"q": "moon", "page_size": "5"}).json()["collection"]
    assert first["links"][0]["rel"] == "next"
    last_page = -(-first["metadata"]["total_hits"] // 5)
    last = http.get("/search", params={"q": "moon", "page_size": "5", "page": str(last_page)})
    links = last.json()["collection"]["links"]
    assert [link["rel"] for link in links] == ["prev"]
    group = http.get("/search", params={"q": "evening stars 2019", "collapse": "event"})
    group_id = max(group.json()["collection"]["items"], key=lambda i: i["group"]["size"])
    members = http.get(f"/groups/{group_id['group']['id']}").json()["collection"]
    assert "links" not in members


# --- 17: Vary, Accept-Encoding q-values, one ETag per encoding -----------------------


def _vary(response: httpx.Response) -> list[str]:
    return [v.strip().lower() for v in response.headers.get("vary", "").split(",") if v.strip()]


@pytest.mark.parametrize("path", ["/search?q=moon", "/?q=moon", "/openapi.json"])
def test_vary_names_each_header_once(http: httpx.Client, path: str) -> None:
    for encoding in ("gzip", "identity"):
        response = http.get(
            path, headers={"Accept-Encoding": encoding, "Origin": "https://app.example"}
        )
        vary = _vary(response)
        assert "accept-encoding" in vary, (path, encoding, vary)
        assert len(vary) == len(set(vary)), (path, encoding, vary)


@pytest.mark.parametrize("path", ["/search?q=moon", "/?q=moon", "/openapi.json"])
@pytest.mark.parametrize("refusal", ["gzip;q=0", "gzip; q=0.000, identity", "*;q=0, identity"])
def test_gzip_refused_with_q_zero_is_not_sent(http: httpx.Client, path: str, refusal: str) -> None:
    response = http.get(path, headers={"Accept-Encoding": refusal})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers, (path, refusal)


@pytest.mark.parametrize("path", ["/search?q=moon", "/?q=moon", "/static/nivl.css"])
def test_gzip_and_identity_bodies_have_their_own_etags(http: httpx.Client, path: str) -> None:
    # httpx would decode the gzip body; read the raw bytes to see what was sent.
    with http.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as zipped:
        zipped_bytes = b"".join(zipped.iter_raw())
    plain = http.get(path, headers={"Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(zipped_bytes) == plain.content
    assert zipped.headers["etag"] != plain.headers["etag"]
    for tag, encoding in ((zipped.headers["etag"], "gzip"), (plain.headers["etag"], "identity")):
        again = http.get(path, headers={"Accept-Encoding": encoding, "If-None-Match": tag})
        assert again.status_code == 304, (path, encoding)
        assert again.headers["etag"] == tag
        listed = http.get(
            path,
            headers={"Accept-Encoding": encoding, "If-None-Match": f'"other", W/{tag}'},
        )
        assert listed.status_code == 304, (path, encoding)
    stale = http.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": '"stale"'})
    assert stale.status_code == 200
