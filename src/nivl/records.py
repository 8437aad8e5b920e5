"""Upstream items → ``Record``: parsing and normalising, pure.

An upstream search item is ``{"href", "data": [{...}], "links": [...]}``.
The item is kept verbatim (``Record.raw``, compact JSON text) so that nivl can
return exactly what upstream returned; the parsed fields are for indexing,
filtering and display only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from .errors import RecordRejected

MEDIA_TYPES = ("image", "video", "audio")

_LIST_SPLIT = re.compile(r"\s*[,;]\s*")
_BLANKS_OUTSIDE_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[ \t\r\n]+', re.DOTALL)
_JSON_TYPES = {
    dict: "object",
    list: "list",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


@dataclass(frozen=True, slots=True)
class Record:
    nasa_id: str
    media_type: str
    raw: str
    title: str = ""
    description: str = ""
    description_508: str = ""
    keywords: tuple[str, ...] = ()
    album: tuple[str, ...] = ()
    center: str = ""
    location: str = ""
    photographer: str = ""
    secondary_creator: str = ""
    date_created: str = ""
    year: int | None = None
    date: str | None = None  # YYYY-MM-DD
    timestamp: int | None = None  # seconds since the epoch, for sorting
    preview_href: str | None = None
    captions_href: str | None = None

    @property
    def item(self) -> dict[str, Any]:
        """The upstream item, as imported."""
        result: dict[str, Any] = orjson.loads(self.raw)
        return result


def dump_item(item: Mapping[str, Any], text: bytes | None = None) -> str:
    """Compact JSON text of an item, key order kept (the stored verbatim form).

    orjson's text is the canonical form, but orjson reads every number as a 64-bit
    integer or a double: an integer beyond 64 bits arrives as a float, and a float
    may be written back with other digits. So when the item holds a float and its
    source ``text`` is at hand, that text, minified, is what is kept.
    """
    if text is not None and _has_float(item):
        return minify(text)
    try:
        return orjson.dumps(item).decode()
    except TypeError as exc:  # e.g. integers beyond 64 bits
        try:
            return json.dumps(item, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            raise RecordRejected(f"item cannot be serialised: {exc}") from exc


def minify(text: bytes) -> str:
    """JSON text without the blanks between tokens; strings and numbers as they were."""
    return _BLANKS_OUTSIDE_STRINGS.sub(_keep_strings, text).decode()


def _keep_strings(match: re.Match[bytes]) -> bytes:
    token = match[0]
    return token if token[:1] == b'"' else b""


def _has_float(value: Any) -> bool:
    stack = [value]
    while stack:
        kind = type(item := stack.pop())
        if kind is float:
            return True
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return False


def parse_item(item: Any, raw: str | None = None) -> Record:
    """Turn one upstream item into a ``Record`` or raise ``RecordRejected`` saying why.

    Every stage of an import parses each record (store, index, vectors), so the common
    case (plain dicts, as JSON gives) is tested first and each field is read once.
    """
    if type(item) is not dict and not isinstance(item, Mapping):
        kind = _JSON_TYPES.get(type(item), type(item).__name__)
        raise RecordRejected(f"item is a JSON {kind}, not an object")
    data_list = item.get("data")
    if (
        not isinstance(data_list, list)
        or not data_list
        or (type(data_list[0]) is not dict and not isinstance(data_list[0], Mapping))
    ):
        raise RecordRejected("item has no 'data' list with an object in it")
    data = data_list[0]
    get = data.get
    nasa_id = get("nasa_id")
    if not isinstance(nasa_id, str) or not nasa_id.strip():
        raise RecordRejected("item has no 'nasa_id'")
    media_type = get("media_type")
    if not isinstance(media_type, str) or media_type not in MEDIA_TYPES:
        shown = "missing" if media_type is None else repr(media_type)
        raise RecordRejected(f"item {nasa_id!r} has media_type {shown}, not image/video/audio")
    date_created = get("date_created")
    date_created = date_created if isinstance(date_created, str) else ""
    year, date, timestamp = parse_date(date_created)
    preview, captions = _links(item.get("links"))
    return Record(
        nasa_id=nasa_id,
        media_type=media_type,
        raw=raw if raw is not None else dump_item(item),
        title=_text(get("title")),
        description=_text(get("description")),
        description_508=_text(get("description_508")),
        keywords=normalise_list(get("keywords")),
        album=normalise_list(get("album"), split=False),
        center=_text(get("center")),
        location=_text(get("location")),
        photographer=_text(get("photographer")),
        secondary_creator=_text(get("secondary_creator")),
        date_created=date_created,
        year=year,
        date=date,
        timestamp=timestamp,
        preview_href=preview,
        captions_href=captions,
    )


def normalise_list(value: Any, *, split: bool = True) -> tuple[str, ...]:
    """Keywords arrive missing, as a list, or as one comma-joined string (in a list or not)."""
    if value is None:
        return ()
    items = value if type(value) is list else [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        return ()
    stripped = [item.strip() for item in items if isinstance(item, str)]
    strings = [item for item in stripped if item]
    if split and len(strings) == 1 and _LIST_SPLIT.search(strings[0]):
        strings = [part for part in _LIST_SPLIT.split(strings[0]) if part]
    return tuple(dict.fromkeys(strings))


@lru_cache(maxsize=65536)
def parse_date(value: str) -> tuple[int | None, str | None, int | None]:
    """ISO 8601 → (year, YYYY-MM-DD, epoch seconds); unparseable dates give Nones."""
    if not value:
        return None, None, None
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        match = re.match(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", text)
        if not match:
            return None, None, None
        try:
            moment = datetime(int(match[1]), int(match[2] or 1), int(match[3] or 1))
        except ValueError:
            return None, None, None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        timestamp = int(moment.timestamp())
    except (OverflowError, OSError, ValueError):
        timestamp = None
    return moment.year, moment.date().isoformat(), timestamp


def https(url: str) -> str:
    """Links nivl builds itself use https, whatever upstream stored."""
    return "https://" + url[len("http://") :] if url.startswith("http://") else url


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _links(links: Any) -> tuple[str | None, str | None]:
    """The first ``preview`` and the first ``captions`` link's href (a string), in one pass."""
    preview: str | None = None
    captions: str | None = None
    if not isinstance(links, list):
        return preview, captions
    for link in links:
        if type(link) is not dict and not isinstance(link, Mapping):
            continue
        rel = link.get("rel")
        if rel == "preview" and preview is None or rel == "captions" and captions is None:
            href = link.get("href")
            if isinstance(href, str):
                if rel == "preview":
                    preview = href
                else:
                    captions = href
    return preview, captions
