"""Semantic and hybrid ranking: filters first, then vector and BM25 top-N, fused.

``rank`` returns ``(row_id, score)`` pairs, best first, for ``search.py`` to sort,
facet and page like a lexical hit list. Filters (media_type, center, years,
album and the field parameters) restrict the candidates *before* ranking: with
few matching records (``EXACT_LIMIT``) their vectors are compared exactly;
with many, the HNSW graph is over-fetched in proportion (up to ``MAX_FETCH``) and
the candidates are checked against the filters in tantivy (its ``rid`` field),
never dropped after the page is cut. Only ``q`` is embedded; the other text
parameters are filters.

Fusion, pure and selectable by name: ``blend`` (min-max-scaled scores,
``DENSE_WEIGHT`` dense) or ``rrf`` (reciprocal rank fusion, k=60). Measured by
bench/semantic_quality.py on 36 judged queries (nDCG@10, all / words that differ
from the captions): blend 0.78 / 0.70, rrf 0.73 / 0.57, semantic alone 0.75 / 0.69,
BM25 alone 0.53 / 0.21; rrf is best only on the captions' own words (0.88 against
0.86). RRF gives BM25's confident misses on paraphrases the same weight as the dense
hits; the blend lets a strong dense score win. So: blend.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .query import QueryPlan, SearchRequest, plan_query
from .search_index import Snapshot

if TYPE_CHECKING:
    import numpy as np

    from .vector_index import MatrixIndex, VectorIndex

    Vectors = VectorIndex | MatrixIndex

Ranking = list[tuple[int, float]]

#: How many candidates each side contributes (and the most a ranked search returns); the
#: bench's fusion rows use it too. Chosen on the old judged set (Library.search hybrid with
#: the built-in model, nDCG@10, all records / the split check's unseen half B): 50 0.758 /
#: 0.721, 100 0.779 / 0.718, 200 0.787 / 0.717, 400 0.788 / 0.722: 200 is the cheapest of the
#: best (400 is within one query of it). bench/README.md has the held-out figures.
DEPTH = 200
RRF_K = 60
DENSE_WEIGHT = 0.7
#: The built-in static model gets less say than the extra's. Chosen on the old judged set
#: only, after pooling every mode's top 10 (hybrid nDCG@10 by dense weight, all records /
#: the split check's unseen half B): 0.4 0.770 / 0.721, 0.5 0.779 / 0.717, 0.6 0.789 /
#: 0.722, 0.7 0.778 / 0.713, 0.8 0.767 / 0.719; rrf 0.749 / 0.720; a second weight for
#: relaxed matches (0.5 / 0.8) 0.762 / 0.724. Again for the model fitted with word spans
#: (minilm-fitted-256-v2; 0.6 after pooling, the others before, so floors): 0.5 0.773 /
#: 0.740, 0.6 0.790 / 0.758, 0.7 0.773 / 0.764, 0.8 0.752 / 0.751: 0.6 stays. And for v3
#: (--lam 0.005): 0.5 0.775 / 0.748, 0.6 0.793 / 0.768, 0.7 0.778 / 0.765: 0.6 stays.
#: bench/README.md has the held-out figures.
BUILTIN_DENSE_WEIGHT = 0.6
#: Filtered candidate sets up to this size are ranked exactly (brute force over their
#: vectors); usearch hands vectors back one by one (~10 us each), so this stays small.
EXACT_LIMIT = 2_000
#: The most HNSW candidates fetched for a filtered search; a filter that keeps fewer than
#: DEPTH of them (very selective, in a very large library) returns fewer results.
MAX_FETCH = 20_000


def rrf(*rankings: Sequence[tuple[int, float]], k: int = RRF_K) -> Ranking:
    """Reciprocal rank fusion: sum of 1 / (k + rank) over the lists a row appears in."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for position, (row_id, _score) in enumerate(ranking, start=1):
            fused[row_id] = fused.get(row_id, 0.0) + 1.0 / (k + position)
    return _sorted(fused)


def blend(
    lexical: Sequence[tuple[int, float]],
    dense: Sequence[tuple[int, float]],
    *,
    weight: float = DENSE_WEIGHT,
) -> Ranking:
    """``weight`` x min-max-scaled dense score + (1 - weight) x scaled BM25; absent counts 0."""
    lex = minmax(lexical)
    den = minmax(dense)
    fused = {
        row_id: weight * den.get(row_id, 0.0) + (1.0 - weight) * lex.get(row_id, 0.0)
        for row_id in {*lex, *den}
    }
    return _sorted(fused)


