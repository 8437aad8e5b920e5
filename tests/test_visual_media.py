"""Issue 18 req 1 end to end: the replay server serves real NASA photographs (scikit-image's)
as every record's renditions, ``nivl media fetch`` mirrors them in a subprocess, and the
records whose files show one photograph, at different sizes and under different ids, are
one visual group: in ``nivl dupes --level visual``, in ``/search?collapse=visual`` over
HTTP, and on the group page. Hostile files in the media folder are not hashed, one line
each, and the rest carries on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

import nivl
from nivl.library import Library
from nivl.media import disk_name, file_name
from nivl.settings import Settings

from .conftest import OFFLINE, RECORDS, RESPONSES
from .replay import PHOTOS, Replay, make_replay, serving
from .servers import running
from .test_visual import _png_header_claiming

#: Two searches, mirrored at two sizes: every visual group should mix both.
FETCHES = (
    ("apollo", "--year-start", "1969", "--year-end", "1969", "--size", "small"),
    ("moon", "--year-start", "2009", "--year-end", "2009", "--size", "thumb"),
)


@pytest.fixture(scope="module")
def replay() -> Iterator[Replay]:
    with serving(make_replay(RECORDS, RESPONSES)) as server:
        yield server


def _nivl(home: Path, replay: Replay, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    env["PYTHONPATH"] = str(Path(nivl.__file__).resolve().parents[1])
    env["NIVL_UPSTREAM_URL"] = env["NIVL_ASSETS_URL"] = replay.url
    command = [sys.executable, "-m", "nivl", *args, "--home", str(home)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory: pytest.TempPathFactory, replay: Replay) -> Path:
    """A home holding the shared records and two searches' pictures, fetched by the CLI."""
    home = tmp_path_factory.mktemp("visual") / "home"
    with Library(Settings.from_env({}, home=str(home), upstream_url=OFFLINE)) as library:
        library.import_paths([RECORDS])
    for query, *options in FETCHES:
        done = _nivl(home, replay, "media", "fetch", query, "--media-type", "image", *options)
        assert done.returncode == 0, done.stderr
    return home


def _copy(home: Path, dest: Path) -> Path:
    return Path(shutil.copytree(home, dest, ignore=shutil.ignore_patterns("write.lock")))


def _photo_of(home: Path) -> dict[str, tuple[str, str]]:
    """Each mirrored record → (the photograph the replay drew its file from, file name).

    The replay picks ``PHOTOS[crc32(url path) % len(PHOTOS)]`` for a rendition's URL;
    that is the fake upstream's own rule, the labels of this test, not nivl's logic."""
    found: dict[str, tuple[str, str]] = {}
    with Library(Settings.from_env({}, home=str(home), upstream_url=OFFLINE)) as library:
        for row in library.store.iter_rows():
            folder = home / "media" / disk_name(row.nasa_id)
            if not folder.is_dir():
                continue
            manifest = orjson.loads(library.asset(row.nasa_id)["manifest"] or "{}")
            urls = {file_name(i["href"]): i["href"] for i in manifest["collection"]["items"]}
            names = sorted(p.name for p in folder.iterdir())
            pick = min(names, key=lambda n: "~thumb." not in n)  # nivl's picture: the thumb
            path = urlsplit(urls[pick]).path
            found[row.nasa_id] = (PHOTOS[zlib.crc32(path.encode()) % len(PHOTOS)], pick)
    return found


def _visual_groups(home: Path, replay: Replay) -> dict[str, set[str]]:
    """Group id → member nasa_ids, from ``nivl dupes --level visual`` and ``group show``."""
    done = _nivl(home, replay, "dupes", "--level", "visual", "--json", "--limit", "50")
    assert done.returncode == 0, done.stderr
    groups: dict[str, set[str]] = {}
    for group in json.loads(done.stdout)["groups"]:
        assert group["level"] == "visual"
        shown = _nivl(home, replay, "group", "show", group["id"], "--json", "--page-size", "200")
        assert shown.returncode == 0, shown.stderr
        page = json.loads(shown.stdout)
        assert page["level"] == "visual"
        members = {item["data"][0]["nasa_id"] for item in page["items"]}
        assert len(members) == group["size"] == page["size"]
        groups[group["id"]] = members
    return groups


def test_one_photograph_under_many_ids_and_sizes_is_one_visual_group(
    mirrored: Path, replay: Replay
) -> None:
    truth = _photo_of(mirrored)
    by_photo: dict[str, set[str]] = defaultdict(set)
    for nasa_id, (photo, _) in truth.items():
        by_photo[photo].add(nasa_id)
    assert len(by_photo) == 2 and all(len(ids) > 5 for ids in by_photo.values())
    groups = _visual_groups(mirrored, replay)
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, by_photo.values()))
    for members in groups.values():  # each group holds both sizes: a real match, not bytes
        assert {truth[m][1].rsplit("~", 1)[1] for m in members} == {"small.jpg", "thumb.jpg"}


def _status_line(text: str) -> list[str]:
    return [line for line in text.splitlines() if "not hashed" in line]


