"""How ``nivl serve`` listens: its socket, uvicorn's limits, and a deadline for request heads.

The socket is bound and listening before ``nivl serve`` says where it serves, so a busy port
is one clear error instead of an announcement followed by uvicorn's exit status 3. It is
created as TCP explicitly: asyncio only sets TCP_NODELAY on connections accepted from a
listener whose ``proto`` is TCP, and uvicorn's own binding leaves it 0, so Nagle's algorithm
held each keep-alive response until the client's delayed ACK, about 40 ms a request
(uvicorn issue 3149; measured here: 48 ms p50 with two workers against 6 ms with one).

Requests are parsed by httptools (llhttp) on uvloop's event loop: for uvicorn's own layers
that is about 70 µs of CPU a request against h11's and asyncio's 160 (an app that answers
at once, loopback, keep-alive). uvloop sets TCP_NODELAY on accepted TCP connections too.

uvicorn 0.54 has no deadline for reading a request's head: a client that sends part of its
headers, or trickles them a byte at a time, holds its connection and a file descriptor for
ever (slowloris). ``HeadDeadlineProtocol`` closes a connection whose request head has not
fully arrived ``header_timeout`` seconds after the connection opened or the previous
response ended. The other limits are uvicorn's own, set from the settings (docs/settings.md).

Each worker of ``--workers N`` also stops when the supervisor is gone, SIGKILL included:
uvicorn's workers hold both ends of their health-check pipe, so nothing else tells them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from typing import Any

import httptools
import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from ..errors import ConfigError
from ..settings import Settings

BACKLOG = 2048  # uvicorn's default, kept: the kernel caps it at net.core.somaxconn
#: Room in the kernel for a whole answer (the kernel caps it at net.core.wmem_max): what is
#: in the kernel still reaches the client if the server is then SIGKILLed (docs/deploy.md).
SEND_BUFFER = 4 * 2**20
MAX_HEAD_DEFAULT = 65536  # the max_header_bytes setting's default


class ServeConfig(uvicorn.Config):
    """uvicorn's config plus the request-head deadline (picklable, for worker processes)."""

    def __init__(
        self, app: Any, *, header_timeout: float, max_header_bytes: int, **options: Any
    ) -> None:
        super().__init__(app, **options)
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes

    def load(self) -> None:
        super().load()
        parent = multiprocessing.parent_process()
        if parent is not None:  # in a worker, not in the supervisor
            threading.Thread(target=_stop_with, args=(parent,), daemon=True).start()


def _stop_with(parent: BaseProcess) -> None:
    """Shut down gracefully once ``parent`` is gone; exit if that hangs."""
    parent.join()  # until the end of file on a pipe the supervisor holds (multiprocessing's)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(3)
    os._exit(1)


def serve_config(app: Any, settings: Settings, **options: Any) -> ServeConfig:
    """The server's config: ``app`` (or an app factory's import string) with nivl's limits."""
    return ServeConfig(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        http=HeadDeadlineProtocol,
        loop="nivl.web.listener:new_event_loop",
        header_timeout=settings.header_timeout,
        max_header_bytes=settings.max_header_bytes,
        timeout_keep_alive=settings.keep_alive_timeout,
        limit_concurrency=settings.max_connections or None,
        backlog=BACKLOG,
        **options,
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """Each server process's event loop (uvicorn's ``loop`` setting): uvloop's."""
    return uvloop.new_event_loop()


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; ``ConfigError`` if it cannot be had."""
    if not 0 < port < 65536:
        raise ConfigError(f"the port must be between 1 and 65535, not {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)  # accepted inherit
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def run(config: ServeConfig, sock: socket.socket) -> None:
    """Serve on ``sock`` until interrupted, in ``config.workers`` processes."""
    if config.workers > 1:
        _fork_workers()
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


def _fork_workers() -> None:
    """Have uvicorn fork its workers from this process instead of spawning them.

    A spawned worker is a fresh interpreter that imports everything again (FastAPI,
    pydantic's models, tantivy, numpy: about a second and 80 MB of its own heap apiece);
    forked, a worker starts with the modules this process imported, shared copy-on-write,
    and only opens its own library. The caller holds no library, thread or tantivy
    handle at this point (``nivl serve`` closed the one it checked the home with).
    uvicorn 0.54 (pinned) takes the context from ``uvicorn._subprocess.spawn``.
    """
    from uvicorn import _subprocess

    from . import api, docs, ui  # noqa: F401  (what each worker's create_app imports)

    _subprocess.spawn = multiprocessing.get_context("fork")  # type: ignore[assignment]


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request head is late or
    too long, and sending a response's head and body in one write (``WholeWrites``).

    httptools (llhttp, in C) parses a request for a fraction of h11's CPU (figures above).
    It has no limit of its own on a head's size, so the bytes of an unfinished head are
    counted here: past ``max_header_bytes`` the client gets the 400 that uvicorn gives a
    request it cannot parse, and the connection is closed. The deadline runs while no
    request head is waiting for its answer: from the connection's start, and again once
    every request read so far has been answered (a pipelined head already read is not
    late).
    """

    parser: httptools.HttpRequestParser
    _head_deadline: asyncio.TimerHandle | None = None
    _unanswered = 0  # heads read whose responses have not ended
    _head_bytes: int | None = None  # bytes of an unfinished head so far; None between heads
    _finished_in_chunk = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = WholeWrites(transport, self.loop)  # type: ignore[assignment]
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        began = self._head_bytes is not None  # this chunk continues a head
        self._finished_in_chunk = False
        super().data_received(data)
        if self._head_bytes is None or self.transport.is_closing():
            return
        # A head that began in this chunk after another request ended there counts from the
        # next chunk: llhttp does not say where in the chunk it began.
        if began or not self._finished_in_chunk:
            self._head_bytes += len(data)
        if self._head_bytes > self._max_head:
            msg = "Request head too large."
            self.logger.warning(msg)
            self.send_400_response(msg)

    @property
    def _max_head(self) -> int:
        return getattr(self.config, "max_header_bytes", None) or MAX_HEAD_DEFAULT

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._unanswered += 1
        self._watch_head()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._finished_in_chunk = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._unanswered = max(0, self._unanswered - 1)
        super().on_response_complete()
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        """Run the deadline while a request head is awaited; stop it once one is read."""
        awaiting = self._unanswered == 0 and not self.transport.is_closing()
        if awaiting and self._head_deadline is None:
            timeout = getattr(self.config, "header_timeout", None)
            if timeout:
                self._head_deadline = self.loop.call_later(timeout, self._head_late)
        elif not awaiting and self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_late(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class WholeWrites:
    """A transport whose writes of one event-loop turn leave as one ``send``.

    uvicorn writes a response's status line and headers, then its body, then its end, as
    three writes; another thread holding the GIL between them left the head alone on the
    wire for milliseconds. A replica SIGKILLed then had sent headers without a body, which
    a proxy cannot retry (the client has the head already): the client got a truncated
    response. Joined, the whole response is in the kernel's send buffer or none of it has
    left, and a response not begun is one HAProxy sends to another replica.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.writelines(pending)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self._transport, name)
