"""The CLI as a user runs it: a real subprocess, real files, exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def nivl(
    *args: str,
    home: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    environ.update(env or {})
    if home is not None:
        environ["NIVL_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "nivl", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=environ,
        timeout=120,
    )


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory, records_path: Path) -> Path:
    home = tmp_path_factory.mktemp("cli") / "home"
    done = nivl("import", str(records_path), home=home)
    assert done.returncode == 0, done.stderr
    assert "new 1538" in done.stderr
    return home


def test_import_summary_and_reimport(cli_home: Path, records_path: Path) -> None:
    again = nivl("import", str(records_path), "--home", str(cli_home))
    assert again.returncode == 0
    assert "read 1538, new 0, updated 0, unchanged 1538, rejected 0" in again.stderr
    assert again.stdout == ""


def test_import_with_rejections_exits_1_and_keeps_the_rest(
    tmp_path: Path, shared_items: list[dict]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(shared_items[0]) + "\n{broken\n" + json.dumps(shared_items[1]))
    done = nivl("import", str(path), home=tmp_path / "home")
    assert done.returncode == 1
    assert f"{path}:2: broken JSON" in done.stderr
    assert "new 2" in done.stderr
    assert "Traceback" not in done.stderr


def test_search_table_and_filters(cli_home: Path) -> None:
    done = nivl(
        "search",
        "apollo 11 launch",
        "--media-type",
        "image",
        "--year-start",
        "1969",
        "--year-end",
        "1969",
        "--collapse",
        "none",
        "--match",
        "all",  # every word: two records (relaxed matching would add partial matches)
        home=cli_home,
    )
    assert done.returncode == 0, done.stderr
    assert "Apollo 11" in done.stdout
    assert "1969-" in done.stdout
    assert "of 2 records" in done.stdout.replace("\n", " ")


def test_search_json_is_the_api_document(cli_home: Path) -> None:
    done = nivl(
        "search",
        "moon",
        "--sort",
        "date_desc",
        "--json",
        "--collapse",
        "none",
        "--page-size",
        "100",
        home=cli_home,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    collection = document["collection"]
    assert collection["version"] == "1.0"
    assert collection["metadata"]["total_hits"] > 100
    dates = [i["data"][0]["date_created"] for i in collection["items"]]
    assert dates == sorted(dates, reverse=True) and len(dates) == 100
    assert [link["rel"] for link in collection["links"]] == ["next"]


def test_search_json_to_file(cli_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    done = nivl("search", "mars", "--json", "--out", str(out), home=cli_home)
    assert done.returncode == 0 and done.stdout == ""
    assert json.loads(out.read_text())["collection"]["items"]


def test_stats_json(cli_home: Path) -> None:
    done = nivl("stats", "--json", home=cli_home)
    stats = json.loads(done.stdout)
    assert stats["records"] == 1538
    assert stats["by_media_type"] == {"image": 1231, "video": 235, "audio": 72}
    assert stats["years"] == [1959, 2024]
    assert stats["by_center"]["JPL"] == 551


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export(cli_home: Path, tmp_path: Path, fmt: str, shared_items: list[dict]) -> None:
    out = tmp_path / f"export.{fmt}"
    done = nivl("export", "--format", fmt, "--out", str(out), home=cli_home)
    assert done.returncode == 0, done.stderr
    assert "exported 1538 records" in done.stderr
    if fmt == "jsonl":
        exported = [json.loads(line) for line in out.read_text().splitlines()]
        key = lambda item: item["data"][0]["nasa_id"]  # noqa: E731
        assert sorted(exported, key=key) == sorted(shared_items, key=key)
    elif fmt == "csv":
        import csv

        with out.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 1538 and rows[0]["nasa_id"]
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        assert table.num_rows == 1538
        assert json.loads(table.column("raw")[0].as_py()) in shared_items


def test_export_jsonl_to_stdout(cli_home: Path) -> None:
    done = nivl("export", home=cli_home)
    assert len(done.stdout.splitlines()) == 1538


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--bogus"], "No such option: --bogus"),
        (["import", "/no/such/file.jsonl"], "does not exist"),
        (["search", "x", "--page", "0"], "Invalid value for '--page'"),
        (["search", "x", "--sort", "sideways"], "sideways"),
        (["search", "x", "--year-start", "19x9"], "Invalid value for '--year-start'"),
        (["export", "--format", "xml"], "xml"),
        (["frobnicate"], "No such command"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    done = nivl(*args, home=tmp_path / "home")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_bad_environment_is_one_clear_error(tmp_path: Path) -> None:
    done = nivl("stats", home=tmp_path / "home", env={"NIVL_PORT": "eighty"})
    assert done.returncode == 1
    assert "NIVL_PORT must be an integer" in done.stderr
    assert "Traceback" not in done.stderr


def test_search_on_an_empty_home_loads_the_bundled_sample(tmp_path: Path) -> None:
    done = nivl("search", "apollo", home=tmp_path / "empty")
    assert done.returncode == 0, done.stderr
    assert "loading the bundled sample" in done.stderr
    assert "Apollo" in done.stdout


def test_index_rebuild(cli_home: Path) -> None:
    done = nivl("index", "--rebuild", home=cli_home)
    assert done.returncode == 0
    assert "indexed 1538 records; the index holds 1538" in done.stderr


def test_every_command_has_help() -> None:
    import typer.main

    from nivl.cli import app

    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        assert command.help, name
        done = nivl(name, "--help")
        assert done.returncode == 0 and "Usage" in done.stdout
