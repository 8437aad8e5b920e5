"""Upstream search parameters → a validated ``SearchRequest`` → a ``QueryPlan``; pure.

User text is treated as text, never as query syntax: it is reduced to words
(and quoted phrases), so quotes, ``AND``, ``*``, ``:`` or unbalanced brackets
can never make a search fail. ``search_index.py`` compiles the plan for tantivy.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import InvalidParameter, MissingParameters
from .records import MEDIA_TYPES

#: The 15 parameters upstream's /search accepts, in its documentation's order.
UPSTREAM_PARAMETERS = (
    "q",
    "center",
    "description",
    "description_508",
    "keywords",
    "location",
    "media_type",
    "nasa_id",
    "page",
    "page_size",
    "photographer",
    "secondary_creator",
    "title",
    "year_start",
    "year_end",
)
#: ``added_desc``: newest in this mirror first (the order records were first stored in).
SORTS = ("relevance", "date_desc", "date_asc", "added_desc")
COLLAPSES = ("none", "caption", "event", "visual")
FACETS = ("center", "media_type", "year", "keywords", "photographer")
#: Ranking modes; lexical (BM25) first: the upstream-compatible default.
MODES = ("lexical", "semantic", "hybrid")

#: How ``q`` matches (``matching.py``): "auto" relaxes when all words find too little;
#: "all" requires every word as typed.
MATCHES = ("auto", "all")
#: Text fields ``q`` searches, with their weights: title and keywords weigh most; the
#: description's first part (``description_head``) counts fully, the rest (whole transcripts
#: up to 90 kB) little (measured: bench/semantic_quality.py).
Q_FIELDS: dict[str, float] = {
    "title": 3.0,
    "keywords": 2.5,
    "description_head": 1.0,
    "description": 0.2,
    "description_508": 0.1,
    "location": 1.0,
    "photographer": 1.0,
    "secondary_creator": 1.0,
    "album_text": 1.0,
    "ids": 2.0,
}
#: Parameters that search one text field of the same name.
FIELD_PARAMETERS = (
    "description",
    "description_508",
    "location",
    "photographer",
    "secondary_creator",
    "title",
)
MAX_TERMS = 32
#: Group ids are 63-bit (``grouping.group_id``); anything larger names no group.
MAX_GROUP_ID = 2**63 - 1
_WORD_OR_PHRASE = re.compile(r'"([^"]*)"|(\w+)')
_WORD = re.compile(r"\w+")
_INTEGER = re.compile(r"\d{1,9}")


@dataclass(frozen=True)
class Limits:
    """What the caller's settings allow; defaults match ``Settings``."""

    default_page_size: int = 100
    max_page_size: int = 1000
    max_result_window: int = 100_000
    max_query_length: int = 10_000


@dataclass(frozen=True)
class SearchRequest:
    q: str = ""
    center: str = ""
    description: str = ""
    description_508: str = ""
    keywords: tuple[str, ...] = ()
    location: str = ""
    media_type: tuple[str, ...] = ()
    nasa_id: str = ""
    page: int = 1
    page_size: int = 100
    photographer: str = ""
    secondary_creator: str = ""
    title: str = ""
    year_start: int | None = None
    year_end: int | None = None
    # nivl's extensions and internal filters
    album: str = ""
    sort: str = "relevance"
    collapse: str = "none"
    facets: tuple[str, ...] = ()
    highlight: bool = False
    group_level: str = ""
    group_id: int | None = None
    mode: str = "lexical"
    match: str = "auto"

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    def params(self) -> dict[str, str]:
        """The request as query parameters (for next/prev links); defaults left out."""
        defaults = SearchRequest()
        out: dict[str, str] = {}
        for name in (
            *UPSTREAM_PARAMETERS,
            "sort",
            "collapse",
            "facets",
            "highlight",
            "mode",
            "match",
        ):
            value = getattr(self, name)
            if value == getattr(defaults, name) and name not in ("page",):
                continue
            if isinstance(value, tuple):
                out[name] = ",".join(value)
            elif isinstance(value, bool):
                out[name] = "true" if value else "false"
            else:
                out[name] = str(value)
        return out


