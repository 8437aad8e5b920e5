"""``SearchRequest`` → ``SearchResult``: sort, facets, highlights, paging.

Filtering, sorting and counting happen inside tantivy (fast fields); Python
only touches the one page it returns, whose raw items come from the store.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .query import QueryPlan, SearchRequest, plan_query
from .search_index import HIGHLIGHT_FIELDS, Hits, Snapshot, highlight_document
from .store import Store

#: A collapsed search of at most this many hits reads all past its first batch at once:
#: then the groups are counted from those hits, not by another pass over the postings.
ALL_AT_ONCE = 2000
#: A collapsed page that its first batch of hits does not fill reads the rest in one pass
#: when at most this many hits remain (``_collapsed``).
REST_AT_ONCE = 20_000
#: A collapsed page that needs another batch reads this much more than the groups found
#: so far say it needs (they are a sample of the hits: the rate drifts).
GROWTH = 1.25


@dataclass(frozen=True)
class GroupInfo:
    id: int
    level: str
    size: int


@dataclass(frozen=True, slots=True)
class SearchHit:
    row_id: int
    raw_json: bytes  # the stored item, UTF-8, as it goes out in a response
    score: float
    group: GroupInfo | None = None
    highlight: dict[str, str] | None = None

    @property
    def raw(self) -> str:
        """The stored item's JSON text."""
        return self.raw_json.decode()


@dataclass(frozen=True)
class SearchResult:
    request: SearchRequest
    total_hits: int
    hits: list[SearchHit]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    total_groups: int | None = None
    #: ``q`` with its typos corrected (matching.py), when a correction exists; ``corrected``
    #: when some word matched nothing, so the results come from its correction.
    suggestion: str | None = None
    corrected: bool = False

    @property
    def has_next(self) -> bool:
        total = self.total_groups if self.total_groups is not None else self.total_hits
        return self.request.offset + len(self.hits) < total

    @property
    def has_prev(self) -> bool:
        return self.request.page > 1


def search(
    store: Store,
    index: Snapshot,
    request: SearchRequest,
    *,
    ranking: Sequence[tuple[int, float]] | None = None,
) -> SearchResult:
    """``ranking`` (semantic/hybrid: row ids and scores, best first, filters already applied)
    replaces tantivy's BM25 order; sort, facets, highlights and paging work the same."""
    plan = plan_query(request)
    if ranking is not None:
        _query, matched = index.compile_matching(plan)
        result = _search_ranking(store, index, request, plan, ranking)
    elif request.collapse != "none":
        limit = _first_batch(request)
        query, unscored, matched, first = index.compile_and_search(
            plan, limit=limit, sort=request.sort, relaxed_limit=ALL_AT_ONCE
        )
        result = _collapsed(store, index, request, query, first, plan, unscored)
    else:
        query, _unscored, matched, first = index.compile_and_search(
            plan, limit=request.page_size, offset=request.offset, sort=request.sort
        )
        result = _search_page(store, index, request, query, first)
    if matched is not None and matched.suggestion:
        result = dataclasses.replace(
            result, suggestion=matched.suggestion, corrected=matched.corrected
        )
    return result


def _search_page(
    store: Store, index: Snapshot, request: SearchRequest, query: Any, hits: Hits
) -> SearchResult:
    """One page of hits in tantivy's order (relevance or date), searched with the query."""
    raws = store.raw_map(hits.row_ids)
    highlights = _highlights(index, query, raws, hits.row_ids) if request.highlight else None
    page = [
        SearchHit(
            row_id=row_id,
            raw_json=raws[row_id],
            score=score,
            highlight=highlights[i] if highlights else None,
        )
        for i, (row_id, score) in enumerate(zip(hits.row_ids, hits.scores, strict=True))
        if row_id in raws  # an index row the store lacks (damage) is left out, not misaligned
    ]
    facets = index.facets(query, request.facets) if request.facets else {}
    return SearchResult(request=request, total_hits=hits.total, hits=page, facets=facets)


def _first_batch(request: SearchRequest) -> int:
    """The hits a collapsed page reads first: twice the groups it needs, at least 200."""
    return max((request.offset + request.page_size) * 2, 200)


