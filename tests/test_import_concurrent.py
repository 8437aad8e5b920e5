"""The built-in vectors stage in a process of its own, beside grouping and indexing
(issue 19, requirement 2): the same vectors and marks as the stages in order, and a kill
at any moment leaves a home that heals on the next open.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import orjson
import pytest

from nivl import Library, Settings, derived, embeddings
from nivl.embeddings import StaticEmbedder, record_text
from nivl.ingest import import_paths
from nivl.library import BUILTIN_VECTORS_FILE
from nivl.records import parse_item
from nivl.store import UpsertResult

from .crash import nivl_env, write_corpus
from .test_orphans import kill_when_ready, living, processes

COPIES = 3  # of the shared records: about 4,600, above derived.BESIDE_ROWS
MARK = f"{derived.MARKS['vectors']}:{embeddings.BUILTIN_MODEL}"

pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, shared_items: list[dict]) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "copies.jsonl"
    assert write_corpus(path, shared_items, COPIES) >= derived.BESIDE_ROWS
    return path


def saved_vectors(home: Path) -> dict[int, np.ndarray]:
    """Row id → vector, read from the matrix file itself (two .npy arrays in a row)."""
    with (home / BUILTIN_VECTORS_FILE).open("rb") as handle:
        ids = np.load(handle)
        matrix = np.load(handle)
    return dict(zip(ids.tolist(), matrix, strict=True))


def test_vectors_made_beside_grouping_match_the_stage_in_order(
    tmp_path: Path, corpus: Path
) -> None:
    if _ran_alone("test_vectors_made_beside_grouping_match_the_stage_in_order"):
        return
    home = tmp_path / "home"
    library = Library(Settings.from_env({}, home=str(home)))
    try:
        import_paths(library.store, [corpus])
        run = derived.update(
            library.store,
            library.index,
            vectors=library.builtin,
            embed=lambda: library.static_embedder().embed,
        )
        assert run.beside == ["vectors"]
        # grouping gave many rows a new rev while the child embedded: none is left behind
        assert derived.behind(library.store, library.index, library.builtin) == {
            "groups": 0,
            "index": 0,
            "vectors": 0,
        }
        assert int(library.store.get_meta(MARK, "0") or 0) == library.store.max_rev()
        rows = list(library.store.iter_rows())
        assert len(library.builtin) == len(rows)
    finally:
        library.close()
    saved = saved_vectors(home)
    assert sorted(saved) == [row.id for row in rows]
    texts = [record_text(parse_item(orjson.loads(row.raw), raw=row.raw)) for row in rows]
    expected = StaticEmbedder().embed(texts).astype(np.float16)
    for row, vector in zip(rows, expected, strict=True):
        assert np.array_equal(saved[row.id], vector), row.nasa_id


def test_a_kill_while_the_vectors_process_runs_heals_on_the_next_open(
    tmp_path: Path, corpus: Path
) -> None:
    home = tmp_path / "home"
    command = [sys.executable, "-m", "nivl", "import", str(corpus)]

    def embedding(pid: int) -> bool:
        """Its first child is the vectors process (forked before the store stage writes,
        so it is embedding once the store holds records)."""
        return any(info[0] == pid for info in living(processes()).values()) and _stored(home)

    killed = kill_when_ready(command, nivl_env(home), embedding)
    assert killed.children
    assert killed.left == []  # the vectors process died with its parent
    with Library(Settings.from_env({}, home=str(home))) as library:  # opening heals
        assert derived.behind(library.store, library.index, library.builtin) == {
            "groups": 0,
            "index": 0,
            "vectors": 0,
        }
        assert len(library.builtin) == library.store.count() > 0


def test_rows_keep_their_rev_yet_the_index_holds_every_rows_groups(
    tmp_path: Path, records_path: Path
) -> None:
    """Grouping leaves the rev of rows the index has not read yet (a first import wrote
    every row again for nothing); the index still holds each row's group ids, after a
    first import and after a second whose records join the first's groups."""
    import tantivy

    lines = records_path.read_text().splitlines()
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("\n".join(lines[::2]) + "\n")  # interleaved, so groups straddle files
    second.write_text("\n".join(lines[1::2]) + "\n")
    with Library(Settings.from_env({}, home=str(tmp_path / "home"))) as library:
        for path in (first, second):
            library.import_paths([path])
            store, index = library.store, library.index
            rows = [row.id for row in store.iter_rows()]
            groups = store.groups_by_row_ids(rows)
            searcher = index.searcher
            for level, column in (("caption", 0), ("near", 1), ("event", 2)):
                members: dict[int, int] = {}
                for ids in groups.values():
                    members[ids[column]] = members.get(ids[column], 0) + 1
                for group_id, size in members.items():
                    query = tantivy.Query.term_query(index.schema, f"{level}_group", group_id)
                    assert searcher.search(query, limit=1).count == size, (level, group_id)