def minmax(ranking: Sequence[tuple[int, float]]) -> dict[int, float]:
    """Scores scaled to 0..1 within the list (all 1.0 when they are equal)."""
    if not ranking:
        return {}
    scores = [score for _, score in ranking]
    low, high = min(scores), max(scores)
    span = high - low
    return {row_id: (score - low) / span if span else 1.0 for row_id, score in ranking}


FUSIONS: dict[str, Callable[[Ranking, Ranking], Ranking]] = {
    "blend": lambda lexical, dense: blend(lexical, dense),
    "rrf": lambda lexical, dense: rrf(lexical, dense),
}
DEFAULT_FUSION = "blend"


def _sorted(scores: dict[int, float]) -> Ranking:
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def filter_plan(request: SearchRequest) -> QueryPlan:
    """The request's plan without ``q``: what every candidate must satisfy."""
    return plan_query(dataclasses.replace(request, q=""))


def has_filters(plan: QueryPlan) -> bool:
    return bool(
        plan.text
        or plan.media_types
        or plan.centers
        or plan.nasa_id
        or plan.album
        or plan.year_start is not None
        or plan.year_end is not None
        or plan.group is not None
        or plan.matches_nothing
    )


def lexical_ranking(index: Snapshot, request: SearchRequest, depth: int = DEPTH) -> Ranking:
    """BM25 top-``depth`` for the whole request (q and filters), as tantivy ranks it."""
    hits = index.search(index.compile(plan_query(request)), limit=depth)
    return list(zip(hits.row_ids, hits.scores, strict=True))


def dense_ranking(
    index: Snapshot,
    vectors: Vectors,
    vector: np.ndarray,
    plan: QueryPlan,
    depth: int = DEPTH,
    exclude: Iterable[int] = (),
) -> Ranking:
    """Vector top-``depth`` among the rows that satisfy ``plan`` (filters before ranking)."""
    skip = set(exclude)
    want = depth + len(skip)
    if not has_filters(plan):
        found = vectors.search(vector, want)
    else:
        query = index.compile(plan)
        allowed = index.search(query, limit=1).total
        if allowed == 0:
            return []
        if allowed <= EXACT_LIMIT:
            row_ids = index.search(query, limit=allowed).row_ids
            found = vectors.exact(vector, row_ids, want)
        else:
            found = _overfetch(index, vectors, vector, query, want, allowed)
    return [(row_id, score) for row_id, score in found if row_id not in skip][:depth]


def _overfetch(
    index: Snapshot,
    vectors: Vectors,
    vector: np.ndarray,
    query: Any,
    want: int,
    allowed: int,
) -> Ranking:
    """HNSW candidates, widened until ``want`` of them pass the filters in tantivy."""
    total = max(len(vectors), 1)
    limit = min(total, MAX_FETCH)
    fetch = min(limit, want * 2 * math.ceil(total / allowed))
    while True:
        candidates = vectors.search(vector, fetch)
        ids = [row_id for row_id, _ in candidates]
        check = index.within_rows(query, ids)
        passing = set(index.search(check, limit=max(len(ids), 1)).row_ids)
        kept = [(row_id, score) for row_id, score in candidates if row_id in passing]
        if len(kept) >= want or fetch >= limit:
            return kept[:want]
        fetch = min(limit, fetch * 4)


def rank(
    index: Snapshot,
    vectors: Vectors,
    vector: np.ndarray | None,
    request: SearchRequest,
    *,
    mode: str,
    fusion: str = DEFAULT_FUSION,
    depth: int = DEPTH,
    exclude: Iterable[int] = (),
    dense_weight: float = DENSE_WEIGHT,
) -> Ranking:
    """Rows for a semantic or hybrid request, best first, filters applied before ranking.

    ``vector`` is the embedded query (None when nothing is embedded yet: hybrid
    then ranks by BM25 alone, semantic finds nothing).
    """
    dense = (
        dense_ranking(index, vectors, vector, filter_plan(request), depth, exclude)
        if vector is not None
        else []
    )
    if mode == "semantic":
        return dense
    lexical = lexical_ranking(index, request, depth) if request.q else []
    fused = (
        blend(lexical, dense, weight=dense_weight)
        if fusion == "blend"
        else FUSIONS[fusion](lexical, dense)
    )
    if request.q and not lexical:
        # no word of q matches anything (not even relaxed, not even a close spelling):
        # nothing a person meant, so no results, not the vectors' nearest noise
        return []
    if (request.sort != "relevance" or request.match == "all") and lexical:
        # by date: the newest among the words' matches (title, keywords, caption start:
        # see matching.py), not whatever the vectors found nearest (issue 17 item 30);
        # match=all: every word, as asked, ranked with the vectors' help
        matched = {row_id for row_id, _ in lexical}
        fused = [(row_id, score) for row_id, score in fused if row_id in matched]
    return fused
