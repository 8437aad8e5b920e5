"""IIIF Presentation 3 routes: a manifest per record, collections of a group or an album.

Viewers (Mirador, Universal Viewer) load these from other origins, so every answer, errors
too (``app.handle_exception``), carries ``Access-Control-Allow-Origin: *``. The JSON-LD
media type is sent when the client asks for it, plain JSON otherwise, as the specification
says.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, unquote

import orjson
from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from .. import iiif
from ..errors import RecordNotFound
from ..library import Library
from ..query import SearchRequest
from ..records import Record, parse_item
from ..urls import shown
from . import text, ui
from .api import ERRORS, NasaId, _or, base_url, library_of

router = APIRouter(tags=["iiif"])
#: Most manifests a collection lists (its summary says how many there are in all).
MAX_MEMBERS = 5_000
#: A manifest's summary: what a viewer's panel shows, not a whole transcript.
SUMMARY_CHARS = 1_000
LD_JSON = f'application/ld+json;profile="{iiif.CONTEXT}"'


def _answer(request: Request, body: str) -> Response:
    wants_ld = "application/ld+json" in request.headers.get("accept", "")
    return Response(
        body.encode(),
        media_type=LD_JSON if wants_ld else "application/json",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"},
    )


@router.get("/iiif/group/{level}/{group_id}/manifest.json", responses=ERRORS)
def group_collection(request: Request, level: str, group_id: str) -> Response:
    """nivl: a IIIF Collection of a group's members' manifests, oldest first."""
    if level not in ui.GROUP_LEVELS:
        raise RecordNotFound(f"No group level {shown(level)}: use {', '.join(ui.GROUP_LEVELS)}")
    number = ui._group_number(group_id)
    library = library_of(request)
    search = SearchRequest(group_level=level, group_id=number, sort="date_asc")
    records, total = library.records(search, limit=MAX_MEMBERS)
    if total == 0:
        raise RecordNotFound(f"No {level} group {number} in this mirror")
    base = base_url(request)
    label = f"{ui.LEVEL_LABELS[level].format(noun='items')} (group {number})"
    return _answer(
        request,
        iiif.collection(
            iiif.group_url(base, level, number),
            label[:1].upper() + label[1:],
            _members(library, records, base),
            base=base,
            summary=_count(total, len(records)),
        ),
    )


@router.get("/iiif/album/{album_name:anytext}/manifest.json", responses=ERRORS)
def album_collection(
    request: Request,
    album_name: Annotated[str, Path(description="Album name (case-sensitive).")],
) -> Response:
    """nivl: a IIIF Collection of an album's records' manifests, oldest first."""
    library = library_of(request)
    search = SearchRequest(album=album_name.strip() or album_name, sort="date_asc")  # as stored
    records, total = library.records(search, limit=MAX_MEMBERS)
    if total == 0:
        others = library.album_spellings(album_name)
        hint = f"; album names are case-sensitive: did you mean {_or(others)}?" if others else ""
        raise RecordNotFound(f"No album named {shown(album_name)}{hint}")
    base = base_url(request)
    return _answer(
        request,
        iiif.collection(
            iiif.album_url(base, album_name),
            f"Album: {album_name}",
            _members(library, records, base),
            base=base,
            summary=_count(total, len(records)),
        ),
    )


@router.get("/iiif/{nasa_id:anytext}/manifest.json", responses=ERRORS)
def manifest(request: Request, nasa_id: NasaId) -> Response:
    """nivl: the record's IIIF Presentation 3 Manifest (one canvas, its renditions)."""
    library = library_of(request)
    raw = library.item(nasa_id)
    record = parse_item(orjson.loads(raw), raw=raw)
    base = base_url(request)
    local = ui.mirrored(library, nasa_id)
    listed = ui.renditions(
        ui.manifest_files(library.asset(nasa_id).get("manifest")), record, local, library
    )
    files = [
        iiif.File(
            name=f["name"],
            url=base + f["local"] if f["local"] else f["href"],
            path=library.media_file(*_media_parts(f["local"])) if f["local"] else None,
        )
        for f in listed
    ]
    return _answer(
        request,
        iiif.manifest(
            record,
            files,
            base=base,
            label=_label(record),
            summary=text.shorten(text.plain(record.description), SUMMARY_CHARS),
            homepage=f"{base}/item/{quote(nasa_id, safe='')}",
            thumbnail=text.safe_url(record.preview_href),
            captions=(
                f"{base}/item/{quote(nasa_id, safe='')}/captions.vtt"
                if ui._pick_name(local, ui.CAPTION_SUFFIXES)
                else None
            ),
            record_json=f"{base}/search?nasa_id={quote(nasa_id, safe='')}",
        ),
    )


def _members(library: Library, records: list[Record], base: str) -> list[iiif.Member]:
    """Each record's label and thumbnail (the mirrored one, else upstream's)."""
    out = []
    for r in records:
        local = ui._pick_name(ui.mirrored(library, r.nasa_id), ui.THUMB_SUFFIXES)
        thumb = base + local if local else text.safe_url(r.preview_href)
        out.append(iiif.Member(r.nasa_id, _label(r), thumb))
    return out


def _label(record: Record) -> str:
    return text.plain(record.title)[: ui.TITLE_CHARS] or record.nasa_id


def _count(total: int, listed: int) -> str:
    if listed < total:
        return f"{total:,} records; the first {listed:,} are listed."
    return f"{total:,} record{'s' if total != 1 else ''}."


def _media_parts(url: str) -> tuple[str, str]:
    """``/media/<folder>/<file>`` (as ``Library.local_media`` gives it) → its two names."""
    _, _, folder, name = url.split("/", 3)
    return unquote(folder), unquote(name)