@dataclass(frozen=True)
class TextClause:
    """Words and phrases that must all match in at least one of ``fields``."""

    fields: tuple[str, ...]
    terms: tuple[str, ...]  # each a word or a "quoted phrase", ready for the parser
    boosts: tuple[tuple[str, float], ...] = ()
    q: bool = False  # the q clause: compiled by matching.py (suggestions, relaxing)
    relax: bool = False  # all words when that finds enough, else fewer (match=auto)
    strong_only: bool = False  # date sort: match in title, keywords, description head


@dataclass(frozen=True)
class QueryPlan:
    text: tuple[TextClause, ...] = ()
    media_types: tuple[str, ...] = ()
    centers: tuple[str, ...] = ()
    nasa_id: str = ""
    album: str = ""
    year_start: int | None = None
    year_end: int | None = None
    group: tuple[str, int] | None = None
    matches_nothing: bool = False  # text was given but held no searchable word
    terms_for_highlight: tuple[str, ...] = field(default=())


def parse_request(
    params: Mapping[str, str],
    limits: Limits = Limits(),
    *,
    require_one: bool = True,
    **defaults: str,
) -> SearchRequest:
    """Validate upstream-style parameters; every error names its parameter."""
    values = {**defaults, **{k: v for k, v in params.items() if v is not None}}
    for name, value in values.items():
        if len(value) > limits.max_query_length:
            raise InvalidParameter(
                name, f"longer than {limits.max_query_length} characters ({len(value)})"
            )
        if "\x00" in value:
            raise InvalidParameter(name, "contains a NUL character")
    searchable = [
        name
        for name in UPSTREAM_PARAMETERS
        if name not in ("page", "page_size") and values.get(name, "").strip()
    ]
    if require_one and not searchable and not values.get("album", "").strip():
        raise MissingParameters(
            "Expected at least one search parameter: "
            + ", ".join(name for name in UPSTREAM_PARAMETERS if name not in ("page", "page_size"))
        )
    year_start = _year(values, "year_start")
    year_end = _year(values, "year_end")
    if year_start is not None and year_end is not None and year_start > year_end:
        raise InvalidParameter("year_start", f"{year_start} is after year_end {year_end}")
    page = _positive_int(values, "page", 1)
    page_size = _positive_int(values, "page_size", limits.default_page_size)
    if page_size > limits.max_page_size:
        raise InvalidParameter("page_size", f"must be at most {limits.max_page_size}")
    if page * page_size > limits.max_result_window:
        raise InvalidParameter(
            "page", f"page x page_size must stay within {limits.max_result_window} results"
        )
    media_types = _comma_list(values.get("media_type", ""))
    for media_type in media_types:
        if media_type not in MEDIA_TYPES:
            raise InvalidParameter(
                "media_type", f"{media_type!r} is not one of {', '.join(MEDIA_TYPES)}"
            )
    return SearchRequest(
        q=values.get("q", "").strip(),
        center=values.get("center", "").strip(),
        keywords=_comma_list(values.get("keywords", "")),
        media_type=tuple(dict.fromkeys(media_types)),
        nasa_id=values.get("nasa_id", ""),
        page=page,
        page_size=page_size,
        year_start=year_start,
        year_end=year_end,
        # As records' albums are stored; a blank name stays as given, so it matches nothing.
        album=values.get("album", "").strip() or values.get("album", ""),
        sort=_choice(values, "sort", SORTS),
        collapse=_choice(values, "collapse", COLLAPSES),
        facets=_facets(values.get("facets", "")),
        highlight=_boolean(values, "highlight"),
        mode=_choice(values, "mode", MODES),
        match=_choice(values, "match", MATCHES),
        description=values.get("description", "").strip(),
        description_508=values.get("description_508", "").strip(),
        location=values.get("location", "").strip(),
        photographer=values.get("photographer", "").strip(),
        secondary_creator=values.get("secondary_creator", "").strip(),
        title=values.get("title", "").strip(),
    )


