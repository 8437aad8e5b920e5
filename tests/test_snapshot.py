"""``nivl snapshot DIR`` and ``nivl serve --read-only`` (issue 19, requirement 4), the way an
operator uses them: real ``nivl`` processes, a real server on loopback, real mounts."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from nivl.library import BUILTIN_VECTORS_FILE

from .conftest import OFFLINE, RECORDS, RESPONSES
from .replay import make_replay, serving
from .servers import free_port
from .test_derived import (
    _can_mount,
    damage,
    environment,
    needs_mount,
    nivl,
    read_only_mount,
    renamed,
    wait_until_locked,
    write_items,
)

LATE = "zyzzyva"  # a word only the records added after the first snapshot hold


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, records_path: Path) -> Path:
    """A home holding the shared records; tests snapshot it but never write to it."""
    home = tmp_path_factory.mktemp("source") / "home"
    done = nivl("import", str(records_path), "--home", str(home))
    assert done.returncode == 0, done.stderr
    return home


def snapshot(home: Path, target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return nivl("snapshot", str(target), "--home", str(home), *args)


def meta(db: Path) -> dict[str, Any]:
    """What a snapshot's store says, read straight from SQLite (not through nivl)."""
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        found: dict[str, Any] = dict(conn.execute("SELECT key, value FROM meta"))
        found["records"] = conn.execute("SELECT count(*) FROM records").fetchone()[0]
        found["max_rev"] = conn.execute("SELECT max(rev) FROM records").fetchone()[0]
        found["journal"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return found


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: (size, mtime in ns): what a write would change."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
    }


