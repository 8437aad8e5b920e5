"""Exports of the whole store: raw JSONL, CSV of the parsed fields, Parquet."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO, Any

import orjson

from .records import Record, parse_item
from .store import Store

FORMATS = ("jsonl", "csv", "parquet")
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


def export(store: Store, fmt: str, out: IO[bytes]) -> int:
    """Write every record to ``out`` in ``fmt``; returns the number written."""
    if fmt == "jsonl":
        return _jsonl(store, out)
    if fmt == "csv":
        return _csv(store, out)
    return _parquet(store, out)


def _records(store: Store) -> Iterator[Record]:
    for raw in store.iter_raw_by_nasa_id():
        yield parse_item(orjson.loads(raw), raw=raw)


def _row(record: Record) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(record, name) for name in COLUMNS}
    row["keywords"] = "; ".join(record.keywords)
    row["album"] = "; ".join(record.album)
    return row


def _jsonl(store: Store, out: IO[bytes]) -> int:
    count = 0
    for raw in store.iter_raw_by_nasa_id():
        out.write(raw.encode() + b"\n")
        count += 1
    return count


def _csv(store: Store, out: IO[bytes]) -> int:
    import io

    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    count = 0
    for record in _records(store):
        writer.writerow(_row(record))
        count += 1
    text.flush()
    text.detach()
    return count


def _parquet(store: Store, out: IO[bytes]) -> int:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    schema = pa.schema(
        [(name, pa.int64() if name == "year" else pa.string()) for name in COLUMNS]
        + [("raw", pa.string())]
    )
    count = 0
    with pq.ParquetWriter(pa.PythonFile(out, mode="w"), schema) as writer:
        batch: list[dict[str, Any]] = []
        for record in _records(store):
            batch.append({**_row(record), "raw": record.raw})
            if len(batch) >= 10_000:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                count += len(batch)
                batch = []
        if batch or count == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            count += len(batch)
    return count
