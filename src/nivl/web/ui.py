"""Server-rendered pages (Jinja2): search, item and group pages, and error pages.

Every page works without JavaScript; ``static/nivl.js`` only enhances (a
placeholder for thumbnails that fail to load, ``/`` to focus the search box).
Everything from a record is escaped by Jinja's autoescape; the few pieces of
markup nivl builds from captions come from ``text.py``; links and image
sources are only ever http(s) URLs (``text.safe_url``), and the Content
Security Policy forbids inline script and style.
"""

from __future__ import annotations

import math
import re
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import jinja2
import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.responses import HTMLResponse, Response

from ..captions import srt_to_vtt
from ..cite import CSL_STYLES, STYLES, cite, styled
from ..credit import credit_line
from ..embeddings import default_mode
from ..errors import RecordNotFound
from ..library import Library
from ..query import UPSTREAM_PARAMETERS, SearchRequest, group_id_of, parse_request
from ..records import Record, parse_item
from ..search import GroupInfo, SearchHit, SearchResult
from ..urls import shown
from . import text
from .api import base_url, library_of
from .responses import Body, BodyCache, etag, etag_matches

HERE = Path(__file__).parent
UI_PREFIXES = ("/item/", "/group/", "/static/")
CSP = (
    "default-src 'self'; img-src 'self' https:; media-src 'self' https:; script-src 'self'; "
    "style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
#: Query parameters the search page reads; anything else in the URL is ignored.
UI_PARAMETERS = (*UPSTREAM_PARAMETERS, "album", "sort", "collapse", "mode", "match")
TEXT_PARAMETERS = (
    "q",
    "title",
    "description",
    "description_508",
    "location",
    "photographer",
    "secondary_creator",
)
FILTER_PARAMETERS = ("media_type", "center", "keywords", "year_start", "year_end", "album")
#: Upstream's one-field parameters, shown as removable filters like the facets.
FIELD_FILTERS = (*TEXT_PARAMETERS[1:], "nasa_id")
UI_FACETS = "media_type,center,year,keywords"
DEFAULT_COLLAPSE = "event"
GROUP_LEVELS = ("event", "near", "caption", "visual")
COLLAPSE_LABELS = {
    "event": "Events",
    "caption": "Distinct captions",
    "visual": "Distinct pictures",
    "none": "All results",
}
#: A group's heading by level; {noun} is its members' media noun (``media_noun``).
LEVEL_LABELS = {
    "event": "{noun} of one event",
    "near": "near-identical {noun}",
    "caption": "{noun} with the same caption",
    "visual": "{noun} of the same picture",
}
MEDIA_NOUNS = {
    "image": ("photo", "photos"),
    "video": ("video", "videos"),
    "audio": ("audio file", "audio files"),
}
SORT_LABELS = {"relevance": "Relevance", "date_desc": "Newest", "date_asc": "Oldest"}
MEDIA_LABELS = {"image": "Image", "video": "Video", "audio": "Audio"}
PREVIEW_SUFFIXES = ("~medium.jpg", "~large.jpg", "~small.jpg", "~orig.jpg", "~thumb.jpg")
#: A card's picture: the smallest rendition that is not too small for a 320 px tile.
THUMB_SUFFIXES = ("~thumb.jpg", "~small.jpg", "~medium.jpg", "~large.jpg", "~orig.jpg")
CAPTION_SUFFIXES = (".vtt", ".srt")
#: A long description (a podcast's transcript) shows its first paragraphs, the rest folded.
SHOWN_PARAGRAPHS = 3
SHOWN_CHARS = 1_200
PARAGRAPH_CHARS = 900  # an unbroken transcript is cut at a sentence end past this
HUES = 8  # placeholder tiles are tinted by one of this many hues, by nasa_id
VIDEO_SUFFIXES = ("~mobile.mp4", "~small.mp4", "~medium.mp4", "~orig.mp4")
AUDIO_SUFFIXES = ("~128k.mp3", "~64k.mp3", "~orig.mp3", "~orig.wav", "~128k.m4a")
CITE_LABELS = {"apa": "APA", "mla": "MLA", "chicago": "Chicago", "bibtex": "BibTeX", "ris": "RIS"}
MEMBERS_ON_ITEM_PAGE = 24
LIKE_THIS = 8  # "more like this" cards on an item page, beside its own event
#: Characters an item page shows of any one field (the longest real transcripts are
#: ~90,000); past it the page says where the whole text is.
FIELD_CHARS = 100_000
TITLE_CHARS = 1_000

router = APIRouter(include_in_schema=False)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["quote"] = lambda value: quote(str(value), safe="")
    env.filters["num"] = lambda value: f"{value:,}"
    env.filters["safe_url"] = text.safe_url
    env.filters["bytes"] = human_bytes
    return env


def human_bytes(size: int) -> str:
    """1234567 -> "1.2 MB" (decimal units, as download pages give them)."""
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"


templates = Jinja2Templates(env=_environment())


def is_ui_path(path: str) -> bool:
    return path == "/" or path.startswith(UI_PREFIXES)


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(router)


def page(
    request: Request,
    template: str,
    context: dict[str, object],
    status_code: int = 200,
    *,
    started: float | None = None,
    search_ms: float | None = None,
) -> Response:
    response = _secure(
        templates.TemplateResponse(request, template, context, status_code=status_code)
    )
    if started is not None:
        total = (time.perf_counter() - started) * 1000
        timings = [f"app;dur={total:.1f}"]
        if search_ms is not None:
            timings.insert(0, f"search;dur={search_ms:.1f}")
        response.headers["Server-Timing"] = ", ".join(timings)
    return response


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def cached_page(request: Request, library: Library, build: Callable[[], Response]) -> Response:
    """The page ``build()`` renders, or the copy rendered for this URL at this revision.

    A page is a pure function of its URL and the data, so it is kept (in the app's
    body cache, beside the API's bodies) until an import or harvest moves the revision.
    Browsers revalidate with the ETag and get a 304 while nothing changed.
    """
    cache: BodyCache | None = getattr(request.app.state, "body_cache", None)
    key = (
        "ui",
        base_url(request),
        request.url.path,
        request.url.query,
        library.semantic_revision,
        _media_mark(library),
    )
    body = cache.get(key) if cache is not None else None
    if body is None:
        response = build()
        if response.status_code != 200:
            return response
        data = bytes(response.body)
        body = Body(data, etag(data, library.semantic_revision))
        if cache is not None:
            body = cache.put(key, body)
    else:
        response = _secure(HTMLResponse(body.data))
        response.headers["Server-Timing"] = 'cache;desc="hit"'
    response.headers["ETag"] = body.etag
    response.headers["Cache-Control"] = "no-cache"
    if etag_matches(request.headers.get("if-none-match"), body.etag):
        return _secure(Response(status_code=304, headers={"ETag": body.etag}))
    return response


def _media_mark(library: Library) -> int:
    """When HOME/media last changed (a new item's folder, or a fetcher's touch after a
    verified file): pages showing mirrored thumbnails are rebuilt once it moves."""
    try:
        return (library.settings.home / "media").stat().st_mtime_ns
    except OSError:
        return 0


def error_page(request: Request, status: int, reason: str) -> Response:
    return page(request, "error.html", {"status": status, "reason": reason}, status)


# --- what the templates show ------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """One search hit as a card: parsed fields plus its group and marked snippet."""

    record: Record
    group: GroupInfo | None
    snippet: Markup | str | None
    title: Markup | str  # Markup when matched words are marked
    title_text: str  # plain, for alt text
    local_thumb: str | None = None  # the mirrored thumbnail's /media URL

    @property
    def thumb(self) -> str | None:
        return self.local_thumb or text.safe_url(self.record.preview_href)

    @property
    def initial(self) -> str:
        return placeholder_initial(self.title_text, self.record.nasa_id)

    @property
    def hue(self) -> int:
        return hue_of(self.record.nasa_id)

    @property
    def more(self) -> int:
        """How many others the card stands for ("+N similar")."""
        return max(0, self.group.size - 1) if self.group is not None else 0


def cards(hits: list[SearchHit], library: Library | None = None) -> list[Card]:
    """Cards for ``hits``, with the mirrored thumbnail where ``library`` has one."""
    out = []
    for hit in hits:
        record = parse_item(orjson.loads(hit.raw_json), raw=hit.raw)
        marks = hit.highlight or {}
        snippet: Markup | str | None = text.snippet(marks.get("description"))
        if snippet is None and record.description:
            snippet = text.shorten(text.plain(record.description), 220)
        title = text.plain(record.title) or record.nasa_id
        marked_title = text.snippet(marks.get("title"))
        shown: Markup | str = title
        if marked_title is not None and text.plain(str(marked_title)) == title:
            shown = marked_title  # the whole title, with its matched words marked
        local = mirrored(library, record.nasa_id) if library is not None else {}
        out.append(
            Card(
                record=record,
                group=hit.group,
                snippet=snippet,
                title=shown,
                title_text=title,
                local_thumb=_pick_name(local, THUMB_SUFFIXES),
            )
        )
    return out


def placeholder_initial(title: str, nasa_id: str) -> str:
    """The first letter or digit of the title (else the id): what a tile without a picture shows."""
    for char in title + nasa_id:
        if char.isalnum():
            return char.upper()
    return "?"


def hue_of(nasa_id: str) -> int:
    """A stable tint for a placeholder tile, so a grid of them is not one navy block."""
    return zlib.crc32(nasa_id.encode()) % HUES


class Links:
    """Search-page URLs: the current parameters with some changed (page reset)."""

    def __init__(self, state: Mapping[str, str], path: str = "/") -> None:
        self.state = dict(state)
        self.path = path

    def __call__(self, **changes: object) -> str:
        params = {k: v for k, v in self.state.items() if k != "page"}
        for name, value in changes.items():
            if value is None or value == "":
                params.pop(name, None)
            else:
                params[name] = str(value)
        if params.get("collapse") == DEFAULT_COLLAPSE:
            del params["collapse"]
        query = urlencode(params)
        return self.path + (f"?{query}" if query else "")

    def keyword_added(self, keyword: str) -> str:
        current = [k for k in self.state.get("keywords", "").split(",") if k.strip()]
        if not self.has_keyword(keyword):
            current.append(keyword)
        return self(keywords=",".join(current))

    def keyword_removed(self, keyword: str) -> str:
        """Without ``keyword`` in any case: a facet merges its case variants, as the filter."""
        current = [k for k in self.state.get("keywords", "").split(",") if k.strip()]
        wanted = keyword.strip().casefold()
        return self(keywords=",".join(k for k in current if k.strip().casefold() != wanted))

    def has_keyword(self, keyword: str) -> bool:
        wanted = keyword.strip().casefold()
        return any(
            k.strip().casefold() == wanted for k in self.state.get("keywords", "").split(",")
        )


@dataclass(frozen=True)
class Paging:
    page: int
    last: int  # the last page that has results (1 when there are none)
    links: Links

    @property
    def past_end(self) -> bool:
        return self.page > self.last

    @property
    def window(self) -> list[int | None]:
        """Page numbers to show, None for a gap: 1 … 4 5 [6] 7 8 … 20."""
        shown = {1, self.last, *range(self.page - 2, self.page + 3)}
        pages = sorted(p for p in shown if 1 <= p <= self.last)
        out: list[int | None] = []
        for p in pages:
            if out and out[-1] is not None and p - out[-1] > 1:
                out.append(None)
            out.append(p)
        return out

    def url(self, page: int) -> str:
        return self.links(page=page if page > 1 else None)


def paging(result: SearchResult, links: Links, max_window: int) -> Paging | None:
    """Pages 1 … last, where last is the last page with results that a request may reach
    (groups when collapsed: ``total_groups`` counts exactly what the pages hold)."""
    request = result.request
    total = result.total_groups if result.total_groups is not None else result.total_hits
    last = max(1, min(math.ceil(total / request.page_size), max_window // request.page_size))
    if last <= 1 and request.page <= 1:
        return None
    return Paging(page=request.page, last=last, links=links)


def media_noun(counts: Mapping[str, int], n: int) -> str:
    """What ``n`` records are called, from their media types' counts: photos, videos,
    audio files, or items when mixed (or unknown)."""
    present = [kind for kind, count in counts.items() if count > 0]
    kind = present[0] if len(present) == 1 else ""
    singular, plural = MEDIA_NOUNS.get(kind, ("item", "items"))
    return singular if n == 1 else plural


def year_facet(counts: Mapping[str, int], request: SearchRequest) -> list[dict[str, Any]]:
    """Years as decades, or single years once the range is a decade or less."""
    years = sorted((int(y), n) for y, n in counts.items() if str(y).lstrip("-").isdigit())
    if not years:
        return []
    start, end = request.year_start, request.year_end
    narrow = start is not None and end is not None and end - start <= 10
    if narrow or years[-1][0] - years[0][0] < 10:
        return [{"label": str(y), "start": y, "end": y, "count": n} for y, n in years]
    decades: dict[int, int] = {}
    for year, n in years:
        decades[year - year % 10] = decades.get(year - year % 10, 0) + n
    return [
        {"label": f"{d}s", "start": d, "end": d + 9, "count": n} for d, n in sorted(decades.items())
    ]


def _given(request: Request) -> dict[str, str]:
    return {
        key: value
        for key, value in request.query_params.items()
        if key in UI_PARAMETERS and value.strip()
    }


# --- routes ------------------------------------------------------------------------


@router.api_route("/", methods=["GET", "HEAD"], response_class=Response)
def search_page(request: Request) -> Response:
    library = library_of(request)
    return cached_page(request, library, lambda: _search_page(request, library))


def _search_page(request: Request, library: Library) -> Response:
    started = time.perf_counter()
    given = _given(request)
    has_text = any(name in given for name in TEXT_PARAMETERS)
    defaults = {
        "collapse": DEFAULT_COLLAPSE,
        "sort": "relevance" if has_text else "date_desc",
        "mode": default_mode(),  # hybrid: the built-in model, or the extra's
    }
    search_request = parse_request(
        given,
        library.limits,
        require_one=False,
        **defaults,
        facets=UI_FACETS,
        highlight="true",
    )
    result = library.search(search_request)
    search_ms = (time.perf_counter() - started) * 1000
    links = Links(given)
    context = {
        "request_": search_request,
        "given": given,
        "result": result,
        "cards": cards(result.hits, library),
        "links": links,
        "paging": paging(result, links, library.limits.max_result_window),
        "years": year_facet(result.facets.get("year", {}), search_request),
        "collapses": [
            (c, COLLAPSE_LABELS[c])
            for c in ("event", "caption", "visual", "none")
            # pictures only where some match: without mirrored media it is "All results"
            if c != "visual" or search_request.collapse == c or library.has_groups(c)
        ],
        "sorts": [(s, SORT_LABELS[s]) for s in SORT_LABELS if has_text or s != "relevance"],
        "media_labels": MEDIA_LABELS,
        "filtered": any(k in FILTER_PARAMETERS or k in FIELD_FILTERS for k in given),
        "field_filters": [(k.replace("_", " "), k, given[k]) for k in FIELD_FILTERS if k in given],
        "feed": feed_url(given, search_request),
        # albums are case-sensitive: an album found under another case is offered by name
        "album_spellings": (
            library.album_spellings(search_request.album)
            if search_request.album and not result.total_hits
            else []
        ),
    }
    return page(request, "search.html", context, started=started, search_ms=search_ms)


def feed_url(given: Mapping[str, str], search_request: SearchRequest) -> str:
    """The Atom feed of this search (/feed): the same filters and grouping; its order is
    the feed's own (newest in the mirror first), so the page's sort and paging stay here."""
    params = {k: v for k, v in given.items() if k not in ("page", "sort", "mode", "collapse")}
    if search_request.collapse != "none":
        params["collapse"] = search_request.collapse
    return "/feed" + (f"?{urlencode(params)}" if params else "")


@router.api_route(
    "/item/{nasa_id:anytext}/captions.vtt", methods=["GET", "HEAD"], response_class=Response
)
def item_captions(request: Request, nasa_id: str) -> Response:
    """The mirrored captions file as WebVTT, for the item page's ``<track>``."""
    library = library_of(request)
    library.item(nasa_id)  # a 404 for an unknown record
    local = mirrored(library, nasa_id)
    name = _pick_name(local, CAPTION_SUFFIXES)
    if name is None:
        raise RecordNotFound(
            f"No mirrored captions for {shown(nasa_id)}: fetch them with `nivl media fetch`, "
            "or follow the upstream link on the item page"
        )
    raw = _local_file(library, local[name]).read_bytes()
    body = srt_to_vtt(raw.decode("utf-8", errors="replace"))
    return _secure(Response(body, media_type="text/vtt; charset=utf-8"))


@router.api_route("/item/{nasa_id:anytext}", methods=["GET", "HEAD"], response_class=Response)
def item_page(request: Request, nasa_id: str) -> Response:
    started = time.perf_counter()
    library = library_of(request)
    raw = library.item(nasa_id)
    item = orjson.loads(raw)
    record = parse_item(item, raw=raw)
    asset = library.asset(nasa_id)
    local = mirrored(library, nasa_id)
    files = renditions(manifest_files(asset.get("manifest")), record, local, library)
    preview = _pick(files, PREVIEW_SUFFIXES) or text.safe_url(record.preview_href)
    # Upstream's medium picture unreachable (an offline mirror of thumbnails only): the page
    # falls back to the mirrored copy (nivl.js), rather than to a placeholder.
    copy = _pick_name(local, PREVIEW_SUFFIXES)
    fallback = copy if copy != preview else None
    captions_local = _pick_name(local, CAPTION_SUFFIXES)
    captions_remote = _pick(files, CAPTION_SUFFIXES) or text.safe_url(record.captions_href)
    if not captions_remote:
        captions_remote = text.safe_url(asset.get("captions_location"))
    paragraphs = text_paragraphs(text.rich(_cut(record.description, FIELD_CHARS)))
    shown, folded = fold(paragraphs)
    event = _event_group(library, nasa_id)
    members: list[Card] = []
    members_total = 0
    members_noun = "items"
    if event is not None:
        result = library.search(
            SearchRequest(
                group_level=event.level,
                group_id=event.id,
                sort="date_asc",
                page_size=MEMBERS_ON_ITEM_PAGE + 1,
                facets=("media_type",),
            )
        )
        members_total = result.total_hits
        members = [c for c in cards(result.hits, library) if c.record.nasa_id != nasa_id]
        members = members[:MEMBERS_ON_ITEM_PAGE]
        others = dict(result.facets.get("media_type", {}))
        others[record.media_type] = others.get(record.media_type, 0) - 1  # not this one
        members_noun = media_noun(others, members_total - 1)
    like_this = [
        c
        for c in cards(
            library.similar(nasa_id, SearchRequest(page_size=LIKE_THIS + 12)).hits, library
        )
        if c.record.nasa_id not in {m.record.nasa_id for m in members}
    ][:LIKE_THIS]
    same_picture, same_total, picture = _same_picture(library, nasa_id)
    data = item["data"][0]  # parse_item checked it is there
    context = {
        "record": record,
        "title": _cut(text.plain(record.title), TITLE_CHARS) or record.nasa_id,
        "paragraphs": shown,
        "folded": folded,
        "credit": credit_line(record),
        "initial": placeholder_initial(text.plain(record.title), nasa_id),
        "hue": hue_of(nasa_id),
        "description_chars": len(record.description),
        "field_chars": FIELD_CHARS,
        "fields": [(n, [_cut(v, FIELD_CHARS) for v in vs]) for n, vs in metadata_fields(data)],
        "full_json": "/search?nasa_id=" + quote(nasa_id, safe=""),
        "links": [link for link in item.get("links") or [] if isinstance(link, dict)],
        "item_href": text.safe_url(item.get("href")),
        "preview": preview,
        "preview_fallback": fallback,
        "video": _pick(files, VIDEO_SUFFIXES) if record.media_type == "video" else None,
        "audio": _pick(files, AUDIO_SUFFIXES) if record.media_type == "audio" else None,
        # a mirrored picture of an audio record (as its card shows): above the player
        "audio_picture": copy if record.media_type == "audio" else None,
        "captions": (
            "/item/" + quote(nasa_id, safe="") + "/captions.vtt" if captions_local else None
        ),
        "captions_remote": captions_remote,
        "files": files,
        "metadata_location": text.safe_url(asset.get("metadata_location")),
        "upstream": "https://images.nasa.gov/details/" + quote(nasa_id, safe=""),
        "permanent": base_url(request) + "/item/" + quote(nasa_id, safe=""),
        "event": event,
        "members": members,
        "members_total": members_total,
        "members_noun": members_noun,
        "like_this": like_this,
        "same_picture": same_picture,
        "same_total": same_total,
        "picture_group": picture,
        "media_labels": MEDIA_LABELS,
        "citations": citations(record),
    }
    return page(request, "item.html", context, started=started)


def citations(record: Record) -> list[dict[str, Any]]:
    """The Cite box: each style's text (what the copy button copies) and, for the CSL
    styles, its HTML (italics; the record's text escaped), accessed today (UTC)."""
    today = datetime.now(UTC).date()
    out: list[dict[str, Any]] = []
    for style in STYLES:
        entry: dict[str, Any]
        if style in CSL_STYLES:
            plain_text, shown = styled(record, style, today)
            entry = {"text": plain_text, "html": Markup(shown)}  # cite.py escaped the record
        else:
            entry = {"text": cite(record, style, today), "html": None}
        out.append({"style": style, "label": CITE_LABELS[style], **entry})
    return out


@router.api_route("/group/{level}/{group_id}", methods=["GET", "HEAD"], response_class=Response)
def group_page(request: Request, level: str, group_id: str) -> Response:
    started = time.perf_counter()
    if level not in GROUP_LEVELS:
        raise RecordNotFound(f"No group level {shown(level)}: use {', '.join(GROUP_LEVELS)}")
    number = _group_number(group_id)
    library = library_of(request)
    params = {k: v for k, v in _given(request).items() if k in ("page", "page_size", "sort")}
    search_request = parse_request(params, library.limits, require_one=False, sort="date_asc")
    search_request = SearchRequest(
        group_level=level,
        group_id=number,
        sort=search_request.sort,
        page=search_request.page,
        page_size=search_request.page_size,
        highlight=False,
        facets=("media_type",),
    )
    result = library.search(search_request)
    if result.total_hits == 0:
        raise RecordNotFound(f"No {level} group {number} in this mirror")
    noun = media_noun(result.facets.get("media_type", {}), result.total_hits)
    links = Links(params, path=f"/group/{level}/{number}")
    context = {
        "level": level,
        "group_id": number,
        "result": result,
        "cards": cards(result.hits, library),
        "links": links,
        "paging": paging(result, links, library.limits.max_result_window),
        "heading": LEVEL_LABELS[level].format(noun=noun),
        "noun": noun,
        "media_labels": MEDIA_LABELS,
        "sorts": [(s, SORT_LABELS[s]) for s in ("date_asc", "date_desc")],
        "sort": search_request.sort,
    }
    return page(request, "group.html", context, started=started)


@router.api_route("/group/{group_id}", methods=["GET", "HEAD"], response_class=Response)
def group_any_level(request: Request, group_id: str) -> Response:
    """A group by id alone (as the API's ``/groups/{id}``): the widest level that has it."""
    number = _group_number(group_id)
    library = library_of(request)
    for level in GROUP_LEVELS:
        found = library.search(SearchRequest(group_level=level, group_id=number, page_size=1))
        if found.total_hits:
            return group_page(request, level, group_id)
    raise RecordNotFound(f"No group {group_id} in this mirror")


def _group_number(group_id: str) -> int:
    """A 404 with a reason for what is no group id (it was a 500 past 64 bits)."""
    number = group_id_of(group_id)
    if number is None:
        raise RecordNotFound(f"No group {shown(group_id)}: group ids are whole numbers below 2**63")
    return number


# --- item page helpers -------------------------------------------------------------


def _event_group(library: Library, nasa_id: str) -> GroupInfo | None:
    """The record's event group (None until grouping has run, or for a group of one)."""
    result = library.search(SearchRequest(nasa_id=nasa_id, collapse="event", page_size=1))
    return result.hits[0].group if result.hits else None


def _same_picture(library: Library, nasa_id: str) -> tuple[list[Card], int, GroupInfo | None]:
    """The other records whose mirrored picture matches this one's (pictures.py), their
    number, and the visual group; nothing for a record with no group of two or more."""
    found = library.search(SearchRequest(nasa_id=nasa_id, collapse="visual", page_size=1))
    group = found.hits[0].group if found.hits else None
    if group is None or group.size < 2:
        return [], 0, None
    result = library.search(
        SearchRequest(
            group_level=group.level,
            group_id=group.id,
            sort="date_asc",
            page_size=MEMBERS_ON_ITEM_PAGE + 1,
        )
    )
    others = [c for c in cards(result.hits, library) if c.record.nasa_id != nasa_id]
    return others[:MEMBERS_ON_ITEM_PAGE], result.total_hits - 1, group


def manifest_files(manifest: str | None) -> list[dict[str, str]]:
    """The asset manifest's files as (name, https URL); others are left out."""
    if not manifest:
        return []
    try:
        document = orjson.loads(manifest)
        items = document["collection"]["items"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return []
    files = []
    for entry in items if isinstance(items, list) else []:
        url = text.safe_url(entry.get("href") if isinstance(entry, dict) else None)
        if url:
            files.append({"name": unquote(url.rsplit("/", 1)[-1]) or url, "url": url})
    return files


def mirrored(library: Library, nasa_id: str) -> dict[str, str]:
    """``Library.local_media`` by the manifest's own file names (the mirror may keep a
    name percent-encoded on disk, as ``%20`` for a space)."""
    return {unquote(name): url for name, url in library.local_media(nasa_id).items()}


def _local_file(library: Library, url: str) -> Path:
    """The file behind a ``/media/<folder>/<file>`` URL that ``local_media`` gave."""
    _, _, folder, name = url.split("/", 3)
    return library.settings.home / "media" / unquote(folder) / unquote(name)


def renditions(
    files: list[dict[str, str]], record: Record, local: Mapping[str, str], library: Library
) -> list[dict[str, Any]]:
    """Every rendition the manifest names (else the record's own links), each with its
    mirrored copy when there is one: ``href`` is what to show or download, the local copy
    first; ``size`` is known for mirrored files."""
    listed = files or [
        {"name": unquote(url.rsplit("/", 1)[-1]), "url": url}
        for url in (text.safe_url(record.preview_href), text.safe_url(record.captions_href))
        if url
    ]
    names = {f["name"] for f in listed}
    listed = listed + [{"name": n, "url": ""} for n in local if n not in names]
    out: list[dict[str, Any]] = []
    for file in listed:
        copy = local.get(file["name"])
        size = None
        if copy:
            try:
                size = _local_file(library, copy).stat().st_size
            except OSError:
                copy = None
        href = copy or file["url"]
        if href:
            out.append({**file, "href": href, "local": copy, "size": size})
    return out


def _pick(files: list[dict[str, Any]], suffixes: tuple[str, ...]) -> str | None:
    for suffix in suffixes:
        for file in files:
            if file["name"].lower().endswith(suffix):
                return str(file.get("href") or file["url"])
    return None


def _pick_name(local: Mapping[str, str], suffixes: tuple[str, ...]) -> str | None:
    """The mirrored file of the first suffix there is a copy of (its URL for pictures)."""
    for suffix in suffixes:
        for name, url in local.items():
            if name.lower().endswith(suffix):
                return name if suffix in CAPTION_SUFFIXES else url
    return None


_SPEAKER = re.compile(
    r"(?<=[.?!\"”’)])\s+(?=(?:[A-Z][\w.'’-]*\s){0,3}[A-Z][\w.'’-]*(?:\s\([^()]{1,40}\))?:\s)"
)
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=[A-Z\"“])")


def text_paragraphs(body: Markup) -> list[Markup]:
    """A rendered description as paragraphs: split on blank lines (else line breaks),
    a transcript with neither at its speaker turns, and any paragraph still very long
    at a sentence end; a link is never split."""
    source = str(body)
    parts = re.split(r"\n\s*\n", source) if "\n\n" in source else source.split("\n")
    out: list[str] = []
    for part in parts:
        for turn in _SPEAKER.split(part):
            out.extend(_sentences(turn))
    merged: list[str] = []
    for part in out:
        if merged and merged[-1].count("<a ") > merged[-1].count("</a>"):
            merged[-1] += " " + part  # the split fell inside a link: undo it
        else:
            merged.append(part)
    return [Markup(p.strip()) for p in merged if p.strip()]


def _sentences(part: str) -> list[str]:
    if len(part) <= PARAGRAPH_CHARS * 2:
        return [part]
    out, start = [], 0
    for match in _SENTENCE_END.finditer(part):
        if match.start() - start >= PARAGRAPH_CHARS:
            out.append(part[start : match.start()])
            start = match.end()
    out.append(part[start:])
    return out


def fold(paragraphs: list[Markup]) -> tuple[list[Markup], list[Markup]]:
    """The paragraphs to show (the first few, up to ``SHOWN_CHARS``) and the rest, folded."""
    shown: list[Markup] = []
    chars = 0
    for paragraph in paragraphs:
        if shown and (len(shown) >= SHOWN_PARAGRAPHS or chars + len(paragraph) > SHOWN_CHARS):
            break
        shown.append(paragraph)
        chars += len(paragraph)
    return shown, paragraphs[len(shown) :]


def _cut(value: str, limit: int) -> str:
    """The first ``limit`` characters of a field, marked as cut when there is more."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… [cut: {len(value) - limit:,} more characters]"


def metadata_fields(data: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """The fields of the record's ``data`` object (but the description), values as strings."""
    out = []
    for name, value in data.items():
        if name == "description":
            continue  # shown in full above the table, with its links and line breaks
        if isinstance(value, list):
            values = [v if isinstance(v, str) else orjson.dumps(v).decode() for v in value]
        elif isinstance(value, str):
            values = [value]
        else:
            values = [orjson.dumps(value).decode()]
        out.append((str(name), values))
    return out
