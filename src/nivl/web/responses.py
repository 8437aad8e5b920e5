"""JSON responses with ETag, Cache-Control and gzip, and a small cache of finished bodies.

A page of 100 items is 0.5-1 MB of JSON; compressing it costs more than the search that
produced it, so it is done with ISA-L's igzip (``isal``): the same gzip format, about four
times faster than zlib at level 1 and a little smaller (at 100k records, 2.3 ms instead of
9.6 ms of CPU for a 1 MB page). Finished bodies (and their gzip form, made once, on first
demand) are kept in a byte-bounded LRU keyed by the request and the store's revision, so
new data is never answered from the cache.

A client that accepts zstd (httpx, curl --compressed, browsers since 2024) gets JSON bodies
in zstd, level 1, when it ranks zstd no lower than gzip: about twice as fast to make as
igzip's level 1 and several times smaller, since a page's long transcripts repeat across
more than gzip's 32 KB window (300k synthetic records: 0.8 ms a page against 1.5 ms, ratio
13 against 3); the other routes (pages, static files) stay gzip.

A compressed body is a different representation from the identity one, so it gets its own
ETag (the identity tag with ``-gzip`` or ``-zstd`` inside the quotes, as Apache does);
``Compression`` strips the suffix from If-None-Match on the way in, so the routes compare
one tag.

A gzip client's multi-MB page (100 long transcripts: 4–6 MB, 11–17 ms of igzip) is made
from pieces (``stitched_gzip``): each large stored item is deflated on its own once and
kept (``Fragments``), and a page is its items' fragments put end to end in one gzip member,
with the page's own small pieces deflated around them. Every fragment ends byte-aligned
with a sync flush and none is final, so the whole is one ordinary deflate stream, the
kind pigz writes: any gzip decoder reads it (a back-reference never leaves its fragment).
The trailer's CRC-32 is the page's own, so a wrong fragment could only fail the decoding,
never pass for the page.
"""

from __future__ import annotations

import itertools
import random
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import zstandard
from fastapi import Request
from isal import igzip, isal_zlib
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIN_GZIP = 1000
GZIP_TAG = "-gzip"
SUFFIXES = {"gzip": GZIP_TAG, "zstd": "-zstd"}
#: A JSON body at least this big, built from pieces, is gzipped from them (``stitched_gzip``).
STITCH_MIN = 256 * 1024
#: A piece at least this big is deflated on its own and kept (``Fragments``); smaller
#: pieces between them are deflated together, afresh.
FRAGMENT_MIN = 16 * 1024
Chunk = bytes | memoryview


@dataclass
class Body:
    data: bytes
    etag: str
    gzipped: bytes | None = None
    zstd: bytes | None = None
    #: Where each piece ``data`` was joined from ends (a page's: its stored items are
    #: pieces), so a large page's gzip is stitched from them whichever request makes it:
    #: the same body always has the same gzip bytes, as its one strong ETag says.
    cuts: Sequence[int] | None = None

    @property
    def size(self) -> int:
        return len(self.data) + len(self.gzipped or b"") + len(self.zstd or b"")


class BodyCache:
    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[object, ...], Body] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> Body | None:
        with self._lock:
            body = self._entries.get(key)
            if body is not None:
                self._entries.move_to_end(key)
            return body

    def put(self, key: tuple[object, ...], body: Body) -> Body:
        if body.size * 4 > self.max_bytes:
            return body  # too big to be worth keeping
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes += body.size - (old.size if old else 0)
            self._entries[key] = body
            while self._bytes > self.max_bytes and self._entries:
                _key, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.size
        return body

    def resize(self, key: tuple[object, ...], body: Body, grown_by: int) -> None:
        with self._lock:
            if self._entries.get(key) is body:
                self._bytes += grown_by


def body_of(built: bytes | Sequence[Chunk], revision: int) -> Body:
    """A builder's answer as a ``Body``: bytes, or the pieces to join (kept for gzip)."""
    if isinstance(built, bytes):
        return Body(built, etag(built, revision))
    data = b"".join(built)
    return Body(data, etag(data, revision), cuts=list(itertools.accumulate(map(len, built))))


