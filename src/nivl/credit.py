"""The credit line NASA's media usage guidelines ask for, declared once: the item page,
the IIIF manifests' ``requiredStatement`` and citations all give the same one; pure."""

from __future__ import annotations

import re

from .records import Record

#: Credit lines per NASA's media guidelines: "NASA/JPL-Caltech", a center's name, or
#: "NASA/<photographer>" when the photographer is known.
CENTER_CREDITS = {
    "JPL": "NASA/JPL-Caltech",
    "GSFC": "NASA/Goddard Space Flight Center",
    "MSFC": "NASA/Marshall Space Flight Center",
    "JSC": "NASA/Johnson Space Center",
    "KSC": "NASA/Kennedy Space Center",
    "ARC": "NASA/Ames Research Center",
    "GRC": "NASA/Glenn Research Center",
    "AFRC": "NASA/Armstrong Flight Research Center",
    "LARC": "NASA/Langley Research Center",
    "LRC": "NASA/Langley Research Center",
    "SSC": "NASA/Stennis Space Center",
    "MAF": "NASA/Michoud Assembly Facility",
}
#: Photographer values that name nobody (upstream holds "N/A", "NA", and a scanner
#: program's copyright notice, "1996-98 AccuSoft Inc., All right").
_NOBODY = re.compile(r"^(n/?a|none|unknown|not available|-+)$|all rights?\b|copyright|©", re.I)


def squeeze(value: str) -> str:
    """One line, single spaces, and no stray spaces around a credit's slashes."""
    return re.sub(r"\s*/\s*", "/", " ".join(value.split()))


def photographer(record: Record) -> str:
    """The record's photographer, or "" when the field names nobody."""
    who = squeeze(record.photographer)
    return "" if _NOBODY.search(who) else who


def credit_line(record: Record) -> str:
    """The credit NASA's media guidelines ask for: "NASA/<photographer>" when known, else
    a credit the record gives itself ("NASA/JPL/Arizona State University" as its secondary
    creator), else the center's form ("NASA/JPL-Caltech"), else "NASA"."""
    who = photographer(record)
    center = CENTER_CREDITS.get(record.center.strip().upper(), "NASA")
    if not who:
        given = squeeze(record.secondary_creator)
        return given if given.upper().startswith("NASA") else center
    if who.upper().startswith("NASA"):
        return who
    if center == "NASA/JPL-Caltech":
        return f"{center}/{who}"
    return f"NASA/{who}"
