"""Issue 17's rough edges of the API, over real HTTP on loopback (items 15-17, 19-22, 24-26)."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from nivl import Library, Settings
from nivl.web.app import create_app

from .conftest import RESPONSES
from .servers import running

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


# --- a home of awkward records, built here --------------------------------------------

ASSETS = "https://images-assets.nasa.gov"


def _item(nasa_id: str, media_type: str = "image", **data: object) -> dict:
    folder = f"{ASSETS}/{media_type}/{quote(nasa_id.strip(), safe='')}"
    return {
        "href": f"{folder}/collection.json",
        "data": [
            {
                "nasa_id": nasa_id,
                "media_type": media_type,
                "title": f"Edge record {nasa_id!r}",
                "center": "JSC",
                "date_created": "2020-01-02T00:00:00Z",
                **data,
            }
        ],
    }


EDGE_ITEMS = [
    _item("edge\nnewline", album=["Apollo/Skylab"], description="A record whose id has a newline"),
    _item("edge-trailing", title="Plain twin"),
    _item("edge-trailing\n", title="Newline twin"),
    {
        **_item("edge-video\nclip", "video"),
        "links": [{"href": f"{ASSETS}/video/clip/clip.srt", "rel": "captions"}],
    },
    {
        **_item("evil-video", "video"),
        "href": "javascript:alert(1)//images-assets.nasa.gov/x/collection.json",
        "links": [{"href": "javascript:alert(1)", "rel": "captions"}],
    },
    {
        **_item("evil-video-2", "video"),
        "links": [{"href": "data:text/html,<script>alert(1)</script>", "rel": "captions"}],
    },
    _item("edge-case-1", album=["Edge Album"]),
    _item("edge-case-2", album=["EDGE ALBUM"]),
    _item("edge-case-3", album=["EDGE ALBUM"]),
    _item("edge-other", album=["Edge Albums of 2020"]),
]


@pytest.fixture(scope="module")
def edges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("edges") / "home"
    source = home.parent / "edges.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in EDGE_ITEMS))
    settings = Settings.from_env({}, home=str(home))
    with Library(settings) as library:
        assert library.import_paths([source]).rejected == 0
        library.store.put_asset(
            "evil-video",
            metadata_location="javascript:alert(2)",
            captions_location="JavaScript:alert(3)",
            manifest=json.dumps(
                {
                    "collection": {
                        "version": "1.0",
                        "href": "https://images-api.nasa.gov/asset/evil-video",
                        "items": [
                            {"href": "javascript:alert(4)"},
                            {"href": f"{ASSETS}/video/evil-video/evil-video~orig.mp4"},
                            {"href": " vbscript:msgbox(5)"},
                        ],
                    }
                }
            ),
        )
        library.store.put_asset("edge\nnewline", manifest='{"collection": {"items": []}}')
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


# --- 19: a browser asking for an unknown URL gets the HTML 404 page ------------------

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("path", ["/no/such/thing", "/search/extra", "/favicon.ico"])
def test_unknown_url_is_the_html_404_page_for_a_browser(http: httpx.Client, path: str) -> None:
    page = http.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "We couldn’t find that" in page.text and path in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for accept in ("*/*", "application/json", "application/json, text/html;q=0.5"):
        response = http.get(path, headers={"Accept": accept})
        assert response.status_code == 404
        assert response.json() == {"reason": "Not found"}, accept
    # A known API route keeps its JSON error even for a browser.
    api = http.get("/metadata/no-such-id", headers={"Accept": BROWSER_ACCEPT})
    assert api.status_code == 404 and "reason" in api.json()


# --- 20: numbers past 64 bits -----------------------------------------------------------


def _two_requests_on_one_connection(base: str, first: str, second: str) -> list[str]:
    """Status lines of two requests sent one after the other on one keep-alive socket."""
    host, port = base.removeprefix("http://").split(":")
    statuses = []
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((host, int(port)), timeout=10))
        reader = stack.enter_context(sock.makefile("rb"))
        for path in (first, second):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status = reader.readline().decode().strip()
            statuses.append(status)
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            reader.read(length)
    return statuses


@pytest.mark.parametrize(
    "path",
    [
        "/group/event/99999999999999999999999",
        "/group/18446744073709551616",
        "/group/near/9223372036854775808",
        "/group/caption/-1",
        "/group/abc",
        "/groups/18446744073709551616",
        "/groups/00000000000000000000000000000001",
    ],
)
def test_group_ids_past_64_bits_are_404_and_keep_the_connection(
    http: httpx.Client, api_url: str, path: str
) -> None:
    response = http.get(path, headers={"Accept": "application/json"})
    assert response.status_code == 404, response.text
    assert (
        "reason" in response.json()
        if response.headers["content-type"].startswith("application/json")
        else "group" in response.text
    )
    statuses = _two_requests_on_one_connection(api_url, path, "/healthz")
    assert statuses[0].startswith("HTTP/1.1 404"), statuses
    assert statuses[1] == "HTTP/1.1 200 OK", statuses


def test_a_500_leaves_the_connection_usable(library: Library, shared_items: list[dict]) -> None:
    """Any unexpected failure (corrupt data behind nivl's back): the 500 is complete and
    the client's next request on the connection is answered, not reset."""
    from nivl.records import parse_item

    library.store.upsert_records([parse_item(shared_items[0])])
    nasa_id = shared_items[0]["data"][0]["nasa_id"]
    with library.store.transaction() as conn:
        conn.execute("UPDATE records SET raw = '{broken' WHERE nasa_id = ?", (nasa_id,))
    with running(create_app(library.settings, library=library)) as url:
        path = "/captions/" + quote(nasa_id, safe="")
        statuses = _two_requests_on_one_connection(url, path, "/healthz")
        failed = httpx.get(url + path, headers={"Origin": "https://app.example"})
        page = httpx.get(url + "/item/" + quote(nasa_id, safe=""))
    assert statuses == ["HTTP/1.1 500 Internal Server Error", "HTTP/1.1 200 OK"]
    body = failed.json()
    assert body["reason"] == "Internal server error"
    assert body["request_id"] == failed.headers["x-request-id"]
    assert failed.headers["access-control-allow-origin"] == "*"  # a web app can read why
    assert page.status_code == 500 and "Something went wrong" in page.text


def test_group_show_past_64_bits_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    """The same fault in the CLI: SQLite overflowed on the id (``Library.group_page``)."""
    from .test_cli import nivl

    done = nivl("group", "show", "18446744073709551616", home=tmp_path / "home")
    assert done.returncode == 1, done.stderr
    assert "No group with id 18446744073709551616" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("q=moon&page=18446744073709551616", "page"),
        ("q=moon&page_size=99999999999999999999999", "page_size"),
        ("q=moon&year_start=99999999999999999999", "year_start"),
        ("q=moon&year_end=-1", "year_end"),
    ],
)
def test_huge_numbers_in_parameters_are_400(http: httpx.Client, query: str, parameter: str) -> None:
    paths = ["/search", "/similar/0002272", "/"]
    if parameter.startswith("page"):  # /album takes paging only
        paths.append("/album/NASA%20ScienceCasts")
    for path in paths:
        response = http.get(f"{path}?{query}", headers={"Accept": "application/json"})
        assert response.status_code == 400, (path, query)
        if path != "/":
            assert parameter in response.json()["reason"]


