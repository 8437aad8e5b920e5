"""Citation cost: the item page's Cite box (three CSL styles, BibTeX, RIS) per record, and a
BibTeX export of every shared record, against citeproc-py rendering each style twice (text,
then HTML: what the Cite box first did), in the same run.

Usage::

    python bench/citations.py [--data FILE.jsonl] [--records N]

Figures are ms per record (best of ``--repeat`` runs) and seconds for the export; the
ratio is baseline / nivl (above 1: nivl is faster). The memo of ``cite.styled`` is cleared
before each run, so every rendering is a first view.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import orjson

from nivl import cite
from nivl.records import parse_item
from nivl.web.ui import citations

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nasa" / "records.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--records", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lines = args.data.read_bytes().splitlines()
    records = [parse_item(orjson.loads(line)) for line in lines if line.strip()]
    sample = records[: args.records]
    today = date.today()

    def box() -> None:
        for record in sample:
            citations(record)

    def twice() -> None:  # the first Cite box: a text and an HTML rendering per style
        for record in sample:
            for style in cite.CSL_STYLES:
                cite._csl_html(record, style, today)
                cite._csl_html(record, style, today)
            cite.bibtex([record], today)
            cite.ris([record], today)

    def best(run: object) -> float:
        times = []
        for _ in range(args.repeat):
            cite.styled.cache_clear()
            started = time.perf_counter()
            run()  # type: ignore[operator]
            times.append((time.perf_counter() - started) * 1000 / len(sample))
        return min(times)

    box()  # parse the styles once
    ours, baseline = best(box), best(twice)
    print(f"Cite box: {ours:.1f} ms a record; two renderings a style: {baseline:.1f} ms "
          f"(ratio {baseline / ours:.2f})")  # fmt: skip
    started = time.perf_counter()
    text = cite.bibtex(records, today)
    seconds = time.perf_counter() - started
    print(f"BibTeX of {len(records)} records: {seconds:.2f} s ({len(text):,} characters)")


if __name__ == "__main__":
    main()
