"""Collection+JSON documents, shaped exactly like upstream's; pure.

Stored items are spliced in as the raw text they were stored as, so a page of
100 items is never parsed and re-serialised, and the page is put together by one
``bytes.join`` over slices of them (a page is about 1 MB: each copy counts). The
CLI's ``--json`` and the API's ``/search`` both call ``search_document``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from .groups import GroupPage
from .search import SearchHit, SearchResult

VERSION = "1.0"
Chunk = bytes | memoryview


def search_document(
    result: SearchResult, base_url: str, path: str = "/search", *, window: int | None = None
) -> bytes:
    """A search page; with ``window`` (the deepest result a request may reach), no ``next``
    link past it: the next page would be a 400, so the last reachable page is the last."""
    return b"".join(search_parts(result, base_url, path, window=window))


def search_parts(
    result: SearchResult, base_url: str, path: str = "/search", *, window: int | None = None
) -> list[Chunk]:
    """``search_document`` as the pieces it is joined from (the stored items among them)."""
    request = result.request
    metadata: dict[str, Any] = {"total_hits": result.total_hits}
    if result.total_groups is not None:
        metadata["total_groups"] = result.total_groups
    if result.facets:
        metadata["facets"] = result.facets
    if result.suggestion:  # nivl's extension, only when there is one
        metadata["suggestion"] = {"q": result.suggestion, "corrected": result.corrected}
    return collection_parts(
        base_url,
        path,
        request.params(),
        (item_parts(hit) for hit in result.hits),
        metadata,
        page=request.page,
        has_prev=result.has_prev,
        has_next=result.has_next and _reachable(request.page + 1, request.page_size, window),
    )


def group_document(group: GroupPage, base_url: str, *, window: int | None = None) -> bytes:
    """A group's members (``/groups/{id}``), shaped like a search page."""
    params = {"page": str(group.page), "page_size": str(group.page_size)}
    metadata = {
        "total_hits": group.size,
        "group": {"id": str(group.id), "level": group.level, "size": group.size},
    }
    return collection_document(
        base_url,
        f"/groups/{group.id}",
        params,
        ((raw.encode(),) for raw in group.raws),
        metadata,
        page=group.page,
        has_prev=group.page > 1,
        has_next=group.has_next and _reachable(group.page + 1, group.page_size, window),
    )


def collection_document(
    base_url: str,
    path: str,
    params: Mapping[str, str],
    items: Iterable[Sequence[Chunk]],
    metadata: Mapping[str, Any],
    *,
    page: int,
    has_prev: bool,
    has_next: bool,
) -> bytes:
    """``collection_parts`` joined."""
    return b"".join(
        collection_parts(
            base_url, path, params, items, metadata, page=page, has_prev=has_prev, has_next=has_next
        )
    )


def collection_parts(
    base_url: str,
    path: str,
    params: Mapping[str, str],
    items: Iterable[Sequence[Chunk]],
    metadata: Mapping[str, Any],
    *,
    page: int,
    has_prev: bool,
    has_next: bool,
) -> list[Chunk]:
    """Collection+JSON with ``prev``/``next`` links back at ``base_url`` + ``path`` (and
    no ``links`` key at all on a lone page, as upstream).

    Each item comes as the pieces it is made of, joined here with the rest in one go.
    """
    links = []
    if has_prev:
        links.append(
            {
                "rel": "prev",
                "prompt": "Previous",
                "href": _url(base_url, path, {**params, "page": str(page - 1)}),
            }
        )
    if has_next:
        links.append(
            {
                "rel": "next",
                "prompt": "Next",
                "href": _url(base_url, path, {**params, "page": str(page + 1)}),
            }
        )
    parts: list[Chunk] = [
        b'{"collection":{"version":"',
        VERSION.encode(),
        b'","href":',
        orjson.dumps(_url(base_url, path, params)),
        b',"items":[',
    ]
    for n, item in enumerate(items):
        if n:
            parts.append(b",")
        parts.extend(item)
    parts += (b'],"metadata":', orjson.dumps(metadata))
    if links:  # upstream leaves the key out when there is no other page (clients test for it)
        parts += (b',"links":', orjson.dumps(links))
    parts.append(b"}}")
    return parts


def item_parts(hit: SearchHit) -> tuple[Chunk, ...]:
    """The stored item, plus nivl's ``group``/``highlight`` keys only when asked for, as
    the pieces to join (a view of the stored bytes, not a copy)."""
    raw = hit.raw_json
    extra: dict[str, Any] = {}
    if hit.group is not None:
        extra["group"] = {"id": str(hit.group.id), "level": hit.group.level, "size": hit.group.size}
    if hit.highlight is not None:
        extra["highlight"] = hit.highlight
    if not extra:
        return (raw,)
    tail = orjson.dumps(extra)[1:]  # '"group":{...}}' without the opening brace
    return (memoryview(raw)[:-1], b"," if raw != b"{}" else b"", tail)


def location_document(url: str) -> bytes:
    return orjson.dumps({"location": url})


def _reachable(page: int, page_size: int, window: int | None) -> bool:
    """Whether a request for ``page`` stays within the result window (``query.parse_request``
    refuses one that does not)."""
    return window is None or page * page_size <= window


def _url(base_url: str, path: str, params: Mapping[str, str]) -> str:
    query = urlencode(params)
    return f"{base_url.rstrip('/')}{path}" + (f"?{query}" if query else "")
