"""The UI uses the mirror (issue 16 req 4): local thumbnails, renditions, players,
captions as WebVTT, credit lines, a folded transcript, placeholders that say what an item is.

The home is a copy of the shared records' home with files placed in HOME/media/<id>/ as
the media fetcher leaves them (``<name>.part`` while downloading)."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from nivl import Library, Settings
from nivl.captions import srt_to_vtt
from nivl.credit import credit_line
from nivl.records import parse_item
from nivl.web.app import create_app
from nivl.web.ui import text_paragraphs

from .conftest import RESPONSES
from .servers import running
from .test_ui import CSS, Page, assert_safe, contrast

IMAGE = "PIA04778"  # JPL, a recorded manifest
VIDEO = "114_SunMagFieldFlip"  # a video whose record links SRT captions upstream
VIDEO_REMOTE = "120_ISONApproachingSun"  # captions only upstream
AUDIO = "Ep56_Dr Spaceman"  # a podcast with a 78,000-character transcript, no line breaks
IMAGE_FILES = [f"{IMAGE}~{size}.jpg" for size in ("orig", "large", "medium", "small", "thumb")]
IMAGE_FILES.append("metadata.json")
SRT = RESPONSES / "captions-srt__172_ISS-Slosh__src-aschleg.srt"


def jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    image = pytest.importorskip("PIL.Image")
    out = io.BytesIO()
    image.new("RGB", (width, height), colour).save(out, "JPEG")
    return out.getvalue()


def manifest(nasa_id: str, kind: str, names: list[str]) -> str:
    base = f"https://images-assets.nasa.gov/{kind}/{quote(nasa_id)}/"
    items = [{"href": base + quote(name)} for name in names]
    return json.dumps({"collection": {"version": "1.0", "href": base, "items": items}})


@pytest.fixture(scope="module")
def media_settings(loaded_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("media") / "home"
    shutil.copytree(loaded_settings.home, home)
    settings = Settings.from_env({}, home=str(home))
    with Library(settings) as library:
        library.store.put_asset(IMAGE, manifest=manifest(IMAGE, "image", IMAGE_FILES))
        for nasa_id in (VIDEO, VIDEO_REMOTE):
            names = [f"{nasa_id}~orig.mp4", f"{nasa_id}~mobile.mp4", f"{nasa_id}~thumb.jpg"]
            library.store.put_asset(nasa_id, manifest=manifest(nasa_id, "video", names))
        names = [f"{AUDIO}~orig.mp3", f"{AUDIO}~128k.mp3", "metadata.json"]
        library.store.put_asset(AUDIO, manifest=manifest(AUDIO, "audio", names))
    image = home / "media" / IMAGE
    image.mkdir(parents=True)
    (image / f"{IMAGE}~thumb.jpg").write_bytes(jpeg(320, 240, (200, 80, 40)))
    (image / f"{IMAGE}~medium.jpg").write_bytes(jpeg(640, 480, (40, 120, 200)))
    (image / f"{IMAGE}~orig.jpg.part").write_bytes(b"\xff\xd8 half a download")
    # a mirror may keep names percent-encoded on disk (a space as %20): the folder both
    # ways, so the page is checked whichever way the fetcher names it
    for folder in (AUDIO, quote(AUDIO)):
        (home / "media" / folder).mkdir(parents=True)
        (home / "media" / folder / f"{quote(AUDIO)}~128k.mp3").write_bytes(bytes(2_504))
    video = home / "media" / VIDEO
    video.mkdir(parents=True)
    shutil.copy(SRT, video / f"{VIDEO}.srt")
    return settings


@pytest.fixture(scope="module")
def media_url(media_settings: Settings) -> Iterator[str]:
    with running(create_app(media_settings)) as url:
        yield url


@pytest.fixture(scope="module")
def client(media_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=media_url, timeout=30) as http:
        yield http


def item(client: httpx.Client, nasa_id: str) -> tuple[str, Page]:
    response = client.get("/item/" + quote(nasa_id, safe=""))
    assert response.status_code == 200
    return response.text, assert_safe(response.text)


# --- the mirror's door -------------------------------------------------------------


def test_local_media_lists_complete_files_only(media_settings: Settings, tmp_path: Path) -> None:
    with Library(media_settings) as library:
        assert library.local_media(IMAGE) == {
            f"{IMAGE}~medium.jpg": f"/media/{IMAGE}/{IMAGE}~medium.jpg",
            f"{IMAGE}~thumb.jpg": f"/media/{IMAGE}/{IMAGE}~thumb.jpg",
        }
        assert library.local_media(VIDEO_REMOTE) == {}
        assert library.local_media("..") == {} and library.local_media("") == {}


# --- cards -------------------------------------------------------------------------


def test_card_shows_the_mirrored_thumbnail_else_upstreams(client: httpx.Client) -> None:
    html = client.get("/", params={"q": "PIA04778 OR PIA13083", "collapse": "none"}).text
    page = assert_safe(html)
    sources = [a["src"] for a in page.all("img")]
    assert f"/media/{IMAGE}/{IMAGE}~thumb.jpg" in sources
    assert "https://images-assets.nasa.gov/image/PIA13083/PIA13083~thumb.jpg" in sources


def test_placeholders_say_what_the_item_is(client: httpx.Client) -> None:
    html = client.get("/", params={"media_type": "audio", "collapse": "none"}).text
    marks = re.findall(r'<span class="ph-mark">([^<]*)</span>', html)
    assert marks and all(len(m) == 1 and m.isalnum() for m in marks)
    tints = set(re.findall(r'class="thumb thumb-audio (hue-\d)"', html))
    assert len(tints) > 1  # not one navy tile everywhere
    image_html = client.get("/", params={"q": "Saturn rings", "collapse": "none"}).text
    marks = re.findall(r'<span class="ph-mark">([^<]*)</span>', image_html)
    titles = re.findall(r'<span class="title">(?:<mark>)?(.)', image_html)  # a highlight
    assert marks[:5] == [t.upper() for t in titles[:5]]


def test_every_placeholder_tint_passes_wcag_aa() -> None:
    css = CSS.read_text()
    tints = re.findall(r"\.hue-\d \{ --ph: (#[0-9a-f]{6}); \}", css)
    assert len(tints) == 8
    fg = re.search(r"--ph-fg: (#[0-9a-f]{6})", css)
    assert fg is not None
    for tint in tints:
        assert contrast(fg.group(1), tint) >= 4.5, tint


# --- item pages --------------------------------------------------------------------


def test_image_page_shows_the_mirrored_medium_and_every_rendition(client: httpx.Client) -> None:
    html, page = item(client, IMAGE)
    assert page.all("img")[0]["src"] == f"/media/{IMAGE}/{IMAGE}~medium.jpg"
    downloads = html.split("<h2>Downloads</h2>", 1)[1].split("</ul>", 1)[0]
    links = re.findall(r'<a href="([^"]+)"[^>]*download>([^<]+)</a>', downloads)
    assert [name for _, name in links] == IMAGE_FILES
    hrefs = dict((name, href) for href, name in links)
    assert hrefs[f"{IMAGE}~thumb.jpg"] == f"/media/{IMAGE}/{IMAGE}~thumb.jpg"
    assert hrefs[f"{IMAGE}~orig.jpg"].startswith("https://images-assets.nasa.gov/")  # .part
    assert f"{IMAGE}~orig.jpg.part" not in html
    size = len(jpeg(320, 240, (200, 80, 40)))
    assert f"{size / 1000:.1f} kB" in downloads
    assert "credit: <span data-credit>NASA/JPL/Arizona State University</span>" in html


def test_video_page_plays_with_captions_as_webvtt(client: httpx.Client) -> None:
    html, page = item(client, VIDEO)
    (video,) = page.all("video")
    assert video["src"] == (f"https://images-assets.nasa.gov/video/{VIDEO}/{VIDEO}~mobile.mp4")
    (track,) = page.all("track")
    assert track["kind"] == "captions" and "default" in track
    response = client.get(track["src"] or "")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/vtt")
    assert response.text.startswith("WEBVTT\n\n00:00:01.230 --> 00:00:02.670\n[ music ]")
    assert f"{VIDEO}.srt" in html and "mirrored" in html


def test_video_without_mirrored_captions_links_upstreams(client: httpx.Client) -> None:
    html, page = item(client, VIDEO_REMOTE)
    assert page.all("video") and not page.all("track")
    assert f'href="https://images-assets.nasa.gov/video/{VIDEO_REMOTE}/{VIDEO_REMOTE}.srt"' in html
    response = client.get("/item/" + VIDEO_REMOTE + "/captions.vtt")
    assert response.status_code == 404 and "nivl media fetch" in response.text


def test_audio_page_folds_its_transcript_into_paragraphs(client: httpx.Client) -> None:
    html, page = item(client, AUDIO)
    (audio,) = page.all("audio")
    local = audio["src"] or ""
    assert local.startswith("/media/Ep56_Dr%") and local.endswith("Spaceman~128k.mp3")
    downloads = html.split("<h2>Downloads</h2>", 1)[1].split("</ul>", 1)[0]
    assert downloads.count("~128k.mp3</a>") == 1  # the manifest's name and the local copy, one
    assert f'<a href="{local}" download>{AUDIO}~128k.mp3</a> <span class="n">2.5 kB</span>' in (
        downloads
    )
    description = html.split('<div class="description">', 1)[1].split("</div>", 1)[0]
    shown, folded = description.split("<details", 1)
    assert 1 <= shown.count("<p>") <= 3 and len(shown) < 2_000
    assert folded.count("<p>") > 20  # the transcript keeps its speaker turns
    assert "<summary>Full transcript" in folded and " open" not in folded.split(">", 1)[0]
    assert "<p>Mike Barratt: My pleasure.</p>" in folded


# --- pure parts --------------------------------------------------------------------


def test_srt_to_vtt_tolerates_upstreams_files() -> None:
    srt = (
        "\ufeff1\r\n00:00:01,5 --> 00:00:03,250\r\nHello -->\r\nthere\r\n\r\n\r\n"
        "2:03,000 --> 2:04,000\r\nno number\r\n"
    )
    assert srt_to_vtt(srt) == (
        "WEBVTT\n\n00:00:01.500 --> 00:00:03.250\nHello →\nthere\n\n"
        "00:02:03.000 --> 00:02:04.000\nno number\n\n"
    )
    assert srt_to_vtt("WEBVTT\n\n00:01.000 --> 00:02.000\nhi") == (
        "WEBVTT\n\n00:01.000 --> 00:02.000\nhi\n"
    )


@pytest.mark.parametrize(
    ("fields", "credit"),
    [
        ({"center": "JPL"}, "NASA/JPL-Caltech"),
        ({"center": "HQ", "photographer": "Bill Ingalls"}, "NASA/Bill Ingalls"),
        ({"center": "HQ", "photographer": "NASA/Joel Kowsky"}, "NASA/Joel Kowsky"),
        ({"center": "GSFC"}, "NASA/Goddard Space Flight Center"),
        ({"center": "JPL", "photographer": "Ian O'Neill"}, "NASA/JPL-Caltech/Ian O'Neill"),
        (
            {"center": "JPL", "secondary_creator": "NASA/JPL/Arizona State University"},
            "NASA/JPL/Arizona State University",
        ),
        ({"center": "HQ", "secondary_creator": "Someone Else"}, "NASA"),
        ({}, "NASA"),
    ],
)
def test_credit_line_follows_nasas_guidelines(fields: dict[str, str], credit: str) -> None:
    item: dict[str, Any] = {"data": [{"nasa_id": "x", "media_type": "image", **fields}]}
    assert credit_line(parse_item(item, raw=json.dumps(item))) == credit


def test_paragraphs_never_split_a_link() -> None:
    from markupsafe import Markup

    body = Markup('one\n<a href="https://x.org/">a\nlink</a> two\nthree')
    assert [str(p) for p in text_paragraphs(body)] == [
        "one",
        '<a href="https://x.org/">a link</a> two',
        "three",
    ]


def test_search_page_shows_a_thumbnail_mirrored_after_it_was_cached(
    client: httpx.Client, media_settings: Settings, shared_items: list[dict[str, Any]]
) -> None:
    nasa_id = next(
        i["data"][0]["nasa_id"]
        for i in shared_items
        if i["data"][0]["media_type"] == "image" and i["data"][0]["nasa_id"] != IMAGE
    )
    params = {"nasa_id": nasa_id, "collapse": "none"}
    before = assert_safe(client.get("/", params=params).text).all("img")
    assert before[0]["src"].startswith("https://images-assets.nasa.gov/")
    folder = media_settings.home / "media" / nasa_id
    folder.mkdir()
    (folder / f"{nasa_id}~thumb.jpg").write_bytes(jpeg(320, 240, (90, 90, 90)))
    after = assert_safe(client.get("/", params=params).text).all("img")
    assert (
        after[0]["src"] == f"/media/{quote(nasa_id, safe='')}/{quote(nasa_id, safe='')}~thumb.jpg"
    )
