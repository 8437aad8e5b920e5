"""Run many SIGKILL trials against `nivl import` and `nivl group` and print their outcomes.

Usage: python scripts/crash_trials.py [TRIALS] [COPIES] [import|group]
import: each trial imports COPIES × the shared records (new ids per copy) into a fresh
home, kills `nivl import` with SIGKILL at a random moment, reopens the home and reruns it.
group: one home is imported once; each trial kills `nivl group --rebuild` at a random
moment, reopens the home, reruns the rebuild and compares the groups with those before.
(`nivl harvest` has its own trials: scripts/harvest_trials.py.)
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.crash import (  # noqa: E402
    kill_group_and_rerun,
    kill_import_and_rerun,
    write_corpus,
)


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    command = sys.argv[3] if len(sys.argv) > 3 else "import"
    records = ROOT.parent / "shared/data/nasa/records.jsonl"
    items = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    rng = random.Random(2026)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        expected = write_corpus(corpus, items, copies)
        if command == "group":
            failures = group_trials(Path(tmp), corpus, trials, rng)
            trials = 0
        for trial in range(trials):
            result = kill_import_and_rerun(Path(tmp) / f"home{trial}", corpus, expected, rng)
            ok = (
                result.integrity == "ok"
                and result.index_agreed_after_open
                and result.records_after_rerun == expected
                and result.rerun_exit == 0
            )
            failures += not ok
            print(
                f"trial {trial:2}: killed after {result.killed_after:.2f}s with "
                f"{result.records_after_kill:5} records; integrity {result.integrity}; "
                f"index agreed {result.index_agreed_after_open}; rerun -> "
                f"{result.records_after_rerun}/{expected} exit {result.rerun_exit}; "
                f"{'ok' if ok else 'FAILED'}"
            )
    print(f"{trials or 'group'} trials done, {failures} failed")
    sys.exit(1 if failures else 0)


def group_trials(tmp: Path, corpus: Path, trials: int, rng: random.Random) -> int:
    import subprocess

    from tests.crash import nivl_env

    home = tmp / "group-home"
    subprocess.run(
        [sys.executable, "-m", "nivl", "import", str(corpus)],
        env=nivl_env(home),
        check=True,
        capture_output=True,
    )
    failures = 0
    for trial in range(trials):
        result = kill_group_and_rerun(home, rng)
        ok = (
            result.integrity == "ok"
            and result.index_agreed_after_open
            and result.same_groups_after_rerun
            and result.rerun_exit == 0
        )
        failures += not ok
        print(
            f"group trial {trial:2}: killed after {result.killed_after:.2f}s; integrity "
            f"{result.integrity}; index agreed {result.index_agreed_after_open}; same groups "
            f"after rerun {result.same_groups_after_rerun}; {'ok' if ok else 'FAILED'}"
        )
    return failures


if __name__ == "__main__":
    main()
