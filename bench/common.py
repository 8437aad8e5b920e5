"""Helpers shared by the benchmarks: where the real data is, percentiles, memory."""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def shared_records() -> Path:
    """``$NIVL_SHARED_DATA/records.jsonl``, else ``../shared/data/nasa/records.jsonl``."""
    folder = os.environ.get("NIVL_SHARED_DATA") or REPO.parent / "shared" / "data" / "nasa"
    return Path(folder) / "records.jsonl"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_avg() -> str:
    """The 1- and 5-minute load averages, as "1.23/0.98" (other work sharing the cores)."""
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"
