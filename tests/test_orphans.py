"""A killed nivl leaves no worker processes behind (issue 15, requirement 5).

A real ``nivl`` process that has worker processes (grouping, ``serve --workers``) is
SIGKILLed, and none of them may be left 5 s later. Processes are read from /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from nivl import Library, Settings

from .crash import nivl_env, write_corpus
from .servers import free_port

pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]

#: ``python -m nivl`` with the first argument as ``groups.BATCH_ROWS``: batches of a few
#: hundred rows give a small home many batches, so the workers live long enough to be
#: seen (the default, 20,000 rows, would need a home of more than that).
NIVL_WITH_BATCH_ROWS = (
    "import runpy, sys, nivl.groups; nivl.groups.BATCH_ROWS = int(sys.argv.pop(1)); "
    "runpy.run_module('nivl', run_name='__main__', alter_sys=True)"
)
BATCH_ROWS = 300
COPIES = 4  # of the shared records: about 6,000 records, 20 batches


def processes() -> dict[int, tuple[int, int, str]]:
    """pid → (parent pid, session id, state) of every process, from /proc/<pid>/stat."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (command) "
        found[int(entry.name)] = (int(fields[1]), int(fields[3]), fields[0])
    return found


def living(pids: dict[int, tuple[int, int, str]]) -> dict[int, tuple[int, int, str]]:
    return {pid: info for pid, info in pids.items() if info[2] not in "ZX"}


@dataclass
class Killed:
    children: list[int]  # the command's child processes when it was killed
    left: list[int]  # its session's processes still alive 5 s later


def kill_when_ready(
    command: list[str],
    env: dict[str, str],
    ready: Callable[[int], bool],
) -> Killed:
    """Start ``command`` in a session of its own; SIGKILL it once ``ready(pid)`` and it
    has child processes. Whatever is left after 5 s is reported, then killed."""
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its session id is its pid, and its children's
    )
    session = process.pid
    try:
        deadline = time.monotonic() + 120
        children: list[int] = []
        while not children:
            assert process.poll() is None, "it finished before it was ready"
            assert time.monotonic() < deadline, "it never got ready"
            if ready(session):
                children = [p for p, (pp, _, _) in living(processes()).items() if pp == session]
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        left: list[int] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            left = [p for p, (_, sid, _) in living(processes()).items() if sid == session]
            if not left:
                break
            time.sleep(0.05)
        return Killed(children, left)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid, (_, sid, _) in living(processes()).items():  # never leave them behind
            if sid == session:
                os.kill(pid, signal.SIGKILL)


def kill_while_grouping(home: Path, *args: str) -> Killed:
    """``nivl ARGS``, SIGKILLed as soon as it has worker processes."""
    command = [sys.executable, "-c", NIVL_WITH_BATCH_ROWS, str(BATCH_ROWS), *args]
    return kill_when_ready(command, nivl_env(home), lambda pid: True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, shared_items: list[dict]) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "copies.jsonl"
    write_corpus(path, shared_items, COPIES)
    return path


needs_cores = pytest.mark.skipif(
    (os.cpu_count() or 1) < 2, reason="one core: grouping forks no workers"
)


@needs_cores
def test_killing_nivl_group_rebuild_leaves_no_worker(tmp_path: Path, corpus: Path) -> None:
    home = tmp_path / "home"
    with Library(Settings.from_env({}, home=str(home))) as library:
        library.import_paths([corpus])  # one batch at the default size: no workers here
    killed = kill_while_grouping(home, "group", "--rebuild")
    assert killed.children
    assert killed.left == []


@needs_cores
def test_killing_an_import_while_it_groups_leaves_no_worker(tmp_path: Path, corpus: Path) -> None:
    killed = kill_while_grouping(tmp_path / "home", "import", str(corpus))
    assert killed.children
    assert killed.left == []


def test_killing_nivl_serve_with_workers_leaves_no_worker(tmp_path: Path) -> None:
    port = free_port()
    env = {**nivl_env(tmp_path / "home"), "NIVL_LOAD_SAMPLE": "false"}
    command = [sys.executable, "-m", "nivl", "serve", "--workers", "2", "--port", str(port)]

    def answering(_pid: int) -> bool:  # then the workers have loaded the app
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            time.sleep(0.2)
            return False

    killed = kill_when_ready(command, env, answering)
    assert len(killed.children) >= 2
    assert killed.left == []
