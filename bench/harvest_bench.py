"""``nivl harvest --all`` throughput against the local replay of upstream (tests/replay.py).

Usage::

    python bench/harvest_bench.py                          # the 1,538 shared records, no faults
    python bench/harvest_bench.py --faults 0.05            # 5% injected faults (as the tests)
    python bench/harvest_bench.py --data /tmp/nivl-bench/synth-100k.jsonl --limit 20000

Serves ``--data`` (default: the shared records, with the recorded upstream responses) from
``tests.replay`` on 127.0.0.1 in this process, runs a real ``nivl harvest --all
--base-url URL --json`` subprocess into a temporary home, and reports records/s, requests,
wall and CPU seconds (the harvest process's, and this process's, which is mostly the replay
server), and the records in the store against the distinct ``nasa_id``s served. Faults
(500, 503, 429 with Retry-After, slow answers, dropped connections) are drawn from a seeded
RNG, so a run is reproducible. Results: a table on stdout and JSON in ``bench/results/``
(git-ignored) or ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import REPO, RESULTS, load_avg, shared_records

sys.path.insert(0, str(REPO))
from tests.replay import Replay, ReplayConfig, load_recorded, serving  # noqa: E402


def read_items(path: Path, limit: int) -> list[dict[str, Any]]:
    with path.open("rb") as f:
        lines = (line for line in f if line.strip())
        return [json.loads(line) for line in itertools.islice(lines, limit or None)]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="JSONL of items to serve (default: shared)")
    parser.add_argument("--limit", type=int, default=0, help="serve only the first N items")
    parser.add_argument("--faults", type=float, default=0.0, help="fault rate, e.g. 0.05")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--slow-seconds", type=float, default=0.7, help="a 'slow' fault's delay")
    parser.add_argument("--cap", type=int, default=10_000, help="upstream's result window")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, help="nivl harvest --concurrency")
    parser.add_argument("--keep", type=Path, help="harvest into this home and keep it")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    data = args.data or shared_records()
    items = read_items(data, args.limit)
    expected = len({item["data"][0]["nasa_id"] for item in items})
    # Real recorded answers only go with the real records they were recorded over.
    recorded = load_recorded(data.parent / "responses") if args.data is None else {}
    config = ReplayConfig(
        cap=args.cap, fault_rate=args.faults, seed=args.seed, slow_seconds=args.slow_seconds
    )
    home = args.keep or Path(tempfile.mkdtemp(prefix="nivl-harvest-bench-"))
    load_start = load_avg()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    with serving(Replay(items, recorded, config)) as replay:
        command = [
            sys.executable,
            "-m",
            "nivl",
            "harvest",
            "--all",
            "--base-url",
            replay.url,
            "--page-size",
            str(args.page_size),
            "--json",
            "--home",
            str(home),
        ]
        if args.concurrency:
            command += ["--concurrency", str(args.concurrency)]
        cpu_before, own_before = children_cpu(), time.process_time()
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        harvest_cpu = children_cpu() - cpu_before
        replay_cpu = time.process_time() - own_before
        requests, faults = replay.requests, dict(replay.fault_kinds)
    try:
        summary_out: dict[str, Any] = json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        summary_out = {"stdout": done.stdout[-2000:]}
    with sqlite3.connect(home / "nivl.db") as db:
        stored = db.execute("SELECT count(*) FROM records").fetchone()[0]
    if args.keep is None:
        shutil.rmtree(home, ignore_errors=True)

    result = {
        "benchmark": "harvest",
        "started": started_at,
        "data": str(data),
        "limit": args.limit,
        "fault_rate": args.faults,
        "seed": args.seed,
        "cap": args.cap,
        "page_size": args.page_size,
        "exit_status": done.returncode,
        "expected_records": expected,
        "stored_records": stored,
        "requests": requests,
        "faults_served": faults,
        "wall_s": round(wall, 2),
        "records_per_s": round(stored / wall, 1),
        "harvest_cpu_s": round(harvest_cpu, 2),
        "records_per_cpu_s": round(stored / harvest_cpu, 1) if harvest_cpu else None,
        "replay_cpu_s": round(replay_cpu, 2),
        "harvest_summary": summary_out,
        "stderr_tail": done.stderr[-2000:] if done.returncode else "",
        "load_start": load_start,
        "load_end": load_avg(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(
        f"{'records':>9} {'expected':>9} {'requests':>8} {'faults':>6} {'wall s':>7} "
        f"{'records/s':>9} {'harvest CPU s':>13} {'records/CPU-s':>13} {'replay CPU s':>12} "
        f"{'exit':>4} {'load':>11}"
    )
    print(
        f"{stored:>9} {expected:>9} {requests:>8} {sum(faults.values()):>6} "
        f"{result['wall_s']:>7} {result['records_per_s']:>9} {result['harvest_cpu_s']:>13} "
        f"{result['records_per_cpu_s']!s:>13} {result['replay_cpu_s']:>12} "
        f"{done.returncode:>4} {load_start + '→' + result['load_end']:>11}"
    )
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
    out = args.out or RESULTS / f"harvest-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
