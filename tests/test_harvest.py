"""The harvester end to end: real store and index in tmp, upstream replayed on loopback."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import nivl
from nivl import derived
from nivl.harvest import HarvestResult, harvest
from nivl.search_index import SearchIndex
from nivl.store import Store
from nivl.upstream import Upstream

from .conftest import RECORDS, RESPONSES
from .replay import Replay, ReplayConfig, make_replay, serving


@pytest.fixture(scope="module")
def source() -> dict[str, dict[str, Any]]:
    items = [json.loads(line) for line in RECORDS.read_text().splitlines() if line.strip()]
    return {item["data"][0]["nasa_id"]: item for item in items}


@pytest.fixture
def replay() -> Iterator[Replay]:
    with serving(make_replay(RECORDS, RESPONSES)) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "nivl.db") as opened:
        yield opened


def client(url: str, **options: Any) -> Upstream:
    """Real waits are asked for (and checked elsewhere); here each is cut to 10 ms at most."""
    options = {"timeout": 0.5, "sleep": lambda s: time.sleep(min(s, 0.01)), **options}
    return Upstream(url, rng=random.Random(0), **options)


def run(store: Store, replay: Replay, index: SearchIndex | None = None, **options: Any) -> Any:
    """A harvest writes the store only; with an index, the derived stages run after it."""
    with client(replay.url, **options.pop("client", {})) as upstream:
        result = harvest(store, upstream, **options)
    if index is not None:
        result.indexed = derived.update(store, index).rows["index"]
    return result


def mirror(store: Store) -> dict[str, dict[str, Any]]:
    items = [json.loads(raw) for raw in store.iter_raw_by_nasa_id()]
    return {item["data"][0]["nasa_id"]: item for item in items}


def year(item: dict[str, Any]) -> str:
    return str(item["data"][0]["date_created"])[:4]


def test_a_full_harvest_is_the_source_exactly(
    tmp_path: Path, store: Store, replay: Replay, source: dict[str, dict[str, Any]]
) -> None:
    index = SearchIndex(tmp_path / "index")
    result = run(store, replay, index)
    assert result.ok and not result.resumed
    assert mirror(store) == source  # every id, every item verbatim
    assert (result.new, result.received, result.indexed) == (1538, 1538, 1538)
    assert index.num_docs() == 1538
    assert result.requests == replay.requests == 17  # 13 + 3 + 1 pages of 100
    assert store.get_meta("harvest:last") is not None

    again = run(store, replay, index)  # a finished run is not resumed: it is done again
    assert again.ok and not again.resumed
    assert (again.new, again.updated, again.unchanged, again.indexed) == (0, 0, 1538, 0)
    assert mirror(store) == source


def test_a_low_paging_cap_is_met_by_splitting(
    store: Store, replay: Replay, source: dict[str, dict[str, Any]]
) -> None:
    replay.reset(ReplayConfig(cap=100))
    result = run(store, replay, page_size=25)
    assert result.ok, result.as_dict()
    assert mirror(store) == source
    assert store.get_meta("harvest:window") == "100"  # learnt from the first refused page
    split_by_center = {p["center"] for _, p in replay.log if "center" in p}
    assert {"GRC", "HQ"} <= split_by_center  # image 2019 (191 items) needed centers
    deepest = max(int(p.get("page", 1)) * 25 for _, p in replay.log)
    assert deepest == 125  # only the first partitions, before the window was known


def test_beyond_centers_probes_reach_the_rest(
    store: Store, replay: Replay, source: dict[str, dict[str, Any]]
) -> None:
    # image 2013: 91 records, 82 of them JPL's, and PIA16676 with no center at all.
    replay.reset(ReplayConfig(cap=50))
    result = run(store, replay, page_size=25, media_type="image", year_start=2013, year_end=2013)
    assert result.ok, result.as_dict()
    wanted = {k: v for k, v in source.items() if v["data"][0]["media_type"] == "image"}
    wanted = {k: v for k, v in wanted.items() if year(v) == "2013"}
    assert mirror(store) == wanted and "PIA16676" in wanted
    probes = [p for _, p in replay.log if set(p) & {"keywords", "title"}]
    assert probes and all(p["year_start"] == "2013" for p in probes)


def test_what_nothing_reaches_is_reported_with_counts(
    store: Store, replay: Replay, source: dict[str, dict[str, Any]]
) -> None:
    replay.reset(ReplayConfig(cap=30))
    result = run(store, replay, page_size=10, media_type="image", year_start=2017, year_end=2017)
    assert not result.ok and not result.failed
    [problem] = result.incomplete
    label = "media_type=image year_start=2017 year_end=2017 center=GSFC"
    assert (problem.partition, problem.expected, problem.received) == (label, 66, 65)
    assert "beyond the result window" in problem.reason
    wanted = {k for k, v in source.items() if v["data"][0]["media_type"] == "image"}
    wanted &= {k for k, v in source.items() if year(v) == "2017"}
    got = mirror(store)
    [missing] = wanted - set(got)  # the one record the report counts, and nothing else
    assert source[missing]["data"][0]["center"] == "GSFC" and set(got) <= wanted


def test_a_topic_splits_by_media_type_years_and_centers_and_says_what_it_missed(
    store: Store, replay: Replay, source: dict[str, dict[str, Any]]
) -> None:
    replay.reset(ReplayConfig(cap=30))
    result = run(store, replay, q="mars", page_size=10)
    problems = {p.partition: (p.expected, p.received) for p in result.incomplete}
    assert problems == {  # a topic's leaves are not probed: the store cannot tell q's matches
        "q=mars media_type=image year_start=2004 year_end=2004 center=JPL": (34, 30),
        "q=mars media_type=image year_start=2013 year_end=2013 center=JPL": (33, 30),
    }
    replay.reset()
    _, document = replay.search({"q": "mars", "page_size": "1000"})
    matching = {item["data"][0]["nasa_id"] for item in document["collection"]["items"]}
    got = mirror(store)
    assert set(got) <= matching and len(matching - set(got)) == 4 + 3
    assert all(got[k] == source[k] for k in got)


def test_five_percent_faults_lose_nothing(
    store: Store, replay: Replay, source: dict[str, dict[str, Any]]
) -> None:
    replay.reset(ReplayConfig(cap=100, fault_rate=0.05, seed=11, slow_seconds=0.7))
    result = run(store, replay, page_size=25, client={"timeout": 0.3})
    assert result.ok, result.as_dict()
    assert mirror(store) == source
    assert replay.faults_served >= 5 and len(replay.fault_kinds) >= 4  # of the five kinds
    assert result.retries >= replay.faults_served


def nivl_harvest(home: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    env["PYTHONPATH"] = str(Path(nivl.__file__).resolve().parents[1])
    command = [sys.executable, "-m", "nivl", "harvest", "--all", "--home", str(home)]
    command += ["--base-url", url, "--page-size", "25", "--json", "--no-assets", *extra]
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    """As in a terminal: a test run from a background job inherits SIGINT ignored, and
    Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [12, 60])
