"""nivl's /search over HTTP on loopback: startup, latency, requests/s, errors, server RSS.

Usage::

    python bench/http_latency.py                                  # a temporary home, shared records
    python bench/http_latency.py --home DIR --data /tmp/nivl-bench/synth-100k.jsonl
    python bench/http_latency.py --home DIR --collapse none --no-gzip --cached
    python bench/http_latency.py --duration 60 --concurrency 32   # a load run, bounded by time

Starts ``nivl serve`` (a real uvicorn process) on a free 127.0.0.1 port over DIR (default: a
temporary home loaded with ``--data``, else the shared records) and reports, in one run:

- **startup**: seconds from spawning the process to the first 200 from ``/search``;
- for each ``--concurrency`` level (default 1 and 8 clients): p50/p95/p99 latency,
  requests/s, errors, the client's and the server's CPU seconds, and the server's RSS
  (``VmRSS``/``VmHWM`` from /proc, the uvicorn process and its children) before and after.

Queries are ``search_bench.make_queries`` drawn from the ``--data`` file's vocabulary (a
page of 100, ``collapse=event`` by default). Every timed request is a distinct URL (an
extra ``bench=N`` parameter, which the API ignores), so none is answered from the server's
body cache; ``--cached`` instead repeats a few URLs that a warm-up pass has cached. The
client sends httpx's default ``Accept-Encoding: gzip, deflate`` (``--no-gzip``: identity)
and reads bodies without decompressing them; ``--client raw`` sends the same headers over
keep-alive sockets read by hand, at about a seventh of httpx's CPU a request: on a 2-core
machine the client's CPU is taken from the server's (httpx: about 1.5 ms a request).
Results: a table on stdout and JSON in ``bench/results/`` (git-ignored) or ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import datasette_baseline
import httpx
from common import RESULTS, load_avg, percentile, shared_records
from search_bench import make_queries

CLK_TCK = os.sysconf("SC_CLK_TCK")
CACHED_URLS = 40  # --cached: this many distinct pages, all of them in the 64 MB body cache


# --- the server process ------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux /proc)."""
    found = [pid]
    for parent in found:
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            found.extend(int(c) for c in children if int(c) not in found)
    return found


STATUS = {"VmRSS": "rss_mb", "VmHWM": "hwm_mb", "RssAnon": "anon_mb", "RssFile": "file_mb"}


def memory(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (peak RSS), and RSS split into anonymous memory and mapped files (the
    tantivy index, SQLite if mapped) in MB, summed over ``pid`` and its children."""
    out = dict.fromkeys(STATUS.values(), 0.0) | {"processes": 0}
    for member in descendants(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        out["processes"] += 1
        for line in lines:
            name, _, value = line.partition(":")
            if name in STATUS:
                out[STATUS[name]] += int(value.split()[0]) / 1024
    return {k: round(v, 1) for k, v in out.items()}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children so far."""
    total = 0
    for member in descendants(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    home: Path, port: int, params: dict[str, str], headers: dict[str, str], workers: int = 1
) -> tuple[subprocess.Popen[bytes], float]:
    """Spawn ``nivl serve``; the seconds until its first 200 answer to ``/search``."""
    env = {**os.environ, "NIVL_HOME": str(home)}
    started = time.perf_counter()
    flags = ["--workers", str(workers)] if workers else []  # 0: nivl's default
    server = subprocess.Popen(
        [sys.executable, "-m", "nivl", "serve", "--port", str(port), *flags],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/search"
    with httpx.Client(timeout=30, headers=headers) as client:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"nivl serve exited with status {server.returncode}")
            try:
                if client.get(url, params=params).status_code == 200:
                    return server, time.perf_counter() - started
            except httpx.TransportError:
                pass
            if time.perf_counter() - started > 300:
                server.terminate()
                raise SystemExit("nivl serve did not answer within 300 s")
            time.sleep(0.01)


# --- the load ----------------------------------------------------------------------------


@dataclass
class Level:
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    bytes: int = 0
    encodings: set[str] = field(default_factory=set)
    elapsed: float = 0.0


async def drive(
    base: str,
    urls: list[dict[str, str]],
    concurrency: int,
    headers: dict[str, str],
    duration: float = 0,
    warmup: list[dict[str, str]] | None = None,
    path: str = "/search",
    raw: bool = False,
) -> Level:
    """``concurrency`` clients take the next URL until none is left (or time is up)."""
    if raw:
        return await drive_raw(base, urls, concurrency, headers, duration, warmup, path)
    level = Level(concurrency)
    queue = iter(urls if not duration else _cycle(urls))
    stop_at = float("inf")  # set once the warm-up is done

    async def fetch(client: httpx.AsyncClient, params: dict[str, str]) -> None:
        started = time.perf_counter()
        try:
            async with client.stream("GET", path, params=params) as response:
                size = 0
                async for chunk in response.aiter_raw():  # as sent: not decompressed here
                    size += len(chunk)
            level.latencies.append(time.perf_counter() - started)
            level.bytes += size
            level.encodings.add(response.headers.get("content-encoding", "identity"))
            level.errors += response.status_code != 200
        except httpx.HTTPError:
            level.latencies.append(time.perf_counter() - started)
            level.errors += 1

    async def worker(client: httpx.AsyncClient) -> None:
        for params in queue:
            if time.perf_counter() > stop_at:
                return
            await fetch(client, params)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=60, headers=headers
    ) as client:
        for params in warmup or []:  # untimed; opens the connections too
            await client.get(path, params=params)
        level.latencies.clear()
        level.errors = 0
        started = time.perf_counter()
        if duration:
            stop_at = started + duration
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        level.elapsed = time.perf_counter() - started
    return level


