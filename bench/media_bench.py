"""``nivl media fetch`` throughput against the local replay of upstream and its assets host.

Usage::

    python bench/media_bench.py                    # thumbnails of the 1,538 shared records
    python bench/media_bench.py --size small --faults 0.05

Imports the shared records into a temporary home, serves tests.replay (manifests, and real
NASA photographs resized per rendition) on 127.0.0.1 in this process, and runs a real
``nivl media fetch --size SIZE --json`` subprocess twice: cold (the replay server encodes
each JPEG on first request, which is part of what is measured), then the rerun, which must
find everything already here, then again into an empty media folder ("warm": the server's
JPEGs are cached, so this is nivl's side alone, manifests already stored). Prints files/s
and MB/s as the fetch summary reports them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO

sys.path.insert(0, str(REPO))
from tests.conftest import RECORDS, RESPONSES  # noqa: E402
from tests.replay import MEDIA_FAULTS, ReplayConfig, make_replay, serving  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="thumb")
    parser.add_argument("--faults", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="nivl-media-bench-")) / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    env["PYTHONPATH"] = str(REPO / "src")
    nivl = [sys.executable, "-m", "nivl"]
    subprocess.run([*nivl, "import", str(RECORDS), "--home", str(home)], env=env, check=True)
    config = ReplayConfig(fault_rate=args.faults, faults=MEDIA_FAULTS, seed=16, retry_after="0")
    with serving(make_replay(RECORDS, RESPONSES, config)) as replay:
        env["NIVL_UPSTREAM_URL"] = env["NIVL_ASSETS_URL"] = replay.url
        command = [*nivl, "media", "fetch", "--size", args.size, "--json", "--home", str(home)]
        command += ["--concurrency", str(args.concurrency)]
        for run in ("cold", "rerun", "warm"):
            if run == "warm":  # the same files again, the replay's JPEGs already encoded
                shutil.rmtree(home / "media")
            started = time.monotonic()
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            wall = time.monotonic() - started
            summary = json.loads(done.stdout)
            seconds = summary["seconds"] or 1e-9
            print(  # noqa: T201 (a benchmark's report)
                f"{run}: {summary['fetched']} fetched, {summary['already']} already here, "
                f"{summary['bytes'] / 1e6:.1f} MB in {seconds:.2f} s "
                f"({summary['fetched'] / seconds:.0f} files/s, "
                f"{summary['bytes'] / 1e6 / seconds:.2f} MB/s; process wall {wall:.1f} s; "
                f"{summary['manifests_fetched']} manifests fetched, {summary['retries']} retries, "
                f"{replay.faults_served} faults served), exit {done.returncode}"
            )


if __name__ == "__main__":
    main()
