"""Upstream-compatible JSON routes (same paths, same JSON) and nivl's extensions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.responses import JSONResponse, Response

from ..documents import Chunk, group_document, location_document, search_document, search_parts
from ..errors import BadRequest, RecordNotFound
from ..library import Library
from ..query import SearchRequest, group_id_of, parse_request
from ..records import https, parse_item
from ..urls import check_host, shown
from .fastpath import FAILURE
from .responses import json_response


class AnyText(PathConvertor):
    """``:path`` that takes newlines too (Starlette's ``.*`` stops at one, so an id holding a
    newline was a 404, and ``x%0A`` matched as ``x``: ``$`` matches before a final newline),
    and never nothing (``/album/`` would be every record)."""

    regex = r"[\s\S]+"


register_url_convertor("anytext", AnyText())
router = APIRouter()

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Invalid parameter",
        "content": {
            "application/json": {
                "example": {
                    "reason": "Invalid value for 'page': '0' is not a positive whole number"
                }
            }
        },
    },
    404: {
        "description": "Not found",
        "content": {"application/json": {"example": {"reason": "No record with nasa_id 'x'"}}},
    },
}
SEARCH_EXAMPLE = {
    "collection": {
        "version": "1.0",
        "href": "http://127.0.0.1:8000/search?q=apollo",
        "items": [
            {
                "href": "https://images-assets.nasa.gov/image/as11-40-5874/collection.json",
                "data": [
                    {
                        "nasa_id": "as11-40-5874",
                        "media_type": "image",
                        "title": "Apollo 11 Mission image",
                        "center": "JSC",
                        "date_created": "1969-07-20T00:00:00Z",
                    }
                ],
                "links": [
                    {
                        "href": "https://images-assets.nasa.gov/image/as11-40-5874/"
                        "as11-40-5874~thumb.jpg",
                        "rel": "preview",
                        "render": "image",
                    }
                ],
            }
        ],
        "metadata": {"total_hits": 1},
    }
}


class PageParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: str | None = Field(None, description="Page number, from 1.", examples=["1"])
    page_size: str | None = Field(
        None, description="Results per page (default 100).", examples=["100"]
    )
    sort: str | None = Field(
        None,
        description="nivl: relevance (default), date_desc, date_asc or added_desc (newest "
        "in this mirror first).",
        examples=["date_desc"],
    )
    collapse: str | None = Field(
        None,
        description="nivl: none (default here), caption, event "
        "or visual (same picture): show each group of duplicates once.",
        examples=["event"],
    )
    facets: str | None = Field(
        None,
        description="nivl: comma list of center, media_type, "
        "year, keywords, photographer: counts over all hits in "
        "collection.metadata.facets.",
        examples=["center,year"],
    )
    highlight: str | None = Field(
        None,
        description="nivl: true adds marked-up snippets in "
        "each item's 'highlight' key (data is never altered).",
        examples=["true"],
    )
    mode: str | None = Field(
        None,
        description="nivl: lexical (default here: BM25 over the words), semantic (by meaning) "
        "or hybrid (both, fused; the web UI's default); the last two use the built-in model "
        "(or the [semantic] extra's, once it has embedded every record) and rank only the "
        "best 200, so total_hits counts those.",
        examples=["hybrid"],
    )
    match: str | None = Field(
        None,
        description="nivl: auto (default: every word of q when that finds 50 records, else "
        "fewer, ranked by how much of q they match; typos tolerated) or all (every word as "
        "typed, stop words too).",
        examples=["all"],
    )


class SearchParams(PageParams):
    q: str | None = Field(
        None,
        description="Free text search terms (every text field and the nasa_id).",
        examples=["apollo 11"],
    )
    center: str | None = Field(
        None, description="NASA center that published the media.", examples=["JSC"]
    )
    description: str | None = Field(None, description="Terms in the description.")
    description_508: str | None = Field(None, description="Terms in the 508 description.")
    keywords: str | None = Field(
        None, description="Keywords; separate several with commas.", examples=["moon,apollo"]
    )
    location: str | None = Field(None, description="Terms in the location.")
    media_type: str | None = Field(
        None,
        description="image, video or audio; several comma-separated.",
        examples=["image,video"],
    )
    nasa_id: str | None = Field(None, description="The media asset's NASA ID (exact).")
    photographer: str | None = Field(None, description="Terms in the photographer's name.")
    secondary_creator: str | None = Field(None, description="Terms in a secondary creator.")
    title: str | None = Field(None, description="Terms in the title.")
    year_start: str | None = Field(
        None, description="First year (YYYY), inclusive.", examples=["1969"]
    )
    year_end: str | None = Field(
        None, description="Last year (YYYY), inclusive.", examples=["1972"]
    )


NasaId = Annotated[str, Path(description="The media asset's NASA ID (percent-encoded).")]


def library_of(request: Request) -> Library:
    library: Library = request.app.state.library
    library.refresh()
    return library


def base_url(request: Request) -> str:
    """The public URL setting, else this server's URL as the request names it (a Host
    that names no server is a 400: ``urls.check_host``)."""
    configured: str = request.app.state.settings.public_url
    if configured:
        return configured
    host = request.headers.get("host", "")
    if not host:  # HTTP/1.0, or an empty Host: the address the request reached
        name, port = request.scope.get("server") or ("localhost", None)
        host = (f"[{name}]" if ":" in name else name) + (f":{port}" if port else "")
    check_host(host)
    return f"{request.url.scheme}://{host}{request.scope.get('root_path', '')}".rstrip("/")


@router.get("/healthz", tags=["nivl"])
def healthz(request: Request) -> Response:
    """200 when searches can be answered, 503 (with the problem) when they cannot."""
    library = library_of(request)
    status = library.status()
    body = {"status": "ok" if status.pop("ok") else "failing", **status}
    if body["status"] == "ok":
        body["semantic"] = library.semantic_status()
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


@router.get(
    "/search",
    tags=["upstream"],
    responses={**ERRORS, 200: {"content": {"application/json": {"example": SEARCH_EXAMPLE}}}},
)
def search(request: Request, params: Annotated[SearchParams, Query()]) -> Response:
    """Search, exactly like upstream's /search (at least one parameter is required)."""
    build, revision = search_page(request)
    return json_response(request, build, revision=revision, cache=request.app.state.body_cache)