def etag(data: bytes, revision: int = 0) -> str:
    """A strong validator: the revision the body was made at, its length and its CRC-32.

    A body is a function of its URL and the revision, so the revision alone tells two
    versions of a URL apart; length and CRC-32 cover whatever else could change a body
    (a new nivl version, a home rebuilt from scratch). ISA-L's CRC-32 costs 0.02 ms a MB
    where SHA-1 cost 0.5 ms: 5% of an uncached page's CPU. The same body gets the same tag
    in every worker process.
    """
    return f'"{revision:x}-{len(data):x}-{isal_zlib.crc32(data):08x}"'


def json_response(
    request: Request,
    build: Callable[[], bytes | Sequence[Chunk]],
    *,
    revision: int,
    cache: BodyCache | None = None,
    max_age: int = 300,
) -> Response:
    """The JSON ``build()`` makes (or the cached copy for this URL and revision)."""
    # The base URL too: bodies hold links built from the Host (and scheme) asked for.
    key = (str(request.base_url), request.url.path, request.url.query, revision)
    body = cache.get(key) if cache is not None else None
    if body is None:
        body = body_of(build(), revision)
        if cache is not None:
            body = cache.put(key, body)
    headers = {
        "ETag": body.etag,
        "Cache-Control": f"public, max-age={max_age}",
        "Vary": "Accept-Encoding",
    }
    if etag_matches(request.headers.get("if-none-match"), body.etag):
        return Response(status_code=304, headers=headers)
    encoding = choose_encoding(request.headers.get("accept-encoding", ""))
    if len(body.data) >= MIN_GZIP and encoding != "identity":
        headers["Content-Encoding"] = encoding
        data = compressed(body, encoding, cache, key)
        return Response(data, media_type="application/json", headers=headers)
    return Response(body.data, media_type="application/json", headers=headers)


def compressed(
    body: Body, encoding: str, cache: BodyCache | None, key: tuple[object, ...]
) -> bytes:
    """The body's gzip or zstd form, made on first demand and kept with it."""
    if encoding == "zstd":
        if body.zstd is None:
            body.zstd = _zstd_compressor().compress(body.data)
            if cache is not None:
                cache.resize(key, body, len(body.zstd))
        return body.zstd
    if body.gzipped is None:
        if body.cuts is not None and len(body.data) >= STITCH_MIN:
            body.gzipped = stitched_gzip(pieces(body.data, body.cuts), body.data, FRAGMENTS)
        else:
            body.gzipped = igzip.compress(body.data, compresslevel=1, mtime=0)
        if cache is not None:
            cache.resize(key, body, len(body.gzipped))
    return body.gzipped


#: gzip's header as igzip writes it with ``mtime=0``: deflate, no name, no time.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
#: An empty final block (fixed Huffman codes: BFINAL, BTYPE 01, end of block): it ends a
#: deflate stream whose blocks all end byte-aligned.
FINAL_BLOCK = b"\x03\x00"


def deflated(data: Chunk) -> bytes:
    """``data`` as raw deflate blocks (igzip, level 1) ending byte-aligned, none final: a
    piece that can stand anywhere in a deflate stream (it refers to nothing before it)."""
    compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)


