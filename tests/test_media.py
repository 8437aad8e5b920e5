"""Issue 16: /asset for every record (read-through), /media serving, ``nivl media fetch``.

Everything over loopback: the replay server (tests/replay.py) stands in for upstream and
for the assets host, a real nivl app serves a home that only imported the shared records,
and the CLI runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

import nivl
from nivl.library import Library
from nivl.media import disk_name, file_name
from nivl.settings import Settings

from .conftest import OFFLINE, RECORDS, RESPONSES
from .replay import MEDIA_FAULTS, Replay, ReplayConfig, make_replay, serving
from .servers import running


@pytest.fixture(scope="module")
def replay() -> Iterator[Replay]:
    with serving(make_replay(RECORDS, RESPONSES)) as server:
        yield server


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home holding the shared records and nothing else (no manifests, no media)."""
    home = tmp_path_factory.mktemp("media") / "home"
    with Library(Settings.from_env({}, home=str(home), upstream_url=OFFLINE)) as library:
        library.import_paths([RECORDS])
    return home


def _copy_home(src: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("write.lock"))
    return dest


@pytest.fixture
def online(imported: Path, tmp_path: Path, replay: Replay) -> Iterator[tuple[str, Path]]:
    """nivl over a fresh copy of the imported home, with the replay server as upstream."""
    from nivl.web.app import create_app

    home = _copy_home(imported, tmp_path / "home")
    settings = Settings.from_env({}, home=str(home), upstream_url=replay.url)
    replay.reset()
    with running(create_app(settings)) as url:
        yield url, home


def test_asset_reads_through_upstream_and_keeps_it(
    online: tuple[str, Path], replay: Replay
) -> None:
    url, home = online
    with httpx.Client(base_url=url, timeout=30) as http:
        recorded = http.get("/asset/PIA04778")
        assert recorded.status_code == 200
        # Verbatim: the recorded upstream bytes for this request, as upstream sent them.
        assert recorded.content == (RESPONSES / "asset__PIA04778__src-NickBansal.json").read_bytes()

        built = http.get("/asset/0002272")  # none recorded: built from the record's names
        assert built.status_code == 200
        hrefs = [i["href"] for i in built.json()["collection"]["items"]]
        assert "https://images-assets.nasa.gov/image/0002272/0002272~thumb.jpg" in hrefs
        asked = replay.requests
        again = http.get("/asset/0002272")
        assert again.content == built.content and replay.requests == asked  # stored
    with Library(Settings.from_env({}, home=str(home), upstream_url=OFFLINE)) as library:
        assert library.asset("0002272")["manifest"] is not None  # survives upstream's going


def test_asset_offline_gives_a_reason_and_unknown_ids_ask_nobody(
    imported: Path, tmp_path: Path, replay: Replay
) -> None:
    from nivl.web.app import create_app

    home = _copy_home(imported, tmp_path / "home")
    replay.reset()
    with running(create_app(Settings.from_env({}, home=str(home), upstream_url=OFFLINE))) as url:
        response = httpx.get(f"{url}/asset/0002272", timeout=30)
        assert response.status_code == 503
        assert "nivl harvest --all" in response.json()["reason"]
    settings = Settings.from_env({}, home=str(home), upstream_url=replay.url)
    with running(create_app(settings)) as url:
        assert httpx.get(f"{url}/asset/not-a-record", timeout=30).status_code == 404
    assert replay.requests == 0


def _rebased(api_url: str):  # type: ignore[no-untyped-def]
    """``requests.get`` with upstream's base URL swapped for nivl's: the one change."""
    import requests

    real = requests.get

    def get(url: str, *args: Any, **kwargs: Any) -> Any:
        return real(url.replace("https://images-api.nasa.gov", api_url), *args, **kwargs)

    return get


