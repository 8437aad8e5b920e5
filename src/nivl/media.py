"""Mirrored media files: which renditions a manifest names, where they live, fetching them.

Files live in ``HOME/media/<nasa_id>/<file name>``, both names made safe for a path
(``disk_name``). A download writes ``<name>.part`` and renames it only once its length
(and, where upstream's ETag gives one, its MD5) is verified, so any file without the
suffix is complete: a SIGKILL leaves a ``.part`` that is never listed, served or counted,
and that the next run resumes with ``Range``. A complete file is never fetched again.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson

from .errors import NivlError, RecordNotFound, UpstreamError
from .upstream import Upstream, file_md5

ASSETS_HOST = "images-assets.nasa.gov"
SIZES = ("thumb", "small", "medium", "large", "orig")
PART = ".part"
#: Characters kept as they are in a file or folder name; the rest are percent-encoded.
_SAFE = re.compile(r"[^A-Za-z0-9._~+@,=-]")


def disk_name(name: str) -> str:
    """A name that is one path segment and nothing else: no ``/``, no ``..``, no NUL."""
    safe = _SAFE.sub(lambda m: quote(m[0], safe=""), name)
    return safe if safe.strip(".") else safe.replace(".", "%2E")


def url_path(nasa_id: str, filename: str) -> str:
    """The ``/media/...`` path serving a mirrored file (names as on disk)."""
    return f"/media/{quote(disk_name(nasa_id), safe='')}/{quote(filename, safe='')}"


def local_files(root: Path, nasa_id: str) -> dict[str, str]:
    """Complete files of ``nasa_id`` → their URL paths (never a ``.part``)."""
    folder = root / disk_name(nasa_id)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return {}
    return {
        entry.name: url_path(nasa_id, entry.name)
        for entry in entries
        if not entry.name.endswith(PART) and entry.is_file(follow_symlinks=False)
    }


def served_file(root: Path, folder: str, filename: str) -> Path:
    """The file ``/media/<folder>/<filename>`` may serve, or ``RecordNotFound``: one plain
    file directly inside one plain folder of ``root``, no symlink, no ``.part``, no ``..``."""
    for name in (folder, filename):
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise RecordNotFound("No such media file in this mirror")
    if filename.endswith(PART):
        raise RecordNotFound("No such media file in this mirror (it is still downloading)")
    base = root.resolve()
    directory = base / folder
    path = directory / filename
    if directory.is_symlink() or path.is_symlink() or not path.is_file():
        raise RecordNotFound("No such media file in this mirror")
    if path.resolve().parent != base / folder or not path.resolve().is_relative_to(base):
        raise RecordNotFound("No such media file in this mirror")
    return path


def renditions(manifest: str, size: str) -> list[str]:
    """The URLs of ``size``'s files in a manifest (``~thumb.jpg``, ``~small.mp4``...)."""
    try:
        items = orjson.loads(manifest)["collection"]["items"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return []
    urls = []
    marker = f"~{size}."
    for item in items if isinstance(items, list) else []:
        href = item.get("href") if isinstance(item, dict) else None
        if isinstance(href, str) and marker in href.rsplit("/", 1)[-1]:
            if urlsplit(href).scheme in ("http", "https"):
                urls.append(href)
    return urls


def rehost(url: str, assets_url: str) -> str:
    """``url`` on ``assets_url`` instead of images-assets.nasa.gov (when one is set)."""
    parts = urlsplit(url)
    if not assets_url or parts.hostname != ASSETS_HOST:
        return url
    return assets_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


def file_name(url: str) -> str:
    return disk_name(unquote(urlsplit(url).path.rsplit("/", 1)[-1]))


@dataclass
class Usage:
    """What the media folder holds: complete files and leftover ``.part`` files."""

    records: int = 0
    files: int = 0
    bytes: int = 0
    partial_files: int = 0
    partial_bytes: int = 0


def usage(root: Path) -> Usage:
    result = Usage()
    try:
        folders = list(os.scandir(root))
    except OSError:
        return result
    for folder in folders:
        if not folder.is_dir(follow_symlinks=False):
            continue
        complete = 0
        for entry in os.scandir(folder.path):
            if not entry.is_file(follow_symlinks=False):
                continue
            size = entry.stat(follow_symlinks=False).st_size
            if entry.name.endswith(PART):
                result.partial_files += 1
                result.partial_bytes += size
            else:
                complete += 1
                result.files += 1
                result.bytes += size
        result.records += complete > 0
    return result


@dataclass
class FetchResult:
    """What ``fetch`` did; ``ok`` is the CLI's exit status."""

    records: int = 0
    wanted: int = 0
    fetched: int = 0
    already: int = 0
    resumed: int = 0
    bytes: int = 0
    over_budget: int = 0
    no_rendition: int = 0
    manifests_fetched: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)
    hashed: int = 0  # pictures hashed for the visual groups (pictures.py)
    unhashed: list[tuple[str, str]] = field(default_factory=list)  # (nasa_id, why not)

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"ok": self.ok, **asdict(self), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class Job:
    nasa_id: str
    url: str
    path: Path


