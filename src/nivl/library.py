"""``Library``: one home directory's store and index, opened together.

The CLI and the web app each build one from ``Settings`` and call its
methods; it keeps the derived index in step with the store on open.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import embeddings
from .errors import RecordNotFound, SemanticUnavailable
from .groups import DupesReport, GroupPage, GroupUpdate, dupes, group_page, update_groups
from .ingest import ImportSummary, import_paths
from .query import MAX_GROUP_ID, Limits, SearchRequest, text_terms
from .search import SearchResult, search
from .search_index import SearchIndex
from .settings import Settings
from .store import Store

if TYPE_CHECKING:
    from .embeddings import Embedder
    from .vector_index import VectorIndex

VECTORS_FILE = "vectors.usearch"


class Library:
    def __init__(self, settings: Settings, *, sync: bool = True) -> None:
        self.settings = settings
        self.store = Store(settings.db_path, max_mb=settings.max_db_mb)
        self.index = SearchIndex(settings.index_path)
        if sync:
            update_groups(self.store)
            self.index.sync(self.store)
        self.revision = self.index.indexed_rev(self.store)
        self._vectors: VectorIndex | None = None
        self._embedder: Embedder | None = None
        self._vectors_lock = threading.Lock()
        self._embedder_lock = threading.Lock()  # held while the model loads: not /healthz's

    def refresh(self) -> int:
        """See what another process (an import, a harvest) committed; returns the revision.

        Writers move the index's mark only after its commit, so reloading when the mark
        moves always shows the new documents; answers can be cached per revision.
        """
        revision = self.index.indexed_rev(self.store)
        if revision != self.revision:
            self.index.reload()
            self.revision = revision
        if self._vectors is not None:
            self._vectors.reload_if_changed()  # what ``nivl embed`` saved since
        return revision

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(
            default_page_size=s.default_page_size,
            max_page_size=s.max_page_size,
            max_result_window=s.max_result_window,
            max_query_length=s.max_query_length,
        )

    def search(self, request: SearchRequest) -> SearchResult:
        """Lexical (BM25), or semantic/hybrid over ``q`` when asked and there is text to embed."""
        if request.mode != "lexical":
            embeddings.require(f"mode={request.mode}")
        if request.mode == "lexical" or not text_terms(request.q):
            return search(self.store, self.index, request)
        from .hybrid import rank

        vectors = self.vectors()
        if len(vectors) == 0:  # nothing embedded yet: hybrid is BM25 alone
            if request.mode == "semantic":
                raise SemanticUnavailable(
                    "mode=semantic needs embeddings and none are stored yet: run 'nivl embed'"
                )
            return search(self.store, self.index, request)
        vector = self.embedder().embed_query(request.q)
        ranking = rank(self.index, vectors, vector, request, mode=request.mode)
        return search(self.store, self.index, request, ranking=ranking)

    def similar(self, nasa_id: str, request: SearchRequest) -> SearchResult:
        """Records nearest to ``nasa_id``'s vector (its own text embedded if not stored yet)."""
        from tantivy import Query

        from .hybrid import rank
        from .records import parse_item

        if not self.semantic_status()["embedded"]:  # no extra, or nothing embedded yet
            return self._similar_by_words(nasa_id, request)
        hits = self.index.search(Query.term_query(self.index.schema, "nasa_id", nasa_id), limit=1)
        if not hits.row_ids:
            raise RecordNotFound(f"No record with nasa_id {nasa_id!r}")
        row_id = hits.row_ids[0]
        vectors = self.vectors()
        vector = vectors.vector(row_id)
        if vector is None:
            raw = self.store.get_raw(nasa_id)
            vector = self.embedder().embed_query(embeddings.record_text(parse_item(_loads(raw))))
        request = dataclasses.replace(request, q="", mode="semantic")
        ranking = rank(self.index, vectors, vector, request, mode="semantic", exclude={row_id})
        return search(self.store, self.index, request, ranking=ranking)

    def _similar_by_words(self, nasa_id: str, request: SearchRequest) -> SearchResult:
        """Without the semantic extra: the records sharing most title and keyword words."""
        from .query import plan_query, text_terms
        from .records import parse_item

        record = parse_item(_loads(self.store.get_raw(nasa_id)))
        words = text_terms(" ".join((record.title, *record.keywords)).replace('"', " "))
        request = dataclasses.replace(request, q="", mode="lexical")
        ranking = self.index.similar_rows(
            words[:24], plan_query(request), exclude_nasa_id=nasa_id, limit=200
        )
        return search(self.store, self.index, request, ranking=ranking)

    # --- the semantic stage (needs the [semantic] extra) ------------------------

    @property
    def semantic_revision(self) -> int:
        """Changes when the index or the vectors do: a cache key for semantic answers."""
        mtime = self._vectors.mtime if self._vectors is not None else 0.0
        return hash((self.revision, mtime))

    @property
    def vectors_path(self) -> Path:
        return self.settings.home / VECTORS_FILE

    def vectors(self) -> VectorIndex:
        """The vector index, opened on first use; ``SemanticUnavailable`` without the extra."""
        with self._vectors_lock:
            if self._vectors is None:
                from .vector_index import VectorIndex

                self._vectors = VectorIndex(self.vectors_path)
            return self._vectors

    def embedder(self) -> Embedder:
        """The sentence-embedding model, loaded on first use (a few seconds)."""
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = embeddings.Embedder()
            return self._embedder

    def warm_semantic(self) -> threading.Thread | None:
        """Load the model in the background when there are vectors to search (else None)."""
        if not embeddings.available() or not self.vectors_path.exists():
            return None
        thread = threading.Thread(target=self.embedder, name="nivl-warm-model", daemon=True)
        thread.start()
        return thread

    def pending_embeddings(self, *, rebuild: bool = False) -> int:
        return self.vectors().pending(self.store, rebuild=rebuild)

    def embed(
        self, *, rebuild: bool = False, progress: Callable[[int], object] | None = None
    ) -> int:
        """Embed what changed since the last run (resumable); returns records embedded."""
        vectors = self.vectors()
        if not rebuild and vectors.pending(self.store) == 0:
            return 0
        embedder = self.embedder()
        threads = os.cpu_count() or 1

        def embed(texts: Sequence[str]) -> Any:
            return embedder.embed(texts, threads=threads)

        return vectors.sync(self.store, embed, rebuild=rebuild, progress=progress)

    def semantic_status(self) -> dict[str, Any]:
        """Whether semantic search is installed, and how many records are embedded."""
        if not embeddings.available():
            return {"available": False, "embedded": 0}
        embedded = len(self.vectors()) if self.vectors_path.exists() else 0
        return {"available": True, "embedded": embedded}

    def import_paths(
        self, paths: Iterable[Path], *, on_bytes: Callable[[int], object] | None = None
    ) -> ImportSummary:
        return import_paths(
            self.store,
            self.index,
            paths,
            on_bytes=on_bytes,
            max_record_bytes=self.settings.max_record_kb * 1024,
        )

    def group(self, *, rebuild: bool = False) -> GroupUpdate:
        """Regroup what changed (everything with ``rebuild``), then refresh the index."""
        update = update_groups(self.store, rebuild=rebuild)
        self.index.sync(self.store)
        return update

    def group_page(self, group_id: int, *, page: int = 1, page_size: int = 100) -> GroupPage:
        if not 0 <= group_id <= MAX_GROUP_ID:  # SQLite would overflow: no such group
            raise RecordNotFound(f"No group with id {group_id}")
        return group_page(self.store, group_id, page=page, page_size=page_size)

    def album_spellings(self, name: str, *, limit: int = 500) -> list[str]:
        """Albums whose name differs from ``name`` only by case, commonest first: albums are
        case-sensitive (as upstream), so a 404 for ``apollo`` can name ``Apollo``."""
        from collections import Counter

        import orjson

        from .query import QueryPlan, TextClause
        from .records import parse_item

        words = text_terms(name.replace('"', " "))
        if not words:
            return []
        plan = QueryPlan(text=(TextClause(("album_text",), words),))
        hits = self.index.search(self.index.compile(plan), limit=limit)
        folded = name.casefold()
        found: Counter[str] = Counter()
        for raw in self.store.raw_by_ids(hits.row_ids):
            for album in parse_item(orjson.loads(raw)).album:
                if album != name and album.casefold() == folded:
                    found[album] += 1
        return [album for album, _count in found.most_common(5)]

    def dupes(self, *, level: str | None = None, min_size: int = 2, limit: int = 20) -> DupesReport:
        return dupes(self.store, level=level, min_size=min_size, limit=limit)

    def is_empty(self) -> bool:
        return self.store.count() == 0

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sample_paths() -> list[Path]:
    """The bundled sample's files (built by scripts/build_sample.py)."""
    folder = importlib.resources.files("nivl") / "sample"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".jsonl.gz"))


def _loads(raw: str) -> Any:
    import orjson

    return orjson.loads(raw)