@pytest.mark.filterwarnings("ignore:`langchain-community` is being sunset:DeprecationWarning")
def test_langchain_and_nasapy_get_manifests(
    online: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import nasapy.api
    from langchain_community.utilities import nasa

    url, _ = online
    monkeypatch.setattr(nasa, "IMAGE_AND_VIDEO_LIBRARY_URL", url)
    manifest: Any = nasa.NasaAPIWrapper().get_media_metadata_manifest("PIA04778")
    hrefs = [i["href"] for i in manifest["collection"]["items"]]
    assert "http://images-assets.nasa.gov/image/PIA04778/PIA04778~orig.jpg" in hrefs

    monkeypatch.setattr(nasapy.api.requests, "get", _rebased(url))
    items = nasapy.media_asset_manifest("0002272")
    assert "https://images-assets.nasa.gov/image/0002272/0002272~orig.jpg" in [
        i["href"] for i in items
    ]


@pytest.mark.filterwarnings("ignore:`langchain-community` is being sunset:DeprecationWarning")
def test_real_clients_offline_get_the_reason(
    imported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nasapy.api
    import requests
    from langchain_community.utilities import nasa

    from nivl.web.app import create_app

    home = _copy_home(imported, tmp_path / "home")
    with running(create_app(Settings.from_env({}, home=str(home), upstream_url=OFFLINE))) as url:
        monkeypatch.setattr(nasa, "IMAGE_AND_VIDEO_LIBRARY_URL", url)
        answer: Any = nasa.NasaAPIWrapper().get_media_metadata_manifest("0002272")
        assert "could not be reached" in answer["reason"]
        monkeypatch.setattr(nasapy.api.requests, "get", _rebased(url))
        with pytest.raises(requests.exceptions.HTTPError):  # nasapy raises on any non-200
            nasapy.media_asset_manifest("0002272")


# --- /media -----------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, bytes, Path]]:
    """A home with one mirrored file, one unfinished download and a symlink outside."""
    from nivl.web.app import create_app

    home = tmp_path / "home"
    folder = home / "media" / "PIA01234"
    folder.mkdir(parents=True)
    data = bytes(range(256)) * 40  # 10,240 bytes
    (folder / "PIA01234~thumb.jpg").write_bytes(data)
    (folder / "PIA01234~small.jpg.part").write_bytes(b"half")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the media folder")
    (folder / "link.jpg").symlink_to(secret)
    (home / "media" / "linked").symlink_to(tmp_path)
    settings = Settings.from_env({}, home=str(home), upstream_url=OFFLINE, load_sample=False)
    with running(create_app(settings)) as url:
        yield url, data, home


def test_media_serves_files_with_ranges_etag_and_types(served: tuple[str, bytes, Path]) -> None:
    url, data, home = served
    with httpx.Client(base_url=url, timeout=30) as http:
        whole = http.get("/media/PIA01234/PIA01234~thumb.jpg")
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-type"] == "image/jpeg"
        assert whole.headers["accept-ranges"] == "bytes"
        assert "max-age" in whole.headers["cache-control"]
        etag = whole.headers["etag"]

        part = http.get("/media/PIA01234/PIA01234~thumb.jpg", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        tail = http.get("/media/PIA01234/PIA01234~thumb.jpg", headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == data[-10:]
        outside = http.get(
            "/media/PIA01234/PIA01234~thumb.jpg", headers={"Range": f"bytes={len(data) + 5}-"}
        )
        assert outside.status_code == 416

        cached = http.get("/media/PIA01234/PIA01234~thumb.jpg", headers={"If-None-Match": etag})
        assert cached.status_code == 304 and not cached.content
        assert http.get("/media/PIA01234/x~thumb.jpg").status_code == 404
    # The UI's contract: complete files only, with their URL paths.
    with Library(Settings.from_env({}, home=str(home), upstream_url=OFFLINE)) as library:
        assert library.local_media("PIA01234") == {
            "PIA01234~thumb.jpg": "/media/PIA01234/PIA01234~thumb.jpg"
        }
        assert library.local_media("PIA99999") == {}


@pytest.mark.parametrize(
    "path",
    [
        "/media/PIA01234/PIA01234~small.jpg.part",  # unfinished: never served
        "/media/PIA01234/link.jpg",  # a symlink to a file outside
        "/media/linked/secret.txt",  # a symlinked folder
        "/media/PIA01234/..%2F..%2Fsecret.txt",
        "/media/%2E%2E/secret.txt",
        "/media/PIA01234/%2e%2e",
        "/media/..%2F..%2F..%2Fetc/passwd",
        "/media/PIA01234/..%5C..%5Csecret.txt",
    ],
)
def test_media_serves_nothing_outside_the_folder(
    served: tuple[str, bytes, Path], path: str
) -> None:
    url, _, _ = served
    with httpx.Client(base_url=url, timeout=30) as http:
        response = http.get(path)
        assert response.status_code == 404, path
        assert "outside" not in response.text


# --- nivl media fetch ---------------------------------------------------------------


def _nivl(home: Path, replay: Replay, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    env["PYTHONPATH"] = str(Path(nivl.__file__).resolve().parents[1])
    env["NIVL_UPSTREAM_URL"] = env["NIVL_ASSETS_URL"] = replay.url
    command = [sys.executable, "-m", "nivl", "media", *args, "--home", str(home)]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _media_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "media").rglob("*") if p.is_file())


def test_media_fetch_survives_sigkill_and_faults_and_fetches_nothing_twice(
    imported: Path, tmp_path: Path, replay: Replay
) -> None:
    home = _copy_home(imported, tmp_path / "home")
    replay.reset(ReplayConfig(fault_rate=0.05, faults=MEDIA_FAULTS, seed=16, retry_after="0"))
    first = _nivl(home, replay, "fetch", "--size", "thumb", "--retries", "8", "--json")
    deadline = time.monotonic() + 120
    while len(_media_files(home)) < 300 and first.poll() is None:
        assert time.monotonic() < deadline, "the first run made no progress"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    done_before = {p for p in _media_files(home) if not p.name.endswith(".part")}
    assert 0 < len(done_before) < 1465  # killed midway
    first_log = list(replay.media_log)

    second = _nivl(home, replay, "fetch", "--size", "thumb", "--retries", "8", "--json")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    summary = json.loads(out)
    assert summary["ok"] and summary["failed"] == []
    assert summary["already"] == len(done_before)
    assert replay.faults_served > 0 and replay.fault_kinds["cut"] > 0

    files = _media_files(home)
    assert not [p for p in files if p.name.endswith(".part")]
    thumbs = {p for p in files if p.name.endswith("~thumb.jpg")}
    assert len(thumbs) == len(files) == summary["already"] + summary["fetched"]
    # Every thumbnail the manifests name is here, byte for byte what upstream serves.
    expected = set()
    with Library(Settings.from_env({}, home=str(home), upstream_url=OFFLINE)) as library:
        for line in RECORDS.read_text().splitlines():
            nasa_id = json.loads(line)["data"][0]["nasa_id"]
            manifest = json.loads(library.asset(nasa_id)["manifest"] or "null")
            for entry in manifest["collection"]["items"]:
                if "~thumb." in entry["href"].rsplit("/", 1)[-1]:
                    expected.add((nasa_id, entry["href"]))
    assert len(thumbs) == len(expected) > 1400
    for nasa_id, href in expected:
        path = home / "media" / disk_name(nasa_id) / file_name(href)
        assert path.read_bytes() == replay.file(unquote(urlsplit(href).path)), path

    # None fetched twice: no request in the rerun for a file the first run completed, and
    # one whole (un-ranged, uncut) answer per file over both runs, but for the few in
    # flight when the first run was killed (before their first bytes reached the disk).
    rerun_log = replay.media_log[len(first_log) :]
    completed = {p.name for p in done_before}
    assert not {path for path, _, _ in rerun_log if file_name(path) in completed}
    whole = Counter(path for path, rng, status in replay.media_log if status == 200 and not rng)
    twice = {path for path, count in whole.items() if count > 1}
    assert max(whole.values()) <= 2 and len(twice) <= 4  # --concurrency 4
    assert twice <= {path for path, _, _ in first_log}
    resumed = [rng for _, rng, status in rerun_log if rng]
    assert all(rng.startswith("bytes=") and not rng.startswith("bytes=0-") for rng in resumed)

    status = _nivl(home, replay, "status", "--json")
    out, err = status.communicate(timeout=60)
    report = json.loads(out)
    assert report["files"] == len(files) and report["partial_files"] == 0
    assert report["bytes"] == sum(p.stat().st_size for p in files)


def test_media_fetch_keeps_to_the_disk_budget(
    imported: Path, tmp_path: Path, replay: Replay
) -> None:
    home = _copy_home(imported, tmp_path / "home")
    replay.reset()
    run = _nivl(home, replay, "fetch", "apollo", "--size", "thumb", "--max-bytes", "50000")
    run.communicate(timeout=300)
    used = sum(p.stat().st_size for p in _media_files(home))
    assert 0 < used <= 50_000
    assert run.returncode == 0
    # Once a file did not fit, no more were asked for (4 in flight at most).
    assert len(replay.media_log) <= len(_media_files(home)) + 4


def test_media_fetch_usage_errors(imported: Path, tmp_path: Path, replay: Replay) -> None:
    run = _nivl(imported, replay, "fetch", "--size", "huge")
    _, err = run.communicate(timeout=60)
    assert run.returncode == 2 and "Traceback" not in err
    assert "huge" in err


def test_harvest_with_media_fetches_the_topic_files(tmp_path: Path, replay: Replay) -> None:
    """``nivl harvest --media SIZE``: the records, their manifests, then their files."""
    replay.reset()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    env["PYTHONPATH"] = str(Path(nivl.__file__).resolve().parents[1])
    env["NIVL_ASSETS_URL"] = replay.url
    command = [sys.executable, "-m", "nivl", "harvest", "--query", "mars", "--home", str(home)]
    command += ["--base-url", replay.url, "--media-type", "video", "--media", "thumb", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    received = json.loads(done.stdout)["received"]
    folders = [p for p in (home / "media").iterdir() if p.is_dir()]
    assert received > 0 and len(folders) == received  # every video has a ~thumb.jpg
    assert all(f.name.endswith("~thumb.jpg") for d in folders for f in d.iterdir())
