"""Harvest figures against the replay server: records/s, requests per 1,000 records, and
SIGKILL-then-rerun trials of the real `nivl harvest` command.

Usage: python scripts/harvest_trials.py [--trials N] [--seed S]
(from the repository root, with nivl installed or src/ on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nivl import Store, harvest  # noqa: E402
from nivl.upstream import Upstream  # noqa: E402
from tests.conftest import RECORDS, RESPONSES  # noqa: E402
from tests.replay import Replay, ReplayConfig, make_replay, serving  # noqa: E402


def speed(replay: Replay, cap: int, page_size: int, fault_rate: float) -> str:
    runs = []
    for _ in range(3):
        replay.reset(ReplayConfig(cap=cap, fault_rate=fault_rate, seed=11, slow_seconds=0.7))
        with (
            tempfile.TemporaryDirectory() as home,
            Store(Path(home) / "nivl.db") as store,
            Upstream(replay.url, timeout=0.3, sleep=lambda s: time.sleep(min(s, 0.01))) as client,
        ):
            result = harvest(store, client, page_size=page_size)
            assert result.ok and store.count() == len(replay.items)
            runs.append(result)
    seconds = statistics.median(r.seconds for r in runs)
    per_1000 = runs[0].requests / len(replay.items) * 1000
    return (
        f"cap {cap}, page_size {page_size}, faults {fault_rate:.0%}: "
        f"{len(replay.items) / seconds:,.0f} records/s (median of 3), "
        f"{runs[0].requests} requests = {per_1000:.1f} per 1,000 records, "
        f"{runs[0].retries} retries"
    )


def kill_and_rerun(replay: Replay, rng: random.Random, source: dict[str, object]) -> str:
    replay.reset(ReplayConfig(cap=100))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        command = [sys.executable, "-m", "nivl", "harvest", "--all", "--home", str(home)]
        command += ["--base-url", replay.url, "--page-size", "25", "--json"]
        kill_after = rng.randint(3, 145)
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while replay.requests < kill_after and process.poll() is None:
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at = replay.requests
        with Store(home / "nivl.db") as store:
            kept = store.count()
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        summary = json.loads(rerun.stdout)
        with Store(home / "nivl.db") as store:
            items = [json.loads(raw) for raw in store.iter_raw_by_nasa_id()]
            same = {i["data"][0]["nasa_id"]: i for i in items} == source
            integrity = store.integrity_check()
    return (
        f"killed after {killed_at} requests with {kept} records stored; rerun exit "
        f"{rerun.returncode}, resumed {summary['resumed']}, {summary['requests']} requests "
        f"({replay.requests} in all); mirror == source: {same}; integrity {integrity}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lines = RECORDS.read_text().splitlines()
    source = {json.loads(line)["data"][0]["nasa_id"]: json.loads(line) for line in lines}
    rng = random.Random(args.seed)
    with serving(make_replay(RECORDS, RESPONSES)) as replay:
        for cap, page_size, fault_rate in [(10_000, 100, 0.0), (100, 25, 0.0), (100, 25, 0.05)]:
            print(speed(replay, cap, page_size, fault_rate), flush=True)
        for trial in range(args.trials):
            print(f"trial {trial}: {kill_and_rerun(replay, rng, source)}", flush=True)


if __name__ == "__main__":
    main()