def _collapsed(
    store: Store,
    index: Snapshot,
    request: SearchRequest,
    query: Any,
    first: Hits,
    plan: QueryPlan | None = None,
    unscored: Any = None,
) -> SearchResult:
    """Each group once, by its best-ranked hit, read from the group fast field in rank order.

    Hits are read in growing batches until the page's groups are found (or the hits
    end), so page N shows the groups whose best hits rank (N-1)·size+1 … N·size among
    groups: none repeats across pages and none is skipped, at any depth. When the
    batches stop early, ``total_groups`` is an exact count over every hit, so the last
    page, ``next`` and the pager all agree with what the pages hold.

    Every batch is a pass over the query's postings, so when the groups found so far
    say that doubling would take two or more passes, all the remaining hits are read
    in one (if at most ``REST_AT_ONCE``; then the groups are counted from them, with
    no counting pass): doubling made 4–6 passes on a few thousand hits in few groups.
    (Reading every hit is exact too, but costs about 0.5 µs a hit: past that, more
    than a counting pass.) ``first`` is the first batch (``_first_batch`` hits from the
    top, or ``ALL_AT_ONCE`` for a relaxed query), searched with the query already; when
    the hits are few (``ALL_AT_ONCE``) the second batch takes all the rest. The count of
    groups is kept with the snapshot for the request's plan, so the next pages of the
    same search reuse it; it is counted on ``unscored`` (the same records as ``query``,
    cheaper to walk without scores).
    """
    level = request.collapse
    field_name = f"{level}_group"
    unscored = query if unscored is None else unscored
    wanted = request.offset + request.page_size
    firsts: dict[int, tuple[int, float, Any, int | None]] = {}  # group key → first hit
    scanned, total, batch = 0, 0, _first_batch(request)
    counting: Future[int] | None = None
    counted = index.known_groups(plan, field_name) if plan is not None else None
    hits: Hits | None = first
    while len(firsts) < wanted:
        if hits is None:
            hits = index.search(query, limit=batch, offset=scanned, sort=request.sort)
        total = hits.total
        ids = index.fast_values(field_name, hits.addresses) if hits.addresses else []
        for row_id, score, address, group_id in zip(
            hits.row_ids, hits.scores, hits.addresses, ids, strict=True
        ):
            key = int(group_id) if group_id is not None else -row_id  # ungrouped: alone
            if key not in firsts:
                firsts[key] = (row_id, score, address, group_id)
        scanned += len(hits.addresses)
        if scanned >= total or not hits.addresses:
            break
        hits = None
        rest = total - scanned
        # hits still needed at the groups-per-hit rate so far (at least one group: seen)
        needed = (wanted - len(firsts)) * scanned / max(1, len(firsts))
        if total <= ALL_AT_ONCE or (
            rest <= REST_AT_ONCE and (needed > 2 * batch or rest <= 2 * batch)
        ):
            batch = rest  # doubling would take two or more passes: the next reads them all
        else:
            if counting is None and counted is None:  # many hits: count while reading
                counting = _counter().submit(index.count_distinct, unscored, field_name, total)
            # at least double, and at once as far as the groups-per-hit rate says: each
            # pass walks every posting of the query (date-sorted pages crowded into few
            # events made 4–6 doubling passes)
            batch = min(rest, max(batch * 2, int(needed * GROWTH) + 1))
    if scanned < total and counting is None and counted is None:
        # the page is full and hits remain: count their groups while the page is read
        counting = _counter().submit(index.count_distinct, unscored, field_name, total)
    chosen = list(firsts.values())[request.offset : wanted]
    sizes = store.group_sizes([g for *_, g in chosen if g is not None])
    raws = store.raw_map([row_id for row_id, *_ in chosen])
    shown = [row_id for row_id, *_ in chosen]
    highlights = _highlights(index, query, raws, shown) if request.highlight else None
    if scanned >= total:
        total_groups = len(firsts)
        if counting is not None:
            counting.cancel()  # not needed after all (if it has started, it just ends)
    elif counted is not None:
        total_groups = counted
    elif counting is not None:
        total_groups = counting.result()
    else:
        total_groups = index.count_distinct(unscored, field_name, total)
    if plan is not None:
        index.remember_groups(plan, field_name, total_groups)
    page = [
        SearchHit(
            row_id=row_id,
            raw_json=raws[row_id],
            score=score,
            group=GroupInfo(int(group_id), level, sizes.get(int(group_id), 1))
            if group_id is not None
            else None,
            highlight=highlights[i] if highlights else None,
        )
        for i, (row_id, score, _, group_id) in enumerate(chosen)
        if row_id in raws  # an index row the store lacks (damage) is left out, not misaligned
    ]
    facets = index.facets(query, request.facets) if request.facets else {}
    return SearchResult(
        request=request, total_hits=total, hits=page, facets=facets, total_groups=total_groups
    )


