"""Throughput of the built-in model's vectors stage, as an import runs it.

Usage:
    python bench/builtin_embed.py [N]        # N synthetic records (default 20000)

Makes N upstream-shaped records with bench/synth.py (from ../shared/data/nasa, read in
place), imports them into a temporary home, and prints what the import's vectors stage took
(record text parsing, embedding with the built-in model, saving the matrix file): records
per wall second and per CPU second of this process, with the load average (the machine is
shared), then the stage alone again with its CPU time (records per CPU second: one core's
rate, what the stage gets on an idle machine). Also the model's size on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nivl import Library, Settings, embeddings
from nivl.library import BUILTIN_VECTORS_FILE

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    model = Path(embeddings.__file__).parent / "model"
    size = sum(p.stat().st_size for p in model.iterdir())
    print(f"model {embeddings.BUILTIN_MODEL}: {size / 1e6:.1f} MB on disk ({model})")
    with tempfile.TemporaryDirectory() as folder:
        records = Path(folder) / "synth.jsonl"
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "synth.py"), str(count), str(records)],
            check=True,
            capture_output=True,
        )
        library = Library(Settings.from_env({}, home=Path(folder) / "home"))
        library.static_embedder()  # loaded once per process: not part of the stage
        cpu = time.process_time()
        summary = library.import_paths([records])
        cpu = time.process_time() - cpu
        seconds = summary.seconds["vectors"]
        embedded = library.semantic_status()["builtin"]["embedded"]
        file = library.settings.home / BUILTIN_VECTORS_FILE
        print(
            f"vectors stage: {embedded} records in {seconds:.2f} s wall "
            f"({embedded / seconds:.0f} records/s); whole import {cpu:.1f} s CPU; "
            f"matrix file {file.stat().st_size / 1e6:.1f} MB; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        # the stage again on its own (rebuild), timed in CPU seconds too: on a shared machine
        # the wall figure mostly measures the other processes
        wall, cpu = time.perf_counter(), time.process_time()
        again = library.builtin.sync(
            library.store, library.static_embedder().embed, rebuild=True, batch_size=1024
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"vectors stage alone (rebuild): {again} records in {wall:.2f} s wall "
            f"({again / wall:.0f}/s), {cpu:.2f} s CPU ({again / cpu:.0f} records per CPU-s); "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        library.close()


if __name__ == "__main__":
    main()
