"""``Library``: one home directory's store and its derived state, the one door to both.

The CLI and the web app each build one from ``Settings`` and call its methods.
Every write (import, harvest, regrouping, reindexing, embedding) takes the
home's write lock, writes the store, then has ``derived.py`` bring the derived
stages up to date; opening does the same when it may write, and reports stale
stages when it may not (a read-only home, a full disk, another process writing).
A request reads one ``View``: a revision and one index snapshot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import derived, embeddings
from .errors import (
    InvalidParameter,
    NivlError,
    RecordNotFound,
    SearchIndexError,
    StoreError,
    UpstreamError,
    UpstreamUnavailable,
)
from .groups import DupesReport, GroupPage, GroupUpdate, dupes, group_page, update_groups
from .hybrid import BUILTIN_DENSE_WEIGHT, DENSE_WEIGHT
from .ingest import ImportSummary
from .ingest import import_paths as ingest_paths
from .query import MAX_GROUP_ID, Limits, QueryPlan, SearchRequest, text_terms
from .records import Record, parse_item
from .search import SearchResult, search
from .search_index import Snapshot, verify_files
from .settings import Settings
from .store import Store
from .suggest import Suggestion
from .urls import shown
from .vector_index import Embed, MatrixIndex

if TYPE_CHECKING:
    from .embeddings import Embedder, StaticEmbedder
    from .harvest import HarvestResult
    from .media import FetchProgress, FetchResult
    from .snapshot import SnapshotResult
    from .upstream import Upstream
    from .vector_index import VectorIndex

VECTORS_FILE = "vectors.usearch"
#: The built-in model's vectors (``derived.py`` keeps them in step on every write).
BUILTIN_VECTORS_FILE = f"vectors.{embeddings.BUILTIN_MODEL}.npy"
#: How long healing a damaged index waits for another writer to finish.
HEAL_WAIT = 60.0
log = logging.getLogger("nivl")


@dataclass(frozen=True)
class View:
    """What one request reads: the index revision and the snapshot taken at it."""

    revision: int
    snapshot: Snapshot


class Library:
    """``sync``: bring the derived stages up to date on open (when the home may be written).
    ``rebuild_index``: build the index afresh from the store instead of opening it (for
    ``nivl index --rebuild``, which must work on an index that cannot be opened)."""

    def __init__(
        self, settings: Settings, *, sync: bool = True, rebuild_index: bool = False
    ) -> None:
        self.settings = settings
        self.notes: list[str] = []  # what opening found and did, for the CLI or log to show
        # --read-only (a replica): not even the probe _writable makes, nor the lock file.
        self.read_only = settings.read_only or not _writable(settings.home)
        self.store = Store(settings.db_path, max_mb=settings.max_db_mb, read_only=self.read_only)
        self.lock = derived.WriteLock(settings.home)
        self._damaged = False
        self._heal_lock = threading.Lock()
        self._view_lock = threading.Lock()
        self._upstream: Upstream | None = None
        self._upstream_lock = threading.Lock()
        self._remember_lock = threading.Lock()  # WriteLock's depth count is not thread-safe
        self._static: StaticEmbedder | None = None
        self._static_lock = threading.Lock()
        # HOME/media is looked at before the first read of the visual groups, not on every
        # open (``pictures_current``): two stats a mirrored picture, a second per 100k.
        self._pictures_due = not self.read_only
        self._pictures_lock = threading.Lock()
        self._pictures_thread: threading.Thread | None = None
        self.builtin = self._open_builtin()
        if rebuild_index and not self.read_only:
            with self.lock.hold():
                self.index = derived.rebuild_index(settings.index_path, self.store)
        else:
            self.index = derived.open_index(
                settings.index_path,
                self.store,
                lock=None if self.read_only else self.lock,
                note=self._note,
                wait=HEAL_WAIT,
            )
        if sync:
            self._catch_up()
        self._view = View(self.index.indexed_rev(self.store), self.index.snapshot())
        self._vectors: VectorIndex | None = None
        self._embedder: Embedder | None = None
        self._vectors_lock = threading.Lock()
        self._embedder_lock = threading.Lock()  # held while the model loads: not /healthz's

    def _note(self, message: str) -> None:
        """Opening's findings: the CLI prints them, the web app logs them."""
        self.notes.append(message)

    def _catch_up(self) -> None:
        """Run the stages if this process may write now; otherwise say what is stale."""
        reason = ""
        if self.read_only:
            reason = "the home is read-only"
        elif not self.lock.acquire(brief=True):
            return  # another process is writing: it brings the stages up to date after
        else:
            try:
                self._update()
            except StoreError as exc:  # a full disk: reading goes on, with what is there
                reason = str(exc)
            finally:
                self.lock.release()
        if reason:
            stale = self._behind()
            if stale.get("vectors"):  # the built-in vectors are quick: make them in memory
                memory = MatrixIndex(
                    None, dimensions=self.builtin.dimensions, mark=self.builtin.mark
                )
                memory.sync(self.store, self._static_embed(), batch_size=1024)
                self.builtin = memory
                stale.pop("vectors")
            if stale:
                self._note(
                    f"{reason}: searches show the derived state as it is ("
                    + ", ".join(f"{n} records not in {name}" for name, n in stale.items())
                    + ")"
                )

    def pictures_current(self) -> bool:
        """Bring the pictures' stages up to date with HOME/media, once a process, before the
        first read of the visual groups (a search collapsed by picture, a group page, the
        dupes, the counts of groups): so a picture added, replaced or removed by hand is
        seen by the command that shows it, and a command or server that reads no visual
        group does not stat every mirrored file at start. Skipped while another process
        writes (it is not waited for), as opening does; True if it ran."""
        if not self._pictures_due:
            return False
        # The write lock counts its holders but is not thread-safe: not beside a heal or a
        # remembered manifest of another request's thread, nor inside this process's write.
        with self._pictures_lock, self._remember_lock:
            if not self._pictures_due or not self._heal_lock.acquire(blocking=False):
                return False
            try:
                if self.lock.held or not self.lock.acquire(brief=True):
                    return False
                try:
                    run = self._update(media=self.settings.media_path)
                    for line in unhashed_lines(run.hashes.unreadable):
                        self._note(line)
                except StoreError as exc:  # a full disk: the groups as they are
                    log.warning("%s: the visual groups may be behind HOME/media", exc)
                finally:
                    self._pictures_due = False
                    self.lock.release()
            finally:
                self._heal_lock.release()
        self.refresh()
        return True

    def warm_pictures(self) -> threading.Thread | None:
        """``pictures_current`` in the background (a server, once it answers), so the first
        request for visual groups seldom waits for it; None when there is nothing to do."""
        if not self._pictures_due:
            return None
        thread = threading.Thread(target=self.pictures_current, name="nivl-pictures", daemon=True)
        self._pictures_thread = thread
        thread.start()
        return thread

    def _update(
        self, *, rebuild: bool = False, media: Path | None = None, early: Any = None
    ) -> derived.StageRun:
        """``derived.update`` with this home's built-in vectors (the caller holds the lock)."""
        if media is not None:
            self._pictures_due = False
        return derived.update(
            self.store,
            self.index,
            rebuild=rebuild,
            media=media,
            vectors=self.builtin,
            embed=self._static_embed,
            early=early,
        )

    def _behind(self) -> dict[str, int]:
        stages = derived.behind(self.store, self.index, self.builtin)
        return {name: n for name, n in stages.items() if n}

    def _open_builtin(self) -> MatrixIndex:
        """The built-in model's vectors; a damaged file is set aside and embedded again."""
        path = self.settings.home / BUILTIN_VECTORS_FILE
        mark = f"{derived.MARKS['vectors']}:{embeddings.BUILTIN_MODEL}"
        dims = embeddings.BUILTIN_DIMENSIONS
        try:
            return MatrixIndex(path, dimensions=dims, mark=mark)
        except SearchIndexError as exc:
            if self.read_only:
                self._note(f"the vectors in {path} cannot be used ({exc}); using a copy in memory")
                return MatrixIndex(None, dimensions=dims, mark=mark)
            self._note(f"the vectors in {path} are damaged ({exc}); embedding them again")
            os.replace(path, path.with_suffix(".damaged"))
            return MatrixIndex(path, dimensions=dims, mark=mark)

    def _static_embed(self) -> Embed:
        return self.static_embedder().embed

    def static_embedder(self) -> StaticEmbedder:
        """The built-in model, loaded on first use (a quarter of a second)."""
        with self._static_lock:
            if self._static is None:
                self._static = embeddings.builtin_embedder()
            return self._static

    def _semantic(self) -> tuple[VectorIndex | MatrixIndex, Callable[[str], Any], str]:
        """The vectors, query embedder and model name semantic and hybrid search use.

        The extra's model when it is installed and has embedded every record (``nivl
        embed``), else the built-in one, which is always complete. A query is always
        embedded by the model that made the vectors it is compared with.
        """
        if self.semantic_model() == embeddings.MODEL_NAME:
            return self.vectors(), self.embedder().embed_query, embeddings.MODEL_NAME
        return self.builtin, self.static_embedder().embed_query, embeddings.BUILTIN_MODEL

    def semantic_model(self) -> str:
        """The model semantic and hybrid searches use now (without loading either)."""
        if embeddings.available() and self.vectors_path.exists():
            vectors = self.vectors()
            if len(vectors) and len(vectors) >= self.store.count():
                return embeddings.MODEL_NAME
        return embeddings.BUILTIN_MODEL

    # --- reading ----------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._view.revision

    def view(self) -> View:
        """The current revision and snapshot: one request reads only this."""
        return self._view

    def fresh_view(self) -> View | None:
        """The current view if ``refresh`` would keep it (the index's mark unmoved, nothing
        to heal), else None: one row read, so an event loop may ask (web/fastpath.py)."""
        if self._damaged or self.index.indexed_rev(self.store) != self._view.revision:
            return None
        return self._view

    def refresh(self) -> int:
        """See what another process (an import, a harvest) committed; returns the revision.

        Writers move the index's mark only after its commit, so reloading when the mark
        moves always shows the new documents; answers can be cached per revision.
        A snapshot already handed out stays valid: the swap never changes it mid-request.
        """
        if self._damaged:
            self._heal()
        revision = self.index.indexed_rev(self.store)
        if revision != self._view.revision:
            with self._view_lock:
                if revision != self._view.revision:
                    self.index.reload()
                    self._view = View(revision, self.index.snapshot())
        for vectors in (self._vectors, self.builtin):  # what ``nivl embed``, an import saved
            try:
                if vectors is not None:
                    vectors.reload_if_changed()
            except SearchIndexError as exc:  # damaged on disk: keep the vectors loaded
                log.warning("%s; searching the vectors loaded before until the next open", exc)
        return revision

    def _heal(self) -> None:
        """Rebuild an index found damaged while serving, if this process may write now."""
        if self.read_only or not self._heal_lock.acquire(blocking=False):
            return
        try:
            if not self.lock.acquire(brief=True):
                return  # a writer has the home; the next request tries again
            try:
                log.warning(
                    "the search index in %s is damaged; rebuilding it from the store",
                    self.settings.index_path,
                )
                self.index = derived.rebuild_index(self.settings.index_path, self.store)
                with self._view_lock:
                    self._view = View(self.index.indexed_rev(self.store), self.index.snapshot())
                self._damaged = False
            finally:
                self.lock.release()
        finally:
            self._heal_lock.release()

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(
            default_page_size=s.default_page_size,
            max_page_size=s.max_page_size,
            max_result_window=s.max_result_window,
            max_query_length=s.max_query_length,
        )

    def search(self, request: SearchRequest, *, view: View | None = None) -> SearchResult:
        """Lexical (BM25), or semantic/hybrid over ``q`` when asked and there is text to embed."""
        if request.collapse == "visual" and self.pictures_current():
            view = None  # the revision that has them (once a process: a cached answer of the
            # revision before may hold them too, and no request asks for that one again)
        snapshot = (view or self._view).snapshot
        try:
            return self._search(snapshot, request)
        except SearchIndexError as exc:
            self._damaged = self._damaged or exc.damaged
            raise

    def suggest(self, q: str, *, view: View | None = None) -> list[Suggestion]:
        """Completions of ``q`` as typed (suggest.py), from one revision's vocabulary."""
        if len(q) > self.settings.max_query_length:
            raise InvalidParameter(
                "q", f"longer than {self.settings.max_query_length} characters ({len(q)})"
            )
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in q):
            raise InvalidParameter("q", "contains a control character")
        snapshot = (view or self._view).snapshot
        try:
            return snapshot.completions().suggest(q, along=snapshot.words_along)
        except SearchIndexError as exc:
            self._damaged = self._damaged or exc.damaged
            raise

    def _search(self, snapshot: Snapshot, request: SearchRequest) -> SearchResult:
        if request.mode == "lexical" or not text_terms(request.q):
            return search(self.store, snapshot, request)
        from .hybrid import rank

        vectors, embed_query, model = self._semantic()
        if len(vectors) == 0:  # nothing embedded (an empty home): hybrid is BM25 alone
            return search(self.store, snapshot, request)
        builtin = model == embeddings.BUILTIN_MODEL
        weight = BUILTIN_DENSE_WEIGHT if builtin else DENSE_WEIGHT
        knows = self.static_embedder().knows if builtin else None
        ranking = rank(
            snapshot,
            vectors,
            embed_query(self._meant(snapshot, request, knows)),
            request,
            mode=request.mode,
            dense_weight=weight,
        )
        return search(self.store, snapshot, request, ranking=ranking)

    @staticmethod
    def _meant(
        snapshot: Snapshot, request: SearchRequest, knows: Callable[[str], bool] | None = None
    ) -> str:
        """What to embed: ``q``, or its typo correction when a word of it matched nothing
        (``apolo 11 lanch`` → ``apollo 11 launch``): the vectors know no misspellings.
        But ``q`` as typed when the model ``knows`` every word of it: a word the records
        lack is not a typo to the model (``toy brick`` is not ``toy bric``)."""
        from .query import plan_query

        _query, matched = snapshot.compile_matching(plan_query(request))
        if matched is not None and matched.corrected and matched.suggestion:
            if knows is not None and all(knows(word) for word in text_terms(request.q)):
                return request.q
            return matched.suggestion
        return request.q

    def similar(self, nasa_id: str, request: SearchRequest) -> SearchResult:
        """Records nearest to ``nasa_id``'s vector (its own text embedded if not stored yet)."""
        from .hybrid import rank
        from .records import parse_item

        snapshot = self._view.snapshot
        vectors, embed_query, _model = self._semantic()
        if not len(vectors):  # nothing embedded (an empty home)
            return self._similar_by_words(snapshot, nasa_id, request)
        row_id = snapshot.row_of(nasa_id)
        if row_id is None:
            raise RecordNotFound(f"No record with nasa_id {shown(nasa_id)}")
        vector = vectors.vector(row_id)
        if vector is None:
            raw = self.store.get_raw(nasa_id)
            vector = embed_query(embeddings.record_text(parse_item(_loads(raw))))
        request = dataclasses.replace(request, q="", mode="semantic")
        ranking = rank(snapshot, vectors, vector, request, mode="semantic", exclude={row_id})
        return search(self.store, snapshot, request, ranking=ranking)

    def _similar_by_words(
        self, snapshot: Snapshot, nasa_id: str, request: SearchRequest
    ) -> SearchResult:
        """With nothing embedded: the records sharing most title and keyword words."""
        from .query import plan_query, text_terms
        from .records import parse_item

        record = parse_item(_loads(self.store.get_raw(nasa_id)))
        words = text_terms(" ".join((record.title, *record.keywords)).replace('"', " "))
        request = dataclasses.replace(request, q="", mode="lexical")
        ranking = snapshot.similar_rows(
            words[:24], plan_query(request), exclude_nasa_id=nasa_id, limit=200
        )
        return search(self.store, snapshot, request, ranking=ranking)

    def item(self, nasa_id: str) -> str:
        """The stored item's raw JSON (``RecordNotFound`` for an unknown id)."""
        return self.store.get_raw(nasa_id)

    def asset(self, nasa_id: str) -> dict[str, str | None]:
        """The stored asset documents of ``nasa_id``: manifest, metadata and captions URLs."""
        return self.store.get_asset(nasa_id)

    # --- asset manifests and media files (media.py) ---------------------------------

    def upstream(self) -> Upstream:
        """The read-through client: the harvester's retries and pacing, but short waits,
        since a request is waiting on it."""
        with self._upstream_lock:
            if self._upstream is None:
                from .upstream import Upstream

                self._upstream = Upstream(
                    self.settings.upstream_url, timeout=5.0, retries=2, backoff=0.2, max_wait=5.0
                )
            return self._upstream

    def asset_manifest(self, nasa_id: str) -> str:
        """The stored ``/asset`` manifest, else upstream's (stored for next time): a
        read-through cache. ``UpstreamUnavailable`` when upstream cannot be reached."""
        stored = self.store.get_asset(nasa_id)["manifest"]
        if stored is not None:
            return stored
        self.store.get_raw(nasa_id)  # RecordNotFound for an id this mirror does not hold
        url = self.settings.upstream_url
        try:
            text = self.upstream().asset_manifest(nasa_id)
        except UpstreamError as exc:
            raise UpstreamUnavailable(
                f"No asset manifest for {shown(nasa_id)} in this mirror, and upstream ({url}) "
                f"could not be reached ({exc}). Run 'nivl harvest --all' (which fetches "
                "manifests) while online, or point NIVL_UPSTREAM_URL at a reachable mirror."
            ) from exc
        if text is None:
            raise RecordNotFound(f"No asset manifest for {shown(nasa_id)} here or upstream ({url})")
        self.remember_manifest(nasa_id, text)
        return text

    def remember_manifest(self, nasa_id: str, text: str) -> None:
        """Store a fetched manifest if this home may be written now; else serve it only."""
        if self.read_only or not _is_manifest(text):
            return
        try:
            with self._remember_lock, self.lock.hold(wait=2.0, brief=True):
                self.store.put_asset(nasa_id, manifest=text)
        except NivlError as exc:  # another writer, a full disk: the answer still stands
            log.info("not storing the manifest of %s: %s", nasa_id, exc)

    def local_media(self, nasa_id: str) -> dict[str, str]:
        """Each completely mirrored file of ``nasa_id`` → its ``/media/...`` URL path."""
        from .media import local_files

        return local_files(self.settings.media_path, nasa_id)

    def media_file(self, folder: str, filename: str) -> Path:
        """The mirrored file ``/media/<folder>/<filename>`` serves (``RecordNotFound``)."""
        from .media import served_file

        return served_file(self.settings.media_path, folder, filename)

    def media_status(self) -> dict[str, Any]:
        from .media import usage

        used = usage(self.settings.media_path)
        return {
            "folder": str(self.settings.media_path),
            "records": self.store.count(),
            "manifests": self.store.count_assets(),
            **dataclasses.asdict(used),
        }

    def media_targets(self, request: SearchRequest | None) -> list[str]:
        """The nasa_ids a ``media fetch`` covers: every record, or a search's hits."""
        if request is None:
            return [row.nasa_id for row in self.store.iter_rows()]
        return [record.nasa_id for record in self.records(request)[0]]

    def _pages(self, request: SearchRequest, limit: int | None = None) -> Iterator[SearchResult]:
        """A search's pages, one after another, as deep as a search may reach (or as
        ``limit`` hits need)."""
        limits = self.limits
        size = limits.max_page_size if limit is None else min(limit, limits.max_page_size)
        page = 1
        while page * size <= limits.max_result_window:
            result = self.search(dataclasses.replace(request, page=page, page_size=size))
            yield result
            if not result.has_next:
                break
            page += 1

    def records(
        self, request: SearchRequest, *, limit: int | None = None
    ) -> tuple[list[Record], int]:
        """A search's hits as records, page after page up to ``limit`` (else as deep as a
        search may reach), and how many hits there are in all."""
        wanted = self.limits.max_result_window if limit is None else limit
        records: list[Record] = []
        total = 0
        for result in self._pages(request, limit):
            total = result.total_hits
            records.extend(parse_item(_loads(hit.raw), raw=hit.raw) for hit in result.hits)
            if len(records) >= wanted:
                break
        return records[:wanted], total

    def search_raws(self, request: SearchRequest) -> Iterator[str]:
        """Every hit of a search (as far as the result window reaches), in its order."""
        for result in self._pages(request):
            for hit in result.hits:
                yield hit.raw

    def record(self, nasa_id: str) -> Record:
        """The stored record, parsed (``RecordNotFound`` for an unknown id)."""
        raw = self.item(nasa_id)
        return parse_item(_loads(raw), raw=raw)

    def cite(self, nasa_id: str, style: str, accessed: date, *, html: bool = False) -> str:
        """One record cited in ``style`` (cite.py), accessed on ``accessed``."""
        from .cite import cite

        return cite(self.record(nasa_id), style, accessed, html=html)

    def last_written(self, result: SearchResult) -> dict[int, str]:
        """Row id → when the store last wrote each hit's record (a feed's ``updated``)."""
        return self.store.updated_map([hit.row_id for hit in result.hits])

    def fetch_media(
        self,
        client: Upstream,
        nasa_ids: Sequence[str],
        *,
        size: str,
        max_bytes: int | None = None,
        progress: FetchProgress | None = None,
    ) -> FetchResult:
        """Download ``size``'s rendition of each record into ``HOME/media`` (media.py),
        fetching missing manifests first (and storing them, as ``asset_manifest`` does)."""
        import time

        from . import media

        started = time.monotonic()
        result = media.FetchResult(records=len(nasa_ids))
        manifests: list[tuple[str, str]] = []
        missing: list[str] = []
        for nasa_id in nasa_ids:
            stored = self.store.get_asset(nasa_id)["manifest"]
            if stored is None:
                missing.append(nasa_id)
            else:
                manifests.append((nasa_id, stored))
        for nasa_id, text, failure in media.fetch_manifests(
            client, missing, self.remember_manifest
        ):
            if failure is not None:
                result.failed.append((f"/asset/{nasa_id}", failure))
            elif text is not None:
                result.manifests_fetched += 1
                manifests.append((nasa_id, text))
        root = self.settings.media_path
        jobs, result.already, result.no_rendition = media.plan(
            root, manifests, size, self.settings.assets_url
        )
        result.wanted = len(jobs) + result.already
        if progress is not None:
            progress("files", len(jobs))
        media.fetch(
            client, jobs, result, max_bytes=max_bytes, progress=progress,
            used=media.usage(root).bytes + media.usage(root).partial_bytes,
        )  # fmt: skip
        with self.lock.hold(wait=HEAL_WAIT):  # hash what arrived; regroup the pictures
            run = self._update(media=root)
        result.hashed = run.hashes.hashed
        result.unhashed.extend(run.hashes.unreadable)
        self.refresh()
        result.seconds = time.monotonic() - started
        return result

    def count(self) -> int:
        """Records in the store (remembered while no write came: ``Store.known_count``)."""
        return self.store.known_count()

    def num_indexed(self) -> int:
        """Documents in the index as requests see it now."""
        return self._view.snapshot.num_docs()

    def stats(self) -> dict[str, Any]:
        self.pictures_current()  # the home's figures, every stage current
        return self.store.stats()

    def has_groups(self, level: str) -> bool:
        """Whether any group of two or more exists at ``level``."""
        if level == "visual":
            self.pictures_current()
        return self.store.has_groups(level)

    def hidden_by_level(self) -> dict[str, int]:
        self.pictures_current()
        return self.store.hidden_by_level()

    def export(
        self,
        fmt: str,
        out: IO[bytes],
        request: SearchRequest | None = None,
        *,
        accessed: date | None = None,
    ) -> int:
        """Every record, or a search's hits (in its order), in ``fmt`` (exports.py)."""
        from .exports import export

        raws = None if request is None else self.search_raws(request)
        return export(self.store, fmt, out, raws=raws, accessed=accessed)

    def status(self) -> dict[str, Any]:
        """Whether searches can be answered now (``ok``), with counts and stale stages."""
        figures: dict[str, Any] = {"ok": False, "read_only": self.read_only}
        try:
            snapshot = self._view.snapshot
            figures["records"] = self.store.count()
            figures["indexed"] = snapshot.num_docs()
            hits = snapshot.search(snapshot.compile(_PROBE), limit=1)
            self.store.raw_by_ids(hits.row_ids)
            if self.index.path is not None and not self.read_only:
                verify_files(self.index.path, remember=True)  # only files not seen before
            figures["behind"] = derived.behind(self.store, self.index, self.builtin)
            figures["revision"] = self._view.revision
            figures["ok"] = not self._damaged
        except SearchIndexError as exc:
            self._damaged = self._damaged or exc.damaged
            figures["problem"] = str(exc)
        except StoreError as exc:
            figures["problem"] = str(exc)
        if self._damaged:
            figures["problem"] = figures.get("problem") or "the search index is damaged"
        return figures

    # --- the semantic stage (needs the [semantic] extra) ------------------------

    @property
    def semantic_revision(self) -> int:
        """Changes when the index or the vectors do: a cache key for semantic answers."""
        mtime = self._vectors.mtime if self._vectors is not None else 0.0
        return hash((self.revision, mtime, self.builtin.mtime, len(self.builtin)))

    @property
    def vectors_path(self) -> Path:
        return self.settings.home / VECTORS_FILE

    def vectors(self) -> VectorIndex:
        """The vector index, opened on first use; ``SemanticUnavailable`` without the extra.

        A file that cannot be loaded is set aside (where the home may be written) and
        its stage's mark reset, so the next ``nivl embed`` embeds everything again;
        meanwhile hybrid search ranks by BM25 alone.
        """
        with self._vectors_lock:
            if self._vectors is None:
                from .vector_index import VectorIndex

                try:
                    self._vectors = VectorIndex(self.vectors_path)
                except SearchIndexError as exc:
                    self._vectors = self._heal_vectors(exc)
            return self._vectors

    def _heal_vectors(self, problem: SearchIndexError) -> VectorIndex:
        from .vector_index import VectorIndex

        if not self.read_only and self.lock.acquire(brief=True):
            try:
                os.replace(self.vectors_path, self.vectors_path.with_suffix(".damaged"))
                for key in (derived.MARKS["vectors"], "embedded_cursor"):
                    self.store.set_meta(key, "")
            finally:
                self.lock.release()
            self._note(
                f"the vector index {self.vectors_path} is damaged ({problem}); set it aside:"
                " 'nivl embed' embeds the records again (BM25 ranks them meanwhile)"
            )
        else:
            self._note(f"the vector index {self.vectors_path} cannot be used ({problem})")
        return VectorIndex(None)

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

        with self.lock.hold():
            return vectors.sync(self.store, embed, rebuild=rebuild, progress=progress)

    def semantic_status(self) -> dict[str, Any]:
        """The model semantic search uses, and how many records each model has embedded.

        ``available``/``embedded`` are the [semantic] extra's (as before the built-in
        model); ``builtin`` counts the built-in model's vectors.
        """
        status: dict[str, Any] = {
            "model": self.semantic_model(),
            "builtin": {"model": embeddings.BUILTIN_MODEL, "embedded": len(self.builtin)},
        }
        if not embeddings.available():
            return {"available": False, "embedded": 0, **status}
        embedded = len(self.vectors()) if self.vectors_path.exists() else 0
        return {"available": True, "embedded": embedded, **status}

    # --- writing: the store, then the derived stages -----------------------------

    def import_paths(
        self, paths: Iterable[Path], *, on_bytes: Callable[[int], object] | None = None
    ) -> ImportSummary:
        paths = list(paths)
        with self.lock.hold():
            # the vectors stage beside the store stage, when the files are big enough
            early = derived.vectors_beside_import(
                self.store, self.builtin, self._static_embed, paths
            )
            try:
                summary = ingest_paths(
                    self.store,
                    paths,
                    on_bytes=on_bytes,
                    max_record_bytes=self.settings.max_record_kb * 1024,
                    on_written=early.written if early is not None else None,
                )
                run = self._update(early=early)
            except BaseException:
                if early is not None:
                    early.stop()
                raise
        summary.seconds.update(run.seconds)
        self.refresh()
        return summary

    def harvest(self, client: Upstream, **options: Any) -> HarvestResult:
        """Mirror upstream into the store (see ``harvest.harvest``), then derive."""
        from .harvest import harvest

        with self.lock.hold():
            result = harvest(self.store, client, **options)
            result.indexed = self._update().rows["index"]
        self.refresh()
        return result

    def group(self, *, rebuild: bool = False) -> GroupUpdate:
        """Regroup what changed (everything with ``rebuild``), then refresh the index."""
        with self.lock.hold():
            update = update_groups(self.store, rebuild=rebuild)
            self._update()
        self.refresh()
        return update

    def reindex(self, *, rebuild: bool = False) -> int:
        """Bring the index up to date (or rebuild it); returns records (re)indexed."""
        with self.lock.hold():
            count = self.index.sync(self.store, rebuild=rebuild)
            if rebuild:  # the built-in vectors too, afresh from the store
                self.builtin.sync(self.store, self._static_embed(), rebuild=True, batch_size=1024)
        self.refresh()
        return count

    def snapshot(
        self, target: Path, *, replace: bool = False, media: bool = False, wait: float = 300.0
    ) -> SnapshotResult:
        """A consistent copy of this home in ``target`` (snapshot.py), for a replica.

        Taken under the write lock (waiting up to ``wait`` seconds for an import or a
        harvest to finish), after bringing the derived stages up to date, so the copy's
        marks match its store. A read-only home is copied as it is: nothing writes there.
        """
        from . import snapshot

        held = contextlib.nullcontext() if self.read_only else self.lock.hold(wait=wait)
        with held:
            if not self.read_only:
                self._update(media=self.settings.media_path)
            marks = {key: self.store.get_meta(key, "") or "" for key in derived.MARKS.values()}
            return snapshot.write(
                self.store,
                home=self.settings.home,
                target=target,
                index_path=self.settings.index_path,
                vectors_path=self.vectors_path,
                also=(self.settings.home / BUILTIN_VECTORS_FILE,),
                media_path=self.settings.media_path if media else None,
                revision=self.index.indexed_rev(self.store),
                marks=marks,
                replace=replace,
            )

    def group_page(self, group_id: int, *, page: int = 1, page_size: int = 100) -> GroupPage:
        if not 0 <= group_id <= MAX_GROUP_ID:  # SQLite would overflow: no such group
            raise RecordNotFound(f"No group with id {group_id}")
        self.pictures_current()  # it may be a visual group
        return group_page(self.store, group_id, page=page, page_size=page_size)

    def album_spellings(self, name: str, *, limit: int = 500) -> list[str]:
        """Albums whose name differs from ``name`` only by case, commonest first: albums are
        case-sensitive (as upstream), so a 404 for ``apollo`` can name ``Apollo``."""
        from collections import Counter

        import orjson

        from .query import TextClause
        from .records import parse_item

        words = text_terms(name.replace('"', " "))
        if not words:
            return []
        plan = QueryPlan(text=(TextClause(("album_text",), words),))
        snapshot = self._view.snapshot
        hits = snapshot.search(snapshot.compile(plan), limit=limit)
        folded = name.casefold()
        found: Counter[str] = Counter()
        for raw in self.store.raw_by_ids(hits.row_ids):
            for album in parse_item(orjson.loads(raw)).album:
                if album != name and album.casefold() == folded:
                    found[album] += 1
        return [album for album, _count in found.most_common(5)]

    def dupes(self, *, level: str | None = None, min_size: int = 2, limit: int = 20) -> DupesReport:
        if level in (None, "visual"):
            self.pictures_current()
        return dupes(self.store, level=level, min_size=min_size, limit=limit)

    def count_pictures(self) -> int:
        """Records whose mirrored picture is hashed (the visual level's material)."""
        self.pictures_current()
        return self.store.count_pictures()

    def is_empty(self) -> bool:
        """No record yet: every write gives its rows a rev of 1 or more (no count: seconds
        cold at 1M)."""
        return self.store.max_rev() == 0

    def close(self) -> None:
        if self._pictures_thread is not None:
            self._pictures_thread.join()  # it writes the store: not after it is closed
        if self._upstream is not None:
            self._upstream.close()
        self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unhashed_lines(unreadable: Sequence[tuple[str, str]], *, most: int = 5) -> list[str]:
    """One line per mirrored file that is no readable picture (its record stays out of
    the visual groups), at most ``most`` and then a count of the rest."""
    lines = [f"not hashed ({nasa_id}): {problem}" for nasa_id, problem in unreadable[:most]]
    if len(unreadable) > most:
        lines.append(f"not hashed: {len(unreadable) - most} more mirrored files")
    return lines


def _writable(home: Path) -> bool:
    """Whether this process may write to the home (creating it if it is not there yet)."""
    if not home.exists():
        try:
            home.mkdir(parents=True)
        except OSError:
            return False
        return True
    db = home / "nivl.db"
    if not os.access(home, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
        return False
    try:  # a read-only mount refuses even where the mode bits allow
        with tempfile.NamedTemporaryFile(dir=home, prefix=".nivl-write-probe-"):
            pass
    except OSError:
        return False
    return True


_PROBE = QueryPlan()  # every document: can the index answer at all


def sample_paths() -> list[Path]:
    """The bundled sample's files (built by scripts/build_sample.py)."""
    folder = importlib.resources.files("nivl") / "sample"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".jsonl.gz"))


def _is_manifest(text: str) -> bool:
    try:
        document = _loads(text)
    except ValueError:
        return False
    collection = document.get("collection") if isinstance(document, dict) else None
    return isinstance(collection, dict) and isinstance(collection.get("items"), list)


def _loads(raw: str) -> Any:
    import orjson

    return orjson.loads(raw)
