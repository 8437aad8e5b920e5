"""Exports of the whole store, or of a search's hits: raw JSONL, CSV of the parsed fields,
Parquet, and citations as BibTeX or RIS (cite.py).

JSONL is the raw upstream items, verbatim. CSV is meant for spreadsheets, which run a cell
that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula
(``=HYPERLINK(...)``, ``+cmd|...``): such cells get a leading ``'``, as OWASP's "CSV
injection" advice says, so they show as text. Parquet keeps types: keywords and albums are
lists, ``date_created`` a UTC timestamp, and a field the record lacks is null. Their
``preview_href`` is a link a reader follows, so it passes ``urls.safe_url`` as every link
nivl writes does (https, encoded; empty for a ``javascript:`` or other non-web href).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import IO, Any

import orjson

from .records import Record, parse_item
from .store import Store
from .urls import safe_url

FORMATS = ("jsonl", "csv", "parquet", "bibtex", "ris")
COLUMNS = (
    "nasa_id",
    "media_type",
    "title",
    "date_created",
    "year",
    "center",
    "keywords",
    "album",
    "location",
    "photographer",
    "secondary_creator",
    "description",
    "preview_href",
)


def export(
    store: Store,
    fmt: str,
    out: IO[bytes],
    *,
    raws: Iterable[str] | None = None,
    accessed: date | None = None,
) -> int:
    """Write ``raws`` (default: every record, in nasa_id order) to ``out`` in ``fmt``;
    returns the number written. ``accessed`` is the citations' date of access (today)."""
    items = store.iter_raw_by_nasa_id() if raws is None else raws
    if fmt == "jsonl":
        return _jsonl(items, out)
    if fmt == "csv":
        return _csv(items, out)
    if fmt in ("bibtex", "ris"):
        return _citations(items, fmt, out, accessed or date.today())
    return _parquet(items, out)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_LISTS = ("keywords", "album")


def _records(raws: Iterable[str]) -> Iterator[tuple[Record, dict[str, Any]]]:
    """Each record with the ``data`` object it was parsed from (to tell missing from empty)."""
    for raw in raws:
        item = orjson.loads(raw)
        yield parse_item(item, raw=raw), item["data"][0]


def _csv_row(record: Record) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(record, name) for name in COLUMNS}
    row["keywords"] = "; ".join(record.keywords)
    row["album"] = "; ".join(record.album)
    row["preview_href"] = safe_url(record.preview_href)
    return {name: _inert(value) for name, value in row.items()}


def _inert(value: Any) -> Any:
    """A cell a spreadsheet shows as text instead of running it as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _parquet_row(record: Record, data: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in COLUMNS:
        value = getattr(record, name)
        if name in _LISTS:
            value = list(value) if name in data else None
        elif name == "date_created":
            stamp = record.timestamp
            value = None if stamp is None else datetime.fromtimestamp(stamp, UTC)
        elif name == "preview_href":
            value = safe_url(value)  # a link a reader may follow: http(s) only
        elif name not in ("nasa_id", "media_type", "year") and name not in data:
            value = None
        row[name] = value
    row["raw"] = record.raw
    return row


def _jsonl(raws: Iterable[str], out: IO[bytes]) -> int:
    count = 0
    for raw in raws:
        out.write(raw.encode() + b"\n")
        count += 1
    return count


def _csv(raws: Iterable[str], out: IO[bytes]) -> int:
    import io

    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    count = 0
    for record, _data in _records(raws):
        writer.writerow(_csv_row(record))
        count += 1
    text.flush()
    text.detach()
    return count


def _citations(raws: Iterable[str], fmt: str, out: IO[bytes], accessed: date) -> int:
    """BibTeX or RIS, written a thousand records at a time (BibTeX keys unique throughout)."""
    from . import cite

    count = 0
    batch: list[Record] = []
    keys: set[str] = set()

    def flush() -> None:
        if batch:
            text = (
                cite.bibtex(batch, accessed, keys=keys)
                if fmt == "bibtex"
                else cite.ris(batch, accessed)
            )
            out.write((text if text.endswith("\n") else text + "\n").encode())
            batch.clear()

    for record, _data in _records(raws):
        batch.append(record)
        count += 1
        if len(batch) >= 1000:
            flush()
    flush()
    return count


def _parquet(raws: Iterable[str], out: IO[bytes]) -> int:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    types = {
        "year": pa.int64(),
        "date_created": pa.timestamp("ms", tz="UTC"),  # Parquet has no seconds unit
        "keywords": pa.list_(pa.string()),
        "album": pa.list_(pa.string()),
    }
    schema = pa.schema(
        [(name, types.get(name, pa.string())) for name in COLUMNS] + [("raw", pa.string())]
    )
    count = 0
    with pq.ParquetWriter(pa.PythonFile(out, mode="w"), schema) as writer:
        batch: list[dict[str, Any]] = []
        for record, data in _records(raws):
            batch.append(_parquet_row(record, data))
            if len(batch) >= 10_000:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                count += len(batch)
                batch = []
        if batch or count == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            count += len(batch)
    return count
