"""Picture hashes and visual groups in the store: two derived stages over ``HOME/media``.

``visual.py`` decides, purely; this module feeds it. Stages (run by ``derived.update``):

- ``hashes``: each record's picture is its smallest mirrored image rendition
  (``~thumb`` first, see ``PREFERENCE``). A picture is (re)hashed when its file, size or
  mtime differs from what ``picture_hashes`` holds, so a replaced file is hashed again
  and a removed one is dropped; one that cannot be read keeps its row with the problem
  (tried once, not on every run) and no hash. Every change moves ``hashes_rev``.
- ``visual``: when ``hashes_rev`` moved past the mark ``visual_rev``, the matching pairs
  of all hashes (``visual.matching_pairs``, no all-pairs comparison) are joined into
  groups; rows whose group changed get a new ``rev``, so the index stage that follows
  re-reads their ``visual_group`` field. A record without a readable picture, or whose
  picture matches no other, has no visual group (a group of one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from .errors import UnreadableImage
from .grouping import VISUAL, group_id
from .media import PART, SIZES
from .store import Store
from .visual import Thresholds, components, matching_pairs, picture_hashes, to_signed, to_unsigned

PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".tif", ".tiff", ".webp")
#: Rendition markers by preference: the smallest first (the hash looks at 32x32 pixels).
PREFERENCE = tuple(f"~{size}." for size in SIZES)


@dataclass
class HashUpdate:
    hashed: int = 0
    removed: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (nasa_id, problem)


def picture_of(folder: Path) -> os.DirEntry[str] | None:
    """The file of a record's folder that stands for its picture, or None."""
    try:
        entries = [
            e
            for e in os.scandir(folder)
            if not e.name.endswith(PART)
            and e.name.lower().endswith(PICTURE_SUFFIXES)
            and e.is_file(follow_symlinks=False)
        ]
    except OSError:
        return None

    def rank(entry: os.DirEntry[str]) -> tuple[int, str]:
        name = entry.name.lower()
        found = [i for i, marker in enumerate(PREFERENCE) if marker in name]
        return (found[0] if found else len(PREFERENCE), entry.name)

    return min(entries, key=rank) if entries else None


def update_hashes(store: Store, media_root: Path) -> HashUpdate:
    """Hash the pictures that arrived or changed since the last run; drop removed ones.

    A folder whose mtime (which moves when a file is added, renamed or removed: how
    ``media.fetch`` writes) and whose hashed file's size and mtime are as stored is not
    listed again: two ``stat`` calls a record on an unchanged mirror.
    """
    result = HashUpdate()
    known = store.picture_files()
    current: dict[str, tuple[Path, str, int, int, int]] = {}
    unchanged: set[str] = set()
    try:
        folders = [e for e in os.scandir(media_root) if e.is_dir(follow_symlinks=False)]
    except OSError:
        folders = []
    for folder in folders:
        nasa_id = unquote(folder.name)
        folder_mtime = folder.stat(follow_symlinks=False).st_mtime_ns
        seen = known.get(nasa_id)
        if seen is not None and seen[3] == folder_mtime:
            try:
                stat = os.stat(f"{folder.path}/{seen[0]}", follow_symlinks=False)
            except OSError:
                pass
            else:
                if stat.st_size == seen[1] and stat.st_mtime_ns == seen[2]:
                    unchanged.add(nasa_id)
                    continue
        entry = picture_of(Path(folder.path))
        if entry is None:
            continue
        stat = entry.stat(follow_symlinks=False)
        current[nasa_id] = (
            Path(entry.path),
            entry.name,
            stat.st_size,
            stat.st_mtime_ns,
            folder_mtime,
        )
    rows: list[tuple[str, str, int, int, int, int | None, int | None, str | None]] = []
    for nasa_id, (path, name, size, mtime, folder_mtime) in sorted(current.items()):
        if known.get(nasa_id) == (name, size, mtime, folder_mtime):
            continue
        try:
            hashes = picture_hashes(path)
        except UnreadableImage as exc:
            result.unreadable.append((nasa_id, str(exc)))
            rows.append((nasa_id, name, size, mtime, folder_mtime, None, None, str(exc)))
            continue
        signed = (to_signed(hashes.phash), to_signed(hashes.dhash))
        rows.append((nasa_id, name, size, mtime, folder_mtime, *signed, None))
        result.hashed += 1
    removed = sorted(set(known) - set(current) - unchanged)
    result.removed = len(removed)
    if rows or removed:
        store.write_picture_hashes(rows, removed=removed)
    return result


def update_visual(
    store: Store, *, rebuild: bool = False, thresholds: Thresholds | None = None
) -> int:
    """Regroup the pictures if their hashes changed since the last run; returns the
    records whose visual group changed."""
    seen = int(store.get_meta("hashes_rev", "0") or 0)
    if not rebuild and int(store.get_meta("visual_rev", "0") or 0) == seen:
        return 0
    rows = store.picture_hashes()  # in nasa_id order: each group's first is its smallest
    phash = np.array([to_unsigned(r[2]) for r in rows], dtype=np.uint64)
    dhash = np.array([to_unsigned(r[3]) for r in rows], dtype=np.uint64)
    labels = components(len(rows), matching_pairs(phash, dhash, thresholds or Thresholds()))
    members: dict[int, list[int]] = {}
    for position, label in enumerate(labels.tolist()):
        members.setdefault(label, []).append(position)
    assignments: dict[int, int] = {}
    groups: list[tuple[int, int, int]] = []
    for positions in members.values():
        if len(positions) < 2:
            continue
        gid = group_id(VISUAL, rows[positions[0]][1])
        groups.append((gid, len(positions), rows[positions[0]][0]))
        assignments.update((rows[p][0], gid) for p in positions)
    return store.write_visual_groups(assignments, groups, seen)
