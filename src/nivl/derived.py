"""The one owner of derived state: groups, the search index and the vectors.

The store is the source of truth; everything here can be rebuilt from it. Each
derived structure is a *stage* with its own mark in the store's meta table,
keyed by the stage's name (never by a path, which has many spellings): the
highest store ``rev`` it has taken in. Stages run in order, because each reads
what the one before wrote, except the built-in vectors, which read only the
store's texts: with thousands of rows to embed they run in a forked process
beside groups and index (``_VectorsBeside``; for an import, beside the store stage
already: ``vectors_beside_import``), so both cores work:

    store ──groups──▶ group ids (groups.py)   mark ``grouped_rev``
          ──index───▶ tantivy (search_index)  mark ``indexed_rev`` (the group ids are fields)
          ──vectors─▶ built-in model's matrix (vector_index.MatrixIndex)
                                              mark ``embedded_rev:<model>`` (fast: every write)
    and, apart, the [semantic] extra's usearch file: mark ``embedded_rev`` (``nivl embed``)

and, first of all, the pictures (pictures.py), whose source is ``HOME/media``:

    media ──hashes──▶ picture_hashes          counter ``hashes_rev`` (a file that changed)
          ──visual──▶ visual group ids         mark ``visual_rev``; changed rows get a new
                                               ``rev``, so the index stage re-reads them

Sources (``ingest``, ``harvest``) only write to the store; ``Library`` calls
``update`` after every write and on open. Writers hold the home's write lock
(``WriteLock``), so two processes never write at once and the second is told so
before it writes anything. A damaged index is rebuilt from the store
(``open_index``); where nothing may be written, a copy is built in memory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

from .embeddings import stored_text
from .errors import HomeBusy, SearchIndexError, StoreError
from .groups import update_groups, watch_parent
from .pictures import HashUpdate, update_hashes, update_visual
from .search_index import SearchIndex
from .store import Store, StoredRow, UpsertResult
from .vector_index import Embed, MatrixIndex, SyncedVectors

#: Stage name → the store meta key holding its mark (``vectors`` is the extra's; the
#: built-in model's stage is keyed by its model name: ``MatrixIndex.mark``).
MARKS = {
    "groups": "grouped_rev",
    "index": SearchIndex.mark_key,
    "vectors": "embedded_rev",
    "visual": "visual_rev",
}
LOCK_FILE = "write.lock"


@dataclass
class StageRun:
    """What one ``update`` did: rows taken in and wall seconds per stage."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    hashes: HashUpdate = field(default_factory=HashUpdate)
    #: Stages that ran in a process of their own beside the others (``_VectorsBeside``).
    beside: list[str] = field(default_factory=list)


def update(
    store: Store,
    index: SearchIndex,
    *,
    rebuild: bool = False,
    progress: Callable[[int], object] | None = None,
    media: Path | None = None,
    vectors: SyncedVectors | None = None,
    embed: Callable[[], Embed] | None = None,
    early: _VectorsBeside | None = None,
) -> StageRun:
    """Bring the pictures' hashes (when ``media``, the home's media folder, is given) and
    visual groups, then groups, the index, then the built-in vectors up to date (the caller
    holds the lock).

    ``vectors`` is the built-in model's index and ``embed`` gives its embedding function
    (loaded only when there is something to embed). ``early`` is that stage already
    running beside the store stage that just ended (``vectors_beside_import``). The
    extra's vectors are not made here: its model takes minutes per thousand records, so
    ``nivl embed`` runs it.
    """
    with store.plain_reads():  # each stage reads each row once: no mapped pages to keep
        return _update(store, index, rebuild, progress, media, vectors, embed, early)


