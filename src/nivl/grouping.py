"""Caption, near-duplicate and event groups over records; pure.

Three nested levels (DESIGN.md, "Groups"), each found as the connected components
of a graph whose edges are decided pair by pair, so grouping any set that is closed
under those edges gives the same groups as grouping everything (which is what lets
``groups.py`` regroup only the neighbourhood of new records):

- ``caption``: equal normalised descriptions (stamps such as
  ``JSC2000-E-29123 (27 November 2000) ---``, case, punctuation and spacing ignored),
  on any day;
- ``near``: caption edges, plus pairs on the same day whose word-shingle Jaccard of
  title + description reaches ``Thresholds.near``;
- ``event``: near edges, plus pairs on the same day at the same center whose content
  words overlap (``Thresholds.event``), plus consecutive photo numbers (same series,
  same day, at most ``Thresholds.run_gap`` apart).

Every rule but the caption one pairs records of one day (undated records form a day
of their own), so ``Grouper`` takes records a day at a time and compares all pairs of
a day exactly, at once: one sparse matrix product of the day's shingle (or word) sets
gives every pair's intersection. That is exact where MinHash-LSH was approximate, and
vectorised where it was a Python loop per record.

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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse  # type: ignore[import-untyped]
from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]

from .records import Record

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
#: Odd 64-bit multipliers that fold a shingle's word hashes into one.
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


@dataclass(frozen=True)
class Thresholds:
    """Tunable parameters; the defaults were chosen by ``bench/grouping_quality.py``."""

    near: float = 0.5  # Jaccard of word shingles for a near-duplicate pair
    shingle: int = 3  # words per shingle
    event: float = 0.5  # Jaccard of content words for a same-day, same-center pair
    run_gap: int = 12  # largest step between photo numbers of one run


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
    return _caption_key(record.description, normalise_text(record.description[:MAX_CHARS]))


def _caption_key(description: str, normalised: str) -> str:
    if normalised and len(description) > MAX_CHARS:
        tail = hashlib.blake2b(description[MAX_CHARS:].encode(), digest_size=8).hexdigest()
        return f"{normalised} {tail}"
    return normalised


def word_hashes(words: Sequence[str]) -> np.ndarray:
    """crc32 of each word, in order: stable across processes, unlike ``hash``."""
    return np.fromiter(map(zlib.crc32, map(str.encode, words)), np.uint64, len(words))


def shingle_hashes(words: Sequence[str], size: int) -> np.ndarray:
    """Sorted, distinct 64-bit hashes of word ``size``-grams (the whole text when shorter)."""
    if not words:
        return np.empty(0, np.uint64)
    hashes = word_hashes(words)
    if len(words) <= size:
        mixed = np.array([np.bitwise_xor.reduce(hashes * _mix(len(words)))], dtype=np.uint64)
        return mixed + np.uint64(len(words))
    count = len(words) - size + 1
    mix = _mix(size)
    mixed = hashes[:count] * mix[0]
    for offset in range(1, size):
        mixed ^= hashes[offset : offset + count] * mix[offset]
    return np.unique(mixed)


def _mix(size: int) -> np.ndarray:
    if size <= len(_MIX):
        return _MIX[:size]
    extra = np.arange(len(_MIX), size, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) | 1
    return np.concatenate([_MIX, extra])


def content_words(words: Iterable[str]) -> np.ndarray:
    """Sorted hashes of the distinct words that say what a record is about."""
    chosen = [w for w in set(words) if len(w) > 2 and w not in _STOPWORDS and not w.isdigit()]
    return np.unique(word_hashes(chosen))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted hash sets."""
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


# --- features -------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """What the rules compare, computed once per record."""

    caption: int  # ``key_hash`` of the caption key; 0 when there is no description
    shingles: np.ndarray  # ``shingle_hashes`` of title + description
    words: np.ndarray  # ``content_words`` of title + description
    run: tuple[str, int] | None  # ``photo_number``


def features(record: Record, thresholds: Thresholds = Thresholds()) -> Features:
    normalised = normalise_text(record.description[:MAX_CHARS])
    key = _caption_key(record.description, normalised)
    desc_words = normalised.split()
    words = normalise_text(record.title).split() + desc_words
    return Features(
        key_hash("caption", key) if key else 0,
        shingle_hashes(words, thresholds.shingle),
        content_words(words),
        photo_number(record) if record.date else None,
    )


