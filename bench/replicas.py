"""Two read-only replicas behind HAProxy: a replica SIGKILLed and a snapshot rolled out
under load, with the requests that failed counted (the goal: none).

Usage::

    python bench/replicas.py                            # 32 clients, 60 s (issue 19's run)
    python bench/replicas.py --clients 8 --seconds 12   # what tests/test_replicas.py runs
    python bench/replicas.py --json                     # the figures as JSON on stdout

What it does, all on 127.0.0.1 with real processes:

1. a writer home gets the shared records but the last ``--late`` ones (``nivl import``),
   then ``nivl snapshot snap-1``; ``current -> snap-1``;
2. two ``nivl serve --read-only --home current`` replicas, and Debian's ``haproxy`` running
   ``docs/haproxy.cfg`` itself (addresses through its ``NIVL_*`` variables);
3. ``--clients`` threads send ``/search`` requests (distinct words, pages, collapse levels)
   through HAProxy for ``--seconds``; a request fails if it raises, is not a 200, or its
   body is not a search document;
4. at ``--kill-at`` of the run replica r1 is SIGKILLed, and restarted ``--down`` seconds
   later on the same port;
5. at ``--rollout-at`` (and after r1 is back) the writer imports the late records,
   ``nivl snapshot snap-2`` is written and ``current`` is swapped to it (``rename`` of a
   new link over the old); the run waits until both replicas serve snap-2's revision;
6. the late records must then be found through HAProxy and on each replica.

It prints requests, failures, p50/p99 latency, HAProxy's retries and redispatches, and
the times of the kill, the restart, r1's first answer and HAProxy's view of it (down,
up again), and of the roll-out. Exit status 1 if any request failed or a check did not
hold. The load generator shares the machine with the replicas: the latencies are of
this setup, not a capacity figure (bench/http_latency.py measures that).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, percentile, shared_records  # noqa: E402

CONFIG = REPO / "docs" / "haproxy.cfg"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    env["PYTHONPATH"] = f"{REPO / 'src'}:{env.get('PYTHONPATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def nivl(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nivl", *args],
        capture_output=True,
        text=True,
        env=environment(),
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"nivl {' '.join(args)} failed: {done.stderr.strip()}")


def get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes, dict[str, str]]:
    """One GET on a new connection: (status, body, headers); raises on a network error."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def revision_of(port: int) -> int | None:
    """The revision a replica serves (/healthz), or None while it cannot answer."""
    try:
        status, body, _ = get(port, "/healthz")
    except OSError:
        return None
    return int(orjson.loads(body)["revision"]) if status == 200 else None


def wait_for(check: Any, what: str, timeout: float = 120.0) -> float:
    """Poll ``check()`` until it is true; the monotonic time it became so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


class Replica:
    """One ``nivl serve --read-only`` process on a fixed port (restartable)."""

    def __init__(self, name: str, home: Path, port: int, logs: Path) -> None:
        self.name, self.home, self.port, self.logs = name, home, port, logs
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"{self.name}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nivl", "serve", "--read-only"]
            + ["--home", str(self.home), "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment(),
        )
        log.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Load:
    """What the clients saw: one (start, seconds, failed) per request, and the failures."""

    samples: list[tuple[float, float, bool]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    served_by: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(port: int, paths: list[str], seed: int, stop: threading.Event, load: Load) -> None:
    rng = random.Random(seed)
    conn: http.client.HTTPConnection | None = None
    mine: list[tuple[float, float, bool]] = []
    served: dict[str, int] = {}
    while not stop.is_set():
        path = rng.choice(paths)
        started = time.monotonic()
        problem = ""
        try:
            if conn is None:
                conn = http.client.HTTPConnection(HOST, port, timeout=20)
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            replica = response.getheader("X-Nivl-Replica") or "?"
            served[replica] = served.get(replica, 0) + 1
            if response.status != 200:
                problem = f"{response.status} from {replica}: {body[:200]!r}"
            elif "collection" not in orjson.loads(body):
                problem = f"not a search document from {replica}"
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException, orjson.JSONDecodeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if conn is not None:
                conn.close()
            conn = None
        mine.append((started, time.monotonic() - started, bool(problem)))
        if problem:
            with load.lock:
                load.failures.append(f"{path}: {problem}")
    if conn is not None:
        conn.close()
    with load.lock:
        load.samples.extend(mine)
        for name, count in served.items():
            load.served_by[name] = load.served_by.get(name, 0) + count


def search_paths(records: list[dict[str, Any]], count: int = 600) -> list[str]:
    """Distinct /search URLs over the records' title words (page sizes of 10)."""
    words = sorted(
        {
            w
            for item in records
            for w in re.findall(r"[a-z]{4,}", str(item["data"][0].get("title", "")).lower())
        }
    )
    rng = random.Random(19)
    paths = set()
    while len(paths) < min(count, len(words) * 6):
        params = {"q": rng.choice(words), "page_size": "10", "page": str(rng.randint(1, 3))}
        if rng.random() < 0.5:
            params["collapse"] = "event"
        paths.add("/search?" + urlencode(params))
    return sorted(paths)