def search_page(request: Request) -> tuple[Callable[[], list[Chunk]], int]:
    """/search's body builder (the pieces it is joined from: a gzip client's multi-MB page
    is compressed from them, responses.stitched_gzip) and the revision it is cached at
    (web/fastpath.py too)."""
    failure = request.scope.get("state", {}).pop(FAILURE, None)
    if failure is not None:  # the fast path met it: answered here, as it always was
        raise failure
    library = library_of(request)
    search_request = search_request_of(request, library)
    view = library.view()  # the cache key and the answer come from one revision
    revision = view.revision if search_request.mode == "lexical" else library.semantic_revision
    base = base_url(request)  # a bad Host is a 400 even when the page is cached
    return (
        lambda: search_parts(
            library.search(search_request, view=view), base, window=_window(library)
        ),
        revision,
    )


def search_request_of(request: Request, library: Library) -> SearchRequest:
    """/search's parameters, checked (``NivlError`` for a bad one)."""
    fields = SearchParams.model_fields
    given = {key: value for key, value in request.query_params.items() if key in fields}
    return parse_request(given, library.limits)


class SuggestParams(BaseModel):
    model_config = ConfigDict(extra="ignore")
    q: str | None = Field(
        None,
        description="What has been typed so far; the last word may be unfinished.",
        examples=["apo"],
    )


class SuggestionOut(BaseModel):
    text: str = Field(description="The completed q (earlier words kept as typed).")
    count: int = Field(description="How many records hold the completion.")


class SuggestOut(BaseModel):
    q: str
    suggestions: list[SuggestionOut]


@router.get("/suggest", tags=["nivl"], response_model=SuggestOut, responses={400: ERRORS[400]})
def suggest(request: Request, params: Annotated[SuggestParams, Query()]) -> Response:
    """nivl: autocomplete. Up to 10 completions of ``q`` from the index's keywords (mission
    names such as "Apollo 11") and the words of titles, keywords and caption starts, most
    records first (a keyword counts double); an empty or missing ``q`` gets none."""
    library = library_of(request)
    q = request.query_params.get("q", "")
    found = library.suggest(q)
    body = {"q": q, "suggestions": [{"text": s.text, "count": s.count} for s in found]}
    return JSONResponse(body)


class SimilarParams(PageParams):
    media_type: str | None = Field(None, description="image, video or audio; comma-separated.")
    center: str | None = Field(None, description="NASA center that published the media.")
    year_start: str | None = Field(None, description="First year (YYYY), inclusive.")
    year_end: str | None = Field(None, description="Last year (YYYY), inclusive.")


@router.get("/similar/{nasa_id:anytext}", tags=["nivl"], responses=ERRORS)
def similar(
    request: Request, nasa_id: NasaId, params: Annotated[SimilarParams, Query()]
) -> Response:
    """More like this: records nearest in meaning to one record (with the [semantic] extra;
    without it, the records sharing most of its title and keyword words)."""
    library = library_of(request)
    search_request = parse_request(_given(request, params), library.limits, require_one=False)
    path = f"/similar/{_quote(nasa_id)}"
    base = base_url(request)
    return json_response(
        request,
        lambda: search_document(
            library.similar(nasa_id, search_request), base, path, window=_window(library)
        ),
        revision=library.semantic_revision,
        cache=request.app.state.body_cache,
    )


@router.get("/album/{album_name:anytext}", tags=["upstream"], responses=ERRORS)
def album(
    request: Request,
    album_name: Annotated[
        str, Path(description="Album name (case-sensitive; percent-encode a '/' in it).")
    ],
    params: Annotated[PageParams, Query()],
) -> Response:
    """The records of an album, paged like /search."""
    library = library_of(request)
    search_request = parse_request(
        _given(request, params), library.limits, require_one=False, album=album_name
    )
    result = library.search(search_request)
    if result.total_hits == 0:
        others = library.album_spellings(album_name)
        hint = f"; album names are case-sensitive: did you mean {_or(others)}?" if others else ""
        raise RecordNotFound(f"No album named {shown(album_name)}{hint}")
    path = f"/album/{_quote(album_name)}"
    document = search_document(result, base_url(request), path, window=_window(library))
    return json_response(request, lambda: document, revision=0)


