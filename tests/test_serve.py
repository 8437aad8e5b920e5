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
