"""IIIF Presentation 3 (issue 18 req 3): manifests and collections over HTTP on loopback.

The home is a copy of the shared records' home with real recorded asset manifests stored
(PIA13083, PIA04778) and files placed in HOME/media as the media fetcher leaves them: real
NASA photographs (scikit-image's) at sizes chosen here, and an MP4 whose header says 45 s.
Every document is checked by parsing it back into iiif-prezi3's Presentation 3 model.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from nivl import Library, Settings
from nivl.web.app import create_app

from .conftest import RECORDS, RESPONSES
from .servers import running
from .test_ui import HOSTILE_ID, PWN, hostile_url  # noqa: F401  (a fixture)

CHOICE = "PIA13083"  # recorded manifest: orig, medium, small, thumb, metadata.json (http://)
ONE = "PIA04778"  # recorded manifest: orig, metadata.json
BARE = "0002272"  # no manifest stored: the record's own preview link only
VIDEO = "114_SunMagFieldFlip"
AUDIO = "Ep56_Dr Spaceman"  # a space in the id
FIELDS = "AC75-2582"  # photographer, album (a string), keywords, location
ALBUM = "NASA ScienceCasts"
NOC_US = "http://rightsstatements.org/vocab/NoC-US/1.0/"
ASSETS = "https://images-assets.nasa.gov"
CSP = (
    "default-src 'self'; img-src 'self' https:; media-src 'self' https:; script-src 'self'; "
    "style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class MarkupCheck(HTMLParser):
    """The tags of an HTML value, failing on event-handler attributes and non-http links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, val in attrs:
            assert not name.startswith("on"), (tag, name)
            if name == "href":
                assert (val or "").startswith("https://"), val

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @classmethod
    def check(cls, value: str) -> list[str]:
        parser = cls()
        parser.feed(value)
        return parser.tags

    @classmethod
    def text_of(cls, value: str) -> str:
        parser = cls()
        parser.feed(value)
        return "".join(parser.text)


def photo(width: int, height: int) -> bytes:
    """A real NASA photograph (the Hubble deep field scikit-image ships) at this size."""
    import importlib.util

    from PIL import Image

    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    with Image.open(folder / "hubble_deep_field.jpg") as image:
        out = io.BytesIO()
        image.convert("RGB").resize((width, height)).save(out, "JPEG", quality=85)
    return out.getvalue()


def mp4(seconds: int, timescale: int = 600) -> bytes:
    """The boxes of an MP4 a player reads the length from: ftyp, mdat, then moov/mvhd
    (version 0: creation, modification, timescale, duration), as many encoders lay it out."""
    mvhd = bytes(4) + struct.pack(">IIII", 0, 0, timescale, seconds * timescale) + bytes(80)
    mvhd = struct.pack(">I4s", 8 + len(mvhd), b"mvhd") + mvhd
    moov = struct.pack(">I4s", 8 + len(mvhd), b"moov") + mvhd
    ftyp = struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 512)
    mdat = struct.pack(">I4s", 8 + 4000, b"mdat") + bytes(4000)
    return ftyp + mdat + moov


def manifest_of(nasa_id: str, kind: str, names: list[str]) -> str:
    base = f"{ASSETS}/{kind}/{quote(nasa_id)}/"
    items = [{"href": base + quote(name)} for name in names]
    return json.dumps({"collection": {"version": "1.0", "href": base, "items": items}})


