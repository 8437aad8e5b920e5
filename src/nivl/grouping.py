"""Caption, near-duplicate and event groups over records; pure.

Three nested levels (DESIGN.md, "Groups"), each found as the connected components
of a graph whose edges are decided pair by pair, so grouping any set that is closed
under those edges gives the same groups as grouping everything (which is what lets
``groups.py`` regroup only the neighbourhood of new records):

- ``caption``: equal normalised descriptions (stamps such as
  ``JSC2000-E-29123 (27 November 2000) ---``, case, punctuation and spacing ignored);
- ``near``: caption edges, plus pairs whose word-shingle Jaccard of title + description
  reaches ``Thresholds.near``; candidates come from MinHash-LSH bands, never all pairs;
- ``event``: near edges, plus pairs on the same day at the same center whose content
  words overlap (``Thresholds.event``), plus consecutive photo numbers (same series,
  same day, at most ``Thresholds.run_gap`` apart).

Group ids are a 63-bit hash of the level and the group's smallest ``nasa_id``: the same
input always gives the same ids, in any order, they fit SQLite's INTEGER and tantivy's
u64 fast fields, and adding a record renumbers only a group whose smallest id it takes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from .records import Record

if TYPE_CHECKING:
    from datasketch import MinHash  # type: ignore[import-untyped]


def _datasketch() -> Any:
    """datasketch imports scipy (over a second): load it only when grouping runs."""
    import datasketch

    return datasketch


LEVELS = ("caption", "near", "event")

#: A leading photo id and/or date stamp before a dash rule, as in
#: "JSC2000-E-29123 (27 November 2000) ---" or "iss054e022060 (Jan. 13, 2018) ---".
_STAMP = re.compile(
    r"^\s*(?:[A-Za-z0-9][\w.]*\d[\w.-]*\s*)?(?:\([^()]{1,40}\)\s*)?(?:-{2,}|\u2014|\u2013)\s*"
)
_NON_WORD = re.compile(r"[\W_]+")
_COMBINING = re.compile(r"[\u0300-\u036f]+")
#: Characters of a text that are normalised: enough for any caption, while a podcast
#: transcript pasted into a description (some are 90 kB) costs no more than a long caption.
MAX_CHARS = 4000
_PHOTO_NUMBER = re.compile(r"^(.*[A-Za-z].*?)(\d{3,})$")
_STOPWORDS = frozenset(
    """a an and are as at be by for from has have he her his in is it its of on or she
    that the their they this to was were will with who while after before during into
    photo credit nasa image""".split()
)


@dataclass(frozen=True)
class Thresholds:
    """Tunable parameters; the defaults were chosen by ``bench/grouping_quality.py``."""

    near: float = 0.5  # Jaccard of word shingles for a near-duplicate pair
    shingle: int = 3  # words per shingle
    num_perm: int = 64  # MinHash permutations
    event: float = 0.5  # Jaccard of content words for a same-day, same-center pair
    run_gap: int = 12  # largest step between photo numbers of one run
    near_days: int | None = 0  # near pairs at most this many days apart (None: any)


@dataclass(frozen=True)
class Assignment:
    """One record's group id at each level."""

    caption: int
    near: int
    event: int

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.caption, self.near, self.event)


@dataclass(frozen=True)
class Group:
    id: int
    level: str
    members: tuple[str, ...]  # nasa_ids, sorted
    representative: str


@dataclass(frozen=True)
class Grouping:
    assignments: dict[str, Assignment]  # nasa_id → ids
    groups: list[Group]  # every group of two or more records, per level

    def hidden(self, level: str) -> int:
        """Records a collapse at ``level`` would hide (all but one per group)."""
        return sum(len(g.members) - 1 for g in self.groups if g.level == level)


# --- text ---------------------------------------------------------------------


def strip_stamp(text: str) -> str:
    """Drop a leading photo-id/date stamp ("ISS027-E-015441 (22 April 2011) --- ")."""
    return _STAMP.sub("", text, count=1)


def normalise_text(text: str) -> str:
    """Lowercase words only: stamp, accents, punctuation and spacing ignored."""
    text = strip_stamp(text)
    if not text.isascii():
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text)).replace("\u2019", "")
    return _NON_WORD.sub(" ", text.replace("'", "").lower()).strip()


def caption_key(record: Record) -> str:
    """The normalised description; empty when there is none (such records stay alone).

    Past ``MAX_CHARS`` the rest is compared verbatim, by a digest.
    """
    text = record.description
    key = normalise_text(text[:MAX_CHARS])
    if len(text) > MAX_CHARS:
        tail = hashlib.blake2b(text[MAX_CHARS:].encode(), digest_size=8).hexdigest()
        key = f"{key} {tail}"
    return key


def shingles(text: str, size: int) -> set[str]:
    """Word ``size``-grams of normalised text (the whole text when shorter)."""
    words = normalise_text(text[:MAX_CHARS]).split()
    if len(words) <= size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def content_words(record: Record) -> frozenset[str]:
    words = normalise_text(f"{record.title} {record.description[:MAX_CHARS]}").split()
    return frozenset(w for w in words if len(w) > 2 and w not in _STOPWORDS and not w.isdigit())


