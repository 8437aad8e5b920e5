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
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scipy is imported where groups are computed: a third of a second
    from scipy import sparse  # type: ignore[import-untyped]

from .records import Record

LEVELS = ("caption", "near", "event")
#: The picture level (pictures.py), beside the text levels: records whose mirrored
#: pictures match, whatever their captions.
VISUAL = "visual"
ALL_LEVELS = (*LEVELS, VISUAL)

#: A leading photo id and/or date stamp before a dash rule, as in
#: "JSC2000-E-29123 (27 November 2000) ---" or "iss054e022060 (Jan. 13, 2018) ---".
_STAMP = re.compile(
    r"^\s*(?:[A-Za-z0-9][\w.]*\d[\w.-]*\s*)?(?:\([^()]{1,40}\)\s*)?(?:-{2,}|\u2014|\u2013)\s*"
)
_NON_WORD = re.compile(r"[\W_]+")
#: Bytes to themselves (a-z, 0-9), lowercased (A-Z) or to a space (everything else).
_ASCII_WORDS = bytes(
    c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256)
)
#: Common non-ASCII punctuation: each separates words, as in the slow path.
_SEPARATING_MARKS = "\u2018\u201c\u201d\u2013\u2014\u00a0\u2026\u00b0"
_COMBINING = re.compile(r"[\u0300-\u036f]+")
#: Characters of a text that are normalised: enough for any caption, while a podcast
#: transcript pasted into a description (some are 90 kB) costs no more than a long caption.
MAX_CHARS = 4000
_LETTER = re.compile(r"[A-Za-z]")
_STOPWORDS = frozenset(
    """a an and are as at be by for from has have he her his in is it its of on or she
    that the their they this to was were will with who while after before during into
    photo credit nasa image""".split()
)
#: Odd 64-bit multipliers that fold a shingle's word hashes into one.
_STOP_HASHES = np.array(sorted(zlib.crc32(w.encode()) for w in _STOPWORDS), dtype=np.uint64)
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
    stamp = _STAMP.match(text)  # match, not sub: sub would try ^ at every position
    return text[stamp.end() :] if stamp else text


def normalised_words(text: str) -> list[bytes]:
    """Lowercase words only: stamp, accents, punctuation and spacing ignored.

    Bytes, because hashing them needs bytes, and ASCII text (nearly all of it) is
    normalised by one ``bytes.translate``, several times faster than a regex.
    """
    return _normalised_bytes(text).split()


def _normalised_bytes(text: str) -> bytes:
    """``normalised_words`` before the split: the words with single spaces (b" ", never
    another whitespace byte) between, around and in runs."""
    text = strip_stamp(text)
    if not text.isascii():  # usually only punctuation stops the fast path: replace it
        text = text.replace("\u2019", "")  # a right single quote is an apostrophe
        for mark in _SEPARATING_MARKS:
            if mark in text:
                text = text.replace(mark, " ")
    if text.isascii():
        return text.encode().translate(_ASCII_WORDS, b"'")
    text = _COMBINING.sub("", unicodedata.normalize("NFKD", text)).replace("\u2019", "")
    return _NON_WORD.sub(" ", text.replace("'", "").lower()).encode()


def normalise_text(text: str) -> str:
    """``normalised_words`` as one string."""
    return b" ".join(normalised_words(text)).decode()


def caption_key(record: Record) -> str:
    """The normalised description; empty when there is none (such records stay alone).

    Past ``MAX_CHARS`` the rest is compared verbatim, by a digest.
    """
    return _caption_key(record.description, normalised_words(record.description[:MAX_CHARS]))


def _caption_key(description: str, words: list[bytes]) -> str:
    normalised = b" ".join(words).decode()
    if normalised and len(description) > MAX_CHARS:
        tail = hashlib.blake2b(description[MAX_CHARS:].encode(), digest_size=8).hexdigest()
        return f"{normalised} {tail}"
    return normalised


def photo_number(record: Record) -> tuple[str, int] | None:
    """(series, number) of ids like JSC2000-E-29120 or iss054e022060; None for others:
    a trailing run of three or more digits after a part with an ASCII letter."""
    return _photo_number(record.nasa_id)