@pytest.fixture(scope="module")
def iiif_settings(loaded_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("iiif") / "home"
    shutil.copytree(loaded_settings.home, home)
    settings = Settings.from_env({}, home=str(home), upstream_url="http://127.0.0.1:9")
    with Library(settings) as library:
        for nasa_id, recorded in (
            (CHOICE, "asset__PIA13083__http-hrefs__src-RobEato.json"),
            (ONE, "asset__PIA04778__src-NickBansal.json"),
        ):
            library.remember_manifest(nasa_id, (RESPONSES / recorded).read_text())
        names = [f"{VIDEO}~orig.mp4", f"{VIDEO}~mobile.mp4", f"{VIDEO}~thumb.jpg", f"{VIDEO}.srt"]
        library.remember_manifest(VIDEO, manifest_of(VIDEO, "video", names))
        names = [f"{AUDIO}~orig.wav", f"{AUDIO}~128k.mp3", "metadata.json"]
        library.remember_manifest(AUDIO, manifest_of(AUDIO, "audio", names))
    media = home / "media"
    (media / CHOICE).mkdir(parents=True)
    (media / CHOICE / f"{CHOICE}~medium.jpg").write_bytes(photo(640, 731))
    (media / CHOICE / f"{CHOICE}~thumb.jpg").write_bytes(photo(100, 114))
    (media / CHOICE / f"{CHOICE}~orig.jpg.part").write_bytes(b"\xff\xd8 half a download")
    (media / ONE).mkdir()
    (media / ONE / f"{ONE}~orig.jpg").write_bytes(photo(1600, 1200))
    (media / VIDEO).mkdir()
    (media / VIDEO / f"{VIDEO}~mobile.mp4").write_bytes(mp4(45))
    shutil.copy(
        RESPONSES / "captions-srt__172_ISS-Slosh__src-aschleg.srt", media / VIDEO / f"{VIDEO}.srt"
    )
    return settings


@pytest.fixture(scope="module")
def iiif_url(iiif_settings: Settings) -> Iterator[str]:
    with running(create_app(iiif_settings)) as url:
        yield url


@pytest.fixture(scope="module")
def client(iiif_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=iiif_url, timeout=60) as http:
        yield http


def get_manifest(client: httpx.Client, nasa_id: str) -> dict[str, Any]:
    response = client.get(f"/iiif/{quote(nasa_id, safe='')}/manifest.json")
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    document: dict[str, Any] = response.json()
    from iiif_prezi3 import Manifest

    Manifest.model_validate(document)  # the Presentation 3 model, as a viewer reads it
    return document


def canvas_of(document: dict[str, Any]) -> dict[str, Any]:
    (canvas,) = document["items"]
    canvas_: dict[str, Any] = canvas
    return canvas_


def painted(canvas: dict[str, Any]) -> Any:
    (page,) = canvas["items"]
    (annotation,) = page["items"]
    assert annotation["motivation"] == "painting"
    assert annotation["target"] == canvas["id"]
    return annotation["body"]


def value(document: dict[str, Any], label: str) -> list[str]:
    for row in document.get("metadata", []):
        if row["label"] == {"en": [label]}:
            values: list[str] = row["value"]["none"]
            return values
    raise AssertionError(f"no {label!r} in the metadata")


def largest_group(client: httpx.Client) -> dict[str, Any]:
    """The biggest event group among the shared records."""
    params = {"media_type": "image,video,audio", "collapse": "event", "page_size": "1000"}
    page = client.get("/search", params=params).json()
    groups = [item["group"] for item in page["collection"]["items"] if "group" in item]
    found: dict[str, Any] = max(groups, key=lambda g: g["size"])
    return found


# --- manifests ---------------------------------------------------------------------------


def test_image_manifest_paints_the_renditions_as_one_choice_with_mirrored_sizes(
    client: httpx.Client, iiif_url: str
) -> None:
    document = get_manifest(client, CHOICE)
    assert document["@context"] == "http://iiif.io/api/presentation/3/context.json"
    assert document["id"] == f"{iiif_url}/iiif/{CHOICE}/manifest.json"
    assert document["type"] == "Manifest"
    assert document["label"] == {"en": ["Thor Helmet"]}
    assert document["summary"]["en"][0].startswith(
        "This heroic image from from NASA Wide-field Infrared Survey Explorer"
    )
    assert document["rights"] == NOC_US
    credit = document["requiredStatement"]
    assert credit["label"] == {"en": ["Credit"]}
    assert credit["value"]["en"][0].startswith("<span>NASA/JPL-Caltech/UCLA (<a href=")
    canvas = canvas_of(document)
    assert (canvas["width"], canvas["height"]) == (640, 731)  # the mirrored medium's size
    body = painted(canvas)
    assert body["type"] == "Choice"
    local = f"{iiif_url}/media/{CHOICE}/{CHOICE}"
    upstream = f"{ASSETS}/image/{CHOICE}/{CHOICE}"  # https, though the manifest says http
    assert body["items"] == [
        {
            "id": f"{local}~medium.jpg",
            "type": "Image",
            "height": 731,
            "width": 640,
            "format": "image/jpeg",
        },
        {
            "id": f"{local}~thumb.jpg",
            "type": "Image",
            "height": 114,
            "width": 100,
            "format": "image/jpeg",
        },
        {"id": f"{upstream}~orig.jpg", "type": "Image", "format": "image/jpeg"},
        {"id": f"{upstream}~small.jpg", "type": "Image", "format": "image/jpeg"},
    ]
    thumbnail = {
        "id": f"{local}~thumb.jpg",
        "type": "Image",
        "height": 114,
        "width": 100,
        "format": "image/jpeg",
    }
    assert document["thumbnail"] == [thumbnail] and canvas["thumbnail"] == [thumbnail]
    rendering = {r["id"]: (r["type"], r.get("format")) for r in document["rendering"]}
    assert rendering[f"{ASSETS}/image/{CHOICE}/metadata.json"] == ("Dataset", "application/json")
    assert len(rendering) == 5  # every file the manifest names, and no .part
    assert document["homepage"][0]["id"] == f"{iiif_url}/item/{CHOICE}"


def test_every_mirrored_url_in_a_manifest_is_served(client: httpx.Client) -> None:
    document = get_manifest(client, CHOICE)
    ids = [item["id"] for item in painted(canvas_of(document))["items"]]
    local = [i for i in ids if "/media/" in i]
    assert len(local) == 2
    for url in local:
        response = client.get(url)
        assert response.status_code == 200 and response.content[:2] == b"\xff\xd8"


def test_one_rendition_is_painted_alone_at_its_size(client: httpx.Client, iiif_url: str) -> None:
    canvas = canvas_of(get_manifest(client, ONE))
    assert (canvas["width"], canvas["height"]) == (1600, 1200)
    assert painted(canvas) == {
        "id": f"{iiif_url}/media/{ONE}/{ONE}~orig.jpg",
        "type": "Image",
        "height": 1200,
        "width": 1600,
        "format": "image/jpeg",
    }


def test_a_record_with_no_manifest_or_mirror_gets_a_placeholder_canvas(
    client: httpx.Client,
) -> None:
    document = get_manifest(client, BARE)
    assert document["label"] == {"en": ["History of Chandra X-Ray Observatory"]}
    canvas = canvas_of(document)
    assert (canvas["width"], canvas["height"]) == (1000, 1000)
    thumb = f"{ASSETS}/image/{BARE}/{BARE}~thumb.jpg"
    assert painted(canvas) == {"id": thumb, "type": "Image", "format": "image/jpeg"}
    assert document["requiredStatement"]["value"]["en"][0].startswith(
        "<span>NASA/Marshall Space Flight Center ("
    )


def test_video_is_a_time_based_canvas_with_the_mirrored_files_duration(
    client: httpx.Client, iiif_url: str
) -> None:
    canvas = canvas_of(get_manifest(client, VIDEO))
    assert canvas["duration"] == 45.0  # from the mirrored MP4's mvhd box
    assert (canvas["width"], canvas["height"]) == (1280, 720)
    assert painted(canvas) == {
        "id": f"{iiif_url}/media/{VIDEO}/{VIDEO}~mobile.mp4",
        "type": "Video",
        "duration": 45.0,
        "format": "video/mp4",
    }
    assert canvas["thumbnail"][0]["id"] == f"{ASSETS}/video/{VIDEO}/{VIDEO}~thumb.jpg"
    (page,) = canvas["annotations"]
    (captions,) = page["items"]
    assert captions["motivation"] == "supplementing" and captions["target"] == canvas["id"]
    vtt = f"{iiif_url}/item/{VIDEO}/captions.vtt"  # the mirrored SRT, as WebVTT
    assert captions["body"] == {
        "id": vtt,
        "type": "Text",
        "language": "en",
        "format": "text/vtt",
        "label": {"en": ["English"]},
    }
    served = client.get(vtt)
    assert served.status_code == 200 and served.text.startswith("WEBVTT")


def test_audio_is_a_time_based_canvas_with_a_placeholder_duration(
    client: httpx.Client, iiif_url: str
) -> None:
    document = get_manifest(client, AUDIO)
    assert document["id"] == f"{iiif_url}/iiif/Ep56_Dr%20Spaceman/manifest.json"
    assert value(document, "NASA ID") == ["Ep56_Dr Spaceman"]
    canvas = canvas_of(document)
    assert canvas["duration"] == 4 * 3600.0  # the length is not known: nothing is cut short
    assert "width" not in canvas and "height" not in canvas
    assert "annotations" not in canvas  # no captions mirrored
    assert painted(canvas) == {
        "id": f"{ASSETS}/audio/Ep56_Dr%20Spaceman/Ep56_Dr%20Spaceman~128k.mp3",
        "type": "Sound",
        "format": "audio/mpeg",
    }


def test_metadata_gives_the_records_fields(client: httpx.Client) -> None:
    document = get_manifest(client, FIELDS)
    assert value(document, "NASA ID") == ["AC75-2582"]
    assert value(document, "Center") == ["ARC"]
    assert value(document, "Date") == ["1995-07-14T00:00:00Z"]
    assert value(document, "Keywords") == [
        "Ames",
        "ARC",
        "Aeronautics",
        "40x80ft",
        "Wind Tunnel",
        "SSV",
        "Shuttle",
        "Orbiter",
    ]
    assert value(document, "Photographer") == ["Jones"]
    assert value(document, "Album") == ["Ames Aeronautics"]
    assert value(document, "Location") == ["Ames Research Center"]
    credit = document["requiredStatement"]["value"]["en"][0]
    assert credit.startswith("<span>NASA/Jones (")
    assert 'href="https://www.nasa.gov/nasa-brand-center/images-and-media/"' in credit


def test_json_ld_is_sent_when_asked_for(client: httpx.Client) -> None:
    plain = client.get(f"/iiif/{ONE}/manifest.json")
    assert plain.headers["content-type"] == "application/json"
    asked = client.get(f"/iiif/{ONE}/manifest.json", headers={"Accept": "application/ld+json"})
    assert asked.headers["content-type"] == (
        'application/ld+json;profile="http://iiif.io/api/presentation/3/context.json"'
    )
    assert asked.json() == plain.json()


def test_hostile_record_gives_plain_text_and_no_script(hostile_url: str) -> None:  # noqa: F811
    response = httpx.get(f"{hostile_url}/iiif/{quote(HOSTILE_ID, safe='')}/manifest.json")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["label"]["en"][0] == "Hostile moon x"  # labels are plain text
    # What a IIIF client renders as HTML (a value between < and >) holds no live markup,
    # and shows the record's text as it is.
    shown = [document["summary"], document["requiredStatement"]["value"]]
    shown += [row["value"] for row in document["metadata"]]
    rendered = []
    for language_map in shown:
        for text in (t for texts in language_map.values() for t in texts):
            if text.startswith("<") and text.endswith(">"):
                tags = MarkupCheck.check(text)
                assert set(tags) <= {"span", "a"}, text
                rendered.append(MarkupCheck.text_of(text))
            else:
                rendered.append(text)
    assert HOSTILE_ID in rendered  # the NASA ID value reads as the id, escaped or not
    assert f"<script>{PWN}</script>" in rendered  # a keyword, shown as the text it is
    assert "Moon click me safe link" in " ".join(rendered)


# --- collections -------------------------------------------------------------------------


def test_album_collection_lists_every_members_manifest(client: httpx.Client, iiif_url: str) -> None:
    expected = set()
    for line in RECORDS.read_text().splitlines():
        data = json.loads(line)["data"][0]
        albums = data.get("album") or []
        if ALBUM in ([albums] if isinstance(albums, str) else albums):
            expected.add(f"{iiif_url}/iiif/{quote(data['nasa_id'], safe='')}/manifest.json")
    assert len(expected) == 11
    response = client.get(f"/iiif/album/{quote(ALBUM, safe='')}/manifest.json")
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*"
    document = response.json()
    from iiif_prezi3 import Collection

    Collection.model_validate(document)
    assert document["id"] == f"{iiif_url}/iiif/album/NASA%20ScienceCasts/manifest.json"
    assert document["type"] == "Collection"
    assert document["label"] == {"en": ["Album: NASA ScienceCasts"]}
    assert {item["id"] for item in document["items"]} == expected
    assert all(item["type"] == "Manifest" for item in document["items"])
    first = min(document["items"], key=lambda item: item["id"])
    assert client.get(first["id"]).status_code == 200


def test_group_collection_lists_the_groups_members(client: httpx.Client, iiif_url: str) -> None:
    group = largest_group(client)
    assert group["size"] >= 3
    members = client.get(f"/groups/{group['id']}", params={"page_size": 1000}).json()
    expected = {
        f"{iiif_url}/iiif/{quote(item['data'][0]['nasa_id'], safe='')}/manifest.json"
        for item in members["collection"]["items"]
    }
    response = client.get(f"/iiif/group/{group['level']}/{group['id']}/manifest.json")
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*"
    document = response.json()
    from iiif_prezi3 import Collection

    Collection.model_validate(document)
    assert document["type"] == "Collection"
    assert {item["id"] for item in document["items"]} == expected
    assert len(document["items"]) == group["size"]


def test_group_and_album_pages_link_their_collections(client: httpx.Client) -> None:
    group = largest_group(client)
    html = client.get(f"/group/{group['level']}/{group['id']}").text
    assert f'href="/iiif/group/{group["level"]}/{group["id"]}/manifest.json"' in html
    html = client.get("/", params={"album": ALBUM}).text
    assert 'href="/iiif/album/NASA%20ScienceCasts/manifest.json"' in html
    html = client.get("/item/" + quote(AUDIO, safe="")).text
    assert 'href="/iiif/Ep56_Dr%20Spaceman/manifest.json"' in html


# --- errors, hostile ids, headers --------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/iiif/no-such-record/manifest.json",
        "/iiif/PIA13083%20/manifest.json",  # ids are never stripped: this is another id
        "/iiif/group/event/123456789/manifest.json",
        "/iiif/group/event/99999999999999999999999/manifest.json",
        "/iiif/group/event/abc/manifest.json",
        "/iiif/group/nonsense/1/manifest.json",
        "/iiif/album/No%20Such%20Album/manifest.json",
        "/iiif/album/nasa%20sciencecasts/manifest.json",  # albums are case-sensitive
        "/iiif/..%2F..%2Fetc%2Fpasswd/manifest.json",
        "/iiif/%2e%2e/manifest.json",
        "/iiif/..%2Fnivl.db/manifest.json",
        "/iiif/album/..%2F..%2Fetc%2Fpasswd/manifest.json",
        "/iiif/x%00y/manifest.json",
        "/iiif/line%0Abreak/manifest.json",
        "/iiif/" + "A" * 20_000 + "/manifest.json",
    ],
)
def test_unknown_and_hostile_ids_are_404_json_with_a_reason(
    client: httpx.Client, path: str
) -> None:
    for origin in ({}, {"Origin": "https://viewer.example"}):
        response = client.get(path, headers=origin)
        assert response.status_code == 404, (path, response.text[:200])
        assert response.headers["content-type"] == "application/json"
        assert response.json()["reason"]
        assert response.headers["access-control-allow-origin"] == "*"


