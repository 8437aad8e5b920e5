"""What ``nivl search``, ``nivl group show`` and ``nivl dupes`` print, at 80 columns.

Run as a user runs them (a subprocess) on a home with the shared records.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .test_cli import nivl

README = Path(__file__).resolve().parents[1] / "README.md"
NARROW = {"COLUMNS": "80"}
#: The longest nasa_id of the shared records (123 characters): a video.
LONG_ID = (
    "KSC-19990601-MH-NAS01-0001-Apollo_11_30th_Anniversary_Highlights_and_Magnificent_"
    "Desolation_Our_Journeys_to_the_Moon-B_2865"
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, records_path: Path) -> Path:
    home = tmp_path_factory.mktemp("cli-results") / "home"
    done = nivl("import", str(records_path), home=home)
    assert done.returncode == 0, done.stderr
    return home


def last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]


@pytest.mark.parametrize("page", ["2", "1000"])
def test_a_page_past_the_end_says_so_and_names_the_last_page(home: Path, page: str) -> None:
    lexical = ("--mode", "lexical")  # the paging arithmetic, over the words' matches
    done = nivl("search", "departure", *lexical, "--page", page, home=home, env=NARROW)
    assert done.returncode == 0, done.stderr
    total = json.loads(nivl("search", "departure", *lexical, "--json", home=home).stdout)[
        "collection"
    ]
    groups = total["metadata"]["total_groups"]
    summary = " ".join(done.stdout.split())
    assert f"page {page} is past the end" in summary
    assert f"{groups} event groups ({total['metadata']['total_hits']} records)" in summary
    assert "--page 1" in summary
    assert not re.search(r"\b0–", summary)  # no "0–19980 of …" range


def test_one_result_is_singular(home: Path) -> None:
    done = nivl("search", "--nasa-id", "PIA10120", home=home, env=NARROW)
    assert done.returncode == 0, done.stderr
    assert last_line(done.stdout) == "1–1 of 1 event group (1 record), page 1"
    none = nivl("search", "--nasa-id", "PIA10120", "--collapse", "none", home=home)
    assert last_line(none.stdout) == "1–1 of 1 record, page 1"


def test_collapsed_ranges_count_groups_and_point_to_the_next_page(home: Path) -> None:
    done = nivl("search", "apollo", "--page-size", "5", home=home, env=NARROW)
    metadata = json.loads(nivl("search", "apollo", "--json", home=home).stdout)["collection"][
        "metadata"
    ]
    assert last_line(done.stdout) == (
        f"1–5 of {metadata['total_groups']} event groups ({metadata['total_hits']} records), "
        "page 1; next: --page 2"
    )


def test_collapsed_results_show_the_command_that_lists_their_group(home: Path) -> None:
    done = nivl("search", "evening with the stars", home=home, env=NARROW)
    assert done.returncode == 0, done.stderr
    found = re.search(r"\+(\d+) more: nivl group show (\d+)$", done.stdout, re.MULTILINE)
    assert found is not None, done.stdout
    more, group_id = int(found.group(1)), found.group(2)
    listed = nivl("group", "show", group_id, "--json", "--page-size", "1000", home=home)
    assert listed.returncode == 0, listed.stderr
    members = json.loads(listed.stdout)
    assert members["size"] == len(members["items"]) == more + 1
    shown = nivl("group", "show", group_id, home=home, env=NARROW)
    assert f"event group {group_id}: {more + 1} records" in shown.stdout


def test_the_readme_group_id_is_real(home: Path) -> None:
    """README's tour runs on the bundled sample, which holds the shared records."""
    ids = re.findall(r"nivl group show (\d+)", README.read_text())
    assert ids
    for group_id in ids:
        done = nivl("group", "show", group_id, home=home, env=NARROW)
        assert done.returncode == 0, done.stderr
        assert f"group {group_id}: " in done.stdout


def test_nasa_ids_are_never_wrapped_at_80_columns(home: Path) -> None:
    done = nivl(
        "search", "apollo 11 30th anniversary highlights", "--collapse", "none",
        home=home, env=NARROW,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.endswith(LONG_ID) for line in lines), done.stdout
    # every nasa_id the JSON gives is whole on one line
    document = nivl(
        "search", "apollo 11", "--collapse", "none", "--page-size", "20", "--json", home=home
    )
    ids = [i["data"][0]["nasa_id"] for i in json.loads(document.stdout)["collection"]["items"]]
    table = nivl(
        "search", "apollo 11", "--collapse", "none", "--page-size", "20", home=home, env=NARROW
    )
    for nasa_id in ids:
        assert any(line.endswith(nasa_id) for line in table.stdout.splitlines()), nasa_id


def test_group_show_and_dupes_keep_nasa_ids_whole(home: Path) -> None:
    dupes = nivl("dupes", "--json", "--limit", "5", home=home)
    groups = json.loads(dupes.stdout)["groups"]
    shown = nivl("dupes", "--limit", "5", home=home, env=NARROW)
    for group in groups:
        line = next(line for line in shown.stdout.splitlines() if group["id"] in line)
        assert line.endswith(group["nasa_id"]) and f"nivl group show {group['id']}" in line
    member = nivl("group", "show", groups[0]["id"], "--json", home=home)
    first = json.loads(member.stdout)["items"][0]["data"][0]["nasa_id"]
    table = nivl("group", "show", groups[0]["id"], home=home, env=NARROW)
    assert any(line.endswith(first) for line in table.stdout.splitlines())


def test_group_show_past_the_end_says_so(home: Path) -> None:
    dupes = json.loads(nivl("dupes", "--json", "--limit", "1", home=home).stdout)
    group = dupes["groups"][0]
    done = nivl("group", "show", group["id"], "--page", "50", home=home, env=NARROW)
    assert done.returncode == 0, done.stderr
    last = -(-group["size"] // 20)
    assert f"page 50 is past the end; try --page {last}" in " ".join(done.stdout.split())
