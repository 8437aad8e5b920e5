"""``SearchRequest`` → ``SearchResult``: sort, facets, highlights, paging.

Filtering, sorting and counting happen inside tantivy (fast fields); Python
only touches the one page it returns, whose raw items come from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .query import SearchRequest, plan_query
from .search_index import SearchIndex
from .store import Store

HIGHLIGHT_FIELDS = ("title", "description")


@dataclass(frozen=True)
class GroupInfo:
    id: int
    level: str
    size: int


@dataclass(frozen=True)
class SearchHit:
    row_id: int
    raw: str
    score: float
    group: GroupInfo | None = None
    highlight: dict[str, str] | None = None


@dataclass(frozen=True)
class SearchResult:
    request: SearchRequest
    total_hits: int
    hits: list[SearchHit]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    total_groups: int | None = None

    @property
    def has_next(self) -> bool:
        total = self.total_groups if self.total_groups is not None else self.total_hits
        return self.request.offset + len(self.hits) < total

    @property
    def has_prev(self) -> bool:
        return self.request.page > 1


def search(store: Store, index: SearchIndex, request: SearchRequest) -> SearchResult:
    plan = plan_query(request)
    query = index.compile(plan)
    hits = index.search(query, limit=request.page_size, offset=request.offset, sort=request.sort)
    raws = store.raw_by_ids(hits.row_ids)
    highlights = _highlights(index, query, hits.addresses) if request.highlight else None
    page = [
        SearchHit(
            row_id=row_id, raw=raw, score=score, highlight=highlights[i] if highlights else None
        )
        for i, (row_id, raw, score) in enumerate(zip(hits.row_ids, raws, hits.scores, strict=False))
    ]
    facets = index.facets(query, request.facets) if request.facets else {}
    return SearchResult(request=request, total_hits=hits.total, hits=page, facets=facets)


def _highlights(index: SearchIndex, query: Any, addresses: list[Any]) -> list[dict[str, str]]:
    generators = {name: index.snippet_generator(query, name) for name in HIGHLIGHT_FIELDS}
    for generator in generators.values():
        generator.set_max_num_chars(240)
    out = []
    for address in addresses:
        doc = index.searcher.doc(address)
        marked = {}
        for name, generator in generators.items():
            snippet = generator.snippet_from_doc(doc)
            if snippet.highlighted():
                marked[name] = snippet.to_html()
        out.append(marked)
    return out
