"""``/cite/{nasa_id}`` (a record's citation) and ``/feed`` (a search as an Atom feed).

A feed lists a search's hits newest in this mirror first (``sort=added_desc``: the order
the store first saw them), so the items an incremental harvest or import brings arrive on
top, whatever their own ``date_created``. Each entry's ``published`` is the record's
``date_created``; its ``updated`` is when the store last wrote the record, which is what
Atom means by it. Entry ids are tag URIs built from the host and the nasa_id: set
``NIVL_PUBLIC_URL`` for ids that are the same whichever address a reader used.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Query, Request
from starlette.responses import PlainTextResponse, Response

from .. import __version__
from ..cite import CSL_STYLES, STYLES, check_style
from ..credit import credit_line
from ..errors import InvalidParameter
from ..library import Library
from ..query import parse_request
from ..search import SearchResult
from ..urls import shown, tag_authority
from . import text
from .api import ERRORS, NasaId, SearchParams, base_url, library_of

router = APIRouter()

FEED_PAGE_SIZE = "50"
SUMMARY_CHARS = 1_000
#: The date in the tag URIs (RFC 4151): fixed, so ids never change.
TAG_DATE = "2026"
#: What XML 1.0 cannot hold (lxml refuses it): C0 controls but tab/newline/CR, non-characters.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
FILE_SUFFIXES = {"bibtex": "bib", "ris": "ris"}


class AtomResponse(Response):
    media_type = "application/atom+xml"


CITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    200: {
        "description": "The citation",
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            "text/html": {"schema": {"type": "string"}},
        },
    },
}
FEED_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: ERRORS[400],
    200: {
        "description": "An Atom feed",
        "content": {"application/atom+xml": {"schema": {"type": "string"}}},
    },
}


@router.get(
    "/cite/{nasa_id:anytext}",
    tags=["nivl"],
    response_class=PlainTextResponse,
    responses=CITE_RESPONSES,
)
def cite(
    request: Request,
    nasa_id: NasaId,
    style: Annotated[
        str, Query(description="apa, mla, chicago (author-date), bibtex or ris.")
    ] = "apa",
    format: Annotated[
        str, Query(description="text (default) or html (the CSL styles' italics, escaped).")
    ] = "text",
) -> Response:
    """nivl: the record cited in a style, as text/plain (BibTeX and RIS as a file to save;
    ``format=html`` gives the CSL styles as an HTML fragment)."""
    check_style(style)
    if format not in ("text", "html"):
        raise InvalidParameter("format", f"{shown(format)} is not text or html")
    if format == "html" and style not in CSL_STYLES:
        raise InvalidParameter("format", f"html is for {', '.join(CSL_STYLES)}, not {style}")
    library = library_of(request)
    today = datetime.now(UTC).date()
    body = library.cite(nasa_id, style, today, html=format == "html")
    # An HTML fragment opened on its own runs nothing, whatever a record holds.
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'"}
    if style in FILE_SUFFIXES:
        suffix = FILE_SUFFIXES[style]
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", nasa_id).strip("._") or "citation"
        headers["Content-Disposition"] = (
            f'inline; filename="{safe}.{suffix}"; '
            f"filename*=UTF-8''{quote(nasa_id, safe='')}.{suffix}"
        )
    kind = "text/html" if format == "html" else "text/plain"
    return Response(body, media_type=f"{kind}; charset=utf-8", headers=headers)


assert set(FILE_SUFFIXES) | set(CSL_STYLES) == set(STYLES)


@router.get("/feed", tags=["nivl"], response_class=AtomResponse, responses=FEED_RESPONSES)
def feed(request: Request, params: Annotated[SearchParams, Query()]) -> Response:
    """nivl: a search as an Atom feed, newest in this mirror first (the search's parameters
    and ``album``, none needed; 50 entries unless ``page_size`` says otherwise)."""
    library = library_of(request)
    fields = {*type(params).model_fields, "album"}  # album: as the search page takes it
    given = {k: v for k, v in request.query_params.items() if k in fields}
    search_request = parse_request(
        given,
        library.limits,
        require_one=False,
        sort="added_desc",
        page_size=FEED_PAGE_SIZE,
    )
    result = library.search(search_request)
    body = atom(request, result, given, library.last_written(result), library)
    return Response(body, media_type="application/atom+xml; charset=utf-8")


def atom(
    request: Request,
    result: SearchResult,
    given: dict[str, str],
    written: dict[int, str],
    library: Library,
) -> bytes:
    """The feed document: one entry per hit, in the search's order."""
    from feedgen.feed import FeedGenerator

    from .ui import cards

    base = base_url(request)
    host = tag_authority(urlsplit(base).hostname or "localhost")
    shown = {k: v for k, v in given.items() if k != "page"}
    query = urlencode(sorted(shown.items()))
    generator = FeedGenerator()
    generator.load_extension("media", atom=True, rss=False)
    generator.id(f"tag:{host},{TAG_DATE}:feed" + (f"?{query}" if query else ""))
    generator.title(_xml("nivl: " + (_describe(shown) or "everything new")))
    generator.subtitle(_xml(f"{result.total_hits:,} records match; newest in this mirror first"))
    generator.link(href=base + "/feed" + (f"?{query}" if query else ""), rel="self")
    generator.link(href=base + "/" + (f"?{query}" if query else ""), rel="alternate")
    generator.generator("nivl", version=__version__)
    generator.author({"name": "nivl"})
    stamps = []
    links: list[list[dict[str, str]]] = []  # each entry's links, as added
    for hit, card in zip(result.hits, cards(result.hits, library), strict=True):
        record = card.record
        entry = generator.add_entry(order="append")
        entry.id(f"tag:{host},{TAG_DATE}:item/{quote(record.nasa_id, safe='')}")
        entry.title(_xml(card.title_text))
        page = {"href": base + "/item/" + quote(record.nasa_id, safe=""), "rel": "alternate"}
        entry.link(**page)
        links.append([{**page, "type": "text/html"}])
        summary = text.shorten(text.plain(record.description), SUMMARY_CHARS)
        if summary:
            entry.summary(_xml(summary))
        entry.author({"name": _xml(credit_line(record))})
        for keyword in record.keywords[:20]:
            entry.category(term=_xml(keyword))
        if record.timestamp is not None:
            entry.published(datetime.fromtimestamp(record.timestamp, UTC))
        stamp = _when(written.get(hit.row_id))
        stamps.append(stamp)
        entry.updated(stamp)
        thumb = card.thumb
        if thumb:
            url = base + thumb if thumb.startswith("/") else thumb
            enclosure = {"href": url, "rel": "enclosure", "type": "image/jpeg"}
            entry.link(**enclosure)
            links[-1].append(enclosure)
            entry.media.thumbnail({"url": url})
    generator.updated(max(stamps) if stamps else datetime.now(UTC))
    return _with_link_attributes(generator.atom_str(pretty=False), links)


