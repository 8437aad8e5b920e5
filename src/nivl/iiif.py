"""IIIF Presentation 3 documents of the mirror's records, built (and validated) with
iiif-prezi3: a Manifest per record, a Collection per group or album.

A record is one Canvas. Its renditions (``~orig``, ``~large``... ``~thumb``) are one picture
at several sizes, so an image canvas paints a ``Choice`` of them, the preferred first (the
mirrored copies, then large, medium, original, small, thumbnail); each rendition gives its
width and height when nivl can know them, which is when the file is mirrored (read from the
file's header with Pillow: the records and manifests upstream serves carry no sizes). The
canvas takes the largest size known; with none, it is a ``PLACEHOLDER_SIZE`` square, which a
viewer shows the picture inside at its own proportions. A video or audio record is a
time-based canvas; its ``duration`` comes from the mirrored MP4's header when there is one,
else is ``PLACEHOLDER_DURATION`` (the records give no length): long enough that a viewer never
cuts a broadcast short, since content past a canvas's duration is not played. Every file the
manifest names (captions, metadata.json and the formats a browser cannot show as well) is
listed in ``rendering``, for download. Mirrored captions (SRT, served as WebVTT by the item
page's ``/item/{id}/captions.vtt``) supplement a time-based canvas as a text track.

Rights: US government works are not under copyright in the United States, and NASA's media
guidelines ask for a credit rather than a licence; IIIF wants the ``rights`` value from
Creative Commons or RightsStatements.org, and the statement that says exactly that is
RightsStatements.org's "No Copyright - United States" (NoC-US). The guidelines are linked
from ``requiredStatement``, beside the credit line.
"""

from __future__ import annotations

import functools
import html
import os
import struct
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .credit import credit_line
from .errors import BadRequest
from .records import Record

RIGHTS = "http://rightsstatements.org/vocab/NoC-US/1.0/"
GUIDELINES = "https://www.nasa.gov/nasa-brand-center/images-and-media/"
PROVIDER_HOME = "https://images.nasa.gov/"
#: Width and height of an image canvas when no rendition's size is known (pixels).
PLACEHOLDER_SIZE = 1000
#: A video canvas's size when unknown: 16:9, the shape of NASA's HD video.
PLACEHOLDER_VIDEO = (1280, 720)
#: Seconds: a time-based canvas's duration when the media's own length is unknown.
PLACEHOLDER_DURATION = 4 * 3600.0
#: How a viewer should prefer the renditions of one picture (the mirrored ones come first).
IMAGE_ORDER = ("~large.", "~medium.", "~orig.", "~small.", "~thumb.")
VIDEO_ORDER = ("~mobile.mp4", "~small.mp4", "~medium.mp4", "~large.mp4", "~orig.mp4")
AUDIO_ORDER = ("~128k.mp3", "~64k.mp3", "~orig.mp3", "~128k.m4a", "~orig.m4a", "~orig.wav")
FORMATS = {
    ".jpg": ("Image", "image/jpeg"),
    ".jpeg": ("Image", "image/jpeg"),
    ".png": ("Image", "image/png"),
    ".gif": ("Image", "image/gif"),
    ".webp": ("Image", "image/webp"),
    ".tif": ("Image", "image/tiff"),
    ".tiff": ("Image", "image/tiff"),
    ".mp4": ("Video", "video/mp4"),
    ".mov": ("Video", "video/quicktime"),
    ".mp3": ("Sound", "audio/mpeg"),
    ".m4a": ("Sound", "audio/mp4"),
    ".wav": ("Sound", "audio/wav"),
    ".vtt": ("Text", "text/vtt"),
    ".srt": ("Text", "application/x-subrip"),
    ".json": ("Dataset", "application/json"),
}
#: What a browser shows in an ``<img>``: the only formats painted on an image canvas.
SHOWN_IMAGES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MEDIA_KINDS = {"video": "Video", "audio": "Sound"}
CONTEXT = "http://iiif.io/api/presentation/3/context.json"


@dataclass(frozen=True)
class File:
    """One rendition: its name, the URL a viewer loads (the mirrored copy, else upstream's)
    and the mirrored file, from which its size is read."""

    name: str
    url: str
    path: Path | None = None

    @property
    def kind(self) -> tuple[str, str] | None:
        """(IIIF type, MIME type) from the name's extension, None for an unknown one."""
        return FORMATS.get(os.path.splitext(self.name.lower())[1])


