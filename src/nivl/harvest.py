"""Harvesting: upstream → store, partitioned, resumable and incremental.

Upstream serves a search only as deep as its result window, so a harvest
walks *partitions* that each fit in it. ``--all`` starts from one partition
per media type; a partition whose ``total_hits`` is larger than the window
(known from a refused deep page, or given as ``max_results``) is split: its
year range in halves down to single years, then by center. A refused deep
page (a 4xx for page N > 1) is a signal to split, not a failure. A leaf (one
media type, year and center) still too big is *probed*: searched again with
one keyword, title word or creator at a time, until the store holds all it
promised. Children of a split are disjoint, so their totals must add up to
the parent's; what no search reaches is reported with its counts.

Each page's records are written in the same transaction as the partition's
checkpoint (``harvest:<run>:<partition>`` in the meta table), so after a
crash or SIGKILL the same command continues from the next page and ends with
the same mirror as an uninterrupted run. A run is finished when no partition
failed; until then, rerunning the same command resumes it and retries only
what failed.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from .errors import RecordRejected, UpstreamError
from .records import MEDIA_TYPES, Record, parse_item
from .store import Store
from .upstream import PageRefused, Upstream

log = logging.getLogger(__name__)

FIRST_YEAR = 1900
#: NASA centers as upstream spells them; centers seen in the store are added to these.
CENTERS = tuple(
    "AFRC AMES ARC GRC GSFC HQ JPL JSC KSC LARC LRC MAF MSFC NSSTC SSC WFF WSTF".split()
)
#: Fields searched, one value at a time, to reach a leaf's records beyond the window.
PROBES = ("keywords", "title", "photographer", "secondary_creator", "location")
_PREFIX = "harvest:"
_TITLE_WORD = re.compile(r"[^\W\d_]{4,}")


@dataclass(frozen=True, order=True)
class Partition:
    """One upstream search: a topic and filters. ``key`` names it in checkpoints."""

    q: str | None = None
    media_type: str | None = None
    year_start: int | None = None
    year_end: int | None = None
    center: str | None = None
    probe: tuple[str, str] | None = None  # (field, value): one of PROBES, past the window

    @property
    def params(self) -> dict[str, str]:
        values: dict[str, object] = {
            "q": self.q,
            "media_type": self.media_type,
            "year_start": self.year_start,
            "year_end": self.year_end,
            "center": self.center,
        }
        if self.probe is not None:
            values[self.probe[0]] = self.probe[1]
        return {name: str(value) for name, value in values.items() if value is not None}

    @property
    def key(self) -> str:
        return urlencode(sorted(self.params.items()))

    @classmethod
    def from_key(cls, key: str) -> Partition:
        values: dict[str, Any] = dict(parse_qsl(key, keep_blank_values=True))
        for name in ("year_start", "year_end"):
            if name in values:
                values[name] = int(values[name])
        probes = [(name, values.pop(name)) for name in PROBES if name in values]
        return cls(**values, probe=probes[0] if probes else None)

    def __str__(self) -> str:
        return " ".join(f"{name}={value}" for name, value in self.params.items())


@dataclass(frozen=True)
class PartitionProblem:
    """A partition that failed (``reason``) or could not be fully fetched (counts)."""

    partition: str
    reason: str
    expected: int | None = None
    received: int | None = None


@dataclass
class HarvestResult:
    partitions: int = 0
    pages: int = 0
    received: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    assets: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0  # fetching and storing; indexing comes after
    indexed: int = 0
    resumed: bool = False
    failed: list[PartitionProblem] = field(default_factory=list)
    incomplete: list[PartitionProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every partition was fetched in full (the CLI's exit status)."""
        return not self.failed and not self.incomplete

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class Progress:
    """What a progress bar needs, sent after every page and every finished partition."""

    partitions_done: int
    partitions_known: int
    received: int


ProgressCallback = Callable[[Progress], object]


