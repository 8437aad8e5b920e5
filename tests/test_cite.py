"""Citations (issue 18 req 4): APA, MLA and Chicago strings of three real records against
expectations written by hand from the styles' rules, BibTeX and RIS read back by
independent parsers, and the credit line on upstream's junk photographer values.

The expected strings were written from the record and each style's pattern, then run:
where the CSL style differs from the handbook, the comment says so and the CSL style wins
(the requirement is the standard styles, not our reading of the handbooks).
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

import pytest

from nivl.cite import STYLES, bibtex, cite, csl_item, ris
from nivl.credit import credit_line
from nivl.errors import InvalidParameter
from nivl.records import Record, parse_item

ACCESSED = date(2026, 12, 1)
JPL_IMAGE = "PIA13083"  # JPL; secondary_creator NASA/JPL-Caltech/UCLA; 2010-04-30
JSC_PHOTO = "iss042e283219"  # JSC; photographer Terry Virts; 2015-02-21
#: A JPL video (no creator, 2017-06-05) whose nasa_id is its title, spaces and all.
JPL_VIDEO = VIDEO_TITLE = "JPL-20170515-NEOWISf-0001-Three Years of NEOWISE Survey Data"
VIDEO_URL = (
    "https://images.nasa.gov/details/"
    "JPL-20170515-NEOWISf-0001-Three%20Years%20of%20NEOWISE%20Survey%20Data"
)


@pytest.fixture(scope="module")
def real(shared_items: list[dict[str, Any]]) -> dict[str, Record]:
    wanted = {JPL_IMAGE, JSC_PHOTO, JPL_VIDEO}
    found = {
        item["data"][0]["nasa_id"]: parse_item(item)
        for item in shared_items
        if item["data"][0]["nasa_id"] in wanted
    }
    assert set(found) == wanted
    return found


def url(nasa_id: str) -> str:
    return VIDEO_URL if nasa_id == JPL_VIDEO else "https://images.nasa.gov/details/" + nasa_id


# APA 7: Author. (Date). *Title* [Description]. Publisher. Archive (location). URL
# A photograph is dated by its year alone, a video by its full date; no period after a URL.
# APA keeps the title's own capitals (CSL cannot sentence-case).
APA = {
    JPL_IMAGE: "NASA/JPL-Caltech/UCLA. (2010). Thor Helmet [Photograph]. NASA. "
    f"NASA Image and Video Library (PIA13083). {url(JPL_IMAGE)}",
    JSC_PHOTO: "Virts, T. (2015). Virts Self-Portrait during EVA 29 [Photograph]. NASA. "
    f"NASA Image and Video Library (iss042e283219). {url(JSC_PHOTO)}",
    JPL_VIDEO: f"NASA/JPL-Caltech. (2017, June 5). {VIDEO_TITLE} [Video]. NASA. "
    f"NASA Image and Video Library ({JPL_VIDEO}). {url(JPL_VIDEO)}",
}
# MLA 9: Author. *Title*. Description. Publisher, Day Mon. Year, Archive, location, URL.
# Given names in full; titles in title case (CSL's: "during" is not among its lower-case
# words, so "During"). The handbook dates a web video by its day too; the MLA CSL style
# treats a motion picture as a film and gives the year.
MLA = {
    JPL_IMAGE: "NASA/JPL-Caltech/UCLA. Thor Helmet. Photograph. NASA, 30 Apr. 2010, "
    f"NASA Image and Video Library, PIA13083, {url(JPL_IMAGE)}.",
    JSC_PHOTO: "Virts, Terry. Virts Self-Portrait During EVA 29. Photograph. NASA, "
    f"21 Feb. 2015, NASA Image and Video Library, iss042e283219, {url(JSC_PHOTO)}.",
    JPL_VIDEO: f"NASA/JPL-Caltech. {VIDEO_TITLE}. Video. NASA, 2017, "
    f"NASA Image and Video Library, {JPL_VIDEO}, {url(JPL_VIDEO)}.",
}
# Chicago 18 author-date: Author. Year. *Title*. Description. Publisher, Month Day.
# Archive, location. URL. For a motion picture the style puts the location (the nasa_id)
# before the archive and leaves the month and day out.
CHICAGO = {
    JPL_IMAGE: "NASA/JPL-Caltech/UCLA. 2010. Thor Helmet. Photograph. NASA, April 30. "
    f"NASA Image and Video Library, PIA13083. {url(JPL_IMAGE)}.",
    JSC_PHOTO: "Virts, Terry. 2015. Virts Self-Portrait During EVA 29. Photograph. NASA, "
    f"February 21. NASA Image and Video Library, iss042e283219. {url(JSC_PHOTO)}.",
    JPL_VIDEO: f"NASA/JPL-Caltech. 2017. {VIDEO_TITLE}. Video. NASA. {JPL_VIDEO}. "
    f"NASA Image and Video Library. {url(JPL_VIDEO)}.",
}


@pytest.mark.parametrize("nasa_id", [JPL_IMAGE, JSC_PHOTO, JPL_VIDEO])
@pytest.mark.parametrize(("style", "expected"), [("apa", APA), ("mla", MLA), ("chicago", CHICAGO)])
def test_styles_of_real_records_match_hand_written_citations(
    real: dict[str, Record], nasa_id: str, style: str, expected: dict[str, str]
) -> None:
    assert cite(real[nasa_id], style, ACCESSED) == expected[nasa_id]


def test_html_form_italicises_the_title_and_escapes_the_record() -> None:
    record = _record(title='<script>alert(1)</script> & "q"', nasa_id="a<b>")
    shown = cite(record, "apa", ACCESSED, html=True)
    assert "<script>" not in shown and "<b>" not in shown
    assert "<i>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;</i>" in shown
    assert "(a&lt;b&gt;)" in shown
    assert "<i>" not in cite(record, "apa", ACCESSED)  # text stays text


def test_csl_item_names_the_archive_and_the_upstream_page(real: dict[str, Record]) -> None:
    item = csl_item(real[JSC_PHOTO], ACCESSED)
    assert item["type"] == "graphic"
    assert item["author"] == [{"family": "Virts", "given": "Terry"}]
    assert item["archive"] == "NASA Image and Video Library"
    assert item["archive_location"] == JSC_PHOTO
    assert item["URL"] == "https://images.nasa.gov/details/iss042e283219"
    assert item["accessed"] == {"date-parts": [[2026, 12, 1]]}
    assert item["issued"] == {"date-parts": [[2015, 2, 21]]}
    assert csl_item(real[JPL_VIDEO], ACCESSED)["type"] == "motion_picture"
    assert csl_item(_record(media_type="audio"), ACCESSED)["type"] == "song"


def _record(**fields: str) -> Record:
    data = {"nasa_id": "x", "media_type": "image", "title": "T", **fields}
    item = {"data": [data]}
    return parse_item(item, raw=json.dumps(item))


@pytest.mark.parametrize(
    ("fields", "credit"),
    [
        # upstream's placeholders and a scanner's copyright notice name nobody
        ({"center": "JSC", "photographer": "N/A"}, "NASA/Johnson Space Center"),
        ({"center": "JSC", "photographer": "NA"}, "NASA/Johnson Space Center"),
        (
            {"center": "JSC", "photographer": "1996-98 AccuSoft Inc., All right"},
            "NASA/Johnson Space Center",
        ),
        ({"center": "KSC", "photographer": "NASA/ Michelle Stone"}, "NASA/Michelle Stone"),
        ({"center": "JSC", "photographer": " Terry  Virts "}, "NASA/Terry Virts"),
        ({"center": "JPL", "secondary_creator": "NASA/JPL-Caltech/UCLA"}, "NASA/JPL-Caltech/UCLA"),
    ],
)
def test_credit_line_ignores_junk_photographers(fields: dict[str, str], credit: str) -> None:
    assert credit_line(_record(**fields)) == credit


def test_an_organisation_is_cited_as_an_institution_not_split_into_names() -> None:
    for who in ("United Launch Alliance", "NASA Glenn Research Center", "Tony Gray and Sandra"):
        item = csl_item(_record(center="GRC", photographer=who), ACCESSED)
        assert "literal" in item["author"][0], who
    item = csl_item(_record(center="HQ", photographer="NASA/Paul E. Alers"), ACCESSED)
    assert item["author"] == [{"family": "Alers", "given": "Paul E."}]


def test_unknown_style_names_the_parameter() -> None:
    with pytest.raises(InvalidParameter) as caught:
        cite(_record(), "harvard", ACCESSED)
    assert caught.value.status == 400
    assert "style" in caught.value.reason and "apa" in caught.value.reason


HOSTILE = {
    "nasa_id": "odd id {x} 50%",
    # "$" and "^" would open LaTeX's math mode or fail outside it
    "title": 'Braces } { and "quotes", 50% & #1 _under_ \\back ~ é, $2 billion, x^2',
    "photographer": "Ana {Brace}",
    "keywords": ["one\nline", "two"],
    "date_created": "1969-07-20T00:00:00Z",
}


def test_bibtex_reads_back_with_bibtexparser(real: dict[str, Record]) -> None:
    bibtexparser = pytest.importorskip("bibtexparser")
    from bibtexparser.middlewares import LatexDecodingMiddleware
    from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

    # LaTeX2e's \textbraceleft and \textbraceright (what a record's braces become) are
    # missing from pylatexenc's table of text symbols: taught here, as LaTeX prints them.
    context = get_default_latex_context_db()
    context.add_context_category(
        "text-braces",
        macros=[
            MacroTextSpec("textbraceleft", "{"),
            MacroTextSpec("textbraceright", "}"),
            MacroTextSpec("textasciicircum", "^"),  # pylatexenc's is U+02C6, not LaTeX's ^
        ],
        prepend=True,
    )
    decoder = LatexDecodingMiddleware(decoder=LatexNodes2Text(latex_context=context))

    records = [real[JPL_IMAGE], real[JSC_PHOTO], real[JPL_VIDEO], _record(**HOSTILE)]
    records.append(_record(**{**HOSTILE, "nasa_id": "odd id {x} 50%!"}))  # the same key
    text = bibtex(records, ACCESSED)
    library = bibtexparser.parse_string(text, append_middleware=[decoder])
    assert not library.failed_blocks
    entries = {entry.key: entry for entry in library.entries}
    assert list(entries) == [
        "PIA13083",
        "iss042e283219",
        "JPL-20170515-NEOWISf-0001-Three_Years_of_NEOWISE_Survey_Data",
        "odd_id_x_50",
        "odd_id_x_50_2",
    ]
    thor = entries["PIA13083"].fields_dict
    assert thor["title"].value == "Thor Helmet"
    assert thor["author"].value == "NASA/JPL-Caltech/UCLA"  # braced: not "UCLA, NASA/JPL"
    assert thor["url"].value == "https://images.nasa.gov/details/PIA13083"
    assert thor["urldate"].value == "2026-12-01"
    assert thor["year"].value == "2010"
    assert entries["iss042e283219"].fields_dict["author"].value == "Virts, Terry"
    odd = entries["odd_id_x_50"].fields_dict
    assert odd["title"].value == HOSTILE["title"]
    assert odd["author"].value == "NASA/Ana {Brace}"  # not split into names
    assert "\\back" not in text  # escaped: a record never runs a LaTeX command
    # A url is verbatim for biblatex ("%" is no comment there), so it is written as it is;
    # the LaTeX decoder above would read its "%" as a comment: read it undecoded.
    raw = {e.key: e for e in bibtexparser.parse_string(text).entries}
    assert raw["odd_id_x_50"].fields_dict["url"].value == (
        "https://images.nasa.gov/details/odd%20id%20%7Bx%7D%2050%25"
    )


def test_ris_reads_back_with_rispy(real: dict[str, Record]) -> None:
    rispy = pytest.importorskip("rispy")
    text = ris([real[JSC_PHOTO], real[JPL_VIDEO], _record(**HOSTILE)], ACCESSED)
    assert text.startswith("TY  - ART\n")  # no rispy "1." counter line
    entries = rispy.loads(text)
    assert [e["type_of_reference"] for e in entries] == ["ART", "VIDEO", "ART"]
    photo = entries[0]
    assert photo["title"] == "Virts Self-Portrait during EVA 29"
    assert photo["authors"] == ["Virts, Terry"]
    assert photo["urls"] == ["https://images.nasa.gov/details/iss042e283219"]
    assert photo["accession_number"] == JSC_PHOTO
    assert photo["name_of_database"] == "NASA Image and Video Library"
    assert photo["access_date"] == "2026/12/01"
    assert photo["date"] == "2015/02/21"
    assert entries[1]["authors"] == ["NASA/JPL-Caltech"]
    odd = entries[2]
    assert odd["title"] == HOSTILE["title"]
    assert odd["keywords"] == ["one line", "two"]  # a newline would end the tag's line


@pytest.mark.parametrize("style", STYLES)
def test_every_style_gives_one_citation_for_a_bare_record(style: str) -> None:
    bare = _record(title="", nasa_id="bare")  # no date, no title, no creator
    text = cite(bare, style, ACCESSED)
    assert "bare" in text


def test_a_title_ending_in_a_question_mark_takes_no_added_stop(
    shared_items: list[dict[str, Any]],
) -> None:
    # MLA and Chicago close the title with a period unless it ends in its own punctuation:
    # "Can You Hear Me Now? Photograph." (citeproc's text formatter wrote "Now?.").
    (item,) = [i for i in shared_items if i["data"][0]["nasa_id"] == "AFRC2018-0099-04"]
    record = parse_item(item)
    assert cite(record, "mla", ACCESSED) == (
        "Ulbrich, Ken. Can You Hear Me Now? Photograph. NASA, 15 May 2018, "
        "NASA Image and Video Library, AFRC2018-0099-04, "
        "https://images.nasa.gov/details/AFRC2018-0099-04."
    )
    assert "<i>Can You Hear Me Now?</i> Photograph." in cite(record, "mla", ACCESSED, html=True)
    ended = _record(title="The First Step on the Moon.", media_type="video")
    assert "<i>The First Step on the Moon.</i> Video." in cite(ended, "mla", ACCESSED, html=True)


@pytest.mark.parametrize("style", ["apa", "mla", "chicago"])
def test_a_lower_case_nasa_id_keeps_its_case_in_every_style(
    shared_items: list[dict[str, Any]], style: str
) -> None:
    # Chicago opens a sentence with an audio or video record's archive location, the
    # nasa_id, and capitalised it: "Ep120_artemis_spacesuits", an id images.nasa.gov
    # does not know (its ids are case-sensitive).
    (item,) = [i for i in shared_items if i["data"][0]["nasa_id"] == "ep120_artemis_spacesuits"]
    record = parse_item(item)
    assert record.media_type == "audio"
    for shown in (cite(record, style, ACCESSED), cite(record, style, ACCESSED, html=True)):
        assert "Ep120_artemis" not in shown, shown
        assert shown.count("ep120_artemis_spacesuits") == 2, shown  # the id, and in the URL


@pytest.mark.parametrize("style", STYLES)
def test_a_citation_holds_no_control_character(style: str) -> None:
    # An escape sequence in a record reached the terminal that ran
    # `nivl export --format bibtex` (it retitles, recolours, or worse).
    record = _record(
        title="Evil \x1b]0;PWNED\x07 \x1b[31mred\x1b[0m \x9b2J title",
        photographer="Ann \x1b[8mHidden\x1b[0m Lee",
        keywords=["k\x1bey", "plain"],
        date_created="2001-01-01T00:00:00Z",
    )
    shown = cite(record, style, ACCESSED)
    assert re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", shown) is None, repr(shown)
    assert "PWNED" in shown and "red" in shown  # the text stays; only the controls go
