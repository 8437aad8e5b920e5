"""Rich renderables for the CLI's terminal output (data for pipes goes out as JSON).

Record text is untrusted: every value shown goes through ``cell`` (a ``Text``, so rich
reads no markup in it) and ``plain`` (no control characters, so a title cannot retitle
the terminal window, clear the screen or reorder what is shown around it).
"""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Group
from rich.padding import Padding
from rich.text import Text

from .groups import DupesReport, GroupPage
from .harvest import HarvestResult
from .ingest import ImportSummary
from .search import SearchResult

#: C0 and C1 controls, DEL, and the bidirectional embeddings, overrides and isolates
#: (U+202A-U+202E, U+2066-U+2069); tab, newline and carriage return become spaces.
_CONTROLS = {
    **{code: None for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))},
    **{code: None for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))},
    **{ord(c): " " for c in "\t\n\r"},
}


def plain(text: str) -> str:
    """``text`` without the characters a terminal would act on instead of showing."""
    return text.translate(_CONTROLS)


def cell(value: object) -> Text:
    """A table cell for a value that came from a record: no markup, no controls."""
    return Text(plain("" if value is None else str(value)))


class ResultsTable:
    """A page of search results, two lines a result, with the totals under it.

    Not a table: nasa_ids run to 120 characters, so each goes whole at the end of its
    result's first line (never wrapped, so it can be copied), the title under it, and a
    collapsed result's group as the command that lists it.
    """

    def __init__(self, result: SearchResult) -> None:
        self.result = result

    def __rich__(self) -> Group:
        result = self.result
        rows = [_data(hit.raw_json) for hit in result.hits]
        lines = RecordLines(rows, first=result.request.offset + 1)
        parts: list[Any] = []
        for position, (hit, data) in enumerate(zip(result.hits, rows, strict=True)):
            parts.extend(lines.record(position, data))
            if hit.group is not None and hit.group.size > 1:
                more = Text(no_wrap=True, overflow="ignore")
                more.append(f"{lines.indent}+{hit.group.size - 1} more: ", style="dim")
                more.append(f"nivl group show {hit.group.id}")
                parts.append(more)
        parts.append(Text(summary_line(result), style="dim"))
        if result.suggestion:
            parts.append(Text(plain(suggestion_line(result)), style="yellow"))
        return Group(*parts)


class RecordLines:
    """Records as ``#  date  type  center  nasa_id`` over their indented title.

    The first line never wraps (print with ``crop=False``): a long nasa_id runs on whole
    at its end instead of being folded into pieces that cannot be copied.
    """

    def __init__(self, rows: list[dict[str, Any]], *, first: int) -> None:
        self.first = first
        self.number_width = len(str(first + max(len(rows) - 1, 0)))
        self.center_width = max((len(str(d.get("center") or "")) for d in rows), default=0)
        self.indent = " " * (self.number_width + 2)

    def record(self, position: int, data: dict[str, Any]) -> list[Any]:
        head = Text(no_wrap=True, overflow="ignore")
        head.append(f"{self.first + position:>{self.number_width}}  ", style="dim")
        head.append(f"{plain(str(data.get('date_created', '')))[:10]:<10}  ")
        head.append(f"{plain(str(data.get('media_type', ''))):<5}  ")
        if self.center_width:
            head.append(f"{plain(str(data.get('center') or '')):<{self.center_width}}  ")
        head.append(plain(str(data.get("nasa_id", ""))), style="bold")
        title = Text(plain(str(data.get("title", ""))))
        return [head, Padding(title, (0, 0, 0, len(self.indent)), expand=False)]