def harvest(
    store: Store,
    client: Upstream,
    *,
    q: str | None = None,
    media_type: str | None = None,
    year_start: int | None = None,
    year_end: int | None = None,
    center: str | None = None,
    since: int | str | None = None,
    page_size: int = 100,
    max_results: int | None = None,
    with_assets: bool = False,
    progress: ProgressCallback | None = None,
    this_year: int | None = None,
) -> HarvestResult:
    """Mirror the whole library (no ``q``) or one topic into ``store`` (only the store:
    ``Library.harvest`` brings the derived state up to date after it).

    ``since`` (a year, or ``"last"``: the mark left by the last finished run
    over the whole library, or over everything from the mark before it on)
    limits a harvest to records dated from that year on, which is where
    upstream adds and edits. ``max_results`` is upstream's result window
    if known; otherwise it is learnt from the first refused deep page.
    """
    started = time.monotonic()
    this_year = this_year or datetime.now(UTC).year
    mark = store.get_meta(f"{_PREFIX}last")
    if since == "last":
        since = int(mark) if mark else None
    # A finished run that covered everything dated from the last mark on moves the mark.
    moves_mark = q is None and not (media_type or center or year_start or year_end)
    moves_mark = moves_mark and (since is None or (mark is not None and int(since) <= int(mark)))
    if since is not None:
        year_start = max(int(since), year_start or int(since))
    roots = _roots(q, media_type, year_start, year_end, center)
    command = urlencode(
        [("page_size", page_size), *sorted({"q": q or "", "since": since or ""}.items())]
        + [("root", root.key) for root in roots]
    )
    whole_library = moves_mark and since is None
    run = _Run(store, client, command, page_size, max_results, this_year, progress)
    result = run.result
    try:
        run.execute(roots)
        run.close_gaps()
    finally:
        result.requests = client.requests - run.requests_before
        result.retries = client.retried - run.retries_before
    if with_assets and not result.failed:
        backlog = store.nasa_ids_without_asset()
        if not whole_library:  # a topic fetches its own records' documents, not everyone's
            backlog = [row for row in backlog if row[0] in run.received_ids]
        requests, retries = client.requests, client.retried
        failures: list[PartitionProblem] = []
        result.assets = fetch_assets(store, client, backlog, failures=failures)
        result.failed.extend(failures)
        result.requests += client.requests - requests
        result.retries += client.retried - retries
    run.finish(move_mark=moves_mark)
    result.seconds = time.monotonic() - started
    return result


def _roots(
    q: str | None,
    media_type: str | None,
    year_start: int | None,
    year_end: int | None,
    center: str | None,
) -> list[Partition]:
    media_types = [m.strip() for m in media_type.split(",")] if media_type else []
    if not q:
        media_types = media_types or list(MEDIA_TYPES)  # upstream needs some parameter
    base = Partition(q=q or None, year_start=year_start, year_end=year_end, center=center)
    return [replace(base, media_type=m) for m in media_types] or [base]


