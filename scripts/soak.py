"""Soak: `nivl serve` under concurrent clients while imports run in a loop and get killed.

Usage: python scripts/soak.py [--seconds 600] [--clients 16] [--kill-every 60]

A fresh home gets the shared records; `nivl serve` answers CLIENTS threads that
search without pause, while small `nivl import`s of new records run back to back
and, every KILL_EVERY seconds, one larger import is SIGKILLed at a random moment.
At the end: every answer was a 200 consistent with one revision (items, hit count
and facet counts agree; highlights belong to their items; a client never sees the
hit count fall), no nivl process is left, `PRAGMA integrity_check` is ok, and the
store, the groups and the index agree. Prints the figures as JSON; exit 1 on any fault.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RECORDS = Path(os.environ.get("NIVL_SHARED_DATA") or ROOT.parent / "shared/data/nasa") / (
    "records.jsonl"
)
WORD = "zyzzyvas"
QUERIES = [
    {"q": WORD, "page_size": "3", "facets": "media_type", "highlight": "true"},
    {"q": WORD, "page_size": "50", "facets": "media_type,center,year", "sort": "date_desc"},
    {"q": WORD, "page_size": "5", "collapse": "event", "highlight": "true"},
    {"q": "apollo", "page_size": "20", "facets": "media_type,keywords", "highlight": "true"},
    {"q": "moon", "page_size": "10", "collapse": "caption", "facets": "media_type"},
]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIVL_")}
    env["PYTHONPATH"] = f"{ROOT / 'src'}:{env.get('PYTHONPATH', '')}"
    return env


def nivl(*args: str) -> list[str]:
    return [sys.executable, "-m", "nivl", *args]


def check_page(params: dict[str, str], body: dict[str, Any]) -> list[str]:
    """What one answer must hold if it came from one revision of the index."""
    problems = []
    collection = body["collection"]
    total = collection["metadata"]["total_hits"]
    items = collection["items"]
    facets = collection["metadata"].get("facets", {})
    if params.get("collapse", "none") == "none":
        if len(items) != min(total, int(params["page_size"])):
            problems.append(f"{len(items)} items for {total} hits")
        if "media_type" in facets and sum(facets["media_type"].values()) != total:
            problems.append(f"media_type facets {facets['media_type']} for {total} hits")
    for item in items:
        if params["q"] == WORD and WORD not in item["data"][0]["title"]:
            problems.append(f"item {item['data'][0]['title']!r} does not match {WORD!r}")
        marked = item.get("highlight", {}).get("title", "")
        if params.get("highlight") and params["q"] == WORD:
            if WORD not in marked.replace("<b>", "").replace("</b>", ""):
                problems.append(f"highlight {marked!r} is another record's")
    return problems


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def leftovers(home: Path) -> list[str]:
    """Processes (other than this one) whose command line names the home."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(home) in cmdline:
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def wait_for_writer(lock: Path, process: subprocess.Popen[str]) -> None:
    """Until ``process`` holds the home's write lock (or has ended)."""
    while process.poll() is None:
        if lock.exists():
            with lock.open("a") as handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        time.sleep(0.01)


