"""``GET /cite/{id}`` on the real server, and ``nivl export --format bibtex|ris`` for a search
as a user runs it (a subprocess), read back by bibtexparser and rispy."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

from .test_cli import cli_home, nivl  # noqa: F401  (a fixture)

JSC_PHOTO = "iss042e283219"
VIDEO = "JPL-20170515-NEOWISf-0001-Three Years of NEOWISE Survey Data"


def test_cite_answers_each_style_as_text(http: Any) -> None:
    answer = http.get(f"/cite/{JSC_PHOTO}", params={"style": "mla"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.text.startswith("Virts, Terry. Virts Self-Portrait During EVA 29.")
    assert http.get(f"/cite/{JSC_PHOTO}").text.startswith("Virts, T. (2015).")  # APA default
    chicago = http.get(f"/cite/{JSC_PHOTO}", params={"style": "chicago"}).text
    assert chicago.startswith("Virts, Terry. 2015.")


def test_cite_html_form_is_escaped_and_italic(http: Any) -> None:
    answer = http.get(f"/cite/{JSC_PHOTO}", params={"style": "apa", "format": "html"})
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "<i>Virts Self-Portrait during EVA 29</i>" in answer.text
    refused = http.get(f"/cite/{JSC_PHOTO}", params={"style": "bibtex", "format": "html"})
    assert refused.status_code == 400 and "format" in refused.json()["reason"]


def test_bibtex_and_ris_come_as_files_named_after_the_record(http: Any) -> None:
    today = datetime.now(UTC).date()
    bib = http.get(f"/cite/{quote(VIDEO)}", params={"style": "bibtex"})
    assert bib.status_code == 200
    assert bib.headers["content-type"] == "text/plain; charset=utf-8"
    disposition = bib.headers["content-disposition"]
    assert 'filename="JPL-20170515-NEOWISf-0001-Three_Years_of_NEOWISE_Survey_Data.bib"' in (
        disposition
    )
    assert "filename*=UTF-8''JPL-20170515-NEOWISf-0001-Three%20Years" in disposition
    bibtexparser = pytest.importorskip("bibtexparser")
    (entry,) = bibtexparser.parse_string(bib.text).entries
    assert entry.fields_dict["urldate"].value == today.isoformat()
    rispy = pytest.importorskip("rispy")
    ris = http.get(f"/cite/{quote(VIDEO)}", params={"style": "ris"})
    assert ris.headers["content-disposition"].startswith("inline; filename=")
    (reference,) = rispy.loads(ris.text)
    assert reference["type_of_reference"] == "VIDEO"
    assert reference["accession_number"] == VIDEO


@pytest.mark.parametrize(
    ("path", "status", "named"),
    [
        (f"/cite/{JSC_PHOTO}?style=harvard", 400, "style"),
        (f"/cite/{JSC_PHOTO}?style=", 400, "style"),
        (f"/cite/{JSC_PHOTO}?format=pdf", 400, "format"),
        ("/cite/no-such-record?style=apa", 404, "no-such-record"),
        ("/cite/%3Cscript%3E%0A?style=ris", 404, "script"),
    ],
)
def test_cite_errors_are_json_with_a_reason(http: Any, path: str, status: int, named: str) -> None:
    answer = http.get(path)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/json")
    assert named in answer.json()["reason"]


def test_item_page_cites_the_record(http: Any) -> None:
    page = http.get(f"/item/{JSC_PHOTO}", headers={"accept": "text/html"}).text
    assert 'id="cite-apa" value="apa" checked' in page
    assert "<i>Virts Self-Portrait during EVA 29</i>" in page
    assert 'data-text="Virts, Terry. Virts Self-Portrait During EVA 29.' in page
    assert f'href="/cite/{JSC_PHOTO}?style=bibtex" download>BibTeX (.bib)</a>' in page
    assert "Image credit: <span data-credit>NASA/Terry Virts</span>" in page


def test_export_a_search_as_bibtex_and_ris(cli_home: Path) -> None:  # noqa: F811
    bibtexparser = pytest.importorskip("bibtexparser")
    rispy = pytest.importorskip("rispy")
    search = nivl("search", "apollo", "--center", "JSC", "--collapse", "none", "--json",
                  "--mode", "lexical", "--page-size", "1000", home=cli_home)  # fmt: skip
    assert search.returncode == 0, search.stderr
    expected = {i["data"][0]["nasa_id"] for i in json.loads(search.stdout)["collection"]["items"]}
    assert expected
    done = nivl("export", "apollo", "--center", "JSC", "--format", "bibtex", home=cli_home)
    assert done.returncode == 0, done.stderr
    assert f"exported {len(expected)} records as bibtex" in done.stderr
    library = bibtexparser.parse_string(done.stdout)
    assert not library.failed_blocks
    assert len(library.entries) == len(expected)
    urls = {unquote(e.fields_dict["url"].value.rsplit("/", 1)[1]) for e in library.entries}
    assert urls == expected
    done = nivl("export", "apollo", "--center", "JSC", "--format", "ris", home=cli_home)
    assert done.returncode == 0, done.stderr
    references = rispy.loads(done.stdout)
    assert {r["accession_number"] for r in references} == expected


def test_export_filters_apply_to_every_format_and_bad_ones_fail_cleanly(
    cli_home: Path,  # noqa: F811
) -> None:
    done = nivl("export", "--nasa-id", JSC_PHOTO, "--format", "jsonl", home=cli_home)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert json.loads(line)["data"][0]["nasa_id"] == JSC_PHOTO
    everything = nivl("export", "--format", "ris", home=cli_home)
    assert everything.returncode == 0, everything.stderr
    assert "exported 1538 records as ris" in everything.stderr
    bad = nivl("export", "--year-start", "abc", "--format", "bibtex", home=cli_home)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1 and "--year-start" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_export_of_a_search_past_the_result_window_says_what_it_left_out(
    cli_home: Path,  # noqa: F811
) -> None:
    window = {"NIVL_MAX_RESULT_WINDOW": "200", "NIVL_MAX_PAGE_SIZE": "100"}
    done = nivl("export", "--media-type", "image", "--format", "ris", home=cli_home, env=window)
    assert done.returncode == 0, done.stderr
    assert "exported 200 records as ris" in done.stderr
    images = nivl("stats", "--json", home=cli_home)
    left = json.loads(images.stdout)["by_media_type"]["image"] - 200
    assert f"nivl: {left} more records match: narrow the search" in done.stderr