class _Run:
    """One harvest command's walk over its partitions, with its checkpoints."""

    def __init__(
        self,
        store: Store,
        client: Upstream,
        command: str,
        page_size: int,
        max_results: int | None,
        this_year: int,
        progress: ProgressCallback | None,
    ) -> None:
        self.store = store
        self.client = client
        self.page_size = page_size
        self.this_year = this_year
        self.progress = progress
        self.result = HarvestResult()
        self.requests_before = client.requests
        self.retries_before = client.retried
        self.received_ids: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.known = 0
        self.done = 0
        self.totals: dict[str, int] = {}
        self.children: dict[str, list[str]] = {}
        cap = store.get_meta(f"{_PREFIX}window")
        self.window = max_results or (int(cap) if cap else None)
        self.run_key = f"{_PREFIX}run:{command}"
        state = _load(store.get_meta(self.run_key))
        if state.get("state") == "running":
            self.run_id = int(state["id"])
            self.result.resumed = True
        else:
            self.run_id = int(store.get_meta(f"{_PREFIX}runs", "0") or 0) + 1
            store.set_meta(f"{_PREFIX}runs", str(self.run_id))
            store.set_meta(self.run_key, _dump({"id": self.run_id, "state": "running"}))

    def checkpoint_key(self, partition: Partition) -> str:
        return f"{_PREFIX}{self.run_id}:{partition.key}"

    # --- the walk -------------------------------------------------------------------

    def execute(self, roots: Iterable[Partition]) -> None:
        """Run partitions on ``client.concurrency`` threads; splits add their children."""
        with ThreadPoolExecutor(max_workers=max(1, self.client.concurrency)) as pool:
            pending: dict[Future[list[Partition]], Partition] = {}

            def submit(partition: Partition) -> None:
                self.known += 1
                pending[pool.submit(self.partition, partition)] = partition

            for root in roots:
                submit(root)
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        pending.pop(future)
                        self.done += 1
                        for child in future.result():
                            submit(child)
                    self._report()
            except BaseException:
                self.stopping.set()  # Ctrl-C: running partitions stop after their page
                for future in pending:
                    future.cancel()
                raise

    def partition(self, partition: Partition) -> list[Partition]:
        """Fetch one partition (or resume it); returns the partitions it split into."""
        try:
            return self._partition(partition)
        except UpstreamError as exc:
            log.warning("partition %s failed: %s", partition, exc)
            with self.lock:
                self.result.failed.append(PartitionProblem(str(partition), str(exc)))
            return []

    def _partition(self, partition: Partition) -> list[Partition]:
        key = self.checkpoint_key(partition)
        state = _load(self.store.get_meta(key))
        if "total" in state:
            self.totals[partition.key] = int(state["total"])
        if state.get("status") in ("done", "incomplete"):
            self._count_partition(partition, state)
            return []
        if state.get("status") not in ("split", "probing"):
            state = self._pages(partition, key, state)
            if self.stopping.is_set():
                return []
        status = state.get("status")
        if status == "split":
            return self._split(partition, state)
        if status != "done" and _probeable(partition):
            status = state["status"] = "probing"
            self.store.set_meta(key, _dump(state))
        if status == "probing":
            state = self._probe(partition, int(state["total"]))
        elif status != "done":  # pages ran out (or were refused) before total_hits
            state["status"] = "incomplete"
        self.store.set_meta(key, _dump(state))
        self._count_partition(partition, state)
        return []

    def _pages(self, partition: Partition, key: str, state: dict[str, Any]) -> dict[str, Any]:
        """Fetch the partition's pages from its checkpoint on; returns its new state."""
        received = int(state.get("received", 0))
        total = int(state.get("total", -1))
        params = {**partition.params, "page_size": str(self.page_size)}
        try:
            for page in self.client.pages(params, page=int(state.get("page", 0)) + 1):
                if self.stopping.is_set():
                    return state
                total = page.total_hits
                self.totals[partition.key] = total
                received += len(page.items)
                over = self.window is not None and total > self.window
                last = page.next_params is None or not page.items
                state = {"page": page.number, "received": received, "total": total}
                if over and _splittable(partition):
                    state["status"] = "split"
                elif last:
                    state["status"] = "done" if received >= total else "short"
                self._write(page.items, key, state)
                if "status" in state:
                    return state
        except PageRefused as exc:
            self._learn_window((exc.page - 1) * self.page_size)
            status = "split" if _splittable(partition) else "short"
            state = {**state, "received": received, "total": total, "status": status}
            self.store.set_meta(key, _dump(state))
        return state

    def _probe(self, partition: Partition, total: int) -> dict[str, Any]:
        """Reach a leaf's records beyond the window by searching for what its records say.

        The leaf (one media type, year and center) cannot be split further, so
        it is searched again with one more filter at a time: each keyword, title
        word, photographer, secondary creator or location seen in its records so
        far, most common first, in rounds (each round brings records with new
        values). These searches overlap, so coverage is counted in the store,
        and probing stops as soon as the store holds ``total`` records of the
        leaf. Whatever no probe reaches is reported, with its count.
        """
        media_type, year, center = (
            partition.media_type or "",
            partition.year_start or 0,
            partition.center,
        )
        tried: set[tuple[str, str]] = set()
        covered = self.store.count_where(media_type=media_type, year=year, center=center)
        while covered < total and not self.stopping.is_set():
            counts: Counter[tuple[str, str]] = Counter()
            for raw in self.store.raw_where(media_type=media_type, year=year, center=center):
                counts.update(set(_probes(parse_item(orjson.loads(raw), raw=raw))))
            fresh = sorted(
                (p for p in counts if p not in tried),
                key=lambda p: (PROBES.index(p[0]), -counts[p], p[1]),
            )
            if not fresh:
                break
            for probe in fresh:
                tried.add(probe)
                self._partition(replace(partition, probe=probe))
                covered = self.store.count_where(media_type=media_type, year=year, center=center)
                if covered >= total or self.stopping.is_set():
                    break
        status = "done" if covered >= total else "incomplete"
        log.debug("%s: %d of %d with %d probes", partition, covered, total, len(tried))
        return {"status": status, "total": total, "received": covered, "probes": len(tried)}

    def _write(self, items: list[Any], key: str, state: dict[str, Any]) -> None:
        """One page's records and the partition's checkpoint, in one transaction."""
        records: list[Record] = []
        rejected = 0
        for item in items:
            try:
                records.append(parse_item(item))
            except RecordRejected as exc:
                rejected += 1
                log.warning("rejected an item: %s", exc)
        upserted = self.store.upsert_batch(records, checkpoint={key: _dump(state)})
        with self.lock:
            result = self.result
            result.pages += 1
            result.received += len(items)
            result.rejected += rejected
            result.new += upserted.new
            result.updated += upserted.updated
            result.unchanged += upserted.unchanged
            self.received_ids.update(record.nasa_id for record in records)
        self._report()

    def _split(self, partition: Partition, state: dict[str, Any]) -> list[Partition]:
        if "children" not in state:
            children = self._children(partition)
            state = {**state, "status": "split", "children": [c.key for c in children]}
            self.store.set_meta(self.checkpoint_key(partition), _dump(state))
            log.debug("split %s (%s) into %d", partition, state.get("total"), len(children))
        keys = list(state["children"])
        with self.lock:
            self.children[partition.key] = keys
        return [Partition.from_key(k) for k in keys]

    def _children(self, partition: Partition) -> list[Partition]:
        """Disjoint parts: by media type (a topic), then years in halves, then centers."""
        if partition.media_type is None:
            return [replace(partition, media_type=m) for m in MEDIA_TYPES]
        if partition.year_start is None or partition.year_end is None:
            low = partition.year_start or FIRST_YEAR
            high = partition.year_end or self.this_year
            if low == high:
                return [replace(partition, year_start=low, year_end=high)]
            middle = (low + high) // 2
            return [
                replace(partition, year_start=low, year_end=middle),
                replace(partition, year_start=middle + 1, year_end=high),
            ]
        if partition.year_start < partition.year_end:
            middle = (partition.year_start + partition.year_end) // 2
            return [
                replace(partition, year_end=middle),
                replace(partition, year_start=middle + 1),
            ]
        seen = {c for c in self.store.stats()["by_center"] if c}
        return [replace(partition, center=c) for c in sorted({*CENTERS, *seen})]

    def _learn_window(self, window: int) -> None:
        """Remember upstream's result window so later partitions split before paging."""
        with self.lock:
            if window > 0 and (self.window is None or window < self.window):
                self.window = window
                self.store.set_meta(f"{_PREFIX}window", str(window))

    def _count_partition(self, partition: Partition, state: Mapping[str, Any]) -> None:
        with self.lock:
            self.result.partitions += 1
            if state.get("status") == "incomplete" and partition.probe is None:
                reason = "pages ran out before total_hits"
                if "probes" in state:
                    reason = f"beyond the result window, and {state['probes']} probes"
                self.result.incomplete.append(
                    PartitionProblem(
                        str(partition),
                        reason,
                        int(state.get("total", -1)),
                        int(state.get("received", 0)),
                    )
                )

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(Progress(self.done, self.known, self.result.received))

    # --- the end ----------------------------------------------------------------------

    def close_gaps(self) -> None:
        """Check split partitions against their children; probe or report what none reached.

        Children of a split are disjoint, so their totals add up to the parent's
        unless some records have no year or a center not tried. Within one year,
        those are probed for (``_probe``); the rest are reported with counts.
        """
        for parent, children in sorted(self.children.items()):
            expected = self.totals.get(parent)
            got = [self.totals.get(child) for child in children]
            if expected is None or self.stopping.is_set() or any(t is None for t in got):
                continue
            covered = sum(t for t in got if t is not None)
            partition = Partition.from_key(parent)
            if covered < expected and _probeable(partition):
                try:
                    covered = int(self._probe(partition, expected)["received"])
                except UpstreamError as exc:
                    self.result.failed.append(PartitionProblem(str(partition), str(exc)))
                    continue
            if covered < expected:
                self.result.incomplete.append(
                    PartitionProblem(
                        str(partition),
                        "items no child partition reaches (no year or an unknown center)",
                        expected,
                        covered,
                    )
                )

    def finish(self, *, move_mark: bool) -> None:
        """Close a run in which nothing failed: drop its checkpoints, move the mark."""
        result = self.result
        if result.failed or self.stopping.is_set():
            return  # the same command resumes this run and retries what failed
        self.store.set_meta(self.run_key, _dump({"id": self.run_id, "state": "finished"}))
        self.store.delete_meta_prefix(f"{_PREFIX}{self.run_id}:")
        if move_mark:
            self.store.set_meta(f"{_PREFIX}last", str(self.this_year))