def hashed(strings: Iterable[str]) -> np.ndarray:
    """Sorted, distinct 32-bit hashes of strings: a set in 4 bytes an element."""
    return np.unique(np.fromiter((zlib.crc32(s.encode()) for s in strings), dtype=np.uint32))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two ``hashed`` sets."""
    if not a.size or not b.size:
        return 0.0
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)


def photo_number(record: Record) -> tuple[str, int] | None:
    """(series, number) of ids like JSC2000-E-29120 or iss054e022060; None for others."""
    match = _PHOTO_NUMBER.match(record.nasa_id.strip())
    if match is None:
        return None
    return match[1].upper(), int(match[2])


# --- ids and representatives ---------------------------------------------------


def group_id(level: str, smallest_nasa_id: str) -> int:
    """A stable, positive 63-bit id for the group at ``level`` whose smallest id is given."""
    digest = hashlib.blake2b(f"{level}\x00{smallest_nasa_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def key_hash(*parts: object) -> int:
    """A 63-bit hash of a blocking key (for the store's candidate lookups)."""
    text = "\x00".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def representative(records: Iterable[Record]) -> Record:
    """The most informative member: longest description, has keywords, then earliest id."""
    return min(records, key=lambda r: (-len(r.description), not r.keywords, r.nasa_id))


# --- MinHash -------------------------------------------------------------------


@cache
def _permutations(num_perm: int) -> np.ndarray:
    return np.asarray(_datasketch().MinHash(num_perm, seed=1).permutations)


@cache
def _bands(threshold: float, num_perm: int) -> tuple[int, int]:
    lsh = _datasketch().MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def minhash(hashes: np.ndarray, num_perm: int) -> MinHash:
    """Over ``hashed`` shingles: crc32 and a fixed seed, so band keys survive restarts."""
    m = _datasketch().MinHash(
        num_perm, hashfunc=int, permutations=_permutations(num_perm), scheme="affine32"
    )
    m.update_batch(hashes.tolist())
    return m


def near_text(record: Record) -> str:
    return f"{record.title} {strip_stamp(record.description)}"


@dataclass(frozen=True)
class Features:
    """What the rules compare, computed once per record."""

    caption: str
    shingles: np.ndarray  # ``hashed``
    words: np.ndarray  # ``hashed`` content words
    signature: MinHash | None


def features(record: Record, thresholds: Thresholds = Thresholds()) -> Features:
    shingle_hashes = hashed(shingles(near_text(record), thresholds.shingle))
    signature = minhash(shingle_hashes, thresholds.num_perm) if shingle_hashes.size else None
    words = hashed(content_words(record))
    return Features(caption_key(record), shingle_hashes, words, signature)


def blocking_keys(
    record: Record, thresholds: Thresholds = Thresholds(), feats: Features | None = None
) -> set[int]:
    """Keys any record that could share a group with this one also has.

    Caption text, each LSH band, the (day, center) pair and the photo-number bucket
    and its neighbours: a pair joined by any rule shares at least one key.
    """
    feats = feats or features(record, thresholds)
    keys: set[int] = set()
    if feats.caption:
        keys.add(key_hash("caption", feats.caption))
    if feats.signature is not None:
        values = feats.signature.hashvalues
        bands, rows = _bands(thresholds.near, thresholds.num_perm)
        for band in range(bands):
            chunk = values[band * rows : (band + 1) * rows]
            keys.add(key_hash("band", band, chunk.tobytes().hex()))
    if record.date:
        keys.add(key_hash("day", record.date, record.center.upper()))
        number = photo_number(record)
        if number is not None:
            bucket = number[1] // max(thresholds.run_gap, 1)
            for b in (bucket - 1, bucket, bucket + 1):
                keys.add(key_hash("run", number[0], record.date, b))
    return keys


# --- grouping ------------------------------------------------------------------


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        parent = self.parent
        root = item
        while parent[root] != root:
            root = parent[root]
        while parent[item] != root:
            parent[item], item = root, parent[item]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def copy(self) -> _UnionFind:
        other = _UnionFind(0)
        other.parent = list(self.parent)
        return other


def group_records(
    records: Sequence[Record],
    thresholds: Thresholds = Thresholds(),
    *,
    feats: Mapping[str, Features] | None = None,
) -> Grouping:
    """Assign caption, near and event groups to every record (one per ``nasa_id``).

    ``feats`` (by nasa_id) saves recomputing what a caller already has.
    """
    unique = {r.nasa_id: r for r in records}
    ordered = [unique[k] for k in sorted(unique)]  # input order never matters
    known = feats or {}
    prepared = [known.get(r.nasa_id) or features(r, thresholds) for r in ordered]
    n = len(ordered)
    uf = _UnionFind(n)
    _join_captions(prepared, uf)
    caption_uf = uf.copy()
    _join_near(ordered, prepared, uf, thresholds)
    near_uf = uf.copy()
    _join_events(ordered, prepared, uf, thresholds)
    ids: dict[str, list[int]] = {r.nasa_id: [] for r in ordered}
    groups: list[Group] = []
    for level, finder in (("caption", caption_uf), ("near", near_uf), ("event", uf)):
        members: dict[int, list[int]] = defaultdict(list)
        for i in range(n):
            members[finder.find(i)].append(i)
        for indices in members.values():
            smallest = ordered[indices[0]].nasa_id  # indices ascend, ids are sorted
            gid = group_id(level, smallest)
            for i in indices:
                ids[ordered[i].nasa_id].append(gid)
            if len(indices) > 1:
                rep = representative(ordered[i] for i in indices)
                groups.append(
                    Group(gid, level, tuple(ordered[i].nasa_id for i in indices), rep.nasa_id)
                )
    assignments = {nasa_id: Assignment(*v) for nasa_id, v in ids.items()}
    groups.sort(key=lambda g: (LEVELS.index(g.level), -len(g.members), g.id))
    return Grouping(assignments, groups)


def _join_captions(prepared: Sequence[Features], uf: _UnionFind) -> None:
    first: dict[str, int] = {}
    for i, feats in enumerate(prepared):
        if feats.caption:
            uf.union(first.setdefault(feats.caption, i), i)


def _join_near(
    records: Sequence[Record],
    prepared: Sequence[Features],
    uf: _UnionFind,
    thresholds: Thresholds,
) -> None:
    """LSH candidates, each confirmed by the exact shingle Jaccard."""
    sets = [feats.shingles for feats in prepared]
    bands, rows = _bands(thresholds.near, thresholds.num_perm)
    lsh = _datasketch().MinHashLSH(num_perm=thresholds.num_perm, params=(bands, rows))
    seen_text: dict[bytes, int] = {}
    for i, shingle_set in enumerate(sets):
        m = prepared[i].signature
        if m is None:
            continue
        text_key = shingle_set.tobytes()
        if text_key in seen_text:  # identical text: same group, nothing new to index
            uf.union(seen_text[text_key], i)
            continue
        seen_text[text_key] = i
        for j in lsh.query(m):
            if (
                uf.find(i) != uf.find(j)
                and _close_in_time(records[i], records[j], thresholds.near_days)
                and jaccard(shingle_set, sets[j]) >= thresholds.near
            ):
                uf.union(i, j)
        lsh.insert(i, m)


def _close_in_time(a: Record, b: Record, days: int | None) -> bool:
    """Dates at most ``days`` apart; a record without a date is close to any."""
    if days is None or not a.date or not b.date or a.date == b.date:
        return True
    gap = date.fromisoformat(a.date).toordinal() - date.fromisoformat(b.date).toordinal()
    return abs(gap) <= days


def _join_events(
    records: Sequence[Record],
    prepared: Sequence[Features],
    uf: _UnionFind,
    thresholds: Thresholds,
) -> None:
    by_day: dict[tuple[str, str], list[int]] = defaultdict(list)
    runs: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for i, record in enumerate(records):
        if not record.date:
            continue
        by_day[(record.date, record.center.upper())].append(i)
        number = photo_number(record)
        if number is not None:
            runs[(number[0], record.date)].append((number[1], i))
    for indices in by_day.values():
        # Compare distinct word sets once each: a day of 90 copies is one comparison.
        distinct: dict[bytes, int] = {}
        for i in indices:
            words = prepared[i].words
            if not words.size:
                continue
            first = distinct.setdefault(words.tobytes(), i)
            if first != i:
                uf.union(first, i)
        firsts = list(distinct.values())
        for a, i in enumerate(firsts):
            for j in firsts[a + 1 :]:
                if jaccard(prepared[i].words, prepared[j].words) >= thresholds.event:
                    uf.union(i, j)
    for numbered in runs.values():
        numbered.sort()
        for (n1, i), (n2, j) in zip(numbered, numbered[1:], strict=False):
            if n2 - n1 <= thresholds.run_gap:
                uf.union(i, j)


# --- quality -------------------------------------------------------------------


@dataclass(frozen=True)
class PairScore:
    """Pairwise precision/recall of "same group" against labelled pairs, at one level."""

    level: str
    true_pos: int
    false_pos: int
    false_neg: int
    true_neg: int

    @property
    def precision(self) -> float:
        found = self.true_pos + self.false_pos
        return self.true_pos / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_pos + self.false_neg
        return self.true_pos / wanted if wanted else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score_pairs(
    assignments: dict[str, Assignment], pairs: Iterable[tuple[str, str, str]]
) -> list[PairScore]:
    """Score (a, b, finest shared level or "none") pairs at each level; levels nest."""
    counts = {level: [0, 0, 0, 0] for level in LEVELS}
    for a, b, label in pairs:
        gold_rank = LEVELS.index(label) if label in LEVELS else len(LEVELS)
        for rank, level in enumerate(LEVELS):
            gold = gold_rank <= rank
            same = getattr(assignments[a], level) == getattr(assignments[b], level)
            counts[level][(0 if gold else 1) if same else (2 if gold else 3)] += 1
    return [PairScore(level, *counts[level]) for level in LEVELS]
