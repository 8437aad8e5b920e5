"""The vector index: one usearch HNSW file under the home dir, keyed by the store's row id.

Like the tantivy index it is derived from the store and kept in step with it
by the store's ``rev`` watermark, but embedding is slow (tens of records a
second on two cores), so ``sync`` is its own resumable stage (``nivl embed``):
it saves the index and a cursor ``since:top:last_id`` every ``save_every``
seconds, and a run that was stopped carries on from the cursor. The file is
replaced atomically, so a server reading it (``reload_if_changed``) never sees
half of one. Cosine metric, vectors stored as f16 (i8 loses too much recall).

Records not yet embedded are simply absent here: hybrid search still finds them
through BM25, and ``len(index)`` against ``store.count()`` says how far it got.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .embeddings import DIMENSIONS, record_text, require
from .errors import SearchIndexError
from .records import parse_item
from .store import Store

if TYPE_CHECKING:
    import numpy as np

FILE_NAME = "vectors.usearch"
DTYPE = "f16"
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 64

Embed = Callable[[Sequence[str]], "np.ndarray"]


@contextlib.contextmanager
def usearch_errors(action: str) -> Iterator[None]:
    """usearch raises RuntimeError/ValueError/OSError; give callers a ``SearchIndexError``."""
    try:
        yield
    except (RuntimeError, ValueError, OSError) as exc:
        raise SearchIndexError(f"{action} failed: {exc}") from exc


class VectorIndex:
    """Record vectors in ``path`` (a usearch file), or in memory when ``path`` is None."""

    def __init__(self, path: Path | None, *, dtype: str = DTYPE) -> None:
        require("the vector index")
        self.path = path
        self.dtype = dtype
        self._mtime = 0.0
        self._index = self._load()

    def _new(self) -> Any:
        from usearch.index import Index

        return Index(
            ndim=DIMENSIONS,
            metric="cos",
            dtype=self.dtype,
            connectivity=CONNECTIVITY,
            expansion_add=EXPANSION_ADD,
            expansion_search=EXPANSION_SEARCH,
        )

    def _load(self) -> Any:
        index = self._new()
        if self.path is not None and self.path.exists():
            with usearch_errors(f"loading {self.path}"):
                self._mtime = self.path.stat().st_mtime
                index.load(str(self.path))
        return index

    def __len__(self) -> int:
        return int(len(self._index))

    @property
    def mtime(self) -> float:
        """When the file this index holds was saved (0 for none)."""
        return self._mtime

    @property
    def memory_usage(self) -> int:
        return int(self._index.memory_usage)

    def reload_if_changed(self) -> bool:
        """Pick up what ``nivl embed`` in another process saved since; True if it did."""
        if self.path is None or not self.path.exists():
            return False
        if self.path.stat().st_mtime == self._mtime:
            return False
        self._index = self._load()
        return True

    # --- writing ----------------------------------------------------------------

    def add(self, row_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add or replace the vectors of these rows."""
        import numpy as np

        keys = np.asarray(row_ids, dtype=np.uint64)
        with usearch_errors("adding vectors"):
            present = keys[self._index.contains(keys)]
            if len(present):
                self._index.remove(present)
            self._index.add(keys, np.asarray(vectors, dtype=np.float32))

    def save(self) -> None:
        """Write the file atomically (temp file, then rename)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with usearch_errors(f"saving {self.path}"):
            self._index.save(str(tmp))
            os.replace(tmp, self.path)
            self._mtime = self.path.stat().st_mtime

    def clear(self) -> None:
        self._index = self._new()

    def pending(self, store: Store, *, rebuild: bool = False) -> int:
        """How many rows the next ``sync`` would embed."""
        since, _top, last_id = self._start(store, rebuild=rebuild)
        return store.count_rows(since_rev=since, after_id=last_id)

    def sync(
        self,
        store: Store,
        embed: Embed,
        *,
        rebuild: bool = False,
        batch_size: int = 128,
        save_every: float = 30.0,
        progress: Callable[[int], object] | None = None,
    ) -> int:
        """Embed every row changed since the last run (or all, or from the cursor); returns rows."""
        since, top, last_id = self._start(store, rebuild=rebuild)
        if rebuild or (since == 0 and last_id == 0):
            self.clear()
        done = 0
        saved = time.monotonic()
        batch: list[tuple[int, str]] = []
        for row in store.iter_rows(since_rev=since, after_id=last_id):
            if row.rev > top:
                continue  # changed after this pass began: the next pass takes it
            batch.append((row.id, record_text(parse_item(orjson.loads(row.raw), raw=row.raw))))
            if len(batch) >= batch_size:
                done += self._embed_batch(batch, embed, progress)
                last_id = batch[-1][0]
                batch = []
                if time.monotonic() - saved >= save_every:
                    self.save()
                    store.set_meta(self._cursor_key(), f"{since}:{top}:{last_id}")
                    saved = time.monotonic()
        if batch:
            done += self._embed_batch(batch, embed, progress)
        self.save()
        store.set_meta(self._mark_key(), str(top))
        store.set_meta(self._cursor_key(), "")
        return done

    def _embed_batch(
        self, batch: list[tuple[int, str]], embed: Embed, progress: Callable[[int], object] | None
    ) -> int:
        self.add([row_id for row_id, _ in batch], embed([text for _, text in batch]))
        if progress is not None:
            progress(len(batch))
        return len(batch)

    def _start(self, store: Store, *, rebuild: bool) -> tuple[int, int, int]:
        """(since_rev, top_rev, after_id) for the next pass: resume, catch up or rebuild."""
        if rebuild:
            return 0, store.max_rev(), 0
        cursor = store.get_meta(self._cursor_key(), "") or ""
        if cursor:
            since, top, last_id = (int(part) for part in cursor.split(":"))
            return since, top, last_id
        since = int(store.get_meta(self._mark_key(), "0") or 0)
        top = store.max_rev()
        if since > top or (since == top and len(self) != store.count()):
            since = 0  # the file disagrees with the source of truth: embed everything again
        return since, top, 0

    def _mark_key(self) -> str:
        """Keyed by the stage's name, not the path as typed (one home, one mark)."""
        return "embedded_rev" if self.path is not None else "embedded_rev:memory"

    def _cursor_key(self) -> str:
        return "embedded_cursor" if self.path is not None else "embedded_cursor:memory"

    # --- reading ----------------------------------------------------------------

    def search(self, vector: np.ndarray, count: int) -> list[tuple[int, float]]:
        """The ``count`` nearest rows by cosine similarity (approximate, HNSW), best first."""
        if len(self) == 0 or count <= 0:
            return []
        with usearch_errors("searching vectors"):
            matches = self._index.search(vector, min(count, len(self)))
        return [
            (int(key), 1.0 - float(distance))
            for key, distance in zip(matches.keys, matches.distances, strict=True)
        ]

    def exact(
        self, vector: np.ndarray, row_ids: Sequence[int], count: int
    ) -> list[tuple[int, float]]:
        """The ``count`` rows among ``row_ids`` nearest to ``vector``, by brute force."""
        import numpy as np

        keys = np.asarray(row_ids, dtype=np.uint64)
        if not len(keys) or len(self) == 0:
            return []
        with usearch_errors("reading vectors"):
            keys = keys[self._index.contains(keys)]
            if not len(keys):
                return []
            matrix = np.vstack(self._index.get(keys, dtype=np.float32)).reshape(len(keys), -1)
        norms = np.linalg.norm(matrix, axis=1)
        similarity = (matrix @ vector) / np.maximum(norms, 1e-12)
        order = np.argsort(-similarity, kind="stable")[:count]
        return [(int(keys[i]), float(similarity[i])) for i in order]

    def vector(self, row_id: int) -> np.ndarray | None:
        import numpy as np

        with usearch_errors("reading vectors"):
            found = self._index.get(np.uint64(row_id), dtype=np.float32)
        return None if found is None else np.asarray(found, dtype=np.float32).reshape(-1)