def _update(
    store: Store,
    index: SearchIndex,
    rebuild: bool,
    progress: Callable[[int], object] | None,
    media: Path | None,
    vectors: SyncedVectors | None,
    embed: Callable[[], Embed] | None,
    early: _VectorsBeside | None,
) -> StageRun:
    run = StageRun()
    started = time.perf_counter()
    if early is not None:  # before any stage here gives a row a new rev
        early.store_done()
    if media is not None:
        run.hashes = update_hashes(store, media)
        run.rows["hashes"] = run.hashes.hashed + run.hashes.removed
    run.rows["visual"] = update_visual(store, rebuild=rebuild)
    pictured = time.perf_counter()
    pending = 0
    if vectors is not None and embed is not None and early is None:
        pending = vectors.pending(store, rebuild=rebuild)
    beside = early
    if (
        beside is None
        and isinstance(vectors, MatrixIndex)
        and embed is not None
        and _can_fork(vectors, pending)
    ):
        with contextlib.suppress(OSError):  # no fork to be had (memory, process limit): in order
            beside = _VectorsBeside(store, vectors, embed, rebuild=rebuild)
    try:
        index_mark = 0 if rebuild else index.indexed_rev(store)  # it reads the rows above
        run.rows["groups"] = update_groups(store, rebuild=rebuild, indexed=index_mark).records
        grouped = time.perf_counter()
        run.rows["index"] = index.sync(store, rebuild=rebuild, progress=progress)
        indexed = time.perf_counter()
    except BaseException:
        if beside is not None:
            beside.stop()
        raise
    run.seconds = {
        "pictures": pictured - started,
        "group": grouped - pictured,
        "index": indexed - grouped,
    }
    if vectors is not None and embed is not None:
        if beside is not None:
            run.rows["vectors"] = beside.finish()
            run.beside.append("vectors")
            run.seconds["vectors"] = time.perf_counter() - pictured  # it ran beside the others
        else:
            if rebuild or pending:
                run.rows["vectors"] = vectors.sync(
                    store, embed(), rebuild=rebuild, batch_size=1024, save_every=float("inf")
                )
            run.seconds["vectors"] = time.perf_counter() - indexed
        if isinstance(vectors, MatrixIndex) and vectors.path and vectors.path.exists():
            drop_former_vectors(vectors.path)
    return run


def drop_former_vectors(current: Path) -> None:
    """Delete the vectors of former built-in models beside ``current``: they are never
    read again once the current model's are complete (hundreds of MB at 300k)."""
    for path in current.parent.glob("vectors.*.npy"):
        if path.name != current.name:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


#: Rows to embed from which the vectors stage runs in a process of its own, beside the
#: groups and index stages (it reads only the store's texts): below it, a fork costs more
#: than it gives.
BESIDE_ROWS = 2000


def _can_fork(vectors: MatrixIndex, pending: int) -> bool:
    """Whether the vectors stage may run in a forked process now.

    Only for a file (the memory copy of a read-only home lives in this process), on a
    system that forks, and with no other Python thread running here: a thread inside
    SQLite or a lock at the moment of the fork could leave the child stuck.
    """
    return (
        pending >= BESIDE_ROWS
        and vectors.path is not None
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
    )


#: Bytes of import files from which the vectors stage starts beside the store stage:
#: about ``BESIDE_ROWS`` records of NASA's (the synthetic ones are 3.5 kB each).
EARLY_BYTES = 4 * 2**20


def vectors_beside_import(
    store: Store, vectors: SyncedVectors, embed: Callable[[], Embed], paths: Sequence[Path]
) -> _VectorsBeside | None:
    """The built-in vectors stage, forked before an import writes its first batch, or None.

    The store stage runs alone otherwise, on little more than one core (the parsing
    thread holds the GIL; SQLite's writing lets go of it): the child embeds each batch
    as it is committed, and ``update`` (given it as ``early``) tells it when the store
    stage ended and which rows it changed in place, to read again. Forked before the
    writer thread starts, so no thread of this process is inside SQLite at the fork.
    """
    if not isinstance(vectors, MatrixIndex) or store.get_meta(vectors._cursor_key(), ""):
        return None  # a cursor: an interrupted pass of its own, resumed in order
    try:
        size = sum(path.stat().st_size for path in paths)
    except OSError:
        return None  # the import says what is wrong with the file
    if size < EARLY_BYTES or not _can_fork(vectors, BESIDE_ROWS):
        return None
    with contextlib.suppress(OSError):
        return _VectorsBeside(store, vectors, embed, rebuild=False, early=True)
    return None


