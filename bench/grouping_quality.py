"""Grouping quality and cost on labelled data: pairwise precision/recall/F1 per level.

    python bench/grouping_quality.py            # the table, with the default thresholds
    python bench/grouping_quality.py --sweep    # F1 over a grid of thresholds
    python bench/grouping_quality.py --holdout  # choose thresholds on half the pairs, score on half

Labelled sets: tests/fixtures/grouping_pairs.tsv (pairs of the shared real records) and
tests/fixtures/departure.jsonl (upstream's page 1 for q=departure, each item labelled with
its event). Shared data is read from ../shared, never copied.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from nivl.grouping import (
    LEVELS,
    Assignment,
    Thresholds,
    group_records,
    score_pairs,
)
from nivl.records import Record, parse_item

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "nasa" / "records.jsonl"
PAIRS = ROOT / "tests" / "fixtures" / "grouping_pairs.tsv"
DEPARTURE = ROOT / "tests" / "fixtures" / "departure.jsonl"


def load_records(path: Path) -> list[Record]:
    with path.open() as lines:
        return [parse_item(json.loads(line)) for line in lines if line.strip()]


def load_pairs(path: Path = PAIRS) -> list[tuple[str, str, str]]:
    rows = [line.rstrip("\n").split("\t") for line in path.open() if not line.startswith("#")]
    return [(a, b, label) for a, b, label, _stratum in rows[1:]]


def departure_pairs(path: Path = DEPARTURE) -> list[tuple[str, str, str]]:
    """Every pair of the fixture: "caption" when the texts match, else "event" or "none"."""
    items = [json.loads(line) for line in path.open() if line.strip()]
    pairs = []
    for x, y in itertools.combinations(items, 2):
        same_text = x["data"][0]["description"].strip() == y["data"][0]["description"].strip()
        same_event = x["x-label"]["event"] == y["x-label"]["event"]
        label = "caption" if same_text else "event" if same_event else "none"
        pairs.append((x["data"][0]["nasa_id"], y["data"][0]["nasa_id"], label))
    return pairs


def table(thresholds: Thresholds) -> str:
    shared = load_records(SHARED)
    departure = load_records(DEPARTURE)
    started, cpu_started = time.perf_counter(), time.process_time()
    grouping = group_records(shared, thresholds)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    lines = [f"thresholds: {thresholds}", ""]
    lines.append(f"{'set':<22}{'level':<9}{'pairs+':>7}{'P':>7}{'R':>7}{'F1':>7}")
    sets = (
        ("shared labelled pairs", grouping, load_pairs()),
        ("departure page 1", group_records(departure, thresholds), departure_pairs()),
    )
    for name, result, pairs in sets:
        for score in score_pairs(result.assignments, pairs):
            positives = score.true_pos + score.false_neg
            lines.append(
                f"{name:<22}{score.level:<9}{positives:>7}{score.precision:>7.3f}"
                f"{score.recall:>7.3f}{score.f1:>7.3f}"
            )
    lines.append("")
    total = len(grouping.assignments)
    for level in LEVELS:
        hidden = grouping.hidden(level)
        groups = len({getattr(a, level) for a in grouping.assignments.values()})
        lines.append(
            f"shared records, {level:<8} {groups:>5} groups of {total}: "
            f"{hidden} hidden ({hidden / total:.1%})"
        )
    lines.append(
        f"grouping time for {total} records: {seconds:.2f} s wall, {cpu:.2f} s CPU "
        f"= {cpu / total * 10_000:.1f} s CPU per 10k records"
    )
    return "\n".join(lines)


def sweep() -> str:
    shared = load_records(SHARED)
    pairs = load_pairs()
    out = [f"{'near':>6}{'event':>7}  " + "".join(f"{lv:>9}" for lv in LEVELS)]
    for near, event in itertools.product(
        (0.4, 0.5, 0.6, 0.7, 0.8, 0.9), (0.3, 0.4, 0.5, 0.6, 0.7, 1.01)
    ):
        thresholds = replace(Thresholds(), near=near, event=event)
        grouping = group_records(shared, thresholds)
        scores = score_pairs(grouping.assignments, pairs)
        out.append(f"{near:>6}{event:>7}  " + "".join(f"{s.f1:>9.3f}" for s in scores))
    return "\n".join(out)


def holdout() -> str:
    """Two-fold check that the sweep does not just fit the labels: choose on half, score
    on the other half."""
    shared = load_records(SHARED)
    pairs = load_pairs()
    grid = list(itertools.product((0.4, 0.5, 0.6, 0.7, 0.8, 0.9), (0.3, 0.4, 0.5, 0.6, 0.7)))
    out = []
    for fold in (0, 1):
        train, test = pairs[fold::2], pairs[1 - fold :: 2]
        best: tuple[float, Thresholds, dict[str, Assignment]] | None = None
        for near, event in grid:
            thresholds = replace(Thresholds(), near=near, event=event)
            assignments = group_records(shared, thresholds).assignments
            f1 = sum(score.f1 for score in score_pairs(assignments, train))
            if best is None or f1 > best[0]:
                best = (f1, thresholds, assignments)
        assert best is not None
        _, chosen, assignments = best
        scores = " ".join(f"{s.level}={s.f1:.3f}" for s in score_pairs(assignments, test))
        out.append(
            f"fold {fold}: chose near={chosen.near} event={chosen.event}; held-out F1 {scores}"
        )
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help="F1 over a grid of thresholds")
    parser.add_argument("--holdout", action="store_true", help="choose on half, score on half")
    args = parser.parse_args(argv)
    report = sweep() if args.sweep else holdout() if args.holdout else table(Thresholds())
    sys.stdout.write(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
