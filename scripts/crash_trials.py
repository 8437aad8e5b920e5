"""Run many SIGKILL-during-import trials and print their outcomes.

Usage: python scripts/crash_trials.py [TRIALS] [COPIES]
Each trial imports COPIES × the shared records (new ids per copy) into a fresh home,
kills `nivl import` with SIGKILL at a random moment, reopens the home, and reruns the import.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.crash import kill_import_and_rerun, write_corpus  # noqa: E402


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    records = ROOT.parent / "shared/data/nasa/records.jsonl"
    items = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    rng = random.Random(2026)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        expected = write_corpus(corpus, items, copies)
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
    print(f"{trials} trials, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