@dataclass(frozen=True)
class Member:
    """One record as a collection lists it."""

    nasa_id: str
    label: str
    thumbnail: str | None = None


def is_url(value: str) -> bool:
    """Whether iiif-prezi3 takes ``value`` as an id (a URI pydantic can parse): a rendition
    whose upstream href is no URL is left out rather than failing the whole manifest."""
    from pydantic import ValidationError

    try:
        _url_adapter().validate_python(value)
    except ValidationError:
        return False
    return True


@functools.cache
def _url_adapter() -> Any:
    from pydantic import AnyUrl, TypeAdapter

    return TypeAdapter(AnyUrl)


def check_base(base: str) -> None:
    """Every id starts with the server's own URL, from the request's Host (or the public
    URL setting): one that is no URL is a bad request, not a failure of nivl's."""
    if not is_url(base + "/iiif/"):
        raise BadRequest(f"The server's URL as this request gives it ({base!r}) is no URL")


def manifest_url(base: str, nasa_id: str) -> str:
    return f"{base}/iiif/{quote(nasa_id, safe='')}/manifest.json"


def group_url(base: str, level: str, group_id: int) -> str:
    return f"{base}/iiif/group/{quote(level, safe='')}/{group_id}/manifest.json"


def album_url(base: str, name: str) -> str:
    return f"{base}/iiif/album/{quote(name, safe='')}/manifest.json"


def manifest(
    record: Record,
    files: Sequence[File],
    *,
    base: str,
    label: str,
    summary: str,
    homepage: str,
    thumbnail: str | None = None,
    captions: str | None = None,
    record_json: str | None = None,
) -> str:
    """The record's Manifest as JSON text (``label`` and ``summary`` already plain text);
    ``captions``, a WebVTT file's URL, supplements a video or audio canvas.

    ``summary`` is what a viewer's panel shows, so it comes shortened (a transcript runs to
    90 kB); the whole description stays one link away: ``seeAlso`` names ``record_json``
    (the record as the API gives it), and ``homepage`` the item page."""
    from iiif_prezi3 import (
        Annotation,
        AnnotationPage,
        Canvas,
        Choice,
        Homepage,
        KeyValueString,
        LinkedResource,
        Manifest,
        Provider,
    )

    check_base(base)
    see_also = (
        [
            LinkedResource(
                id=record_json,
                type="Dataset",
                label=_text("The whole record, as JSON (its full description)"),
                format="application/json",
            )
        ]
        if record_json and is_url(record_json)
        else None
    )
    files = [f for f in files if is_url(f.url)]
    thumbnail = thumbnail if thumbnail and is_url(thumbnail) else None
    own = manifest_url(base, record.nasa_id)
    root = own.rsplit("/", 1)[0]
    canvas_id = f"{root}/canvas/1"
    shape, bodies = _painting(record, files)
    body: Any = bodies[0] if len(bodies) == 1 else Choice(items=bodies) if bodies else None
    thumbs = _thumbnails(files, thumbnail)
    canvas = Canvas(
        id=canvas_id,
        label=_text(label),
        **shape,
        thumbnail=thumbs or None,
        items=[
            AnnotationPage(
                id=f"{root}/page/1",
                items=[
                    Annotation(
                        id=f"{root}/annotation/1",
                        motivation="painting",
                        target=canvas_id,
                        body=body,
                    )
                ]
                if body is not None
                else [],
            )
        ],
        annotations=_captions(root, canvas_id, captions) if "duration" in shape else None,
    )
    built = Manifest(
        id=own,
        label=_text(label),
        summary=_text(_as_text(summary)) if summary else None,
        metadata=[KeyValueString(label=_text(k), value=_values(v)) for k, v in _metadata(record)],
        rights=RIGHTS,
        requiredStatement=KeyValueString(
            label=_text("Credit"),
            value=_text(
                f'<span>{html.escape(credit_line(record))} (<a href="{GUIDELINES}">'
                "NASA's media usage guidelines</a>)</span>"
            ),
        ),
        provider=[
            Provider(
                id=PROVIDER_HOME,
                label=_text("NASA Image and Video Library"),
                homepage=[
                    Homepage(
                        id=PROVIDER_HOME,
                        type="Text",
                        label=_text("images.nasa.gov"),
                        format="text/html",
                    )
                ],
            )
        ],
        homepage=[Homepage(id=homepage, type="Text", label=_text(label), format="text/html")],
        thumbnail=thumbs or None,
        rendering=_rendering(files) or None,
        seeAlso=see_also,
        items=[canvas],
    )
    return str(built.json())


