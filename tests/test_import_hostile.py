"""``nivl import`` on the files a new user or an attacker hands it, through the CLI.

Each test runs the real command in a subprocess and then looks at what the store holds
(``nivl export --format jsonl``): a bad part of a file is one clear rejection, and the
rest of the file still lands.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from nivl import Settings
from nivl.web.app import create_app

from .conftest import RESPONSES
from .servers import running


def nivl(
    *args: str, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    environ.update(env or {}, NIVL_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "nivl", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )


def stored(home: Path) -> dict[str, str]:
    """nasa_id → the raw JSON line the store gives back."""
    done = nivl("export", "--format", "jsonl", home=home)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line]
    return {json.loads(line)["data"][0]["nasa_id"]: line for line in lines}


def ids(items: list[dict[str, Any]]) -> set[str]:
    return {item["data"][0]["nasa_id"] for item in items}


def with_description(item: dict[str, Any], nasa_id: str, description: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(item))
    copy["data"][0]["nasa_id"] = nasa_id
    copy["data"][0]["description"] = description
    return copy


# --- 11: the format is told without trusting line 1 ------------------------------------


@pytest.mark.parametrize(
    "first_line",
    ["{not json", '{"data": [{"nasa_id": "cut-off", "media_type": "image"', '{"collection": ', "["],
)
def test_a_bad_first_line_rejects_that_line_only(
    tmp_path: Path, shared_items: list[dict[str, Any]], first_line: str
) -> None:
    path = tmp_path / "first-bad.jsonl"
    good = shared_items[:3]
    path.write_text(first_line + "\n" + "".join(json.dumps(i) + "\n" for i in good))
    done = nivl("import", str(path), home=tmp_path / "home")
    assert done.returncode == 1
    assert f"{path}:1: broken JSON" in done.stderr
    assert "read 3, new 3, updated 0, unchanged 0, rejected 1" in done.stderr
    assert set(stored(tmp_path / "home")) == ids(good)


def test_pretty_printed_documents_are_still_told_apart(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    """A pretty list of items, and two pretty responses one after the other (``cat a b``)."""
    search = json.loads((RESPONSES / "search__q=helmet__src-RobEato.json").read_text())
    items = search["collection"]["items"]
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(shared_items[:4], indent=2))
    both = tmp_path / "two-responses.json"
    second = {"collection": {"version": "1.0", "items": shared_items[4:6]}}
    both.write_text(json.dumps(search, indent=2) + "\n" + json.dumps(second, indent=2))
    done = nivl("import", str(listed), str(both), home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert set(stored(tmp_path / "home")) == ids(shared_items[:6]) | ids(items)


# --- 12: a cap on one record ------------------------------------------------------------


def test_a_record_over_the_cap_is_rejected_with_its_line_and_the_rest_imports(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    huge = with_description(shared_items[0], "huge", "moon " * 600_000)  # 3 MB
    path = tmp_path / "hostile.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        for item in (shared_items[1], huge, shared_items[2]):
            handle.write(json.dumps(item) + "\n")
    document = tmp_path / "hostile-response.json"
    response = {"collection": {"version": "1.0", "items": [huge, shared_items[3]]}}
    document.write_text(json.dumps(response, indent=2))
    home = tmp_path / "home"
    done = nivl("import", str(path), str(document), home=home)
    assert done.returncode == 1
    assert f"{path}:2: line of 2,930 kB is over the limit of 1,024 kB a record" in done.stderr
    assert f"{document}:5: item 1 of 2,930 kB is over the limit" in done.stderr
    assert "read 3, new 3, updated 0, unchanged 0, rejected 2" in done.stderr
    assert set(stored(home)) == ids(shared_items[1:4])
    raised = nivl("import", str(path), home=home, env={"NIVL_MAX_RECORD_KB": "4096"})
    assert raised.returncode == 0, raised.stderr
    assert "huge" in stored(home)


def test_max_record_kb_must_be_positive(tmp_path: Path, records_path: Path) -> None:
    done = nivl("import", str(records_path), home=tmp_path / "h", env={"NIVL_MAX_RECORD_KB": "0"})
    assert done.returncode == 1
    assert "NIVL_MAX_RECORD_KB must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr


def test_item_page_shows_a_bounded_part_of_a_long_description(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    long = with_description(shared_items[0], "long-one", "Start of it. " + "word " * 180_000)
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps(long) + "\n")
    home = tmp_path / "home"
    assert nivl("import", str(path), home=home).returncode == 0
    with running(create_app(Settings.from_env({}, home=str(home)))) as url:
        page = httpx.get(f"{url}/item/long-one", timeout=60)
    assert page.status_code == 200
    assert "Start of it." in page.text
    assert len(page.content) < 300_000  # the description alone is 900 kB
    assert "This description is 900,013 characters long" in page.text
    assert 'href="/search?nasa_id=long-one"' in page.text


# --- 13: empty, BOM, broken gzip, binary ---------------------------------------------------


def test_an_empty_file_is_a_warning_and_says_nothing_was_imported(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    done = nivl("import", str(empty), home=tmp_path / "home")
    assert done.returncode == 0  # an empty file is valid JSON Lines (nivl export of nothing)
    assert f"warning: {empty} is empty: nothing to import" in done.stderr
    assert "nothing imported: read 0" in done.stderr


def test_a_utf8_bom_and_crlf_line_ends_are_accepted(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    path = tmp_path / "windows.jsonl"
    lines = [json.dumps(i, ensure_ascii=False) for i in shared_items[:3]]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    done = nivl("import", str(path), home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert "read 3, new 3" in done.stderr
    assert {k: json.loads(v) for k, v in stored(tmp_path / "home").items()} == {
        i["data"][0]["nasa_id"]: i for i in shared_items[:3]
    }


def test_a_cut_gzip_keeps_what_came_before_and_says_where_it_stopped(
    tmp_path: Path, records_path: Path
) -> None:
    whole = gzip.compress(records_path.read_bytes())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    done = nivl("import", str(path), home=tmp_path / "home")
    assert done.returncode == 1
    rejected = [line for line in done.stderr.splitlines() if line.startswith("rejected")]
    assert len(rejected) == 1, done.stderr
    line = int(rejected[0].split(":")[1])
    assert line > 100
    assert rejected[0] == (
        f"rejected {path}:{line}: cannot read beyond line {line}: the gzip data ends early "
        f"(a cut-off download?); lines 1-{line - 1} were read"
    )
    assert f"read {line - 1}, new {line - 1}" in done.stderr
    assert len(stored(tmp_path / "home")) == line - 1


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "{}".encode("utf-16"), b"PK\x03\x04\xff\xfe"],
)
def test_a_binary_file_is_named_as_not_json(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "picture.jsonl"
    path.write_bytes(content + bytes(range(256)) * 4)
    done = nivl("import", str(path), home=tmp_path / "home")
    assert done.returncode == 1
    assert f"rejected {path}: not JSON or JSON Lines: binary data" in done.stderr
    assert "utf-8" not in done.stderr.lower()


# --- 14: raw JSON stays verbatim -----------------------------------------------------------


def test_numbers_beyond_64_bits_and_float_digits_stay_verbatim(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    line = json.dumps(shared_items[0])
    line = line[:-1] + ', "big": 123456789012345678901234567890, "ratio": 1.10, "e": 2E+3}'
    path = tmp_path / "numbers.jsonl"
    path.write_text(line + "\n")
    pretty = tmp_path / "numbers.json"
    other = json.dumps(with_description(shared_items[1], "pretty-big", "x"), indent=2)
    pretty.write_text(other[:-1] + ',\n  "big": -98765432109876543210987654321\n}')
    home = tmp_path / "home"
    done = nivl("import", str(path), str(pretty), home=home)
    assert done.returncode == 0, done.stderr
    raw = stored(home)
    nasa_id = shared_items[0]["data"][0]["nasa_id"]
    assert '"big":123456789012345678901234567890,"ratio":1.10,"e":2E+3}' in raw[nasa_id]
    assert raw["pretty-big"].endswith(',"big":-98765432109876543210987654321}')


# --- the same kinds of fault elsewhere -----------------------------------------------------


def test_lines_that_are_json_but_not_items_and_nul_bytes(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_bytes(
        b'null\n"moon"\n42\n{"a": "nul \x00 here"}\n' + json.dumps(shared_items[0]).encode() + b"\n"
    )
    done = nivl("import", str(path), home=tmp_path / "home")
    assert done.returncode == 1
    for number, kind in ((1, "null"), (2, "string"), (3, "number")):
        assert f"{path}:{number}: item is a JSON {kind}, not an object" in done.stderr
    assert f"{path}:4: broken JSON: unexpected control character in string at column" in (
        done.stderr
    )
    assert "NoneType" not in done.stderr and "line 1 column" not in done.stderr
    assert "read 1, new 1" in done.stderr


def test_a_file_of_many_bad_lines_is_counted_not_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "garbage.jsonl"
    path.write_text("not json\n" * 50_000)
    done = nivl("import", str(path), home=tmp_path / "home")
    assert done.returncode == 1
    assert "... and 49980 more rejected" in done.stderr
    assert "nothing imported: read 0, new 0, updated 0, unchanged 0, rejected 50000" in done.stderr


def test_gzip_is_told_by_its_bytes_not_its_name(
    tmp_path: Path, shared_items: list[dict[str, Any]]
) -> None:
    plain = tmp_path / "plain.jsonl.gz"  # named .gz, but plain text
    plain.write_text(json.dumps(shared_items[0]) + "\n")
    packed = tmp_path / "packed.jsonl"  # gzip, with no .gz in its name
    packed.write_bytes(gzip.compress((json.dumps(shared_items[1]) + "\n").encode()))
    done = nivl("import", str(plain), str(packed), home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert set(stored(tmp_path / "home")) == ids(shared_items[:2])
