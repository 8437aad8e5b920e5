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