def collection(
    own: str, label: str, members: Iterable[Member], *, base: str, summary: str = ""
) -> str:
    """A Collection whose items are the members' manifests (by reference), as JSON text."""
    from iiif_prezi3 import AnnotationBody, Collection, ManifestRef

    check_base(base)
    members = [
        m if not m.thumbnail or is_url(m.thumbnail) else Member(m.nasa_id, m.label) for m in members
    ]
    items = [
        ManifestRef(
            id=manifest_url(base, m.nasa_id),
            type="Manifest",
            label=_text(m.label or m.nasa_id),
            **(
                {"thumbnail": [AnnotationBody(id=m.thumbnail, type="Image", format="image/jpeg")]}
                if m.thumbnail
                else {}
            ),
        )
        for m in members
    ]
    built = Collection(
        id=own,
        label=_text(label),
        summary=_text(summary) if summary else None,
        rights=RIGHTS,
        items=items,
    )
    return str(built.json())


# --- sizes --------------------------------------------------------------------------


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from an image file's header, without decoding it; None if unknown.

    Pillow's ``Image.open`` refuses (or warns about) pictures past its decompression-bomb
    limit, which NASA's largest originals pass; only the header is read here, so the
    format's own reader is used directly, as ``Image.open`` does after its check.
    """
    from PIL import Image

    Image.init()
    try:
        with path.open("rb") as fp:
            prefix = fp.read(16)
            for name in Image.ID:
                factory, accept = Image.OPEN[name]
                fp.seek(0)
                try:  # a check too reads past a short file's end (BMP's wants 4 bytes)
                    if accept is not None and not accept(prefix):
                        continue
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        image = factory(fp, str(path))
                except (SyntaxError, OSError, ValueError, IndexError, TypeError, struct.error):
                    continue
                width, height = image.size
                return (width, height) if width > 0 and height > 0 else None
    except OSError:
        return None
    return None


def mp4_duration(path: Path) -> float | None:
    """Seconds, from an MP4's ``moov/mvhd`` box (timescale and duration); None if absent."""
    try:
        with path.open("rb") as fp:
            return _mvhd(fp, path.stat().st_size)
    except (OSError, struct.error, IndexError):  # a truncated file: its reads come up short
        return None


