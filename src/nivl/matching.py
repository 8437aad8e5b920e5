"""How ``q`` matches: all content words when that finds enough, else relaxed; typo tolerance.

The rule (measured by bench/semantic_quality.py, README "How q matches"):

* **Content words** are the words of ``q`` that are not stop words. Stop words ("the",
  "of", "what", ...) and words about the medium ("pictures", "photos", "video") are never
  required on their own and add nothing to the score; a ``q`` made only of them requires
  them all. Quoted phrases are always required.
* **Strict first.** Every content word must match (in any of ``q``'s fields). When that
  finds at least ``ENOUGH`` records it is the answer.
* **Relaxed otherwise**, like Meilisearch's ``matchingStrategy`` and Elasticsearch's
  ``minimum_should_match``: records must match ``m`` of the content words, with ``m`` lowered
  one at a time from all-but-one until ``ENOUGH`` records match (down to one). Records are
  ranked by how much of the query they match, each word weighted by its rarity (IDF), and
  then by BM25: a constant bonus per matched word (``TIER`` x its share of the query's IDF)
  dominates BM25. Words count as matched for the bonus only in the *strong* fields (title,
  keywords, the first ``HEAD_CHARS`` of the description, ...): a word found only deep inside
  a 90 kB transcript still matches, but ranks like a partial match.
* **Typos.** A content word of 5+ letters found in at most ``FEW`` records also matches the
  index's own words (unstemmed, title/keywords/description head) within 1 edit (2 from 9
  letters), first letter kept, that are more common than it; they score ``CORRECTION_WEIGHT``
  of an exact match. The most common correction of each such word gives the "did you mean"
  suggestion.
* **Date sort** ("newest among relevant") asks for every content word in the strong fields
  (so transcripts that only mention the words do not fill a "newest" page), relaxing only
  when that finds nothing, and searches all fields only when the strong ones find nothing.
* ``match=all`` (strict) is the literal rule: every word, stop words included, must match,
  no relaxing and no typo tolerance.

``total_hits`` is the count of the one tantivy query returned, so it counts exactly the
records the pages reach.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import tantivy
from tantivy import Occur, Query

#: Strict matching is kept when it finds at least this many records.
ENOUGH = 50
#: Relaxed ranking: the matched-words bonus (the whole query matched = TIER) added to BM25.
TIER = 100.0
#: The matched-words bonus also ranks strict matches (all words, but some only deep
#: inside a transcript rank below those matching every word in the strong fields).
STRICT_BONUS = True
#: A word found in at most this many records gets typo corrections too.
FEW = 2
#: A correction's score relative to an exact match (ranked below exact).
CORRECTION_WEIGHT = 0.5
#: Corrections kept per word, most common first.
MAX_CORRECTIONS = 3
#: Characters of the description that count as a strong match (indexed as description_head).
HEAD_CHARS = 600
#: Fields whose matches are weak: the full texts, which hold whole transcripts.
WEAK_FIELDS = frozenset({"description", "description_508"})
VOCABULARY_FIELD = "words"
#: Words whose queries and counts a searcher keeps for the next queries (``compile_q``).
WORDS_KEPT = 20_000

STOP_WORDS = frozenset(
    """a an and are as at be but by for from has have if in into is it its no not of on or
    such that the their then there these they this to was were will with about after all also
    am any been before being between both can could did do does doing each few had he her here
    hers him his how i me more most my nor off once only other our ours out over own same she
    should so some than them those through too under until up very we what when where which
    while who whom why you your yours""".split()
)
#: Words about the medium, not the subject ("pictures of the rings of saturn"): like stop
#: words, never required on their own and not counted as matched.
MEDIUM_WORDS = frozenset(
    """picture pictures photo photos photograph photographs image images video videos footage
    clip clips movie movies recording recordings""".split()
)


@dataclass(frozen=True)
class Matched:
    """The compiled ``q``, and what a person should be told about it."""

    query: Query
    relaxed: bool = False
    suggestion: str | None = None  # q with typos corrected, when a correction exists
    corrected: bool = False  # some word matched nothing: results come from its correction
    #: How many records the query matches with the filters, when choosing it counted them
    #: (so a collapsed search of few hits can read them all at once, without a recount).
    count: int | None = None
    #: The same records as ``query``, cheaper to walk where scores are not needed (the
    #: group count of a collapsed search): without the strong-field bonus clauses.
    counting: Query | None = None


@dataclass
class _Word:
    text: str  # as typed, lowercased
    query: Query  # exact, all q fields (BM25, field boosts)
    strong: Query  # exact, strong fields only, constant score 1
    searcher: tantivy.Searcher  # the one its counts are read on
    corrections: tuple[tuple[str, int], ...] = ()
    strong_count: int | None = None

    @property
    def df(self) -> int:
        """Records matching the word in a strong field. Counted on first use (a pass over
        the word's postings): a one-word ``q`` without typo candidates never needs it."""
        if self.strong_count is None:
            self.strong_count = _count(self.searcher, self.strong, ())
        return self.strong_count


def compile_q(
    index: tantivy.Index,
    searcher: tantivy.Searcher,
    vocabulary: tantivy.TextAnalyzer,
    terms: Sequence[str],
    boosts: Mapping[str, float],
    filters: Sequence[Query],
    *,
    strict: bool = False,
    strong_only: bool = False,
    enough: int | None = None,
    words_seen: dict[tuple[object, ...], _Word] | None = None,
    probe: Callable[[Query, bool], int] | None = None,
) -> Matched:
    """``q``'s terms (words and "quoted phrases") → one query, by the rule above.

    ``filters`` are the request's other required parts: "enough" counts what they allow.
    ``words_seen`` keeps each word's queries and counts for the next query on the same
    ``searcher`` (each count is a pass over the word's postings in every field).
    ``probe``, when given, counts a candidate query's records (with the filters) by
    searching it for the page the request shows (told whether the candidate is relaxed:
    a relaxed one usually has few records, worth reading at once): the candidate that
    is chosen has then been searched already, and its count pass is saved (search.py).
    """
    if strict:  # every word as typed; a suggestion is only offered
        suggestion = _suggest(
            terms,
            {
                word.text: word.corrections[0][0]
                for t in dict.fromkeys(terms)
                if not t.startswith('"') and t not in STOP_WORDS
                for word in [_word(index, searcher, vocabulary, t, boosts, boosts, words_seen)]
                if word.corrections
            },
        )
        return Matched(_parse(index, " ".join(f"+{t}" for t in terms), boosts), False, suggestion)
    enough = ENOUGH if enough is None else enough
    if strong_only:  # date order: all words if anything has them all, in the strong fields
        strong = {f: w for f, w in boosts.items() if f not in WEAK_FIELDS}
        matched = compile_q(
            index,
            searcher,
            vocabulary,
            terms,
            strong,
            filters,
            enough=1,
            words_seen=words_seen,
            probe=probe,
        )
        found_strong = matched.count
        if found_strong is None:
            found_strong = (
                probe(matched.query, matched.relaxed)
                if probe
                else _count(searcher, matched.query, filters)
            )
        if found_strong:
            return dataclasses.replace(matched, count=found_strong)
        enough = 1
    phrases = [t for t in terms if t.startswith('"')]
    words = [t for t in terms if not t.startswith('"')]
    content = [w for w in words if w not in STOP_WORDS and w not in MEDIUM_WORDS]
    content = content or [w for w in words if w not in STOP_WORDS] or ([] if phrases else words)
    content = list(dict.fromkeys(content))
    strong_boosts = {f: w for f, w in boosts.items() if f not in WEAK_FIELDS}
    required = [_parse(index, p, boosts) for p in phrases]
    found = [
        _word(index, searcher, vocabulary, w, boosts, strong_boosts, words_seen) for w in content
    ]
    total = max(int(searcher.num_docs), 1)
    clauses: list[Query] = []
    weights: list[float] = [1.0] * len(found)
    suggestion_words: dict[str, str] = {}
    corrected = False
    for word in found:
        alternatives = [(Occur.Should, word.query)]
        for correction, _df in word.corrections:
            alternatives.append(
                (
                    Occur.Should,
                    Query.boost_query(_parse(index, correction, boosts), CORRECTION_WEIGHT),
                )
            )
        if word.corrections:
            suggestion_words[word.text] = word.corrections[0][0]
            corrected |= word.df == 0
        clauses.append(_any(alternatives))
    if len(found) > 1:  # the weights rank the matched-words bonus: only several words have it
        weights = [
            _idf(max([word.df, *(df for _, df in word.corrections)]), total) for word in found
        ]
    suggestion = _suggest(terms, suggestion_words)
    if not clauses:
        return Matched(_all(required) if required else Query.empty_query(), False, suggestion)
    # each word: BM25, plus the matched-words bonus when it matches in a strong field
    idf_sum = sum(weights) or 1.0
    scored = [
        _any(
            [
                (Occur.Should, clause),
                (Occur.Should, Query.const_score_query(word.strong, TIER * weight / idf_sum)),
            ]
        )
        if len(clauses) > 1
        else clause
        for clause, word, weight in zip(clauses, found, weights, strict=True)
    ]
    strict_query = _all([*required, *(scored if STRICT_BONUS else clauses)])
    alone = len(clauses) == 1 and not required  # one word: nothing to relax
    if alone:
        return Matched(strict_query, False, suggestion, corrected)
    # Counted without the strong-field bonus clauses: the same records match (a word's
    # strong fields are among its fields), with about half the postings to walk.
    strict_count = _all([*required, *clauses])
    count: int | None = (
        probe(strict_query, False) if probe else _count(searcher, strict_count, filters)
    )
    if count is not None and count >= enough:
        return Matched(strict_query, False, suggestion, corrected, count, strict_count)
    # relaxed: the largest m that finds enough (down to one word, or to the phrases alone)
    lowest = 0 if required else 1
    query, counted = strict_query, strict_count
    for m in range(len(scored) - 1, lowest - 1, -1):
        query = Query.boolean_query(
            [(Occur.Must, r) for r in required] + [(Occur.Should, c) for c in scored],
            m or None,
        )
        counted = Query.boolean_query(
            [(Occur.Must, r) for r in required] + [(Occur.Should, c) for c in clauses],
            m or None,
        )
        if m == lowest:
            count = None
        else:
            count = probe(query, True) if probe else _count(searcher, counted, filters)
        if count is None or count >= enough:
            break
    return Matched(query, True, suggestion, corrected, count, counted)


def _word(
    index: tantivy.Index,
    searcher: tantivy.Searcher,
    vocabulary: tantivy.TextAnalyzer,
    text: str,
    boosts: Mapping[str, float],
    strong_boosts: Mapping[str, float],
    seen: dict[tuple[object, ...], _Word] | None = None,
) -> _Word:
    key = (text, tuple(boosts.items()), tuple(strong_boosts))
    if seen is not None and (word := seen.get(key)) is not None:
        return word
    word = _new_word(index, searcher, vocabulary, text, boosts, strong_boosts)
    if seen is not None:
        if len(seen) >= WORDS_KEPT:
            seen.clear()  # a bound, not an LRU: the common words come back at once
        seen[key] = word
    return word


def _new_word(
    index: tantivy.Index,
    searcher: tantivy.Searcher,
    vocabulary: tantivy.TextAnalyzer,
    text: str,
    boosts: Mapping[str, float],
    strong_boosts: Mapping[str, float],
) -> _Word:
    query = _parse(index, text, boosts)
    strong = _parse(index, text, {f: 1.0 for f in strong_boosts})
    word = _Word(text, query, strong, searcher)
    if len(text) >= 5 and text.isalpha() and not _common(searcher, vocabulary, text):
        if _count(searcher, query, ()) <= FEW:
            word.corrections = _corrections(searcher, vocabulary, text, word.df)
    return word


def _common(searcher: tantivy.Searcher, vocabulary: tantivy.TextAnalyzer, text: str) -> bool:
    """In more than ``FEW`` records' titles, keywords or caption starts (one term lookup)."""
    tokens = vocabulary.analyze(text)
    return len(tokens) == 1 and int(searcher.doc_freq(VOCABULARY_FIELD, tokens[0])) > FEW


def _corrections(
    searcher: tantivy.Searcher, vocabulary: tantivy.TextAnalyzer, text: str, df: int
) -> tuple[tuple[str, int], ...]:
    """Index words within 1 edit (2 from 9 letters) of ``text``, same first letter, more
    common than it: the usual typo rule, over the index's own vocabulary."""
    tokens = vocabulary.analyze(text)
    if len(tokens) != 1:
        return ()
    word = tokens[0]
    limit = 2 if len(word) >= 9 else 1
    found = []
    letters = set(word)
    for term, count in searcher.terms_with_prefix(VOCABULARY_FIELD, word[0]):
        if count <= df or term == word or abs(len(term) - len(word)) > limit:
            continue
        # each edit changes at most two letters of the set difference: a cheap first test
        if len(letters.symmetric_difference(term)) <= 2 * limit and (
            edit_distance(word, term, limit) <= limit
        ):
            found.append((term, int(count)))
    found.sort(key=lambda item: (-item[1], item[0]))
    return tuple(found[:MAX_CORRECTIONS])


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (a swap of neighbours is one edit), or
    ``limit + 1`` as soon as it is known to exceed ``limit``."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def _suggest(terms: Sequence[str], replacements: Mapping[str, str]) -> str | None:
    if not replacements:
        return None
    return " ".join(replacements.get(t, t) for t in terms)


def _idf(df: int, total: int) -> float:
    return math.log(1.0 + (total - df + 0.5) / (df + 0.5))


def _parse(index: tantivy.Index, text: str, boosts: Mapping[str, float]) -> Query:
    return index.parse_query(text, list(boosts), field_boosts=dict(boosts))


def _any(parts: list[tuple[Occur, Query]]) -> Query:
    return parts[0][1] if len(parts) == 1 else Query.boolean_query(parts)


def _all(queries: Sequence[Query]) -> Query:
    if len(queries) == 1:
        return queries[0]
    return Query.boolean_query([(Occur.Must, q) for q in queries])


def _count(searcher: tantivy.Searcher, query: Query, filters: Sequence[Query]) -> int:
    if filters:
        query = Query.boolean_query([(Occur.Must, q) for q in (query, *filters)])
    return int(searcher.search(query, 1, count=True).count)  # type: ignore[attr-defined]
