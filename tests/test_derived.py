"""Derived state kept by one owner: one snapshot per request, homes that heal, one home
per directory, one writer at a time, and a home that can be read without writing.

Issue 15's cases, each as an operator meets them: real ``nivl`` processes, a real
server on loopback, real damaged files.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from nivl import Library, Settings, embeddings
from nivl.store import Store

from .servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    env["PYTHONPATH"] = f"{ROOT / 'src'}:{env.get('PYTHONPATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return {**env, **(extra or {})}


def nivl(
    *args: str,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "nivl", *args],
        capture_output=True,
        text=True,
        env=environment(env),
        cwd=cwd,
        timeout=300,
    )


@contextmanager
def serving(
    home: Path, *, cwd: Path | str | None = None, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, list[str]]]:
    """``nivl serve`` in a process of its own until the block ends; yields its URL and
    (filled in after the block) its standard error. Up once /healthz answers at all."""
    port = free_port()
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "nivl", "serve", "--port", str(port), "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        cwd=cwd,
    )
    url, errors = f"http://127.0.0.1:{port}", []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        yield url, errors
    finally:
        process.terminate()
        errors.append(process.communicate(timeout=20)[1])


def write_items(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def renamed(item: dict[str, Any], nasa_id: str, title: str) -> dict[str, Any]:
    copy = json.loads(json.dumps(item))
    copy["data"][0]["nasa_id"] = nasa_id
    copy["data"][0]["title"] = title
    copy["data"][0]["description"] = f"{title}: a record made for this test"
    return copy


@pytest.fixture
def home(tmp_path: Path, records_path: Path) -> Path:
    """A home holding the shared records (imported by ``nivl import``)."""
    home = tmp_path / "home"
    done = nivl("import", str(records_path), "--home", str(home))
    assert done.returncode == 0, done.stderr
    return home


def damage(home: Path, kind: str) -> None:
    """What a bad disk or a stray write does to the index's files."""
    index = home / "index"
    term = sorted(glob.glob(str(index / "*.term")))[0]
    if kind == "random bytes in a .term file":
        with open(term, "r+b") as handle:
            handle.seek(1000)
            handle.write(random.Random(1).randbytes(20_000))
    elif kind == "footer magic mismatch":
        with open(term, "r+b") as handle:
            handle.seek(-8, os.SEEK_END)
            handle.write(b"\xff" * 8)
    elif kind == "truncated meta.json":
        meta = index / "meta.json"
        meta.write_bytes(meta.read_bytes()[:500])
    else:
        raise AssertionError(kind)


DAMAGE = ["random bytes in a .term file", "footer magic mismatch", "truncated meta.json"]


# --- heal, don't brick ------------------------------------------------------------


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_index_is_rebuilt_by_any_command_that_opens_the_home(
    home: Path, kind: str
) -> None:
    expected = nivl("search", "apollo", "--home", str(home)).stdout
    damage(home, kind)
    healed = nivl("search", "apollo", "--home", str(home))
    assert healed.returncode == 0, healed.stderr
    assert healed.stdout == expected
    message = [line for line in healed.stderr.splitlines() if line.strip()]
    assert len(message) == 1 and "damaged" in message[0] and "rebuilding" in message[0], message
    again = nivl("stats", "--home", str(home))
    assert again.returncode == 0 and again.stderr == ""  # healed for good


@pytest.mark.parametrize("kind", DAMAGE)
def test_index_rebuild_works_on_an_index_that_cannot_be_opened(home: Path, kind: str) -> None:
    damage(home, kind)
    rebuilt = nivl("index", "--rebuild", "--home", str(home))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "the index holds 1538" in rebuilt.stderr
    assert "Traceback" not in rebuilt.stderr


