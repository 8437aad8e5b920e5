"""Shared fixtures: real records from ../shared, real SQLite files and tantivy dirs in tmp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nivl import Library, Settings

SHARED = Path(
    os.environ.get("NIVL_SHARED_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "nasa"
)
RECORDS = SHARED / "records.jsonl"
RESPONSES = SHARED / "responses"


@pytest.fixture(scope="session")
def records_path() -> Path:
    if not RECORDS.exists():
        pytest.fail(f"shared records not found at {RECORDS}")
    return RECORDS


@pytest.fixture(scope="session")
def shared_items(records_path: Path) -> list[dict]:
    return [json.loads(line) for line in records_path.read_text().splitlines() if line.strip()]


#: An upstream that refuses every connection: /asset's read-through must never reach the
#: internet from a test (a port below 1024 nobody listens on, on loopback).
OFFLINE = "http://127.0.0.1:9"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({}, home=str(tmp_path / "home"), upstream_url=OFFLINE)


@pytest.fixture
def library(settings: Settings) -> Iterator[Library]:
    with Library(settings) as lib:
        yield lib


@pytest.fixture(scope="session")
def loaded_settings(tmp_path_factory: pytest.TempPathFactory, records_path: Path) -> Settings:
    """A home with every shared record imported, built once per test session."""
    home = str(tmp_path_factory.mktemp("loaded") / "home")
    settings = Settings.from_env({}, home=home, upstream_url=OFFLINE)
    with Library(settings) as lib:
        lib.import_paths([records_path])
    return settings


@pytest.fixture(scope="session")
def loaded(loaded_settings: Settings) -> Iterator[Library]:
    """A read-mostly library over the shared records; tests must not write to it."""
    with Library(loaded_settings) as lib:
        yield lib


@pytest.fixture(scope="session")
def api_url(loaded_settings: Settings) -> Iterator[str]:
    """The real app on a loopback port, over the shared records."""
    from nivl.web.app import create_app

    from .servers import running

    with running(create_app(loaded_settings)) as url:
        yield url


@pytest.fixture(scope="session")
def http(api_url: str) -> Iterator[Any]:
    import httpx

    with httpx.Client(base_url=api_url, timeout=30) as client:
        yield client


def read_parquet(path: Path) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A Parquet file's column types and rows, read by pyarrow in a process of its own.

    The test process holds servers, thread pools and a dozen native libraries by then; a
    fresh reader sees only the file (one CI run had pyarrow crash inside the test process
    after the export itself had succeeded). Timestamps come back as ISO strings."""
    code = (
        "import json, sys, pyarrow.parquet as pq\n"
        "table = pq.read_table(sys.argv[1])\n"
        "types = {field.name: str(field.type) for field in table.schema}\n"
        "rows = table.to_pylist()\n"
        "print(json.dumps({'types': types, 'rows': rows}, default=lambda v: v.isoformat()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout)
    return read["types"], read["rows"]
