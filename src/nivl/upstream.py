"""The upstream API client: polite HTTP with retries, and lazy page generators.

``Upstream.pages()`` follows ``rel="next"`` links and ``items()`` flattens
them, failing loudly when fewer items arrive than ``total_hits`` promised.
Retries (429, 5xx, timeouts, dropped connections) back off exponentially
with jitter and honour ``Retry-After``; at most ``concurrency`` requests are
in flight and, with ``rate``, at most that many start per second. httpx's
exceptions become ``UpstreamError`` here, at the adapter's edge.

The retry loop is written out (``Upstream.get``) rather than delegated to stamina: every
wait goes through the client's injectable ``sleep`` and ``rng`` (tests keep waits short and
check them, the harvester's replay tests inject faults by the hundred), and counts into its
``retried``. stamina's synchronous retries sleep through tenacity's own ``time.sleep`` and
its test mode is process-wide (all waits zero, attempts capped), so it was dropped.

Next links are followed by their query only, resolved against ``base_url``:
upstream writes absolute https://images-api.nasa.gov links, and a client
pointed at a mirror (or a test server) must stay on the host it was given.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

import orjson

from .errors import UpstreamError, UpstreamHTTPError

if TYPE_CHECKING:  # httpx is imported by the methods that talk to upstream: every command
    import httpx  # and server imports this module, and httpx costs a seventh of a second

DEFAULT_BASE_URL = "https://images-api.nasa.gov"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

log = logging.getLogger(__name__)


class PageRefused(UpstreamHTTPError):
    """A 4xx for page N > 1 of a search that served page 1: upstream's paging window ends."""

    def __init__(self, status_code: int, url: str, message: str, page: int) -> None:
        super().__init__(status_code, url, message)
        self.page = page


class ShortResults(UpstreamError):
    """The pages ran out before ``total_hits`` items arrived."""

    def __init__(self, params: Mapping[str, str], promised: int, received: int) -> None:
        super().__init__(
            f"upstream promised {promised} items for {dict(params)} but served {received}"
        )
        self.promised = promised
        self.received = received


@dataclass(frozen=True)
class Page:
    """One ``/search`` page: its items, the promised total and the next page's query."""

    number: int
    params: dict[str, str]
    items: list[Any]
    total_hits: int
    next_params: dict[str, str] | None


