"""HTTP latency and load of nivl's /search on loopback: p50/p99, requests/s, errors, RSS.

Usage: python bench/http_latency.py [--home DIR] [--requests 2000] [--concurrency 1,8]
       python bench/http_latency.py --duration 60 --concurrency 32      # the load run
Starts `nivl serve` (a real uvicorn process) on a free 127.0.0.1 port over DIR (default: a
temporary home loaded with ../shared/data/nasa/records.jsonl) and drives it with a bounded
async httpx loop over a fixed, seeded list of mixed queries (page of 100). Each run is
bounded by --requests or, with --duration, by time; it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT.parent / "shared/data/nasa/records.jsonl"
WORDS = [
    "apollo",
    "moon",
    "mars",
    "launch",
    "space station",
    "hubble",
    "astronaut",
    "earth",
    "sun",
    "rocket",
    "crew",
    "nebula",
    "galaxy",
    "orion",
    "artemis",
    "shuttle",
    "rover",
    "saturn",
    "jupiter",
    "spacewalk",
]


def queries(seed: int = 7, count: int = 200) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        params = {"q": " ".join(rng.sample(WORDS, rng.choice([1, 1, 2]))), "page_size": "100"}
        if rng.random() < 0.3:
            params["media_type"] = rng.choice(["image", "video", "image,video"])
        if rng.random() < 0.2:
            params["sort"] = "date_desc"
        out.append(params)
    return out


async def drive(
    base: str,
    params: list[dict[str, str]],
    total: int,
    concurrency: int,
    duration: float = 0,
) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total if not duration else 10**9))
    stop_at = time.perf_counter() + duration if duration else float("inf")

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for n in counter:
            if time.perf_counter() > stop_at:
                return
            started = time.perf_counter()
            response = await client.get("/search", params=params[n % len(params)])
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        await client.get("/search", params={"q": "warmup"})
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed, errors


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument(
        "--duration",
        type=float,
        default=0,
        help="seconds per concurrency level (overrides --requests)",
    )
    args = parser.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="nivl-bench-")
    env = {**os.environ, "NIVL_HOME": home}
    nivl = [sys.executable, "-m", "nivl"]
    if not args.home:
        subprocess.run([*nivl, "import", str(RECORDS)], env=env, check=True, capture_output=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [*nivl, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        results = []
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            rss_before = rss_mb(server.pid)
            latencies, elapsed, errors = asyncio.run(
                drive(base, queries(), args.requests, concurrency, args.duration)
            )
            cuts = statistics.quantiles(latencies, n=100)
            results.append(
                {
                    "concurrency": concurrency,
                    "requests": len(latencies),
                    "p50_ms": round(cuts[49] * 1000, 2),
                    "p99_ms": round(cuts[98] * 1000, 2),
                    "rps": round(len(latencies) / elapsed, 1),
                    "errors": errors,
                    "rss_before_mb": rss_before,
                    "rss_after_mb": rss_mb(server.pid),
                }
            )
        print(
            f"{'clients':>8} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} "
            f"{'errors':>7}  RSS MB before/after"
        )
        for r in results:
            print(
                f"{r['concurrency']:>8} {r['requests']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8} "
                f"{r['rps']:>8} {r['errors']:>7}  {r['rss_before_mb']}/{r['rss_after_mb']}"
            )
        out = ROOT / "bench/results"
        out.mkdir(exist_ok=True)
        (out / "http_latency.json").write_text(json.dumps(results, indent=2))
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
