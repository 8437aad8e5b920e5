"""Shared fixtures: real records from ../shared, real SQLite files and tantivy dirs in tmp."""

from __future__ import annotations

import json
import os
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