class Upstream:
    """A client for images-api.nasa.gov (or anything answering like it).

    ``sleep`` and ``rng`` are injectable so that tests can keep waits short
    and jitter reproducible; ``max_wait`` caps any single wait, Retry-After
    included, so a server asking for an hour cannot stall a harvest.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        retries: int = 6,
        backoff: float = 0.5,
        max_wait: float = 120.0,
        concurrency: int = 4,
        rate: float | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], object] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        import httpx

        from . import __version__  # here, not at import: nivl/__init__ imports this module

        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.concurrency = concurrency
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._interval = 1.0 / rate if rate else 0.0
        self._next_start = 0.0
        self._rate_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.requests = 0
        self.retried = 0
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"User-Agent": f"nivl/{__version__}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency),
            transport=transport,
            follow_redirects=True,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ---------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        """GET with retries; a final error status raises ``UpstreamHTTPError``."""
        import httpx

        attempt = 0
        while True:
            wait: float | None = None
            try:
                response = self._send(path, params)
            except httpx.HTTPError as exc:  # timeouts, refused or dropped connections
                if attempt >= self.retries:
                    raise UpstreamError(f"{path}: {type(exc).__name__}: {exc}") from exc
                what = f"{type(exc).__name__}"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    raise UpstreamHTTPError(
                        response.status_code, str(response.url), _reason(response)
                    )
                what = f"HTTP {response.status_code}"
                wait = _retry_after(response.headers.get("Retry-After"))
            if wait is None:
                wait = self.backoff * 2**attempt * self._rng.uniform(0.5, 1.0)
            wait = min(wait, self.max_wait)
            attempt += 1
            with self._count_lock:
                self.retried += 1
            log.debug("%s for %s %s: retry %d in %.2fs", what, path, params, attempt, wait)
            self._sleep(wait)

    def download(
        self,
        url: str,
        part: Path,
        *,
        on_bytes: Callable[[int], object] | None = None,
        on_length: Callable[[int], bool] | None = None,
    ) -> Downloaded:
        """Stream ``url`` into ``part``, resuming from its length with ``Range``; retries
        like ``get`` (each retry resumes where the last one stopped). ``on_length(total)``
        may refuse the file (the disk budget): then nothing more is written."""
        import httpx

        attempt = 0
        while True:
            wait: float | None = None
            have = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={have}-", "Accept": "*/*"} if have else {"Accept": "*/*"}
            try:
                with self._slots:
                    self._pace()
                    with self._count_lock:
                        self.requests += 1
                    with self._client.stream("GET", url, headers=headers) as response:
                        done = self._receive(response, part, have, on_bytes, on_length)
                if done is not None:
                    return done
                what = f"HTTP {response.status_code}"
                wait = _retry_after(response.headers.get("Retry-After"))
            except httpx.HTTPError as exc:  # timeouts, refused, dropped or cut-off bodies
                what = type(exc).__name__
                if attempt >= self.retries:
                    raise UpstreamError(f"{url}: {what}: {exc}") from exc
            if attempt >= self.retries:
                raise UpstreamHTTPError(response.status_code, url, _reason(response))
            if wait is None:
                wait = self.backoff * 2**attempt * self._rng.uniform(0.5, 1.0)
            attempt += 1
            with self._count_lock:
                self.retried += 1
            log.debug("%s for %s: retry %d in %.2fs", what, url, attempt, wait)
            self._sleep(min(wait, self.max_wait))

    def _receive(
        self,
        response: httpx.Response,
        part: Path,
        have: int,
        on_bytes: Callable[[int], object] | None,
        on_length: Callable[[int], bool] | None,
    ) -> Downloaded | None:
        """One response into ``part``; None to retry. Raises on a final error status."""
        status = response.status_code
        if status == 416 and have:  # nothing past ``have``: complete, or longer than the file
            total = _range_total(response.headers.get("Content-Range"))
            if total == have:
                return Downloaded(have, _md5_etag(response), refused=False)
            part.unlink()
            return None
        if status in RETRY_STATUSES:
            return None
        if status >= 400:
            raise UpstreamHTTPError(status, str(response.url), _reason(response))
        start = 0
        if status == 206:
            start = _range_start(response.headers.get("Content-Range"))
            if start != have:  # not the range asked for: start over
                part.unlink(missing_ok=True)
                return None
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        if status == 206:
            total = _range_total(response.headers.get("Content-Range")) or total
        if total is not None and on_length is not None and not on_length(total):
            return Downloaded(total, None, refused=True)
        with part.open("r+b" if start and part.exists() else "wb") as out:
            out.seek(start)
            out.truncate()
            for chunk in response.iter_bytes(1 << 16):
                out.write(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        if total is not None and size != total:
            return None  # cut off without an error: resume
        return Downloaded(size, _md5_etag(response), refused=False)

    def _send(self, path: str, params: Mapping[str, str] | None) -> httpx.Response:
        with self._slots:
            self._pace()
            with self._count_lock:
                self.requests += 1
            return self._client.get(path, params=dict(params or {}))

    def _pace(self) -> None:
        """Space request starts ``1/rate`` seconds apart (no-op without a rate)."""
        if not self._interval:
            return
        with self._rate_lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
        if start > now:
            self._sleep(start - now)

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        response = self.get(path, params)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"{response.url} answered with invalid JSON: {exc}") from exc

    # --- search -----------------------------------------------------------------

    def search_page(self, params: Mapping[str, str]) -> Page:
        """One ``/search`` page; a 4xx for page > 1 raises ``PageRefused``."""
        number = _page_number(params)
        try:
            document = self.get_json("/search", params)
        except UpstreamHTTPError as exc:
            if number > 1 and 400 <= exc.status_code < 500 and exc.status_code != 429:
                raise PageRefused(exc.status_code, exc.url, str(exc), number) from exc
            raise
        collection = document.get("collection") if isinstance(document, dict) else None
        if not isinstance(collection, dict) or not isinstance(collection.get("items"), list):
            raise UpstreamError(f"/search {dict(params)} answered without collection.items")
        metadata = collection.get("metadata")
        total = metadata.get("total_hits") if isinstance(metadata, dict) else None
        if not isinstance(total, int):
            raise UpstreamError(f"/search {dict(params)} answered without metadata.total_hits")
        return Page(
            number=number,
            params=dict(params),
            items=collection["items"],
            total_hits=total,
            next_params=_next_params(collection.get("links")),
        )

    def pages(self, params: Mapping[str, str], *, page: int = 1) -> Iterator[Page]:
        """Pages from ``page`` on, following ``rel="next"`` until there is none (lazy)."""
        current: dict[str, str] | None = {**params, "page": str(page)}
        while current is not None:
            result = self.search_page(current)
            yield result
            if not result.items:
                return
            current = result.next_params
            if current is not None and _page_number(current) <= result.number:
                raise UpstreamError(f"/search {dict(params)}: the next link does not advance")

    def items(self, params: Mapping[str, str]) -> Iterator[Any]:
        """Every item of a search; raises ``ShortResults`` if fewer than promised arrive."""
        received = 0
        promised = 0
        for result in self.pages(params):
            promised = max(promised, result.total_hits)
            received += len(result.items)
            yield from result.items
        if received < promised:
            raise ShortResults(params, promised, received)

    # --- per-asset documents ------------------------------------------------------

    def asset_manifest(self, nasa_id: str) -> str | None:
        """The raw ``/asset/{nasa_id}`` document text, or None when upstream has none (404)."""
        return self._optional_text(f"/asset/{quote(nasa_id, safe='')}")

    def location(self, kind: str, nasa_id: str) -> str | None:
        """``/metadata`` or ``/captions`` → its ``location`` URL, or None when there is none."""
        text = self._optional_text(f"/{kind}/{quote(nasa_id, safe='')}")
        if text is None:
            return None
        with contextlib.suppress(orjson.JSONDecodeError):
            document = orjson.loads(text)
            if isinstance(document, dict) and isinstance(document.get("location"), str):
                return str(document["location"])
        raise UpstreamError(f"/{kind}/{nasa_id} answered without a location")

    def _optional_text(self, path: str) -> str | None:
        try:
            return self.get(path).text
        except UpstreamHTTPError as exc:
            if exc.status_code == 404:
                return None
            raise


@dataclass(frozen=True)
class Downloaded:
    """A finished download: its length, the MD5 upstream's ETag states (S3's is the body's
    MD5 for a plain upload), and whether ``on_length`` refused it."""

    size: int
    md5: str | None
    refused: bool


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _md5_etag(response: httpx.Response) -> str | None:
    etag = response.headers.get("ETag", "").removeprefix("W/").strip('"').lower()
    return etag if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag) else None


def _range_start(value: str | None) -> int:
    """``bytes 100-199/200`` → 100 (-1 when unreadable)."""
    try:
        return int((value or "").split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1


def _range_total(value: str | None) -> int | None:
    """``bytes 100-199/200`` or ``bytes */200`` → 200."""
    tail = (value or "").rpartition("/")[2]
    return int(tail) if tail.isdigit() else None


def _page_number(params: Mapping[str, str]) -> int:
    try:
        return int(params.get("page") or 1)
    except ValueError:
        return 1


def _next_params(links: Any) -> dict[str, str] | None:
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("rel") == "next":
            href = link.get("href")
            if isinstance(href, str) and href:
                return dict(parse_qsl(urlsplit(href.strip()).query, keep_blank_values=True))
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _reason(response: httpx.Response) -> str:
    with contextlib.suppress(orjson.JSONDecodeError):
        document = orjson.loads(response.content)
        if isinstance(document, dict) and isinstance(document.get("reason"), str):
            return str(document["reason"])
    return response.reason_phrase
