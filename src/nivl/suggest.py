"""Autocomplete: completions of what is being typed, from the index's own vocabulary.

Two sources, both read once per index revision from tantivy's term dictionaries (the
snapshot builds a ``Completions`` on first use and keeps it, so a reload rebuilds it and a
keystroke costs only a binary search): the keywords (``keyword_exact``: mission names such
as "Apollo 11", case variants merged) and the unstemmed words of titles, keywords and
caption starts (the ``words`` field that typo correction reads; stop words left out).

For ``q``:

* keywords that start with the whole of ``q`` ("apollo 1" → "Apollo 11");
* words and keywords that start with its last word, the earlier words kept as typed
  ("moon apo" → "moon apollo");

ranked by how many records hold them, a keyword counting double (a phrase people tag with
is a better completion than a word of the same count), then shorter first. Matching folds
case and accents ("Ōri" completes to "orion").
"""

from __future__ import annotations

import bisect
import heapq
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .matching import STOP_WORDS

#: Completions returned by default, and at most.
LIMIT = 10
#: A keyword's count weighs this much more than a word's in the ranking.
KEYWORD_WEIGHT = 2
#: Earlier words that narrow the last word's counts (the last ones typed).
MAX_HEAD_WORDS = 8
#: Prefix ranges longer than this are ranked once per snapshot and remembered.
MEMO_RANGE = 2000

_LAST_WORD = re.compile(r"[^\W_]+$")
_SPACES = re.compile(r"\s+")
_WORDS = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Suggestion:
    text: str
    count: int


def fold(text: str) -> str:
    """Lowercase, accents dropped, runs of spaces as one (what the vocabulary analyzer does)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", bare).lstrip()


class _Sorted:
    """Keys in order with their display text and count: a prefix is a bisect away."""

    def __init__(self, entries: dict[str, tuple[str, int]]) -> None:
        self.keys = sorted(entries)
        self.texts = [entries[k][0] for k in self.keys]
        self.counts = [entries[k][1] for k in self.keys]
        self._memo: dict[tuple[str, int], list[int]] = {}
        self._lock = threading.Lock()

    def top(self, prefix: str, limit: int) -> list[int]:
        """Positions of the ``limit`` most common keys starting with ``prefix``."""
        lo = bisect.bisect_left(self.keys, prefix)
        hi = bisect.bisect_left(self.keys, prefix + "\U0010ffff", lo)
        if hi - lo <= MEMO_RANGE:
            return heapq.nlargest(limit, range(lo, hi), key=self.counts.__getitem__)
        with self._lock:
            found = self._memo.get((prefix, limit))
            if found is None:  # short prefixes only: few of them, each ranked once
                found = heapq.nlargest(limit, range(lo, hi), key=self.counts.__getitem__)
                self._memo[(prefix, limit)] = found
            return found


class Completions:
    """One index revision's vocabulary, ready for prefix lookups."""

    def __init__(self, keywords: Iterable[tuple[str, int]], words: Iterable[tuple[str, int]]):
        merged: dict[str, tuple[str, int, int]] = {}  # folded → spelling, its count, total
        for keyword, count in keywords:
            key = fold(keyword).rstrip()
            if not key:
                continue
            spelling, best, total = merged.get(key, (keyword, count, 0))
            if (not keyword.isupper(), count) > (not spelling.isupper(), best):
                spelling, best = keyword, count
            merged[key] = (spelling, best, total + count)
        self.keywords = _Sorted({k: (s, total) for k, (s, _, total) in merged.items()})
        self.words = _Sorted({w: (w, c) for w, c in words if _completes(w) and c > 0})

    def suggest(
        self,
        q: str,
        limit: int = LIMIT,
        *,
        along: Callable[[Sequence[str], str, int], list[tuple[str, int]]] | None = None,
    ) -> list[Suggestion]:
        """``along(head words, prefix, n)``: the ``n`` words starting with ``prefix`` most
        common among the records holding every head word (counts in those records)."""
        whole = fold(q)
        if not whole.strip():
            return []
        found: dict[str, tuple[int, int, str]] = {}  # folded text → count, weight, text

        def add(text: str, count: int, weight: int, key: str) -> None:
            old = found.get(key, (0, 0, text))  # the first spelling (a keyword's) stays
            found[key] = (max(count, old[0]), max(weight, old[1]), old[2])

        for i in self.keywords.top(whole, limit):
            add(
                self.keywords.texts[i],
                self.keywords.counts[i],
                KEYWORD_WEIGHT,
                self.keywords.keys[i],
            )
        last = _LAST_WORD.search(q)
        if last:
            head = q[: last.start()]
            prefix = fold(last.group())
            folded_head = fold(head)  # once: the key of each completion is it plus a word
            content = [w for w in _WORDS.findall(folded_head) if w not in STOP_WORDS]
            content = list(dict.fromkeys(content))[-MAX_HEAD_WORDS:]  # a pasted essay: its end
            if content and along is not None:  # counted in the records the head finds
                common = [(w, c) for w, c in along(content, prefix, limit * 3) if _completes(w)]
                for word, count in common[:limit]:
                    add(head + word, count, 1, folded_head + word)
            else:
                for i in self.words.top(prefix, limit):
                    add(
                        head + self.words.texts[i],
                        self.words.counts[i],
                        1,
                        folded_head + self.words.keys[i],
                    )
        ranked = sorted(found.values(), key=lambda e: (-e[0] * e[1], len(e[2]), e[2]))
        return [Suggestion(_SPACES.sub(" ", text).strip(), n) for n, _, text in ranked[:limit]]


def _completes(word: str) -> bool:
    """A word worth offering: not a stop word, not a lone letter."""
    return len(word) > 1 and word not in STOP_WORDS