def test_a_host_header_that_is_no_url_is_a_400_not_a_500(client: httpx.Client) -> None:
    response = client.get(f"/iiif/{ONE}/manifest.json", headers={"Host": "ex%20ample"})
    assert response.status_code == 400, response.text
    assert "no URL" in response.json()["reason"]


def test_a_viewer_on_another_origin_may_read_manifests(client: httpx.Client) -> None:
    origin = {"Origin": "https://projectmirador.org"}
    preflight = client.options(
        f"/iiif/{ONE}/manifest.json",
        headers={**origin, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    response = client.get(f"/iiif/{ONE}/manifest.json", headers=origin)
    assert response.headers["access-control-allow-origin"] == "*"


def test_the_pages_content_security_policy_is_unchanged(client: httpx.Client) -> None:
    for path in (f"/item/{CHOICE}", "/?album=NASA%20ScienceCasts", "/"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-security-policy"] == CSP
    manifest = client.get(f"/iiif/{CHOICE}/manifest.json")
    assert "content-security-policy" not in manifest.headers  # JSON, read by other origins


def big_png_header(width: int, height: int) -> bytes:
    """The head of a PNG this size: signature, IHDR, the start of IDAT (only sizes are read)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(64))  # the start of the pixel data, never decoded
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)


def test_sizes_of_pictures_past_pillows_bomb_limit_are_read(tmp_path: Path) -> None:
    from PIL import Image

    from nivl.iiif import image_size

    path = tmp_path / "huge~orig.png"
    path.write_bytes(big_png_header(30_000, 24_000))  # 720 Mpx: NASA's biggest mosaics
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)  # what reading the size the usual way does
    assert image_size(path) == (30_000, 24_000)
    (tmp_path / "not-a-picture.jpg").write_bytes(b"<html>an error page</html>")
    assert image_size(tmp_path / "not-a-picture.jpg") is None
    assert image_size(tmp_path / "missing.jpg") is None


@pytest.mark.parametrize(
    "damaged",
    [
        mp4(45)[: 16 + 4008 + 8 + 8],  # cut short right after the mvhd box's header
        b"".join(struct.pack(">I4s", 8 * (5000 - i), b"moov") for i in range(5000)),  # nested
    ],
    ids=["truncated", "nested-moov"],
)
def test_a_damaged_mirrored_video_gives_a_manifest_not_a_500(
    iiif_settings: Settings, tmp_path: Path, damaged: bytes
) -> None:
    home = tmp_path / "home"
    shutil.copytree(iiif_settings.home, home, ignore=shutil.ignore_patterns("write.lock"))
    (home / "media" / VIDEO / f"{VIDEO}~mobile.mp4").write_bytes(damaged)
    settings = Settings.from_env({}, home=str(home), upstream_url="http://127.0.0.1:9")
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        canvas = canvas_of(get_manifest(http, VIDEO))
    assert canvas["duration"] == 4 * 3600.0  # unknown, as for a video not mirrored


@pytest.mark.parametrize("damaged", [b"", b"\xff\xd8\xff"], ids=["empty", "three-bytes"])
def test_a_short_mirrored_picture_gives_a_manifest_not_a_500(
    iiif_settings: Settings, tmp_path: Path, damaged: bytes
) -> None:
    # Pillow's format checks read a few bytes of the file's start: BMP's needs four.
    home = tmp_path / "home"
    shutil.copytree(iiif_settings.home, home, ignore=shutil.ignore_patterns("write.lock"))
    (home / "media" / CHOICE / f"{CHOICE}~medium.jpg").write_bytes(damaged)
    settings = Settings.from_env({}, home=str(home), upstream_url="http://127.0.0.1:9")
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        document = get_manifest(http, CHOICE)
    assert f"{CHOICE}~medium.jpg" in json.dumps(document)  # listed, without a size
