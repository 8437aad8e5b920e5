"""The built-in model's two-stage vector search: a float32 copy of the leading (PCA-ordered)
dims picks candidates that the full vectors rank (issue 19: hybrid at 300k and 1M)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nivl.errors import SearchIndexError
from nivl.vector_index import MatrixIndex

DIMS = 32
ROWS = 3_000


def pca_like(rows: int, seed: int) -> np.ndarray:
    """Unit vectors whose variance falls off along the dims, as the model's PCA dims do."""
    rng = np.random.default_rng(seed)
    scale = np.exp(-np.arange(DIMS) / 6.0)
    vectors = rng.standard_normal((rows, DIMS)) * scale
    unit: np.ndarray = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return unit


def small_index(path: Path | None) -> MatrixIndex:
    """Few candidates and coarse dims, so the two stages run on a few thousand rows."""
    index = MatrixIndex(path, dimensions=DIMS, mark="embedded_rev:test")
    index.RERANK = 100
    index.COARSE_DIMS = 8
    return index


def brute_force(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, count: int) -> list[int]:
    similarity = vectors.astype(np.float16).astype(np.float32) @ query
    return [int(ids[i]) for i in np.argsort(-similarity, kind="stable")[:count]]


def test_the_coarse_scan_finds_what_the_exact_scan_finds(tmp_path: Path) -> None:
    vectors = pca_like(ROWS, seed=1)
    ids = np.arange(1, ROWS + 1) * 3
    index = small_index(tmp_path / "vectors.test.npy")
    index.add(ids.tolist(), vectors)
    index.save()
    queries = pca_like(40, seed=2)
    found = [[row for row, _ in index.search(q, 10)] for q in queries]
    assert all(len(rows) == 10 for rows in found)
    overlap = [
        len(set(rows) & set(brute_force(vectors, ids, q, 10)))
        for rows, q in zip(found, queries, strict=True)
    ]
    assert sum(overlap) / (10 * len(queries)) >= 0.95
    for at in (0, 1234, ROWS - 1):  # a stored vector is its own nearest row
        assert index.search(vectors[at], 1)[0][0] == int(ids[at])


def test_a_saved_file_carries_the_coarse_copy_and_opening_maps_it(tmp_path: Path) -> None:
    path = tmp_path / "vectors.test.npy"
    vectors = pca_like(ROWS, seed=3)
    index = small_index(path)
    index.add(list(range(1, ROWS + 1)), vectors)
    index.save()
    reopened = small_index(path)
    assert isinstance(reopened._coarse, np.memmap)  # shared pages, nothing computed at open
    assert reopened._coarse.dtype == np.float32
    expected = vectors.astype(np.float16).astype(np.float32)[:, :8]
    assert np.array_equal(np.asarray(reopened._coarse), expected)
    assert reopened.search(vectors[7], 1)[0][0] == 8


def test_rows_added_or_replaced_since_the_save_are_searched_with_their_new_vectors(
    tmp_path: Path,
) -> None:
    vectors = pca_like(ROWS, seed=4)
    index = small_index(tmp_path / "vectors.test.npy")
    index.add(list(range(1, ROWS + 1)), vectors)
    index.save()
    index.search(vectors[0], 5)  # the coarse copy is in use before the next import adds
    fresh = pca_like(2, seed=5)
    index.add([ROWS + 1, 10], fresh)  # a new record, and record 10 updated
    assert index.search(fresh[0], 1)[0][0] == ROWS + 1
    assert index.search(fresh[1], 1)[0][0] == 10
    assert 10 not in [row for row, _ in index.search(vectors[9], 3)]  # the old vector left
    index.save()
    reopened = small_index(tmp_path / "vectors.test.npy")
    assert reopened.search(fresh[1], 1)[0][0] == 10


def test_a_file_from_before_the_coarse_copy_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "vectors.test.npy"
    vectors = pca_like(ROWS, seed=6)
    ids = np.arange(1, ROWS + 1, dtype=np.int64)
    with path.open("wb") as out:  # two arrays: row ids, float16 vectors
        np.save(out, ids)
        np.save(out, vectors.astype(np.float16))
    index = small_index(path)
    assert len(index) == ROWS
    assert index.search(vectors[42], 1)[0][0] == 43


def test_a_file_cut_short_in_the_coarse_copy_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "vectors.test.npy"
    index = small_index(path)
    index.add(list(range(1, ROWS + 1)), pca_like(ROWS, seed=7))
    index.save()
    whole = path.read_bytes()
    path.write_bytes(whole[:-100])
    with pytest.raises(SearchIndexError) as raised:
        small_index(path)
    assert raised.value.damaged
