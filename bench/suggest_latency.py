"""/suggest (autocomplete) latency over HTTP on loopback, one client, keystroke by keystroke.

Usage::

    python bench/synth.py 140000 /tmp/nivl-bench/synth-140k.jsonl
    nivl import /tmp/nivl-bench/synth-140k.jsonl --home /tmp/nivl-bench/h140k
    python bench/suggest_latency.py --home /tmp/nivl-bench/h140k [--rounds 5]

Starts ``nivl serve`` on a free 127.0.0.1 port over the home, asks once to build the
revision's vocabulary (reported as "first request"), then times ``--rounds`` passes over 50
prefixes as they are typed: every prefix of a few single words ("a", "ap", "apo", ...) and
of multi-word queries ("apollo 1", "space sh", ...), one request at a time, and reports
p50/p99/max in milliseconds of the whole HTTP round trip.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import load_avg, percentile
from http_latency import free_port

TYPED = ["apollo 11", "saturn rings", "space shuttle", "moon lan", "orion", "astronaut", "mars r"]


def prefixes() -> list[str]:
    found: list[str] = []
    for text in TYPED:
        found += [text[:n] for n in range(1, len(text) + 1) if text[:n].strip()]
    return list(dict.fromkeys(found))[:50]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "NIVL_HOME": str(args.home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "nivl", "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as client:
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    if server.poll() is not None:
                        raise SystemExit("nivl serve exited") from None
                    time.sleep(0.05)
            started = time.perf_counter()
            client.get("/suggest", params={"q": "a"}).raise_for_status()
            first = (time.perf_counter() - started) * 1000
            typed = prefixes()
            times: list[float] = []
            for _ in range(args.rounds):
                for q in typed:
                    started = time.perf_counter()
                    response = client.get("/suggest", params={"q": q})
                    times.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
            sample = client.get("/suggest", params={"q": "apo"}).json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    times.sort()
    print(f"home {args.home}, {len(typed)} prefixes x {args.rounds} rounds, load {load_avg()}")
    print(f"first request (builds the vocabulary): {first:.1f} ms")
    print(
        f"p50 {percentile(times, 50):.2f} ms  p99 {percentile(times, 99):.2f} ms  "
        f"max {times[-1]:.2f} ms"
    )
    print("apo ->", ", ".join(f"{s['text']} ({s['count']})" for s in sample["suggestions"]))


if __name__ == "__main__":
    main()