# --- 21: ids holding a newline, albums holding a slash ---------------------------------


@pytest.mark.parametrize("route", ["/item/", "/asset/", "/metadata/", "/similar/"])
def test_ids_with_a_newline_reach_every_route(edges: httpx.Client, route: str) -> None:
    found = edges.get("/search", params={"q": "newline"}).json()["collection"]
    assert "edge\nnewline" in [i["data"][0]["nasa_id"] for i in found["items"]]
    response = edges.get(route + quote("edge\nnewline", safe=""))
    assert response.status_code == 200, (route, response.text)


def test_a_video_id_with_a_newline_has_captions(edges: httpx.Client) -> None:
    response = edges.get("/captions/" + quote("edge-video\nclip", safe=""))
    assert response.json() == {"location": f"{ASSETS}/video/clip/clip.srt"}


def test_a_trailing_newline_is_part_of_the_id(edges: httpx.Client) -> None:
    """``x%0A`` used to match the route as ``x``, serving a different record."""
    twin = edges.get("/item/" + quote("edge-trailing\n", safe=""))
    assert twin.status_code == 200
    assert "<h1>Newline twin</h1>" in twin.text
    metadata = edges.get("/metadata/" + quote("edge-trailing\n", safe="")).json()
    assert metadata == {"location": f"{ASSETS}/image/edge-trailing/metadata.json"}


@pytest.mark.parametrize("path", ["/album/", "/similar/", "/asset/", "/item/"])
def test_an_empty_name_is_404(edges: httpx.Client, path: str) -> None:
    assert edges.get(path).status_code == 404


