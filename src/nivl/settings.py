"""Settings, built once at the edge and passed down.

Lookup order for every setting: command-line flag > ``NIVL_*`` environment
variable > default. The home directory defaults to the platform's user data
dir (platformdirs). Nothing here is read at import time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from .errors import ConfigError
from .query import Limits

#: (name, default, help) for each setting; ``docs/settings.md`` lists them and
#: tests/test_package.py checks that the two agree.
SETTINGS: tuple[tuple[str, Any, str], ...] = (
    ("home", None, "Directory holding nivl.db and index/ (default: the platform data dir)"),
    ("host", "127.0.0.1", "Address nivl serve binds to"),
    ("port", 8000, "Port nivl serve listens on"),
    ("default_page_size", 100, "Results per page when page_size is not given (upstream: 100)"),
    ("max_page_size", 1000, "Largest page_size accepted; larger is a 400"),
    ("max_result_window", 100_000, "Deepest result (page x page_size) a search may reach"),
    (
        "max_query_length",
        10_000,
        "Longest text accepted for any search parameter (q, description, title...): a whole "
        "pasted caption fits (the longest image or video caption seen is 5,800 characters)",
    ),
    ("upstream_url", "https://images-api.nasa.gov", "Base URL of the upstream API"),
    (
        "assets_url",
        "",
        "Base URL replacing https://images-assets.nasa.gov in the media files nivl downloads "
        "(another mirror, or a test server; default: upstream's own host)",
    ),
    ("public_url", "", "Base URL nivl's own links point at (default: from each request)"),
    ("load_sample", True, "Load the bundled sample into an empty home on nivl serve"),
    ("max_db_mb", 0, "Cap on the SQLite file's size in MB (0: no cap); beyond it writes fail"),
    ("workers", 1, "Processes nivl serve runs (one per core serves the most requests/s)"),
    ("max_record_kb", 1024, "Largest record (one JSON line or item) nivl import accepts, in kB"),
    (
        "header_timeout",
        10.0,
        "Seconds a client may take to send a request's headers before nivl serve hangs up",
    ),
    ("keep_alive_timeout", 5, "Seconds nivl serve keeps an idle connection open between requests"),
    (
        "max_connections",
        1000,
        "Open connections per nivl serve process beyond which requests get a 503 (0: no cap)",
    ),
    (
        "max_header_bytes",
        65536,
        "Most bytes of an unfinished request line and headers nivl serve holds; more is a 400",
    ),
    (
        "read_only",
        False,
        "Serve the home as is (a snapshot): never write to it nor take its write lock; a "
        "home that is a symlink is followed, and a new target is served once it opens",
    ),
)

_INT_SETTINGS = {
    "max_db_mb",
    "port",
    "default_page_size",
    "max_page_size",
    "max_result_window",
    "max_query_length",
    "workers",
    "max_record_kb",
    "keep_alive_timeout",
    "max_connections",
    "max_header_bytes",
}
_FLOAT_SETTINGS = {"header_timeout"}
_BOOL_SETTINGS = {"load_sample", "read_only"}


@dataclass(frozen=True)
class Settings:
    home: Path
    host: str = "127.0.0.1"
    port: int = 8000
    default_page_size: int = 100
    max_page_size: int = 1000
    max_result_window: int = 100_000
    max_query_length: int = 10_000
    upstream_url: str = "https://images-api.nasa.gov"
    assets_url: str = ""
    public_url: str = ""
    load_sample: bool = True
    max_db_mb: int = 0
    workers: int = 1
    max_record_kb: int = 1024
    header_timeout: float = 10.0
    keep_alive_timeout: int = 5
    max_connections: int = 1000
    max_header_bytes: int = 65536
    read_only: bool = False

    @property
    def limits(self) -> Limits:
        return Limits(
            default_page_size=self.default_page_size,
            max_page_size=self.max_page_size,
            max_result_window=self.max_result_window,
            max_query_length=self.max_query_length,
        )

    @property
    def db_path(self) -> Path:
        return self.home / "nivl.db"

    @property
    def index_path(self) -> Path:
        return self.home / "index"

    @property
    def media_path(self) -> Path:
        return self.home / "media"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """Flags that are not None win over ``NIVL_<NAME>`` variables, which win over defaults."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, _default, _help in SETTINGS:
            if flags.get(name) is not None:
                values[name] = flags[name]
            elif (raw := environ.get(f"NIVL_{name.upper()}")) not in (None, ""):
                values[name] = _convert(name, raw)
        unknown = set(flags) - {name for name, _, _ in SETTINGS}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        home = values.pop("home", None)
        home_path = Path(home) if home else Path(platformdirs.user_data_dir("nivl"))
        # One absolute spelling per home: "data" and "/abs/data" are the same directory.
        # A read-only home keeps its symlinks: a replica follows ``current -> snap-2``.
        if values.get("read_only"):
            return cls(home=Path(os.path.abspath(home_path.expanduser())), **values)
        return cls(home=home_path.expanduser().resolve(), **values)

    def as_env(self) -> dict[str, str]:
        """``NIVL_*`` variables that make ``from_env`` give these settings back."""
        return {
            f"NIVL_{name.upper()}": str(getattr(self, name)).lower()
            if name in _BOOL_SETTINGS
            else str(getattr(self, name))
            for name, _default, _help in SETTINGS
        }

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _convert(name: str, raw: str) -> Any:
    if name in _INT_SETTINGS:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"NIVL_{name.upper()} must be an integer, got {raw!r}") from None
        if name == "max_record_kb" and value < 1:
            raise ConfigError(f"NIVL_{name.upper()} must be at least 1, got {raw!r}")
        return value
    if name in _FLOAT_SETTINGS:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"NIVL_{name.upper()} must be a number, got {raw!r}") from None
    if name in _BOOL_SETTINGS:
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"NIVL_{name.upper()} must be true or false, got {raw!r}")
    return raw
