"""SRT captions to WebVTT, the only caption format an HTML ``<track>`` plays.

Written here rather than taken from ``webvtt-py``: the conversion is a header and
a comma-to-dot change in the cue timings, and upstream's SRT files are not always
strict (missing cue numbers, CRLF, a BOM, stray blank lines), which a tolerant
line-by-line pass handles and a strict parser rejects.
"""

from __future__ import annotations

import re

_TIMING = re.compile(
    r"^\s*(\d{1,3}:)?(\d{1,2}):(\d{2})[,.](\d{1,3})\s*-->\s*(\d{1,3}:)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
)


def _stamp(hours: str | None, minutes: str, seconds: str, millis: str) -> str:
    return f"{int((hours or '0:')[:-1]):02d}:{int(minutes):02d}:{seconds}.{millis.ljust(3, '0')}"


def srt_to_vtt(srt: str) -> str:
    """An SRT document as WebVTT: the same cues, timings with dots, cue numbers dropped.

    A document that already is WebVTT is returned as it is (upstream serves both).
    """
    text = srt.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("WEBVTT"):
        return text if text.endswith("\n") else text + "\n"
    cues: list[list[str]] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.split("\n") if line.strip()]
        for at, line in enumerate(lines):
            match = _TIMING.match(line)
            if match:
                g = match.groups()
                timing = f"{_stamp(*g[:4])} --> {_stamp(*g[4:])}"
                # "-->" may not appear in cue text; a blank line would end the cue
                body = [part.replace("-->", "→") for part in lines[at + 1 :]]
                cues.append([timing, *body])
                break
    return "WEBVTT\n\n" + "".join("\n".join(cue) + "\n\n" for cue in cues)
