"""A real IIIF viewer on nivl's manifests: Mirador 4.0.0 (the npm registry's UMD bundle,
fetched by scripts/fetch_mirador) on a static page of its own origin, in headless Chromium,
reading manifests and pictures from a real ``nivl serve`` on another loopback port.

The image manifest's canvas is drawn from the picture nivl mirrors; the album collection
lists its 11 manifests and opens a video member as a video player on the mirrored MP4,
with the mirrored captions as a text track whose cues load across origins.
Mirador is not part of nivl: the page is served by this test alone. Without the bundle
(npm unreachable) the test fails rather than skips, so a CI run cannot pass silently.
"""

from __future__ import annotations

import functools
import io
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from nivl import Settings

from .conftest import OFFLINE
from .test_iiif import ASSETS, AUDIO, CHOICE, VIDEO, iiif_settings, photo  # noqa: F401  (a fixture)
from .test_serve import serving
from .test_ui_browser import browser  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
MIRADOR = ROOT / ".cache" / "mirador" / "4.0.0" / "mirador.min.js"
SCREENSHOT = Path("/tmp/nivl-iiif-mirador.png")
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mirador on nivl</title>
<style>html, body {{ margin: 0; height: 100%; }} #viewer {{ position: absolute; inset: 0; }}</style>
</head><body><div id="viewer"></div>
<script src="mirador.min.js"></script>
<script>
Mirador.viewer({{
  id: "viewer",
  windows: [{{ manifestId: {manifest!r} }}],
  window: {{ allowClose: false, defaultSideBarPanel: "info", sideBarOpenByDefault: true }},
  workspaceControlPanel: {{ enabled: false }},
}});
</script></body></html>
"""


@pytest.fixture(scope="module")
def mirador() -> Path:
    """The bundle, fetched now if scripts/test has not: a missing viewer is a failure."""
    if not MIRADOR.exists():
        fetched = subprocess.run(
            [str(ROOT / "scripts" / "fetch_mirador")], capture_output=True, text=True
        )
        if fetched.returncode != 0 or not MIRADOR.exists():
            pytest.fail(f"could not fetch Mirador from the npm registry: {fetched.stderr}")
    return MIRADOR


@pytest.fixture(scope="module")
def nivl_url(iiif_settings: Settings) -> Iterator[str]:  # noqa: F811
    """``nivl serve`` as a user runs it, on the home with mirrored pictures."""
    with serving(iiif_settings.home, env={"NIVL_UPSTREAM_URL": OFFLINE}) as (url, _p, _e):
        yield url


@pytest.fixture
def viewer_page(tmp_path: Path, mirador: Path) -> Iterator[Any]:
    """A static site on its own loopback port; yields a function writing its page."""
    (tmp_path / "mirador.min.js").symlink_to(mirador)
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def open_on(manifest: str) -> str:
        (tmp_path / "index.html").write_text(PAGE.format(manifest=manifest))
        return f"http://127.0.0.1:{server.server_port}/index.html"

    try:
        yield open_on
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_mirador_shows_a_nivl_manifests_canvas(
    browser: Any,  # noqa: F811
    nivl_url: str,
    viewer_page: Any,
) -> None:
    manifest = f"{nivl_url}/iiif/{CHOICE}/manifest.json"
    page_url = viewer_page(manifest)
    viewer_origin = page_url.rsplit("/", 1)[0]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    blocked: list[str] = []
    upstream: list[str] = []
    stand_in = photo(320, 365)
    answered: dict[str, int] = {}

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith((nivl_url, viewer_origin)):
            request_route.continue_()
        elif url.startswith(ASSETS) and url.endswith(".jpg"):
            # upstream's renditions (Mirador loads every layer of a choice): NASA, faked
            upstream.append(url)
            request_route.fulfill(status=200, content_type="image/jpeg", body=stand_in)
        else:
            blocked.append(url)
            request_route.abort()

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: answered.__setitem__(r.url, r.status))
    medium = f"{nivl_url}/media/{CHOICE}/{quote(CHOICE)}~medium.jpg"
    try:
        with page.expect_response(lambda r: r.url == medium, timeout=60_000) as picture:
            page.goto(page_url)
        assert picture.value.status == 200  # the canvas's first choice, from nivl's mirror
        assert answered[manifest] == 200
        canvas = page.locator(".openseadragon-canvas canvas").first
        canvas.wait_for(state="visible", timeout=30_000)
        box = canvas.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 300
        # the manifest's label, as the window's title
        title = page.locator('[aria-label="Window navigation"] h2').first
        title.wait_for(state="visible", timeout=30_000)
        assert title.text_content() == "Thor Helmet"
        page.wait_for_timeout(1_500)  # OpenSeadragon fades the picture in
        page.screenshot(path=str(SCREENSHOT))
        assert _drawn(canvas.screenshot()), "the viewer's canvas is blank"
        assert not errors, errors
        assert not blocked, blocked
        assert f"{nivl_url}/media/{CHOICE}/{quote(CHOICE)}~thumb.jpg" in answered
    finally:
        context.close()


def _drawn(png: bytes) -> bool:
    """Whether a screenshot shows a picture, not one flat colour."""
    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(png)) as shot:
        spread = ImageStat.Stat(shot.convert("L")).stddev[0]
    return spread > 10


def test_mirador_lists_an_album_collection_and_opens_a_video_member(
    browser: Any,  # noqa: F811
    nivl_url: str,
    viewer_page: Any,
) -> None:
    collection = f"{nivl_url}/iiif/album/{quote('NASA ScienceCasts', safe='')}/manifest.json"
    page_url = viewer_page(collection)
    viewer_origin = page_url.rsplit("/", 1)[0]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.route(
        "**/*",
        lambda r: (
            r.continue_() if r.request.url.startswith((nivl_url, viewer_origin)) else r.abort()
        ),
    )
    page = context.new_page()
    member = f"{nivl_url}/iiif/{VIDEO}/manifest.json"
    try:
        page.goto(page_url)
        listed = page.get_by_text("11 manifests")
        show = page.get_by_role("button", name="Show collection")
        listed.or_(show).first.wait_for(timeout=60_000)
        if not listed.is_visible():  # Mirador opens the list itself only if it loads first
            show.click()
        listed.wait_for(timeout=30_000)
        title = "ScienceCast 114: The Sun's Magnetic Field is About to Flip"
        with page.expect_response(member, timeout=30_000) as opened:
            page.get_by_text(title).first.click()
        assert opened.value.status == 200
        window_title = page.locator('[aria-label="Window navigation"] h2').first
        window_title.wait_for(state="visible", timeout=30_000)
        page.wait_for_function(
            "t => document.querySelector('[aria-label=\"Window navigation\"] h2')"
            "?.textContent === t",
            arg=title,
            timeout=30_000,
        )
        video = page.locator("video").first
        video.wait_for(state="attached", timeout=30_000)
        sources = video.evaluate(
            "v => [v.currentSrc || v.src, ...[...v.querySelectorAll('source')].map(s => s.src)]"
        )
        assert f"{nivl_url}/media/{VIDEO}/{VIDEO}~mobile.mp4" in sources
        # the mirrored captions as a text track, which loads across origins once shown
        track = video.locator("track")
        assert track.get_attribute("src") == f"{nivl_url}/item/{VIDEO}/captions.vtt"
        video.evaluate("v => { v.textTracks[0].mode = 'showing'; }")
        page.wait_for_function(
            "() => (document.querySelector('video').textTracks[0].cues || []).length > 0",
            timeout=30_000,
        )
        page.screenshot(path="/tmp/nivl-iiif-collection.png")
    finally:
        context.close()


def test_mirador_shows_a_transcripts_bounded_summary(
    browser: Any,  # noqa: F811
    nivl_url: str,
    viewer_page: Any,
) -> None:
    """A podcast's 78,000-character transcript: the info panel shows its first 1,000
    characters or so, ending in an ellipsis, not the whole transcript."""
    manifest = f"{nivl_url}/iiif/{quote(AUDIO, safe='')}/manifest.json"
    page_url = viewer_page(manifest)
    viewer_origin = page_url.rsplit("/", 1)[0]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.route(
        "**/*",
        lambda r: (
            r.continue_() if r.request.url.startswith((nivl_url, viewer_origin)) else r.abort()
        ),
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(page_url)
        title = page.locator('[aria-label="Window navigation"] h2').first
        title.wait_for(state="visible", timeout=60_000)
        assert title.text_content() == "Dr. Spaceman"
        summary = page.get_by_text("Welcome to the official podcast").first
        summary.wait_for(state="visible", timeout=30_000)
        shown = summary.text_content() or ""
        assert shown.startswith("Gary Jordan (Host): Houston, we have a podcast.")
        assert shown.endswith("…") and 500 < len(shown) <= 1_000, len(shown)
        page.screenshot(path="/tmp/nivl-iiif-transcript.png")
        assert not errors, errors
    finally:
        context.close()