class _VectorsBeside:
    """The built-in vectors stage in a forked process, while this one groups and indexes.

    The child opens the store anew (never this process's connections), embeds every row
    changed since the stage's mark and saves the matrix file and the mark, exactly as the
    stage in order would; ``finish`` waits for it, maps the new file and raises here what
    failed there. Killed half way (either process: the child watches a pipe and dies with
    its parent), it leaves the old file and mark, and the next update embeds again.

    Grouping gives rows whose group ids changed a new ``rev`` meanwhile: the child takes
    those rows too (``later``), and since only this update writes while it holds the
    write lock, ``finish`` moves the mark over those revs, which changed no text.

    The child writes nothing to the store: it reads it read-only and hands back the marks
    it would have written (``_MarksKept``), which ``finish`` writes. Done as it finished,
    its write could wait behind this process's grouping or indexing transaction and give
    up after the store's busy timeout ("database is locked"), failing the import.
    """

    def __init__(
        self,
        store: Store,
        vectors: MatrixIndex,
        embed: Callable[[], Embed],
        *,
        rebuild: bool,
        early: bool = False,
    ) -> None:
        self.store = store
        self.vectors = vectors
        context = multiprocessing.get_context("fork")
        self._read, self._write = os.pipe()
        self._results, sender = context.Pipe(duplex=False)
        self._told: Connection | None = None
        self.top = store.max_rev()
        #: Rows the store stage changed in place (their nasa_ids), for an early child.
        self.updated: list[str] = []
        heard = None
        if early:
            heard, self._told = context.Pipe(duplex=False)
        try:
            target = (
                (_embed_early, (sender, heard, store.path, vectors, embed, store.max_id()))
                if heard is not None
                else (_embed_beside, (sender, store.path, vectors, embed, rebuild))
            )
            self.process = self._start(context, *target)
        except BaseException:
            self._close()
            raise
        finally:
            sender.close()
            if heard is not None:
                heard.close()

    def written(self, result: UpsertResult) -> None:
        """One batch of the store stage is committed (in its writer thread)."""
        self.updated.extend(result.updated_ids)

    def store_done(self) -> None:
        """Tell an early child that the store stage ended, at which rev, and what to read
        again; the mark it hands back is that rev."""
        self.top = self.store.max_rev()
        if self._told is not None:
            with contextlib.suppress(OSError):  # it ended already: ``finish`` says why
                self._told.send((self.top, self.updated))
            self.updated = []

    def _start(
        self, context: Any, target: Callable[..., None], args: tuple[Any, ...]
    ) -> multiprocessing.process.BaseProcess:
        process: multiprocessing.process.BaseProcess = context.Process(
            target=target, args=(*args, self._read, self._write), name="nivl-vectors", daemon=True
        )
        process.start()
        return process

    def finish(self) -> int:
        """Wait for the child; its rows embedded, or its error raised here."""
        try:
            outcome: tuple[str, Any] = self._results.recv()
        except EOFError:  # it died without a word (killed, out of memory)
            outcome = ("error", StoreError("the vectors stage's process ended early"))
        finally:
            self.process.join()
            self._close()
        kind, value = outcome
        if kind == "error":
            raise value if isinstance(value, BaseException) else StoreError(str(value))
        rows, marks = value
        self.vectors.reload_if_changed()
        for key, mark in marks.items():
            self.store.set_meta(key, mark)
        if int(self.store.get_meta(self.vectors.mark, "0") or 0) == self.top:
            self.store.set_meta(self.vectors.mark, str(self.store.max_rev()))
        return int(rows)

    def stop(self) -> None:
        """End the child now (this update failed): its stage stays as it was."""
        self.process.kill()
        self.process.join()
        self._close()

    def _close(self) -> None:
        self._results.close()
        if self._told is not None:
            self._told.close()
            self._told = None
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._read = self._write = -1


