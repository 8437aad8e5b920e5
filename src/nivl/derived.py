"""The one owner of derived state: groups, the search index and the vectors.

The store is the source of truth; everything here can be rebuilt from it. Each
derived structure is a *stage* with its own mark in the store's meta table,
keyed by the stage's name (never by a path, which has many spellings): the
highest store ``rev`` it has taken in. Stages run in order, because each reads
what the one before wrote:

    store ──groups──▶ group ids (groups.py)   mark ``grouped_rev``
          ──index───▶ tantivy (search_index)  mark ``indexed_rev`` (the group ids are fields)
          ──vectors─▶ usearch (vector_index)  mark ``embedded_rev`` (slow: ``nivl embed``)

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
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .errors import HomeBusy, SearchIndexError, StoreError
from .groups import update_groups
from .search_index import SearchIndex
from .store import Store

#: Stage name → the store meta key holding its mark.
MARKS = {"groups": "grouped_rev", "index": SearchIndex.mark_key, "vectors": "embedded_rev"}
LOCK_FILE = "write.lock"


@dataclass
class StageRun:
    """What one ``update`` did: rows taken in and wall seconds per stage."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def update(
    store: Store,
    index: SearchIndex,
    *,
    rebuild: bool = False,
    progress: Callable[[int], object] | None = None,
) -> StageRun:
    """Bring groups, then the index, up to the store's latest rev (the caller holds the lock).

    The vectors stage is not run here: embedding takes minutes per thousand records, so
    it runs when asked (``Library.embed``); hybrid search ranks what is not embedded by
    BM25 meanwhile.
    """
    run = StageRun()
    started = time.perf_counter()
    run.rows["groups"] = update_groups(store, rebuild=rebuild).records
    grouped = time.perf_counter()
    run.rows["index"] = index.sync(store, rebuild=rebuild, progress=progress)
    run.seconds = {"group": grouped - started, "index": time.perf_counter() - grouped}
    # The vectors stage goes here once embedding is fast enough to run on every import
    # (a built-in model): after the index, with its own mark (``MARKS["vectors"]``) and
    # its seconds in ``run.seconds["vectors"]``. It needs no group ids, so it may also
    # run beside the groups stage (a thread or process over the same changed rows),
    # since the index stage already keeps both cores busy with tantivy's threads.
    return run


def behind(store: Store, index: SearchIndex) -> dict[str, int]:
    """Records each of the groups and index stages has not taken in yet (0: up to date)."""
    marks = {
        "groups": int(store.get_meta(MARKS["groups"], "0") or 0),
        "index": index.indexed_rev(store),
    }
    return {name: store.count_rows(since_rev=mark) for name, mark in marks.items()}


class WriteLock:
    """The home's write lock: ``fcntl.flock`` on ``HOME/write.lock``.

    The kernel drops it when the holder exits, SIGKILL included, so a killed import
    never leaves the home locked. Taken before the first write, so a refused writer
    has written nothing.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / LOCK_FILE
        self._handle: IO[str] | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self, *, wait: float = 0.0) -> bool:
        """Take the lock, waiting up to ``wait`` seconds; False if another process holds it."""
        if self._handle is not None:
            self._depth += 1
            return True
        try:
            handle = self.path.open("a")
        except OSError as exc:  # a read-only home (or one this user may not write)
            raise StoreError(f"cannot write to {self.home}: {exc.strerror}") from exc
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    handle.close()
                    raise
                if time.monotonic() >= deadline:
                    handle.close()
                    return False
                time.sleep(0.05)
                continue
            self._handle, self._depth = handle, 1
            return True

    def release(self) -> None:
        if self._handle is None:
            return
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    @contextlib.contextmanager
    def hold(self, *, wait: float = 0.0) -> Iterator[None]:
        """The lock for a block, or ``HomeBusy`` (before anything is written)."""
        if not self.acquire(wait=wait):
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
    with lock.hold(wait=wait):
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
