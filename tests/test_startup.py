"""Issue 19 req 3: what ``nivl serve`` and every command pay at startup.

A read-only home's index is opened in place: tantivy takes a lock file even to read, so it
reads a private folder of links to the segment files (once a whole copy, per worker)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from nivl import Library, SearchIndex, Settings, Store, derived, embeddings
from nivl.library import BUILTIN_VECTORS_FILE
from nivl.vector_index import MatrixIndex

from .servers import free_port
from .test_derived import environment, needs_mount, nivl, read_only_mount


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory, records_path: Path) -> Path:
    """A snapshot of a home holding the shared records."""
    folder = tmp_path_factory.mktemp("startup")
    done = nivl("import", str(records_path), "--home", str(folder / "home"))
    assert done.returncode == 0, done.stderr
    done = nivl("snapshot", str(folder / "snap"), "--home", str(folder / "home"))
    assert done.returncode == 0, done.stderr
    return folder / "snap"


@contextmanager
def replica(home: Path, temp: Path, *, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """``nivl serve --read-only`` (two workers) with its temporary folder in ``temp``."""
    port = free_port()
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "nivl", "serve", "--read-only", "--workers", "2"]
        + ["--home", str(home), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment({"TMPDIR": str(temp)}),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the replica did not become healthy"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=20)


def _segment_files(index: Path) -> list[str]:
    return sorted(p.name for p in index.iterdir() if p.suffix in {".idx", ".store", ".term"})


def _check_linked(snap: Path, temp: Path) -> None:
    folders = [p for p in temp.iterdir() if p.name.startswith("nivl-index-")]
    assert folders, "no folder for tantivy's lock files"
    segments = _segment_files(snap / "index")
    assert segments
    for folder in folders:
        for name in segments:
            # a copy is another file with the same bytes; a link is the snapshot's own file
            assert os.path.samefile(folder / name, snap / "index" / name), name


def test_a_replica_opens_the_snapshots_index_in_place(snap: Path, tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    with replica(snap, temp) as url:
        response = httpx.get(f"{url}/search", params={"q": "apollo"}, timeout=30)
        assert response.status_code == 200
        assert response.json()["collection"]["metadata"]["total_hits"] > 0
        _check_linked(snap, temp)


@needs_mount
def test_a_replica_on_a_read_only_mount_opens_its_index_in_place(
    snap: Path, tmp_path: Path
) -> None:
    """Across a bind mount a hard link cannot be made: the folder holds symbolic links."""
    mounted = tmp_path / "mounted"
    shutil.copytree(snap, mounted / "snap", symlinks=True)
    temp = tmp_path / "tmp"
    temp.mkdir()
    with replica(mounted / "snap", temp, prefix=read_only_mount(mounted)) as url:
        response = httpx.get(f"{url}/search", params={"q": "apollo"}, timeout=30)
        assert response.status_code == 200
        assert response.json()["collection"]["metadata"]["total_hits"] > 0
        _check_linked(mounted / "snap", temp)


#: Libraries only some commands and routes need, each a tenth of a second or more to
#: import: scipy (grouping), httpx (upstream), pybtex and rispy (citations), citeproc.
LATE_IMPORTS = ("scipy", "httpx", "pybtex", "rispy", "citeproc")


def test_the_cli_and_the_server_import_no_library_they_may_not_need() -> None:
    script = (
        "import sys\n"
        "import nivl.cli, nivl.web.app, nivl.web.api, nivl.web.ui, nivl.web.docs\n"
        "import nivl.web.research, nivl.web.iiif, nivl.web.listener\n"
        f"print(' '.join(m for m in {LATE_IMPORTS!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment()
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def _hashed(home: Path) -> list[str]:
    """The nasa_ids whose picture the store has looked at, read straight from SQLite."""
    import sqlite3

    with sqlite3.connect(f"{(home / 'nivl.db').as_uri()}?mode=ro", uri=True) as conn:
        return sorted(row[0] for row in conn.execute("SELECT nasa_id FROM picture_hashes"))


def _picture(home: Path, nasa_id: str, colour: tuple[int, int, int]) -> Path:
    from PIL import Image

    folder = home / "media" / nasa_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{nasa_id}~thumb.png"
    Image.new("RGB", (64, 48), colour).save(path)
    return path


def test_pictures_are_looked_at_by_what_shows_them_not_by_every_open(
    tmp_path: Path, records_path: Path
) -> None:
    """HOME/media is scanned before the first read of the visual groups, not whenever a
    command opens the home: a picture added by hand is not hashed by a plain search, and
    is by what shows visual groups; one replaced or removed by hand is seen by the next
    such read."""
    home = tmp_path / "home"
    assert nivl("import", str(records_path), "--home", str(home)).returncode == 0
    picture = _picture(home, "S69-21783", (200, 30, 30))
    assert nivl("search", "apollo", "--home", str(home)).returncode == 0
    assert _hashed(home) == []
    shown = nivl("search", "--nasa-id", "S69-21783", "--collapse", "visual", "--home", str(home))
    assert shown.returncode == 0, shown.stderr
    assert _hashed(home) == ["S69-21783"]
    # replaced in place (its folder's mtime does not move) and another added: both seen
    picture.write_bytes(picture.read_bytes()[:60])
    _picture(home, "0002272", (30, 200, 30))
    done = nivl("dupes", "--level", "visual", "--home", str(home))
    assert done.returncode == 0, done.stderr
    assert "not hashed (S69-21783)" in done.stderr, done.stderr
    assert _hashed(home) == ["0002272", "S69-21783"]
    shutil.rmtree(home / "media" / "0002272")
    assert nivl("group", "show", "1", "--home", str(home)).returncode in (0, 1)
    assert _hashed(home) == ["S69-21783"]


def test_the_workers_share_one_budget_for_cached_answers(tmp_path: Path) -> None:
    """Each worker keeps its own cache of answers (the largest part of its memory): their
    budgets add up to one server's, whatever the number of workers."""
    from nivl import Settings
    from nivl.web.app import create_app

    def budget(workers: int) -> int:
        settings = Settings.from_env({}, home=str(tmp_path / "home"), workers=workers)
        return int(create_app(settings).state.body_cache.max_bytes)

    assert budget(4) * 4 == budget(2) * 2 == budget(1)