class Watch:
    """HAProxy's view of each server (its stats CSV), polled: when r1 went down, came up."""

    def __init__(self, port: int, t0: float) -> None:
        self.port, self.t0 = port, t0
        self.events: list[tuple[float, str, str]] = []
        self.last: dict[str, str] = {}
        self.backend: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rows(self) -> list[dict[str, str]]:
        _status, body, _ = get(self.port, "/stats;csv")
        lines = body.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            with suppress(OSError, IndexError):
                for row in self.rows():
                    if row["pxname"] != "replicas":
                        continue
                    if row["svname"] == "BACKEND":
                        self.backend = row
                        continue
                    state = row["status"].split(" ")[0]
                    if self.last.get(row["svname"]) != state:
                        self.last[row["svname"]] = state
                        self.events.append((time.monotonic() - self.t0, row["svname"], state))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextmanager
def haproxy(env: dict[str, str], logs: Path) -> Iterator[subprocess.Popen[bytes]]:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    log = (logs / "haproxy.log").open("wb")
    process = subprocess.Popen(
        [binary, "-db", "-f", str(CONFIG)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    log.close()
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(args: argparse.Namespace) -> dict[str, Any]:
    records = [orjson.loads(line) for line in args.data.read_bytes().splitlines() if line.strip()]
    early, late = records[: -args.late], records[-args.late :]
    work = Path(tempfile.mkdtemp(prefix="nivl-replicas-", dir=args.tmp))
    logs = work / "logs"
    logs.mkdir()
    replicas: list[Replica] = []
    figures: dict[str, Any] = {"clients": args.clients, "seconds": args.seconds, "work": str(work)}
    try:
        writer = work / "writer"
        for name, items in (("early", early), ("late", late)):
            (work / f"{name}.jsonl").write_bytes(b"".join(orjson.dumps(i) + b"\n" for i in items))
        nivl("import", str(work / "early.jsonl"), "--home", str(writer))
        nivl("snapshot", str(work / "snap-1"), "--home", str(writer))
        (work / "current").symlink_to("snap-1")
        ports = [free_port() for _ in range(4)]
        replicas = [
            Replica(f"r{n + 1}", work / "current", port, logs) for n, port in enumerate(ports[:2])
        ]
        for replica in replicas:
            replica.start()
        for replica in replicas:
            wait_for(lambda r=replica: revision_of(r.port) is not None, f"{replica.name} up")
        first_revision = revision_of(ports[0])
        front, stats = ports[2], ports[3]
        env = {
            **os.environ,
            "NIVL_BIND": f"{HOST}:{front}",
            "NIVL_REPLICA_1": f"{HOST}:{ports[0]}",
            "NIVL_REPLICA_2": f"{HOST}:{ports[1]}",
            "NIVL_STATS": f"{HOST}:{stats}",
        }
        with haproxy(env, logs):
            t0 = time.monotonic()
            watch = Watch(stats, t0)
            wait_for(lambda: watch.last == {"r1": "UP", "r2": "UP"}, "HAProxy to see both up")
            events = run_load(args, early, late, replicas, work, front, t0, watch)
            figures["events"] = events
            watch.stop()
            figures["haproxy"] = [
                {"t": round(t, 2), "server": s, "state": state} for t, s, state in watch.events
            ]
            figures["retries"] = int(watch.backend.get("wretr") or 0)
            figures["redispatches"] = int(watch.backend.get("wredis") or 0)
            figures.update(check_late(late, replicas, front))
        figures["revisions"] = [first_revision, events["new_revision"]]
        figures.update(events.pop("load"))
    finally:
        for replica in replicas:
            replica.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return figures


def run_load(
    args: argparse.Namespace,
    early: list[dict[str, Any]],
    late: list[dict[str, Any]],
    replicas: list[Replica],
    work: Path,
    front: int,
    t0: float,
    watch: Watch,
) -> dict[str, Any]:
    """The clients' run, with the kill, the restart and the roll-out during it."""
    paths = search_paths(early)
    stop = threading.Event()
    load = Load()
    threads = [
        threading.Thread(target=client, args=(front, paths, n, stop, load), daemon=True)
        for n in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    since = lambda: round(time.monotonic() - t0, 2)  # noqa: E731
    events: dict[str, Any] = {}
    r1 = replicas[0]
    time.sleep(max(0.0, t0 + args.kill_at * args.seconds - time.monotonic()))
    for kill in range(args.kills):  # one, unless asked: each waits for r1 to be back in
        if kill:
            wait_for(lambda: watch.last.get("r1") == "UP", "HAProxy to take r1 back")
        r1.kill()
        events["killed"] = since()
        time.sleep(args.down)
        r1.start()
        events["restarted"] = since()
        wait_for(lambda: revision_of(r1.port) is not None, "r1 to answer again")
        events["answering"] = since()
    events["kills"] = args.kills
    time.sleep(max(0.0, t0 + args.rollout_at * args.seconds - time.monotonic()))
    events["rollout_started"] = since()
    writer = work / "writer"
    nivl("import", str(work / "late.jsonl"), "--home", str(writer))
    nivl("snapshot", str(work / "snap-2"), "--home", str(writer))
    new_revision = int(orjson.loads((work / "snap-2" / "snapshot.json").read_bytes())["revision"])
    (work / "current.new").symlink_to("snap-2")
    os.rename(work / "current.new", work / "current")  # atomic: the link is never missing
    events["link_swapped"] = since()
    wait_for(
        lambda: all(revision_of(r.port) == new_revision for r in replicas),
        "both replicas to serve snap-2",
    )
    events["rolled_out"] = since()
    events["new_revision"] = new_revision
    time.sleep(max(0.0, t0 + args.seconds - time.monotonic()))
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    events["ended"] = since()
    latencies = sorted(seconds for _start, seconds, _failed in load.samples)
    events["load"] = {
        "requests": len(load.samples),
        "failures": len(load.failures),
        "failure_examples": load.failures[:5],
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "served_by": dict(sorted(load.served_by.items())),
        "requests_per_s": round(len(load.samples) / max(events["ended"], 1e-9), 1),
    }
    return events


def check_late(late: list[dict[str, Any]], replicas: list[Replica], front: int) -> dict[str, Any]:
    """The late records are found on each replica and through HAProxy after the roll-out."""
    nasa_id = str(late[0]["data"][0]["nasa_id"])
    path = "/search?" + urlencode({"nasa_id": nasa_id})
    found = {}
    for name, port in [(r.name, r.port) for r in replicas] + [("haproxy", front)]:
        # Each worker of a replica follows the link on its own (polled every 0.5 s), and
        # /healthz answered from one of them: a few seconds for the others to follow.
        deadline = time.monotonic() + 10.0
        while True:
            status, body, _ = get(port, path, timeout=10)
            metadata = orjson.loads(body)["collection"]["metadata"] if status == 200 else {}
            hits = metadata.get("total_hits", 0)
            if hits == 1 or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        found[name] = hits
    return {"late_record": nasa_id, "late_found": found}


def report(figures: dict[str, Any]) -> str:
    e = figures["events"]
    hap = ", ".join(f"{x['server']} {x['state']} at {x['t']} s" for x in figures["haproxy"])
    lines = [
        f"{figures['clients']} clients for {e['ended']} s through HAProxy to 2 replicas",
        f"requests {figures['requests']} ({figures['requests_per_s']}/s), "
        f"failures {figures['failures']}",
        f"latency p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
        f"max {figures['max_ms']} ms",
        f"served by {figures['served_by']}; HAProxy retries {figures['retries']}, "
        f"redispatches {figures['redispatches']}",
        f"r1 SIGKILLed at {e['killed']} s, restarted at {e['restarted']} s, answering at "
        f"{e['answering']} s ({e['answering'] - e['restarted']:.2f} s after its start)",
        f"HAProxy saw: {hap}",
        f"roll-out: started {e['rollout_started']} s, link swapped {e['link_swapped']} s, "
        f"both replicas on revision {e['new_revision']} at {e['rolled_out']} s "
        f"({e['rolled_out'] - e['link_swapped']:.2f} s after the swap)",
        f"late record {figures['late_record']}: hits {figures['late_found']}",
    ]
    lines += [f"  failed: {f}" for f in figures["failure_examples"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kill-at", type=float, default=0.3, help="fraction of the run")
    parser.add_argument("--down", type=float, default=3.0, help="seconds r1 stays dead")
    parser.add_argument("--kills", type=int, default=1, help="times r1 is killed (in turn)")
    parser.add_argument("--rollout-at", type=float, default=0.6, help="fraction of the run")
    parser.add_argument("--late", type=int, default=100, help="records only snap-2 holds")
    parser.add_argument("--data", type=Path, default=shared_records())
    parser.add_argument("--tmp", type=Path, default=None, help="where the work folder goes")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and logs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = run(args)
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    ok = figures["failures"] == 0 and all(n == 1 for n in figures["late_found"].values())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