def test_search_collapse_visual_over_http(mirrored: Path, tmp_path: Path) -> None:
    from nivl.web.app import create_app

    home = _copy(mirrored, tmp_path / "home")
    truth = _photo_of(home)
    settings = Settings.from_env({}, home=str(home), upstream_url=OFFLINE)
    with running(create_app(settings)) as url:
        params = {"q": "apollo", "year_start": "1969", "year_end": "1969", "media_type": "image"}
        flat = httpx.get(url + "/search", params=params).json()["collection"]
        folded = httpx.get(url + "/search", params={**params, "collapse": "visual"}).json()
        wrong = httpx.get(url + "/search", params={**params, "collapse": "pictures"})
        items = folded["collection"]["items"]
        groups = [item["group"] for item in items]
        ids = [item["data"][0]["nasa_id"] for item in items]
        expanded = httpx.get(url + f"/groups/{groups[0]['id']}").json()
        ui = httpx.get(url + "/", params={**params, "collapse": "visual"}).text
    hits = {item["data"][0]["nasa_id"] for item in flat["items"]}
    photos = {truth[n][0] for n in hits}
    assert len(items) == len(photos) == 2  # every hit has a picture: one card per picture
    assert {truth[n][0] for n in ids} == photos
    assert all(g["level"] == "visual" and g["size"] >= 5 for g in groups)
    assert folded["collection"]["metadata"]["total_hits"] == len(hits)
    assert wrong.status_code == 400 and "collapse" in wrong.json()["reason"]
    assert 'data-collapse="visual"' in ui and ui.count('<li class="card"') == 2
    members = {i["data"][0]["nasa_id"] for i in expanded["collection"]["items"]}
    assert len(members) == groups[0]["size"] and {truth[m][0] for m in members} == {
        truth[ids[0]][0]
    }


def test_hostile_files_are_not_hashed_one_line_each(
    mirrored: Path, tmp_path: Path, replay: Replay
) -> None:
    """A truncated picture, a file that is no picture and a decompression bomb: each
    record leaves its visual group, each is named in one line, nothing crashes."""
    home = _copy(mirrored, tmp_path / "home")
    truth = _photo_of(home)
    victims = sorted(truth)[:3]
    for nasa_id, damage in zip(victims, ("cut", "text", "bomb"), strict=True):
        path = home / "media" / disk_name(nasa_id) / truth[nasa_id][1]
        data = path.read_bytes()
        path.write_bytes(
            data[: len(data) // 3]
            if damage == "cut"
            else b"<html>not found</html>"
            if damage == "text"
            else _png_header_claiming(30_000, 30_000)
        )
    query, *options = FETCHES[0]
    done = _nivl(home, replay, "media", "fetch", query, "--media-type", "image", *options)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = _status_line(done.stderr)
    assert len(lines) == 3 and all(any(v in line for line in lines) for v in victims)
    again = _nivl(home, replay, "media", "fetch", query, "--media-type", "image", *options)
    assert _status_line(again.stderr) == []  # tried once, not at every run
    grouped = set().union(*_visual_groups(home, replay).values())
    assert grouped == set(truth) - set(victims)


def test_replaced_and_removed_pictures_are_hashed_again(mirrored: Path, tmp_path: Path) -> None:
    """The stage keeps in step with the folder: a file replaced by another photograph
    moves its record to that photograph's group; a removed folder leaves no group."""
    home = _copy(mirrored, tmp_path / "home")
    truth = _photo_of(home)
    by_photo: dict[str, list[str]] = defaultdict(list)
    for nasa_id, (photo, _) in sorted(truth.items()):
        by_photo[photo].append(nasa_id)
    (first, a_ids), (_, b_ids) = sorted(by_photo.items())
    moved, removed = a_ids[0], a_ids[1]
    source = home / "media" / disk_name(b_ids[0]) / truth[b_ids[0]][1]
    shutil.copyfile(source, home / "media" / disk_name(moved) / truth[moved][1])
    shutil.rmtree(home / "media" / disk_name(removed))
    settings = Settings.from_env({}, home=str(home), upstream_url=OFFLINE)
    with Library(settings) as library:
        from nivl.query import SearchRequest

        def group_of(nasa_id: str) -> tuple[int, int] | None:
            hits = library.search(SearchRequest(nasa_id=nasa_id, collapse="visual")).hits
            group = hits[0].group
            return (group.id, group.size) if group is not None else None

        b_group = group_of(b_ids[0])
        assert b_group is not None and b_group[1] == len(b_ids) + 1
        assert group_of(moved) == b_group
        assert group_of(removed) is None
        a_group = group_of(a_ids[2])
        assert a_group is not None and a_group[1] == len(a_ids) - 2 and first in PHOTOS


def test_text_regrouping_and_index_rebuild_keep_the_visual_groups(
    mirrored: Path, tmp_path: Path, replay: Replay
) -> None:
    """``nivl group --rebuild`` rewrites the text groups only, and ``nivl index --rebuild``
    reads the visual ids back from the store: the visual groups come through both."""
    home = _copy(mirrored, tmp_path / "home")
    before = _visual_groups(home, replay)
    for command in (("group", "--rebuild"), ("index", "--rebuild")):
        done = _nivl(home, replay, *command)
        assert done.returncode == 0, done.stderr
    assert _visual_groups(home, replay) == before
    settings = Settings.from_env({}, home=str(home), upstream_url=OFFLINE)
    with Library(settings) as library:
        from nivl.query import SearchRequest

        member = sorted(next(iter(before.values())))[0]
        hit = library.search(SearchRequest(nasa_id=member, collapse="visual")).hits[0]
        assert hit.group is not None and str(hit.group.id) in before