def day_key(record: Record) -> str:
    """The bucket every rule but the caption one stays within; undated records share one."""
    return record.date or ""


def blocking_keys(record: Record, thresholds: Thresholds = Thresholds()) -> set[int]:
    """Keys any record that could share a group with this one also has: its caption
    and its day (every other rule pairs records of one day)."""
    grouper = Grouper(thresholds)
    grouper.add([record])
    return next(grouper.blocking_keys())


# --- grouping ------------------------------------------------------------------


@dataclass
class Grouper:
    """Groups records fed to it whole days at a time (every record of a day in one ``add``).

    It keeps a few numbers per record and the edges found; the text features of a
    batch are dropped once its days are compared, so grouping a million records needs
    the memory of one batch, not of the library.
    """

    thresholds: Thresholds = field(default_factory=Thresholds)
    nasa_ids: list[str] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)  # the caller's id per record (row ids)
    _captions: list[int] = field(default_factory=list)
    _days: list[str] = field(default_factory=list)
    _weights: list[tuple[int, bool]] = field(default_factory=list)  # representative order
    _near: list[np.ndarray] = field(default_factory=list)  # edges as (2, n) index arrays
    _event: list[np.ndarray] = field(default_factory=list)

    def add(self, records: Sequence[Record], keys: Sequence[int] | None = None) -> None:
        base = len(self.nasa_ids)
        self.nasa_ids.extend(r.nasa_id for r in records)
        self.keys.extend(keys if keys is not None else range(base, base + len(records)))
        feats = [features(r, self.thresholds) for r in records]
        self._captions.extend(f.caption for f in feats)
        self._weights.extend((len(r.description), not r.keywords) for r in records)
        days = [day_key(r) for r in records]
        self._days.extend(days)
        self._near.append(
            base + _similar_pairs([f.shingles for f in feats], days, self.thresholds.near)
        )
        day_centers = [
            f"{d}\x00{r.center.upper()}" if d else "" for d, r in zip(days, records, strict=True)
        ]
        self._event.append(
            base + _similar_pairs([f.words for f in feats], day_centers, self.thresholds.event)
        )
        self._event.append(base + _run_pairs(feats, days, self.thresholds.run_gap))

    def blocking_keys(self) -> Iterator[set[int]]:
        """Each record's ``blocking_keys``, from what ``add`` kept."""
        for day, caption in zip(self._days, self._captions, strict=True):
            yield {key_hash("day", day), caption} if caption else {key_hash("day", day)}

    def labels(self) -> dict[str, np.ndarray]:
        """Component labels per level (caption, near, event), one per record added."""
        size = len(self.nasa_ids)
        edges = [_caption_pairs(np.asarray(self._captions, dtype=np.int64))]
        result = {}
        for level, more in (("caption", []), ("near", self._near), ("event", self._event)):
            edges.extend(more)
            pairs = np.concatenate(edges, axis=1) if edges else np.empty((2, 0), np.int64)
            graph = sparse.coo_matrix(
                (np.ones(pairs.shape[1], np.int8), (pairs[0], pairs[1])), shape=(size, size)
            )
            result[level] = connected_components(graph, directed=False)[1]
        return result

    def groups(self) -> Iterator[tuple[str, int, np.ndarray, int]]:
        """(level, group id, member indices, representative index) of every group,
        singletons included, members in ``nasa_id`` order."""
        order = np.array(
            sorted(range(len(self.nasa_ids)), key=self.nasa_ids.__getitem__), dtype=np.int64
        )
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        if not order.size:
            return
        weights = self._weights
        for level, labels in self.labels().items():
            by_label = order[np.argsort(labels[order], kind="stable")]  # nasa_id order within
            bounds = np.flatnonzero(np.diff(labels[by_label])) + 1
            for members in np.split(by_label, bounds):
                first = int(members[0])
                gid = group_id(level, self.nasa_ids[first])
                if members.size == 1:
                    yield level, gid, members, first
                    continue
                best = min(
                    members.tolist(), key=lambda i: (-weights[i][0], weights[i][1], int(rank[i]))
                )
                yield level, gid, members, best

    def grouping(self) -> Grouping:
        ids: dict[str, list[int]] = {n: [0, 0, 0] for n in self.nasa_ids}
        groups = []
        for level, gid, members, best in self.groups():
            position = LEVELS.index(level)
            names = tuple(self.nasa_ids[i] for i in members.tolist())
            for name in names:
                ids[name][position] = gid
            if len(names) > 1:
                groups.append(Group(gid, level, names, self.nasa_ids[best]))
        groups.sort(key=lambda g: (LEVELS.index(g.level), -len(g.members), g.id))
        return Grouping({n: Assignment(*v) for n, v in ids.items()}, groups)