def total_hits(url: str, **params: str) -> int:
    response = httpx.get(f"{url}/search", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return int(response.json()["collection"]["metadata"]["total_hits"])


def start_replica(
    home: Path, *, prefix: tuple[str, ...] = (), upstream: str = OFFLINE
) -> tuple[subprocess.Popen[str], str]:
    """``nivl serve --read-only`` over ``home``, once its /healthz says 200."""
    port = free_port()
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "nivl", "serve", "--read-only"]
        + ["--home", str(home), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment({"NIVL_UPSTREAM_URL": upstream}),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the replica did not become healthy: {process.communicate()}")
        time.sleep(0.1)


@contextmanager
def replica(
    home: Path, *, prefix: tuple[str, ...] = (), upstream: str = OFFLINE
) -> Iterator[tuple[str, list[str]]]:
    """A replica until the block ends; its URL and (filled in after) its stderr."""
    process, url = start_replica(home, prefix=prefix, upstream=upstream)
    errors: list[str] = []
    try:
        yield url, errors
    finally:
        process.terminate()
        errors.append(process.communicate(timeout=20)[1])


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr


# --- a consistent copy --------------------------------------------------------------


def test_a_snapshot_taken_while_an_import_runs_holds_one_revision(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    home = tmp_path / "home"
    assert nivl("import", str(write_items(tmp_path / "a.jsonl", shared_items[:300])), "--home",
                str(home)).returncode == 0  # fmt: skip
    more = [
        renamed(item, f"more-{n}-{i}", f"{LATE} {n} {item['data'][0].get('title', '')}")
        for n in range(3)
        for i, item in enumerate(shared_items)
    ]
    big = write_items(tmp_path / "more.jsonl", more)
    importing = subprocess.Popen(
        [sys.executable, "-m", "nivl", "import", str(big), "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    wait_until_locked(home / "write.lock")
    assert importing.poll() is None, "the import ended before the snapshot could start"
    snap = tmp_path / "snap"
    done = snapshot(home, snap)
    importing.communicate(timeout=300)
    assert done.returncode == 0 and importing.returncode == 0, done.stderr
    found = meta(snap / "nivl.db")
    # The import's records are all in, and each stage's mark is the store's revision.
    assert found["records"] == 300 + len(more)
    assert found["max_rev"] == int(found["grouped_rev"]) == int(found["indexed_rev"])
    assert found["journal"] == "delete"  # a read-only replica needs no -wal/-shm files
    manifest = json.loads((snap / "snapshot.json").read_text())
    assert manifest["revision"] == found["max_rev"] and manifest["records"] == found["records"]
    # Opening it (read-only) needs no rebuild and gives the answers of the home.
    read_only = read_only_mount(snap) if _can_mount() else ()
    for query in ("apollo", LATE):
        here = nivl("search", query, "--json", "--home", str(home))
        there = nivl("search", query, "--json", "--home", str(snap), prefix=read_only)
        assert there.returncode == 0 and there.stdout == here.stdout, there.stderr
        assert "rebuild" not in there.stderr and "not in" not in there.stderr, there.stderr


def test_a_killed_snapshot_leaves_no_folder_and_the_next_run_cleans_up(
    tmp_path: Path, source: Path
) -> None:
    snap = tmp_path / "snap"
    partial = tmp_path / "snap.tmp"
    killed_midway = False
    for _attempt in range(5):  # bounded: each try kills as soon as the .tmp folder appears
        process = subprocess.Popen(
            [sys.executable, "-m", "nivl", "snapshot", str(snap), "--home", str(source)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment(),
        )
        deadline = time.monotonic() + 60
        while not partial.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if not snap.exists():
            killed_midway = partial.exists()
            break
        subprocess.run(["rm", "-rf", str(snap)], check=True)  # it finished first: again
    assert killed_midway, "never caught the snapshot part-way"
    assert not snap.exists()  # a reader never sees half a snapshot
    again = snapshot(source, snap)
    assert again.returncode == 0, again.stderr
    assert not partial.exists() and (snap / "snapshot.json").is_file()
    assert meta(snap / "nivl.db")["records"] == meta(source / "nivl.db")["records"]


def test_replace_swaps_a_snapshot_for_a_newer_one(tmp_path: Path, source: Path) -> None:
    snap = tmp_path / "snap"
    assert snapshot(source, snap).returncode == 0
    one_line_error(snapshot(source, snap))  # not without --replace
    before = json.loads((snap / "snapshot.json").read_text())["created"]
    time.sleep(1.1)  # the manifest's time has whole seconds
    done = snapshot(source, snap, "--replace")
    assert done.returncode == 0, done.stderr
    assert json.loads((snap / "snapshot.json").read_text())["created"] != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]  # no .tmp, no .old


# --- refused targets: one line, nothing left behind -----------------------------------


@pytest.mark.parametrize(
    "where",
    ["the home", "inside the home", "a file", "a missing folder", "a folder of other things",
     "the home's parent"],
)  # fmt: skip
def test_a_snapshot_refuses_targets_that_would_lose_something(
    tmp_path: Path, source: Path, where: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    replace: tuple[str, ...] = ()
    target = {
        "the home": source,
        "inside the home": source / "snap",
        "a file": work / "notes.txt",
        "a missing folder": tmp_path / "missing" / "snap",
        "a folder of other things": work,
        "the home's parent": source.parent,
    }[where]
    if where == "a folder of other things":
        one_line_error(snapshot(source, target))
        replace = ("--replace",)  # --replace only ever replaces a snapshot
    before = {name: size for name, (size, _mtime) in tree(source).items()}
    one_line_error(snapshot(source, target, *replace))
    assert {name: size for name, (size, _mtime) in tree(source).items()} == before
    assert (work / "notes.txt").read_text() == "mine"
    assert not target.with_name(target.name + ".tmp").exists()


def test_snapshot_of_a_folder_that_is_no_home_is_one_line(tmp_path: Path) -> None:
    assert "no nivl.db" in one_line_error(snapshot(tmp_path / "nothing", tmp_path / "snap"))
    assert not (tmp_path / "nothing").exists() and not (tmp_path / "snap").exists()


@needs_mount
@pytest.mark.parametrize("trouble", ["read-only", "full"])
def test_a_snapshot_onto_a_read_only_or_full_disk_fails_in_one_line(
    tmp_path: Path, source: Path, trouble: str
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    if trouble == "read-only":
        prefix = read_only_mount(disk)
    else:  # a 2 MB filesystem of its own: the store alone is larger
        script = f'mount -t tmpfs -o size=2m tmpfs "{disk}" && exec "$@"'
        prefix = ("unshare", "--mount", "sh", "-c", script, "sh")
    done = nivl("snapshot", str(disk / "snap"), "--home", str(source), prefix=prefix)
    message = one_line_error(done)
    assert ("disk is full" if trouble == "full" else "cannot be written") in message, message
    assert list(disk.iterdir()) == []  # the tmpfs left with its namespace; nothing here


# --- serving a snapshot as is -----------------------------------------------------------


def test_serve_read_only_never_writes_to_the_snapshot(tmp_path: Path, source: Path) -> None:
    snap = tmp_path / "snap"
    assert snapshot(source, snap).returncode == 0
    assert (snap / BUILTIN_VECTORS_FILE).is_file()  # a replica need not embed on each open
    before = tree(snap)
    expected = total_hits_of(source, "apollo")
    with (
        serving(make_replay(RECORDS, RESPONSES)) as upstream,
        replica(snap, upstream=upstream.url) as (url, errors),
    ):
        health = httpx.get(f"{url}/healthz").json()
        assert health["read_only"]
        assert health["behind"] == {"groups": 0, "index": 0, "vectors": 0}
        assert total_hits(url, q="apollo") == expected
        assert httpx.get(f"{url}/search", params={"q": "moon"},
                         headers={"accept": "text/html"}).status_code == 200  # fmt: skip
        nasa_id = httpx.get(f"{url}/search", params={"q": "apollo"}).json()["collection"]["items"][
            0
        ]["data"][0]["nasa_id"]
        # Read through to upstream: a writable home stores the manifest, a replica never.
        assert httpx.get(f"{url}/asset/{nasa_id}").status_code == 200
    assert tree(snap) == before  # not a lock file, a WAL, a probe, a checked-files memo
    assert "Traceback" not in errors[0], errors[0]


def total_hits_of(home: Path, q: str) -> int:
    done = nivl(
        "search", q, "--json", "--collapse", "none", "--mode", "lexical", "--home", str(home)
    )
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["collection"]["metadata"]["total_hits"])


@needs_mount
def test_serve_read_only_on_a_read_only_mount(tmp_path: Path, source: Path) -> None:
    snap = tmp_path / "snap"
    assert snapshot(source, snap).returncode == 0
    with replica(snap, prefix=read_only_mount(snap)) as (url, errors):
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert total_hits(url, q="apollo") == total_hits_of(source, "apollo")
    assert "Traceback" not in errors[0] and "read-only" not in errors[0], errors[0]


def test_a_damaged_snapshot_is_searched_from_memory_and_left_as_it_is(
    tmp_path: Path, source: Path
) -> None:
    snap = tmp_path / "snap"
    assert snapshot(source, snap).returncode == 0
    damage(snap, "truncated meta.json")
    before = tree(snap)
    with replica(snap) as (url, errors):
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert total_hits(url, q="apollo") == total_hits_of(source, "apollo")
    assert tree(snap) == before  # never rebuilt on disk
    assert "in memory" in errors[0] and "Traceback" not in errors[0], errors[0]


def test_serve_read_only_of_a_folder_that_is_no_home_is_one_line(tmp_path: Path) -> None:
    done = nivl("serve", "--read-only", "--home", str(tmp_path / "nothing"), "--port",
                str(free_port()))  # fmt: skip
    assert "does not exist" in one_line_error(done)
    assert not (tmp_path / "nothing").exists()


def test_a_replica_follows_its_link_to_a_new_snapshot(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    writer = tmp_path / "writer"
    assert nivl("import", str(write_items(tmp_path / "a.jsonl", shared_items[:200])), "--home",
                str(writer)).returncode == 0  # fmt: skip
    assert snapshot(writer, tmp_path / "snap-1").returncode == 0
    link = tmp_path / "current"
    link.symlink_to("snap-1")
    late = [renamed(item, f"late-{i}", f"{LATE} {i}") for i, item in enumerate(shared_items[:5])]
    assert nivl("import", str(write_items(tmp_path / "b.jsonl", late)), "--home",
                str(writer)).returncode == 0  # fmt: skip
    assert snapshot(writer, tmp_path / "snap-2").returncode == 0
    (tmp_path / "broken").mkdir()  # a target with no snapshot in it
    with replica(link) as (url, errors):
        first = httpx.get(f"{url}/healthz").json()["revision"]
        assert total_hits(url, q=LATE) == 0
        swap(link, "broken")
        time.sleep(1.5)  # three looks at the link: the old snapshot goes on serving
        assert httpx.get(f"{url}/healthz").json()["revision"] == first
        assert total_hits(url, q=LATE) == 0
        swap(link, "snap-2")
        deadline = time.monotonic() + 30
        answers: list[int] = []  # each worker looks at the link by itself: wait for all
        while len(answers) < 10 or first in answers[-10:]:
            assert time.monotonic() < deadline, "the replica never served snap-2"
            answers.append(httpx.get(f"{url}/healthz").json()["revision"])
            time.sleep(0.05)
        assert total_hits(url, q=LATE) == 5
    assert "not serving" in errors[0] and "now serving" in errors[0], errors[0]
    assert "Traceback" not in errors[0], errors[0]


def swap(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` in one step (a new link renamed over the old)."""
    fresh = link.with_name(link.name + ".new")
    fresh.symlink_to(target)
    os.rename(fresh, link)


def test_a_killed_replicas_copy_of_the_index_is_removed_by_the_next(
    tmp_path: Path, source: Path
) -> None:
    """A read-only home's index is read through a folder of links in the temporary folder
    (tantivy takes a lock file even to read); a SIGKILLed replica cannot remove its own."""
    import tempfile

    snap = tmp_path / "snap"
    assert snapshot(source, snap).returncode == 0
    process, _url = start_replica(snap)
    copies = list(Path(tempfile.gettempdir()).glob(f"nivl-index-{process.pid}-*"))
    assert copies
    process.kill()
    process.communicate(timeout=20)
    assert all(copy.exists() for copy in copies)  # left behind by the killed process
    with replica(snap) as (url, _errors):
        assert httpx.get(f"{url}/healthz").status_code == 200
    assert not any(copy.exists() for copy in copies)


def test_media_are_copied_only_when_asked_and_never_a_partial_download(
    tmp_path: Path, source: Path
) -> None:
    home = tmp_path / "home"
    subprocess.run(["cp", "-a", str(source), str(home)], check=True)
    folder = home / "media" / "some id"
    folder.mkdir(parents=True)
    (folder / "some id~thumb.jpg").write_bytes(b"\xff\xd8 a picture")
    (folder / "some id~orig.jpg.part").write_bytes(b"half of one")
    plain, with_media = tmp_path / "plain", tmp_path / "with-media"
    assert snapshot(home, plain).returncode == 0
    assert not (plain / "media").exists()
    done = snapshot(home, with_media, "--media")
    assert done.returncode == 0 and "1 media files" in done.stderr, done.stderr
    copied = with_media / "media" / "some id"
    assert sorted(p.name for p in copied.iterdir()) == ["some id~thumb.jpg"]
    assert (copied / "some id~thumb.jpg").read_bytes() == b"\xff\xd8 a picture"


def test_a_home_opened_from_a_snapshot_hashes_no_picture_again(
    tmp_path: Path, source: Path
) -> None:
    # The pictures stage knows a hashed picture by its folder's and file's mtimes: copied
    # without them, every picture of a mirror was hashed again (and each unreadable one
    # reported again) the first time the snapshot was opened as a home.
    from PIL import Image

    home = tmp_path / "home"
    subprocess.run(["cp", "-a", str(source), str(home)], check=True)
    for nasa_id in ("S69-21783", "0002272"):
        folder = home / "media" / nasa_id
        folder.mkdir(parents=True)
        Image.new("RGB", (64, 48), (200, 30, 30)).save(folder / f"{nasa_id}~thumb.png")
    truncated = home / "media" / "0002272" / "0002272~thumb.png"
    truncated.write_bytes(truncated.read_bytes()[:60])
    first = nivl("stats", "--home", str(home))
    assert first.returncode == 0 and "not hashed (0002272)" in first.stderr, first.stderr
    assert "not hashed" not in nivl("stats", "--home", str(home)).stderr  # tried once
    time.sleep(0.05)  # a copy's mtimes would differ from the originals'
    assert snapshot(home, tmp_path / "snap", "--media").returncode == 0
    opened = nivl("stats", "--home", str(tmp_path / "snap"))
    assert opened.returncode == 0 and "not hashed" not in opened.stderr, opened.stderr
    assert tree(tmp_path / "snap" / "media") == tree(home / "media")
