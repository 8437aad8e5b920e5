"""The vector indexes, keyed by the store's row id: ``MatrixIndex`` for the built-in model
(a float16 matrix, exact search, made during import) and ``VectorIndex`` for the extra's
all-MiniLM-L6-v2 (one usearch HNSW file, ``nivl embed``).

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

from .embeddings import DIMENSIONS, require, stored_text
from .errors import SearchIndexError
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


class SyncedVectors:
    """What both vector indexes share: the stage's watermark and resumable ``sync``.

    ``mark`` names the stage's meta key, one per model (``embedded_rev`` for the extra's
    all-MiniLM-L6-v2, ``embedded_rev:<model>`` for the built-in one), so the two models'
    vectors never mix. A file that is missing, or disagrees with the store, is embedded
    again from the store.
    """

    path: Path | None
    mark: str = "embedded_rev"

    def __len__(self) -> int:
        raise NotImplementedError

    def add(self, row_ids: Sequence[int], vectors: np.ndarray) -> None:
        raise NotImplementedError

    def save(self) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

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
        later: bool = False,
    ) -> int:
        """Embed every row changed since the last run (or all, or from the cursor); returns rows.

        A row changed after the pass began is left to the next one, unless ``later``: a
        pass beside the groups stage (``derived.py``) takes the rows grouping gives a new
        ``rev`` meanwhile (their text is the same), so none of them is skipped.
        """
        since, top, last_id = self._start(store, rebuild=rebuild)
        if rebuild or (since == 0 and last_id == 0):
            self.clear()
        done = 0
        saved = time.monotonic()
        batch: list[tuple[int, str]] = []
        for row in store.iter_rows(since_rev=since, after_id=last_id):
            if row.rev > top and not later:
                continue  # changed after this pass began: the next pass takes it
            batch.append((row.id, stored_text(row.raw)))
            if len(batch) >= batch_size:
                done += self._embed_batch(batch, embed, progress)
                last_id = batch[-1][0]
                batch = []
                if time.monotonic() - saved >= save_every and self.path is not None:
                    self.save()
                    store.set_meta(self._cursor_key(), f"{since}:{top}:{last_id}")
                    saved = time.monotonic()
        if batch:
            done += self._embed_batch(batch, embed, progress)
        self.save()
        if self.path is not None:  # in memory (a read-only home): no mark, nothing written
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
        if since > top or (since == top and len(self) != store.known_count()) or len(self) == 0:
            since = 0  # the file disagrees with the source of truth: embed everything again
        return since, top, 0

    def _mark_key(self) -> str:
        """Keyed by the stage's (model's) name, not the path as typed (one home, one mark)."""
        return self.mark if self.path is not None else f"{self.mark}:memory"

    def _cursor_key(self) -> str:
        cursor = self.mark.replace("embedded_rev", "embedded_cursor")
        return cursor if self.path is not None else f"{cursor}:memory"


class VectorIndex(SyncedVectors):
    """Record vectors in ``path`` (a usearch file), or in memory when ``path`` is None."""

    def __init__(self, path: Path | None, *, dtype: str = DTYPE) -> None:
        require("the vector index")
        self.path = path
        self.mark = "embedded_rev"
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


class MatrixIndex(SyncedVectors):
    """The built-in model's vectors: one float16 matrix file, memory-mapped.

    The file holds three ``.npy`` arrays one after the other (sorted row ids, the float16
    vectors, then a float32 copy of their first ``COARSE_DIMS`` dims), written to a
    temporary name and renamed, so a reader never sees half of one, and a snapshot's copy
    of the file carries all three. Opening maps it (``np.memmap``) instead of reading it:
    a process that never runs a semantic query never reads the vectors, and workers share
    its pages. A file that does not parse as that shape is damage (``SearchIndexError``);
    a file of two arrays (before the coarse copy) is read, its coarse copy made in memory.

    ``search`` is two-stage: the model's dims are PCA-ordered, so a float32 product over
    the first 64 of them picks ``RERANK`` candidates that the full vectors then rank
    exactly. Converting the whole float16 matrix per query cost ~0.4 s of CPU at 300k
    rows; an HNSW (usearch) lost recall on the many identical captions and costs ~0.1 ms
    of build CPU per row (bench/vector_scale.py).
    """

    #: Rows converted to float32 at a time while scanning exactly (bounded scratch memory).
    CHUNK = 16_384
    #: Leading (PCA-ordered) dims of the coarse scan's float32 copy.
    COARSE_DIMS = 64
    #: Candidates the coarse scan hands to the exact rerank (at least 4x the count asked).
    RERANK = 4_000

    def __init__(self, path: Path | None, *, dimensions: int, mark: str) -> None:
        import numpy as np

        self.path = path
        self.mark = mark
        self.dimensions = dimensions
        self._mtime = 0.0
        self._ids: np.ndarray = np.zeros(0, dtype=np.int64)  # sorted
        self._matrix: np.ndarray = np.zeros((0, dimensions), dtype=np.float16)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._coarse: np.ndarray | None = None  # made on the first search if the file has none
        self._load()

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            mtime = self.path.stat().st_mtime
            ids, matrix, coarse = _map_arrays(self.path)
        except (OSError, ValueError, EOFError) as exc:
            raise SearchIndexError(f"loading {self.path} failed: {exc}", damaged=True) from exc
        problem = self._check(ids, matrix, coarse)
        if problem:
            raise SearchIndexError(f"loading {self.path} failed: {problem}", damaged=True)
        self._ids, self._matrix, self._coarse = ids, matrix, coarse
        self._pending = []
        self._mtime = mtime

    def _check(self, ids: np.ndarray, matrix: np.ndarray, coarse: np.ndarray | None) -> str:
        import numpy as np

        if ids.dtype != np.int64 or ids.ndim != 1:
            return "no row ids"
        if matrix.dtype != np.float16 or matrix.shape != (len(ids), self.dimensions):
            return f"not {len(ids)} vectors of {self.dimensions} dimensions"
        if coarse is not None and (
            coarse.dtype != np.float32
            or coarse.ndim != 2
            or len(coarse) != len(ids)
            or not 0 < coarse.shape[1] <= self.dimensions
        ):
            return f"no coarse copy of {len(ids)} vectors"
        if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            return "row ids out of order"
        return ""

    def __len__(self) -> int:
        self._merge()
        return len(self._ids)

    @property
    def mtime(self) -> float:
        return self._mtime

    @property
    def memory_usage(self) -> int:
        """Bytes of ids and vectors (mapped pages count too: they are read on search)."""
        self._merge()
        return int(self._ids.nbytes + self._matrix.nbytes)

    def reload_if_changed(self) -> bool:
        """Pick up what an import in another process saved since; True if it did.

        A damaged new file raises ``SearchIndexError`` once (its mtime is remembered) and
        leaves the vectors already loaded in place.
        """
        if self.path is None or not self.path.exists():
            return False
        mtime = self.path.stat().st_mtime
        if mtime == self._mtime:
            return False
        try:
            self._load()
        except SearchIndexError:
            self._mtime = mtime
            raise
        return True

    def add(self, row_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add or replace these rows' vectors (merged into the matrix on the next read)."""
        import numpy as np

        self._pending.append(
            (np.asarray(row_ids, dtype=np.int64), np.asarray(vectors, dtype=np.float16))
        )

    def _merge(self) -> None:
        """Fold the added batches in: a later vector of a row replaces an earlier one."""
        import numpy as np

        if not self._pending:
            return
        self._coarse = None  # out of step with the matrix: made again on the next search
        ids = np.concatenate([self._ids, *(i for i, _ in self._pending)])
        matrix = np.concatenate([self._matrix, *(m for _, m in self._pending)])
        self._pending = []
        if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])):  # in order, no id twice (a
            self._ids, self._matrix = ids, matrix  # whole pass): no third copy at 1M rows
            return
        # the last occurrence of each id wins: unique over the reversed order
        unique, first = np.unique(ids[::-1], return_index=True)
        self._ids, self._matrix = unique, matrix[len(ids) - 1 - first]

    def save(self) -> None:
        """Write the file atomically (temp file, then rename), then map the new file.

        Batches added in row order after the last row (a whole pass, as an import's) are
        written one after another as they are, never merged into one matrix first: that
        held every vector twice at the end of the pass (1 GB at 1M rows).
        """
        import numpy as np

        if self.path is None:
            self._merge()
            return
        if not self._in_order():
            self._merge()
        blocks = [self._matrix, *(m for _, m in self._pending)]
        ids = np.concatenate([self._ids, *(i for i, _ in self._pending)])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with tmp.open("wb") as out:
                np.save(out, ids, allow_pickle=False)
                self._write_blocks(out, blocks, len(ids), self.dimensions, np.float16)
                self._write_blocks(out, blocks, len(ids), self._coarse_dims, np.float32)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise SearchIndexError(f"saving {self.path} failed: {exc.strerror}") from exc
        self._load()  # map what was written: the arrays in memory can go

    def _in_order(self) -> bool:
        """Whether the added batches' ids rise, each past the rows before it: then they
        append as they are."""
        import numpy as np

        last = int(self._ids[-1]) if len(self._ids) else -1
        for ids, _ in self._pending:
            if len(ids) and (int(ids[0]) <= last or not bool(np.all(ids[1:] > ids[:-1]))):
                return False
            last = int(ids[-1]) if len(ids) else last
        return True

    def _write_blocks(
        self, out: Any, blocks: list[np.ndarray], rows: int, dims: int, dtype: Any
    ) -> None:
        """One ``.npy`` array of ``rows`` x ``dims`` from the blocks' leading dims, written
        in chunks (no whole float32 copy at 1M rows)."""
        import numpy as np

        descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
        np.lib.format.write_array_header_1_0(
            out, {"descr": descr, "fortran_order": False, "shape": (rows, dims)}
        )
        for block in blocks:
            for start in range(0, len(block), self.CHUNK):
                part = np.ascontiguousarray(block[start : start + self.CHUNK, :dims], dtype=dtype)
                out.write(part.data)  # no copy when it is one already

    @property
    def _coarse_dims(self) -> int:
        return min(self.COARSE_DIMS, self.dimensions)

    def clear(self) -> None:
        import numpy as np

        self._ids = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, self.dimensions), dtype=np.float16)
        self._pending = []
        self._coarse = None

    def _similarity(self, rows: np.ndarray | slice, vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of ``vector`` with the selected rows, in float32 chunks."""
        import numpy as np

        query = np.asarray(vector, dtype=np.float32)
        matrix = self._matrix[rows]
        out = np.empty(len(matrix), dtype=np.float32)
        for start in range(0, len(matrix), self.CHUNK):
            block = np.asarray(matrix[start : start + self.CHUNK], dtype=np.float32)
            # einsum, not BLAS: OpenBLAS threads spin on small products (2x the CPU at 300k)
            out[start : start + len(block)] = np.einsum("ij,j->i", block, query)
        return out

    def search(self, vector: np.ndarray, count: int) -> list[tuple[int, float]]:
        """The ``count`` nearest rows by cosine similarity, best first.

        A coarse scan of the first ``COARSE_DIMS`` dims keeps ``RERANK`` (or 4 x ``count``)
        candidates, ranked exactly by the full vectors; when that would be a quarter of the
        rows or more, every row is ranked exactly.
        """
        import numpy as np

        self._merge()
        if len(self._ids) == 0 or count <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32)
        keep = max(self.RERANK, 4 * count)
        if keep * 4 >= len(self._ids):
            similarity = self._similarity(slice(None), query)
            ids = self._ids
        else:
            first = self._coarse_matrix()
            coarse = np.einsum("ij,j->i", first, query[: first.shape[1]])
            rows = np.sort(np.argpartition(coarse, len(coarse) - keep)[len(coarse) - keep :])
            similarity = self._similarity(rows, query)
            ids = self._ids[rows]
        count = min(count, len(similarity))
        top = np.argpartition(-similarity, count - 1)[:count]
        top = top[np.lexsort((ids[top], -similarity[top]))]
        return [(int(ids[i]), float(similarity[i])) for i in top]

    def _coarse_matrix(self) -> np.ndarray:
        """The float32 first dims: the file's copy, or one made here (an older file, or rows
        added since the last save)."""
        import numpy as np

        if self._coarse is None:
            self._coarse = np.empty((len(self._ids), self._coarse_dims), dtype=np.float32)
            for start in range(0, len(self._matrix), self.CHUNK):
                block = self._matrix[start : start + self.CHUNK, : self._coarse_dims]
                self._coarse[start : start + len(block)] = block
        return self._coarse

    def exact(
        self, vector: np.ndarray, row_ids: Sequence[int], count: int
    ) -> list[tuple[int, float]]:
        """The ``count`` rows among ``row_ids`` nearest to ``vector``."""
        import numpy as np

        self._merge()
        wanted = np.asarray(row_ids, dtype=np.int64)
        if not len(wanted) or len(self._ids) == 0:
            return []
        at = np.clip(np.searchsorted(self._ids, wanted), 0, len(self._ids) - 1)
        at = np.unique(at[self._ids[at] == wanted])
        similarity = self._similarity(at, vector)
        order = np.lexsort((self._ids[at], -similarity))[:count]
        return [(int(self._ids[at[i]]), float(similarity[i])) for i in order]

    def vector(self, row_id: int) -> np.ndarray | None:
        import numpy as np

        self._merge()
        at = int(np.searchsorted(self._ids, row_id))
        if at >= len(self._ids) or self._ids[at] != row_id:
            return None
        found: np.ndarray = np.asarray(self._matrix[at], dtype=np.float32)
        return found


def _map_arrays(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The arrays of a matrix file, mapped read-only (``ValueError`` if it is not one):
    row ids, vectors, and the coarse copy (None in a file written before it)."""
    import numpy as np

    arrays = []
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        for number in range(3):
            if number == 2 and file.tell() == size:
                break  # two arrays: a file from before the coarse copy
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
            else:
                raise ValueError(f"unknown .npy version {version}")
            if fortran or dtype.hasobject:
                raise ValueError("not a plain C-order array")
            offset = file.tell()
            length = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if offset + length > size:
                raise ValueError(f"cut short ({size} bytes)")
            if length == 0:
                arrays.append(np.zeros(shape, dtype=dtype))
            else:
                arrays.append(np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape))
            file.seek(offset + length)
        if file.tell() != size:
            raise ValueError("trailing bytes")
    return arrays[0], arrays[1], arrays[2] if len(arrays) == 3 else None
