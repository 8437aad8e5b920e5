"""Crash safety, a full disk and hostile data, with real processes and files."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from nivl import Library, Settings, parse_request
from nivl.web.app import create_app

from .crash import kill_import_and_rerun, nivl_env, write_corpus
from .servers import running


@pytest.mark.slow
def test_sigkill_during_import_loses_nothing(tmp_path: Path, shared_items: list[dict]) -> None:
    corpus = tmp_path / "corpus.jsonl"
    expected = write_corpus(corpus, shared_items, 6)
    rng = random.Random(7)
    for trial in range(3):
        result = kill_import_and_rerun(tmp_path / f"home{trial}", corpus, expected, rng)
        assert result.integrity == "ok"
        assert result.index_agreed_after_open
        assert result.rerun_exit == 0
        assert result.records_after_rerun == expected


def test_a_full_disk_is_reported_and_the_store_stays_usable(
    tmp_path: Path, shared_items: list[dict]
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    expected = write_corpus(corpus, shared_items, 3)
    home = tmp_path / "home"
    env = {**nivl_env(home), "NIVL_MAX_DB_MB": "6"}
    done = subprocess.run(
        [sys.executable, "-m", "nivl", "import", str(corpus)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "disk is full" in done.stderr
    assert "Traceback" not in done.stderr
    settings = Settings.from_env({}, home=str(home))
    with Library(settings) as library:
        kept = library.store.count()
        assert 0 < kept < expected
        assert kept % 1000 == 0  # whole batches only, never half of one
        assert library.store.integrity_check() == "ok"
        assert library.index.agrees_with(library.store)
        assert library.search(parse_request({"q": "apollo"})).total_hits > 0
    rerun = subprocess.run(
        [sys.executable, "-m", "nivl", "import", str(corpus)],
        env=nivl_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    with Library(settings) as library:
        assert library.store.count() == expected


HOSTILE = [
    ("<script>alert(1)</script>", "a <img src=x onerror=alert(1)> caption"),
    ("javascript:alert(1)", '<a href="javascript:alert(1)">click</a>'),
    ("\u202eevil\u202c title", "control \x01\x02\x1b[31m chars and RTL \u202e override"),
    ("huge", "moon " * 200_000),
]


@pytest.fixture
def hostile_library(library: Library, tmp_path: Path) -> Library:
    path = tmp_path / "hostile.jsonl"
    items = []
    for n, (title, description) in enumerate(HOSTILE):
        nasa_id = ["../../etc/passwd", "a%00b", "id with ' quote; DROP TABLE records", "x" * 300][n]
        items.append(
            {
                "href": f"https://images-assets.nasa.gov/image/{nasa_id}/collection.json",
                "data": [
                    {
                        "nasa_id": nasa_id,
                        "media_type": "image",
                        "title": title,
                        "description": description,
                        "center": "JSC",
                        "date_created": "2020-01-01T00:00:00Z",
                        "keywords": ["<b>bold</b>", "x" * 10_000],
                    }
                ],
                "links": [{"href": "javascript:alert(1)", "rel": "preview", "render": "image"}],
            }
        )
    path.write_text("\n".join(json.dumps(i) for i in items))
    summary = library.import_paths([path])
    assert summary.new == len(HOSTILE)
    library.hostile_items = items  # type: ignore[attr-defined]
    return library


def test_hostile_records_are_stored_verbatim_and_searchable(hostile_library: Library) -> None:
    items = hostile_library.hostile_items  # type: ignore[attr-defined]
    for item in items:
        nasa_id = item["data"][0]["nasa_id"]
        assert json.loads(hostile_library.store.get_raw(nasa_id)) == item
        found = hostile_library.search(parse_request({"nasa_id": nasa_id}))
        assert found.total_hits == 1
    assert (
        hostile_library.search(parse_request({"q": "script alert", "match": "all"})).total_hits == 1
    )
    big = hostile_library.search(parse_request({"q": "moon", "highlight": "true"}))
    assert big.total_hits == 1 and len(big.hits[0].highlight["description"]) < 1000
    marked = hostile_library.search(parse_request({"q": "onerror", "highlight": "true"}))
    assert "<img" not in marked.hits[0].highlight["description"]
    assert "&lt;img" in marked.hits[0].highlight["description"]


def test_hostile_records_over_http(hostile_library: Library) -> None:
    from urllib.parse import quote

    items = hostile_library.hostile_items  # type: ignore[attr-defined]
    with running(create_app(hostile_library.settings, library=hostile_library)) as url:
        for item in items:
            nasa_id = item["data"][0]["nasa_id"]
            response = httpx.get(f"{url}/search", params={"nasa_id": nasa_id})
            assert response.json()["collection"]["items"] == [item]
            location = httpx.get(f"{url}/metadata/{quote(nasa_id, safe='')}").json()
            assert location["location"].startswith("https://images-assets.nasa.gov/")


@pytest.mark.slow
def test_sigkill_during_group_rebuild_changes_nothing(
    tmp_path: Path, shared_items: list[dict]
) -> None:
    from .crash import kill_group_and_rerun

    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, shared_items, 3)
    home = tmp_path / "home"
    subprocess.run(
        [sys.executable, "-m", "nivl", "import", str(corpus)],
        env=nivl_env(home),
        check=True,
        capture_output=True,
    )
    rng = random.Random(11)
    for _trial in range(2):
        result = kill_group_and_rerun(home, rng, max_delay=3.0)
        assert result.integrity == "ok"
        assert result.index_agreed_after_open
        assert result.rerun_exit == 0
        assert result.same_groups_after_rerun
