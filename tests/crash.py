"""Crash trials: SIGKILL a real `nivl` process at a random moment, then check the home.

Used by tests/test_reliability.py (a few trials) and scripts/crash_trials.py (many).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nivl import Library, Settings


def write_corpus(path: Path, items: list[dict], copies: int) -> int:
    """JSONL of ``copies`` × the items, each copy with its own nasa_ids."""
    count = 0
    with path.open("w") as out:
        for copy in range(copies):
            for item in items:
                clone = json.loads(json.dumps(item))
                clone["data"][0]["nasa_id"] = f"{item['data'][0]['nasa_id']}~{copy}"
                out.write(json.dumps(clone) + "\n")
                count += 1
    return count


@dataclass
class TrialResult:
    killed_after: float
    records_after_kill: int
    integrity: str
    index_agreed_after_open: bool
    records_after_rerun: int
    rerun_exit: int


def nivl_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    env["NIVL_HOME"] = str(home)
    return env


def run_and_kill(command: list[str], home: Path, rng: random.Random, max_delay: float) -> float:
    """Start ``command`` on ``home``, SIGKILL it after a random delay; returns the delay."""
    process = subprocess.Popen(
        command, env=nivl_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    delay = rng.uniform(0.8, max_delay)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return delay


def kill_import_and_rerun(
    home: Path, corpus: Path, expected: int, rng: random.Random, *, max_delay: float = 3.5
) -> TrialResult:
    command = [sys.executable, "-m", "nivl", "import", str(corpus)]
    delay = run_and_kill(command, home, rng, max_delay)
    settings = Settings.from_env({}, home=str(home))
    with Library(settings) as library:  # opening repairs the derived index if needed
        records = library.store.count()
        integrity = library.store.integrity_check()
        agreed = library.index.agrees_with(library.store)
    rerun = subprocess.run(command, env=nivl_env(home), capture_output=True, timeout=600)
    with Library(settings) as library:
        after = library.store.count()
        assert library.index.agrees_with(library.store)
    return TrialResult(delay, records, integrity, agreed, after, rerun.returncode)


@dataclass
class GroupTrialResult:
    killed_after: float
    integrity: str
    index_agreed_after_open: bool
    same_groups_after_rerun: bool
    rerun_exit: int


def kill_group_and_rerun(
    home: Path, rng: random.Random, *, max_delay: float = 4.0
) -> GroupTrialResult:
    """SIGKILL `nivl group --rebuild` on an imported home; rerun it; compare the groups."""
    settings = Settings.from_env({}, home=str(home))
    with Library(settings) as library:
        before = library.dupes(limit=1000)
    command = [sys.executable, "-m", "nivl", "group", "--rebuild"]
    delay = run_and_kill(command, home, rng, max_delay)
    with Library(settings) as library:
        integrity = library.store.integrity_check()
        agreed = library.index.agrees_with(library.store)
    rerun = subprocess.run(command, env=nivl_env(home), capture_output=True, timeout=600)
    with Library(settings) as library:
        after = library.dupes(limit=1000)
    return GroupTrialResult(delay, integrity, agreed, before == after, rerun.returncode)
