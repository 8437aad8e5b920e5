"""A fast path for ``GET``/``HEAD /search``: the page answered straight from the ASGI call.

Through the whole stack, a /search request crossed eleven ASGI layers (HeadAsGet, request
ids, Compression with Starlette's GZipMiddleware, CORS, AnswerFailures, FastAPI's error,
exception and exit-stack middleware, the router, the dependency solver validating 20 query
parameters) before the route ran: about 2 ms of CPU a request, as much as reading and
joining the page's 100 items. Here the same page, with the same headers in the same order,
is made in one layer; anything that is not a plain answer (a bad parameter, a failure, a
CORS preflight) goes down the whole stack, which answers it exactly as before. A page the
body cache already holds is answered on the event loop (``cached_answer``), without the
hop to a worker thread that a search needs.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..search_index import is_panic
from .responses import (
    MIN_GZIP,
    Body,
    BodyCache,
    _identity_tags,
    accepted_encodings,
    accepts_gzip,
    body_of,
    choose_encoding,
    compressed,
    etag_matches,
    gzip_tag,
    revalidated_tag,
)

#: What Starlette's CORS middleware adds to a simple (non-preflight) request with an
#: Origin header, with ``allow_origins=["*"]``, ``expose_headers=["ETag"]`` (app.py).
CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"ETag"),
]
#: The scope's state key that hands a failure down to the /search route (api.search_page).
FAILURE = "nivl.search_failure"
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class SearchFastPath:
    """Answer a plain ``/search`` here; hand everything else to ``app`` untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != "/search"
            or scope["method"] not in ("GET", "HEAD")
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            answer = cached_answer(request)
            if answer is None:
                answer = await anyio.to_thread.run_sync(search_answer, request)
        except BaseException as exc:
            # A bad parameter or a failure: the whole stack answers it as before (the JSON
            # reason, the request id in the log, a panic's 500), its /search route raising
            # this same exception rather than searching again.
            if not isinstance(exc, Exception) and not is_panic(exc):
                raise
            scope.setdefault("state", {})[FAILURE] = exc
            await self.app(scope, receive, send)
            return
        status, headers, data = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": data if scope["method"] == "GET" else b""}
        )


def search_answer(request: Request) -> Answer:
    """The status, headers and body the whole stack gives a /search that succeeds."""
    from .api import search_page

    app: Any = request.app
    cache: BodyCache = app.state.body_cache
    build, revision = search_page(request)
    key = (str(request.base_url), request.url.path, request.url.query, revision)
    body = cache.get(key)
    if body is None:
        body = cache.put(key, body_of(build(), revision))
    return answer_with(request, body, cache, key)


def cached_answer(request: Request) -> Answer | None:
    """``search_answer`` for a page the body cache holds in the form the client takes,
    made on the event loop; None for anything else (a page to search or compress, a
    library to refresh, a bad parameter or Host), which ``search_answer`` does in a thread.

    The thread hop (anyio's queue, a condition, the loop's wake-up) cost a cached page
    about 0.15 ms of its 0.4 ms of server CPU (300k records, loopback, one worker). What
    stays on the loop reads one SQLite row (the index's mark, ``Library.fresh_view``) and
    the cache: no search, reload or compression.
    """
    from .api import base_url, search_request_of

    app: Any = request.app
    library = app.state.library
    cache: BodyCache = app.state.body_cache
    try:
        view = library.fresh_view()
        if view is None:
            return None
        key = (str(request.base_url), request.url.path, request.url.query, view.revision)
        body = cache.get(key)  # looked up first: a page to search costs no parse more here
        if body is None or search_request_of(request, library).mode != "lexical":
            return None  # semantic pages are cached by the vectors' revision too
        base_url(request)  # a bad Host is a 400 even when the page is cached
    except Exception:
        return None  # answered, or raised again, on the whole way
    if len(body.data) >= MIN_GZIP and not _held(body, request):
        return None
    return answer_with(request, body, cache, key)


def _held(body: Body, request: Request) -> bool:
    """Whether the body's form this request takes is made already (or is the body)."""
    encoding = choose_encoding(request.headers.get("accept-encoding", ""))
    held = {"identity": body.data, "zstd": body.zstd, "gzip": body.gzipped}[encoding]
    return held is not None


def answer_with(request: Request, body: Body, cache: BodyCache, key: tuple[object, ...]) -> Answer:
    """The status, headers and body that answer ``request`` with ``body``."""
    headers = request.headers
    sent_encoding = headers.get("accept-encoding", "")
    encoding = choose_encoding(sent_encoding)
    sent_tags = headers.get("if-none-match", "")
    out: list[tuple[bytes, bytes]]
    if sent_tags and etag_matches(_identity_tags(sent_tags), body.etag):
        accepted = accepted_encodings(encoding, accepts_gzip(sent_encoding))
        tag = revalidated_tag(body.etag, accepted, sent_tags)
        status, data = 304, b""
        out = [(b"etag", tag.encode()), (b"cache-control", b"public, max-age=300")]
    elif encoding != "identity" and len(body.data) >= MIN_GZIP:
        status, data = 200, compressed(body, encoding, cache, key)
        out = [
            (b"etag", gzip_tag(body.etag, encoding).encode()),
            (b"cache-control", b"public, max-age=300"),
            (b"content-encoding", encoding.encode()),
            (b"content-length", str(len(data)).encode()),
            (b"content-type", b"application/json"),
        ]
    else:
        status, data = 200, body.data
        out = [
            (b"etag", body.etag.encode()),
            (b"cache-control", b"public, max-age=300"),
            (b"content-length", str(len(data)).encode()),
            (b"content-type", b"application/json"),
        ]
    if "origin" in headers:
        out += CORS_HEADERS
    out.append((b"vary", b"Accept-Encoding, Origin"))
    out.append((b"x-request-id", request_id(headers.get("x-request-id", "")).encode()))
    return status, out, data


def request_id(sent: str) -> str:
    """The request id RequestIdMiddleware (app.py) gives: the client's, cleaned, or new."""
    kept = "".join(c for c in sent if c.isalnum() or c in "-_")[:64]
    return kept or uuid.uuid4().hex[:16]