def test_sigkill_then_rerun_ends_with_the_same_mirror(
    tmp_path: Path, replay: Replay, source: dict[str, dict[str, Any]], kill_after: int
) -> None:
    replay.reset(ReplayConfig(cap=100))
    home = tmp_path / "home"
    process = nivl_harvest(home, replay.url)
    deadline = time.monotonic() + 60
    while replay.requests < kill_after and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    with Store(home / "nivl.db") as killed:
        kept = killed.count()
    assert kept < len(source)
    before = replay.requests

    rerun = nivl_harvest(home, replay.url)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    summary = json.loads(out)
    assert summary["resumed"] and summary["ok"]
    with Store(home / "nivl.db") as resumed:
        assert mirror(resumed) == source
        assert resumed.integrity_check() == "ok"
    # The rerun continued: together both runs asked little more than one uninterrupted run.
    assert summary["requests"] == replay.requests - before
    assert replay.requests <= 150 + 4 + 2  # one uninterrupted run: 150; ≤ 4 in flight lost


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(
    tmp_path: Path, replay: Replay, source: dict[str, dict[str, Any]]
) -> None:
    held = threading.Event()

    def hold_after_30(_path: str, _params: Mapping[str, str]) -> bool:
        """Stall the harvest at its 30th request until Ctrl-C is sent: on a fast machine it
        could otherwise finish before the signal lands."""
        if replay.requests >= 30:
            held.wait(30)
        return False

    replay.reset(ReplayConfig(cap=100, fail=hold_after_30))
    home = tmp_path / "home"
    process = nivl_harvest(home, replay.url)
    deadline = time.monotonic() + 60
    while replay.requests < 30 and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)  # the signal lands while requests are held
    held.set()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err  # typer turns KeyboardInterrupt into Exit(130)
    rerun = nivl_harvest(home, replay.url)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert json.loads(out)["resumed"]
    with Store(home / "nivl.db") as resumed:
        assert mirror(resumed) == source


def test_since_revisits_only_recent_partitions_and_updates_changes(
    tmp_path: Path, store: Store, replay: Replay, source: dict[str, dict[str, Any]]
) -> None:
    index = SearchIndex(tmp_path / "index")
    full = run(store, replay, index, this_year=2024)
    assert full.ok and store.get_meta("harvest:last") == "2024"
    edited = next(i for i, item in enumerate(replay.items) if year(item) == "2021")
    changed = json.loads(json.dumps(replay.items[edited]))
    changed["data"][0]["title"] = "Retitled upstream since the last harvest"
    replay.items[edited] = changed
    replay.reset()

    result = run(store, replay, index, since=2020, this_year=2024)
    assert result.ok and (result.updated, result.new, result.indexed) == (1, 0, 1)
    recent = sum(1 for item in source.values() if year(item) >= "2020")
    assert result.received == recent
    searches = [params for path, params in replay.log if path == "/search"]
    assert searches and all(int(p["year_start"]) >= 2020 for p in searches)
    assert len(searches) < full.requests
    nasa_id = changed["data"][0]["nasa_id"]
    assert json.loads(store.get_raw(nasa_id)) == changed
    assert store.get_meta("harvest:last") == "2024"

    replay.reset()
    last = run(store, replay, index, since="last", this_year=2025)
    assert last.ok and last.received == sum(1 for i in source.values() if year(i) >= "2024")
    assert all(int(p["year_start"]) >= 2024 for _, p in replay.log)
    assert store.get_meta("harvest:last") == "2025"  # everything from the mark on was revisited

    run(store, replay, index, since=2010, media_type="audio", this_year=2026)
    assert store.get_meta("harvest:last") == "2025"  # one media type does not move it


