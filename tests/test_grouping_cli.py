"""``nivl group``, ``nivl group show`` and ``nivl dupes`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_cli import nivl

DEPARTURE = Path(__file__).parent / "fixtures" / "departure.jsonl"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("grouping-cli") / "home"
    done = nivl("import", str(DEPARTURE), home=home)
    assert done.returncode == 0, done.stderr
    return home


def test_group_rebuild_changes_nothing_after_an_import(home: Path) -> None:
    done = nivl("group", "--rebuild", home=home)
    assert done.returncode == 0, done.stderr
    assert "grouped 100 records, 0 with new group ids" in done.stderr
    assert "caption 73" in done.stderr
    assert done.stdout == ""


def test_dupes_json_lists_the_largest_groups(home: Path) -> None:
    done = nivl("dupes", "--level", "caption", "--limit", "2", "--json", home=home)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [g["size"] for g in report["groups"]] == [46, 27]
    assert report["hidden"]["caption"] == 73 and report["records"] == 100
    table = nivl("dupes", "--min-size", "9", home=home)
    assert "fixture-artemis-01" in table.stdout and "collapsing hides" in table.stdout


def test_group_show_pages_a_group_found_by_search(home: Path) -> None:
    found = nivl("search", "T-38 jet trainer", "--json", home=home)
    group = json.loads(found.stdout)["collection"]["items"][0]["group"]
    assert group["level"] == "event" and group["size"] == 5
    shown = nivl("group", "show", group["id"], "--page-size", "2", "--json", home=home)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert (document["size"], len(document["items"])) == (5, 2)
    table = nivl("group", "show", group["id"], home=home)
    assert "JSC2000-E-29120" in table.stdout and "5 records" in table.stdout


def test_group_show_of_an_unknown_id_fails_with_a_message(home: Path) -> None:
    done = nivl("group", "show", "12345", home=home)
    assert done.returncode == 1
    assert "No group with id 12345" in done.stderr and "Traceback" not in done.stderr