def test_an_album_with_a_slash_is_reachable(edges: httpx.Client) -> None:
    response = edges.get("/album/" + quote("Apollo/Skylab", safe=""))
    assert response.status_code == 200, response.text
    items = response.json()["collection"]["items"]
    assert [i["data"][0]["nasa_id"] for i in items] == ["edge\nnewline"]
    assert response.json()["collection"]["href"].split("?")[0].endswith("/album/Apollo%2FSkylab")


# --- 22: only http(s) locations go out -------------------------------------------------


def test_hostile_locations_never_go_out(edges: httpx.Client) -> None:
    for nasa_id in ("evil-video", "evil-video-2"):
        captions = edges.get(f"/captions/{nasa_id}")
        assert captions.status_code == 404, captions.text
        assert "reason" in captions.json()
    metadata = edges.get("/metadata/evil-video")
    assert metadata.status_code == 404 and "reason" in metadata.json()
    manifest = edges.get("/asset/evil-video").json()
    assert [i["href"] for i in manifest["collection"]["items"]] == [
        f"{ASSETS}/video/evil-video/evil-video~orig.mp4"
    ]
    for path in ("/captions/evil-video", "/metadata/evil-video", "/asset/evil-video"):
        body = edges.get(path).text.lower()
        assert "javascript:" not in body and "vbscript:" not in body, path


# --- 24: q="" -----------------------------------------------------------------------


@pytest.mark.parametrize("empty", ['""', '"" ""', ' "" '])
def test_an_empty_phrase_matches_every_record(http: httpx.Client, empty: str) -> None:
    everything = http.get("/healthz").json()["records"]
    for name in ("q", "title", "description"):
        response = http.get("/search", params={name: empty, "page_size": "1"})
        assert response.status_code == 200
        assert response.json()["collection"]["metadata"]["total_hits"] == everything, name
    narrowed = http.get("/search", params={"q": '"" moon', "page_size": "1"}).json()
    moon = http.get("/search", params={"q": "moon", "page_size": "1"}).json()
    assert narrowed["collection"]["metadata"] == moon["collection"]["metadata"]


def test_the_recorded_upstream_q_quotes_request_searches_22_as_upstream_did(
    http: httpx.Client,
) -> None:
    """The recorded ``q=%22%22`` page (every item holds "22") is a double-encoded request."""
    recorded = json.loads((RESPONSES / "search__q=__src-andreasVHoly.json").read_text())
    assert all("22" in json.dumps(i["data"]) for i in recorded["collection"]["items"])
    ours = http.get("/search?q=%2522%2522").json()["collection"]
    assert ours["items"] and all("22" in json.dumps(i["data"]) for i in ours["items"])


# --- 25: one length limit for every text parameter, long enough for a caption -----------


def _longest_caption(items: list[dict]) -> dict:
    captioned = [i for i in items if i["data"][0]["media_type"] in ("image", "video")]
    return max(captioned, key=lambda i: len(i["data"][0].get("description") or ""))


def test_a_whole_pasted_caption_finds_its_record(
    http: httpx.Client, shared_items: list[dict]
) -> None:
    item = _longest_caption(shared_items)
    caption = item["data"][0]["description"]
    assert len(caption) > 1000
    for name in ("description", "q"):
        response = http.get("/search", params={name: caption})
        assert response.status_code == 200, response.text
        ids = [i["data"][0]["nasa_id"] for i in response.json()["collection"]["items"]]
        assert item["data"][0]["nasa_id"] in ids, name


@pytest.mark.parametrize("name", ["q", "description", "title", "keywords", "photographer"])
def test_every_text_parameter_has_the_same_limit(http: httpx.Client, name: str) -> None:
    limit = Settings.from_env({}, home="/nonexistent").max_query_length
    assert http.get("/search", params={name: "a " * (limit // 2)}).status_code == 200
    response = http.get("/search", params={name: "a" * (limit + 1)})
    assert response.status_code == 400
    assert name in response.json()["reason"] and str(limit) in response.json()["reason"]


# --- 26: album names differing only by case -----------------------------------------------


def test_album_404_names_the_albums_that_differ_only_by_case(
    http: httpx.Client, edges: httpx.Client
) -> None:
    response = http.get("/album/nasa%20sciencecasts")
    assert response.status_code == 404
    assert "'NASA ScienceCasts'" in response.json()["reason"]
    response = edges.get("/album/edge%20album")
    assert response.status_code == 404
    reason = response.json()["reason"]
    assert "'EDGE ALBUM' or 'Edge Album'" in reason  # commonest first
    assert "Albums of 2020" not in reason
    unknown = http.get("/album/no%20such%20album").json()["reason"]
    assert unknown == "No album named 'no such album'"
