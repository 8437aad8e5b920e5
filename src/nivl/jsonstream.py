"""Bounded reading of JSON text from a file: lines, and values split out without parsing.

Import files can be hostile: a 400 kB ``.gz`` may hold one 400 MB line. ``Reader`` never
holds more than ``limit`` bytes of one line or value (plus one chunk) in memory; longer
ones are read past and dropped, and the caller learns their size. It counts lines so
that every complaint can say where it is, and a damaged file (a corrupt or cut ``.gz``)
reads as if it ended there, with the damage kept in ``error`` for the caller to report.
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

CHUNK = 1 << 20
BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"

_SPACE = re.compile(rb"[ \t\r\n]*")
_SPACE_IN_LINE = re.compile(rb"[ \t\r]*")
_STRUCTURE = re.compile(rb'[{}\[\]"]')
_STRUCTURE_IN_LINE = re.compile(rb'[{}\[\]"\n]')
_STRING_SPECIAL = re.compile(rb'["\\]')
_SCALAR = re.compile(rb"[^ \t\r\n,:\]}\[{\"]+")
_OPEN = frozenset(b"{[")
_CLOSE = frozenset(b"}]")
NEWLINE = 0x0A


class Malformed(Exception):
    """The text is not the JSON structure expected at this point."""

    def __init__(self, reason: str, line: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass(frozen=True)
class Chunk:
    """One line or value: its bytes, or None when it was longer than the limit."""

    text: bytes | None
    size: int
    line: int  # the line it starts on
    cut: bool = False  # the last line of a damaged file: ends where the damage starts


@dataclass
class _Scan:
    """Where a structural scan is: bracket depth, inside a string, after a backslash."""

    single_line: bool
    depth: int = 0
    in_string: bool = False
    escaped: bool = False


def _advance(buf: bytes, i: int, scan: _Scan, line: int) -> int | None:
    """Scan ``buf`` from ``i``: the end of the value if it closes in ``buf``, else None."""
    n = len(buf)
    if scan.escaped and i < n:
        scan.escaped = False
        i += 1
    structure = _STRUCTURE_IN_LINE if scan.single_line else _STRUCTURE
    while i < n:
        if scan.in_string:
            m = _STRING_SPECIAL.search(buf, i)
            if m is None:
                return None
            j = m.start()
            if buf[j] == 0x5C:  # a backslash: skip the byte it escapes
                if j + 1 >= n:
                    scan.escaped = True
                    return None
                i = j + 2
                continue
            scan.in_string = False
            i = j + 1
            if scan.depth == 0:
                return i
            continue
        m = structure.search(buf, i)
        if m is None:
            return None
        j = m.start()
        c = buf[j]
        i = j + 1
        if c == 0x22:
            scan.in_string = True
        elif c in _OPEN:
            scan.depth += 1
        elif c in _CLOSE:
            scan.depth -= 1
            if scan.depth <= 0:
                if scan.depth < 0:
                    raise Malformed(f"unexpected {chr(c)!r}", line)
                return i
        else:  # a newline in a one-line value, outside any string
            raise Malformed("the line ends inside a JSON value", line)
    return None


class Reader:
    """A plain or gzip file read in chunks, with lines counted and a byte-progress hook."""

    def __init__(
        self,
        raw: io.BufferedIOBase,
        on_bytes: Callable[[int], object] | None = None,
        *,
        first_line: int = 1,
    ) -> None:
        self._raw = raw
        self._on_bytes = on_bytes
        self._reported = 0
        self._first_line = first_line
        self.gzip = raw.read(2) == GZIP_MAGIC
        self._open()

    @classmethod
    def open(cls, path: Path, on_bytes: Callable[[int], object] | None = None) -> Reader:
        return cls(path.open("rb"), on_bytes)

    @classmethod
    def of_bytes(cls, data: bytes, first_line: int) -> Reader:
        """A reader over text already in memory (one line of a file), counting from its line."""
        return cls(io.BytesIO(data), first_line=first_line)

    def _open(self) -> None:
        self._raw.seek(0)
        self._stream: io.BufferedIOBase | gzip.GzipFile = (
            gzip.GzipFile(fileobj=self._raw, mode="rb") if self.gzip else self._raw
        )
        self.buf = b""
        self.pos = 0
        self.line = self._first_line
        self.eof = False
        self.error: str | None = None
        self.error_line = 0

    def rewind(self) -> None:
        """Back to the start of the file (to read it again another way)."""
        self._open()

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- buffer -----------------------------------------------------------------

    def _fill(self) -> bool:
        """Read one more chunk; False at the end (or where the file is damaged)."""
        if self.eof:
            return False
        try:
            # read1: gzip hands over what it has decompressed before any damage
            data = self._stream.read1(CHUNK)
        except (OSError, EOFError, zlib.error) as exc:
            self.eof = True
            self.error = _damage(exc, self.gzip)
            self.error_line = self.line + self.buf.count(b"\n", self.pos)
            return False
        self._report()
        if not data:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
        return True

    def _report(self) -> None:
        if self._on_bytes is not None:
            position = self._raw.tell()
            if position > self._reported:
                self._on_bytes(position - self._reported)
                self._reported = position

    def peek(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n and self._fill():
            pass
        return self.buf[self.pos : self.pos + n]

    def next_byte(self, *, single_line: bool = False) -> int | None:
        """Skip blanks (not a newline, in a one-line value); the next byte, or None at the end."""
        space = _SPACE_IN_LINE if single_line else _SPACE
        while True:
            m = space.match(self.buf, self.pos)
            assert m is not None  # the pattern matches the empty string
            self.line += self.buf.count(b"\n", self.pos, m.end())
            self.pos = m.end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return None

    def take(self, expected: bytes, what: str, *, single_line: bool = False) -> int:
        """Consume the next byte, which must be one of ``expected``."""
        c = self.next_byte(single_line=single_line)
        if c is None:
            raise Malformed(f"the file ends where {what} should be", self.line)
        if c not in expected:
            raise Malformed(f"expected {what}, found {chr(c)!r}", self.line)
        self.pos += 1
        return c

    def skip_bom(self) -> None:
        if self.peek(3) == BOM:
            self.pos += 3

    def looks_binary(self) -> bool:
        """NUL bytes or invalid UTF-8 in the first line: an image, an archive, UTF-16 text...

        Only the first line (8 kB at most) is looked at, so that a JSON Lines file with a
        damaged line further on is still read line by line.
        """
        window = self.peek(8192).split(b"\n", 1)[0]
        if b"\0" in window:
            return True
        try:
            codecs.getincrementaldecoder("utf-8")().decode(window, final=False)
        except UnicodeDecodeError:
            return True
        return False

    def ends_on_its_line(self, limit: int) -> bool:
        """Whether the value starting here closes on its line (or the line is past ``limit``)."""
        window = self.peek(limit)
        try:
            _advance(window, 0, _Scan(single_line=True), self.line)
        except Malformed:  # a newline inside an object or a list: a pretty-printed document
            return False
        return True

    # --- lines and values ---------------------------------------------------------

    def readline(self, limit: int) -> Chunk | None:
        """The rest of this line, without its newline (text None past ``limit``); None at EOF."""
        line, dropped, dropping, search_from = self.line, 0, False, self.pos
        while True:
            end = self.buf.find(b"\n", search_from)
            if end >= 0:
                size = dropped + end - self.pos
                text = self.buf[self.pos : end] if not dropping and size <= limit else None
                self.pos = end + 1
                self.line = line + 1
                return Chunk(text, size, line)
            if dropping or len(self.buf) - self.pos > limit:  # too long: count it, not keep it
                dropping = True
                dropped += len(self.buf) - self.pos
                self.buf, self.pos = b"", 0
            searched = len(self.buf) - self.pos
            if not self._fill():
                size = dropped + len(self.buf) - self.pos
                if size == 0:
                    return None
                text = self.buf[self.pos :] if not dropping and size <= limit else None
                self.buf, self.pos = b"", 0
                return Chunk(text, size, line, cut=self.error is not None)
            search_from = self.pos + searched

    def skip_line(self) -> None:
        """Read past the end of the current line."""
        while True:
            end = self.buf.find(b"\n", self.pos)
            if end >= 0:
                self.pos = end + 1
                self.line += 1
                return
            self.buf, self.pos = b"", 0
            if not self._fill():
                return

    def read_value(self, limit: int, *, single_line: bool = False) -> Chunk:
        """The next JSON value's bytes, split out by its brackets and strings, not parsed.

        A value longer than ``limit`` is read to its end and dropped (``text`` None).
        """
        c = self.next_byte(single_line=single_line)
        line = self.line
        if c is None:
            raise Malformed("the file ends where a value should be", line)
        if c not in _OPEN and c != 0x22:
            return self._scalar(limit, line)
        scan = _Scan(single_line=single_line)
        start, i, dropped = self.pos, self.pos, 0
        while True:
            end = _advance(self.buf, i, scan, self.line)
            if end is not None:
                size = dropped + end - start
                text = self.buf[start:end] if not dropped and size <= limit else None
                self.line += self.buf.count(b"\n", start, end)
                self.pos = end
                return Chunk(text, size, line)
            if dropped or len(self.buf) - start > limit:  # too long: count it, not keep it
                dropped += len(self.buf) - start
                self.line += self.buf.count(b"\n", start)
                self.buf, self.pos, i = b"", 0, 0
            else:  # keep it: _fill moves it to the front of the buffer
                self.pos = start
                i = len(self.buf) - start
            start = 0
            if not self._fill():
                raise Malformed("the file ends inside a JSON value", self.line)

    def _scalar(self, limit: int, line: int) -> Chunk:
        while True:
            m = _SCALAR.match(self.buf, self.pos)
            end = m.end() if m else self.pos
            if end < len(self.buf) or end - self.pos > limit or not self._fill():
                break
        if end == self.pos:
            raise Malformed(f"unexpected {chr(self.buf[self.pos])!r}", line)
        text = self.buf[self.pos : end]
        if len(text) > limit:
            raise Malformed(f"a number or word of over {limit:,} bytes", line)
        self.pos = end
        return Chunk(text, len(text), line)


def _damage(exc: BaseException, compressed: bool) -> str:
    if isinstance(exc, EOFError):
        return "the gzip data ends early (a cut-off download?)"
    if compressed and isinstance(exc, gzip.BadGzipFile | zlib.error):
        return f"the gzip data is corrupt ({exc})"
    return str(exc)