def _photo_number(nasa_id: str) -> tuple[str, int] | None:
    # What ``^(.*[A-Za-z].*?)(\d{3,})$`` matched on the stripped id, without its
    # backtracking (8 µs an id): the number is the whole trailing run of decimal digits.
    nasa_id = nasa_id.strip()
    start = len(nasa_id)
    while start and nasa_id[start - 1].isdecimal():
        start -= 1
    if len(nasa_id) - start < 3:
        return None
    series = nasa_id[:start]
    if "\n" in series or _LETTER.search(series) is None:  # "." never matches a newline
        return None
    return series.upper(), int(nasa_id[start:])


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
    return min(records, key=lambda r: (*preference(r), r.nasa_id))


def preference(record: Record) -> tuple[int, bool]:
    """How ``representative`` ranks a record before its id (smaller is better)."""
    return (-len(record.description), not record.keywords)


# --- features -------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """What the rules compare, for a batch of records: a few values per record, and the
    words and shingles as flat arrays.

    ``shingles`` and ``words`` hold hashes (not yet distinct) with, in ``*_rows``, the
    record each belongs to: one array for the batch instead of one per record, so the
    work is a few numpy calls however many records there are.
    """

    nasa_ids: list[str]
    days: list[str]  # ``day_key``
    day_centers: list[str | None]  # the event rule's bucket: day and center (None: undated)
    weights: list[tuple[int, bool]]  # ``preference``
    captions: list[int]  # ``key_hash`` of each caption key; 0 when there is no description
    shingle_rows: np.ndarray
    shingles: np.ndarray  # word ``Thresholds.shingle``-grams of title + description
    word_rows: np.ndarray
    words: np.ndarray  # content words of title + description (no stopwords, digits)
    runs: list[tuple[str, int] | None]  # ``photo_number`` of dated records


#: Records whose texts are split and hashed together: enough to make pyarrow's calls
#: cheap per record, few enough that a chunk's texts are never much memory.
FEATURE_CHUNK = 1024


def features(records: Iterable[Record], thresholds: Thresholds = Thresholds()) -> Features:
    """The features of ``records``, read once, a chunk at a time: nothing is kept of a
    record's text but its hashes, so a batch of long transcripts costs little memory."""
    columns = _Columns()
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= FEATURE_CHUNK:
            columns.add(chunk, thresholds)
            chunk = []
    if chunk:
        columns.add(chunk, thresholds)
    return columns.features()


@dataclass
class _Columns:
    nasa_ids: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    day_centers: list[str | None] = field(default_factory=list)
    weights: list[tuple[int, bool]] = field(default_factory=list)
    captions: list[int] = field(default_factory=list)
    runs: list[tuple[str, int] | None] = field(default_factory=list)
    arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=list
    )

    def add(self, chunk: Sequence[Record], thresholds: Thresholds) -> None:
        """Take in a chunk of records: a few values each, and their words' hashes."""
        base = len(self.nasa_ids)
        pieces = []  # title, description of each record: normalised, spaces not collapsed
        for record in chunk:
            description = record.description
            day = record.date or ""
            self.nasa_ids.append(record.nasa_id)
            self.days.append(day)
            self.day_centers.append(f"{day}\x00{record.center.upper()}" if day else None)
            self.weights.append((-len(description), not record.keywords))
            self.runs.append(_photo_number(record.nasa_id) if record.date else None)
            pieces.append(_normalised_bytes(record.title))
            pieces.append(_normalised_bytes(description[:MAX_CHARS]))
        split = _split_in_arrow if len(chunk) >= ARROW_RECORDS else _split_in_python
        keys, vocabulary, codes, piece_of = split(pieces)
        del pieces
        for record, key in zip(chunk, keys, strict=True):
            self.captions.append(_caption_hash(record.description, key) if key else 0)
        crc = np.fromiter(map(zlib.crc32, vocabulary), np.uint64, len(vocabulary))
        content = np.fromiter(map(len, vocabulary), np.int64, len(vocabulary)) > 2
        content &= ~np.isin(crc, _STOP_HASHES)
        content &= ~np.fromiter(map(bytes.isdigit, vocabulary), np.bool_, len(vocabulary))
        hashes = crc[codes]
        rows = (piece_of >> 1).astype(np.int64)
        counts = np.bincount(piece_of, minlength=2 * len(chunk))
        lengths = counts[0::2] + counts[1::2]
        shingle_rows, shingles = _shingles(hashes, rows, lengths, thresholds.shingle)
        keep = content[codes]
        self.arrays.append((shingle_rows + base, shingles, rows[keep] + base, hashes[keep]))

    def features(self) -> Features:
        def joined(k: int, dtype: type) -> np.ndarray:
            parts = [a[k] for a in self.arrays]
            return np.concatenate(parts) if parts else np.empty(0, dtype)

        return Features(
            self.nasa_ids,
            self.days,
            self.day_centers,
            self.weights,
            self.captions,
            joined(0, np.int64),
            joined(1, np.uint64),
            joined(2, np.int64),
            joined(3, np.uint64),
            self.runs,
        )


