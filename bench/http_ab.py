"""Two trees' ``nivl serve`` side by side: the same distinct URLs, alternated, server CPU each.

Usage::

    python bench/http_ab.py --old /work/main/src --new src --home DIR --data X.jsonl
        [--collapse none] [--requests 1500] [--encoding "gzip, deflate, zstd"]

On a machine other work keeps busy, two runs one after the other differ by more than most
changes do; here both servers (one worker each, one tree each through ``PYTHONPATH``) serve
every URL of ``http_latency.py``'s query set (distinct ``bench=`` parameters, so no body
cache answers), one after the other in alternating order, on keep-alive sockets. Printed:
each server's CPU per request (its process and children, from /proc), p50/p99 latency, and
the ratio new/old. The query set cycles, as ``http_latency.py --duration`` does.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

from search_bench import make_queries


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its children."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(name) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Side:
    def __init__(self, name: str, src: str, home: Path) -> None:
        self.name, self.port = name, _port()
        env = {**os.environ, "NIVL_HOME": str(home), "PYTHONPATH": str(Path(src).resolve())}
        command = [sys.executable, "-m", "nivl", "serve", "--port", str(self.port)]
        self.server = subprocess.Popen(
            [*command, "--workers", "1"], env=env, stderr=subprocess.DEVNULL
        )
        self.latencies: list[float] = []
        self.cpu = 0.0
        deadline = time.monotonic() + 300
        while True:
            try:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.conn.request("GET", "/search?q=apollo")
                self.conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    raise SystemExit(f"the {name} server did not start") from None
                time.sleep(0.2)

    def get(self, url: str, encoding: str) -> None:
        started = time.perf_counter()
        self.conn.request("GET", url, headers={"Accept-Encoding": encoding})
        response = self.conn.getresponse()
        response.read()
        self.latencies.append(time.perf_counter() - started)
        if response.status != 200:
            raise SystemExit(f"{self.name}: {response.status} for {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the old tree's src directory")
    parser.add_argument("--new", required=True, help="the new tree's src directory")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the queries' words come from it")
    parser.add_argument("--collapse", default="none")
    parser.add_argument("--requests", type=int, default=1500, help="to each server")
    parser.add_argument("--warmup", type=int, default=60)
    parser.add_argument("--encoding", default="gzip, deflate, zstd", help="Accept-Encoding")
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()

    specs = make_queries(args.data, 300, args.seed)
    urls = []
    for n in range(args.warmup + args.requests):
        params = dict(specs[n % len(specs)].params(args.collapse))
        params["bench"] = f"ab{n}"
        urls.append("/search?" + urlencode(params))
    sides = [Side("old", args.old, args.home), Side("new", args.new, args.home)]
    try:
        for url in urls[: args.warmup]:
            for side in sides:
                side.get(url, args.encoding)
        for side in sides:
            side.latencies.clear()
            side.cpu = _tree_cpu(side.server.pid)
        for n, url in enumerate(urls[args.warmup :]):
            for side in sides if n % 2 else sides[::-1]:
                side.get(url, args.encoding)
        spent = {}
        for side in sides:
            spent[side.name] = (_tree_cpu(side.server.pid) - side.cpu) / len(side.latencies)
            ordered = sorted(side.latencies)
            p50 = ordered[len(ordered) // 2] * 1000
            p99 = ordered[int(len(ordered) * 0.99)] * 1000
            print(
                f"{side.name}: server CPU {spent[side.name] * 1000:.2f} ms/request, "
                f"p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(ordered)} requests)"
            )
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        print(f"new/old server CPU {spent['new'] / spent['old']:.3f}; collapse={args.collapse}")
        print(f"Accept-Encoding: {args.encoding}; load {load}")
    finally:
        for side in sides:
            side.server.terminate()
            side.server.wait(timeout=30)


if __name__ == "__main__":
    main()
