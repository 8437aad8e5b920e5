"""Rich renderables for the CLI's terminal output (data for pipes goes out as JSON)."""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .groups import DupesReport, GroupPage
from .harvest import HarvestResult
from .ingest import ImportSummary
from .search import SearchResult


class ResultsTable:
    """A page of search results as a table, with the totals under it."""

    def __init__(self, result: SearchResult) -> None:
        self.result = result

    def __rich__(self) -> Group:
        result = self.result
        table = Table(show_edge=False, pad_edge=False, expand=False)
        table.add_column("#", justify="right", style="dim")
        table.add_column("nasa_id", overflow="fold", max_width=28)
        table.add_column("date")
        table.add_column("type")
        table.add_column("center")
        table.add_column("title", overflow="fold")
        grouped = any(hit.group is not None for hit in result.hits)
        if grouped:
            table.add_column("group", justify="right")
        for position, hit in enumerate(result.hits, start=result.request.offset + 1):
            data = _data(hit.raw_json)
            row: list[str | Text] = [
                str(position),
                Text(str(data.get("nasa_id", ""))),
                str(data.get("date_created", ""))[:10],
                str(data.get("media_type", "")),
                str(data.get("center", "") or ""),
                Text(str(data.get("title", ""))),
            ]
            if grouped:
                size = hit.group.size if hit.group else 1
                row.append(f"+{size - 1}" if size > 1 else "")
            table.add_row(*row)
        lines: list[Any] = [table, Text(summary_line(result), style="dim")]
        if result.suggestion:
            lines.append(Text(suggestion_line(result), style="yellow"))
        return Group(*lines)


def summary_line(result: SearchResult) -> str:
    request = result.request
    shown = len(result.hits)
    first = request.offset + 1 if shown else 0
    line = f"{first}–{request.offset + shown} of {result.total_hits} records"
    if result.total_groups is not None:
        line += f" ({result.total_groups} {request.collapse} groups)"
    line += f", page {request.page}"
    if result.has_next:
        line += f"; next: --page {request.page + 1}"
    return line


def suggestion_line(result: SearchResult) -> str:
    """ "Did you mean", or, when a word matched nothing, what the results are for."""
    if result.corrected:
        return (
            f"Showing results for {result.suggestion!r}; search instead for "
            f"{result.request.q!r} with --match all"
        )
    return f"Did you mean {result.suggestion!r}?"


class ImportReport:
    def __init__(self, summary: ImportSummary, *, max_rejections: int = 20) -> None:
        self.summary = summary
        self.max_rejections = max_rejections

    def __rich__(self) -> Group:
        s = self.summary
        parts: list[Any] = []
        rejections = s.rejections
        for rejection in rejections[: self.max_rejections]:
            parts.append(Text(f"rejected {rejection}", style="yellow"))
        if len(rejections) > self.max_rejections:
            parts.append(Text(f"... and {len(rejections) - self.max_rejections} more rejected"))
        line = (
            f"read {s.read}, new {s.new}, updated {s.updated}, unchanged {s.unchanged}, "
            f"rejected {s.rejected}"
        )
        if s.assets:
            line += f", asset manifests {s.assets}"
        parts.append(Text(line, style="bold"))
        return Group(*parts)


def _data(raw: str | bytes) -> dict[str, Any]:
    item = orjson.loads(raw)
    data = item.get("data") if isinstance(item, dict) else None
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}


class GroupTable:
    """One page of a group's members (``nivl group show``)."""

    def __init__(self, page: GroupPage) -> None:
        self.page = page

    def __rich__(self) -> Group:
        page = self.page
        table = Table(show_edge=False, pad_edge=False, expand=False)
        for name in ("#", "nasa_id", "date", "center", "title"):
            table.add_column(name, overflow="fold", justify="right" if name == "#" else "left")
        start = (page.page - 1) * page.page_size + 1
        for position, raw in enumerate(page.raws, start=start):
            data = _data(raw)
            table.add_row(
                str(position),
                Text(str(data.get("nasa_id", ""))),
                str(data.get("date_created", ""))[:10],
                str(data.get("center", "") or ""),
                Text(str(data.get("title", ""))),
            )
        line = f"{page.level} group {page.id}: {page.size} records, page {page.page}"
        if page.has_next:
            line += f"; next: --page {page.page + 1}"
        return Group(table, Text(line, style="dim"))


class DupesTable:
    """The largest groups and what each level hides (``nivl dupes``)."""

    def __init__(self, report: DupesReport) -> None:
        self.report = report

    def __rich__(self) -> Group:
        report = self.report
        table = Table(show_edge=False, pad_edge=False, expand=False)
        for name in ("level", "size", "group", "representative", "title"):
            table.add_column(name, overflow="fold", justify="right" if name == "size" else "left")
        for group in report.groups:
            table.add_row(
                group.level, str(group.size), str(group.id), Text(group.nasa_id), Text(group.title)
            )
        hidden = ", ".join(
            f"{level} {count} ({count / report.records:.0%})" if report.records else f"{level} 0"
            for level, count in report.hidden.items()
        )
        return Group(table, Text(f"of {report.records} records, collapsing hides: {hidden}"))


class HarvestReport:
    """A harvest's summary: counts, then each failed or incomplete partition with its counts."""

    def __init__(self, result: HarvestResult) -> None:
        self.result = result

    def __rich__(self) -> Group:
        r = self.result
        parts: list[Any] = []
        for problem in r.failed:
            parts.append(Text(f"failed: {problem.partition}: {problem.reason}", style="red"))
        for problem in r.incomplete:
            parts.append(
                Text(
                    f"incomplete: {problem.partition}: {problem.reason} "
                    f"(expected {problem.expected}, got {problem.received})",
                    style="yellow",
                )
            )
        rate = r.received / r.seconds if r.seconds else 0.0
        line = (
            f"{'resumed; ' if r.resumed else ''}{r.partitions} partitions, {r.pages} pages, "
            f"{r.received} records received ({rate:.0f}/s): new {r.new}, updated {r.updated}, "
            f"unchanged {r.unchanged}, rejected {r.rejected}; {r.requests} requests, "
            f"{r.retries} retries"
        )
        if r.assets:
            line += f", asset documents {r.assets}"
        parts.append(Text(line, style="bold"))
        return Group(*parts)
