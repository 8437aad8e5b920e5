"""Reading import files: JSONL of items, upstream response documents, and .gz of either.

Both JSONL and JSON documents (a pretty-printed ``/search`` response, a list of
items, an ``/asset`` manifest) are streamed: a document is split into its items
without being parsed whole, so memory stays bounded by the per-record cap
(``max_record_kb``) on any file. Each bad line or item becomes a ``Rejection``
with its file and line and the rest goes on; a damaged ``.gz`` keeps what was read
before the damage. Each record keeps its source text (minified) when re-serialising
it could change a number.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson

from .errors import RecordRejected
from .jsonstream import NEWLINE, Chunk, Malformed, Reader
from .records import Record, dump_item, parse_item
from .store import Store, UpsertResult

_ASSET_HREF = re.compile(r"/asset/([^?#]+)")
#: The default cap on one record's JSON text (``max_record_kb``): the largest real
#: records (podcast transcripts) are ~90 kB.
DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
#: Rejections kept to show (a file of garbage can have millions of lines).
MAX_KEPT_REJECTIONS = 1000


@dataclass(frozen=True)
class Rejection:
    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.reason}"


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
    #: The first ``MAX_KEPT_REJECTIONS`` rejections (``rejected`` counts them all).
    rejections: list[Rejection] = field(default_factory=list)
    rejected: int = 0
    #: Files that held nothing (not an error: an export of nothing is an empty file).
    empty: list[str] = field(default_factory=list)
    #: Wall seconds of each step: "store" (read, parse, write), then one per derived stage.
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def nothing_imported(self) -> bool:
        return self.read == 0 and self.assets == 0

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_KEPT_REJECTIONS:
            self.rejections.append(rejection)

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "assets": self.assets,
        }


@dataclass(frozen=True)
class EmptyFile:
    """A file with nothing in it but blanks: not an error, but worth a warning."""

    source: str


Entry = Record | Rejection | AssetManifest | EmptyFile

_COLLECTION_FIRST = re.compile(rb'\{\s*"collection"\s*:')
_KEY_LIMIT = 64 * 1024
_UNPARSED: Any = object()
_HERE = b""  # where the collection (or its items) goes back when a manifest is put together


def read_entries(
    path: Path,
    *,
    on_bytes: Callable[[int], object] | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Entry]:
    """Records, rejections and asset manifests from one file, in file order.

    A record (a line, or an item of a document) longer than ``max_record_bytes`` is
    rejected without being held in memory.
    """
    source = str(path)
    try:
        reader = Reader.open(path, on_bytes)
    except OSError as exc:
        yield Rejection(source, 0, f"cannot open: {exc.strerror or exc}")
        return
    with reader:
        yield from _File(reader, source, max_record_bytes).entries()
        if reader.error is not None:
            if reader.error_line <= 1:
                yield Rejection(source, 0, f"cannot read: {reader.error}")
            else:
                yield Rejection(
                    source,
                    reader.error_line,
                    f"cannot read beyond line {reader.error_line}: {reader.error}; "
                    f"lines 1-{reader.error_line - 1} were read",
                )


class _File:
    """One file's entries: JSON Lines, or one or more (pretty-printed) JSON documents.

    The format is told from the first value's shape, not from whether it parses: an
    object or a list that does not close on its first line is a document, anything else
    is JSON Lines. A document that breaks before giving a second record is read again as
    JSON Lines (whose first line, then, is simply a bad one: ``[`` or ``{"collection":``).
    """

    def __init__(self, reader: Reader, source: str, limit: int) -> None:
        self.reader = reader
        self.source = source
        self.limit = limit

    def entries(self) -> Iterator[Entry]:
        reader = self.reader
        reader.skip_bom()
        first = reader.next_byte()
        if first is None:
            if reader.error is None:
                yield EmptyFile(self.source)
            return
        if first not in b"{[" and reader.looks_binary():
            yield Rejection(
                self.source, 0, "not JSON or JSON Lines: binary data (an image? an archive?)"
            )
            return
        if first in b"{[" and not reader.ends_on_its_line(self.limit):
            # Held back until a second record shows the document's shape holds: a break
            # before that is more likely JSON Lines with a bad first line (``[``, ``{``).
            held: list[Entry] | None = []
            records = 0
            try:
                while reader.next_byte() is not None:
                    for entry in self._document(single_line=False):
                        if held is None:
                            yield entry
                            continue
                        held.append(entry)
                        records += not isinstance(entry, Rejection)
                        if records >= 2:
                            yield from held
                            held = None
            except Malformed as exc:
                if held is not None:  # not a document after all: JSON Lines
                    reader.rewind()
                    reader.skip_bom()
                    yield from self._lines()
                    return
                yield Rejection(
                    self.source,
                    exc.line,
                    f"broken JSON document: {exc.reason}; the items before it were read",
                )
                return
            if held:
                yield from held
            return
        yield from self._lines()

    def _lines(self) -> Iterator[Entry]:
        reader = self.reader
        while (c := reader.next_byte()) is not None:
            line = reader.line
            if c == 0x7B and _COLLECTION_FIRST.match(reader.peek(256)):
                try:  # a whole response on one line: split it, as it may be big
                    yield from self._document(single_line=True)
                    after = reader.next_byte(single_line=True)
                    if after is not None and after != NEWLINE:
                        raise Malformed("more text after the JSON value on this line", line)
                except Malformed as exc:
                    yield Rejection(self.source, line, f"broken JSON: {exc.reason}")
                reader.skip_line()
                continue
            chunk = reader.readline(self.limit)
            if chunk is None:
                return
            if chunk.cut:
                continue  # broken by the damage, which is reported next
            if chunk.text is None:
                yield self._too_long(chunk, "line")
            else:
                yield from self._value(chunk.text, line)

    def _document(self, *, single_line: bool) -> Iterator[Entry]:
        """One JSON value: a response, a list of items or one item (the reader is at it)."""
        reader = self.reader
        c = reader.next_byte(single_line=single_line)
        if c == 0x5B:
            yield from self._list(reader, single_line=single_line)
        elif c == 0x7B and _COLLECTION_FIRST.match(reader.peek(256)):
            yield from self._collection(reader, single_line=single_line)
        else:
            chunk = reader.read_value(self.limit, single_line=single_line)
            if chunk.text is None:
                if not single_line:  # one pretty-printed item that big: more likely not one
                    raise Malformed(f"a value of over {self.limit // 1024:,} kB", chunk.line)
                yield self._too_long(chunk, "value")
            else:
                yield from self._value(chunk.text, chunk.line, label="")

    def _value(
        self, text: bytes, line: int, *, label: str = "", value: Any = _UNPARSED
    ) -> Iterator[Entry]:
        """One line's (or one item's) text, parsed (unless ``value`` is given)."""
        if value is _UNPARSED:
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                yield Rejection(self.source, line, f"{label}{_json_error(exc, line)}")
                return
        if not label and isinstance(value, dict) and "collection" in value:
            yield from self._collection(Reader.of_bytes(text, first_line=line), single_line=False)
            return
        try:
            yield parse_item(value, raw=dump_item(value, text))
        except RecordRejected as exc:
            yield Rejection(self.source, line, f"{label}{exc}")

    def _items(self, reader: Reader, *, single_line: bool) -> Iterator[tuple[int, Chunk]]:
        """The items of a JSON list, one at a time, each with its position."""
        reader.take(b"[", "a list", single_line=single_line)
        if reader.next_byte(single_line=single_line) == 0x5D:
            reader.pos += 1
            return
        position = 0
        while True:
            position += 1
            yield position, reader.read_value(self.limit, single_line=single_line)
            if reader.take(b",]", "',' or ']'", single_line=single_line) == 0x5D:
                return

    def _item(self, chunk: Chunk, position: int, value: Any = _UNPARSED) -> Iterator[Entry]:
        if chunk.text is None:
            yield self._too_long(chunk, f"item {position}")
        else:
            yield from self._value(chunk.text, chunk.line, label=f"item {position}: ", value=value)

    def _list(self, reader: Reader, *, single_line: bool) -> Iterator[Entry]:
        for position, chunk in self._items(reader, single_line=single_line):
            yield from self._item(chunk, position)

    def _collection(self, reader: Reader, *, single_line: bool) -> Iterator[Entry]:
        """``{"collection": {..., "items": [...]}}``: items one by one, or an asset manifest.

        Items with no ``data`` are held back (up to the record cap): if the collection's
        ``href`` is an ``/asset/`` one and no search item came, they are a manifest.
        """
        outer: list[tuple[bytes, bytes | None]] = []
        inner: list[tuple[bytes, bytes | None]] = []
        held: list[tuple[int, Chunk, Any]] = []
        held_size, records, listed = 0, False, False
        href: Any = None
        line = reader.line
        for key_text, key in _keys(reader, single_line):
            if key != "collection" or reader.next_byte(single_line=single_line) != 0x7B:
                value = reader.read_value(self.limit, single_line=single_line)
                outer.append((key_text, value.text))
                continue
            outer.append((key_text, _HERE))
            for inner_text, inner_key in _keys(reader, single_line):
                if inner_key != "items" or reader.next_byte(single_line=single_line) != 0x5B:
                    value = reader.read_value(self.limit, single_line=single_line)
                    inner.append((inner_text, value.text))
                    if inner_key == "href" and value.text is not None:
                        href = _loads_or_none(value.text)
                    continue
                inner.append((inner_text, _HERE))
                listed = True
                for position, chunk in self._items(reader, single_line=single_line):
                    item = _loads_or_none(chunk.text) if chunk.text is not None else None
                    if (
                        isinstance(item, dict)
                        and "data" not in item
                        and held_size + chunk.size <= self.limit
                    ):
                        held.append((position, chunk, item))
                        held_size += chunk.size
                        continue
                    records = True
                    if chunk.text is not None and item is None:
                        item = _UNPARSED  # broken: parsed again for orjson's message
                    yield from self._item(chunk, position, item)
        if not listed:
            yield Rejection(self.source, line, "response has no collection.items list")
        match = _ASSET_HREF.search(href) if isinstance(href, str) else None
        if held and match and not records:
            yield from self._manifest(unquote(match[1]), outer, inner, held)
        else:
            for position, chunk, item in held:
                yield from self._item(chunk, position, item)

    def _manifest(
        self,
        nasa_id: str,
        outer: list[tuple[bytes, bytes | None]],
        inner: list[tuple[bytes, bytes | None]],
        held: list[tuple[int, Chunk, Any]],
    ) -> Iterator[Entry]:
        """The whole response, put back together from its parts (minified)."""
        items_text = b"[" + b",".join(chunk.text or b"" for _p, chunk, _i in held) + b"]"
        inner_text = b"{" + b",".join(k + b":" + (v or items_text) for k, v in inner) + b"}"
        text = b"{" + b",".join(k + b":" + (v or inner_text) for k, v in outer) + b"}"
        if any(v is None for _k, v in outer + inner) or len(text) > self.limit:
            line = held[0][1].line
            yield Rejection(self.source, line, f"asset manifest of over {self.limit // 1024:,} kB")
            return
        yield AssetManifest(nasa_id, dump_item(orjson.loads(text), text))

    def _too_long(self, chunk: Chunk, what: str) -> Rejection:
        return Rejection(
            self.source,
            chunk.line,
            f"{what} of {chunk.size / 1024:,.0f} kB is over the limit of "
            f"{self.limit // 1024:,} kB a record (max_record_kb)",
        )


def _keys(reader: Reader, single_line: bool) -> Iterator[tuple[bytes, Any]]:
    """An object's keys, in order; after each, the caller reads (consumes) its value."""
    reader.take(b"{", "an object", single_line=single_line)
    if reader.next_byte(single_line=single_line) == 0x7D:
        reader.pos += 1
        return
    while True:
        chunk = reader.read_value(_KEY_LIMIT, single_line=single_line)
        key = _loads_or_none(chunk.text) if chunk.text is not None else None
        if not isinstance(key, str):
            raise Malformed("expected a key (a string)", chunk.line)
        reader.take(b":", "':'", single_line=single_line)
        yield chunk.text or b"", key
        if reader.take(b",}", "',' or '}'", single_line=single_line) == 0x7D:
            return


def _loads_or_none(text: bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _json_error(exc: orjson.JSONDecodeError, line: int) -> str:
    """orjson's message, without its own line count (ours is the file's)."""
    where = f"column {exc.colno}" if exc.lineno == 1 else f"line {line + exc.lineno - 1}"
    return f"broken JSON: {exc.msg} at {where}"


def import_paths(
    store: Store,
    paths: Iterable[Path],
    *,
    batch_size: int = 1000,
    on_bytes: Callable[[int], object] | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    on_written: Callable[[UpsertResult], object] | None = None,
) -> ImportSummary:
    """Import files into the store in batches; the derived state is ``derived.py``'s job.

    ``on_written`` hears of each batch once it is committed (in the writer thread).

    Two stages, so that two cores work: this thread reads and parses (Python, holding
    the GIL) while a writer thread writes the batches before it to SQLite (which lets go
    of the GIL while it works). The writer takes every write in file order, one
    transaction a batch as before, so a crash leaves what a sequential import would have.
    """
    summary = ImportSummary()
    started = time.perf_counter()
    with _Writer(store, summary, on_written) as writer:
        batch: list[Record] = []
        for path in paths:
            for entry in read_entries(path, on_bytes=on_bytes, max_record_bytes=max_record_bytes):
                if isinstance(entry, Record):
                    summary.read += 1
                    batch.append(entry)
                    if len(batch) >= batch_size:
                        writer.put(batch)
                        batch = []
                elif isinstance(entry, AssetManifest):
                    writer.put(entry)
                    summary.assets += 1
                elif isinstance(entry, EmptyFile):
                    summary.empty.append(entry.source)
                else:
                    summary.reject(entry)
        if batch:
            writer.put(batch)
    summary.seconds = {"store": time.perf_counter() - started}
    return summary


class _Writer:
    """The store-writing stage of an import: one thread taking batches from a short queue.

    The queue holds at most ``DEPTH`` batches, so parsing stays at most that far ahead
    (memory stays bounded). The first error in the writer stops the import: the next
    ``put`` (or the end of the block) raises it in the caller's thread, and nothing after
    the failed batch is written.
    """

    DEPTH = 2

    def __init__(
        self,
        store: Store,
        summary: ImportSummary,
        on_written: Callable[[UpsertResult], object] | None = None,
    ) -> None:
        self.store = store
        self.summary = summary
        self.on_written = on_written
        self.queue: queue.Queue[list[Record] | AssetManifest | None] = queue.Queue(self.DEPTH)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="nivl-import-writer", daemon=True)

    def __enter__(self) -> _Writer:
        self.thread.start()
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self.queue.put(None)  # the writer may have stopped: it drains the queue either way
        self.thread.join()
        if self.error is not None and exc is None:
            raise self.error

    def put(self, item: list[Record] | AssetManifest) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def _run(self) -> None:
        summary = self.summary
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # after a failure nothing more is written
            try:
                if isinstance(item, AssetManifest):
                    self.store.put_asset(item.nasa_id, manifest=item.raw)
                    continue
                result = self.store.upsert_batch(item)
                if self.on_written is not None:
                    self.on_written(result)
            except BaseException as exc:  # handed to the caller's thread
                self.error = exc
                continue
            summary.new += result.new
            summary.updated += result.updated
            summary.unchanged += result.unchanged
