"""Build the bundled sample, src/nivl/sample/records.jsonl.gz, from the shared records.

Usage: python scripts/build_sample.py [../shared/data/nasa/records.jsonl]
The sample is the one copy of shared data the repository holds, so that a
fresh install has something to serve; it must stay under 2 MB.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

LIMIT = 2 * 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    source = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/data/nasa/records.jsonl"
    )
    target = ROOT / "src/nivl/sample/records.jsonl.gz"
    lines = [line for line in source.read_bytes().splitlines() if line.strip()]
    target.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps the file byte-identical between builds
    with gzip.GzipFile(target, "wb", compresslevel=9, mtime=0) as out:
        out.write(b"\n".join(lines) + b"\n")
    size = target.stat().st_size
    if size > LIMIT:
        target.unlink()
        raise SystemExit(f"sample is {size} bytes, over the {LIMIT} byte limit")
    print(f"wrote {target.relative_to(ROOT)}: {len(lines)} records, {size} bytes")


if __name__ == "__main__":
    main()
