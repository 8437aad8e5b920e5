"""``nivl serve --workers N``: uvicorn's supervisor over a listener that keeps TCP_NODELAY.

uvicorn binds the shared listener with ``proto`` 0, connections accepted from it inherit
that, and asyncio only sets TCP_NODELAY on sockets whose ``proto`` is TCP: Nagle's
algorithm then holds each keep-alive response until the client's delayed ACK, about
40 ms a request on Linux (uvicorn issue 3149; measured here: 48 ms p50 with two workers
against 6 ms with one).

Each worker also stops when the supervisor is gone, SIGKILL included: uvicorn's workers
hold both ends of their health-check pipe, so nothing else tells them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess

import uvicorn
from uvicorn.supervisors import Multiprocess


class TcpConfig(uvicorn.Config):
    def load(self) -> None:
        super().load()
        parent = multiprocessing.parent_process()
        if parent is not None:  # in a worker, not in the supervisor
            threading.Thread(target=_stop_with, args=(parent,), daemon=True).start()

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto != socket.IPPROTO_TCP:
            return tcp_socket(sock)
        return sock


def tcp_socket(sock: socket.socket) -> socket.socket:
    """The same socket, labelled as TCP (``proto`` is what asyncio reads)."""
    return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())


def _stop_with(parent: BaseProcess) -> None:
    """Shut down gracefully once ``parent`` is gone; exit if that hangs."""
    parent.join()  # until the end of file on a pipe the supervisor holds (multiprocessing's)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(3)
    os._exit(1)


def serve_workers(app: str, host: str, port: int, workers: int) -> None:
    """Run ``app`` (an import string naming an app factory) in ``workers`` processes."""
    config = TcpConfig(
        app, factory=True, workers=workers, host=host, port=port, log_level="warning"
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()
