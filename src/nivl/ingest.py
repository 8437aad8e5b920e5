"""Reading import files: JSONL of items, upstream response documents, and .gz of either.

JSONL is streamed line by line (constant memory on any size); a JSON document
(a pretty-printed ``/search`` response, a list of items, an ``/asset``
manifest) is read whole, as upstream never sends large ones. Each bad line or
item becomes a ``Rejection`` with its file and line and the rest goes on.
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import orjson

from .errors import RecordRejected
from .records import Record, dump_item, parse_item
from .store import Store

_ASSET_HREF = re.compile(r"/asset/([^?#]+)")


@dataclass(frozen=True)
class Rejection:
    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class AssetManifest:
    nasa_id: str
    raw: str


@dataclass
class ImportSummary:
    read: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    assets: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    #: Wall seconds of each step: "store" (read, parse, write), then one per derived stage.
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "assets": self.assets,
        }


Entry = Record | Rejection | AssetManifest


def read_entries(path: Path, *, on_bytes: Callable[[int], object] | None = None) -> Iterator[Entry]:
    """Records, rejections and asset manifests from one file, in file order."""
    source = str(path)
    try:
        raw_file = path.open("rb")
    except OSError as exc:
        yield Rejection(source, 0, f"cannot open: {exc.strerror or exc}")
        return
    with raw_file:
        stream: IO[bytes] | gzip.GzipFile = raw_file
        if path.suffix == ".gz":
            stream = gzip.GzipFile(fileobj=raw_file)
        reader = _ProgressReader(stream, raw_file, on_bytes)
        try:
            yield from _entries(reader, source)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            yield Rejection(source, 0, f"cannot read: {exc}")


def _entries(stream: _ProgressReader, source: str) -> Iterator[Entry]:
    first = stream.readline()
    while first and not first.strip():
        first = stream.readline()
    if not first:
        return
    try:
        parsed = orjson.loads(first)
    except orjson.JSONDecodeError:
        document = first + stream.read()  # a pretty-printed document, read whole
        try:
            parsed = orjson.loads(document)
        except orjson.JSONDecodeError as exc:
            yield Rejection(source, 1, f"not JSON Lines nor a JSON document: {exc}")
            return
        yield from _from_document(parsed, source)
        return
    yield from _from_value(parsed, source, 1)
    for number, line in enumerate(stream, start=2):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield Rejection(source, number, f"broken JSON: {exc}")
            continue
        yield from _from_value(value, source, number)


def _from_value(value: Any, source: str, line: int) -> Iterator[Entry]:
    """One JSONL line: an item, or a whole response document on one line."""
    if isinstance(value, dict) and "collection" in value:
        yield from _from_document(value, source, line)
        return
    try:
        yield parse_item(value)
    except RecordRejected as exc:
        yield Rejection(source, line, str(exc))


def _from_document(value: Any, source: str, line: int | None = None) -> Iterator[Entry]:
    if isinstance(value, list):
        items: Any = value
    elif isinstance(value, dict) and isinstance(value.get("collection"), dict):
        collection = value["collection"]
        items = collection.get("items")
        href = collection.get("href")
        match = _ASSET_HREF.search(href) if isinstance(href, str) else None
        if (
            match
            and isinstance(items, list)
            and all(isinstance(i, dict) and "data" not in i for i in items)
        ):
            yield AssetManifest(unquote(match[1]), dump_item(value))
            return
    elif isinstance(value, dict) and "data" in value:
        items = [value]
    else:
        yield Rejection(
            source,
            line or 1,
            "JSON document is neither an item, a list of items "
            'nor an upstream response ({"collection": ...})',
        )
        return
    if not isinstance(items, list):
        yield Rejection(source, line or 1, "collection has no 'items' list")
        return
    for position, item in enumerate(items, start=1):
        try:
            yield parse_item(item)
        except RecordRejected as exc:
            where = line if line is not None else position
            label = f"item {position}: " if line is not None or len(items) > 1 else ""
            yield Rejection(source, where, f"{label}{exc}")


class _ProgressReader:
    """Line iteration over a (possibly gzip) stream, reporting bytes of the file on disk."""

    def __init__(
        self,
        stream: IO[bytes] | gzip.GzipFile,
        raw_file: IO[bytes],
        on_bytes: Callable[[int], object] | None,
    ) -> None:
        self._stream: IO[bytes] | gzip.GzipFile = stream  # both buffer and read lines
        self._raw = raw_file
        self._on_bytes = on_bytes
        self._reported = 0

    def _report(self) -> None:
        if self._on_bytes is not None:
            position = self._raw.tell()
            if position != self._reported:
                self._on_bytes(position - self._reported)
                self._reported = position

    def readline(self) -> bytes:
        line = self._stream.readline()
        self._report()
        return line

    def read(self) -> bytes:
        data = self._stream.read()
        self._report()
        return data

    def __iter__(self) -> Iterator[bytes]:
        for number, line in enumerate(self._stream):
            if number % 256 == 0:
                self._report()
            yield line
        self._report()


def import_paths(
    store: Store,
    paths: Iterable[Path],
    *,
    batch_size: int = 1000,
    on_bytes: Callable[[int], object] | None = None,
) -> ImportSummary:
    """Import files into the store in batches; the derived state is ``derived.py``'s job."""
    summary = ImportSummary()
    batch: list[Record] = []
    started = time.perf_counter()

    def flush() -> None:
        result = store.upsert_batch(batch)
        summary.new += result.new
        summary.updated += result.updated
        summary.unchanged += result.unchanged
        batch.clear()

    for path in paths:
        for entry in read_entries(path, on_bytes=on_bytes):
            if isinstance(entry, Record):
                summary.read += 1
                batch.append(entry)
                if len(batch) >= batch_size:
                    flush()
            elif isinstance(entry, AssetManifest):
                store.put_asset(entry.nasa_id, manifest=entry.raw)
                summary.assets += 1
            else:
                summary.rejections.append(entry)
    if batch:
        flush()
    summary.seconds = {"store": time.perf_counter() - started}
    return summary
