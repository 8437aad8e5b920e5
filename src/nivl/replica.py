"""A read-only replica's library: the snapshot its home points at, swapped when that moves.

``nivl serve --read-only --home /srv/nivl/current`` serves whatever ``current`` points at
(``current -> snap-2``). A thread looks at the link twice a second; when it points at
another folder, that snapshot is opened beside the one being served (its index files
checked, a search run), and only then published: requests already running finish on the
old library, the next ones read the new one, so a roll-out fails no request. A target
that cannot be opened is logged and the old snapshot goes on serving; it is tried again
a few seconds later (it may still have been arriving). Watching the link rather than
waiting for SIGHUP means every worker of ``--workers N`` sees the change by itself.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .errors import NivlError
from .library import Library
from .settings import Settings

log = logging.getLogger("nivl.replica")

#: Seconds between looks at the link, before retrying a target that failed to open, and
#: before the replaced library is closed (requests that began on it finish first).
INTERVAL = 0.5
RETRY = 5.0
GRACE = 30.0


class Follower:
    """Keeps ``library`` on the snapshot ``settings.home`` resolves to, telling ``publish``."""

    def __init__(self, settings: Settings, *, publish: Callable[[Library], object]) -> None:
        self.settings = settings
        self.publish = publish
        self.target = _resolve(settings.home)
        self.library = self._open(self.target)
        self._failed: tuple[Path, float] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        publish(self.library)

    def _open(self, target: Path) -> Library:
        return Library(self.settings.replace(home=target))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="nivl-follow", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(INTERVAL):
            try:
                self.check()
            except Exception:  # never let the watcher die: the old snapshot keeps serving
                log.exception("checking %s failed", self.settings.home)

    def check(self) -> bool:
        """Swap to the link's new target if it has one and it opens; True if it swapped."""
        target = _resolve(self.settings.home)
        if target == self.target:
            return False
        if self._failed and self._failed[0] == target and time.monotonic() < self._failed[1]:
            return False
        try:
            fresh = self._open(target)
            status = fresh.status()
            if not status["ok"]:
                fresh.close()
                raise NivlError(status.get("problem") or "it cannot answer searches")
        except NivlError as exc:
            self._failed = (target, time.monotonic() + RETRY)
            log.warning("not serving %s yet: %s; still serving %s", target, exc, self.target)
            return False
        old, self.library, self.target = self.library, fresh, target
        self.publish(fresh)
        log.warning("now serving %s (revision %d)", target, fresh.revision)
        closer = threading.Timer(GRACE, old.close)
        closer.daemon = True
        closer.start()
        return True

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.library.close()


def _resolve(path: Path) -> Path:
    return Path(os.path.realpath(path))