@router.get("/groups/{group_id}", tags=["nivl"], responses=ERRORS)
def groups(
    request: Request,
    group_id: Annotated[str, Path(description="A group id from an item's 'group' key.")],
    params: Annotated[PageParams, Query()],
) -> Response:
    """nivl: the members of a caption/near/event group, in date order, paged."""
    library = library_of(request)
    number = group_id_of(group_id)
    if number is None:
        raise RecordNotFound(f"No group {shown(group_id)}: group ids are whole numbers below 2**63")
    paging = parse_request(_given(request, params), library.limits, require_one=False)
    page = library.group_page(number, page=paging.page, page_size=paging.page_size)
    document = group_document(page, base_url(request), window=_window(library))
    return json_response(request, lambda: document, revision=0)


@router.get("/asset/{nasa_id:anytext}", tags=["upstream"], responses=ERRORS)
def asset(request: Request, nasa_id: NasaId) -> Response:
    """The asset's rendition manifest: the stored one, else upstream's (then stored)."""
    manifest = library_of(request).asset_manifest(nasa_id)
    return json_response(request, lambda: _web_manifest(manifest), revision=0)


@router.get("/media/{folder}/{filename}", tags=["nivl"], responses=ERRORS)
def media(request: Request, folder: str, filename: str) -> Response:
    """nivl: a mirrored media file (``nivl media fetch``), with Range, ETag and caching."""
    from starlette.responses import FileResponse

    path = library_of(request).media_file(folder, filename)
    caching = {"Cache-Control": "public, max-age=86400"}
    response = FileResponse(path, headers=caching, stat_result=path.stat())
    etag = response.headers["etag"]
    wanted = (request.headers.get("if-none-match") or "").replace("W/", "")
    if etag in (tag.strip() for tag in wanted.split(",")) or wanted.strip() == "*":
        return Response(status_code=304, headers={"ETag": etag, **caching})
    return response


@router.get("/metadata/{nasa_id:anytext}", tags=["upstream"], responses=ERRORS)
def metadata(request: Request, nasa_id: NasaId) -> Response:
    """Where the asset's metadata.json lives: ``{"location": url}``."""
    library = library_of(request)
    stored = library.asset(nasa_id)["metadata_location"]
    location = _web_url(stored) or _asset_folder(library, nasa_id) + "metadata.json"
    return json_response(request, lambda: location_document(location), revision=0)


@router.get("/captions/{nasa_id:anytext}", tags=["upstream"], responses=ERRORS)
def captions(request: Request, nasa_id: NasaId) -> Response:
    """Where a video's captions file lives: ``{"location": url}``."""
    library = library_of(request)
    record = parse_item(_item(library, nasa_id))
    if record.media_type != "video":
        raise BadRequest(
            f"{shown(nasa_id)} is {record.media_type}, not a video: it has no captions"
        )
    stored = library.asset(nasa_id)["captions_location"]
    location = _web_url(stored) or _web_url(record.captions_href)
    if not location:
        raise RecordNotFound(f"No captions known for {shown(nasa_id)}")
    return json_response(request, lambda: location_document(location), revision=0)


def _given(request: Request, params: PageParams) -> dict[str, str]:
    """Parameters as sent (last value wins), limited to those the model declares."""
    fields = type(params).model_fields
    return {key: value for key, value in request.query_params.items() if key in fields}


def _item(library: Library, nasa_id: str) -> dict[str, object]:
    import orjson

    item: dict[str, object] = orjson.loads(library.item(nasa_id))
    return item


def _asset_folder(library: Library, nasa_id: str) -> str:
    """The folder of the item's own collection.json href, which holds its files."""
    href = _web_url(_item(library, nasa_id).get("href"))
    if href is None or href.count("/") < 3:
        raise RecordNotFound(f"No asset location known for {shown(nasa_id)}")
    return https(href.rsplit("/", 1)[0] + "/")


def _web_url(value: object) -> str | None:
    """``value`` verbatim if it is an http(s) URL with a host, else None: a record's links
    come from anywhere, and a ``javascript:`` location must never reach a client."""
    if not isinstance(value, str) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def _web_manifest(manifest: str) -> bytes:
    """The stored manifest verbatim, less any item whose href is not an http(s) URL."""
    import orjson

    try:
        document = orjson.loads(manifest)
        items = document["collection"]["items"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise RecordNotFound("The asset manifest stored for this record is unreadable") from None
    if not isinstance(items, list):
        raise RecordNotFound("The asset manifest stored for this record is unreadable")
    kept = [i for i in items if isinstance(i, dict) and _web_url(i.get("href"))]
    if len(kept) == len(items):
        return manifest.encode()
    document["collection"]["items"] = kept
    return orjson.dumps(document)


def _window(library: Library) -> int:
    return library.limits.max_result_window


def _or(names: list[str]) -> str:
    quoted = [shown(name) for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
