"""`nivl serve` as a user runs it: a real process on a loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .servers import free_port


def test_serve_on_an_empty_home_loads_the_sample_and_answers(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nivl",
            "serve",
            "--port",
            str(port),
            "--home",
            str(tmp_path / "home"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert response.json()["records"] == 1538
        found = httpx.get(f"http://127.0.0.1:{port}/search", params={"q": "apollo"}).json()
        assert found["collection"]["metadata"]["total_hits"] > 0
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=20)
    assert "loading the bundled sample" in err
    assert "Traceback" not in err