def _embed_beside(
    results: Connection,
    path: Path,
    vectors: MatrixIndex,
    embed: Callable[[], Embed],
    rebuild: bool,
    read: int,
    write: int,
) -> None:
    """In the child: the vectors stage against a read-only store connection of its own."""
    watch_parent(read, write)
    try:
        store = _MarksKept(path)
        try:
            every = float("inf")
            rows = vectors.sync(
                store, embed(), rebuild=rebuild, batch_size=1024, save_every=every, later=True
            )
        finally:
            store.close()
    except BaseException as exc:
        try:
            results.send(("error", exc))
        except Exception:  # an exception that does not pickle: its words, then
            results.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    results.send(("ok", (rows, store.kept)))


def _embed_early(
    results: Connection,
    heard: Connection,
    path: Path,
    vectors: MatrixIndex,
    embed: Callable[[], Embed],
    last_old: int,
    read: int,
    write: int,
) -> None:
    """In the child: the vectors stage beside the store stage (``vectors_beside_import``).

    First the rows there before the import that the stage's mark has not taken (row ids up
    to ``last_old``), then each new row as the store stage commits it (new rows have
    higher ids), until the parent says the store stage ended; then the rows it changed in
    place, read again (read before their change, their text may be the old one).
    """
    watch_parent(read, write)
    try:
        store = _MarksKept(path)
        try:
            rows = _embed_alongside(store, heard, vectors, embed(), last_old)
        finally:
            store.close()
    except BaseException as exc:
        try:
            results.send(("error", exc))
        except Exception:
            results.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    results.send(("ok", (rows, store.kept)))


def _embed_alongside(
    store: _MarksKept, heard: Connection, vectors: MatrixIndex, embed: Embed, last_old: int
) -> int:
    since, _top, _after = vectors._start(store, rebuild=False)
    if since == 0:
        vectors.clear()
    batch: list[tuple[int, str]] = []
    done = 0

    def take(row: StoredRow) -> None:
        nonlocal batch, done
        batch.append((row.id, stored_text(row.raw)))
        if len(batch) >= 1024:
            done += vectors._embed_batch(batch, embed, None)
            batch = []

    for row in store.iter_rows(since_rev=since):
        if row.id > last_old:
            break
        take(row)
    cursor, told = last_old, None
    while True:
        for row in store.iter_rows(after_id=cursor):
            take(row)
            cursor = row.id
        if told is not None:
            break
        if heard.poll(0.05):
            told = heard.recv()  # then once more for the rows committed before it
    top, updated = told
    for row in store.iter_rows_by_nasa_ids(updated):
        take(row)
    if batch:
        done += vectors._embed_batch(batch, embed, None)
    vectors.save()
    store.set_meta(vectors._mark_key(), str(top))
    store.set_meta(vectors._cursor_key(), "")
    return done