@pytest.mark.slow
def test_a_failing_partition_is_reported_and_nothing_else_is_lost(
    tmp_path: Path, replay: Replay, source: dict[str, dict[str, Any]]
) -> None:
    def image_2017(path: str, params: Any) -> bool:
        return params.get("media_type") == "image" and params.get("year_start") == "2017"

    replay.reset(ReplayConfig(cap=100, fail=image_2017))
    home = tmp_path / "home"
    failing = nivl_harvest(home, replay.url, "--retries", "1")
    out, err = failing.communicate(timeout=120)
    assert failing.returncode == 1
    summary = json.loads(out)
    assert [p["partition"] for p in summary["failed"]] == [
        "media_type=image year_start=2017 year_end=2017"
    ]
    assert "failed: media_type=image year_start=2017 year_end=2017" in err
    with Store(home / "nivl.db") as partial:
        got = mirror(partial)
    lost = {k for k, item in source.items() if item["data"][0]["media_type"] == "image"}
    lost &= {k for k, item in source.items() if year(item) == "2017"}
    assert set(source) - lost <= set(got)  # some of image 2017 came with wider partitions
    assert lost - set(got) and all(got[k] == source[k] for k in got)

    replay.reset(ReplayConfig(cap=100))  # upstream recovers: the same command finishes
    rerun = nivl_harvest(home, replay.url)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert json.loads(out)["resumed"]
    searches = [params for path, params in replay.log if path == "/search"]
    assert all(image_2017("/search", p) for p in searches)  # only the failed partition
    with Store(home / "nivl.db") as finished:
        assert mirror(finished) == source


def test_a_topic_with_its_asset_manifests(
    store: Store, replay: Replay, source: dict[str, dict[str, Any]]
) -> None:
    result: HarvestResult = run(store, replay, q="mars", with_assets=True)
    got = mirror(store)
    assert result.ok and "PIA04778" in got and len(got) == result.received
    assert all(got[k] == source[k] for k in got)
    recorded = (RESPONSES / "asset__PIA04778__src-NickBansal.json").read_text()
    assert store.get_asset("PIA04778")["manifest"] == recorded
    # The rest are built by the replay server from each record's own rendition names.
    assert result.assets == result.received
    for nasa_id, item in got.items():
        manifest = store.get_asset(nasa_id)["manifest"]
        assert manifest is not None
        hrefs = {i["href"] for i in json.loads(manifest)["collection"]["items"]}
        for link in item.get("links") or []:
            if link["href"].endswith("~thumb.jpg") and nasa_id != "PIA04778":
                assert link["href"] in hrefs
    assert store.nasa_ids_without_asset() == []

    paths = [path for path, _ in replay.log]
    videos = sum(1 for item in got.values() if item["data"][0]["media_type"] == "video")
    assert sum(p.startswith("/captions/") for p in paths) == videos > 0  # for videos only
    assert sum(p.startswith("/asset/") for p in paths) == len(got)

    replay.reset()
    again = run(store, replay, q="mars", with_assets=True)
    assert again.assets == 0 and all(path == "/search" for path, _ in replay.log)


def test_the_command_line_over_the_library(
    tmp_path: Path, replay: Replay, source: dict[str, dict[str, Any]]
) -> None:
    from typer.testing import CliRunner

    from nivl.cli import app

    runner = CliRunner()
    home = ["--home", str(tmp_path / "home"), "--base-url", replay.url]
    assert runner.invoke(app, ["harvest", *home]).exit_code == 2  # neither --all nor --query
    assert runner.invoke(app, ["harvest", "--all", "--since", "soon", *home]).exit_code == 2
    assert replay.requests == 0

    query = ["harvest", "--query", "mars", "--media-type", "video", "--no-assets", *home]
    done = runner.invoke(app, query)
    assert done.exit_code == 0, done.output
    with Store(tmp_path / "home" / "nivl.db") as store:
        got = mirror(store)
    assert got and all(got[k] == source[k] for k in got)
    assert {item["data"][0]["media_type"] for item in got.values()} == {"video"}
    assert all(
        p == {"q": "mars", "media_type": "video", "page_size": "100", "page": "1"}
        for _, p in replay.log
    )