class Fragments:
    """Large pieces deflated once (``deflated``), by content, within a byte budget.

    Keyed by length, CRC-32 and Adler-32 (0.02 ms a MB each with ISA-L, where hashing
    the bytes in Python costs 0.6 ms a MB); the page's trailer holds its own CRC-32, so
    even a clash of all three makes the decoding fail, not a wrong page pass. When full,
    a random fragment makes room: pages that walk over more items than fit, in the same
    order again and again (a benchmark's query set), made an LRU evict each fragment just
    before it was needed (hits 0% at 300k), where random eviction keeps a fair share.
    """

    def __init__(self, max_bytes: int = 48 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._entries: dict[tuple[int, int, int], bytes] = {}
        self._keys: list[tuple[int, int, int]] = []  # the same keys, to draw one at random
        self._bytes = 0
        self._lock = threading.Lock()
        self._random = random.Random(0)
        self.made = 0  # fragments deflated so far (the others were found)

    def get(self, piece: Chunk) -> bytes:
        key = (len(piece), isal_zlib.crc32(piece), isal_zlib.adler32(piece))
        found = self._entries.get(key)  # a dict read is atomic under the GIL
        if found is not None:
            return found
        made = deflated(piece)
        with self._lock:
            self.made += 1
            if key not in self._entries and len(made) * 4 <= self.max_bytes:
                while self._keys and self._bytes + len(made) > self.max_bytes:
                    n = self._random.randrange(len(self._keys))
                    victim, self._keys[n] = self._keys[n], self._keys[-1]
                    self._keys.pop()
                    self._bytes -= len(self._entries.pop(victim))
                self._entries[key] = made
                self._keys.append(key)
                self._bytes += len(made)
        return made

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._keys.clear()
            self._bytes = 0


#: This process's fragments (each worker process has its own).
FRAGMENTS = Fragments()


def pieces(data: bytes, cuts: Sequence[int]) -> list[memoryview]:
    """``data`` cut where its pieces ended (views, not copies)."""
    view = memoryview(data)
    return [view[start:end] for start, end in itertools.pairwise([0, *cuts])]


def stitched_gzip(parts: Sequence[Chunk], data: bytes, fragments: Fragments) -> bytes:
    """``data`` (``b"".join(parts)``) in gzip: one member whose deflate stream is each
    large part's kept fragment and the small parts between them deflated afresh."""
    out = [GZIP_HEADER]
    run: list[Chunk] = []
    for part in parts:
        if len(part) >= FRAGMENT_MIN:
            if run:
                out.append(deflated(b"".join(run)))
                run = []
            out.append(fragments.get(part))
        elif part:
            run.append(part)
    if run:
        out.append(deflated(b"".join(run)))
    out += (FINAL_BLOCK, struct.pack("<II", isal_zlib.crc32(data), len(data) & 0xFFFFFFFF))
    return b"".join(out)


_per_thread = threading.local()


def _zstd_compressor() -> zstandard.ZstdCompressor:
    """This thread's compressor (one is not safe across threads): kept, its context and
    tables are reused instead of allocated anew for every body (about 5% of zstd's CPU on
    a 140 KB page)."""
    compressor: zstandard.ZstdCompressor | None = getattr(_per_thread, "zstd", None)
    if compressor is None:
        compressor = _per_thread.zstd = zstandard.ZstdCompressor(level=1)
    return compressor


def choose_encoding(accept_encoding: str) -> str:
    """zstd, gzip or identity for a JSON body: zstd when it is accepted and ranked no lower
    than gzip, else gzip when accepted (``*`` covers both; q=0 refuses)."""
    ranks = _qualities(accept_encoding)
    star = ranks.get("*")
    zstd = ranks.get("zstd", star)
    gzip = ranks.get("gzip", star)
    if zstd and zstd >= (gzip or 0.0):
        return "zstd"
    return "gzip" if gzip else "identity"


def _qualities(accept_encoding: str) -> dict[str, float]:
    """Each coding's q value (``x-gzip`` is gzip; the highest when one is named twice)."""
    found: dict[str, float] = {}
    for part in accept_encoding.split(","):
        coding, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        coding = {"x-gzip": "gzip"}.get(coding.lower(), coding.lower())
        if coding:
            found[coding] = max(found.get(coding, 0.0), quality)
    return found


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header lets gzip through: ``gzip;q=0`` refuses it, and so
    does ``*;q=0`` when gzip is not named (RFC 9110, section 12.5.3)."""
    ranks = _qualities(accept_encoding)
    quality = ranks.get("gzip", ranks.get("*"))
    return quality is not None and quality > 0


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """If-None-Match's weak comparison: a list of tags, ``W/`` ignored, or ``*``."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = _opaque(tag)
    return any(_opaque(candidate) == wanted for candidate in if_none_match.split(","))


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def gzip_tag(tag: str, encoding: str = "gzip") -> str:
    """A compressed representation's ETag: ``"abc"`` → ``"abc-gzip"`` or ``"abc-zstd"``
    (weak stays weak)."""
    suffix = SUFFIXES[encoding]
    if not tag.endswith('"') or tag.endswith(suffix + '"'):
        return tag
    return tag[:-1] + suffix + '"'


def _identity_tags(if_none_match: str) -> str:
    """If-None-Match with each gzip or zstd tag turned back into the identity tag it
    stands for."""
    out = []
    for tag in (t.strip() for t in if_none_match.split(",")):
        for suffix in SUFFIXES.values():
            if tag.endswith(suffix + '"'):
                tag = tag[: -len(suffix) - 1] + '"'
                break
        out.append(tag)
    return ", ".join(out)


class Compression:
    """gzip for what the routes did not compress themselves (pages, /openapi.json, static
    files), with what Starlette's ``GZipMiddleware`` lacks: ``gzip;q=0`` is honoured, Vary
    names each header once, and a gzip body has its own ETag (``gzip_tag``)."""

    def __init__(self, app: ASGIApp, *, compresslevel: int = 4) -> None:
        self.gzip = GZipMiddleware(app, minimum_size=MIN_GZIP, compresslevel=compresslevel)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.gzip(scope, receive, send)
            return
        headers = Headers(scope=scope)
        sent_encoding = headers.get("accept-encoding", "")
        wants_gzip = accepts_gzip(sent_encoding)
        encoding = choose_encoding(sent_encoding)  # JSON's, which json_response follows
        sent_tags = headers.get("if-none-match", "")
        # Downstream sees one decision (zstd for JSON and gzip for the rest, gzip, or
        # identity) and identity tags only.
        raw = [
            (k, v) for k, v in scope["headers"] if k not in (b"accept-encoding", b"if-none-match")
        ]
        decided = b"gzip" if wants_gzip else b"identity"
        accepted = accepted_encodings(encoding, wants_gzip)
        raw.append((b"accept-encoding", b"zstd, " + decided if encoding == "zstd" else decided))
        if sent_tags:
            raw.append((b"if-none-match", _identity_tags(sent_tags).encode("latin-1")))

        async def send_fixed(message: Message) -> None:
            if message["type"] == "http.response.start":
                _fix_headers(MutableHeaders(scope=message), message["status"], accepted, sent_tags)
            await send(message)

        await self.gzip({**scope, "headers": raw}, receive, send_fixed)


def _fix_headers(headers: MutableHeaders, status: int, accepted: list[str], sent_tags: str) -> None:
    names = [v.strip() for value in headers.getlist("vary") for v in value.split(",") if v.strip()]
    if names:
        del headers["vary"]
        unique: dict[str, str] = {}
        for name in names:
            unique.setdefault(name.lower(), name)
        headers["Vary"] = ", ".join(unique.values())
    tag = headers.get("etag")
    if tag is None:
        return
    sent_encoding = headers.get("content-encoding")
    if sent_encoding in SUFFIXES:
        headers["ETag"] = gzip_tag(tag, sent_encoding)
    elif status == 304:
        headers["ETag"] = revalidated_tag(tag, accepted, sent_tags)


def accepted_encodings(encoding: str, wants_gzip: bool) -> list[str]:
    """The compressed forms a client may hold a body in: zstd's when JSON goes out in zstd,
    gzip's when it accepts gzip (the other routes', or before zstd was offered)."""
    return (["zstd"] if encoding == "zstd" else []) + (["gzip"] if wants_gzip else [])


def revalidated_tag(tag: str, accepted: list[str], sent_tags: str) -> str:
    """A 304's ETag: the compressed body's when that is the one the client revalidated."""
    for candidate in accepted:
        if etag_matches(sent_tags, gzip_tag(tag, candidate)):
            return gzip_tag(tag, candidate)
    return tag
