"""The upstream-compatible API over real HTTP on loopback."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest

from .conftest import RESPONSES


def test_healthz(http: httpx.Client) -> None:
    body = http.get("/healthz").json()
    assert body["status"] == "ok" and body["records"] == body["indexed"] == 1538


def test_search_is_upstream_shaped_with_verbatim_items(
    http: httpx.Client, shared_items: list[dict]
) -> None:
    response = http.get("/search", params={"q": "apollo"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    collection = response.json()["collection"]
    assert set(collection) == {"version", "href", "items", "metadata", "links"}
    assert collection["version"] == "1.0"
    assert collection["href"].startswith(str(http.base_url).rstrip("/") + "/search?")
    assert len(collection["items"]) == 100  # upstream's default page size
    by_id = {i["data"][0]["nasa_id"]: i for i in shared_items}
    for item in collection["items"]:
        assert item == by_id[item["data"][0]["nasa_id"]]
    assert collection["links"] == [
        {"rel": "next", "prompt": "Next", "href": collection["links"][0]["href"]}
    ]
    assert "page=2" in collection["links"][0]["href"]


def test_links_follow_each_requests_host_even_from_the_cache(http: httpx.Client) -> None:
    """Answers are cached per URL; the links in them are built from the Host asked for."""
    params = {"q": "apollo host links", "page_size": "5"}
    for host in ("one.example:8000", "two.example:8000", "one.example:8000"):
        collection = http.get("/search", params=params, headers={"Host": host}).json()
        assert collection["collection"]["href"].startswith(f"http://{host}/search?")


def test_upstream_recorded_shape_matches(http: httpx.Client) -> None:
    """Our keys and nesting equal those of a real recorded upstream answer."""
    recorded = json.loads((RESPONSES / "search__q=helmet__src-RobEato.json").read_text())
    ours = http.get("/search", params={"q": "helmet"}).json()

    assert set(ours) == set(recorded) == {"collection"}
    assert set(ours["collection"]) == set(recorded["collection"])
    assert set(ours["collection"]["items"][0]) == set(recorded["collection"]["items"][0])
    assert set(ours["collection"]["metadata"]) == set(recorded["collection"]["metadata"])
    assert {link["rel"] for link in ours["collection"]["links"]} <= {"next", "prev"}
    assert all(
        set(link) == {"rel", "prompt", "href"}
        for link in recorded["collection"]["links"] + ours["collection"]["links"]
    )


def test_paging_follows_next_links_without_repeats_or_gaps(http: httpx.Client) -> None:
    first = http.get("/search", params={"q": "space", "page_size": "50"}).json()["collection"]
    total = first["metadata"]["total_hits"]
    seen = [i["data"][0]["nasa_id"] for i in first["items"]]
    collection = first
    pages = 1
    while nxt := [link for link in collection.get("links", []) if link["rel"] == "next"]:
        collection = http.get(nxt[0]["href"]).json()["collection"]
        seen += [i["data"][0]["nasa_id"] for i in collection["items"]]
        pages += 1
        assert any(link["rel"] == "prev" for link in collection["links"])
    assert len(seen) == len(set(seen)) == total
    assert pages == -(-total // 50)


@pytest.mark.parametrize(
    "params",
    [
        {"center": "JPL"},
        {"media_type": "audio"},
        {"year_start": "1969", "year_end": "1969"},
        {"keywords": "Apollo 11"},
        {"title": "mars"},
        {"description": "nebula"},
        {"photographer": "bill"},
        {"location": "greenbelt"},
        {"secondary_creator": "nasa"},
        {"description_508": "astronaut"},
        {"nasa_id": "0002272"},
        {"q": "moon", "page": "2"},
    ],
)
def test_every_upstream_parameter(http: httpx.Client, params: dict) -> None:
    response = http.get("/search", params=params)
    assert response.status_code == 200
    collection = response.json()["collection"]
    assert collection["metadata"]["total_hits"] > 0
    assert collection["items"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("q=x&page=0", "page"),
        ("q=x&page_size=-5", "page_size"),
        ("q=x&page_size=99999999", "page_size"),
        ("q=x&year_start=abc", "year_start"),
        ("media_type=hologram", "media_type"),
        ("q=x&page=1e9", "page"),
        ("q=x&sort=random", "sort"),
        ("q=x&collapse=maybe", "collapse"),
        ("q=x&highlight=perhaps", "highlight"),
        ("q=x&facets=colour", "facets"),
        ("q=" + "a" * 10001, "q"),
    ],
)
def test_invalid_parameters_are_400_naming_the_parameter(
    http: httpx.Client, query: str, parameter: str
) -> None:
    response = http.get(f"/search?{query}")
    assert response.status_code == 400
    assert parameter in response.json()["reason"]


def test_no_parameter_is_400_like_upstream(http: httpx.Client) -> None:
    response = http.get("/search")
    assert response.status_code == 400
    assert "at least one" in response.json()["reason"]


def test_unknown_path_is_404_json(http: httpx.Client) -> None:
    response = http.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json() == {"reason": "Not found"}


def test_percent_encoded_ids_with_spaces(http: httpx.Client, shared_items: list[dict]) -> None:
    spaced = [i for i in shared_items if " " in i["data"][0]["nasa_id"]]
    for item in spaced[:20]:
        nasa_id = item["data"][0]["nasa_id"]
        response = http.get("/metadata/" + quote(nasa_id, safe=""))
        assert response.status_code == 200, nasa_id
        folder = item["href"].rsplit("/", 1)[0].replace("http://", "https://")
        assert response.json() == {"location": folder + "/metadata.json"}
        found = http.get("/search", params={"nasa_id": nasa_id}).json()["collection"]
        assert [i["data"][0]["nasa_id"] for i in found["items"]] == [nasa_id]


def test_metadata_and_captions(http: httpx.Client, shared_items: list[dict]) -> None:
    assert http.get("/metadata/no-such-id").status_code == 404
    assert "reason" in http.get("/metadata/no-such-id").json()
    video = next(
        i for i in shared_items if any(link.get("rel") == "captions" for link in i.get("links", []))
    )
    response = http.get("/captions/" + quote(video["data"][0]["nasa_id"], safe=""))
    captions = next(link["href"] for link in video["links"] if link["rel"] == "captions")
    assert response.json() == {"location": captions}
    image = next(i for i in shared_items if i["data"][0]["media_type"] == "image")
    response = http.get("/captions/" + quote(image["data"][0]["nasa_id"], safe=""))
    assert response.status_code == 400 and "not a video" in response.json()["reason"]
    assert http.get("/captions/nope").status_code == 404


def test_asset_offline_says_what_to_do(http: httpx.Client) -> None:
    """No stored manifest and upstream unreachable (the fixture's OFFLINE): a 503 whose
    reason says how to get one; an unknown id is still a 404, asking nobody."""
    response = http.get("/asset/0002272")
    assert response.status_code == 503
    reason = response.json()["reason"]
    assert "could not be reached" in reason and "nivl harvest --all" in reason
    assert http.get("/asset/not-an-id").status_code == 404


def test_album_is_case_sensitive_and_paged(http: httpx.Client, shared_items: list[dict]) -> None:
    expected = [
        i
        for i in shared_items
        if "NASA ScienceCasts" in (i["data"][0].get("album") or [])
        or i["data"][0].get("album") == "NASA ScienceCasts"
    ]
    response = http.get("/album/NASA%20ScienceCasts", params={"page_size": "2"})
    collection = response.json()["collection"]
    assert collection["metadata"]["total_hits"] == len(expected)
    assert http.get("/album/nasa%20sciencecasts").status_code == 404


def test_cors_etag_gzip(http: httpx.Client) -> None:
    response = http.get(
        "/search",
        params={"q": "moon"},
        headers={"Origin": "https://app.example", "Accept-Encoding": "gzip"},
    )
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["content-encoding"] == "gzip"
    assert "max-age" in response.headers["cache-control"]
    again = http.get(
        "/search", params={"q": "moon"}, headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304
    preflight = http.options(
        "/search", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 200


def test_extensions_only_when_asked(http: httpx.Client) -> None:
    plain = http.get("/search", params={"q": "moon", "page_size": "5"}).json()["collection"]
    assert "facets" not in plain["metadata"]
    assert all(set(i) <= {"href", "data", "links"} for i in plain["items"])
    rich = http.get(
        "/search",
        params={
            "q": "moon",
            "page_size": "5",
            "facets": "center,year",
            "highlight": "true",
            "sort": "date_asc",
        },
    ).json()
    collection = rich["collection"]
    assert (
        sum(collection["metadata"]["facets"]["center"].values())
        == (collection["metadata"]["total_hits"])
    )
    assert any("<b>" in i.get("highlight", {}).get("title", "") for i in collection["items"])
    dates = [i["data"][0]["date_created"] for i in collection["items"]]
    assert dates == sorted(dates)


def test_openapi_documents_every_parameter(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    names = {p["name"] for p in spec["paths"]["/search"]["get"]["parameters"]}
    from nivl.query import UPSTREAM_PARAMETERS

    assert set(UPSTREAM_PARAMETERS) | {"sort", "collapse", "facets", "highlight"} <= names
    assert all(p.get("description") for p in spec["paths"]["/search"]["get"]["parameters"])
    assert http.get("/docs").status_code == 200


def test_hostile_ids_and_queries(http: httpx.Client) -> None:
    for path in [
        "/metadata/..%2F..%2Fetc%2Fpasswd",
        "/asset/%00",
        "/captions/%2e%2e",
        "/metadata/" + "x" * 5000,
    ]:
        response = http.get(path)
        assert response.status_code in (400, 404), path
        assert "reason" in response.json()
    response = http.get("/search", params={"q": "'; DROP TABLE records; --"})
    assert response.status_code == 200
    assert http.get("/healthz").json()["records"] == 1538


def test_an_unexpected_failure_is_500_json_with_a_request_id(library, shared_items) -> None:  # type: ignore[no-untyped-def]
    """Corrupt data written behind nivl's back gives a reason, never a stack trace."""
    from nivl.records import parse_item
    from nivl.web.app import create_app

    from .servers import running

    library.store.upsert_records([parse_item(shared_items[0])])
    nasa_id = shared_items[0]["data"][0]["nasa_id"]
    with library.store.transaction() as conn:
        conn.execute("UPDATE records SET raw = '{broken' WHERE nasa_id = ?", (nasa_id,))
    with running(create_app(library.settings, library=library)) as url:
        response = httpx.get(f"{url}/captions/{nasa_id}", headers={"X-Request-ID": "test-42"})
    assert response.status_code == 500
    body = response.json()
    assert body == {"reason": "Internal server error", "request_id": "test-42"}
    assert response.headers["x-request-id"] == "test-42"


def test_collapse_and_expand_a_group(http: httpx.Client) -> None:
    plain = http.get("/search", params={"q": "evening stars 2019", "page_size": "100"}).json()
    collapsed = http.get(
        "/search", params={"q": "evening stars 2019", "collapse": "event", "page_size": "100"}
    ).json()["collection"]
    assert collapsed["metadata"]["total_hits"] == plain["collection"]["metadata"]["total_hits"]
    assert collapsed["metadata"]["total_groups"] < collapsed["metadata"]["total_hits"]
    biggest = max(collapsed["items"], key=lambda item: item["group"]["size"])
    group = biggest["group"]
    assert group["level"] == "event" and group["size"] > 1
    members: list[dict] = []
    url = f"/groups/{group['id']}?page_size=10"
    while url:
        page = http.get(url).json()["collection"]
        assert page["metadata"]["group"] == group
        members += page["items"]
        url = next((link["href"] for link in page.get("links", []) if link["rel"] == "next"), "")
    ids = [m["data"][0]["nasa_id"] for m in members]
    assert len(ids) == len(set(ids)) == group["size"]
    assert biggest["data"][0]["nasa_id"] in ids
    dates = [m["data"][0]["date_created"] for m in members]
    assert dates == sorted(dates)


@pytest.mark.parametrize("group_id", ["123", "abc", "99999999999999999999999", "-1"])
def test_unknown_groups_are_404(http: httpx.Client, group_id: str) -> None:
    response = http.get(f"/groups/{group_id}")
    assert response.status_code == 404 and "reason" in response.json()
