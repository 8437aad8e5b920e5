"""``nivl serve --workers N``: uvicorn's supervisor over a listener that keeps TCP_NODELAY.

uvicorn binds the shared listener with ``proto`` 0, connections accepted from it inherit
that, and asyncio only sets TCP_NODELAY on sockets whose ``proto`` is TCP: Nagle's
algorithm then holds each keep-alive response until the client's delayed ACK, about
40 ms a request on Linux (uvicorn issue 3149; measured here: 48 ms p50 with two workers
against 6 ms with one).
"""

from __future__ import annotations

import socket

import uvicorn
from uvicorn.supervisors import Multiprocess


class TcpConfig(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto != socket.IPPROTO_TCP:
            return tcp_socket(sock)
        return sock


def tcp_socket(sock: socket.socket) -> socket.socket:
    """The same socket, labelled as TCP (``proto`` is what asyncio reads)."""
    return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())


def serve_workers(app: str, host: str, port: int, workers: int) -> None:
    """Run ``app`` (an import string naming an app factory) in ``workers`` processes."""
    config = TcpConfig(
        app, factory=True, workers=workers, host=host, port=port, log_level="warning"
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()