class _MarksKept(Store):
    """The vectors process's store: read-only, its meta writes kept for the parent."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, read_only=True, mmap=False)  # it reads each row once
        self.kept: dict[str, str] = {}

    def set_meta(self, key: str, value: str) -> None:
        self.kept[key] = value

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        if key in self.kept:
            return self.kept[key]
        return super().get_meta(key, default)


def behind(
    store: Store, index: SearchIndex, vectors: SyncedVectors | None = None
) -> dict[str, int]:
    """Records each stage (groups, index, built-in vectors) has not taken in yet (0: none)."""
    marks = {
        "groups": int(store.get_meta(MARKS["groups"], "0") or 0),
        "index": index.indexed_rev(store),
    }
    if vectors is not None:  # a mark without its file (a copied home) counts as none
        marks["vectors"] = int(store.get_meta(vectors.mark, "0") or 0) if len(vectors) else 0
    return {name: store.count_rows(since_rev=mark) for name, mark in marks.items()}


#: What a brief holder of the write lock writes in it, and how long a writer outwaits one.
BRIEF_HOLDER = "brief"
BRIEF_WAIT = 30.0


class WriteLock:
    """The home's write lock: ``fcntl.flock`` on ``HOME/write.lock``.

    The kernel drops it when the holder exits, SIGKILL included, so a killed import
    never leaves the home locked. Taken before the first write, so a refused writer
    has written nothing.

    A holder says in the file what it is: ``brief`` for a reader's catch-up, heal or
    remembered manifest, else its pid. A writer refuses at once to wait behind another
    writer (an import can take minutes) but outwaits a brief holder for up to
    ``BRIEF_WAIT`` seconds, so an import beside a running server is not told to try again
    because the server was catching up for a few milliseconds.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / LOCK_FILE
        self._handle: IO[str] | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self, *, wait: float = 0.0, brief: bool = False) -> bool:
        """Take the lock, waiting up to ``wait`` seconds (and behind a brief holder up to
        ``BRIEF_WAIT``); False if another process holds it. ``brief``: this holder is a
        reader's short catch-up, which a writer may wait for."""
        if self._handle is not None:
            self._depth += 1
            return True
        try:
            handle = self.path.open("a")
        except OSError as exc:  # a read-only home (or one this user may not write)
            raise StoreError(f"cannot write to {self.home}: {exc.strerror}") from exc
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    handle.close()
                    raise
                waited = time.monotonic() - start
                behind_brief = not brief and waited < BRIEF_WAIT and self._holder_is_brief()
                if waited >= wait and not behind_brief:
                    handle.close()
                    return False
                time.sleep(0.05)
                continue
            try:
                os.ftruncate(handle.fileno(), 0)
                handle.write(BRIEF_HOLDER if brief else str(os.getpid()))
                handle.flush()
            except OSError:  # a full disk: the lock holds all the same
                pass
            self._handle, self._depth = handle, 1
            return True

    def _holder_is_brief(self) -> bool:
        """Whether the holder said it is brief (an empty file: it is saying so just now)."""
        try:
            said = self.path.read_text(errors="replace").strip()
        except OSError:
            return False
        return said in ("", BRIEF_HOLDER)

    def release(self) -> None:
        if self._handle is None:
            return
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    @contextlib.contextmanager
    def hold(self, *, wait: float = 0.0, brief: bool = False) -> Iterator[None]:
        """The lock for a block, or ``HomeBusy`` (before anything is written)."""
        if not self.acquire(wait=wait, brief=brief):
            raise HomeBusy(f"another nivl process is writing to {self.home}; try again")
        try:
            yield
        finally:
            self.release()


def open_index(
    path: Path,
    store: Store,
    *,
    lock: WriteLock | None,
    note: Callable[[str], object],
    wait: float = 60.0,
) -> SearchIndex:
    """Open the home's index, checking its files; a damaged one is rebuilt from the store.

    Opening needs no lock; rebuilding takes ``lock`` (waiting up to ``wait`` seconds for
    a writer to finish). Without one (nothing may be written: a read-only home) the
    rebuild goes to memory instead, so the home can still be searched.
    """
    read_only = lock is None
    try:
        if lock is not None and not (path / "meta.json").exists():
            # No index to open: a new home, or another process's rebuild between its two
            # renames. Making one takes the lock, so it never races that rebuild (an empty
            # index opened in the gap would be served as the truth).
            with lock.hold(wait=wait, brief=True):
                return SearchIndex(path, verify=True)
        return SearchIndex(path, read_only=read_only, verify=True)
    except SearchIndexError as exc:
        if not exc.damaged and not read_only:
            raise
        problem = exc
    if lock is None:
        if (path / "meta.json").exists():
            note(
                f"the search index in {path} cannot be used ({problem}); the home is "
                "read-only, so searches use a copy built in memory from the store "
                "(run 'nivl index --rebuild' where the home is writable to repair it)"
            )
        index = SearchIndex(None)
        index.sync(store)
        return index
    with lock.hold(wait=wait, brief=True):
        try:  # another process may have rebuilt it while this one waited
            return SearchIndex(path, verify=True)
        except SearchIndexError as exc:
            if not exc.damaged:
                raise
        note(f"the search index in {path} is damaged ({problem}); rebuilding it from the store")
        return rebuild_index(path, store)


def rebuild_index(path: Path, store: Store) -> SearchIndex:
    """A new index from the store, built beside the old one and swapped in by rename."""
    fresh = path.with_name(path.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    index = SearchIndex(fresh)
    index.sync(store, rebuild=True)
    del index  # its files are complete; reopen it under its final name
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.rename(path, old)
    os.rename(fresh, path)
    shutil.rmtree(old, ignore_errors=True)
    return SearchIndex(path)