class Budget:
    """The disk budget: bytes on disk plus those promised to downloads in flight."""

    def __init__(self, limit: int | None, used: int) -> None:
        self.limit = limit
        self.used = used
        self.refused = False
        self._lock = threading.Lock()

    @property
    def full(self) -> bool:
        """True once a file did not fit: the fetch stops starting downloads there."""
        return self.refused or (self.limit is not None and self.used >= self.limit)

    def reserve(self, size: int) -> bool:
        with self._lock:
            if self.limit is not None and self.used + size > self.limit:
                self.refused = True
                return False
            self.used += size
            return True


FetchProgress = Callable[[str, int], object]  # ("file"|"bytes"|"total", n)


def plan(
    root: Path, manifests: Iterable[tuple[str, str]], size: str, assets_url: str
) -> tuple[list[Job], int, int]:
    """(jobs still to do, files already complete, records naming no such rendition)."""
    jobs: list[Job] = []
    already = missing = 0
    for nasa_id, manifest in manifests:
        urls = renditions(manifest, size)
        if not urls:
            missing += 1
        for url in urls:
            path = root / disk_name(nasa_id) / file_name(url)
            if path.is_file():
                already += 1
            else:
                jobs.append(Job(nasa_id, rehost(url, assets_url), path))
    return jobs, already, missing


def fetch(
    client: Upstream,
    jobs: list[Job],
    result: FetchResult,
    *,
    max_bytes: int | None = None,
    used: int = 0,
    progress: FetchProgress | None = None,
) -> FetchResult:
    """Download ``jobs`` with ``client.concurrency`` in flight, each verified then renamed."""
    budget = Budget(max_bytes, used)
    lock = threading.Lock()

    def one(job: Job) -> tuple[str, int]:
        if budget.full:  # no request for a file that cannot fit
            return "over_budget", 0
        job.path.parent.mkdir(parents=True, exist_ok=True)
        part = job.path.with_name(job.path.name + PART)
        had = part.stat().st_size if part.exists() else 0
        reserved = 0

        def on_length(total: int) -> bool:
            nonlocal reserved
            if progress is not None:
                progress("total", total)
            reserved = max(0, total - had)
            return budget.reserve(reserved)

        def on_bytes(n: int) -> None:
            if progress is not None:
                progress("bytes", n)

        done = client.download(job.url, part, on_bytes=on_bytes, on_length=on_length)
        if done.refused:
            if not had and part.exists() and part.stat().st_size == 0:
                part.unlink()
            return "over_budget", 0
        if part.stat().st_size != done.size:
            raise UpstreamError(f"{job.url}: length {part.stat().st_size}, expected {done.size}")
        if done.md5 is not None and file_md5(part) != done.md5:
            part.unlink()  # bytes from two different versions, or corrupted: start over
            raise UpstreamError(f"{job.url}: checksum does not match upstream's ETag")
        os.replace(part, job.path)
        _fsync_dir(job.path.parent)
        return ("resumed" if had else "fetched"), done.size

    requests_before, retries_before = client.requests, client.retried
    with ThreadPoolExecutor(max_workers=client.concurrency) as pool:
        futures = {pool.submit(one, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                outcome, size = future.result()
            except (NivlError, OSError) as exc:
                result.failed.append((job.url, str(exc)))
            else:
                with lock:
                    if outcome == "over_budget":
                        result.over_budget += 1
                    else:
                        result.fetched += 1
                        result.resumed += outcome == "resumed"
                        result.bytes += size
            if progress is not None:
                progress("file", 1)
    result.requests += client.requests - requests_before
    result.retries += client.retried - retries_before
    return result


def fetch_manifests(
    client: Upstream, nasa_ids: list[str], store: Callable[[str, str], object]
) -> Iterator[tuple[str, str | None, str | None]]:
    """(nasa_id, manifest or None, failure or None) for each id, fetched concurrently;
    ``store`` is called (in this thread) for each manifest found."""
    with ThreadPoolExecutor(max_workers=client.concurrency) as pool:
        futures = {pool.submit(client.asset_manifest, nasa_id): nasa_id for nasa_id in nasa_ids}
        for future in as_completed(futures):
            nasa_id = futures[future]
            try:
                text = future.result()
            except NivlError as exc:
                yield nasa_id, None, str(exc)
                continue
            if text is not None:
                store(nasa_id, text)
            yield nasa_id, text, None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