class RawClient:
    """One keep-alive HTTP/1.1 connection read by hand: about a seventh of httpx's CPU a
    request, which on a 2-core machine is CPU left to the server (``--client raw``)."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.address = (host, int(port or 80))
        sent = {"Host": base.removeprefix("http://"), "Accept": "*/*", **headers}
        sent.setdefault("Accept-Encoding", "gzip, deflate")
        self.head = "".join(f"{k}: {v}\r\n" for k, v in sent.items()).encode("latin-1")
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str, params: dict[str, str]) -> tuple[int, int, str]:
        """Status, body bytes (as sent) and Content-Encoding of one GET."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(*self.address)
        reader, writer = self.streams
        target = f"{path}?{urlencode(params)}" if params else path
        writer.write(b"GET " + target.encode() + b" HTTP/1.1\r\n" + self.head + b"\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if fields.get("transfer-encoding", "").lower() == "chunked":
            size = 0
            while chunk := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                size += len(await reader.readexactly(chunk + 2)) - 2
            await reader.readuntil(b"\r\n")
        else:
            size = len(await reader.readexactly(int(fields.get("content-length", "0"))))
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, size, fields.get("content-encoding", "identity")

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def drive_raw(
    base: str,
    urls: list[dict[str, str]],
    concurrency: int,
    headers: dict[str, str],
    duration: float,
    warmup: list[dict[str, str]] | None,
    path: str,
) -> Level:
    """``drive`` with ``RawClient`` connections, one per client."""
    level = Level(concurrency)
    queue = iter(urls if not duration else _cycle(urls))
    stop_at = float("inf")
    clients = [RawClient(base, headers) for _ in range(concurrency)]

    async def worker(client: RawClient) -> None:
        for params in queue:
            if time.perf_counter() > stop_at:
                return
            started = time.perf_counter()
            try:
                status, size, encoding = await client.get(path, params)
                level.bytes += size
                level.encodings.add(encoding)
                level.errors += status != 200
            except (OSError, asyncio.IncompleteReadError, ValueError):
                await client.close()
                level.errors += 1
            level.latencies.append(time.perf_counter() - started)

    try:
        for n, params in enumerate(warmup or []):  # untimed; opens the connections too
            await clients[n % concurrency].get(path, params)
        level.latencies.clear()
        level.errors = 0
        started = time.perf_counter()
        if duration:
            stop_at = started + duration
        await asyncio.gather(*(worker(client) for client in clients))
        level.elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.close()
    return level


def _cycle(urls: list[dict[str, str]]) -> Any:
    n = 0
    while True:
        params = dict(urls[n % len(urls)])
        if "bench" in params:
            params["bench"] = f"{params['bench']}.{n // len(urls)}"
        yield params
        n += 1


def run_levels(
    pid: int,
    base: str,
    levels: list[int],
    chunks: list[tuple[list[dict[str, str]], ...]],
    headers: dict[str, str],
    duration: float,
    path: str = "/search",
    raw: bool = False,
) -> list[dict[str, Any]]:
    """Each level's latencies, requests/s, CPU and RSS of the server process ``pid``."""
    results = []
    for concurrency, (warm, timed) in zip(levels, chunks, strict=True):
        before = memory(pid)
        server_cpu = cpu_seconds(pid)
        client_cpu = time.process_time()
        level = asyncio.run(
            drive(base, timed, concurrency, headers, duration, warmup=warm, path=path, raw=raw)
        )
        client_cpu = time.process_time() - client_cpu
        server_cpu = cpu_seconds(pid) - server_cpu
        after = memory(pid)
        cuts = sorted(level.latencies)
        done = len(cuts)
        results.append(
            {
                "concurrency": concurrency,
                "requests": done,
                "errors": level.errors,
                "p50_ms": round(percentile(cuts, 50) * 1000, 2),
                "p95_ms": round(percentile(cuts, 95) * 1000, 2),
                "p99_ms": round(percentile(cuts, 99) * 1000, 2),
                "max_ms": round(cuts[-1] * 1000, 2) if cuts else None,
                "rps": round(done / level.elapsed, 1) if level.elapsed else None,
                "wall_s": round(level.elapsed, 2),
                "client_cpu_s": round(client_cpu, 2),
                "server_cpu_s": round(server_cpu, 2),
                "server_cpu_ms_per_request": round(server_cpu / done * 1000, 2) if done else None,
                "kb_per_response": round(level.bytes / done / 1024, 1) if done else None,
                "content_encoding": sorted(level.encodings),
                "rss_before_mb": before["rss_mb"],
                "rss_after_mb": after["rss_mb"],
                "hwm_after_mb": after["hwm_mb"],
                "load": load_avg(),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="an existing home (default: a temporary one)")
    parser.add_argument(
        "--data", type=Path, help="JSONL the queries' words come from (and the temporary home)"
    )
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per level")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests per level")
    parser.add_argument("--concurrency", default="1,8", help="comma list of client counts")
    parser.add_argument("--duration", type=float, default=0, help="seconds per level instead")
    parser.add_argument(
        "--collapse",
        default="event",
        help="comma list of event, caption, none: each timed in turn on the same queries",
    )
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--cached", action="store_true", help="repeat URLs the cache holds")
    parser.add_argument(
        "--gzip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send httpx's default Accept-Encoding (gzip, deflate); --no-gzip: identity",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="nivl serve --workers N (default: nivl's own)"
    )
    parser.add_argument(
        "--datasette",
        metavar="EXE",
        help="also time Datasette + FTS5 (datasette_baseline.py) on the same queries",
    )
    parser.add_argument(
        "--datasette-db", type=Path, help="its database (default: beside --data, built once)"
    )
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="httpx (as before), or raw: keep-alive sockets read by hand, a seventh of the "
        "CPU a request, so the server keeps more of a small machine (the same headers)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    data = args.data or shared_records()
    levels = [int(c) for c in args.concurrency.split(",")]
    collapses = args.collapse.split(",")
    if not set(collapses) <= {"event", "caption", "none"}:
        parser.error("--collapse takes a comma list of event, caption, none")
    home = args.home or Path(tempfile.mkdtemp(prefix="nivl-http-bench-"))
    if args.home is None:
        print(f"importing {data} into {home} ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "nivl", "import", str(data)],
            env={**os.environ, "NIVL_HOME": str(home)},
            check=True,
            capture_output=True,
        )
    headers = {} if args.gzip else {"Accept-Encoding": "identity"}
    with httpx.Client(headers=headers) as client:  # what the client will send
        sent_encoding = client.headers["accept-encoding"]
    raw = args.client == "raw"
    if raw:  # the same Accept-Encoding and User-Agent httpx sends
        headers = {
            "Accept-Encoding": sent_encoding,
            "User-Agent": f"python-httpx/{httpx.__version__}",
        }

    per_level = args.requests + args.warmup
    count = CACHED_URLS if args.cached else per_level * len(levels) + 1
    specs = make_queries(data, count, args.seed)
    by_collapse: dict[str, list[dict[str, str]]] = {}
    for collapse in collapses:
        urls = []
        for n, spec in enumerate(specs):
            params = spec.params(collapse)
            params["page_size"] = str(args.page_size)
            if not args.cached:
                params["bench"] = str(n)  # ignored by the API; keeps every URL distinct
            urls.append(params)
        probe, by_collapse[collapse] = urls[0], urls[1:] if not args.cached else urls
    ds_urls = [datasette_baseline.params(spec) for spec in specs[1:]]

    load_start = load_avg()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    port = free_port()
    server, startup = start_server(home, port, probe, headers, args.workers)
    base = f"http://127.0.0.1:{port}"

    def chunks(pool: list[dict[str, str]]) -> list[tuple[list[dict[str, str]], ...]]:
        """(warm-up, timed) URLs of each level: the same queries for nivl and Datasette."""
        if args.cached:
            return [(pool, [pool[n % len(pool)] for n in range(args.requests)]) for _ in levels]
        out = []
        for number in range(len(levels)):
            chunk = pool[number * per_level : (number + 1) * per_level]
            out.append((chunk[: args.warmup], chunk[args.warmup :]))
        return out

    try:
        idle = memory(server.pid)
        runs = {
            collapse: run_levels(
                server.pid, base, levels, chunks(urls), headers, args.duration, raw=raw
            )
            for collapse, urls in by_collapse.items()
        }
        results = runs[collapses[0]]
        final = memory(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    datasette: dict[str, Any] | None = None
    if args.datasette:
        db = args.datasette_db or data.with_name(f"{data.stem}-fts.db")
        print(f"building {db} (once) ...", file=sys.stderr)
        built = datasette_baseline.build(data, db)
        ds_port = free_port()
        ds_server, ds_startup = datasette_baseline.start(args.datasette, db, ds_port)
        try:
            ds_levels = run_levels(
                ds_server.pid,
                f"http://127.0.0.1:{ds_port}",
                levels,
                chunks(ds_urls),
                headers,
                args.duration,
                path=datasette_baseline.path(db),
                raw=raw,
            )
        finally:
            ds_server.terminate()
            ds_server.wait(timeout=30)
        datasette = {"db": str(db), "build_s": round(built, 1), "startup_s": round(ds_startup, 2)}
        datasette["levels"] = ds_levels

    summary = {
        "benchmark": "http_latency",
        "started": started_at,
        "home": str(home),
        "data": str(data),
        "collapse": collapses[0],
        "collapses": collapses,
        "page_size": args.page_size,
        "cached": args.cached,
        "workers": args.workers,
        "accept_encoding": sent_encoding,
        "client": args.client,
        "startup_s": round(startup, 3),
        "server_rss_idle_mb": idle["rss_mb"],
        "server_processes": idle["processes"],
        "server_rss_final_mb": final["rss_mb"],
        "server_hwm_final_mb": final["hwm_mb"],
        "server_anon_final_mb": final["anon_mb"],
        "server_file_final_mb": final["file_mb"],
        "levels": results,  # the first collapse's (as before); each one's in by_collapse
        "by_collapse": runs,
        "datasette": datasette,
        "load_start": load_start,
        "load_end": load_avg(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    print_table(summary)
    out = args.out or RESULTS / f"http-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


def print_table(summary: dict[str, Any]) -> None:
    print(
        f"startup to first answer {summary['startup_s']:.2f} s; "
        f"collapse={','.join(summary['collapses'])} page_size={summary['page_size']} "
        f"{'cached' if summary['cached'] else 'uncached'}; "
        f"Accept-Encoding: {summary['accept_encoding']}; client {summary['client']}; "
        f"RSS idle {summary['server_rss_idle_mb']} MB, final {summary['server_rss_final_mb']} MB "
        f"(anon {summary['server_anon_final_mb']}, files {summary['server_file_final_mb']}; "
        f"peak {summary['server_hwm_final_mb']} MB); load {summary['load_start']} → "
        f"{summary['load_end']}"
    )
    head = (
        f"{'system':>13} {'clients':>7} {'requests':>8} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'req/s':>7} {'srv CPU ms/req':>14} {'client CPU s':>12} "
        f"{'KB/resp':>8} {'RSS MB before→after':>20}"
    )
    print(head)
    systems = [(f"nivl {c}", rows) for c, rows in summary["by_collapse"].items()]
    if summary.get("datasette"):
        systems.append(("datasette", summary["datasette"]["levels"]))
    for name, rows in systems:
        for r in rows:
            print(
                f"{name:>13} {r['concurrency']:>7} {r['requests']:>8} {r['errors']:>6} "
                f"{r['p50_ms']:>7} {r['p95_ms']:>7} {r['p99_ms']:>7} {r['rps']:>7} "
                f"{r['server_cpu_ms_per_request']:>14} {r['client_cpu_s']:>12} "
                f"{r['kb_per_response']:>8} {r['rss_before_mb']:>9}→{r['rss_after_mb']:<9}"
            )
    print("targets (issue 19):")
    for line in targets(summary):
        print(f"  {line}")


def targets(summary: dict[str, Any]) -> list[str]:
    """Each of issue 19's serving targets beside the figure this run measured."""
    out = [f"startup ≤ 2 s: {summary['startup_s']:.2f} s, {verdict(summary['startup_s'] <= 2)}"]
    ds = {r["concurrency"]: r for r in (summary.get("datasette") or {}).get("levels", [])}
    for collapse, rows in summary["by_collapse"].items():
        out += [f"collapse={collapse}, {line}" for line in _level_targets(rows, ds)]
    return out


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _level_targets(rows: list[dict[str, Any]], ds: dict[int, dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        n = r["concurrency"]
        line = (
            f"{n} client(s): p50 {r['p50_ms']} ms (≤ 5: {verdict(r['p50_ms'] <= 5)}), "
            f"p99 {r['p99_ms']} ms (≤ 25: {verdict(r['p99_ms'] <= 25)})"
        )
        if n == 8:
            line += f", {r['rps']} req/s (≥ 400: {verdict((r['rps'] or 0) >= 400)})"
        if n in ds:
            ratio = ds[n]["p50_ms"] / r["p50_ms"] if r["p50_ms"] else float("nan")
            line += f", Datasette p50 / nivl p50 {ratio:.1f}x (≥ 10: {verdict(ratio >= 10)})"
        out.append(line)
    return out


if __name__ == "__main__":
    main()
