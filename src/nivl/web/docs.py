"""``/docs`` (Swagger UI) and ``/redoc``, served from this machine, never from a CDN.

FastAPI's own pages load their scripts from a CDN (with no SRI), so an offline mirror
showed a blank page. The assets come from the ``fastapi-offline`` package instead
(Swagger UI 5, which reads OpenAPI 3.1; ReDoc 2), and the pages carry a Content
Security Policy that keeps them on this origin: no inline script (Swagger UI is started
by ``static/docs.js``), only the inline styles these two libraries set themselves.
ReDoc's bundle is served with its one CDN image left out (``REDOC_LOGO``).
"""

from __future__ import annotations

import functools
import importlib.resources

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from markupsafe import escape
from starlette.responses import HTMLResponse, Response

ASSETS = "/docs-assets"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


#: The one thing ReDoc 2 loads from elsewhere: the Redocly logo beside "API docs by
#: Redocly", an ``<img>`` it adds once mounted (no option turns it off). The CSP refused
#: it, a console error and a broken image on every visit: nivl serves ReDoc with that
#: image left out (an empty picture, drawn as nothing); the link's text stays.
REDOC_LOGO = '"https://cdn.redoc.ly/redoc/logo-mini.svg"'
NO_PICTURE = (
    '"data:image/svg+xml,%3Csvg%20xmlns%3D%22http%3A%2F%2Fwww.w3.org%2F2000%2Fsvg%22%2F%3E"'
)
REDOC_JS = "redoc.local.js"


def mount(app: FastAPI) -> None:
    """Add the two pages and their assets (the app is built with ``docs_url=None``)."""
    static = importlib.resources.files("fastapi_offline") / "static"
    app.add_api_route(f"{ASSETS}/{REDOC_JS}", redoc_js, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)


def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return _page(
        request,
        "Swagger UI",
        f'<link rel="stylesheet" href="{root}{ASSETS}/swagger-ui.css">',
        f'<div id="swagger-ui" data-openapi="{escape(root + request.app.openapi_url)}"></div>'
        f'<script src="{root}{ASSETS}/swagger-ui-bundle.js"></script>'
        f'<script src="{root}/static/docs.js"></script>',
    )


def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return _page(
        request,
        "ReDoc",
        "",
        f'<redoc spec-url="{escape(root + request.app.openapi_url)}"></redoc>'
        f'<script src="{root}{ASSETS}/{REDOC_JS}"></script>',
    )


def redoc_js() -> Response:
    """ReDoc's bundle without its one off-site request (``REDOC_LOGO``)."""
    return Response(
        _redoc_bundle(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


@functools.cache
def _redoc_bundle() -> bytes:
    static = importlib.resources.files("fastapi_offline") / "static"
    source = (static / "redoc.standalone.js").read_text(encoding="utf-8")
    return source.replace(REDOC_LOGO, NO_PICTURE).encode()


def _page(request: Request, name: str, head: str, body: str) -> HTMLResponse:
    title = escape(f"{request.app.title} API: {name}")
    root = request.scope.get("root_path", "")
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{title}</title><link rel="icon" href="{root}/static/favicon.svg">'
        f"{head}</head><body>{body}</body></html>"
    )
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return HTMLResponse(html, headers=headers)
