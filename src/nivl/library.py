"""``Library``: one home directory's store and index, opened together.

The CLI and the web app each build one from ``Settings`` and call its
methods; it keeps the derived index in step with the store on open.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable, Iterable
from pathlib import Path

from .groups import DupesReport, GroupPage, GroupUpdate, dupes, group_page, update_groups
from .ingest import ImportSummary, import_paths
from .query import Limits, SearchRequest
from .search import SearchResult, search
from .search_index import SearchIndex
from .settings import Settings
from .store import Store


class Library:
    def __init__(self, settings: Settings, *, sync: bool = True) -> None:
        self.settings = settings
        self.store = Store(settings.db_path, max_mb=settings.max_db_mb)
        self.index = SearchIndex(settings.index_path)
        if sync:
            update_groups(self.store)
            self.index.sync(self.store)
        self.revision = self.index.indexed_rev(self.store)

    def refresh(self) -> int:
        """See what another process (an import, a harvest) committed; returns the revision.

        Writers move the index's mark only after its commit, so reloading when the mark
        moves always shows the new documents; answers can be cached per revision.
        """
        revision = self.index.indexed_rev(self.store)
        if revision != self.revision:
            self.index.reload()
            self.revision = revision
        return revision

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(
            default_page_size=s.default_page_size,
            max_page_size=s.max_page_size,
            max_result_window=s.max_result_window,
            max_query_length=s.max_query_length,
        )

    def search(self, request: SearchRequest) -> SearchResult:
        return search(self.store, self.index, request)

    def import_paths(
        self, paths: Iterable[Path], *, on_bytes: Callable[[int], object] | None = None
    ) -> ImportSummary:
        return import_paths(self.store, self.index, paths, on_bytes=on_bytes)

    def group(self, *, rebuild: bool = False) -> GroupUpdate:
        """Regroup what changed (everything with ``rebuild``), then refresh the index."""
        update = update_groups(self.store, rebuild=rebuild)
        self.index.sync(self.store)
        return update

    def group_page(self, group_id: int, *, page: int = 1, page_size: int = 100) -> GroupPage:
        return group_page(self.store, group_id, page=page, page_size=page_size)

    def dupes(self, *, level: str | None = None, min_size: int = 2, limit: int = 20) -> DupesReport:
        return dupes(self.store, level=level, min_size=min_size, limit=limit)

    def is_empty(self) -> bool:
        return self.store.count() == 0

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sample_paths() -> list[Path]:
    """The bundled sample's files (built by scripts/build_sample.py)."""
    folder = importlib.resources.files("nivl") / "sample"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".jsonl.gz"))