def warm_up() -> None:
    """Import and first-call what comparing uses (a few tenths of a second), so that
    processes forked after this do not each pay for it."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.compute as pc  # type: ignore[import-untyped]
    from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]

    del connected_components  # imported for the workers to inherit
    pc.unique(pa.array(pc.dictionary_encode(pa.array([1, 2, 1])).indices))
    pc.split_pattern(pa.array([b"a b"], pa.binary()), b" ")


#: Records of a chunk from which pyarrow splits its words: below it, its calls' fixed
#: costs (and a quarter of a second on its first call in a process) outweigh its gain.
ARROW_RECORDS = 256

#: Values from which ``_similar_pairs`` numbers them with pyarrow, not numpy.
ARROW_VALUES = 100_000

#: What splitting a chunk's normalised texts gives: each description's words joined by
#: single spaces (its caption key), the distinct words, then each word of the chunk (in
#: order, title before description) as its index among them, and its text's index.
_Split = tuple[list[bytes], list[bytes], np.ndarray, np.ndarray]


def _split_in_arrow(pieces: list[bytes]) -> _Split:
    """Split, joined and encoded by pyarrow: no Python object is made per word, only per
    distinct word of the chunk."""
    import pyarrow as pa
    import pyarrow.compute as pc

    split = pc.split_pattern(pa.array(pieces, pa.binary()), b" ")
    flat = split.flatten()
    words = np.asarray(pc.binary_length(flat)) > 0
    tokens = flat.filter(pa.array(words))
    piece_of = np.asarray(pc.list_parent_indices(split))[words]
    counts = np.bincount(piece_of, minlength=len(pieces))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    by_piece = pa.ListArray.from_arrays(pa.array(offsets), tokens)
    descriptions = by_piece.take(pa.array(np.arange(1, len(pieces), 2)))
    keys = pc.binary_join(descriptions, b" ").to_pylist()
    encoded = pc.dictionary_encode(tokens)
    return keys, encoded.dictionary.to_pylist(), np.asarray(encoded.indices), piece_of


def _split_in_python(pieces: list[bytes]) -> _Split:
    """The same as ``_split_in_arrow``, for a few records."""
    split = [piece.split() for piece in pieces]
    keys = [b" ".join(words) for words in split[1::2]]
    index: dict[bytes, int] = {}
    codes = [index.setdefault(word, len(index)) for words in split for word in words]
    piece_of = np.repeat(np.arange(len(pieces)), [len(words) for words in split])
    return keys, list(index), np.array(codes, np.int64), piece_of


def _caption_hash(description: str, joined: bytes) -> int:
    """``key_hash("caption", caption_key(...))`` from the description's joined words."""
    if len(description) > MAX_CHARS:
        tail = hashlib.blake2b(description[MAX_CHARS:].encode(), digest_size=8).hexdigest()
        joined += b" " + tail.encode()
    digest = hashlib.blake2b(b"caption\x00" + joined, digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _shingles(
    hashes: np.ndarray, rows: np.ndarray, lengths: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, hashes) of every word ``size``-gram; a text shorter than that is one shingle."""
    mix = _mix(size)
    count = max(hashes.size - size + 1, 0)
    mixed = hashes[:count] * mix[0]
    for offset in range(1, size):
        mixed ^= hashes[offset : offset + count] * mix[offset]
    starts = np.cumsum(lengths) - lengths
    position = np.arange(hashes.size) - np.repeat(starts, lengths)
    regular = np.flatnonzero(position[:count] + size <= lengths[rows[:count]])
    out_rows, out = [rows[regular]], [mixed[regular]]
    short = np.flatnonzero((lengths > 0) & (lengths < size))
    if short.size:
        # each short text's words, mixed by position, folded, plus its length
        whole = np.zeros(short.size, np.uint64)
        for offset in range(size - 1):
            has = lengths[short] > offset
            whole[has] ^= hashes[starts[short[has]] + offset] * mix[offset]
        out_rows.append(short)
        out.append(whole + lengths[short].astype(np.uint64))
    return np.concatenate(out_rows), np.concatenate(out)


def _mix(size: int) -> np.ndarray:
    if size <= len(_MIX):
        return _MIX[:size]
    extra = np.arange(len(_MIX), size, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) | 1
    return np.concatenate([_MIX, extra])


def day_key(record: Record) -> str:
    """The bucket every rule but the caption one stays within; undated records share one."""
    return record.date or ""


def blocking_keys(record: Record, thresholds: Thresholds = Thresholds()) -> set[int]:
    """Keys any record that could share a group with this one also has: its caption
    and its day (every other rule pairs records of one day)."""
    return each_blocking_keys([record], thresholds)[0]


def each_blocking_keys(
    records: Sequence[Record], thresholds: Thresholds = Thresholds()
) -> list[set[int]]:
    """``blocking_keys`` of each record, from one ``features`` call."""
    feats = features(records, thresholds)
    return [_blocking_keys(d, c) for d, c in zip(feats.days, feats.captions, strict=True)]


def _blocking_keys(day: str, caption: int) -> set[int]:
    return {_day_hash(day), caption} if caption else {_day_hash(day)}


@lru_cache(maxsize=65536)
def _day_hash(day: str) -> int:
    return key_hash("day", day)  # a day has many records: hashed once


# --- grouping ------------------------------------------------------------------


@dataclass(frozen=True)
class Compared:
    """What ``compare`` found in a batch of whole days: a few values per record, and
    the pairs each rule joins, as (2, n) positions in the batch."""

    nasa_ids: list[str]
    captions: list[int]
    days: list[str]
    weights: list[tuple[int, bool]]  # ``preference``: what picks a group's representative
    near: np.ndarray  # near-duplicate pairs (caption pairs are found across batches)
    event: np.ndarray  # same-day, same-center and photo-run pairs


def compare(records: Iterable[Record], thresholds: Thresholds = Thresholds()) -> Compared:
    """Compare every pair of records of each day in ``records`` (which holds whole days)."""
    feats = features(records, thresholds)
    near = _similar_pairs(feats.shingle_rows, feats.shingles, feats.days, thresholds.near)
    event = _similar_pairs(feats.word_rows, feats.words, feats.day_centers, thresholds.event)
    runs = _run_pairs(feats.runs, feats.days, thresholds.run_gap)
    return Compared(
        nasa_ids=feats.nasa_ids,
        captions=feats.captions,
        days=feats.days,
        weights=feats.weights,
        near=near,
        event=np.concatenate([event, runs], axis=1),
    )


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

    def add(self, records: Iterable[Record], keys: Sequence[int] | None = None) -> None:
        self.extend(compare(records, self.thresholds), keys)

    def extend(self, compared: Compared, keys: Sequence[int] | None = None) -> None:
        """Take in what ``compare`` found in a batch (possibly in another process)."""
        base = len(self.nasa_ids)
        size = len(compared.nasa_ids)
        self.nasa_ids.extend(compared.nasa_ids)
        self.keys.extend(keys if keys is not None else range(base, base + size))
        self._captions.extend(compared.captions)
        self._weights.extend(compared.weights)
        self._days.extend(compared.days)
        self._near.append(base + compared.near)
        self._event.append(base + compared.event)

    def blocking_keys(self) -> Iterator[set[int]]:
        """Each record's ``blocking_keys``, from what ``add`` kept."""
        for day, caption in zip(self._days, self._captions, strict=True):
            yield _blocking_keys(day, caption)

    def labels(self) -> dict[str, np.ndarray]:
        """Component labels per level (caption, near, event), one per record added."""
        from scipy import sparse
        from scipy.sparse.csgraph import connected_components

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

    def assign(self) -> tuple[np.ndarray, list[tuple[str, int, np.ndarray, int]]]:
        """Every record's group ids, as an (n, 3) array in ``LEVELS`` order, and the groups
        of two or more: (level, id, member indices in ``nasa_id`` order, representative)."""
        size = len(self.nasa_ids)
        ids = np.zeros((size, len(LEVELS)), dtype=np.int64)
        multi: list[tuple[str, int, np.ndarray, int]] = []
        if not size:
            return ids, multi
        order = np.array(sorted(range(size), key=self.nasa_ids.__getitem__), dtype=np.int64)
        rank = np.empty_like(order)
        rank[order] = np.arange(size)
        weights = self._weights
        for position, (level, labels) in enumerate(self.labels().items()):
            by_label = order[np.argsort(labels[order], kind="stable")]  # nasa_id order within
            starts = np.flatnonzero(np.r_[True, np.diff(labels[by_label]) != 0])
            ends = np.r_[starts[1:], size]
            firsts = by_label[starts]  # each group's smallest nasa_id
            gids = np.array([group_id(level, self.nasa_ids[i]) for i in firsts.tolist()])
            ids[by_label, position] = np.repeat(gids, ends - starts)
            for k in np.flatnonzero(ends - starts > 1).tolist():
                members = by_label[starts[k] : ends[k]]
                best = min(members.tolist(), key=lambda i: (*weights[i], int(rank[i])))
                multi.append((level, int(gids[k]), members, best))
        return ids, multi

    def grouping(self) -> Grouping:
        ids, multi = self.assign()
        assignments = {
            name: Assignment(*row) for name, row in zip(self.nasa_ids, ids.tolist(), strict=True)
        }
        groups = [
            Group(gid, level, tuple(self.nasa_ids[i] for i in members.tolist()), self.nasa_ids[b])
            for level, gid, members, b in multi
        ]
        groups.sort(key=lambda g: (LEVELS.index(g.level), -len(g.members), g.id))
        return Grouping(assignments, groups)


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
    days = by_day(unique[k] for k in sorted(unique))  # input order never matters
    grouper.add([record for day in days for record in day])
    return grouper.grouping()


def _caption_pairs(captions: np.ndarray) -> np.ndarray:
    """Each captioned record joined to the next with the same caption."""
    order = np.argsort(captions, kind="stable")
    ordered = captions[order]
    same = (ordered[1:] == ordered[:-1]) & (ordered[1:] != 0)
    return np.stack([order[:-1][same], order[1:][same]]).astype(np.int64)


def _similar_pairs(
    rows: np.ndarray, values: np.ndarray, buckets: Sequence[str | None], threshold: float
) -> np.ndarray:
    """Pairs within a bucket whose sets' Jaccard reaches ``threshold``, as (2, n) indices.

    ``values[k]`` belongs to the set of record ``rows[k]``; a record whose bucket is
    None is compared with nothing. Values are tagged with their bucket, so a value held
    by one record only (most shingles) is in no intersection: it counts in its set's
    size and is then dropped. Equal sets are joined directly; the distinct ones become
    rows of a sparse 0/1 matrix whose columns are the shared (bucket, hash) values, so
    its product with its transpose counts the intersection of every pair in the same
    bucket, and only those.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from scipy import sparse

    bucket_ids = {b: n for n, b in enumerate(dict.fromkeys(b for b in buckets if b is not None))}
    tag = np.array([bucket_ids.get(b, -1) if b is not None else -1 for b in buckets], np.int64)
    keep = tag[rows] >= 0
    rows, values = (
        rows[keep],
        values[keep] ^ (tag[rows[keep]].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)),
    )
    if not rows.size:
        return np.empty((2, 0), np.int64)
    arrow = values.size >= ARROW_VALUES  # pyarrow hashes where numpy sorts
    if arrow:
        encoded = pc.dictionary_encode(pa.array(values))
        codes = np.asarray(encoded.indices).astype(np.int64)
        distinct_values = np.asarray(encoded.dictionary)
    else:
        distinct_values, inverse = np.unique(values, return_inverse=True)
        codes = inverse.ravel().astype(np.int64)
    width = np.int64(distinct_values.size)
    once = np.bincount(codes, minlength=distinct_values.size)[codes] == 1
    # each (row, value) once: a value seen once is; the others may repeat within a set
    cells = rows[~once] * width + codes[~once]
    cells = np.asarray(pc.unique(pa.array(cells))) if arrow else np.unique(cells)
    cell_rows, cell_codes = cells // width, cells % width
    sizes = np.bincount(rows[once], minlength=len(buckets))  # each record's set size
    sizes += np.bincount(cell_rows, minlength=len(buckets))
    holders = np.bincount(cell_codes, minlength=distinct_values.size)
    shared = holders[cell_codes] > 1
    cell_rows, cell_codes = cell_rows[shared], cell_codes[shared]
    column = np.cumsum(holders > 1) - 1
    matrix = sparse.csr_matrix(
        (np.ones(cell_rows.size, np.int32), (cell_rows, column[cell_codes])),
        shape=(len(buckets), int(column[-1]) + 1 if column.size else 0),
    )
    matrix.sort_indices()
    kept = np.diff(matrix.indptr)
    # Only a set whose values are all shared can equal another (each of its values is in
    # the other too): those are looked for by a digest of their values, and checked.
    whole = np.flatnonzero((kept == sizes) & (sizes > 0))
    pairs = [np.empty((2, 0), np.int64)]
    alone = np.ones(len(buckets), np.bool_)  # records compared through the product
    alone[sizes == 0] = False
    if whole.size > 1:
        # A digest mixes values, not column numbers: columns are numbered within this
        # call, and a digest proves nothing anyway (equal digests are compared below).
        scrambled = _scramble(distinct_values[np.flatnonzero(holders > 1)])[matrix.indices]
        digests = np.zeros(len(buckets), np.uint64)
        sharing = np.flatnonzero(kept)  # reduceat's segments: every non-empty row's
        digests[sharing] = np.add.reduceat(scrambled, matrix.indptr[sharing])
        keys = (tag[whole], digests[whole], sizes[whole])
        order = np.lexsort((whole, *keys))
        ordered = [key[order] for key in keys]
        new_key = np.ones(order.size, np.bool_)
        new_key[1:] = np.logical_or.reduce([k[1:] != k[:-1] for k in ordered])
        first = order[np.maximum.accumulate(np.where(new_key, np.arange(order.size), 0))]
        repeat = np.flatnonzero(~new_key)
        same = _same_rows(matrix, whole[first[repeat]], whole[order[repeat]])
        repeat = repeat[same]
        pairs.append(np.stack([whole[first[repeat]], whole[order[repeat]]]).astype(np.int64))
        alone[whole[order[repeat]]] = False
    distinct = np.flatnonzero(alone & (kept > 0))  # a set sharing nothing pairs with none
    if distinct.size > 1:
        chosen = matrix[distinct]
        common = sparse.triu(chosen @ chosen.T, k=1).tocoo()
        a, b, both = common.row, common.col, common.data
        size = sizes[distinct]
        close = both >= threshold * (size[a] + size[b] - both)
        pairs.append(np.stack([distinct[a[close]], distinct[b[close]]]).astype(np.int64))
    return np.concatenate(pairs, axis=1)


def _scramble(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective, non-linear mix of 64-bit values."""
    mixed = values.astype(np.uint64)
    mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return mixed ^ (mixed >> np.uint64(31))


def _same_rows(matrix: sparse.csr_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether rows ``a[k]`` and ``b[k]`` of a 0/1 CSR matrix (of equal lengths) are equal."""
    lengths = np.diff(matrix.indptr)[a]
    if not lengths.sum():
        return np.ones(a.size, np.bool_)
    pair = np.repeat(np.arange(a.size), lengths)
    offset = np.arange(pair.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    indices: np.ndarray = matrix.indices
    differ = indices[matrix.indptr[a][pair] + offset] != indices[matrix.indptr[b][pair] + offset]
    same: np.ndarray = np.bincount(pair[differ], minlength=a.size) == 0
    return same


def _run_pairs(runs: Sequence[tuple[str, int] | None], days: Sequence[str], gap: int) -> np.ndarray:
    """Consecutive photo numbers of one series on one day, at most ``gap`` apart."""
    by_series: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for i, (run, day) in enumerate(zip(runs, days, strict=True)):
        if run is not None:
            by_series[(run[0], day)].append((run[1], i))
    pairs = []
    for numbered in by_series.values():
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
