"""Server-rendered pages (Jinja2): search, item and group pages, and error pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

HERE = Path(__file__).parent
UI_PREFIXES = ("/item/", "/group/", "/static/")
templates = Jinja2Templates(directory=str(HERE / "templates"))
CSP = (
    "default-src 'self'; img-src 'self' https: http:; script-src 'self'; "
    "style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def is_ui_path(path: str) -> bool:
    return path == "/" or path.startswith(UI_PREFIXES)


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")


def page(
    request: Request, template: str, context: dict[str, object], status_code: int = 200
) -> Response:
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def error_page(request: Request, status: int, reason: str) -> Response:
    return page(request, "error.html", {"status": status, "reason": reason}, status)