def by_day(records: Iterable[Record]) -> list[list[Record]]:
    """Records bucketed by ``day_key``, in day order."""
    buckets: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        buckets[day_key(record)].append(record)
    return [buckets[day] for day in sorted(buckets)]


def group_records(records: Sequence[Record], thresholds: Thresholds = Thresholds()) -> Grouping:
    """Assign caption, near and event groups to every record (one per ``nasa_id``)."""
    unique = {r.nasa_id: r for r in records}
    grouper = Grouper(thresholds)
    for day in by_day(unique[k] for k in sorted(unique)):  # input order never matters
        grouper.add(day)
    return grouper.grouping()


def _caption_pairs(captions: np.ndarray) -> np.ndarray:
    """Each captioned record joined to the next with the same caption."""
    order = np.argsort(captions, kind="stable")
    ordered = captions[order]
    same = (ordered[1:] == ordered[:-1]) & (ordered[1:] != 0)
    return np.stack([order[:-1][same], order[1:][same]]).astype(np.int64)


def _similar_pairs(
    sets: Sequence[np.ndarray], buckets: Sequence[str], threshold: float
) -> np.ndarray:
    """Pairs within a bucket whose sets' Jaccard reaches ``threshold``, as (2, n) indices.

    Equal sets are joined directly; the distinct ones become rows of a sparse 0/1
    matrix whose columns are (bucket, hash) pairs, so its product with its transpose
    counts the intersection of every pair in the same bucket, and only those.
    """
    firsts: dict[tuple[str, bytes], int] = {}
    same: list[tuple[int, int]] = []
    rows: list[int] = []
    for i, (values, bucket) in enumerate(zip(sets, buckets, strict=True)):
        if not values.size:
            continue
        first = firsts.setdefault((bucket, values.tobytes()), i)
        if first != i:
            same.append((first, i))
        else:
            rows.append(i)
    pairs = [np.array(same, dtype=np.int64).reshape(-1, 2).T]
    if len(rows) > 1:
        bucket_ids = {b: n for n, b in enumerate(dict.fromkeys(buckets[i] for i in rows))}
        lengths = np.array([sets[i].size for i in rows])
        tags = np.repeat(np.array([bucket_ids[buckets[i]] for i in rows], np.uint64), lengths)
        hashes = np.concatenate([sets[i] for i in rows]) ^ (tags * np.uint64(0x9E3779B97F4A7C15))
        _, columns = np.unique(hashes, return_inverse=True)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        matrix = sparse.csr_matrix(
            (np.ones(columns.size, np.int32), columns.ravel(), indptr),
            shape=(len(rows), int(columns.max()) + 1),
        )
        common = sparse.triu(matrix @ matrix.T, k=1).tocoo()
        a, b, shared = common.row, common.col, common.data
        union = lengths[a] + lengths[b] - shared
        keep = shared >= threshold * union
        index = np.array(rows, dtype=np.int64)
        pairs.append(np.stack([index[a[keep]], index[b[keep]]]))
    return np.concatenate(pairs, axis=1)


def _run_pairs(feats: Sequence[Features], days: Sequence[str], gap: int) -> np.ndarray:
    """Consecutive photo numbers of one series on one day, at most ``gap`` apart."""
    runs: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for i, (feat, day) in enumerate(zip(feats, days, strict=True)):
        if feat.run is not None:
            runs[(feat.run[0], day)].append((feat.run[1], i))
    pairs = []
    for numbered in runs.values():
        numbered.sort()
        for (n1, i), (n2, j) in zip(numbered, numbered[1:], strict=False):
            if n2 - n1 <= gap:
                pairs.append((i, j))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2).T


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
