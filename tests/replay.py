"""A stand-in for images-api.nasa.gov on loopback, for the harvester's tests.

It serves the real recorded responses in ../shared/data/nasa/responses/ (by the
request each one answers, from INDEX.md; read there, never copied), and, for
scale, answers any other ``/search`` over ../shared/data/nasa/records.jsonl
with upstream's shapes: Collection+JSON, ``metadata.total_hits``, ``next`` and
``prev`` links pointing at itself. Like upstream it refuses pages beyond a
result window (``cap``), and it injects faults (500, 503, 429 with
Retry-After, slow answers, dropped connections) at a rate drawn from a seeded
RNG, so that a run is reproducible. Every request is counted and logged.

It is ``http.server`` rather than an ASGI app because a dropped connection
(close the socket, answer nothing) is one line here and impossible in ASGI.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

FAULTS = ("500", "503", "429", "slow", "drop")
#: Faults for the media tests: ``cut`` promises the whole body and sends half of it.
MEDIA_FAULTS = ("500", "503", "429", "drop", "cut")
#: Public-domain NASA photographs that ship inside scikit-image (its data folder).
PHOTOS = ("astronaut.png", "hubble_deep_field.jpg")
#: Width of each image rendition, roughly upstream's.
WIDTHS = {"thumb": 100, "small": 320, "medium": 640, "large": 1024, "orig": 1600}
_API = ("/search", "/asset/", "/metadata/", "/captions/")
SEARCH_PARAMS = (
    "q",
    "center",
    "description",
    "description_508",
    "keywords",
    "location",
    "media_type",
    "nasa_id",
    "photographer",
    "secondary_creator",
    "title",
    "year_start",
    "year_end",
)
_CHEAP = ("media_type", "year_start", "year_end", "center", "nasa_id")
_WORD = re.compile(r"\w+")
_INDEX_ROW = re.compile(r"^\| (\S+) \| GET (/[^ ]+(?: [^(|]+)?) \(")


@dataclass
class ReplayConfig:
    """What the server does; tests change it between requests (it is read per request)."""

    cap: int = 10_000  # deepest result (page × page_size) served; beyond it, a 400
    fault_rate: float = 0.0
    faults: Sequence[str] = FAULTS
    seed: int = 0
    retry_after: str = "1"
    slow_seconds: float = 1.0
    fail: Callable[[str, Mapping[str, str]], bool] | None = None  # always 500 when true


@dataclass
class Replay:
    """The server's state: its data, its config, and the requests it has seen."""

    items: list[dict[str, Any]]
    recorded: dict[tuple[str, tuple[tuple[str, str], ...]], Path]
    config: ReplayConfig = field(default_factory=ReplayConfig)
    log: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    faults_served: int = 0
    fault_kinds: Counter[str] = field(default_factory=Counter)
    url: str = ""
    #: (path, Range header or None, status) of every media file request answered.
    media_log: list[tuple[str, str | None, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(self.config.seed)
        self._text: list[frozenset[str]] | None = None  # words of each item, on first q=
        self._by_type_year: dict[tuple[str, str], list[int]] = {}
        self._by_id = {str(item["data"][0].get("nasa_id")): item for item in self.items}
        self._files: dict[str, bytes] = {}
        for number, item in enumerate(self.items):
            data = item["data"][0]
            key = (str(data.get("media_type")), str(data.get("date_created") or "")[:4])
            self._by_type_year.setdefault(key, []).append(number)

    @property
    def requests(self) -> int:
        return len(self.log)

    def reset(self, config: ReplayConfig | None = None) -> None:
        with self.lock:
            self.config = config or ReplayConfig()
            self.rng = random.Random(self.config.seed)
            self.log.clear()
            self.media_log.clear()
            self.faults_served = 0
            self.fault_kinds.clear()

    def pick_fault(self, path: str, params: Mapping[str, str]) -> str | None:
        with self.lock:
            self.log.append((path, dict(params)))
            config = self.config
            fault = None
            if config.fail is not None and config.fail(path, params):
                fault = "500"
            elif config.fault_rate and self.rng.random() < config.fault_rate:
                fault = self.rng.choice(list(config.faults))
            if fault is not None:
                self.faults_served += 1
                self.fault_kinds[fault] += 1
            return fault

    # --- answers ------------------------------------------------------------------

    def search(self, params: Mapping[str, str]) -> tuple[int, Any]:
        if not any(params.get(name) for name in SEARCH_PARAMS):
            return 400, {"reason": "Expected at least one search parameter"}
        try:
            page = int(params.get("page", "1"))
            page_size = int(params.get("page_size", "100"))
        except ValueError:
            return 400, {"reason": "page and page_size must be integers"}
        if page < 1 or page_size < 1:
            return 400, {"reason": "page and page_size must be positive"}
        if page * page_size > self.config.cap:
            return 400, {"reason": "Maximum number of search results have been displayed"}
        if params.get("q") and self._text is None:
            with self.lock:
                self._text = [_words(_item_text(item)) for item in self.items]
        texts = self._text or [frozenset()] * len(self.items)
        candidates: Sequence[int] = range(len(self.items))
        year = params.get("year_start")
        if year and year == params.get("year_end") and "," not in params.get("media_type", ","):
            candidates = self._by_type_year.get((params["media_type"], year), [])
        cheap = {k: v for k, v in params.items() if k in _CHEAP}  # filter on these first
        hits = [
            self.items[n]
            for n in candidates
            if _matches(self.items[n], texts[n], cheap)
            and _matches(self.items[n], texts[n], params)
        ]
        start = (page - 1) * page_size
        query = {k: v for k, v in params.items() if k != "page"}
        links = []
        if start + page_size < len(hits):
            links.append({"rel": "next", "prompt": "Next", "href": self._href(query, page + 1)})
        if page > 1:
            links.append({"rel": "prev", "prompt": "Previous", "href": self._href(query, page - 1)})
        document = {
            "collection": {
                "version": "1.0",
                "href": self._href(params, None),
                "items": hits[start : start + page_size],
                "metadata": {"total_hits": len(hits)},
                "links": links,
            }
        }
        return 200, document

    def built_manifest(self, nasa_id: str) -> dict[str, Any] | None:
        """A manifest for a record none was recorded for, from its own rendition names:
        the folder and stem of its preview link (or of its collection.json)."""
        item = self._by_id.get(nasa_id)
        if item is None:
            return None
        media_type = item["data"][0].get("media_type")
        links = [link.get("href") for link in item.get("links") or [] if isinstance(link, dict)]
        previews = [h for h in links if isinstance(h, str) and "~" in h.rsplit("/", 1)[-1]]
        if previews:
            stem = previews[0].rsplit("~", 1)[0]
        else:
            stem = str(item.get("href", "")).rsplit("/", 1)[0] + "/" + quote(nasa_id)
        folder = stem.rsplit("/", 1)[0]
        names = {
            "image": ["~orig.jpg", "~large.jpg", "~medium.jpg", "~small.jpg", "~thumb.jpg"],
            "video": ["~orig.mp4", "~medium.mp4", "~small.mp4", "~preview.mp4", "~thumb.jpg"],
            "audio": ["~orig.mp3", "~128k.mp3"],
        }.get(str(media_type), [])
        hrefs = [stem + name for name in names] + [folder + "/metadata.json"]
        return {
            "collection": {
                "version": "1.0",
                "href": f"{self.url}/asset/{quote(nasa_id)}",
                "items": [{"href": href} for href in hrefs],
            }
        }

    def file(self, path: str) -> bytes | None:
        """A media file's bytes: an image rendition is a real NASA photograph (from
        scikit-image's data folder) resized to the rendition's width; other files are
        seeded bytes. The same path always gets the same bytes."""
        name = path.rsplit("/", 1)[-1]
        if "~" not in name and not name.endswith((".json", ".srt", ".vtt")):
            return None
        with self.lock:
            cached = self._files.get(path)
        if cached is not None:
            return cached
        size = name.rsplit("~", 1)[-1].split(".")[0]
        if name.lower().endswith((".jpg", ".jpeg", ".png")):
            data = _photo(zlib.crc32(path.encode()), WIDTHS.get(size, 200))
        else:
            data = random.Random(path).randbytes(20_000 + zlib.crc32(path.encode()) % 30_000)
        with self.lock:
            self._files[path] = data
        return data

    def _href(self, params: Mapping[str, str], page: int | None) -> str:
        query = dict(params) if page is None else {**params, "page": str(page)}
        return f"{self.url}/search?{urlencode(query)}"


def _photo(seed: int, width: int) -> bytes:
    """One of ``PHOTOS`` (picked by ``seed``), ``width`` pixels wide, as JPEG."""
    import importlib.util
    import io

    from PIL import Image

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the media tests need scikit-image's bundled photographs")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    with Image.open(folder / PHOTOS[seed % len(PHOTOS)]) as image:
        rgb = image.convert("RGB")
        height = max(1, round(rgb.height * width / rgb.width))
        out = io.BytesIO()
        rgb.resize((width, height)).save(out, "JPEG", quality=85)
    return out.getvalue()


def _item_text(item: Mapping[str, Any]) -> str:
    data = item["data"][0]
    parts = [str(data.get(name) or "") for name in ("title", "description", "center", "nasa_id")]
    keywords = data.get("keywords") or []
    parts.extend(str(k) for k in keywords)
    return " ".join(parts)


def _words(text: str) -> frozenset[str]:
    return frozenset(w.lower() for w in _WORD.findall(text))


def _matches(item: Mapping[str, Any], text: frozenset[str], params: Mapping[str, str]) -> bool:
    data = item["data"][0]
    year = int(str(data.get("date_created") or "0")[:4] or 0)
    for name, value in params.items():
        if not value or name in ("page", "page_size"):
            continue
        if name == "q" and not _words(value) <= text:
            return False
        if name == "media_type" and data.get("media_type") not in value.split(","):
            return False
        if name == "year_start" and year < int(value):
            return False
        if name == "year_end" and year > int(value):
            return False
        if name == "center" and str(data.get("center") or "").lower() != value.lower():
            return False
        if name == "nasa_id" and data.get("nasa_id") != value:
            return False
        if name == "keywords":
            have = {str(k).lower() for k in data.get("keywords") or []}
            if not {k.strip().lower() for k in value.split(",")} <= have:
                return False
        if name in ("title", "description", "location", "photographer", "secondary_creator"):
            if not _words(value) <= _words(str(data.get(name) or "")):
                return False
    return True


def load_recorded(responses: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], Path]:
    """(path, sorted query) → the first recorded file answering it, from INDEX.md."""
    recorded: dict[tuple[str, tuple[tuple[str, str], ...]], Path] = {}
    for line in (responses / "INDEX.md").read_text().splitlines():
        match = _INDEX_ROW.match(line)
        if not match or not match[1].endswith(".json") or match[1].startswith("error__"):
            continue
        request = match[2].strip()
        parts = urlsplit(request)
        key = (unquote(parts.path), tuple(sorted(parse_qsl(parts.query))))
        recorded.setdefault(key, responses / match[1])
    return recorded


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        replay = self.server.replay
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        fault = replay.pick_fault(path, params)
        if fault == "drop":
            self.close_connection = True
            return
        if fault == "slow":
            time.sleep(replay.config.slow_seconds)
        if fault in ("500", "503"):
            self._send(int(fault), {"reason": "Injected fault"})
            return
        if fault == "429":
            self._send(429, {"reason": "Too many requests"}, replay.config.retry_after)
            return
        if fault == "cut" and not path.startswith(_API):
            self._media(replay, path, cut=True)
            return
        if fault == "cut":
            self.close_connection = True
            return
        recorded = replay.recorded.get((path, tuple(sorted(params.items()))))
        if recorded is not None:
            self._send(200, recorded.read_bytes())
        elif path == "/search":
            self._send(*replay.search(params))
        elif path.startswith("/asset/") and (built := replay.built_manifest(path[7:])):
            self._send(200, built)
        elif not path.startswith(_API):
            self._media(replay, path)
        elif path.startswith(("/asset/", "/metadata/", "/captions/")):
            kind, _, nasa_id = path[1:].partition("/")
            reason = {"asset": f"Could not find Asset with assetid={nasa_id}"}.get(kind)
            self._send(404, {"reason": reason} if reason else {})
        else:
            self._send(404, {"reason": f"No route {path}"})

    def _media(self, replay: Replay, path: str, *, cut: bool = False) -> None:
        """A media file with ``Range`` (one ``bytes=N-`` or ``N-M``) and an MD5 ETag, as
        images-assets.nasa.gov (S3) answers; ``cut`` sends half the promised body."""
        data = replay.file(path)
        requested = self.headers.get("Range")
        if data is None:
            self._send(404, {"reason": f"No route {path}"})
            return
        start, end, status = 0, len(data), 200
        if requested:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", requested.strip())
            if match is None or int(match[1]) >= len(data):
                with replay.lock:
                    replay.media_log.append((path, requested, 416))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(match[1])
            end = min(len(data), int(match[2]) + 1) if match[2] else len(data)
            status = 206
        with replay.lock:
            replay.media_log.append((path, requested, 599 if cut else status))
        body = data[start:end]
        kind = "image/jpeg" if path.endswith(".jpg") else "application/octet-stream"
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"')
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if cut else body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if cut:
            self.close_connection = True

    def _send(self, status: int, body: Any, retry_after: str | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    replay: Replay

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed mid-request (the SIGKILL tests) resets its sockets: not news."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serving(replay: Replay) -> Iterator[Replay]:
    """Serve ``replay`` on 127.0.0.1 (a free port) until the block ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.replay = replay
    replay.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def make_replay(records: Path, responses: Path, config: ReplayConfig | None = None) -> Replay:
    items = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    return Replay(items, load_recorded(responses), config or ReplayConfig())


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m tests.replay`` serves the shared data until Ctrl-C (for trying nivl)."""
    import argparse

    from .conftest import RECORDS, RESPONSES

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cap", type=int, default=10_000)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    replay = make_replay(RECORDS, RESPONSES, ReplayConfig(cap=args.cap, fault_rate=args.fault_rate))
    with serving(replay):
        print(replay.url, flush=True)  # noqa: T201 (a dev tool, not library code)
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