@pytest.mark.skipif(not embeddings.available(), reason="needs the [semantic] extra")
def test_a_damaged_vector_file_is_set_aside_and_search_goes_on(home: Path) -> None:
    expected = nivl("search", "apollo", "--home", str(home)).stdout  # the built-in model's
    (home / "vectors.usearch").write_bytes(random.Random(3).randbytes(100_000))
    found = nivl("search", "apollo", "--home", str(home))  # hybrid by default: opens it
    assert found.returncode == 0, found.stderr
    assert found.stdout == expected  # the extra has nothing embedded: the built-in model ranks
    assert "vector index" in found.stderr and "damaged" in found.stderr
    assert "Traceback" not in found.stderr
    assert nivl("search", "apollo", "--home", str(home)).stderr == ""


def test_serve_rebuilds_a_damaged_index_and_answers(home: Path) -> None:
    damage(home, "footer magic mismatch")
    with serving(home) as (url, errors):
        found = httpx.get(f"{url}/search", params={"q": "apollo"}).json()
        assert found["collection"]["metadata"]["total_hits"] > 0
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    assert "damaged" in errors[0] and "rebuilding it from the store" in errors[0]
    assert "Traceback" not in errors[0]


def test_an_index_opened_between_a_rebuilds_two_renames_waits_for_the_new_one(
    home: Path,
) -> None:
    """``rebuild_index`` moves the old index away, then the new one in. A process opening
    the home in between once made an empty index there and answered from it (seen as
    ``total_hits`` 0 from one of two serve workers while the other rebuilt)."""
    index, away = home / "index", home / "index.old"
    with (home / "write.lock").open("a") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)  # a rebuild holds the lock...
        os.rename(index, away)  # ...and is between its two renames
        search = subprocess.Popen(
            [sys.executable, "-m", "nivl", "search", "apollo", "--json", "--home", str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
        deadline = time.monotonic() + 120
        while search.poll() is None and not _holds_open(search.pid, home / "write.lock"):
            assert time.monotonic() < deadline, "the search neither waited nor finished"
            time.sleep(0.05)
        os.rename(away, index)  # the rebuild's second rename: fails if an index was made
    out, err = search.communicate(timeout=120)
    assert search.returncode == 0, err
    assert json.loads(out)["collection"]["metadata"]["total_hits"] > 0


def _holds_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (it waits for the lock on it)."""
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                    return True
    return False


def test_an_index_damaged_under_a_running_server_fails_as_json_then_heals(
    tmp_path: Path, records_path: Path
) -> None:
    """Files damaged while served: tantivy panics (a BaseException) become the JSON 500
    with a request id, /healthz says 503, and the server rebuilds the index."""
    from nivl.web.app import create_app

    from .servers import running

    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    with Library(settings) as library:
        library.import_paths([records_path])
    with running(create_app(settings)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        for name in glob.glob(str(settings.index_path / "*.fast")):
            with open(name, "r+b") as handle:  # in place: the server's mapped files change
                handle.write(b"\xff" * (os.path.getsize(name) - 100))  # tantivy panics on it
        with (settings.home / "write.lock").open("a") as writer:  # an import is running:
            fcntl.flock(writer.fileno(), fcntl.LOCK_EX)  # the server cannot rebuild yet
            failed = httpx.get(f"{url}/search", params={"q": "apollo"})
            assert failed.status_code == 500
            assert failed.headers["content-type"] == "application/json"
            body = failed.json()
            assert body["request_id"] == failed.headers["x-request-id"] and body["reason"]
            health = httpx.get(f"{url}/healthz")
            assert health.status_code == 503 and health.json()["status"] == "failing"
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/healthz").status_code != 200:  # the lock is free: it heals
            assert time.monotonic() < deadline, "the server did not rebuild its index"
            time.sleep(0.2)
        found = httpx.get(f"{url}/search", params={"q": "apollo"})
        assert found.status_code == 200 and found.json()["collection"]["metadata"]["total_hits"]


# --- one snapshot per request -------------------------------------------------------


WORD = "zyzzyvas"
IMPORTS = 60


def check_page(params: dict[str, str], body: dict[str, Any]) -> list[str]:
    """What one answer must hold if it came from one revision of the index."""
    problems = []
    collection = body["collection"]
    total = collection["metadata"]["total_hits"]
    items = collection["items"]
    facets = collection["metadata"].get("facets", {})
    if params.get("collapse", "none") == "none":
        if len(items) != min(total, int(params["page_size"])):
            problems.append(f"{len(items)} items for {total} hits")
        if "media_type" in params.get("facets", "") and sum(facets["media_type"].values()) != total:
            problems.append(f"facets {facets} for {total} hits")
    for item in items:
        title = item["data"][0]["title"]
        if WORD not in title:
            problems.append(f"item {title!r} does not match")
        marked = item.get("highlight", {}).get("title", "")
        if params.get("highlight") and WORD not in marked.replace("<b>", "").replace("</b>", ""):
            problems.append(f"highlight {marked!r} is another record's")
    return problems


def test_each_request_sees_one_snapshot_while_imports_run(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    """16 clients against ``nivl serve`` while one-record imports run in a loop (each a
    new segment, and every few a merge that renumbers the segments): no
    errors ("Invalid segment_ord"), every answer consistent with one revision, and
    a client never sees fewer records than it saw before."""
    home = tmp_path / "home"
    assert (
        nivl(
            "import", write_items(tmp_path / "base.jsonl", shared_items[:300]), "--home", str(home)
        ).returncode
        == 0
    )
    stop = threading.Event()
    problems: list[str] = []
    answers = [0]
    queries = [
        {"q": WORD, "page_size": "3", "facets": "media_type", "highlight": "true"},
        {"q": WORD, "page_size": "40", "highlight": "true"},
        {"q": WORD, "page_size": "50", "facets": "media_type,center,year", "sort": "date_desc"},
        {"q": WORD, "page_size": "5", "collapse": "event", "highlight": "true"},
        {"q": WORD, "page_size": "2", "collapse": "caption", "facets": "media_type"},
    ]

    def client(number: int) -> None:
        seen = 0
        with httpx.Client(base_url=url, timeout=60) as http:
            while not stop.is_set():
                params = queries[number % len(queries)]
                response = http.get("/search", params=params)
                if response.status_code != 200:
                    problems.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                body = response.json()
                problems.extend(check_page(params, body))
                total = body["collection"]["metadata"]["total_hits"]
                if params.get("collapse", "none") == "none":
                    if total < seen:
                        problems.append(f"{total} hits after {seen}")
                    seen = max(seen, total)
                answers[0] += 1

    with serving(home) as (url, errors):
        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        imports = 0
        try:  # imports from this process: quicker than `nivl import`s, so more reloads
            with Library(Settings.from_env({}, home=str(home)), sync=False) as writer:
                for n in range(IMPORTS):
                    item = renamed(shared_items[300 + n], f"soak-{n}", f"{WORD} number {n}")
                    writer.import_paths([write_items(tmp_path / f"{n}.jsonl", [item])])
                    imports += 1
                    time.sleep(0.05)  # let the server reload between imports
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        final = httpx.get(f"{url}/search", params={"q": WORD}).json()
    assert problems == [], problems[:5]
    assert answers[0] > 100
    assert final["collection"]["metadata"]["total_hits"] == imports == IMPORTS
    assert "Traceback" not in errors[0]


def test_threads_searching_while_another_library_imports_each_read_one_snapshot(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    """The race itself, at full speed: 16 threads refresh and search one ``Library`` (as
    the server's request threads do) while a second one imports a record at a time.
    Before snapshots: "Invalid segment_ord", tantivy panics and other records' values
    (43 faults in 60 imports)."""
    from nivl import parse_request

    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    with Library(settings) as library:
        library.import_paths([write_items(tmp_path / "base.jsonl", shared_items[:300])])
    reader = Library(settings)
    requests = [
        parse_request({"q": WORD, "page_size": "40", "highlight": "true"}, reader.limits),
        parse_request(
            {"q": WORD, "page_size": "5", "collapse": "event", "highlight": "true"},
            reader.limits,
        ),
        parse_request({"q": WORD, "page_size": "7", "facets": "media_type"}, reader.limits),
    ]
    stop = threading.Event()
    problems: list[str] = []
    answers = [0]

    def client(number: int) -> None:
        seen = 0
        while not stop.is_set():
            reader.refresh()
            request = requests[number % len(requests)]
            try:
                result = reader.search(request)
            except BaseException as exc:  # a tantivy panic is a BaseException
                problems.append(repr(exc)[:100])
                continue
            for hit in result.hits:
                if WORD not in json.loads(hit.raw)["data"][0]["title"]:
                    problems.append("another record's item")
                if hit.highlight is not None and WORD not in hit.highlight.get("title", ""):
                    problems.append("another record's highlight")
            if request.facets and sum(result.facets["media_type"].values()) != result.total_hits:
                problems.append("facets from another revision")
            if request.collapse == "none":
                if len(result.hits) != min(result.total_hits, request.page_size):
                    problems.append("a page that is not its hit count's")
                if result.total_hits < seen:
                    problems.append("fewer hits than before")
                seen = max(seen, result.total_hits)
            answers[0] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    try:
        with Library(settings, sync=False) as writer:
            for n in range(IMPORTS):
                item = renamed(shared_items[300 + n], f"race-{n}", f"{WORD} number {n}")
                writer.import_paths([write_items(tmp_path / "one.jsonl", [item])])
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        reader.close()
    assert problems == [], problems[:5]
    assert answers[0] > 1000


def test_a_view_taken_before_a_reload_still_answers_from_its_revision(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    """A request that began before an import and a merge finishes on what it began with."""
    from nivl import parse_request

    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    with Library(settings) as library:
        library.import_paths([write_items(tmp_path / "base.jsonl", shared_items[:100])])
        request = parse_request({"q": WORD, "highlight": "true", "facets": "media_type"})
        with Library(settings, sync=False) as writer:
            for n in range(3):
                item = renamed(shared_items[100 + n], f"view-{n}", f"{WORD} number {n}")
                writer.import_paths([write_items(tmp_path / "one.jsonl", [item])])
            library.refresh()
            view = library.view()
            for n in range(3, 20):  # enough single-record segments for merges
                item = renamed(shared_items[100 + n], f"view-{n}", f"{WORD} number {n}")
                writer.import_paths([write_items(tmp_path / "one.jsonl", [item])])
        library.refresh()
        old = library.search(request, view=view)
        new = library.search(request)
    assert (old.total_hits, new.total_hits) == (3, 20)
    assert sum(old.facets["media_type"].values()) == 3
    assert sorted(json.loads(h.raw)["data"][0]["nasa_id"] for h in old.hits) == [
        "view-0",
        "view-1",
        "view-2",
    ]
    assert all(WORD in (h.highlight or {}).get("title", "") for h in old.hits)


# --- one home, however it is spelled ------------------------------------------------


def test_two_spellings_of_one_home_are_one_home(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    """``nivl serve --home data`` sees ``nivl import --home /abs/data`` at once."""
    first = write_items(tmp_path / "first.jsonl", shared_items[:20])
    assert nivl("import", str(first), "--home", "data", cwd=tmp_path).returncode == 0
    new = renamed(shared_items[30], "spelling-1", f"{WORD} spelled twice")
    second = write_items(tmp_path / "second.jsonl", [new])
    with serving(Path("data"), cwd=tmp_path) as (url, _errors):
        done = nivl("import", str(second), "--home", str(tmp_path / "data"))
        assert done.returncode == 0, done.stderr
        found = httpx.get(f"{url}/search", params={"q": WORD}).json()
        assert found["collection"]["metadata"]["total_hits"] == 1


def test_marks_kept_under_path_spellings_carry_over_without_reindexing(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    """The migration moves ``indexed_rev:{path}`` marks to the stage's name."""
    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    with Library(settings) as library:
        library.import_paths([write_items(tmp_path / "a.jsonl", shared_items[:50])])
        top = library.store.max_rev()
    conn = sqlite3.connect(settings.db_path)
    with conn:
        conn.execute("DELETE FROM meta WHERE key = 'indexed_rev'")
        conn.execute("DELETE FROM _migrations WHERE name = 'm004_stage_marks'")
        conn.execute(
            "INSERT INTO meta VALUES (?, ?), (?, ?)",
            (f"indexed_rev:{settings.index_path}", str(top), "indexed_rev:home/index", str(top)),
        )
    conn.close()
    with Library(settings, sync=False) as library:
        assert library.store.get_meta("indexed_rev") == str(top)
        assert library.store.get_meta(f"indexed_rev:{settings.index_path}") is None
        assert library.reindex() == 0  # the mark carried over: nothing to index again


# --- one writer at a time -----------------------------------------------------------


def test_a_second_writer_is_told_to_try_again_and_writes_nothing(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    home = tmp_path / "home"
    big = [
        renamed(item, f"big-{n}-{i}", item["data"][0].get("title", ""))
        for n in range(8)
        for i, item in enumerate(shared_items)
    ]
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nivl",
            "import",
            str(write_items(tmp_path / "big.jsonl", big)),
            "--home",
            str(home),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:
        wait_until_locked(home / "write.lock")
        other = renamed(shared_items[0], "second-writer", "the second writer's record")
        second = nivl(
            "import", str(write_items(tmp_path / "one.jsonl", [other])), "--home", str(home)
        )
        overlapped = first.poll() is None  # refused while the first was still writing
    finally:
        first_err = first.communicate(timeout=600)[1]
    assert overlapped
    assert first.returncode == 0, first_err
    assert second.returncode == 1
    assert second.stderr.strip() == (
        f"nivl: another nivl process is writing to {home}; try again"
    ), second.stderr
    with Store(home / "nivl.db") as store:
        assert store.count() == len(big)  # nothing of the refused import was committed
    assert nivl("import", str(tmp_path / "one.jsonl"), "--home", str(home)).returncode == 0


def test_an_import_waits_for_a_readers_brief_catch_up_but_not_for_a_writer(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    """A running server takes the write lock for a few milliseconds now and then (its
    catch-up, a heal, a remembered manifest): an import meeting that waits, where an
    import meeting another writer is refused at once (the test above)."""
    home = tmp_path / "home"
    assert (
        nivl(
            "import", str(write_items(tmp_path / "a.jsonl", shared_items[:5])), "--home", str(home)
        ).returncode
        == 0
    )
    one = write_items(tmp_path / "b.jsonl", [renamed(shared_items[5], "after-catch-up", "x")])
    from nivl.derived import WriteLock

    reader = WriteLock(home)  # as a server's catch-up takes it
    assert reader.acquire(brief=True)
    timer = threading.Timer(1.5, reader.release)
    timer.start()
    started = time.monotonic()
    try:
        waited = nivl("import", str(one), "--home", str(home))
    finally:
        timer.cancel()
        reader.release()
    assert waited.returncode == 0, waited.stderr
    assert time.monotonic() - started >= 1.5  # it really met the held lock
    with Store(home / "nivl.db") as store:
        assert store.count() == 6

    writer = WriteLock(home)  # as another import takes it
    assert writer.acquire()
    try:
        refused = nivl("import", str(one), "--home", str(home))
    finally:
        writer.release()
    assert refused.returncode == 1
    assert "another nivl process is writing" in refused.stderr


def wait_until_locked(path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists():
            with path.open("a") as handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        time.sleep(0.01)
    raise AssertionError("the first import never took the write lock")


# --- reading never requires writing -------------------------------------------------


def read_only_mount(folder: Path) -> tuple[str, ...]:
    """A command prefix that runs the command with ``folder`` mounted read-only (a mount
    namespace of its own): even root cannot write there, as on a read-only mount."""
    script = (
        f'mount --bind "{folder}" "{folder}" && mount -o remount,ro,bind "{folder}" && exec "$@"'
    )
    return ("unshare", "--mount", "sh", "-c", script, "sh")


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run([*read_only_mount(Path("/tmp")), "true"], capture_output=True)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs unshare and mount (root)")


def stale_home(folder: Path, items: list[dict[str, Any]]) -> Path:
    """A home whose store holds 10 records more than its groups and index have seen."""
    from nivl.records import parse_item

    home = folder / "home"
    assert (
        nivl(
            "import", str(write_items(folder / "a.jsonl", items[:200])), "--home", str(home)
        ).returncode
        == 0
    )
    with Store(home / "nivl.db") as store:
        extra = [
            renamed(item, f"late-{i}", f"{WORD} late {i}") for i, item in enumerate(items[200:210])
        ]
        store.upsert_records(parse_item(item) for item in extra)
    return home


@needs_mount
def test_a_read_only_home_searches_and_reports_stale_state(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    home = stale_home(tmp_path, shared_items)
    ro = read_only_mount(tmp_path)
    found = nivl("search", "apollo", "--home", str(home), "--json", prefix=ro)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["collection"]["metadata"]["total_hits"] > 0
    assert "read-only" in found.stderr and "10 records not in groups" in found.stderr
    stats = nivl("stats", "--json", "--home", str(home), prefix=ro)
    assert stats.returncode == 0 and json.loads(stats.stdout)["records"] == 210
    refused = nivl("import", str(tmp_path / "a.jsonl"), "--home", str(home), prefix=ro)
    assert refused.returncode == 1 and "read-only" in refused.stderr
    assert "Traceback" not in found.stderr + stats.stderr + refused.stderr


@needs_mount
def test_a_read_only_home_is_served(tmp_path: Path, shared_items: list[dict[str, Any]]) -> None:
    home = stale_home(tmp_path, shared_items)
    with serving(home, prefix=read_only_mount(tmp_path)) as (url, errors):
        health = httpx.get(f"{url}/healthz")
        assert health.status_code == 200
        assert health.json()["read_only"] and health.json()["behind"]["index"] == 10
        found = httpx.get(f"{url}/search", params={"q": "apollo"})
        assert found.status_code == 200 and found.json()["collection"]["metadata"]["total_hits"]
        page = httpx.get(f"{url}/search", params={"q": "apollo"}, headers={"accept": "text/html"})
        assert page.status_code == 200
    assert "read-only" in errors[0] and "Traceback" not in errors[0], errors[0]


@needs_mount
def test_a_read_only_home_with_a_damaged_index_searches_a_copy_in_memory(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    home = tmp_path / "home"
    assert (
        nivl(
            "import",
            str(write_items(tmp_path / "a.jsonl", shared_items)),
            "--home",
            str(home),
        ).returncode
        == 0
    )
    expected = nivl("search", "apollo", "--home", str(home)).stdout
    damage(home, "truncated meta.json")
    found = nivl("search", "apollo", "--home", str(home), prefix=read_only_mount(tmp_path))
    assert found.returncode == 0, found.stderr
    assert found.stdout == expected
    assert "in memory" in found.stderr


def test_a_full_store_can_still_be_read(tmp_path: Path, shared_items: list[dict[str, Any]]) -> None:
    """After an import that filled the disk, opening must not need to write: stats and
    search answer from what is there and say what is stale."""
    home = tmp_path / "home"
    env = {"NIVL_MAX_DB_MB": "8"}  # the cap stands in for the disk
    big = [
        renamed(item, f"full-{n}-{i}", item["data"][0].get("title", ""))
        for n in range(8)
        for i, item in enumerate(shared_items)
    ]
    full = nivl(
        "import", str(write_items(tmp_path / "big.jsonl", big)), "--home", str(home), env=env
    )
    assert full.returncode == 1 and "disk is full" in full.stderr  # some batches committed
    for args in (["stats", "--json"], ["search", "apollo", "--json"]):
        done = nivl(*args, "--home", str(home), env=env)
        assert done.returncode == 0, done.stderr
        assert "disk is full" in done.stderr and "records not in" in done.stderr
        json.loads(done.stdout)