def plan_query(request: SearchRequest) -> QueryPlan:
    """Turn a request into text clauses and exact filters."""
    clauses: list[TextClause] = []
    nothing = False
    highlight_terms: list[str] = []
    if request.q and not _empty_phrase(request.q):
        terms = text_terms(request.q)
        nothing |= not terms
        clauses.append(
            TextClause(
                tuple(Q_FIELDS),
                terms,
                tuple(Q_FIELDS.items()),
                q=True,
                relax=request.match == "auto",
                strong_only=request.sort != "relevance",
            )
        )
        highlight_terms.extend(terms)
    for name in FIELD_PARAMETERS:
        value = getattr(request, name)
        if value and not _empty_phrase(value):
            terms = text_terms(value)
            nothing |= not terms
            clauses.append(TextClause((name,), terms))
            highlight_terms.extend(terms)
    for keyword in request.keywords:
        if _empty_phrase(keyword):
            continue
        terms = text_terms(keyword)
        nothing |= not terms
        phrase = " ".join(t.strip('"') for t in terms)
        clauses.append(TextClause(("keywords",), (f'"{phrase}"',) if phrase else ()))
    centers = tuple(c.upper() for c in _comma_list(request.center))
    return QueryPlan(
        text=tuple(clauses),
        media_types=request.media_type,
        centers=centers,
        nasa_id=request.nasa_id,
        album=request.album,
        year_start=request.year_start,
        year_end=request.year_end,
        group=(request.group_level, request.group_id)
        if request.group_level and request.group_id is not None
        else None,
        matches_nothing=nothing,
        terms_for_highlight=tuple(highlight_terms),
    )


def text_terms(text: str) -> tuple[str, ...]:
    """Words and quoted phrases of user text, lowercased and safe for the query parser."""
    terms: list[str] = []
    text = unicodedata.normalize("NFKC", text)  # a decomposed accent is not a word break
    for match in _WORD_OR_PHRASE.finditer(text):
        phrase, word = match.groups()
        if word is not None:
            terms.append(word.lower())
        else:
            words = _WORD.findall(phrase or "")
            if len(words) == 1:
                terms.append(words[0].lower())
            elif words:
                terms.append('"' + " ".join(w.lower() for w in words) + '"')
        if len(terms) >= MAX_TERMS:
            break
    return tuple(terms)


def group_id_of(value: str) -> int | None:
    """A group id as a URL carries it (ASCII digits, at most ``MAX_GROUP_ID``), else None."""
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    number = int(value)
    return number if number <= MAX_GROUP_ID else None


def _empty_phrase(text: str) -> bool:
    """``""`` (or ``"" ""``): a phrase of no words, which constrains nothing (it used to
    match nothing; a client sending ``q=""`` expects every record)."""
    return '"' in text and not text.replace('"', "").strip()


def _comma_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _year(values: Mapping[str, str], name: str) -> int | None:
    value = values.get(name, "").strip()
    if not value:
        return None
    if not re.fullmatch(r"\d{4}", value):
        raise InvalidParameter(name, f"{value!r} is not a year (YYYY)")
    return int(value)


def _positive_int(values: Mapping[str, str], name: str, default: int) -> int:
    value = values.get(name, "").strip()
    if not value:
        return default
    if not _INTEGER.fullmatch(value) or int(value) < 1:
        raise InvalidParameter(name, f"{value!r} is not a positive whole number")
    return int(value)


def _choice(values: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = values.get(name, "").strip() or choices[0]
    if value not in choices:
        raise InvalidParameter(name, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _facets(value: str) -> tuple[str, ...]:
    names = _comma_list(value)
    for name in names:
        if name not in FACETS:
            raise InvalidParameter("facets", f"{name!r} is not one of {', '.join(FACETS)}")
    return tuple(dict.fromkeys(names))


def _boolean(values: Mapping[str, str], name: str) -> bool:
    value = values.get(name, "").strip().lower()
    if value in ("", "false", "0", "no"):
        return False
    if value in ("true", "1", "yes"):
        return True
    raise InvalidParameter(name, f"{value!r} is not true or false")
