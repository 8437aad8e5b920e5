"""`nivl serve` as a user runs it: a real process on a loopback port."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from nivl.web.listener import listen

from .servers import accepted_nodelay, free_port


@contextmanager
def serving(
    home: Path, *flags: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str], list[str]]]:
    """``nivl serve`` in a process of its own until the block ends; yields its URL, the
    process and (filled in after the block) its standard error."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")} | (env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "nivl", "serve", "--port", str(port), "--home", str(home), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    url, errors = f"http://127.0.0.1:{port}", []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=2).raise_for_status()
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        yield url, process, errors
    finally:
        process.terminate()
        errors.append(process.communicate(timeout=20)[1])


def test_serve_on_an_empty_home_loads_the_sample_and_answers(tmp_path: Path) -> None:
    with serving(tmp_path / "home") as (url, _process, errors):
        assert httpx.get(f"{url}/healthz").json()["records"] == 1538
        found = httpx.get(f"{url}/search", params={"q": "apollo"}).json()
        assert found["collection"]["metadata"]["total_hits"] > 0
    assert "loading the bundled sample" in errors[0]
    assert "Traceback" not in errors[0]


def test_serve_with_two_workers_answers_from_two_processes(tmp_path: Path) -> None:
    with serving(tmp_path / "home", "--workers", "2") as (url, process, errors):
        children = [
            stat.parent.name
            for stat in Path("/proc").glob("[0-9]*/stat")
            if _parent_pid(stat) == process.pid
        ]
        with httpx.Client(base_url=url) as client:
            answers = [client.get("/search", params={"q": f"apollo {i}"}) for i in range(20)]
        assert {a.status_code for a in answers} == {200}
        assert answers[0].json()["collection"]["metadata"]["total_hits"] > 0
    assert len(children) >= 2  # uvicorn's workers (and its own helper process, if any)
    assert "Traceback" not in errors[0]
    assert process.returncode is not None


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: one process either way")
def test_serve_runs_one_worker_per_core_by_default(tmp_path: Path) -> None:
    """No --workers: as many uvicorn workers as the cores the server may use; NIVL_WORKERS=1
    (or --workers 1) still serves from the one process."""
    cores = len(os.sched_getaffinity(0))
    with serving(tmp_path / "home") as (url, process, errors):
        with httpx.Client(base_url=url) as client:
            answers = [client.get("/search", params={"q": f"apollo {i}"}) for i in range(10)]
        workers = _workers_of(process.pid)
    assert {a.status_code for a in answers} == {200}
    assert len(workers) == cores
    assert "Traceback" not in errors[0]
    with serving(tmp_path / "home", env={"NIVL_WORKERS": "1"}) as (url, process, errors):
        assert httpx.get(f"{url}/search", params={"q": "apollo"}).status_code == 200
        assert _workers_of(process.pid) == []


def _workers_of(pid: int) -> list[int]:
    """The uvicorn worker processes (forked: the same command line) below ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        if _parent_pid(stat) == pid:
            try:
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if b"serve" in cmdline:
                found.append(int(stat.parent.name))
    return found


def _parent_pid(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_a_running_server_sees_a_concurrent_import_at_once(
    tmp_path: Path, shared_items: list[dict]
) -> None:
    """Another process imports; the next request answers from the new data, not a cache."""
    import json

    from nivl import Library, Settings
    from nivl.web.app import create_app

    from .servers import running

    settings = Settings.from_env({}, home=str(tmp_path / "home"))
    first = tmp_path / "first.jsonl"
    first.write_text("\n".join(json.dumps(i) for i in shared_items[:20]))
    with Library(settings) as library:
        library.import_paths([first])
    new = json.loads(json.dumps(shared_items[30]))
    new["data"][0]["title"] = "zyzzyva the last word"
    second = tmp_path / "second.jsonl"
    second.write_text(json.dumps(new))
    with running(create_app(settings)) as url:
        before = httpx.get(f"{url}/search", params={"q": "zyzzyva"}).json()
        assert before["collection"]["metadata"]["total_hits"] == 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
        subprocess.run(
            [sys.executable, "-m", "nivl", "import", str(second), "--home", str(settings.home)],
            check=True,
            env=env,
            capture_output=True,
        )
        after = httpx.get(f"{url}/search", params={"q": "zyzzyva"}).json()
        assert after["collection"]["metadata"]["total_hits"] == 1
        assert httpx.get(f"{url}/healthz").json()["records"] == 21


def test_the_workers_listener_gets_tcp_nodelay_on_accepted_connections() -> None:
    """Without it every keep-alive response waits for a delayed ACK (uvicorn issue 3149)."""
    listener = listen("127.0.0.1", free_port())
    assert listener.proto == socket.IPPROTO_TCP

    assert asyncio.run(accepted_nodelay(listener)) != 0


def _closed_by_server(sock: socket.socket, *, trickle: bool = False) -> bool:
    """Whether the server hangs up within 30 s (sending a header line every 0.2 s if asked)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if trickle:
                sock.sendall(b"X-Slow: yes\r\n")
            if sock.recv(1024) == b"":
                return True
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return True
    return False


def test_clients_holding_partial_headers_are_disconnected(tmp_path: Path) -> None:
    """Slowloris: partial heads, a silent connection and a trickler all get hung up on,
    while a complete request on another connection is answered."""
    with serving(tmp_path / "home", env={"NIVL_HEADER_TIMEOUT": "1"}) as (url, _process, errors):
        port = int(url.rsplit(":", 1)[1])
        partial = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        silent = socket.create_connection(("127.0.0.1", port))
        trickler = socket.create_connection(("127.0.0.1", port))
        try:
            for sock in partial:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            trickler.sendall(b"GET /healthz HTTP/1.1\r\n")
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
            assert _closed_by_server(trickler, trickle=True)
            assert all(_closed_by_server(sock) for sock in [*partial, silent])
            # After a response, the next request's head has a deadline too.
            with socket.create_connection(("127.0.0.1", port)) as kept:
                kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert kept.recv(65536).startswith(b"HTTP/1.1 200")
                kept.sendall(b"GET /healthz HTTP/1.1\r\n")
                assert _closed_by_server(kept, trickle=True)
        finally:
            for sock in [*partial, silent, trickler]:
                sock.close()
    assert "Traceback" not in errors[0]


def _status_for_a_long_head(port: int, size: int, *, finish: bool) -> bytes:
    """The status line answering a head of ``size`` bytes of cookie sent before its end."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(30)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: c=" + b"x" * size)
        time.sleep(0.3)  # the server holds it as an unfinished head
        if finish:
            sock.sendall(b"\r\n\r\n")
        return sock.recv(65536).split(b"\r\n", 1)[0]


def test_unfinished_request_heads_are_held_up_to_the_header_limit(tmp_path: Path) -> None:
    """64 KiB by default: uvicorn's own 16 KiB refuses a URL holding a long pasted caption."""
    with serving(tmp_path / "home") as (url, _process, _errors):
        port = int(url.rsplit(":", 1)[1])
        assert _status_for_a_long_head(port, 40_000, finish=True) == b"HTTP/1.1 200 OK"
        assert _status_for_a_long_head(port, 70_000, finish=False) == b"HTTP/1.1 400 Bad Request"
