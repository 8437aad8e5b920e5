"""``nivl serve``'s HTTP protocol (web/listener.py) on a loopback socket, around a small app.

The app here is a few lines of ASGI so that a response can be made slow on purpose; what is
tested is the listener nivl serves with: uvicorn's httptools protocol plus nivl's request-head
deadline and head-size cap (test_serve.py runs the same through ``nivl serve`` itself).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from nivl.settings import Settings
from nivl.web.listener import listen, serve_config

from .servers import accepted_nodelay, free_port


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/slow`` answers after a second and a half; everything else at once."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(1.5)
    body = f"{scope['method']} {scope['path']}".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def listening(tmp_path: Path, **limits: Any) -> Iterator[int]:
    """The listener ``nivl serve`` uses, in a thread, on a free port; yields the port."""
    settings = Settings(home=tmp_path, port=free_port(), **limits)
    sock = listen(settings.host, settings.port)
    server = uvicorn.Server(serve_config(app, settings, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield settings.port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _responses(sock: socket.socket, count: int) -> list[bytes]:
    """The next ``count`` responses' status lines and bodies (``b""`` for each one missing)."""
    reader = sock.makefile("rb")
    found = []
    for _ in range(count):
        status = reader.readline().strip()
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        found.append(status + b" " + reader.read(length) if status else b"")
    return found


def test_pipelined_requests_waiting_their_turn_are_not_cut_off_by_the_head_deadline(
    tmp_path: Path,
) -> None:
    """Two slow requests in one send: the second head was read while the first was answered,
    so the deadline, which restarts when a response ends, must not run for it."""
    with listening(tmp_path, header_timeout=0.5) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n" * 2)
            assert _responses(sock, 2) == [b"HTTP/1.1 200 OK GET /slow"] * 2


def test_a_keep_alive_connection_serves_request_after_request_and_head_without_a_body(
    tmp_path: Path,
) -> None:
    with listening(tmp_path, header_timeout=1) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            for method in ("GET", "HEAD", "GET", "HEAD", "GET"):
                sock.sendall(f"{method} /page HTTP/1.1\r\nHost: a\r\n\r\n".encode())
                sock.settimeout(20)
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += sock.recv(1)
                assert head.startswith(b"HTTP/1.1 200 OK"), head
                # No body follows a HEAD's head: the next response starts right after it.
                assert f"content-length: {len(method) + 6}\r\n".encode() in head
                if method == "GET":
                    assert sock.recv(100) == b"GET /page"


def test_a_head_trickled_past_the_header_limit_gets_a_400_and_is_closed(
    tmp_path: Path,
) -> None:
    """Counted over every read of an unfinished head, not only the read it ends in."""
    with listening(tmp_path, max_header_bytes=8192) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(b"GET /page HTTP/1.1\r\nHost: a\r\n")
            sock.settimeout(0.05)
            answer = b""
            for _ in range(40):  # 40 lines of 500 bytes, each in a read of its own
                try:
                    sock.sendall(b"X-Filler: " + b"x" * 488 + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break
                try:
                    answer += sock.recv(65536)
                except TimeoutError:
                    continue
                if answer:
                    break
            assert answer.startswith(b"HTTP/1.1 400 Bad Request"), answer
        # Under the limit, the same head in the same pieces is answered.
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(b"GET /page HTTP/1.1\r\nHost: a\r\n")
            for _ in range(10):
                sock.sendall(b"X-Filler: " + b"x" * 488 + b"\r\n")
                time.sleep(0.02)
            sock.sendall(b"\r\n")
            assert _responses(sock, 1) == [b"HTTP/1.1 200 OK GET /page"]


def test_a_request_after_one_that_ended_in_the_same_read_is_answered(tmp_path: Path) -> None:
    """A head that begins in the read where the previous request ended is not counted from
    that read: a long first request does not count against the next one's head."""
    with listening(tmp_path, max_header_bytes=4096) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            first = b"GET /page?" + b"q" * 3000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
            sock.sendall(first + b"GET /next HTTP/1.1\r\nHost: a\r\n" + b"X-A: " + b"a" * 2000)
            time.sleep(0.3)
            sock.sendall(b"\r\n\r\n")
            assert _responses(sock, 2) == [
                b"HTTP/1.1 200 OK GET /page",
                b"HTTP/1.1 200 OK GET /next",
            ]


def test_the_served_event_loop_sets_tcp_nodelay_on_accepted_connections(tmp_path: Path) -> None:
    """The loop ``nivl serve`` runs (uvloop) must set it too: without it every keep-alive
    response waits for the client's delayed ACK (test_serve.py checks asyncio's)."""
    config = serve_config(app, Settings(home=tmp_path), lifespan="off")
    factory = config.get_loop_factory()
    assert factory is not None
    listener = listen("127.0.0.1", free_port())

    with asyncio.Runner(loop_factory=factory) as runner:
        assert type(runner.get_loop()).__module__.startswith("uvloop")
        assert runner.run(accepted_nodelay(listener)) != 0
