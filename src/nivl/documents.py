"""Collection+JSON documents, shaped exactly like upstream's; pure.

Stored items are spliced in as the raw text they were stored as, so a page of
100 items is never parsed and re-serialised. The CLI's ``--json`` and the
API's ``/search`` both call ``search_document``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import orjson

from .search import SearchHit, SearchResult

VERSION = "1.0"


def search_document(result: SearchResult, base_url: str, path: str = "/search") -> bytes:
    request = result.request
    params = request.params()
    href = _url(base_url, path, params)
    links = []
    if result.has_prev:
        links.append(
            {
                "rel": "prev",
                "prompt": "Previous",
                "href": _url(base_url, path, {**params, "page": str(request.page - 1)}),
            }
        )
    if result.has_next:
        links.append(
            {
                "rel": "next",
                "prompt": "Next",
                "href": _url(base_url, path, {**params, "page": str(request.page + 1)}),
            }
        )
    metadata: dict[str, Any] = {"total_hits": result.total_hits}
    if result.total_groups is not None:
        metadata["total_groups"] = result.total_groups
    if result.facets:
        metadata["facets"] = result.facets
    items = b",".join(item_bytes(hit) for hit in result.hits)
    return b"".join(
        (
            b'{"collection":{"version":"',
            VERSION.encode(),
            b'","href":',
            orjson.dumps(href),
            b',"items":[',
            items,
            b'],"metadata":',
            orjson.dumps(metadata),
            b',"links":',
            orjson.dumps(links),
            b"}}",
        )
    )


def item_bytes(hit: SearchHit) -> bytes:
    """The stored item, plus nivl's ``group``/``highlight`` keys only when asked for."""
    raw = hit.raw.encode()
    extra: dict[str, Any] = {}
    if hit.group is not None:
        extra["group"] = {"id": str(hit.group.id), "level": hit.group.level, "size": hit.group.size}
    if hit.highlight is not None:
        extra["highlight"] = hit.highlight
    if not extra:
        return raw
    tail = orjson.dumps(extra)[1:]  # '"group":{...}}' without the opening brace
    return raw[:-1] + (b"," if raw != b"{}" else b"") + tail


def location_document(url: str) -> bytes:
    return orjson.dumps({"location": url})


def _url(base_url: str, path: str, params: Mapping[str, str]) -> str:
    query = urlencode(params)
    return f"{base_url.rstrip('/')}{path}" + (f"?{query}" if query else "")