def _mvhd(fp: Any, end: int, *, in_moov: bool = False) -> float | None:
    """``mvhd`` sits right inside the top-level ``moov``: no deeper look (a file of nested
    ``moov`` boxes would otherwise recurse past Python's limit)."""
    position = fp.tell()
    while position + 8 <= end:
        fp.seek(position)
        size, box = struct.unpack(">I4s", fp.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", fp.read(8))[0], 16
        elif size == 0:
            size = end - position
        if size < header:
            return None
        if box == b"moov" and not in_moov:
            fp.seek(position + header)
            return _mvhd(fp, min(position + size, end), in_moov=True)
        if box == b"mvhd":
            version = fp.read(4)[0]
            if version == 1:
                _, _, scale, length = struct.unpack(">QQIQ", fp.read(28))
            else:
                _, _, scale, length = struct.unpack(">IIII", fp.read(16))
            return length / scale if scale and length else None
        position += size
    return None


# --- parts --------------------------------------------------------------------------


def _painting(record: Record, files: Sequence[File]) -> tuple[dict[str, Any], list[Any]]:
    """The canvas's dimensions and the bodies it paints, preferred first."""
    from iiif_prezi3 import AnnotationBody

    kind = MEDIA_KINDS.get(record.media_type, "Image")
    if kind == "Image":
        chosen = _ordered([f for f in files if f.kind and f.kind[1] in SHOWN_IMAGES], IMAGE_ORDER)
        sizes = {f.name: image_size(f.path) if f.path else None for f in chosen}
        known = [s for s in sizes.values() if s]
        width, height = max(known, key=lambda s: s[0] * s[1], default=(0, 0))
        shape: dict[str, Any] = {
            "width": width or PLACEHOLDER_SIZE,
            "height": height or PLACEHOLDER_SIZE,
        }
        bodies = [
            AnnotationBody(
                id=f.url,
                type="Image",
                format=f.kind[1] if f.kind else None,
                **_size(sizes[f.name]),
            )
            for f in chosen
        ]
        return shape, bodies
    order = VIDEO_ORDER if kind == "Video" else AUDIO_ORDER
    chosen = _ordered([f for f in files if f.kind and f.kind[0] == kind], order)[:1]
    duration = None
    for f in chosen:
        if f.path is not None and f.kind and f.kind[1] in ("video/mp4", "audio/mp4"):
            duration = mp4_duration(f.path)
    shape = {"duration": duration or PLACEHOLDER_DURATION}
    if kind == "Video":
        shape["width"], shape["height"] = PLACEHOLDER_VIDEO
    bodies = [
        AnnotationBody(
            id=f.url,
            type=kind,
            format=f.kind[1] if f.kind else None,
            **({"duration": duration} if duration else {}),
        )
        for f in chosen
    ]
    return shape, bodies


def _captions(root: str, canvas_id: str, url: str | None) -> list[Any] | None:
    """Captions as a ``supplementing`` annotation: a viewer offers them as a text track."""
    from iiif_prezi3 import Annotation, AnnotationBody, AnnotationPage

    if not url or not is_url(url):
        return None
    track = AnnotationBody(
        id=url, type="Text", format="text/vtt", language="en", label=_text("English")
    )
    annotation = Annotation(
        id=f"{root}/annotation/captions",
        motivation="supplementing",
        target=canvas_id,
        body=track,
    )
    return [AnnotationPage(id=f"{root}/page/captions", items=[annotation])]


def _ordered(files: Sequence[File], order: Sequence[str]) -> list[File]:
    def rank(f: File) -> tuple[int, int]:
        name = f.name.lower()
        place = next((i for i, suffix in enumerate(order) if suffix in name), len(order))
        return (0 if f.path is not None else 1, place)

    return sorted(files, key=rank)


def _size(size: tuple[int, int] | None) -> dict[str, int]:
    return {"width": size[0], "height": size[1]} if size else {}


def _thumbnails(files: Sequence[File], fallback: str | None) -> list[Any]:
    from iiif_prezi3 import AnnotationBody

    thumbs = [f for f in files if "~thumb." in f.name.lower() and f.kind and f.kind[0] == "Image"]
    chosen = _ordered(thumbs, ("~thumb.",))[:1]
    if chosen:
        f = chosen[0]
        size = image_size(f.path) if f.path else None
        kind = f.kind[1] if f.kind else "image/jpeg"
        return [AnnotationBody(id=f.url, type="Image", format=kind, **_size(size))]
    if fallback:
        return [AnnotationBody(id=fallback, type="Image", format="image/jpeg")]
    return []


def _rendering(files: Sequence[File]) -> list[Any]:
    from iiif_prezi3 import LinkedResource

    out = []
    for f in files:
        kind = f.kind
        out.append(
            LinkedResource(
                id=f.url,
                type=kind[0] if kind else "Dataset",
                label=_text(f.name + (" (mirrored)" if f.path is not None else "")),
                format=kind[1] if kind else None,
            )
        )
    return out


def _metadata(record: Record) -> list[tuple[str, list[str]]]:
    """The record's fields a viewer's information panel shows, those it has."""
    rows = [
        ("NASA ID", [record.nasa_id]),
        ("Center", [record.center]),
        ("Date", [record.date_created]),
        ("Keywords", list(record.keywords)),
        ("Photographer", [record.photographer]),
        ("Secondary creator", [record.secondary_creator]),
        ("Album", list(record.album)),
        ("Location", [record.location]),
        ("Media type", [record.media_type]),
    ]
    kept = [(name, [v for v in values if v.strip()]) for name, values in rows]
    return [(name, values) for name, values in kept if values]


def _text(value: str) -> dict[str, list[str]]:
    return {"en": [value]}


def _values(values: list[str]) -> dict[str, list[str]]:
    return {"none": [_as_text(v) for v in values]}


def _as_text(value: str) -> str:
    """A value a viewer shows as the text it is: a summary or metadata value that starts
    with ``<`` and ends with ``>`` is HTML to a IIIF client, so a value holding markup
    characters goes out escaped inside a ``<span>``, which renders as exactly that text."""
    if "<" not in value and "&" not in value:
        return value
    return f"<span>{html.escape(value, quote=False)}</span>"
