"""``nivl snapshot DIR``: a consistent copy of a home that a replica serves as is.

A snapshot holds the store (SQLite's online backup API), the search index and the
vectors, all at one revision: ``Library.snapshot`` copies them while holding the home's
write lock, so no import or harvest commits in between, and the stage marks in the copied
store describe the copied index: opening the snapshot rebuilds nothing. The group ids live
in the store (and in the index's fast fields), so they come along.

Media files are copied only when asked (``media=True``): ``HOME/media`` can be far larger
than everything else, and a replica without them shows upstream's thumbnails and links
(or shares one media folder, see docs/deploy.md).

Everything is written into ``DIR.tmp``, flushed to disk, and renamed to ``DIR`` at the end,
so a reader never sees half a snapshot; a ``DIR.tmp`` left by a killed run is removed by
the next run. ``snapshot.json`` in the snapshot says what it holds.
"""

from __future__ import annotations

import datetime
import errno
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from .errors import ConfigError, NivlError, StoreError
from .search_index import verify_files
from .store import Store

MANIFEST = "snapshot.json"
#: Files of the home's index that are not part of any revision (lock files, and the memo of
#: files already checked, which names the home's files: the snapshot checks its own copy
#: and writes its own memo, so a replica's workers need not read every file again).
_NOT_COPIED = ("nivl-verified",)


@dataclass
class SnapshotResult:
    path: Path
    revision: int
    records: int
    bytes: int
    media_files: int
    seconds: float


def check_target(home: Path, target: Path, *, replace: bool) -> None:
    """Refuse a target that would overwrite the home, a file, or a folder of other things."""
    home = Path(os.path.realpath(home))
    for path in (target, *_beside(target)):  # DIR.tmp and DIR.old are removed, too
        real = Path(os.path.realpath(path))
        if real == home or home in real.parents:
            raise ConfigError(f"cannot write a snapshot of {home} inside the home ({path})")
        if real in home.parents:
            raise ConfigError(f"cannot write a snapshot to {path}: the home {home} is inside it")
    if target.is_symlink():
        raise ConfigError(
            f"{target} is a symlink: write the snapshot to a new folder, then point the link "
            "at it (see docs/deploy.md)"
        )
    if not target.parent.is_dir():
        raise ConfigError(f"cannot write a snapshot to {target}: {target.parent} is not a folder")
    if target.exists():
        if not target.is_dir():
            raise ConfigError(f"cannot write a snapshot to {target}: it is a file, not a folder")
        entries = os.listdir(target)
        if entries and not replace:
            raise ConfigError(f"{target} is not empty (use --replace to replace a snapshot)")
        if entries and not (target / MANIFEST).is_file():
            raise ConfigError(f"{target} is not a nivl snapshot: --replace only replaces one")


def write(
    store: Store,
    *,
    home: Path,
    target: Path,
    index_path: Path,
    vectors_path: Path,
    media_path: Path | None,
    revision: int,
    marks: dict[str, str],
    replace: bool = False,
    also: tuple[Path, ...] = (),
) -> SnapshotResult:
    """Copy the home into ``target`` (the caller holds the write lock, or nothing can write).

    ``media_path``: also copy the complete media files under it (``None``: no media).
    """
    started = time.monotonic()
    check_target(home, target, replace=replace)
    partial, old = _beside(target)
    for leftover in (partial, old):  # a run killed part-way
        _remove(leftover)
    try:
        partial.mkdir()
    except OSError as exc:
        raise StoreError(f"cannot write a snapshot to {target}: {_why(exc)}") from exc
    try:
        store.backup(partial / "nivl.db")
        copied = _copy_tree(index_path, partial / "index", skip=_NOT_COPIED)
        for path in (vectors_path, *also):  # ``also``: the built-in model's vectors
            if path.is_file():
                copied += _copy_file(path, partial / path.name)
        media_files = 0
        if media_path is not None and media_path.is_dir():
            media_files, size = _copy_media(media_path, partial / media_path.name)
            copied += size
        copied += (partial / "nivl.db").stat().st_size
        verify_files(partial / "index", remember=True)
        records = store.count()
        manifest = {
            "revision": revision,
            "records": records,
            "marks": marks,
            "media": media_path is not None,
            "source": str(home),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        (partial / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        _sync_tree(partial)
        if target.exists():  # empty, or a snapshot --replace replaces
            os.rename(target, old)
        os.rename(partial, target)
        _fsync_dir(target.parent)
        _remove(old)
    except (OSError, NivlError) as exc:
        _remove(partial)
        reason = _why(exc) if isinstance(exc, OSError) else str(exc)
        if "disk is full" in reason:
            reason = "the disk is full"
        raise StoreError(f"the snapshot {target} was not written: {reason}") from exc
    return SnapshotResult(
        path=target,
        revision=revision,
        records=records,
        bytes=copied,
        media_files=media_files,
        seconds=time.monotonic() - started,
    )


def read_manifest(folder: Path) -> dict[str, object]:
    """What ``snapshot.json`` says (empty for a home that is not a snapshot)."""
    try:
        found = orjson.loads((folder / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return found if isinstance(found, dict) else {}


def _beside(target: Path) -> tuple[Path, Path]:
    """The folder a snapshot is written in, and where the one it replaces goes meanwhile."""
    return target.with_name(target.name + ".tmp"), target.with_name(target.name + ".old")


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{exc.filename or 'the folder'} cannot be written ({exc.strerror})"
    return exc.strerror or str(exc)


def _copy_file(source: Path, target: Path) -> int:
    shutil.copyfile(source, target)
    return target.stat().st_size


def _copy_tree(source: Path, target: Path, *, skip: tuple[str, ...] = ()) -> int:
    """Files of ``source`` (one level: a tantivy index), lock files and ``skip`` left out."""
    target.mkdir()
    copied = 0
    if not source.is_dir():
        return 0
    for file in sorted(source.iterdir()):
        if file.is_file() and not file.name.endswith(".lock") and file.name not in skip:
            copied += _copy_file(file, target / file.name)
    return copied


def _copy_media(source: Path, target: Path) -> tuple[int, int]:
    """Complete media files (never a ``.part`` download), hard-linked where the snapshot is
    on the same filesystem: media files are renamed into place once and never rewritten.
    Files and folders keep their mtimes: the pictures stage (pictures.py) knows a picture
    it hashed by them, so a home opened from the snapshot hashes nothing again."""
    files = size = 0
    folders: list[tuple[Path, os.stat_result]] = []
    for folder, _dirs, names in os.walk(source):
        here = Path(folder)
        into = target / here.relative_to(source)
        into.mkdir(parents=True, exist_ok=True)
        folders.append((into, here.stat()))
        for name in names:
            if name.endswith(".part"):
                continue
            try:
                os.link(here / name, into / name)
            except OSError:
                shutil.copy2(here / name, into / name)
            files += 1
            size += (into / name).stat().st_size
    for into, stat in reversed(folders):  # the deepest first: a mkdir moves its parent's
        os.utime(into, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return files, size


def _sync_tree(folder: Path) -> None:
    """Flush every file and folder of the snapshot, so the rename publishes it whole."""
    for where, _dirs, names in os.walk(folder):
        for name in names:
            descriptor = os.open(Path(where) / name, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        _fsync_dir(Path(where))


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
