"""The tantivy index: schema, building it from the store, and low-level search.

The index is derived: it can always be rebuilt from the store. Each document
carries the store's row id (``rid``) as a fast field, so a page of hits turns
into raw items with one primary-key lookup and no stored-document loading.
The store's ``rev`` counter is the watermark: ``sync`` indexes every row
changed since the last ``indexed_rev`` and only then records the new mark, so
a crash in between just means those rows are indexed again (``derived.py`` runs
``sync`` as the index stage). Reads go through a ``Snapshot``, one searcher per
request, and this is the only module that imports tantivy. ``verify_files`` is
tantivy's checksum check, which its Python binding lacks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import tantivy
from tantivy import Document, Filter, Occur, Order, Query, TextAnalyzerBuilder, Tokenizer

from . import matching
from .errors import RecordRejected, SearchIndexError, StoreError
from .query import Q_FIELDS, QueryPlan, TextClause
from .records import Record, parse_item
from .store import Store, StoredRow
from .suggest import Completions

SCHEMA_VERSION = "5"  # 3: visual_group; 4: the *_shared fields; 5: no stored text
ANALYZER = "nivl_en"
VOCABULARY_ANALYZER = "nivl_words"
TEXT_FIELDS = (
    "title",
    "description",
    "description_head",
    "description_508",
    "keywords",
    "location",
    "photographer",
    "secondary_creator",
    "album_text",
)
#: The fields snippets are cut from. The index does not store them: their doc store was
#: half the index's bytes (transcripts of up to 90 kB, compressed at every import), for
#: the few hits of a highlighted page, which ``highlight_document`` gives from the store.
HIGHLIGHT_FIELDS = ("title", "description")
GROUP_FIELDS = ("caption_group", "near_group", "event_group", "visual_group")
#: Each group field's twin holding the id only for a group of two or more: a collapsed
#: search counts its groups over it (``count_distinct``), with no bucket for each group of
#: one (85% of the distinct values of a large hit set at 300k, and the count's cost is per
#: distinct value). Every member of a larger group has it: a group that grows from one to
#: two gets its first member reindexed (``Store.write_groups``).
SHARED_FIELDS = {name: name.replace("_group", "_shared") for name in GROUP_FIELDS}
#: ``added_desc`` orders by the store's row id: rows are never deleted and an update keeps
#: its row, so a larger id is a record the mirror saw later.
SORT_FIELDS = {
    "date_desc": ("ts", Order.Desc),
    "date_asc": ("ts", Order.Asc),
    "added_desc": ("rid", Order.Desc),
}
#: Facet name → (index field, aggregation).
FACET_FIELDS = {
    "center": "center",
    "media_type": "media_type",
    "keywords": "keyword_exact",
    "photographer": "photographer_exact",
    "year": "year",
}


#: Bytes tantivy's writer buffers before it flushes a segment (shared by its threads).
WRITER_HEAP = 128_000_000


def indexing_threads() -> int:
    """One tantivy indexing thread per core, up to four: with one, tantivy's tokenising
    is the bottleneck of an import (it halves at two, measured on 100k records)."""
    return max(1, min(4, os.cpu_count() or 1))


#: The action of query parsing: its failures are the query's, never the files'.
PARSING = "parsing the query"


@contextlib.contextmanager
def tantivy_errors(action: str) -> Iterator[None]:
    """tantivy raises ValueError/OSError for everything; give callers a ``SearchIndexError``.

    A damaged file can also make tantivy's Rust code panic: pyo3 raises that as
    ``PanicException``, a ``BaseException`` that ``except Exception`` lets through, so
    it is caught here by name (pyo3 creates the class at run time) and marked damaged.
    """
    reading = action != PARSING  # a query tantivy cannot parse says nothing about its files
    try:
        yield
    except (ValueError, OSError) as exc:
        damaged = reading and is_damage(str(exc))
        raise SearchIndexError(f"{action} failed: {exc}", damaged=damaged) from exc
    except BaseException as exc:
        if not is_panic(exc):
            raise
        raise SearchIndexError(f"{action} failed: {exc}", damaged=reading) from exc


def is_panic(exc: BaseException) -> bool:
    return type(exc).__name__ == "PanicException"


#: Words in tantivy's messages that mean its files are damaged (not a bad query).
_DAMAGE = (
    "corrupt",
    "footer",
    "magic",
    "checksum",
    "failed to open file",
    "eof",
    "io error",
    "unsupported",
    "compressed",
)


def is_damage(message: str) -> bool:
    return any(word in message.lower() for word in _DAMAGE)


def build_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("rid", indexed=True, fast=True)
    builder.add_text_field("nasa_id", tokenizer_name="raw")
    builder.add_text_field("ids", tokenizer_name=VOCABULARY_ANALYZER)  # folds accents too
    for name in TEXT_FIELDS:
        builder.add_text_field(name, tokenizer_name=ANALYZER)
    # The index's own words, unstemmed, for typo corrections and completions (matching.py,
    # suggest.py): read as a term dictionary, document counts and single-term filters,
    # never scored or in a phrase, so without frequencies and positions.
    builder.add_text_field(
        matching.VOCABULARY_FIELD, tokenizer_name=VOCABULARY_ANALYZER, index_option="basic"
    )
    builder.add_text_field("center", tokenizer_name="raw", fast=True)
    builder.add_text_field("media_type", tokenizer_name="raw", fast=True)
    builder.add_text_field("album", tokenizer_name="raw")
    builder.add_text_field("keyword_exact", tokenizer_name="raw", fast=True)
    builder.add_text_field("photographer_exact", tokenizer_name="raw", fast=True)
    builder.add_integer_field("year", indexed=True, fast=True)
    builder.add_integer_field("ts", indexed=True, fast=True)
    for name in GROUP_FIELDS:
        builder.add_unsigned_field(name, indexed=True, fast=True)
        builder.add_unsigned_field(SHARED_FIELDS[name], fast=True)
    return builder.build()


def english_analyzer() -> tantivy.TextAnalyzer:
    return (
        TextAnalyzerBuilder(Tokenizer.simple())
        .filter(Filter.remove_long(60))
        .filter(Filter.lowercase())
        .filter(Filter.ascii_fold())
        .filter(Filter.stemmer("english"))
        .build()
    )


def vocabulary_analyzer() -> tantivy.TextAnalyzer:
    return (
        TextAnalyzerBuilder(Tokenizer.simple())
        .filter(Filter.remove_long(40))
        .filter(Filter.lowercase())
        .filter(Filter.ascii_fold())
        .build()
    )


def description_head(text: str, size: int = matching.HEAD_CHARS) -> str:
    """The description's first ``size`` characters, cut at a word boundary."""
    if len(text) <= size:
        return text
    cut = text.rfind(" ", 0, size)
    return text[: cut if cut > size // 2 else size]


def record_document(
    row_id: int,
    record: Record,
    groups: Sequence[int | None] = (),
    shared: Container[int] | None = None,
) -> Document:
    """``groups``: the row's ids in ``GROUP_FIELDS`` order; ``shared``: the ids of groups
    of two or more (None: take every id as one, which keeps the counts exact)."""
    doc = Document()
    doc.add_integer("rid", row_id)
    doc.add_text("nasa_id", record.nasa_id)
    doc.add_text("ids", record.nasa_id)
    for name in (
        "title",
        "description",
        "description_508",
        "location",
        "photographer",
        "secondary_creator",
    ):
        value = getattr(record, name)
        if value:
            doc.add_text(name, value)
    head = description_head(record.description)
    if head:
        doc.add_text("description_head", head)
    doc.add_text(matching.VOCABULARY_FIELD, " ".join((record.title, *record.keywords, head)))
    for keyword in record.keywords:
        doc.add_text("keywords", keyword)
        doc.add_text("keyword_exact", keyword)
    for album in record.album:
        doc.add_text("album", album)
        doc.add_text("album_text", album)
    if record.photographer:
        doc.add_text("photographer_exact", record.photographer)
    doc.add_text("center", record.center.upper())
    doc.add_text("media_type", record.media_type)
    if record.year is not None:
        doc.add_integer("year", record.year)
    doc.add_integer("ts", record.timestamp if record.timestamp is not None else -(2**62))
    for name, value in zip(GROUP_FIELDS, groups, strict=False):
        if value is not None:  # no group (yet): a group of one
            doc.add_unsigned(name, value)
            if shared is None or value in shared:
                doc.add_unsigned(SHARED_FIELDS[name], value)
    return doc


def highlight_document(raw: bytes | str) -> Document:
    """A stored item's title and description as ``record_document`` indexed them: the
    document a snippet is cut from (``Snippets.snippet_from_doc``)."""
    doc = Document()
    try:
        record = parse_item(orjson.loads(raw), raw="")  # its JSON text is not needed here
    except (orjson.JSONDecodeError, RecordRejected):  # a damaged row: no snippet, not a failure
        return doc
    for name in HIGHLIGHT_FIELDS:
        value = getattr(record, name)
        if value:
            doc.add_text(name, value)
    return doc


@dataclass(frozen=True)
class Hits:
    total: int
    row_ids: list[int]
    addresses: list[Any]
    scores: list[float]


class SearchIndex:
    """A tantivy index in ``path`` (or in memory when ``path`` is None).

    ``read_only`` opens an existing index without writing a byte (a read-only home);
    ``verify`` checks its files' checksums first (``SearchIndexError(damaged=True)``).
    """

    def __init__(self, path: Path | None, *, read_only: bool = False, verify: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self.schema = build_schema()
        self._memory_mark = 0  # an index in memory keeps its mark here, not in the store
        self._searcher: tantivy.Searcher | None = None
        self._lock = threading.Lock()
        self._copy: tempfile.TemporaryDirectory[str] | None = None
        with tantivy_errors("opening the search index"):
            if path is not None:
                old_layout = (path / "meta.json").exists() and _schema_version(
                    path
                ) != SCHEMA_VERSION
                if read_only:
                    if not (path / "meta.json").exists() or old_layout:
                        raise SearchIndexError(f"{path} holds no usable index", damaged=True)
                else:
                    if old_layout:
                        shutil.rmtree(path)  # derived data in an old layout: rebuilt by sync
                    path.mkdir(parents=True, exist_ok=True)
                    _mark_schema(path)
                if verify:
                    verify_files(path, remember=not read_only)
                read_ahead_tails(path)
                where = path
                if read_only:  # tantivy takes a lock file even to read: open a folder of links
                    _sweep_copies()
                    self._copy = tempfile.TemporaryDirectory(prefix=f"{COPY_PREFIX}{os.getpid()}-")
                    where = Path(self._copy.name)
                    _link_index(path, where)
                self.index = tantivy.Index(self.schema, path=str(where), reuse=True)
            else:
                self.index = tantivy.Index(self.schema)
            self.index.register_tokenizer(ANALYZER, english_analyzer())
            self.index.register_tokenizer(VOCABULARY_ANALYZER, vocabulary_analyzer())
            self.index.searcher()  # opens every segment's files: a damaged one fails here
        self._vocabulary = vocabulary_analyzer()

    # --- writing ----------------------------------------------------------------

    def sync(
        self,
        store: Store,
        *,
        rebuild: bool = False,
        progress: Callable[[int], object] | None = None,
    ) -> int:
        """Bring the index up to the store's latest rev; returns rows (re)indexed."""
        since = 0 if rebuild else self.indexed_rev(store)
        top = store.max_rev()
        if since > top or (since == top and not self._agrees_as_before(store, top)):
            since = 0  # the index disagrees with the source of truth: rebuild it
        elif since == top:
            return 0
        done = 0
        with tantivy_errors("updating the search index"):
            writer = self.index.writer(heap_size=WRITER_HEAP, num_threads=indexing_threads())
            if since == 0:
                writer.delete_all_documents()
            shared = store.shared_group_ids()
            for chunk in _chunks(store.iter_rows(since_rev=since), 1000):
                groups = store.groups_by_row_ids([row.id for row in chunk])
                visual = store.visual_groups_by_row_ids([row.id for row in chunk])
                for row in chunk:
                    record = parse_item(orjson.loads(row.raw), raw=row.raw)
                    if since:
                        writer.delete_documents_by_term("rid", row.id)
                    ids = (*groups.get(row.id, (None, None, None)), visual.get(row.id))
                    writer.add_document(record_document(row.id, record, ids, shared))
                    done += 1
                    if progress is not None:
                        progress(1)
            writer.commit()
            writer.wait_merging_threads()
            del writer  # its lock goes with it
        self.reload()
        if self.path is not None:
            with contextlib.suppress(OSError):
                verify_files(self.path, remember=True)  # our own files: remembered as checked
            store.set_meta(self.mark_key, str(top))
        else:
            self._memory_mark = top
        return done

    def indexed_rev(self, store: Store) -> int:
        if self.path is None:
            return self._memory_mark
        return int(store.get_meta(self.mark_key, "0") or 0)

    def agrees_with(self, store: Store, *, samples: int = 16) -> bool:
        """Same count as the store, and a random sample of its rows is findable."""
        snapshot = self.snapshot()
        if snapshot.num_docs() != store.count():
            return False
        for row_id in store.sample_row_ids(samples):
            if snapshot.search(snapshot.rows_query([row_id]), limit=1).total != 1:
                return False
        return True

    #: The store meta key of the last ``agrees_with`` that passed on this index's files:
    #: "REV:DOCS:DIGEST" (the digest of meta.json, which every commit rewrites).
    agreed_key = "index_agreed"

    def _agrees_as_before(self, store: Store, top: int) -> bool:
        """``agrees_with``, unless it passed before on these very files at this same rev.

        Each open of a writable home ran it: a count of the store (about 2 s cold at 1M
        rows, the rev index's pages lie scattered) and 16 searches. A commit rewrites
        meta.json and a write moves the rev, so after either it runs again; damaged files
        are ``verify_files``'s and the open's to find, not this check's. Called under the
        write lock (``sync``), so it may remember what it found (and the store's count).
        """
        seen = self._agreement(top)
        if seen and store.get_meta(self.agreed_key) == seen:
            return True
        if not self.agrees_with(store):
            return False
        if seen:
            with contextlib.suppress(StoreError):  # a full disk: checked again next time
                store.set_meta(self.agreed_key, seen)
                store.remember_count(self.num_docs(), top)
        return True

    def _agreement(self, top: int) -> str:
        """What ``_agrees_as_before`` remembers of this index at ``top`` ("": in memory)."""
        if self.path is None:
            return ""
        try:
            digest = hashlib.blake2b((self.path / "meta.json").read_bytes(), digest_size=8)
        except OSError:
            return ""
        return f"{top}:{self.num_docs()}:{digest.hexdigest()}"

    #: The store meta key holding the last rev this index committed: the stage's name,
    #: so that every spelling of the home's path finds the same mark.
    mark_key = "indexed_rev"

    # --- reading ----------------------------------------------------------------

    @property
    def searcher(self) -> tantivy.Searcher:
        with self._lock:
            if self._searcher is None:
                with tantivy_errors("opening a searcher"):
                    self._searcher = self.index.searcher()
            return self._searcher

    def snapshot(self) -> Snapshot:
        """The index as it is now: one searcher that a reload in another thread leaves alone."""
        return Snapshot(self, self.searcher)

    def reload(self) -> None:
        with tantivy_errors("reloading the search index"):
            self.index.reload()
            searcher = self.index.searcher()
        with self._lock:
            self._searcher = searcher

    def compile(self, plan: QueryPlan) -> Query:
        """A plan → one tantivy query: text clauses must match, filters must hold."""
        return self.compile_matching(plan)[0]

    def compile_matching(
        self,
        plan: QueryPlan,
        searcher: tantivy.Searcher | None = None,
        words_seen: dict[tuple[object, ...], Any] | None = None,
    ) -> tuple[Query, matching.Matched | None]:
        """``compile``, and how ``q`` matched (relaxed, typo suggestion) when there is a ``q``;
        the counts that decide how far to relax are read on ``searcher`` (default: current),
        and ``words_seen`` keeps the words' counts for that searcher's next queries."""
        query, _counting, matched, _hits = self._compile(plan, searcher, words_seen)
        return query, matched

    def _compile(
        self,
        plan: QueryPlan,
        searcher: tantivy.Searcher | None = None,
        words_seen: dict[tuple[object, ...], Any] | None = None,
        page: Callable[[Query, bool], Hits] | None = None,
        decided: dict[QueryPlan, tuple[matching.Matched, bool]] | None = None,
    ) -> tuple[Query, Query, matching.Matched | None, Hits | None]:
        """``compile_matching``, and the same records as a query cheaper to walk unscored
        (``Matched.counting``); with ``page`` (a search of a whole query for the request's
        page), matching counts its candidates with it, and the chosen query's page comes
        back with it, searched already (or None). ``decided`` keeps, per plan, how ``q``
        matched on ``searcher`` (and whether its page was a relaxed probe): the next page
        of the same plan is then one search, where a relaxed ``q`` first probed strict."""
        if plan.matches_nothing:
            return Query.empty_query(), Query.empty_query(), None, None
        parts: list[tuple[Occur, Query]] = []
        relaxed = [c for c in plan.text if c.q and c.terms]
        for clause in plan.text:
            if clause.terms and clause not in relaxed:
                parts.append((Occur.Must, self._text_query(clause)))
        parts += self._filters(plan)
        matched = None
        probed: dict[int, tuple[Query, Query, Hits]] = {}  # id(q query) → it, whole, page

        def probe(candidate: Query, relaxed: bool) -> int:
            assert page is not None
            whole = _whole([(Occur.Must, candidate), *parts])
            hits = page(whole, relaxed)
            probed[id(candidate)] = (candidate, whole, hits)  # keeps ``candidate``: ids stay
            return hits.total

        known = decided.get(plan) if decided is not None and len(relaxed) == 1 else None
        for clause in relaxed:
            if known is not None:
                matched = known[0]
                others = list(parts)
                parts.insert(0, (Occur.Must, matched.query))
                continue
            with tantivy_errors("parsing the query"):
                matched = matching.compile_q(
                    self.index,
                    searcher or self.searcher,
                    self._vocabulary,
                    clause.terms,
                    dict(clause.boosts),
                    [q for _, q in parts],
                    strict=not clause.relax,
                    strong_only=clause.strong_only,
                    words_seen=words_seen if searcher is not None else None,
                    probe=probe if page is not None and len(relaxed) == 1 else None,
                )
            others = list(parts)
            parts.insert(0, (Occur.Must, matched.query))
        counting = _whole(parts)
        if matched is not None and matched.counting is not None and len(relaxed) == 1:
            counting = _whole([(Occur.Must, matched.counting), *others])
        found = probed.get(id(matched.query)) if matched is not None else None
        if decided is not None and matched is not None and known is None and len(relaxed) == 1:
            if len(decided) >= MATCHES_KEPT:
                decided.clear()  # a bound, not an LRU
            decided[plan] = (matched, found is not None and matched.relaxed)
        if found is not None:
            return found[1], counting, matched, found[2]
        if known is not None and page is not None:  # searched as the probe that chose it was
            whole = _whole(parts)
            return whole, counting, matched, page(whole, known[1])
        return _whole(parts), counting, matched, None

    def _filters(self, plan: QueryPlan) -> list[tuple[Occur, Query]]:
        """The plan's exact filters (everything but its text clauses)."""
        parts: list[tuple[Occur, Query]] = []
        schema = self.schema
        if plan.media_types:
            parts.append(
                (Occur.Must, Query.term_set_query(schema, "media_type", list(plan.media_types)))
            )
        if plan.centers:
            parts.append((Occur.Must, Query.term_set_query(schema, "center", list(plan.centers))))
        if plan.nasa_id:
            parts.append((Occur.Must, Query.term_query(schema, "nasa_id", plan.nasa_id)))
        if plan.album:
            parts.append((Occur.Must, Query.term_query(schema, "album", plan.album)))
        if plan.year_start is not None or plan.year_end is not None:
            parts.append(
                (
                    Occur.Must,
                    Query.range_query(
                        schema, "year", tantivy.FieldType.Integer, plan.year_start, plan.year_end
                    ),
                )
            )
        if plan.group is not None:
            level, group_id = plan.group
            parts.append((Occur.Must, Query.term_query(schema, f"{level}_group", group_id)))
        return parts

    def _text_query(self, clause: TextClause) -> Query:
        text = " ".join(f"+{term}" for term in clause.terms)
        with tantivy_errors(PARSING):
            return self.index.parse_query(
                text, list(clause.fields), field_boosts=dict(clause.boosts) or None
            )

    def _similar_query(self, terms: Sequence[str], plan: QueryPlan, exclude_nasa_id: str) -> Query:
        with tantivy_errors(PARSING):
            text = self.index.parse_query(" ".join(terms), list(Q_FIELDS), field_boosts=Q_FIELDS)
        return Query.boolean_query(
            [
                (Occur.Must, text),
                (Occur.Must, self.compile(plan)),
                (Occur.MustNot, Query.term_query(self.schema, "nasa_id", exclude_nasa_id)),
            ]
        )

    # One-call reads on the current searcher (a request that reads more than once takes
    # a ``snapshot()`` and reads through it: the next call may see a newer searcher).

    def num_docs(self) -> int:
        return self.snapshot().num_docs()

    def search(self, query: Query, *, limit: int, offset: int = 0, sort: str = "relevance") -> Hits:
        return self.snapshot().search(query, limit=limit, offset=offset, sort=sort)


#: Group counts a snapshot keeps for the next pages of the same collapsed searches.
GROUP_COUNTS_KEPT = 10_000
#: How ``q`` matched, per plan, kept by a snapshot for the next pages of the same search.
MATCHES_KEPT = 10_000


def _whole(parts: list[tuple[Occur, Query]]) -> Query:
    """A compiled plan's parts as one query."""
    if not parts:
        return Query.all_query()
    if len(parts) == 1 and parts[0][0] is Occur.Must:
        return parts[0][1]
    return Query.boolean_query(parts)


class Snapshot:
    """One tantivy searcher and the reads a request makes through it.

    Addresses (segment ord, doc) from one searcher mean nothing to another: a request
    that searched on one and read fast fields or snippets on a newer one got "Invalid
    segment_ord" or another record's values. Everything here reads the one searcher
    it was made with, which stays valid however often the index reloads meanwhile.
    """

    def __init__(self, index: SearchIndex, searcher: tantivy.Searcher) -> None:
        self._index = index
        self._searcher = searcher
        self.schema = index.schema
        self._completions: Completions | None = None
        self._completions_lock = threading.Lock()
        self._words: dict[tuple[object, ...], Any] = {}  # matching.compile_q's, this searcher's
        #: Group counts of collapsed searches (plan, group field) → count: this searcher's,
        #: so they can never be another revision's; later pages of a search reuse them.
        self._groups: dict[tuple[QueryPlan, str], int] = {}
        #: How each plan's ``q`` matched on this searcher (``SearchIndex._compile``).
        self._decided: dict[QueryPlan, tuple[matching.Matched, bool]] = {}

    def compile(self, plan: QueryPlan) -> Query:
        return self.compile_matching(plan)[0]

    def compile_matching(self, plan: QueryPlan) -> tuple[Query, matching.Matched | None]:
        """The plan compiled against this snapshot's own counts."""
        return self._index.compile_matching(plan, self._searcher, self._words)

    def compile_and_search(
        self,
        plan: QueryPlan,
        *,
        limit: int,
        offset: int = 0,
        sort: str = "relevance",
        relaxed_limit: int = 0,
    ) -> tuple[Query, Query, matching.Matched | None, Hits]:
        """``compile_matching`` and the query's page (``search``) at once: when matching
        must count the records of a query to choose it, the count is that query's page
        search, so the chosen query costs no pass of its own (a strict multi-word ``q``
        saved a counting pass, a relaxed one 1 of 2–3). Also the same records as a query
        cheaper to walk when no scores are needed (``count_distinct``: half the cost).
        A relaxed candidate is searched for ``relaxed_limit`` hits when that is more (a
        collapsed page then has all of a relaxed query's few hits at once)."""

        def page(whole: Query, relaxed: bool = False) -> Hits:
            wide = max(limit, relaxed_limit) if relaxed else limit
            return self.search(whole, limit=wide, offset=offset, sort=sort)

        query, counting, matched, hits = self._index._compile(
            plan, self._searcher, self._words, page, self._decided
        )
        return query, counting, matched, hits if hits is not None else page(query)

    def rows_query(self, row_ids: Sequence[int]) -> Query:
        """Exactly the documents of these store rows."""
        return Query.term_set_query(self.schema, "rid", list(row_ids))

    def within_rows(self, query: Query, row_ids: Sequence[int]) -> Query:
        """``query``, restricted to these store rows."""
        return Query.boolean_query([(Occur.Must, query), (Occur.Must, self.rows_query(row_ids))])

    def row_of(self, nasa_id: str) -> int | None:
        """The store row id of the document for ``nasa_id``, if indexed."""
        hits = self.search(Query.term_query(self.schema, "nasa_id", nasa_id), limit=1)
        return hits.row_ids[0] if hits.row_ids else None

    def num_docs(self) -> int:
        return int(self._searcher.num_docs)

    def completions(self) -> Completions:
        """This revision's autocomplete vocabulary: built on first use (two term-dictionary
        walks), then kept with the snapshot, so a reload (a new snapshot) rebuilds it."""
        with self._completions_lock:
            if self._completions is None:
                with tantivy_errors("reading the vocabulary"):
                    keywords = self._searcher.terms_with_prefix("keyword_exact", "")
                    words = self._searcher.terms_with_prefix(matching.VOCABULARY_FIELD, "")
                self._completions = Completions(keywords, words)
            return self._completions

    def words_along(self, head: Sequence[str], prefix: str, limit: int) -> list[tuple[str, int]]:
        """Vocabulary words starting with ``prefix``, counted among the records holding
        every ``head`` word (one filtered term-dictionary walk)."""
        field = matching.VOCABULARY_FIELD
        terms = [Query.term_query(self.schema, field, word) for word in head]
        with tantivy_errors("reading the vocabulary"):
            found = self._searcher.terms_with_prefix(
                field, prefix, filter_query=matching._all(terms), limit=limit
            )
        return [(str(term), int(count)) for term, count in found if count]

    def search(self, query: Query, *, limit: int, offset: int = 0, sort: str = "relevance") -> Hits:
        searcher = self._searcher
        with tantivy_errors("searching"):
            if sort in SORT_FIELDS:
                field, order = SORT_FIELDS[sort]
                result = searcher.search(
                    query, limit, count=True, offset=offset, order_by_field=field, order=order
                )
            else:
                result = searcher.search(query, limit, count=True, offset=offset)
            found = result.hits  # a new list at each access: read it once
            addresses = [address for _score, address in found]
        with tantivy_errors("reading fast fields"):
            row_ids = searcher.fast_field_values("rid", addresses) if addresses else []
        # A hit without a row id (only a damaged fast field has one) is dropped with its
        # address and score, so the three lists stay aligned.
        kept = [(i, int(row_id)) for i, row_id in enumerate(row_ids) if row_id is not None]
        return Hits(
            total=int(result.count or 0),  # type: ignore[attr-defined]
            row_ids=[row_id for _, row_id in kept],
            addresses=[addresses[i] for i, _ in kept],
            scores=[float(found[i][0]) if sort not in SORT_FIELDS else 0.0 for i, _ in kept],
        )

    def similar_rows(
        self, terms: Sequence[str], plan: QueryPlan, *, exclude_nasa_id: str, limit: int
    ) -> list[tuple[int, float]]:
        """Rows sharing the most (weighted) words with ``terms``: lexical "more like this"."""
        if not terms:
            return []
        hits = self.search(self._index._similar_query(terms, plan, exclude_nasa_id), limit=limit)
        return list(zip(hits.row_ids, hits.scores, strict=False))

    def fast_values(self, field: str, addresses: Sequence[Any]) -> list[Any]:
        with tantivy_errors("reading fast fields"):
            return list(self._searcher.fast_field_values(field, list(addresses)))

    def known_groups(self, plan: QueryPlan, field: str) -> int | None:
        """The group count ``remember_groups`` kept for this plan on this snapshot."""
        return self._groups.get((plan, field))

    def remember_groups(self, plan: QueryPlan, field: str, count: int) -> None:
        if len(self._groups) >= GROUP_COUNTS_KEPT:
            self._groups.clear()  # a bound, not an LRU
        self._groups[(plan, field)] = count

    def count_distinct(self, query: Query, field: str, hits: int | None = None) -> int:
        """Distinct values of a fast field over all hits, exactly; a hit without a value
        counts as one of its own (an ungrouped record is a group of one). ``hits``, the
        query's count when the caller knows it, spares counting them again.

        The hits, less one for each hit beyond the first of a value: only the values
        shared by two or more hits become buckets, so this stays cheap where tantivy's
        ``cardinality`` (HyperLogLog) is off by a few percent from about a thousand.
        """
        terms = {
            "field": SHARED_FIELDS.get(field, field),  # the groups of one have no bucket there
            "size": max(1, self.num_docs()),
            "min_doc_count": 2,
        }
        spec: dict[str, Any] = {"shared": {"terms": terms}}
        if hits is None:
            spec["hits"] = {"value_count": {"field": "rid"}}
        with tantivy_errors("counting groups"):
            try:
                result = self._searcher.aggregate(query, spec)
            except ValueError:  # over tantivy's 65,000 buckets: read every hit's value
                result = None
        if result is None:
            every = self.search(query, limit=max(1, self.num_docs()))
            values = self.fast_values(field, every.addresses)
            return len(
                {v if v is not None else -r for v, r in zip(values, every.row_ids, strict=False)}
            )
        repeats = sum(int(b["doc_count"]) - 1 for b in result["shared"]["buckets"])
        if hits is None:
            hits = int(result["hits"]["value"] or 0)
        return hits - repeats

    def facets(
        self, query: Query, names: Iterable[str], *, size: int = 20
    ) -> dict[str, dict[str, int]]:
        """Counts over the whole hit set for each facet, largest first (years ascending)."""
        aggregations: dict[str, Any] = {}
        for name in names:
            field = FACET_FIELDS[name]
            if name == "year":
                aggregations[name] = {
                    "terms": {"field": field, "size": 500, "order": {"_key": "asc"}}
                }
            elif name == "keywords":  # case variants merge below: read past the top ones
                wide = size * 10
                aggregations[name] = {"terms": {"field": field, "size": wide, "segment_size": wide}}
            else:
                aggregations[name] = {"terms": {"field": field, "size": size}}
        if not aggregations:
            return {}
        with tantivy_errors("counting facets"):
            result = self._searcher.aggregate(query, aggregations)
        counts = {
            name: {
                str(_facet_key(b["key"])): int(b["doc_count"])
                for b in result.get(name, {}).get("buckets", [])
            }
            for name in aggregations
        }
        if "keywords" in counts:
            chosen = merge_case_variants(counts["keywords"], size)
            if result["keywords"].get("sum_other_doc_count"):  # some spellings were cut off
                chosen = self._keywords_any_case(query, chosen, size)
            counts["keywords"] = chosen
        return counts

    def _keywords_any_case(self, query: Query, chosen: dict[str, int], size: int) -> dict[str, int]:
        """The chosen keywords counted again in their usual spellings (lower, UPPER,
        Title, Capitalised): the first read ranks spellings, so a rare one ("apollo"
        beside 25 "Apollo") can fall past its cut. An exact-term list costs little,
        where a case-insensitive regex over the term dictionary cost 5x the facets."""
        spellings = {
            variant
            for value in chosen
            for variant in (value, value.lower(), value.upper(), value.title(), value.capitalize())
        }
        spec = {"terms": {"field": "keyword_exact", "size": 10_000, "include": sorted(spellings)}}
        with tantivy_errors("counting facets"):
            result = self._searcher.aggregate(query, {"k": spec})
        every = {str(b["key"]): int(b["doc_count"]) for b in result["k"]["buckets"]}
        return merge_case_variants(every, size)

    def snippet_generator(self, query: Query, field: str) -> Snippets:
        with tantivy_errors("highlighting"):
            return Snippets(
                tantivy.SnippetGenerator.create(self._searcher, query, self.schema, field)
            )


class Snippets:
    """A snippet generator whose panics on a damaged file become ``SearchIndexError``."""

    def __init__(self, generator: tantivy.SnippetGenerator) -> None:
        self._generator = generator

    def set_max_num_chars(self, count: int) -> None:
        self._generator.set_max_num_chars(count)

    def snippet_from_doc(self, doc: tantivy.Document) -> tantivy.Snippet:
        with tantivy_errors("highlighting"):
            return self._generator.snippet_from_doc(doc)


def verify_files(path: Path, *, remember: bool) -> None:
    """Check the footer and checksum of every file of the segments ``meta.json`` lists.

    tantivy writes each file once, ending it with ``{json footer with crc32}``, the
    footer's length and the magic 1337 (tantivy's ``validate_checksum``, which its
    Python binding lacks). Files already checked, with the same size and mtime, are
    remembered in ``nivl-verified`` and skipped, so a reopen reads only new segments.
    """
    try:
        meta = orjson.loads((path / "meta.json").read_bytes())
    except FileNotFoundError:
        return
    except (OSError, orjson.JSONDecodeError) as exc:
        raise SearchIndexError(f"the index's meta.json is unreadable: {exc}", damaged=True) from exc
    memo_path = path / "nivl-verified"
    try:
        memo: dict[str, list[int]] = orjson.loads(memo_path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        memo = {}
    checked: dict[str, list[int]] = {}
    for segment in meta.get("segments", []):
        stem = str(segment.get("segment_id", "")).replace("-", "")
        names = [f"{stem}.{ext}" for ext in SEGMENT_FILES]
        if segment.get("deletes"):
            names.append(f"{stem}.{segment['deletes'].get('opstamp')}.del")
        for name in names:
            file = path / name
            try:
                stat = file.stat()
            except FileNotFoundError:
                continue  # not every segment has every kind of file; tantivy's open says
            seen = [stat.st_size, stat.st_mtime_ns]
            if memo.get(name) != seen:
                _check_footer(file)
            checked[name] = seen
    if remember and checked != memo:
        with contextlib.suppress(OSError):
            tmp = memo_path.with_name(f"nivl-verified.{os.getpid()}.tmp")
            tmp.write_bytes(orjson.dumps(checked))
            os.replace(tmp, memo_path)


#: Bytes at the end of each index file read ahead before tantivy opens the index.
TAIL_BYTES = 256 * 1024


def read_ahead_tails(path: Path) -> None:
    """Ask the kernel for the last ``TAIL_BYTES`` of every file of the index, all at once.

    Opening reads only the files' ends (footers, field tables), one page fault at a time,
    and a fault on a cold mapped page reads the whole read-ahead window around it (8 MB
    where ``read_ahead_kb`` is 8192): a cold open of the 1M index read 238 MB in 0.40 s,
    and 5–19 MB in 0.02 s after this. Warm, it costs a millisecond or two.
    """
    if not hasattr(os, "posix_fadvise"):
        return
    with contextlib.suppress(OSError):
        for file in os.scandir(path):
            if not file.name.endswith(".lock") and file.is_file():
                fd = os.open(file.path, os.O_RDONLY)
                try:
                    size = os.fstat(fd).st_size
                    os.posix_fadvise(fd, max(0, size - TAIL_BYTES), 0, os.POSIX_FADV_WILLNEED)
                finally:
                    os.close(fd)


COPY_PREFIX = "nivl-index-"


def _sweep_copies() -> None:
    """Remove the copies of processes that are gone: a SIGKILLed replica cannot remove its
    own. Folders are named after their process id."""
    for folder in Path(tempfile.gettempdir()).glob(f"{COPY_PREFIX}*-*"):
        pid = folder.name.removeprefix(COPY_PREFIX).split("-")[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # alive, another user's


#: The index's small files, copied into the folder of links: what tantivy reads to find
#: its segments is then fixed at open, whatever later happens to the source folder.
COPIED_FILES = frozenset({"meta.json", ".managed.json"})


def _link_index(source: Path, target: Path) -> None:
    """The index's files (not its lock files) in ``target``, where tantivy may take its locks.

    A segment file is a hard link when it can be (the same file system, not across a
    bind mount), else a symbolic link to its real path (never through a link such as a
    replica's ``current``, which may move). Copying them instead cost a whole index of
    disk and seconds of startup, in every worker of a replica.
    """
    for file in os.scandir(source):
        if not file.is_file() or file.name.endswith(".lock"):
            continue
        if file.name in COPIED_FILES:
            shutil.copyfile(file.path, target / file.name)
            continue
        real = os.path.realpath(file.path)
        try:
            os.link(real, target / file.name)
        except OSError:
            os.symlink(real, target / file.name)


SEGMENT_FILES = ("idx", "pos", "term", "store", "fast", "fieldnorm")
_FOOTER_MAGIC = 1337


def _check_footer(file: Path) -> None:
    """tantivy's footer check, streaming the file (segments can be hundreds of MB)."""
    with file.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        problem = "too short" if size < 8 else ""
        if not problem:
            handle.seek(size - 8)
            length, magic = struct.unpack("<II", handle.read(8))
            if magic != _FOOTER_MAGIC or length + 8 > size:
                problem = "no footer (magic number mismatch)"
        if not problem:
            body = size - 8 - length
            handle.seek(body)
            try:
                crc = int(orjson.loads(handle.read(length))["crc"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                problem = "unreadable footer"
            else:
                handle.seek(0)
                running, left = 0, body
                while left:
                    block = handle.read(min(left, 1 << 20))
                    if not block:
                        break
                    running = zlib.crc32(block, running)
                    left -= len(block)
                if running != crc:
                    problem = "checksum mismatch"
    if problem:
        raise SearchIndexError(f"{file.name} is damaged: {problem}", damaged=True)


def _chunks(rows: Iterable[StoredRow], size: int) -> Iterator[list[StoredRow]]:
    chunk: list[StoredRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def merge_case_variants(counts: dict[str, int], size: int) -> dict[str, int]:
    """Case variants of a keyword (Podcast, podcast) as one facet value under its most
    common spelling, largest first. The keywords filter matches every case already (it
    searches the lowercased keywords field). A record listing two spellings counts twice
    (none of the shared records does)."""
    merged: dict[str, tuple[str, tuple[int, bool, bool], int]] = {}  # folded → best, total
    for value, count in counts.items():
        folded = value.casefold()
        # on a tie, Astronauts over astronauts over ASTRONAUTS
        rank = (count, not value.isupper(), value[:1].isupper())
        spelling, best, total = merged.get(folded, (value, rank, 0))
        if rank > best:
            spelling, best = value, rank
        merged[folded] = (spelling, best, total + count)
    ranked = sorted(merged.values(), key=lambda entry: -entry[2])
    return {spelling: total for spelling, _, total in ranked[:size]}


def _facet_key(key: Any) -> Any:
    return int(key) if isinstance(key, float) and key.is_integer() else key


def _mark_schema(path: Path) -> None:
    """Write the schema marker only when it differs, and by rename: rewritten in place at
    every open, a second process opening the index at that moment read it empty, took the
    index for an old layout and deleted it (two benchmark runs started together did)."""
    if _schema_version(path) == SCHEMA_VERSION:
        return
    tmp = path / f"nivl-schema.{os.getpid()}.tmp"
    tmp.write_text(SCHEMA_VERSION)
    os.replace(tmp, path / "nivl-schema")


def _schema_version(path: Path) -> str:
    marker = path / "nivl-schema"
    return marker.read_text().strip() if marker.exists() else ""