def _probes(record: Record) -> Iterator[tuple[str, str]]:
    """(field, value) searches that find this record, for ``_Run._probe``."""
    for keyword in record.keywords:
        if "," not in keyword:  # upstream's keywords parameter is a comma list
            yield "keywords", keyword
    for word in _TITLE_WORD.findall(record.title):
        yield "title", word.lower()
    for name in PROBES[2:]:
        value = getattr(record, name).strip()
        if value and "," not in value:
            yield name, value


def _probeable(partition: Partition) -> bool:
    """A whole-library partition of one media type and year can be probed (``_probe``)."""
    return (
        partition.q is None
        and partition.probe is None
        and partition.media_type is not None
        and partition.year_start is not None
        and partition.year_start == partition.year_end
    )


def _splittable(partition: Partition) -> bool:
    return (
        partition.media_type is None
        or partition.center is None
        or (
            partition.year_start is None
            or partition.year_end is None
            or partition.year_start < partition.year_end
        )
    )


def fetch_assets(
    store: Store,
    client: Upstream,
    records: Iterable[tuple[str, str]],
    *,
    failures: list[PartitionProblem] | None = None,
) -> int:
    """Fetch /asset manifests, /metadata (and, for videos, /captions) locations; count them.

    ``records`` are (nasa_id, media_type) pairs, fetched ``client.concurrency`` at a time
    and written here, one row each. A row is written even when upstream has none of them
    (404s), so that a rerun does not ask again: the backlog is
    ``Store.nasa_ids_without_asset()``. A record whose documents could not be fetched
    gets no row (the next run asks again) and, given ``failures``, a problem there;
    without it the first failure raises.
    """

    def documents(nasa_id: str, media_type: str) -> tuple[str | None, str | None, str | None]:
        manifest = client.asset_manifest(nasa_id)
        metadata = client.location("metadata", nasa_id)
        captions = client.location("captions", nasa_id) if media_type == "video" else None
        return manifest, metadata, captions

    fetched = 0
    with ThreadPoolExecutor(max_workers=client.concurrency) as pool:
        futures = {pool.submit(documents, *row): row[0] for row in records}
        for future in as_completed(futures):
            nasa_id = futures[future]
            try:
                manifest, metadata, captions = future.result()
            except UpstreamError as exc:
                if failures is None:
                    raise
                failures.append(PartitionProblem(f"assets of {nasa_id}", str(exc)))
                continue
            store.put_asset(
                nasa_id, manifest=manifest, metadata_location=metadata, captions_location=captions
            )
            fetched += any(doc is not None for doc in (manifest, metadata, captions))
    return fetched


def _load(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = orjson.loads(text)
    return value if isinstance(value, dict) else {}


def _dump(value: Mapping[str, Any]) -> str:
    return orjson.dumps(value).decode()