def test_the_vectors_process_writes_nothing_while_this_one_holds_the_store(
    tmp_path: Path, corpus: Path
) -> None:
    """The vectors process can finish while grouping or indexing holds a write
    transaction longer than SQLite's busy timeout: it writes nothing to the store (its
    marks are written by the parent in ``finish``), so it neither waits nor fails there."""
    if _ran_alone("test_the_vectors_process_writes_nothing_while_this_one_holds_the_store"):
        return
    home = tmp_path / "home"
    library = Library(Settings.from_env({}, home=str(home)))
    try:
        import_paths(library.store, [corpus])
        embed = library.static_embedder().embed
        beside = derived._VectorsBeside(
            library.store, library.builtin, lambda: embed, rebuild=False
        )
        with library.store.transaction():  # held until the child has ended, however long
            beside.process.join(timeout=300)
            assert beside.process.exitcode == 0
        assert beside.finish() == library.store.count()
        assert int(library.store.get_meta(MARK, "0") or 0) == library.store.max_rev()
        assert len(library.builtin) == library.store.count()
    finally:
        library.close()


def test_vectors_made_beside_the_store_stage_match_the_stage_in_order(
    tmp_path: Path, corpus: Path
) -> None:
    """The vectors process starts before an import writes and embeds each batch as it is
    committed; rows the import changes in place (records there before, and a record twice
    in the file, its second version many batches after the first) end with the vectors of
    their final text, as the stage in order would give them."""
    if _ran_alone("test_vectors_made_beside_the_store_stage_match_the_stage_in_order"):
        return
    home = tmp_path / "home"
    lines = corpus.read_bytes().splitlines()
    changed = tmp_path / "changed.jsonl"
    with changed.open("wb") as out:
        for number, line in enumerate(lines):
            item = orjson.loads(line)
            item["data"][0]["title"] = f"retitled {number}"  # changed in place
            out.write(orjson.dumps(item) + b"\n")
            if number % 3 == 0:  # a new record, then again with another title much later
                item["data"][0]["nasa_id"] += " again"
                item["data"][0]["title"] = f"first of {number}"
                out.write(orjson.dumps(item) + b"\n")
        for number, line in enumerate(lines[::3]):
            item = orjson.loads(line)
            item["data"][0]["nasa_id"] += " again"
            item["data"][0]["title"] = f"second of {number * 3}"
            out.write(orjson.dumps(item) + b"\n")
    library = Library(Settings.from_env({}, home=str(home)))
    try:
        library.import_paths([corpus])
        embed = library.static_embedder().embed
        early = derived.vectors_beside_import(
            library.store, library.builtin, lambda: embed, [changed]
        )
        assert early is not None
        alive: list[bool] = []

        def written(result: UpsertResult) -> None:
            alive.append(early.process.is_alive())
            early.written(result)

        import_paths(library.store, [changed], on_written=written, batch_size=200)
        run = derived.update(
            library.store, library.index, vectors=library.builtin, embed=lambda: embed, early=early
        )
        assert alive and all(alive)  # beside the store stage, from its first batch
        assert run.beside == ["vectors"]
        assert derived.behind(library.store, library.index, library.builtin) == {
            "groups": 0,
            "index": 0,
            "vectors": 0,
        }
        assert int(library.store.get_meta(MARK, "0") or 0) == library.store.max_rev()
        rows = list(library.store.iter_rows())
    finally:
        library.close()
    assert len(rows) == len(lines) + len(lines[::3])
    saved = saved_vectors(home)
    assert sorted(saved) == [row.id for row in rows]
    texts = [record_text(parse_item(orjson.loads(row.raw), raw=row.raw)) for row in rows]
    assert any(text.startswith("second of") for text in texts)
    expected = StaticEmbedder().embed(texts).astype(np.float16)
    for row, vector in zip(rows, expected, strict=True):
        assert saved[row.id].tobytes() == vector.tobytes(), row.nasa_id


def _stored(home: Path) -> bool:
    """Whether the home's store holds a record yet (read beside the writer, WAL)."""
    try:
        with contextlib.closing(
            sqlite3.connect(f"{(home / 'nivl.db').resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            return conn.execute("SELECT 1 FROM records LIMIT 1").fetchone() is not None
    except sqlite3.Error:
        return False


def _ran_alone(name: str) -> bool:
    """Run test ``name`` in a fresh interpreter when other threads run here; True if it did.

    The vectors stage forks only a process with no other thread (a fork copies no thread
    but the caller's), and earlier tests in this process may have left servers running.
    """
    if threading.active_count() == 1:
        return False
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::{name}"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout
    return True