def agreement(home: Path) -> dict[str, Any]:
    """The store, the groups and the index, read without opening a Library (which would
    bring them up to date and hide a disagreement)."""
    sys.path.insert(0, str(ROOT / "src"))
    from nivl.search_index import SearchIndex
    from nivl.store import Store

    conn = sqlite3.connect(home / "nivl.db")
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    ungrouped = conn.execute(
        "SELECT count(*) FROM records r LEFT JOIN record_groups g ON g.id = r.id WHERE g.id IS NULL"
    ).fetchone()[0]
    conn.close()
    with Store(home / "nivl.db", read_only=True) as store:
        index = SearchIndex(home / "index", read_only=True, verify=True)
        top = store.max_rev()
        grouped = int(store.get_meta("grouped_rev", "0") or 0)
        return {
            "integrity": integrity,
            "records": store.count(),
            "indexed": index.num_docs(),
            "store_rev": top,
            "grouped_rev": grouped,
            "indexed_rev": index.indexed_rev(store),
            "ungrouped": ungrouped,
            "index_agrees": index.agrees_with(store, samples=200),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--kill-every", type=float, default=60)
    args = parser.parse_args(argv)
    rng = random.Random(2026)
    items = [json.loads(line) for line in RECORDS.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory(prefix="nivl-soak-") as tmp:
        home = Path(tmp) / "home"
        env = environment()
        subprocess.run(nivl("import", str(RECORDS), "--home", str(home)), env=env, check=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            nivl("serve", "--port", str(port), "--home", str(home)),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print("the server did not start", server.communicate()[1], file=sys.stderr)
                    return 1
                time.sleep(0.2)
        stop = threading.Event()
        lock = threading.Lock()
        figures: dict[str, Any] = {"requests": 0, "errors": 0, "inconsistent": 0}
        problems: list[str] = []

        def client(number: int) -> None:
            seen: dict[int, int] = {}
            with httpx.Client(base_url=url, timeout=60) as http:
                n = number
                while not stop.is_set():
                    which = n % len(QUERIES)
                    params = QUERIES[which]
                    n += 1
                    try:
                        response = http.get("/search", params=params)
                    except httpx.HTTPError as exc:
                        with lock:
                            figures["errors"] += 1
                            problems.append(f"transport: {exc}")
                        continue
                    found: list[str] = []
                    if response.status_code != 200:
                        found = [f"{response.status_code}: {response.text[:200]}"]
                    else:
                        body = response.json()
                        found = check_page(params, body)
                        total = body["collection"]["metadata"]["total_hits"]
                        if params.get("collapse", "none") == "none":
                            if total < seen.get(which, 0):
                                found.append(f"{total} hits after {seen[which]}")
                            seen[which] = max(seen.get(which, 0), total)
                    with lock:
                        figures["requests"] += 1
                        if response.status_code != 200:
                            figures["errors"] += 1
                        elif found:
                            figures["inconsistent"] += 1
                        problems.extend(found[:1])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        next_kill = started + args.kill_every / 2
        serial, imports, kills, failed_imports, expected = 0, 0, 0, 0, set()
        try:
            while time.monotonic() - started < args.seconds:
                kill = time.monotonic() >= next_kill
                size = 3000 if kill else rng.randint(1, 5)
                batch = []
                for _ in range(size):
                    serial += 1
                    source = items[serial % len(items)]
                    title = f"{WORD} soak {serial}" if not kill else f"killed soak {serial}"
                    copy = json.loads(json.dumps(source))
                    copy["data"][0]["nasa_id"] = f"soak-{serial}"
                    copy["data"][0]["title"] = title
                    batch.append(copy)
                path = Path(tmp) / "batch.jsonl"
                path.write_text("".join(json.dumps(item) + "\n" for item in batch))
                importer = subprocess.Popen(
                    nivl("import", str(path), "--home", str(home)),
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                if kill:  # mid-write: once it holds the write lock, at a random moment
                    wait_for_writer(home / "write.lock", importer)
                    time.sleep(rng.uniform(0.0, 3.0))
                    importer.send_signal(signal.SIGKILL)
                    importer.wait()
                    kills += 1
                    next_kill += args.kill_every
                    continue
                _out, err = importer.communicate(timeout=600)
                if importer.returncode != 0:
                    failed_imports += 1
                    problems.append(f"import exit {importer.returncode}: {err.strip()[:200]}")
                else:
                    imports += 1
                    expected.update(item["data"][0]["nasa_id"] for item in batch)
            # The last import (never a killed one) leaves the stages up to date.
            path.write_text(
                json.dumps(
                    {
                        **items[0],
                        "data": [
                            {**items[0]["data"][0], "nasa_id": "soak-last", "title": f"{WORD} last"}
                        ],
                    }
                )
                + "\n"
            )  # noqa: E501
            last = subprocess.run(nivl("import", str(path), "--home", str(home)), env=env)
            imports += last.returncode == 0
            failed_imports += last.returncode != 0
            expected.add("soak-last")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
            seconds = time.monotonic() - started
            health = httpx.get(f"{url}/healthz", timeout=30).json()
            final = httpx.get(f"{url}/search", params={"q": WORD, "page_size": "1"}).json()
            server.send_signal(signal.SIGTERM)
            server_err = server.communicate(timeout=60)[1]
        time.sleep(1)
        figures.update(
            seconds=round(seconds, 1),
            clients=args.clients,
            imports=imports,
            failed_imports=failed_imports,
            kills=kills,
            requests_per_second=round(figures["requests"] / seconds, 1),
            found_of_imported=[final["collection"]["metadata"]["total_hits"], len(expected)],
            healthz=health["status"],
            server_tracebacks=server_err.count("Traceback"),
            leftover_processes=leftovers(home),
            **agreement(home),
        )
        ok = (
            figures["errors"] == 0
            and figures["inconsistent"] == 0
            and failed_imports == 0
            and not figures["leftover_processes"]
            and figures["integrity"] == "ok"
            and figures["records"] == figures["indexed"]
            and figures["store_rev"] == figures["grouped_rev"] == figures["indexed_rev"]
            and figures["ungrouped"] == 0
            and figures["index_agrees"]
            and figures["found_of_imported"][0] == len(expected)
            and figures["healthz"] == "ok"
            and figures["server_tracebacks"] == 0
        )
        figures["ok"] = ok
        figures["problems"] = problems[:10]
        print(json.dumps(figures, indent=2))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
