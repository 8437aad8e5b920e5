"""What a new user and a hostile record trip over in the CLI (issue 17), run as a user runs it."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import nivl

from .conftest import read_parquet
from .test_cli import nivl as run


def one_line_error(done: subprocess.CompletedProcess[str], status: int) -> str:
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, records_path: Path) -> Path:
    path = tmp_path_factory.mktemp("edges") / "home"
    done = run("import", str(records_path), home=path)
    assert done.returncode == 0, done.stderr
    return path


def hostile(item: dict[str, Any], nasa_id: str, **fields: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(item))
    copy["data"][0].update(nasa_id=nasa_id, **fields)
    return copy


# --- 1. --version --------------------------------------------------------------------


def test_version_prints_the_version_and_exits_0() -> None:
    done = run("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"nivl {nivl.__version__}\n"


# --- 2. serve: the port -------------------------------------------------------------


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_serve_with_a_port_out_of_range_is_a_usage_error(tmp_path: Path, port: str) -> None:
    stderr = one_line_error(run("serve", "--port", port, home=tmp_path / "home"), 2)
    assert "--port" in stderr and "serving" not in stderr


def test_serve_with_a_port_out_of_range_from_the_environment_is_one_error(
    tmp_path: Path,
) -> None:
    done = run("serve", home=tmp_path / "home", env={"NIVL_PORT": "99999"})
    assert "65535" in one_line_error(done, 1)


def test_serve_on_a_busy_port_says_so_in_one_line_before_announcing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("serve", "--port", str(port), home=tmp_path / "home")
    stderr = one_line_error(done, 1)
    assert f"127.0.0.1:{port}" in stderr and "already in use" in stderr
    assert "serving" not in stderr


# --- 5. errors in the CLI's words ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "wanted", "unwanted"),
    [
        (["group", "show", "abc"], ["'abc' is not a whole number", "'nivl group show --help'"],
         ["Input should", "'nivl show --help'"]),
        (["search", "x", "--media-type", "foo"], ["'foo' is not one of 'image', 'video'"],
         ["Value error"]),
        (["search"], ["QUERY", "--title", "--year-start", "--media-type"],
         ["description_508", "secondary_creator", "year_start"]),
        (["search", "x", "--year-start", "2020", "--year-end", "2010"],
         ["'--year-start'", "--year-end 2010"], ["year_end", "'year_start'"]),
        (["search", "x", "--page", "0"], ["'--page'"], ["'page'"]),
        (["serve", "--port", "eighty"], ["'eighty' is not a whole number"], ["Input should"]),
        (["dupes", "--min-size", "1"], ["must be at least 2, not 1"], ["Input should"]),
        (["harvest", "--all", "--rate", "fast"], ["'fast' is not a number"], ["Input should"]),
        (["export", "--format", "xml"], ["'xml' is not one of"], ["Value error"]),
    ],
)  # fmt: skip
def test_usage_errors_speak_in_the_cli_s_terms(
    tmp_path: Path, args: list[str], wanted: list[str], unwanted: list[str]
) -> None:
    stderr = one_line_error(run(*args, home=tmp_path / "home"), 2)
    for text in wanted:
        assert text in stderr
    for text in unwanted:
        assert text not in stderr


NOWHERE = ["--base-url", "http://127.0.0.1:9"]  # refused: old code must not reach the internet


@pytest.mark.parametrize(
    "args",
    [
        ["harvest", "--all", "--rate", "0", *NOWHERE],
        ["harvest", "--all", "--rate", "nan", *NOWHERE],
        ["harvest", "--query", "x", "--year-start", "99999", *NOWHERE],
        ["harvest", "--query", "x", "--since", "99999999999", *NOWHERE],
        ["harvest", "--query", "x", "--concurrency", "100000", *NOWHERE],
    ],
)
def test_harvest_refuses_values_it_cannot_use(tmp_path: Path, args: list[str]) -> None:
    stderr = one_line_error(run(*args, home=tmp_path / "home"), 2)
    option = next(a for a in args if a.startswith("--") and a not in ("--all", "--query"))
    assert f"'{option}'" in stderr


def test_a_home_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    stderr = one_line_error(run("--home", str(path), "stats"), 1)
    assert "not a directory" in stderr


def test_an_unwritable_out_file_is_one_line_and_exit_1(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "dir" / "results.txt"
    stderr = one_line_error(run("search", "apollo", "--out", str(out), home=home), 1)
    assert str(out) in stderr


# --- 6. help text ---------------------------------------------------------------------

COMMANDS = [
    [],
    ["import"],
    ["index"],
    ["embed"],
    ["search"],
    ["stats"],
    ["export"],
    ["serve"],
    ["group"],
    ["group", "show"],
    ["dupes"],
    ["harvest"],
    ["media", "fetch"],
    ["media", "status"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "nivl")
def test_help_shows_no_python_types(command: list[str]) -> None:
    done = run(*command, "--help", env={"COLUMNS": "100"})
    assert done.returncode == 0 and "Usage: nivl" in done.stdout
    for python in ("<bool>", "<str>", "<int>", "<float>", "<path>", "list[", "<int range>"):
        assert python not in done.stdout


def test_help_keeps_bracketed_words_and_single_spaces() -> None:
    done = run("search", "--help")
    assert "hybrid (the default: words and meaning)" in " ".join(done.stdout.split())
    assert "the  extra" not in done.stdout


# --- 7. --home before the command -----------------------------------------------------


def test_home_is_accepted_before_the_command(tmp_path: Path) -> None:
    fixture = Path(__file__).parent / "fixtures" / "departure.jsonl"
    first, second = tmp_path / "first", tmp_path / "second"
    assert run("--home", str(first), "import", str(fixture)).returncode == 0
    done = run("--home", str(first), "stats", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["records"] == len(fixture.read_text().splitlines())
    grouped = run("--home", str(first), "group")
    assert grouped.returncode == 0 and "grouped" in grouped.stderr
    # The command's own --home still wins over the one before it.
    done = run("--home", str(first), "stats", "--json", "--home", str(second))
    assert done.returncode == 0 and json.loads(done.stdout)["records"] == 0


# --- 8. the semantic hint -------------------------------------------------------------


def test_the_semantic_hint_says_what_works_from_a_checkout(tmp_path: Path) -> None:
    """As on an installation without the extra: its modules cannot be imported."""
    script = (
        "import runpy, sys\n"
        "sys.modules['usearch'] = sys.modules['sentence_transformers'] = None\n"
        "runpy.run_module('nivl', run_name='__main__')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    done = subprocess.run(
        [sys.executable, "-c", script, "embed"],  # search needs no extra: the built-in model
        capture_output=True,
        text=True,
        env={**env, "NIVL_HOME": str(tmp_path / "home")},
        timeout=120,
    )
    stderr = one_line_error(done, 2)
    assert "pip install '.[semantic]'" in stderr and "source folder" in stderr
    assert "nivl[semantic]" not in stderr


# --- 9. export: pipes, terminals, parquet types ----------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_into_a_pipe_closed_early_exits_0(home: Path, fmt: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "nivl", "export", "--format", fmt, "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(100)  # like `| head -c 100`
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "Exception" not in stderr


def test_parquet_to_a_terminal_is_refused(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "nivl", "export", "--format", "parquet", "--home", str(home)],
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
        readable, _, _ = select.select([leader], [], [], 0.5)
        written = os.read(leader, 65536) if readable else b""
    finally:
        os.close(leader)
        os.close(follower)
    assert "--out" in one_line_error(done, 2)
    assert b"PAR1" not in written and written == b""


def test_parquet_keeps_lists_timestamps_and_nulls(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.parquet"
    assert run("export", "--format", "parquet", "--out", str(out), home=home).returncode == 0
    types, rows = read_parquet(out)
    assert types["keywords"].startswith("list<")
    assert types["album"].startswith("list<")
    assert types["date_created"].startswith("timestamp[")
    checked = {"keywords": 0, "date": 0, "null": 0}
    for row in rows:
        data = json.loads(row["raw"])["data"][0]
        keywords = data.get("keywords")
        simple = isinstance(keywords, list) and all(
            k.strip() and "," not in k and ";" not in k for k in keywords
        )
        if simple:  # no separators inside: the list as upstream gave it (trimmed)
            assert set(row["keywords"]) == {k.strip() for k in keywords}
            checked["keywords"] += 1
        if "album" not in data:
            assert row["album"] is None
        for name in ("location", "photographer", "secondary_creator"):
            if name not in data:
                assert row[name] is None
                checked["null"] += 1
        if data.get("date_created"):
            moment = datetime.fromisoformat(data["date_created"].replace("Z", "+00:00"))
            assert datetime.fromisoformat(row["date_created"]).timestamp() == moment.timestamp()
            checked["date"] += 1
    assert min(checked.values()) > 100


# --- 10. hostile text: terminals and spreadsheets --------------------------------------

ESCAPES = "\x1b]0;pwned\x07Hostile \x1b[2J\x1b[31mtitle\x9b1m\u202e"


@pytest.fixture(scope="module")
def hostile_home(tmp_path_factory: pytest.TempPathFactory, shared_items: list[dict]) -> Path:
    path = tmp_path_factory.mktemp("hostile")
    items = [
        hostile(shared_items[0], "hostile-1", title=ESCAPES, center="[/oops] \x1b[2J"),
        hostile(shared_items[1], "hostile-2", title=ESCAPES, description="zyzzyva twice"),
        hostile(shared_items[2], "hostile-3", title=ESCAPES, description="zyzzyva twice"),
        hostile(
            shared_items[3],
            "formula-1",
            title='=HYPERLINK("http://evil.example/","click")',
            description="+cmd|' /C calc'!A0",
            photographer="@SUM(1+1)*cmd|' /C calc'!A0",
            location="-2+3",
            keywords=["=1+1", "plain"],
            secondary_creator="\tindented",
        ),
    ]
    source = path / "hostile.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in items))
    done = run("import", str(source), home=path / "home")
    assert done.returncode == 0, done.stderr
    return path / "home"


def assert_inert(output: str) -> None:
    assert "Hostile" in output
    for control in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert control not in output


@pytest.mark.parametrize(
    "args",
    [
        ["search", "hostile", "--collapse", "none"],
        ["search", "zyzzyva"],  # collapsed: the group column too
        ["dupes", "--level", "caption"],
    ],
)
def test_record_text_reaches_the_terminal_without_control_characters(
    hostile_home: Path, args: list[str]
) -> None:
    done = run(*args, home=hostile_home, env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert_inert(done.stdout)


def test_record_text_is_not_read_as_markup(hostile_home: Path) -> None:
    done = run("stats", home=hostile_home, env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert "[/oops]" in done.stdout and "\x1b" not in done.stdout
    found = run("search", "hostile", "--collapse", "none", home=hostile_home)
    assert found.returncode == 0 and "[/oops]" in found.stdout


def test_group_show_strips_control_characters(hostile_home: Path) -> None:
    found = run("search", "zyzzyva", "--json", "--collapse", "none", home=hostile_home)
    assert found.returncode == 0, found.stderr
    dupes = run("dupes", "--level", "caption", "--json", home=hostile_home)
    group = json.loads(dupes.stdout)["groups"][0]["id"]
    done = run("group", "show", str(group), home=hostile_home, env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert_inert(done.stdout)


def test_csv_cells_cannot_run_as_formulas_and_jsonl_stays_verbatim(
    hostile_home: Path, tmp_path: Path
) -> None:
    done = run("export", "--format", "csv", home=hostile_home)
    assert done.returncode == 0, done.stderr
    row = next(r for r in csv.DictReader(io.StringIO(done.stdout)) if r["nasa_id"] == "formula-1")
    assert row["title"] == '\'=HYPERLINK("http://evil.example/","click")'
    assert row["description"] == "'+cmd|' /C calc'!A0"
    assert row["photographer"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert row["location"] == "'-2+3"
    assert row["keywords"] == "'=1+1; plain"
    assert row["secondary_creator"] == "'\tindented"
    jsonl = run("export", home=hostile_home)
    items = [json.loads(line) for line in jsonl.stdout.splitlines()]
    data = next(i["data"][0] for i in items if i["data"][0]["nasa_id"] == "formula-1")
    assert data["title"] == '=HYPERLINK("http://evil.example/","click")'
    assert data["keywords"] == ["=1+1", "plain"]


def test_dupes_of_the_visual_level_without_mirrored_pictures_says_what_to_run(
    home: Path,
) -> None:
    done = run("dupes", "--level", "visual", "--home", str(home))
    assert done.returncode == 0, done.stderr
    assert "nivl media fetch --size thumb" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert run("dupes", "--level", "caption", "--home", str(home)).stderr == ""
