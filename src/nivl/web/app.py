"""``create_app(settings)``: the FastAPI app, its lifespan, and the one error handler."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import NivlError, SearchIndexError
from ..library import Library
from ..search_index import is_panic
from ..settings import Settings
from . import fastpath
from .responses import BodyCache, Compression

log = logging.getLogger("nivl.web")
#: Answers kept for repeated requests, in bytes for the whole server: each process of
#: ``--workers N`` keeps its share, so more workers do not take more memory (a page of
#: 100 items, kept raw and gzipped, is about a megabyte: the largest part of a worker).
BODY_CACHE_BYTES = 64 * 2**20


def app_from_env() -> FastAPI:
    """The app of one of ``nivl serve --workers N``'s processes (settings from NIVL_*)."""
    return create_app(Settings.from_env())


def create_app(settings: Settings, *, library: Library | None = None) -> FastAPI:
    """Build the app; it opens the home's library on start-up unless one is passed in."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = library is None
        follower = None
        if own and settings.read_only:  # a replica: follows its home's symlink (replica.py)
            from ..replica import Follower

            def publish(fresh: Library) -> None:
                app.state.library = fresh

            follower = Follower(settings, publish=publish)
        else:
            app.state.library = library or Library(settings)
        for note in app.state.library.notes:  # a rebuilt index, stale derived state
            log.warning("%s", note)
        if own:
            app.state.library.warm_semantic()  # load the model now, not on the first query
            app.state.library.warm_pictures()  # HOME/media, after startup, not before it
        if follower is not None:
            follower.start()
        try:
            yield
        finally:
            if follower is not None:
                follower.close()
            elif own:
                app.state.library.close()

    app = FastAPI(
        title="nivl",
        version=__version__,
        description=(
            "A drop-in for NASA's Image and Video Library API (images-api.nasa.gov): the same "
            "paths and JSON, plus sort, collapse, facets and highlights when asked for."
        ),
        lifespan=lifespan,
        docs_url=None,  # docs.mount: served from the package, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.body_cache = BodyCache(BODY_CACHE_BYTES // settings.serve_workers)
    app.add_middleware(AnswerFailures)
    app.add_middleware(
        JSONCORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "HEAD"],
        allow_headers=["*"],
        expose_headers=["ETag"],
    )
    app.add_middleware(Compression)  # outside CORS: it tidies the Vary header CORS extends
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HeadAsGet)  # HEAD's headers are GET's, compressed or not
    app.add_middleware(fastpath.SearchFastPath)  # outermost: a plain /search skips the rest
    app.add_exception_handler(NivlError, handle_exception)
    app.add_exception_handler(Exception, handle_exception)
    app.add_exception_handler(StarletteHTTPException, handle_exception)
    app.add_exception_handler(RequestValidationError, handle_exception)

    from . import api, docs, iiif, research, ui

    app.include_router(iiif.router)
    app.include_router(api.router)
    app.include_router(research.router)
    docs.mount(app)
    ui.mount(app)
    return app


class HeadAsGet:
    """Answer HEAD on every route as GET without the body (FastAPI's ``@get`` routes, the
    docs and openapi.json would say 405), as RFC 9110 asks of any GET resource."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


class JSONCORSMiddleware(CORSMiddleware):
    """CORS whose refused preflight is the API's JSON error, not Starlette's plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode()  # "Disallowed CORS method, headers"
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-type", "content-length")
        }
        reason = f"{refused}: this API allows GET and HEAD, from any origin"
        return JSONResponse({"reason": reason}, status_code=400, headers=headers)


class RequestIdMiddleware:
    """Give each request an id (kept from X-Request-ID if sent) that errors are logged with."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = fastpath.request_id(Headers(scope=scope).get("x-request-id", ""))
        scope.setdefault("state", {})["request_id"] = request_id

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException as exc:
            # A Rust panic in tantivy arrives as pyo3's PanicException, a BaseException
            # that passes every ``except Exception`` (Starlette's handlers included):
            # it would reach uvicorn as a plain-text 500 without a request id.
            if started or not is_panic(exc):
                raise
            response = await handle_exception(
                Request(scope), SearchIndexError(f"the search index failed: {exc}", damaged=True)
            )
            await response(scope, receive, send_with_id)


class AnswerFailures:
    """Answer an unexpected failure with the 500 here, inside CORS and gzip: left to
    Starlette's outermost handler, the 500 had no CORS headers, and that handler re-raises,
    so uvicorn dropped the connection and the client's next request on it was reset."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception as exc:
            if started:
                raise  # too late for a 500: the server closes the connection
            response = await handle_exception(Request(scope), exc)
            await response(scope, receive, send)


async def handle_exception(request: Request, exc: Exception) -> Response:
    """Every failure becomes upstream-shaped JSON ``{"reason"}`` (or a page, for the UI)."""
    status, reason = describe(exc)
    if status >= 500:
        log.error(
            "request %s failed: %s %s",
            getattr(request.state, "request_id", "?"),
            request.method,
            request.url.path,
            exc_info=exc,
        )
    from . import ui

    if ui.is_ui_path(request.url.path):
        return ui.error_page(request, status, reason)
    if isinstance(exc, StarletteHTTPException) and prefers_html(request.headers.get("accept", "")):
        # No route here (or not for this method): a browser gets the page, a client JSON.
        if status == 404:
            reason = f"There is no page at {request.url.path}."
        return ui.error_page(request, status, reason)
    body: dict[str, Any] = {"reason": reason}
    request_id = getattr(request.state, "request_id", "")
    if status >= 500:
        body["request_id"] = request_id
    headers = {"X-Request-ID": request_id, "X-Content-Type-Options": "nosniff"}
    if request.url.path.startswith("/iiif/"):  # a viewer on another origin reads the reason
        headers["Access-Control-Allow-Origin"] = "*"
    return ErrorResponse(body, status_code=status, headers=headers)


class ErrorResponse(JSONResponse):
    """An error's JSON with ``<``, ``>`` and ``&`` as ``\\u`` escapes (as Go's encoding/json
    writes them): a reason repeats what the request sent, and the same JSON then holds no
    markup even where some client pastes it into a page."""

    def render(self, content: Any) -> bytes:
        body = super().render(content)
        return body.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")


def describe(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, NivlError):
        return exc.status, exc.reason
    if isinstance(exc, RequestValidationError):
        errors = exc.errors()
        if errors:
            where = ".".join(str(part) for part in errors[0].get("loc", ())[1:]) or "request"
            return 400, f"Invalid value for '{where}': {errors[0].get('msg', 'invalid')}"
        return 400, "Invalid request"
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 404:
            return 404, "Not found"
        return exc.status_code, str(exc.detail)
    return 500, "Internal server error"


def prefers_html(accept: str) -> bool:
    """Whether an Accept header ranks text/html above application/json (a browser's does;
    ``*/*``, curl's and httpx's, ties them, and a tie stays JSON)."""
    html: dict[int, float] = {}
    json: dict[int, float] = {}
    for part in accept.split(","):
        media, *params = (piece.strip().lower() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        for wanted, ranges in (
            (html, ("text/html", "text/*")),
            (json, ("application/json", "application/*")),
        ):
            if media in (*ranges, "*/*"):
                specificity = 2 - (ranges + ("*/*",)).index(media)
                wanted[specificity] = max(wanted.get(specificity, 0.0), quality)

    def rank(found: dict[int, float]) -> float:
        return found[max(found)] if found else 0.0

    return rank(html) > rank(json)
