"""One exception tree for everything nivl raises on purpose.

    NivlError
    ├── ConfigError            bad settings or home directory
    ├── StoreError             SQLite failed (wraps sqlite3.Error)
    │   └── HomeBusy           another nivl process is writing to the home
    ├── SearchIndexError       tantivy failed (wraps its ValueError/OSError, and panics)
    ├── RecordRejected         an input item that cannot become a Record
    ├── UnreadableImage        a mirrored file that is not a picture nivl can hash
    ├── BadRequest             400: a request nivl cannot answer as asked
    │   ├── MissingParameters  no search parameter at all (upstream's 400)
    │   ├── InvalidParameter   one named parameter has a bad value
    │   └── SemanticUnavailable  semantic/hybrid asked for without the [semantic] extra
    ├── RecordNotFound         404: no such nasa_id (or group, album)
    └── UpstreamError          talking to images-api.nasa.gov failed
        ├── UpstreamHTTPError  it answered with an error status
        │   └── PageRefused    (upstream.py) a 4xx for page N > 1: the result window ends
        └── ShortResults       (upstream.py) pages ran out before total_hits

Web-facing errors carry their HTTP status as ``status`` so the one exception
handler in ``web/app.py`` needs no table of its own; the CLI maps ``BadRequest``
to exit status 2 (a usage error) and every other ``NivlError`` to 1.
"""

from __future__ import annotations


class NivlError(Exception):
    """Root of every error nivl raises on purpose."""

    status: int = 500

    @property
    def reason(self) -> str:
        return str(self)


class ConfigError(NivlError):
    pass


class StoreError(NivlError):
    pass


class HomeBusy(StoreError):
    """Another process holds the home's write lock: nothing was written."""

    status = 503


class SearchIndexError(NivlError):
    """``damaged``: the index's files are at fault (rebuild it), not the query."""

    def __init__(self, message: str, *, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


class RecordRejected(NivlError):
    """An item that cannot be stored; the message says why."""

    status = 400


class UnreadableImage(NivlError):
    """A media file that cannot be decoded as a picture (truncated, not one, too large)."""


class BadRequest(NivlError):
    status = 400


class MissingParameters(BadRequest):
    pass


class InvalidParameter(BadRequest):
    """A named parameter has a value nivl cannot use."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"Invalid value for '{parameter}': {message}")
        self.parameter = parameter
        self.detail = message


class SemanticUnavailable(BadRequest):
    """Semantic or hybrid search was asked for, but nivl's ``[semantic]`` extra is missing."""


class RecordNotFound(NivlError):
    status = 404


class UpstreamError(NivlError):
    status = 502


class UpstreamHTTPError(UpstreamError):
    def __init__(self, status_code: int, url: str, message: str = "") -> None:
        detail = f": {message}" if message else ""
        super().__init__(f"upstream answered {status_code} for {url}{detail}")
        self.status_code = status_code
        self.url = url


class UpstreamUnavailable(UpstreamError):
    """Upstream could not be reached for something this mirror does not hold (a 503)."""

    status = 503