def test_the_libraries_of_one_process_share_the_built_in_model(tmp_path: Path) -> None:
    """A replica opens a library for each snapshot it swaps in: the model (40 MB, a quarter
    of a second) is loaded once a process, not once a library."""
    from nivl import Library, Settings

    first = Library(Settings.from_env({}, home=str(tmp_path / "a")))
    second = Library(Settings.from_env({}, home=str(tmp_path / "b")))
    try:
        assert first.static_embedder() is second.static_embedder()
    finally:
        first.close()
        second.close()


def _counts_of(settings: Settings, *, read_only: bool = False) -> tuple[Store, list[str]]:
    """The home's store, and the whole-table counts (``SELECT count(*) FROM records``,
    which reads the rev index's scattered pages: about 2 s cold at 1M) it is asked for."""
    counts: list[str] = []

    def trace(sql: str, _args: object) -> None:
        if " ".join(sql.split()).lower() == "select count(*) from records":
            counts.append(sql)

    return Store(settings.db_path, tracer=trace, read_only=read_only), counts


def test_an_unchanged_home_is_opened_again_without_counting_its_records(
    settings: Settings, records_path: Path
) -> None:
    """The first open after a write checks that the index agrees with the store (a count
    and sampled rows) and remembers that it did; the next opens of the same files at the
    same rev take the check, and the count, as made."""
    with Library(settings) as library:
        library.import_paths([records_path])
        records = library.count()
    Library(settings).close()  # checks the index against the store, and remembers it
    store, counts = _counts_of(settings)
    try:
        index = SearchIndex(settings.index_path, verify=True)
        builtin = MatrixIndex(
            settings.home / BUILTIN_VECTORS_FILE,
            dimensions=embeddings.BUILTIN_DIMENSIONS,
            mark=f"{derived.MARKS['vectors']}:{embeddings.BUILTIN_MODEL}",
        )
        assert derived.update(store, index, vectors=builtin, embed=lambda: None).rows == {
            "visual": 0,
            "groups": 0,
            "index": 0,
        }
        assert builtin.pending(store) == 0
        assert store.known_count() == records
        assert counts == []
    finally:
        store.close()
    with Library(settings) as library:
        assert not library.is_empty()
        assert library.count() == records


def test_a_read_only_home_is_opened_without_counting_its_records(
    settings: Settings, records_path: Path
) -> None:
    """A replica's store open probes the database (one clear error for a file that is
    none) and its open says what is stale, without a whole-table count."""
    with Library(settings) as library:
        library.import_paths([records_path])
    store, counts = _counts_of(settings, read_only=True)
    try:
        assert derived.behind(store, SearchIndex(settings.index_path)) == {
            "groups": 0,
            "index": 0,
        }
        assert counts == []
    finally:
        store.close()


def test_the_remembered_agreement_does_not_hide_an_index_changed_since(
    settings: Settings, records_path: Path
) -> None:
    """Documents lost from the index after its check was remembered (a commit: its
    meta.json changes) are found by the next open and the index rebuilt."""
    with Library(settings) as library:
        library.import_paths([records_path])
    Library(settings).close()  # remembered: the index agrees with the store
    with Library(settings) as library:
        writer = library.index.index.writer(heap_size=50_000_000, num_threads=1)
        for row_id in library.store.sample_row_ids(5, seed=1):
            writer.delete_documents_by_term("rid", row_id)
        writer.commit()
        writer.wait_merging_threads()
    with Library(settings) as library:
        assert library.num_indexed() == library.store.count()


def test_a_remembered_count_is_used_only_at_the_rev_it_was_taken_at(
    settings: Settings, shared_items: list[dict]
) -> None:
    from nivl.records import parse_item

    with Store(settings.db_path) as store:
        assert store.known_count() == 0
        store.upsert_records(parse_item(i) for i in shared_items[:30])
        store.remember_count(30, store.max_rev())
        store.upsert_records(parse_item(i) for i in shared_items[30:50])  # a new rev
        assert store.known_count() == store.count() == 50
        store.remember_count(7, store.max_rev() - 1)  # an older rev's count
        assert store.known_count() == 50
