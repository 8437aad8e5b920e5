"""An import's memory (issue 19, requirement 2: peak RSS ≤ 2 GB at 1M records): the
derived stages read the store without SQLite's memory map, and the vectors stage writes
its matrix without holding it twice.
"""

from __future__ import annotations

from pathlib import Path

from nivl import derived
from nivl.ingest import import_paths
from nivl.search_index import SearchIndex
from nivl.store import Store


def _mapped(store: Store) -> int:
    """How much of the file this thread's reader maps (SQLite's cap applied)."""
    return int(store._reader.execute("PRAGMA mmap_size").fetchone()[0])


def test_the_derived_stages_read_the_store_without_mapping_it(
    tmp_path: Path, records_path: Path
) -> None:
    """Mapped, every page a stage reads once stays in the importing process's resident set
    (1.7 GB of a 300k import's main process); serving keeps the map, which it reads again
    and again."""
    store = Store(tmp_path / "nivl.db")
    index = SearchIndex(tmp_path / "index")
    try:
        import_paths(store, [records_path])
        assert _mapped(store) > 0  # a reader opened before the stages, mapping
        during: list[int] = []
        derived.update(store, index, progress=lambda _n: during.append(_mapped(store)))
        assert during and set(during) == {0}
        assert _mapped(store) > 0  # and mapping again for what reads next
    finally:
        store.close()


def test_the_vectors_process_reads_the_store_without_mapping_it(
    tmp_path: Path, records_path: Path
) -> None:
    store = Store(tmp_path / "nivl.db")
    import_paths(store, [records_path])
    store.close()
    beside = derived._MarksKept(tmp_path / "nivl.db")
    try:
        assert _mapped(beside) == 0
    finally:
        beside.close()


def test_a_whole_pass_of_vectors_is_saved_without_a_second_copy_of_them(tmp_path: Path) -> None:
    """The vectors process adds an import's vectors a batch at a time, then saves them:
    merging them into one matrix first held them twice (1 GB at 1M rows). Saved as they
    are, the file is the same one, and it reads back as what was added."""
    import tracemalloc

    import numpy as np

    from nivl.vector_index import MatrixIndex

    rng = np.random.default_rng(7)
    vectors = MatrixIndex(tmp_path / "vectors.npy", dimensions=256, mark="m")
    batches = [
        (np.arange(start, start + 1000) * 3 + 1, rng.standard_normal((1000, 256)))
        for start in range(0, 20_000, 1000)
    ]
    for ids, matrix in batches:
        vectors.add(ids.tolist(), matrix)
    added = 20_000 * 256 * 2  # float16
    tracemalloc.start()
    try:
        vectors.save()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < added / 4
    again = MatrixIndex(tmp_path / "vectors.npy", dimensions=256, mark="m")
    assert len(again) == 20_000
    for ids, matrix in batches[::7]:
        for row_id, vector in zip(ids[::97], matrix[::97], strict=True):
            found = again.vector(int(row_id))
            assert found is not None
            assert found.tobytes() == vector.astype(np.float16).astype(np.float32).tobytes()
    # the coarse copy is the vectors' first dims, as float32
    assert again._coarse is not None
    assert again._coarse[:5].tobytes() == again._matrix[:5, :64].astype(np.float32).tobytes()
