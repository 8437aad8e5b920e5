"""Import one file into a fresh home and print its figures on one line.

Usage::

    python bench/import_bench.py /tmp/nivl-bench/synth-300k.jsonl [--keep DIR] [--json]

Prints wall seconds, records per second, CPU seconds (this process and its workers),
peak RSS (the largest of this process and its children: the grouping workers and the
vectors process), the search index's size on disk, and the wall seconds
of each step ``ImportSummary.seconds`` reports (store, group, index; with a pipelined
import the store step overlaps the others, so the steps can add up to more than the
whole). Run it twice side by side (old and new checkout) to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from nivl import Library, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--keep", type=Path, help="import into this (new) home and keep it")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    home = args.keep or Path(tempfile.mkdtemp(prefix="nivl-import-bench-"))
    try:
        started = time.perf_counter()
        cpu = os.times()
        library = Library(Settings.from_env({}, home=home))
        summary = library.import_paths([args.data])
        library.close()
        seconds = time.perf_counter() - started
        after = os.times()
        index_bytes = sum(f.stat().st_size for f in (home / "index").iterdir() if f.is_file())
    finally:
        if args.keep is None:
            shutil.rmtree(home, ignore_errors=True)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures = {
        "records": summary.read,
        "seconds": round(seconds, 2),
        "records_per_s": round(summary.read / seconds) if seconds else 0,
        "cpu_s": round(sum(after[:4]) - sum(cpu[:4]), 1),
        "peak_rss_mb": round(max(own, workers)),
        "index_mb": round(index_bytes / 1e6),
        "steps": {name: round(value, 2) for name, value in summary.seconds.items()},
    }
    if args.json:
        print(json.dumps(figures))
    else:
        steps = " ".join(f"{k}={v:.1f}" for k, v in figures["steps"].items())
        print(
            f"{figures['records']:,} records {figures['seconds']:.1f} s "
            f"{figures['records_per_s']:,}/s cpu {figures['cpu_s']:.1f} s "
            f"peak RSS {figures['peak_rss_mb']:,} MB index {figures['index_mb']:,} MB | {steps}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
