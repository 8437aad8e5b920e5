"""The Datasette + SQLite FTS5 baseline of ``http_latency.py --datasette EXE``.

What a user would start from instead of nivl: the same JSONL in one SQLite FTS5 table
(``porter unicode61``, the text fields nivl's ``q`` searches, plus the item's raw JSON and
the filter columns UNINDEXED), served by Datasette, and each query as one SQL statement
through Datasette's JSON API (``/DB.json?sql=...&_shape=array``), tuned: an immutable
database (``-i``: no locking, counted pages cached), no time limit cutting the slow
queries short, as many SQL threads as cores. The rows come back in BM25 order with the
same column weights as nivl's boosts (or by date), with the raw item, so a page holds the
same data as nivl's page of 100 (as JSON strings inside JSON).

Datasette is not one of nivl's dependencies: install it anywhere (for example
``python -m venv /tmp/nivl-bench/datasette-venv && /tmp/nivl-bench/datasette-venv/bin/pip
install datasette==0.65.1``) and pass that ``datasette`` executable.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from search_bench import BATCH, TEXT_FIELDS, Spec, to_doc

from nivl.query import Q_FIELDS


def build(data: Path, db: Path) -> float:
    """The FTS5 database for ``data`` at ``db`` (kept: reused when it exists); seconds."""
    if db.exists():
        return 0.0
    started = time.perf_counter()
    tmp = db.with_name(db.name + f".{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute(
        f"CREATE VIRTUAL TABLE docs USING fts5({', '.join(TEXT_FIELDS)}, raw UNINDEXED, "
        "nasa_id UNINDEXED, media_type UNINDEXED, center UNINDEXED, year UNINDEXED, "
        "ts UNINDEXED, tokenize='porter unicode61')"
    )
    sql = f"INSERT INTO docs VALUES ({', '.join('?' * (len(TEXT_FIELDS) + 6))})"
    with data.open("rb") as lines:
        items = (line for line in lines if line.strip())
        while batch := list(itertools.islice(items, BATCH)):
            rows = []
            for line in batch:
                doc = to_doc(orjson.loads(line))
                rows.append(
                    (*doc.texts, line.strip().decode(), doc.nasa_id, doc.media_type)
                    + (doc.center, doc.year, doc.ts)
                )
            conn.execute("BEGIN")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
    conn.execute("INSERT INTO docs(docs) VALUES ('optimize')")
    conn.close()
    os.replace(tmp, db)
    return time.perf_counter() - started


def params(spec: Spec) -> dict[str, str]:
    """The query of ``spec`` as Datasette's JSON API parameters (one SQL statement)."""
    where = ["docs MATCH :q"]
    out = {"q": " ".join(f'"{w}"' for w in spec.words)}
    if spec.media_type:
        kinds = spec.media_type.split(",")
        where.append(f"media_type IN ({', '.join(f':m{n}' for n in range(len(kinds)))})")
        out |= {f"m{n}": kind for n, kind in enumerate(kinds)}
    if spec.center:
        where.append("center = :center")
        out["center"] = spec.center
    if spec.year_start is not None:
        where.append("year BETWEEN :y0 AND :y1")
        out |= {"y0": str(spec.year_start), "y1": str(spec.year_end)}
    weights = ", ".join(str(w) for w in Q_FIELDS.values())
    order = {"relevance": f"bm25(docs, {weights})", "date_desc": "ts DESC"}.get(spec.sort, "ts ASC")
    out["sql"] = f"SELECT raw FROM docs WHERE {' AND '.join(where)} ORDER BY {order} LIMIT 100"
    out["_shape"] = "array"
    return out


def start(executable: str, db: Path, port: int) -> tuple[subprocess.Popen[bytes], float]:
    """``datasette serve -i DB`` on 127.0.0.1:``port``; the seconds until it answers."""
    threads = len(os.sched_getaffinity(0))
    command = [executable, "serve", "-i", str(db), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--setting", "sql_time_limit_ms", "600000"]
    command += ["--setting", "num_sql_threads", str(threads)]
    command += ["--setting", "max_returned_rows", "1000"]
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}{path(db)}"
    probe: dict[str, Any] = {"sql": "SELECT count(*) FROM docs", "_shape": "array"}
    with httpx.Client(timeout=120) as client:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"datasette exited with status {server.returncode}")
            try:
                if client.get(url, params=probe).status_code == 200:
                    return server, time.perf_counter() - started
            except httpx.TransportError:
                pass
            if time.perf_counter() - started > 120:
                server.terminate()
                raise SystemExit("datasette did not answer within 120 s")
            time.sleep(0.05)


def path(db: Path) -> str:
    """The JSON API path of ``db`` (Datasette names a database after its file)."""
    return f"/{db.stem}.json"


if __name__ == "__main__":  # build the database alone: python bench/datasette_baseline.py DATA DB
    print(f"{build(Path(sys.argv[1]), Path(sys.argv[2])):.1f} s", file=sys.stderr)
