"""How ``nivl serve`` listens: its socket, uvicorn's limits, and a deadline for request heads.

The socket is bound and listening before ``nivl serve`` says where it serves, so a busy port
is one clear error instead of an announcement followed by uvicorn's exit status 3. It is
created as TCP explicitly: asyncio only sets TCP_NODELAY on connections accepted from a
listener whose ``proto`` is TCP, and uvicorn's own binding leaves it 0, so Nagle's algorithm
held each keep-alive response until the client's delayed ACK, about 40 ms a request
(uvicorn issue 3149; measured here: 48 ms p50 with two workers against 6 ms with one).

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

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

from ..errors import ConfigError
from ..settings import Settings

BACKLOG = 2048  # uvicorn's default, kept: the kernel caps it at net.core.somaxconn
#: Room in the kernel for a whole answer (the kernel caps it at net.core.wmem_max): what is
#: in the kernel still reaches the client if the server is then SIGKILLed (docs/deploy.md).
SEND_BUFFER = 4 * 2**20


class ServeConfig(uvicorn.Config):
    """uvicorn's config plus the request-head deadline (picklable, for worker processes)."""

    def __init__(self, app: Any, *, header_timeout: float, **options: Any) -> None:
        super().__init__(app, **options)
        self.header_timeout = header_timeout

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
        header_timeout=settings.header_timeout,
        timeout_keep_alive=settings.keep_alive_timeout,
        limit_concurrency=settings.max_connections or None,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        backlog=BACKLOG,
        **options,
    )


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
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is late, and sending
    a response's head and body in one write (``WholeWrites``)."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = WholeWrites(transport, self.loop)  # type: ignore[assignment]
        self._watch_head()

    def handle_events(self) -> None:
        super().handle_events()
        self._watch_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        """Run the deadline while a request head is awaited (h11's IDLE); stop it after."""
        awaiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
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
