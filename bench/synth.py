"""A deterministic synthetic corpus of upstream-shaped items, derived from the real records.

Usage::

    python bench/synth.py 1000000 /tmp/nivl-bench/synth-1m.jsonl [--seed 1] [--source PATH]

(``.gz`` on the output name compresses with gzip level 1.)

How it keeps the real shape: the real records are grouped into *events* (same day and
center, e.g. 93 photos of one media event). The generator copies whole real events, one
after another, so the real rate of duplicate captions and the real burst sizes carry over.
Each copy gets:

- new unique ``nasa_id``s (``s<copy>_<real id>``, so spaces and trailing spaces survive),
  with every ``href`` rewritten to match;
- one word substitution map for the whole event (a few of its words swapped for words
  drawn from the corpus vocabulary by real frequency), applied to title and captions, so
  identical captions stay identical inside the copy but differ from other copies;
- a few extra vocabulary words appended to each distinct caption of the copy (the same
  words for identical captions) and, sometimes, one more real keyword, so term
  statistics spread as the corpus grows;
- one date shift for the whole event (within two years), keeping the real date spread.

The output is a prefix-stable stream: the first 100,000 items of a 1M file are the
100,000-item file for the same seed.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import itertools
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from common import shared_records

DEFAULT_SOURCE = shared_records()
_WORD = re.compile(r"[A-Za-z][a-z]{3,}")
SHIFT_DAYS = 730
SUBSTITUTIONS = 6
EXTRA_WORDS = (2, 12)
MAX_DATE = datetime(2026, 12, 31, tzinfo=UTC)


class Corpus:
    """The real items, grouped into events, plus frequency-weighted vocabularies."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        events: dict[tuple[str, str], list[int]] = {}
        words: Counter[str] = Counter()
        keywords: Counter[str] = Counter()
        for position, item in enumerate(items):
            data = item["data"][0]
            key = (str(data.get("date_created", ""))[:10], str(data.get("center", "")))
            events.setdefault(key, []).append(position)
            words.update(_WORD.findall(f"{data.get('title', '')} {data.get('description', '')}"))
            kws = data.get("keywords")
            if isinstance(kws, list):
                keywords.update(k for k in kws if isinstance(k, str))
        self.events = list(events.values())
        self.vocabulary, self.word_weights = _cumulative(words)
        self.keywords, self.keyword_weights = _cumulative(keywords)
        self.dates = [_parse_date(item["data"][0].get("date_created")) for item in items]

    @classmethod
    def load(cls, path: Path) -> Corpus:
        with path.open("rb") as f:
            return cls([orjson.loads(line) for line in f if line.strip()])


def _cumulative(counter: Counter[str]) -> tuple[list[str], list[int]]:
    names = sorted(counter)  # sorted: the same order whatever the dict's history
    return names, list(itertools.accumulate(counter[n] for n in names))


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def generate(corpus: Corpus, count: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """``count`` synthetic items, deterministic for a (corpus, seed)."""
    rng = random.Random(seed)
    made = 0
    copy = 0
    while made < count:
        copy += 1
        event = corpus.events[rng.randrange(len(corpus.events))]
        mapping = _substitutions(rng, corpus, corpus.items[event[0]]["data"][0])
        shift = timedelta(days=rng.randint(-SHIFT_DAYS, SHIFT_DAYS))
        suffixes: dict[str, str] = {}  # the same caption gets the same extra words
        for position in event:
            if made >= count:
                return
            yield _derive(rng, corpus, position, copy, mapping, shift, suffixes)
            made += 1


def _substitutions(rng: random.Random, corpus: Corpus, data: dict[str, Any]) -> list[tuple]:
    text = f"{data.get('title', '')} {data.get('description', '')}"
    own = sorted(set(_WORD.findall(text[:4000])))
    if not own:
        return []
    picked = rng.sample(own, min(SUBSTITUTIONS, len(own)))
    new = _draw(rng, corpus.vocabulary, corpus.word_weights, len(picked))
    return [(f" {old} ", f" {repl} ") for old, repl in zip(picked, new, strict=True)]


def _draw(rng: random.Random, names: list[str], cumulative: list[int], k: int) -> list[str]:
    total = cumulative[-1]
    return [names[bisect.bisect_right(cumulative, rng.random() * total)] for _ in range(k)]


def _apply(text: str, mapping: list[tuple]) -> str:
    for old, new in mapping:
        text = text.replace(old, new)
    return text


def _derive(
    rng: random.Random,
    corpus: Corpus,
    position: int,
    copy: int,
    mapping: list[tuple],
    shift: timedelta,
    suffixes: dict[str, str],
) -> dict[str, Any]:
    item = corpus.items[position]
    data = dict(item["data"][0])
    old_id = data["nasa_id"]
    new_id = f"s{copy}_{old_id}"
    data["nasa_id"] = new_id
    description = data.get("description")
    for name in ("title", "description", "description_508"):
        value = data.get(name)
        if isinstance(value, str):
            data[name] = _apply(value, mapping)
    if isinstance(description, str):
        if description not in suffixes:
            extra = _draw(rng, corpus.vocabulary, corpus.word_weights, rng.randint(*EXTRA_WORDS))
            suffixes[description] = " ".join(extra)
        data["description"] = f"{data['description']} {suffixes[description]}"
    if rng.random() < 0.2 and isinstance(data.get("keywords"), list):
        more = _draw(rng, corpus.keywords, corpus.keyword_weights, 1)
        data["keywords"] = [*data["keywords"], *more]
    moment = corpus.dates[position]
    if moment is not None:
        moment = min(moment + shift, MAX_DATE)
        data["date_created"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    out: dict[str, Any] = {"href": item["href"].replace(old_id, new_id), "data": [data]}
    links = item.get("links")
    if isinstance(links, list):
        out["links"] = [
            {**link, "href": link["href"].replace(old_id, new_id)} if "href" in link else link
            for link in links
        ]
    return out


def write(path: Path, items: Iterator[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    stream: IO[bytes]
    if path.suffix == ".gz":
        stream = gzip.open(path, "wb", compresslevel=1)
    else:
        stream = path.open("wb", buffering=1 << 20)
    written = 0
    with stream:
        for item in items:
            stream.write(orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE))
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, help="how many items to write")
    parser.add_argument("out", type=Path, help="output JSONL (.gz to compress)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="real records JSONL")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    if args.out.resolve().is_relative_to(repo) and "results" not in args.out.parts:
        parser.error(f"write synthetic data outside the repository ({repo})")
    started, started_cpu = time.perf_counter(), time.process_time()
    corpus = Corpus.load(args.source)
    written = write(args.out, generate(corpus, args.count, args.seed))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    print(
        f"wrote {written:,} items to {args.out} in {elapsed:.1f} s, {cpu:.1f} s of CPU "
        f"({written / elapsed:,.0f} items/s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