def plural(count: int, noun: str) -> str:
    """``1 record``, ``2 records``, ``3 event groups``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def summary_line(result: SearchResult) -> str:
    """Which results the page shows of how many, and how to get the next page.

    Collapsed, the range counts groups (what the page lists); past the last page it
    says so and names the last page instead of showing an empty range.
    """
    request = result.request
    shown = len(result.hits)
    records = plural(result.total_hits, "record")
    if result.total_groups is not None:
        total = result.total_groups
        of = f"{plural(total, f'{request.collapse} group')} ({records})"
    else:
        total = result.total_hits
        of = records
    if not shown:
        if not total:
            return "no results"
        last = -(-total // request.page_size)
        pages = plural(last, "page")
        return f"page {request.page} is past the end: {of} fit on {pages}; try --page {last}"
    line = f"{request.offset + 1}–{request.offset + shown} of {of}, page {request.page}"
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
            parts.append(Text(plain(f"rejected {rejection}"), style="yellow"))
        if s.rejected > self.max_rejections:
            parts.append(Text(f"... and {s.rejected - self.max_rejections} more rejected"))
        for source in s.empty:
            parts.append(
                Text(plain(f"warning: {source} is empty: nothing to import"), style="yellow")
            )
        line = (
            f"read {s.read}, new {s.new}, updated {s.updated}, unchanged {s.unchanged}, "
            f"rejected {s.rejected}"
        )
        if s.assets:
            line += f", asset manifests {s.assets}"
        if s.nothing_imported:
            line = f"nothing imported: {line}"
        parts.append(Text(line, style="bold"))
        return Group(*parts)


def _data(raw: str | bytes) -> dict[str, Any]:
    item = orjson.loads(raw)
    data = item.get("data") if isinstance(item, dict) else None
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}


class GroupTable:
    """One page of a group's members (``nivl group show``), laid out as search results."""

    def __init__(self, page: GroupPage) -> None:
        self.page = page

    def __rich__(self) -> Group:
        page = self.page
        rows = [_data(raw) for raw in page.raws]
        lines = RecordLines(rows, first=(page.page - 1) * page.page_size + 1)
        parts: list[Any] = []
        for position, data in enumerate(rows):
            parts.extend(lines.record(position, data))
        line = f"{page.level} group {page.id}: {plural(page.size, 'record')}, page {page.page}"
        if not rows and page.page > 1:
            last = -(-page.size // page.page_size)
            line += f" is past the end; try --page {last}"
        if page.has_next:
            line += f"; next: --page {page.page + 1}"
        return Group(*parts, Text(line, style="dim"))


class DupesTable:
    """The largest groups and what each level hides (``nivl dupes``).

    One line a group (level, size, the command that lists it, its representative's
    nasa_id, never wrapped), its title under it.
    """

    def __init__(self, report: DupesReport) -> None:
        self.report = report

    def __rich__(self) -> Group:
        report = self.report
        size_width = max((len(str(g.size)) for g in report.groups), default=1)
        id_width = max((len(str(g.id)) for g in report.groups), default=1)
        parts: list[Any] = []
        for group in report.groups:
            head = Text(no_wrap=True, overflow="ignore")
            head.append(f"{group.level:<7} {group.size:>{size_width}}  ")
            head.append(f"nivl group show {group.id:<{id_width}}  ")
            head.append(plain(group.nasa_id), style="bold")
            parts.append(head)
            indent = 8 + size_width + 2
            parts.append(Padding(Text(plain(group.title)), (0, 0, 0, indent), expand=False))
        hidden = ", ".join(
            f"{level} {count} ({count / report.records:.0%})" if report.records else f"{level} 0"
            for level, count in report.hidden.items()
        )
        parts.append(Text(f"of {plural(report.records, 'record')}, collapsing hides: {hidden}"))
        return Group(*parts)


class HarvestReport:
    """A harvest's summary: counts, then each failed or incomplete partition with its counts."""

    def __init__(self, result: HarvestResult) -> None:
        self.result = result

    def __rich__(self) -> Group:
        r = self.result
        parts: list[Any] = []
        for problem in r.failed:
            parts.append(Text(plain(f"failed: {problem.partition}: {problem.reason}"), style="red"))
        for problem in r.incomplete:
            parts.append(
                Text(
                    plain(
                        f"incomplete: {problem.partition}: {problem.reason} "
                        f"(expected {problem.expected}, got {problem.received})"
                    ),
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
