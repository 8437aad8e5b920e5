"""``nivl serve``'s startup and memory: seconds to the first answer, CPU spent by then, and
each process's PSS (``/proc/PID/smaps_rollup``) after ``--requests`` distinct searches.

Usage::

    python bench/serve_startup.py HOME                  # a writable home, one worker a core
    python bench/serve_startup.py HOME --read-only      # a replica (e.g. a snapshot)
    python bench/serve_startup.py HOME --mode hybrid    # requests that load the model too
    python bench/serve_startup.py HOME --src /work/main/src   # another tree, to compare
    python bench/serve_startup.py HOME --cold --runs 3  # the home's files out of the page cache

``--cold`` evicts the home's files (and nivl's sources and the interpreter's packages) from
the page cache before each start (``posix_fadvise(DONTNEED)``: no root needed, and the rest
of the machine's cache is left alone); ``--runs`` starts the server that many times and
prints the median too.

The home is never written when ``--read-only`` is given. Queries are one or two words of
the home's own titles, pages 1–3 of 100 items, over one keep-alive connection (so one
worker answers most: compare the worker that served with the one that did not). CPU is
the supervisor's and its workers' user + system seconds when the first answer arrived:
on a loaded machine compare it, not the wall-clock seconds.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("Pss", "Pss_Anon", "Pss_File", "Shared_Dirty", "Private_Dirty")


def words_of(home: Path, count: int = 60) -> list[str]:
    """Common title words of the home (read-only), past the commonest few."""
    with sqlite3.connect(f"{(home / 'nivl.db').as_uri()}?mode=ro", uri=True) as conn:
        titles = [row[0] or "" for row in conn.execute("SELECT title FROM records LIMIT 20000")]
    found = Counter(w.lower() for t in titles for w in re.findall(r"[A-Za-z]{4,}", t))
    return [w for w, _ in found.most_common(count + 10)[10:]] or ["apollo"]


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rollup(pid: int) -> dict[str, int]:
    """MB of each figure of ``FIGURES`` for ``pid``."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value, *_ = line.split()
        if key.rstrip(":") in FIGURES:
            out[key.rstrip(":")] = int(value) // 1024
    return out


def evict(*roots: Path) -> None:
    """Drop these trees' files from the page cache, as a cold start finds them."""
    for root in roots:
        for folder, _dirs, files in os.walk(root):
            for name in files:
                try:
                    fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--read-only", action="store_true")
    parser.add_argument("--workers", type=int, default=0, help="0: nivl's default")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--mode", default="", help="the requests' mode (lexical, hybrid)")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="nivl's sources")
    parser.add_argument("--cold", action="store_true", help="evict the files first")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    figures = []
    for _ in range(args.runs):
        if args.cold:
            evict(args.home, args.src, Path(sys.prefix), Path(sysconfig.get_paths()["stdlib"]))
        figure = start(args)
        if figure is None:
            return 1
        figures.append(figure)
    if args.runs > 1:
        wall = statistics.median(f[0] for f in figures)
        cpu = statistics.median(f[1] for f in figures)
        print(f"median of {args.runs}: startup to first answer {wall:.2f} s, CPU {cpu:.2f} s")
    return 0


def start(args: argparse.Namespace) -> tuple[float, float] | None:
    """One start: (seconds to the first answer, CPU by then), or None if it failed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    env["PYTHONPATH"] = str(args.src)
    command = [sys.executable, "-m", "nivl", "serve", "--home", str(args.home)]
    command += ["--port", str(port)] + (["--read-only"] if args.read_only else [])
    command += ["--workers", str(args.workers)] if args.workers else []
    words = words_of(args.home)
    started = time.monotonic()
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{url}/search", params={"q": words[0]}, timeout=10).is_success:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None:
                print(server.communicate()[1].decode(), file=sys.stderr)
                return None
            time.sleep(0.02)
        startup = time.monotonic() - started
        processes = [server.pid, *children(server.pid)]
        cpu = sum(cpu_seconds(pid) for pid in processes)
        rng = random.Random(1)
        received = 0
        with httpx.Client(timeout=60) as client:
            for _ in range(args.requests):
                params = {"q": " ".join(rng.sample(words, rng.randint(1, 2)))}
                params |= {"page": str(rng.randint(1, 3)), "page_size": "100"}
                params |= {"mode": args.mode} if args.mode else {}
                response = client.get(f"{url}/search", params=params)
                response.raise_for_status()
                received += len(response.content)
        print(f"startup to first answer {startup:.2f} s, CPU by then {cpu:.2f} s")
        print(f"{args.requests} requests, {received / 2**20:.1f} MB of answers; PSS in MB:")
        for pid in processes:
            role = "supervisor" if pid == server.pid and len(processes) > 1 else "worker"
            shown = "  ".join(f"{k} {v}" for k, v in rollup(pid).items())
            print(f"  {role:<10} {pid:>7}  {shown}")
    finally:
        server.terminate()
        server.communicate(timeout=30)
    return startup, cpu


if __name__ == "__main__":
    sys.exit(main())
