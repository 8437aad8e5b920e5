"""Two read-only replicas behind HAProxy (bench/replicas.py with docs/haproxy.cfg): one
replica SIGKILLed and restarted and a new snapshot rolled out while 8 clients search, and
not one request fails. Needs Debian's haproxy (scripts/test installs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import RECORDS

ROOT = Path(__file__).resolve().parent.parent


def test_a_replica_killed_and_a_snapshot_rolled_out_under_load_fail_no_request(
    tmp_path: Path,
) -> None:
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        pytest.skip("Debian's haproxy is not installed (scripts/test installs it)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "replicas.py"), "--json"]
        + ["--clients", "8", "--seconds", "12", "--down", "1.5"]
        + ["--data", str(RECORDS), "--tmp", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.stdout, done.stderr
    figures = json.loads(done.stdout)
    assert figures["failures"] == 0, figures["failure_examples"]
    assert done.returncode == 0, done.stderr
    events = figures["events"]
    # The kill happened under load, and HAProxy took r1 out and back in.
    assert events["killed"] < events["restarted"] < events["answering"] < events["ended"]
    states = [(e["server"], e["state"]) for e in figures["haproxy"]]
    assert states.count(("r1", "DOWN")) == 1 and states[-1] == ("r1", "UP"), states
    assert figures["redispatches"] + figures["retries"] > 0  # requests that met the dead r1
    # The roll-out reached both replicas while the clients ran, and serves the new records.
    # (the clients stop only after the roll-out; at high load it can take the whole window,
    # and the two times, rounded to 0.01 s, are then equal)
    assert events["link_swapped"] < events["rolled_out"] <= events["ended"]
    assert figures["revisions"][1] > figures["revisions"][0]
    assert figures["late_found"] == {"r1": 1, "r2": 1, "haproxy": 1}
    assert figures["served_by"]["r1"] > 0 and figures["served_by"]["r2"] > 0
    assert figures["requests"] > 100
    assert list(tmp_path.iterdir()) == []  # the work folder is removed


def test_the_deploy_guide_shows_the_haproxy_config_the_test_runs() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    config = (ROOT / "docs" / "haproxy.cfg").read_text()
    assert f"```\n{config}```" in guide


def test_a_response_head_leaves_with_its_body_in_one_send() -> None:
    """uvicorn writes head, body and end separately; joined, a replica killed between them
    has sent nothing (HAProxy retries that) rather than a head without its body (it cannot).
    A real socket pair: what the peer can read after each step is what left the process."""
    import asyncio
    import socket

    from nivl.web.listener import WholeWrites

    async def scenario() -> list[bytes]:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        joined = WholeWrites(transport, loop)  # type: ignore[arg-type]
        seen = []
        joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
        seen.append(_available(theirs))  # the head alone has not left
        joined.write(b"body")
        joined.write(b"")
        await asyncio.sleep(0)  # the end of this turn of the event loop
        await asyncio.sleep(0)
        seen.append(_available(theirs))
        joined.close()
        theirs.close()
        return seen

    assert asyncio.run(scenario()) == [b"", b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody"]


def _available(sock: object) -> bytes:
    try:
        return sock.recv(65536)  # type: ignore[attr-defined, no-any-return]
    except BlockingIOError:
        return b""