_pool: tuple[int, ThreadPoolExecutor] | None = None  # (the pid that made it, the pool)
_pool_lock = threading.Lock()


def _counter() -> ThreadPoolExecutor:
    """Threads for the group counts of collapsed searches (tantivy releases the GIL), made
    on first use in each process (a forked worker does not inherit its parent's threads):
    one per core, shared by every request of the process."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(os.cpu_count() or 1, "nivl-count"))
        return _pool[1]


def _highlights(
    index: Snapshot, query: Any, raws: dict[int, bytes], row_ids: Sequence[int]
) -> list[dict[str, str]]:
    """Each row's marked title and description, cut from its stored item (the index does
    not store the text)."""
    generators = {name: index.snippet_generator(query, name) for name in HIGHLIGHT_FIELDS}
    for generator in generators.values():
        generator.set_max_num_chars(240)
    out: list[dict[str, str]] = []
    for row_id in row_ids:
        raw = raws.get(row_id)
        if raw is None:  # a row the store lacks: left out of the page
            out.append({})
            continue
        doc = highlight_document(raw)
        marked = {}
        for name, generator in generators.items():
            snippet = generator.snippet_from_doc(doc)
            if snippet.highlighted():
                marked[name] = snippet.to_html()
        out.append(marked)
    return out


def _search_ranking(
    store: Store,
    index: Snapshot,
    request: SearchRequest,
    plan: QueryPlan,
    ranking: Sequence[tuple[int, float]],
) -> SearchResult:
    """Page a semantic/hybrid ranking: sort, collapse, facets and highlights as for lexical.

    The ranking is short (``hybrid.DEPTH`` per side), so its members are one tantivy
    term-set query on ``rid``: tantivy sorts them by date, reads their group ids and
    counts their facets; a collapsed page shows each group once, by its best member.
    """
    scores = dict(ranking)
    if not scores:
        return SearchResult(request=request, total_hits=0, hits=[])
    members = index.rows_query(list(scores))
    located = index.search(members, limit=len(scores), sort=request.sort)
    address = dict(zip(located.row_ids, located.addresses, strict=True))
    if request.sort == "relevance":
        order = [row_id for row_id, _ in ranking if row_id in address]
    else:
        order = list(located.row_ids)
    groups: dict[int, int | None] = {}
    total_groups = None
    if request.collapse != "none":
        values = index.fast_values(f"{request.collapse}_group", [address[r] for r in order])
        firsts: dict[int, int] = {}  # group key -> its best member
        for row_id, group_id in zip(order, values, strict=True):
            key = int(group_id) if group_id is not None else -row_id  # ungrouped: alone
            firsts.setdefault(key, row_id)
            groups[row_id] = int(group_id) if group_id is not None else None
        order, total_groups = list(firsts.values()), len(firsts)
    page_ids = order[request.offset : request.offset + request.page_size]
    rows = store.raw_map(page_ids)
    page_ids = [row_id for row_id in page_ids if row_id in rows]
    sizes = store.group_sizes([g for r in page_ids if (g := groups.get(r)) is not None])
    highlights = None
    if request.highlight and page_ids:
        highlights = _highlights(index, index.compile(plan), rows, page_ids)
    page = []
    for i, row_id in enumerate(page_ids):
        group_id = groups.get(row_id)
        page.append(
            SearchHit(
                row_id=row_id,
                raw_json=rows[row_id],
                score=scores[row_id],
                group=GroupInfo(group_id, request.collapse, sizes.get(group_id, 1))
                if group_id is not None
                else None,
                highlight=highlights[i] if highlights else None,
            )
        )
    facets = index.facets(members, request.facets) if request.facets else {}
    return SearchResult(
        request=request,
        total_hits=len(scores),
        hits=page,
        facets=facets,
        total_groups=total_groups,
    )