def _with_link_attributes(body: bytes, links: list[list[dict[str, str]]]) -> bytes:
    """Put back the ``rel`` and ``type`` of each entry's links: feedgen 1.0.0 reads them
    from the element it just made instead of the link it was given, so it never writes
    them (every link would be an ``alternate``, the thumbnail too)."""
    from lxml import etree

    atom_ns = "{http://www.w3.org/2005/Atom}"
    root = etree.fromstring(body)
    for entry, wanted in zip(root.iter(f"{atom_ns}entry"), links, strict=True):
        for element, link in zip(entry.iter(f"{atom_ns}link"), wanted, strict=True):
            element.set("rel", link["rel"])
            element.set("type", link["type"])
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


def _when(value: str | None) -> datetime:
    """The store's ``updated_at`` (UTC, SQLite's ``datetime('now')``) as an aware datetime."""
    try:
        return datetime.fromisoformat(value or "").replace(tzinfo=UTC)
    except ValueError:
        return datetime.now(UTC)


def _describe(given: dict[str, str]) -> str:
    parts = [given["q"]] if given.get("q") else []
    parts += [f"{k.replace('_', ' ')}: {v}" for k, v in given.items() if k != "q"]
    described = "; ".join(parts)
    return described if len(described) <= 200 else described[:200] + "…"


def _xml(value: str) -> str:
    """Text XML can hold (a record's title may hold control characters)."""
    return _NOT_XML.sub("", value)
