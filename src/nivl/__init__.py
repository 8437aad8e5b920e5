"""nivl: a self-hostable mirror and search engine for NASA's Image and Video Library."""

from .errors import NivlError
from .harvest import harvest
from .library import Library
from .query import SearchRequest, parse_request
from .search import SearchResult, search
from .search_index import SearchIndex
from .settings import Settings
from .store import Store

__version__ = "0.1.0"

__all__ = [
    "Library",
    "NivlError",
    "SearchIndex",
    "SearchRequest",
    "SearchResult",
    "Settings",
    "Store",
    "__version__",
    "harvest",
    "parse_request",
    "search",
]
