"""The ``nivl`` command line: thin commands over the library.

Data goes to stdout, messages and progress bars to stderr. Exit status: 0 on
success, 1 when input was rejected or something failed, 2 for usage errors
(bad flags or values). ``main`` is the one place errors become messages.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from . import __version__, embeddings
from .documents import search_document
from .embeddings import default_mode
from .errors import BadRequest, ConfigError, InvalidParameter, MissingParameters, NivlError
from .exports import FORMATS
from .harvest import Progress as HarvestProgress
from .library import Library, sample_paths, unhashed_lines
from .media import FetchResult
from .query import UPSTREAM_PARAMETERS, SearchRequest, parse_request
from .render import DupesTable, GroupTable, HarvestReport, ImportReport, ResultsTable, plain
from .settings import Settings
from .upstream import Upstream

app = typer.Typer(
    name="nivl",
    help="A self-hostable mirror and search engine for NASA's Image and Video Library.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: rich mode shows every flag as "<bool>" (typer 0.29) and reads "[...]" in
    # help text as markup.
    rich_markup_mode=None,
)
err = Console(stderr=True, soft_wrap=True)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        metavar="DIR",
        help="Data directory (default: $NIVL_HOME, else the platform data dir).",
        show_default=False,
    ),
]
#: Upstream politeness, shared by ``harvest`` and ``media fetch``.
RateOption = Annotated[
    float | None,
    typer.Option(metavar="PER_SECOND", min=0.01, help="At most this many requests/s."),
]
RetriesOption = Annotated[int, typer.Option(metavar="N", min=0, help="Retries per request.")]
#: The filters ``search`` and ``media fetch`` share (QUERY is described in each docstring).
QueryArgument = Annotated[str, typer.Argument(metavar="QUERY", hidden=True)]
CenterOption = Annotated[str, typer.Option(metavar="CENTER", help="NASA center, e.g. JSC.")]
YearStartOption = Annotated[str, typer.Option(metavar="YYYY", help="First year, inclusive.")]
YearEndOption = Annotated[str, typer.Option(metavar="YYYY", help="Last year, inclusive.")]
KeywordsOption = Annotated[str, typer.Option(metavar="LIST", help="Comma-separated keywords.")]
NasaIdOption = Annotated[str, typer.Option(metavar="ID", help="Exact nasa_id.")]


class Sort(StrEnum):
    relevance = "relevance"
    date_desc = "date_desc"
    date_asc = "date_asc"


class Collapse(StrEnum):
    none = "none"
    caption = "caption"
    event = "event"
    visual = "visual"


class Match(StrEnum):
    auto = "auto"
    all = "all"


class Mode(StrEnum):
    lexical = "lexical"
    semantic = "semantic"
    hybrid = "hybrid"


class Size(StrEnum):
    thumb = "thumb"
    small = "small"
    medium = "medium"
    large = "large"
    orig = "orig"


class MediaType(StrEnum):
    image = "image"
    video = "video"
    audio = "audio"


MediaTypeOption = Annotated[
    list[MediaType] | None,
    typer.Option(metavar="TYPE", help="image, video or audio; repeatable."),
]


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"
    bibtex = "bibtex"
    ris = "ris"


assert tuple(f.value for f in ExportFormat) == FORMATS


def settings_for(home: Path | None, **flags: Any) -> Settings:
    return Settings.from_env(home=str(home) if home else None, **flags)


@contextmanager
def open_library(
    home: Path | None, *, load_sample: bool = False, rebuild_index: bool = False, **flags: object
) -> Iterator[Library]:
    """Open the home's library, saying what opening found (a damaged index rebuilt, stale
    derived state on a read-only home); on an empty home, load the bundled sample if asked."""
    settings = settings_for(home, **flags)
    if settings.home.exists() and not settings.home.is_dir():
        raise ConfigError(f"the home {settings.home} is not a directory")
    with Library(settings, rebuild_index=rebuild_index) as library:
        _print_notes(library.notes)
        if load_sample and settings.load_sample and library.is_empty() and not library.read_only:
            err.print(
                f"[bold]{escape(str(settings.home))} is empty: loading the bundled sample "
                "(1,538 real NASA records).[/] Use 'nivl import' or 'nivl harvest' "
                "for more."
            )
            library.import_paths(sample_paths())
        shown = len(library.notes)
        yield library
        _print_notes(library.notes[shown:])  # e.g. a damaged vector file found on first use


def _print_notes(notes: Sequence[str]) -> None:
    for note in notes:
        err.print(f"nivl: {note}", markup=False, highlight=False, soft_wrap=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"nivl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,  # before click asks for a command
            callback=_print_version,
            expose_value=False,
            help="Show the version and exit.",
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    if home is not None:  # `nivl --home DIR CMD`: DIR is each command's --home default
        ctx.default_map = _defaults_for(ctx.command, {"home": str(home)})


def _defaults_for(command: Any, values: dict[str, object]) -> dict[str, object]:
    """A click ``default_map`` giving ``values`` to every (sub)command below ``command``."""
    return {
        name: {**values, **_defaults_for(sub, values)}
        for name, sub in getattr(command, "commands", {}).items()
    }


@app.command("import")
def import_(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE",
            hidden=True,  # described in the docstring: an argument's help shows a Python type
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    home: HomeOption = None,
) -> None:
    """Import records into the store and index (idempotent: re-importing changes nothing).

    Each FILE holds JSONL of items, upstream /search or /asset responses, or a .gz of either.
    """
    with open_library(home) as library, _byte_progress(paths) as advance:
        summary = library.import_paths(paths, on_bytes=advance)
    err.print(ImportReport(summary))
    if summary.rejected:
        raise typer.Exit(1)


@app.command()
def index(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild from the store.")] = False,
    home: HomeOption = None,
) -> None:
    """Bring the search index up to date with the store (or rebuild it)."""
    with open_library(home, rebuild_index=rebuild) as library:
        count = library.count() if rebuild else library.reindex()
        err.print(f"indexed {count} records; the index holds {library.num_indexed()}")
        if rebuild and embeddings.available() and library.vectors_path.exists():
            _embed(library, rebuild=True)


@app.command()
def embed(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Embed every record again.")] = False,
    home: HomeOption = None,
) -> None:
    """Embed records for semantic search (resumable; run after import or harvest)."""
    embeddings.require("nivl embed")
    with open_library(home) as library:
        _embed(library, rebuild=rebuild)


def _embed(library: Library, *, rebuild: bool) -> None:
    total = library.pending_embeddings(rebuild=rebuild)
    if total:
        err.print(f"embedding {total} records (interrupt at will: the next run carries on)")
    with _count_progress("embedding", total) as advance:
        count = library.embed(rebuild=rebuild, progress=advance)
    status = library.semantic_status()
    err.print(f"embedded {count} records; {status['embedded']} of {library.count()} are embedded")


@app.command()
def search(
    query: QueryArgument = "",
    media_type: MediaTypeOption = None,
    center: CenterOption = "",
    year_start: YearStartOption = "",
    year_end: YearEndOption = "",
    title: Annotated[str, typer.Option(metavar="TEXT", help="Words in the title.")] = "",
    description: Annotated[
        str, typer.Option(metavar="TEXT", help="Words in the description.")
    ] = "",
    keywords: KeywordsOption = "",
    photographer: Annotated[
        str, typer.Option(metavar="TEXT", help="Words in the photographer.")
    ] = "",
    location: Annotated[str, typer.Option(metavar="TEXT", help="Words in the location.")] = "",
    nasa_id: NasaIdOption = "",
    sort: Annotated[Sort, typer.Option(help="Result order.")] = Sort.relevance,
    mode: Annotated[
        Mode | None,
        typer.Option(help="Ranking: hybrid (the default: words and meaning), lexical, semantic."),
    ] = None,
    collapse: Annotated[Collapse, typer.Option(help="Show each group once.")] = Collapse.event,
    match: Annotated[
        Match,
        typer.Option(help="auto: fewer words when all find too little; all: every word, as typed."),
    ] = Match.auto,
    page: Annotated[str, typer.Option(metavar="N", help="Page number, from 1.")] = "1",
    page_size: Annotated[str, typer.Option(metavar="N", help="Results per page.")] = "20",
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON document.")] = False,
    out: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write to this file, not stdout.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Search the mirror; --json prints exactly what GET /search returns.

    QUERY: words to search for in every text field; the options filter.
    """
    params = {
        "q": query,
        "center": center,
        "year_start": year_start,
        "year_end": year_end,
        "title": title,
        "description": description,
        "keywords": keywords,
        "photographer": photographer,
        "location": location,
        "nasa_id": nasa_id,
        "media_type": ",".join(m.value for m in media_type or []),
        "sort": sort.value,
        "mode": mode.value if mode else default_mode(),
        "collapse": collapse.value,
        "match": match.value,
        "page": page,
        "page_size": page_size,
    }
    settings = settings_for(home)
    search_request = _search_request(params, settings)  # bad values fail before any work
    with open_library(home, load_sample=True) as library:
        result = library.search(search_request)
        if as_json:
            host = library.settings.host
            base = library.settings.public_url or (
                f"http://{f'[{host}]' if ':' in host else host}:{library.settings.port}"
            )
            window = library.limits.max_result_window  # no next link to a page refused
            _write(search_document(result, base, window=window) + b"\n", out)
        else:
            console = Console(file=out.open("w") if out else None)
            console.print(ResultsTable(result), crop=False)  # long nasa_ids stay whole


def _search_request(params: dict[str, str], settings: Settings) -> SearchRequest:
    """``parse_request``, with its errors naming the search command's options, not the API's."""
    try:
        return parse_request(params, settings.limits)
    except MissingParameters:
        filters = [name for name in params if name in UPSTREAM_PARAMETERS]
        raise MissingParameters(
            "give words to search for (QUERY) or a filter: "
            + ", ".join(_option(name) for name in filters if name not in ("q", "page", "page_size"))
        ) from None
    except InvalidParameter as exc:
        detail = re.sub(r"\b[a-z]+_[a-z_]+\b", lambda m: _option(m[0], m[0]), exc.detail)
        raise InvalidParameter(_option(exc.parameter), detail) from None


def _option(parameter: str, unknown: str | None = None) -> str:
    if parameter == "q":
        return "QUERY"
    if unknown is not None and parameter not in UPSTREAM_PARAMETERS:
        return unknown
    return "--" + parameter.replace("_", "-")


@app.command()
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Counts of records by media type and center, and the years covered."""
    with open_library(home) as library:
        figures = library.stats()
    if as_json:
        _write(orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n", None)
        return
    console = Console()
    console.print(
        f"[bold]{figures['records']}[/] records, years "
        f"{'–'.join(str(y) for y in figures['years']) or 'none'}"
    )
    for name in ("by_media_type", "by_center"):
        console.print(
            plain(
                f"{name.replace('_', ' ')}: "
                + ", ".join(f"{key or '(none)'} {count}" for key, count in figures[name].items())
            ),
            markup=False,
        )


@app.command("export")
def export_(
    query: QueryArgument = "",
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] = (
        ExportFormat.jsonl
    ),
    media_type: MediaTypeOption = None,
    center: CenterOption = "",
    year_start: YearStartOption = "",
    year_end: YearEndOption = "",
    keywords: KeywordsOption = "",
    nasa_id: NasaIdOption = "",
    out: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write to this file, not stdout.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Export records: jsonl (raw upstream items), csv, parquet, or citations (bibtex, ris).

    QUERY: words to search for (default: every record, in nasa_id order); the options
    filter; a search's hits come newest in the mirror first. CSV cells that a spreadsheet
    would run as a formula (=, +, -, @) start with a '.
    """
    if fmt is ExportFormat.parquet and out is None and sys.stdout.isatty():
        raise typer.BadParameter(
            "parquet is binary and stdout is a terminal: give --out FILE or redirect stdout",
            param_hint="'--format'",
        )
    params = {
        "q": query, "center": center, "year_start": year_start, "year_end": year_end,
        "keywords": keywords, "nasa_id": nasa_id,
        "media_type": ",".join(m.value for m in media_type or []),
        "collapse": "none", "match": "all", "sort": "added_desc",
    }  # fmt: skip
    filtered = any(v for k, v in params.items() if k not in ("collapse", "match", "sort"))
    request = _search_request(params, settings_for(home)) if filtered else None
    with open_library(home) as library:
        if out is None:
            count = library.export(fmt.value, sys.stdout.buffer, request)
        else:
            with out.open("wb") as handle:
                count = library.export(fmt.value, handle, request)
        total = library.search(request).total_hits if request is not None else count
    err.print(f"exported {count} records as {fmt.value}")
    if count < total:  # a search reads as far as the result window (NIVL_MAX_RESULT_WINDOW)
        err.print(f"nivl: {total - count} more records match: narrow the search", markup=False)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(metavar="ADDRESS", help="Address to bind (default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(metavar="PORT", min=1, max=65535, help="Port (default 8000).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(metavar="N", min=1, max=64, help="Server processes (default: one per core)."),
    ] = None,
    read_only: Annotated[
        bool | None,
        typer.Option(
            "--read-only",
            help="Serve a snapshot as is: never write to the home (a symlink is followed).",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Serve the API and the web UI; an empty home gets the bundled sample first."""
    from .web.app import create_app
    from .web.listener import listen, run, serve_config

    flags: dict[str, Any] = {"host": host, "port": port, "workers": workers}
    flags["read_only"] = read_only or None
    settings = settings_for(home, **flags)
    if settings.read_only and not settings.db_path.is_file():
        raise ConfigError(f"nothing to serve read-only: {settings.db_path} does not exist")
    sock = listen(settings.host, settings.port)  # a busy port fails here, before any work
    with open_library(home, load_sample=True, **flags) as library:
        semantic = library.semantic_status()
        records = library.count()
    address = f"[{settings.host}]" if ":" in settings.host else settings.host
    err.print(
        f"nivl {__version__} serving {settings.home} on http://{address}:{settings.port}/",
        markup=False,
    )
    if semantic["available"] and semantic["embedded"] < records:
        err.print(
            f"semantic extra: {semantic['embedded']} of {records} records embedded (run 'nivl"
            f" embed'); searches use the built-in model until all are"
        )
    err.print(f"semantic search: model {semantic['model']}")
    workers = settings.serve_workers
    if workers == 1:
        run(serve_config(create_app(settings), settings), sock)
        return
    # Worker processes build their app from NIVL_* variables; the library is ready (above).
    os.environ.update(settings.replace(workers=workers).as_env())
    app_factory = "nivl.web.app:app_from_env"
    run(serve_config(app_factory, settings, factory=True, workers=workers), sock)


@app.command()
def snapshot(
    folder: Annotated[Path, typer.Argument(metavar="DIR", hidden=True)],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace DIR if it holds a snapshot.")
    ] = False,
    media: Annotated[
        bool, typer.Option("--media", help="Copy HOME/media too (default: not).")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(metavar="SECONDS", min=0, help="How long to wait for a writer to finish."),
    ] = 300.0,
    home: HomeOption = None,
) -> None:
    """Write a consistent copy of the home into DIR, for 'nivl serve --read-only'.

    DIR: a new or empty folder (outside the home); it appears complete or not at all.
    """
    settings = settings_for(home)
    if not settings.db_path.is_file():
        raise ConfigError(f"there is no nivl home at {settings.home} (no nivl.db)")
    with open_library(home) as library:
        done = library.snapshot(folder.absolute(), replace=replace, media=media, wait=wait)
    extra = f", {done.media_files} media files" if media else ""
    err.print(
        f"snapshot {done.path}: revision {done.revision}, {done.records} records{extra}, "
        f"{done.bytes / 2**20:.1f} MB in {done.seconds:.1f} s",
        markup=False,
    )


class Level(StrEnum):
    caption = "caption"
    near = "near"
    event = "event"
    visual = "visual"


group_app = typer.Typer(
    help="Group records by caption, near-duplicate text and event; show a group.",
    invoke_without_command=True,
)
app.add_typer(group_app, name="group")


@group_app.callback()
def group(
    ctx: typer.Context,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Regroup every record.")] = False,
    home: HomeOption = None,
) -> None:
    """Group what changed since the last grouping (imports do this too), then reindex."""
    if ctx.invoked_subcommand is not None:
        return
    with open_library(home) as library:
        update = library.group(rebuild=rebuild)
        hidden = library.hidden_by_level()
    err.print(
        f"grouped {update.records} records, {update.changed} with new group ids; collapsing hides "
        + ", ".join(f"{level} {count}" for level, count in hidden.items())
    )


@group_app.command("show")
def group_show(
    group_id: Annotated[int, typer.Argument(metavar="GROUP_ID", hidden=True)],
    page: Annotated[int, typer.Option(metavar="N", min=1, help="Page number, from 1.")] = 1,
    page_size: Annotated[
        int, typer.Option(metavar="N", min=1, max=1000, help="Records per page.")
    ] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the items as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """List a group's members in date order.

    GROUP_ID: as collapsed search results show it ("+4 more: nivl group show ID").
    """
    with open_library(home) as library:
        found = library.group_page(group_id, page=page, page_size=page_size)
    if as_json:
        head = {"id": str(found.id), "level": found.level, "size": found.size, "page": page}
        items = b",".join(raw.encode() for raw in found.raws)
        _write(orjson.dumps(head)[:-1] + b',"items":[' + items + b"]}\n", None)
    else:
        Console().print(GroupTable(found), crop=False)


@app.command()
def dupes(
    level: Annotated[Level | None, typer.Option(help="One level (default: each).")] = None,
    min_size: Annotated[int, typer.Option(metavar="N", min=2, help="Smallest group to list.")] = 2,
    limit: Annotated[int, typer.Option(metavar="N", min=1, help="Groups to list per level.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """The largest groups, for cleaning up, and how many records each level would hide."""
    with open_library(home) as library:
        report = library.dupes(level=level.value if level else None, min_size=min_size, limit=limit)
        pictures = library.count_pictures()
    if level is Level.visual and not pictures:
        err.print(
            "no mirrored picture is hashed yet, so no record has a visual group: run"
            " 'nivl media fetch --size thumb' first",
            markup=False,
        )
    if as_json:
        groups = [{**vars(g), "id": str(g.id)} for g in report.groups]
        document = {"records": report.records, "hidden": report.hidden, "groups": groups}
        _write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n", None)
    else:
        Console().print(DupesTable(report), crop=False)


@app.command("harvest")
def harvest_(
    all_: Annotated[bool, typer.Option("--all", help="Mirror the whole library.")] = False,
    query: Annotated[
        str | None, typer.Option("--query", metavar="TEXT", help="Mirror one topic.")
    ] = None,
    media_type: Annotated[
        list[MediaType] | None,
        typer.Option(metavar="TYPE", help="image, video or audio; repeatable."),
    ] = None,
    year_start: Annotated[
        int | None, typer.Option(metavar="YYYY", min=1, max=9999, help="First year.")
    ] = None,
    year_end: Annotated[
        int | None, typer.Option(metavar="YYYY", min=1, max=9999, help="Last year.")
    ] = None,
    center: Annotated[
        str | None, typer.Option(metavar="CENTER", help="NASA center, e.g. JSC.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="YYYY|last", help="Only records from that year on; last: since the last --all."
        ),
    ] = None,
    with_assets: Annotated[
        bool,
        typer.Option(
            "--with-assets/--no-assets",
            help="Also fetch each new record's /asset manifest and /metadata (resumable).",
        ),
    ] = True,
    media_size: Annotated[
        Size | None,
        typer.Option(
            "--media", metavar="SIZE", help="Then fetch this rendition too ('nivl media fetch')."
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(metavar="URL", help="Upstream API base URL.")
    ] = None,
    concurrency: Annotated[
        int, typer.Option(metavar="N", min=1, max=64, help="Requests in flight.")
    ] = 4,
    rate: RateOption = None,
    retries: RetriesOption = 6,
    page_size: Annotated[
        int, typer.Option(metavar="N", min=1, help="Results per upstream page.")
    ] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Mirror upstream into the store, resumably: rerun the same command to continue."""
    if all_ == (query is not None):
        raise typer.BadParameter("give either --all or --query")
    if since not in (None, "last") and not (str(since).isdigit() and len(str(since)) <= 4):
        raise typer.BadParameter(f"a year or 'last', not {since!r}", param_hint="'--since'")
    media = ",".join(m.value for m in media_type or []) or None
    with (
        open_library(home, upstream_url=base_url) as library,
        Upstream(
            library.settings.upstream_url, concurrency=concurrency, rate=rate, retries=retries
        ) as client,
        _harvest_progress() as progress,
    ):
        result = library.harvest(
            client, q=query, media_type=media,
            year_start=year_start, year_end=year_end, center=center, progress=progress,
            since=int(since) if since and since.isdigit() else since,
            page_size=page_size, with_assets=with_assets,
        )  # fmt: skip
        fetched = None
        if media_size is not None and result.ok:
            types = tuple(m.value for m in media_type or [])
            topic = SearchRequest(q=query or "", media_type=types, match="all", collapse="none")
            targets = library.media_targets(None if all_ else topic)
            with _media_progress() as bar:
                fetched = library.fetch_media(client, targets, size=media_size, progress=bar)
    err.print(HarvestReport(result))
    if fetched is not None and media_size is not None:
        _print_fetch(fetched, media_size)
    if as_json:
        _write(orjson.dumps(result.as_dict()) + b"\n", None)
    if not result.ok or (fetched is not None and not fetched.ok):
        raise typer.Exit(1)


def _write(data: bytes, out: Path | None) -> None:
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        out.write_bytes(data)


@contextmanager
def _byte_progress(paths: Sequence[Path]) -> Iterator[Callable[[int], object] | None]:
    """A progress bar over the input files' bytes, only on a terminal."""
    if not err.is_terminal:
        yield None
        return
    total = sum(p.stat().st_size for p in paths)
    columns = (
        TextColumn("importing"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("import", total=total)
        yield lambda n: progress.advance(task, n)


@contextmanager
def _harvest_progress() -> Iterator[Callable[[HarvestProgress], object] | None]:
    """Partitions done of those known so far, records and their rate, only on a terminal."""
    if not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("harvesting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("partitions, {task.fields[records]} records ({task.fields[rate]}/s)"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("harvest", total=None, records=0, rate=0)

        def update(event: HarvestProgress) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(
                task,
                completed=event.partitions_done,
                total=event.partitions_known,
                records=event.received,
                rate=round(event.received / elapsed) if elapsed else 0,
            )

        yield update


@contextmanager
def _count_progress(label: str, total: int) -> Iterator[Callable[[int], object] | None]:
    """A progress bar with a rate and an ETA over ``total`` items, only on a terminal."""
    if not err.is_terminal or not total:
        yield None
        return
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


media_app = typer.Typer(help="Mirror the media files themselves into HOME/media.")
app.add_typer(media_app, name="media")


@media_app.command("fetch")
def media_fetch(
    query: QueryArgument = "",
    media_type: MediaTypeOption = None,
    center: CenterOption = "",
    year_start: YearStartOption = "",
    year_end: YearEndOption = "",
    keywords: KeywordsOption = "",
    nasa_id: NasaIdOption = "",
    size: Annotated[Size, typer.Option(help="Which rendition to download.")] = Size.thumb,
    max_bytes: Annotated[
        int | None,
        typer.Option(metavar="N", min=0, help="Stop before the media folder exceeds N bytes."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(metavar="N", min=1, max=64, help="Downloads in flight.")
    ] = 4,
    rate: RateOption = None,
    retries: RetriesOption = 6,
    base_url: Annotated[
        str | None, typer.Option(metavar="URL", help="Upstream API base URL (for manifests).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Download a rendition of each record (resumable: rerun to finish, nothing twice).

    QUERY: words to search for (default: every record); the options filter.
    """
    params = {
        "q": query, "center": center, "year_start": year_start, "year_end": year_end,
        "keywords": keywords, "nasa_id": nasa_id,
        "media_type": ",".join(m.value for m in media_type or []),
        "collapse": "none", "match": "all",
    }  # fmt: skip
    settings = settings_for(home, upstream_url=base_url)
    filtered = any(v for k, v in params.items() if k not in ("collapse", "match"))
    request = _search_request(params, settings) if filtered else None
    with (
        open_library(home, upstream_url=base_url) as library,
        Upstream(
            library.settings.upstream_url, concurrency=concurrency, rate=rate, retries=retries
        ) as client,
        _media_progress() as progress,
    ):
        targets = library.media_targets(request)
        result = library.fetch_media(
            client, targets, size=size.value, max_bytes=max_bytes, progress=progress
        )
    _print_fetch(result, size.value)
    if as_json:
        _write(orjson.dumps(result.as_dict()) + b"\n", None)
    if not result.ok:
        raise typer.Exit(1)


def _print_fetch(result: FetchResult, size: str) -> None:
    mb = result.bytes / 1e6
    seconds = max(result.seconds, 1e-9)
    err.print(
        f"{result.fetched} files fetched ({result.resumed} resumed, {mb:.1f} MB, "
        f"{result.fetched / seconds:.1f} files/s, {mb / seconds:.2f} MB/s), "
        f"{result.already} already here, {result.no_rendition} records without a "
        f"{size} rendition, {result.over_budget} over the budget, "
        f"{len(result.failed)} failed",
        markup=False, highlight=False,
    )  # fmt: skip
    for url, reason in result.failed[:5]:
        err.print(f"nivl: {url}: {reason}", markup=False, highlight=False)
    for line in unhashed_lines(result.unhashed):
        err.print(f"nivl: {line}", markup=False, highlight=False)


@media_app.command("status")
def media_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """What HOME/media holds: records, files and bytes mirrored, and unfinished downloads."""
    with open_library(home) as library:
        status = library.media_status()
    if as_json:
        _write(orjson.dumps(status) + b"\n", None)
        return
    err.print(
        f"{status['files']} files ({status['bytes'] / 1e6:.1f} MB) for {status['records']} "
        f"records in {status['folder']}; {status['manifests']} manifests stored; "
        f"{status['partial_files']} unfinished downloads ({status['partial_bytes']} bytes, "
        "finished by the next 'nivl media fetch')",
        markup=False, highlight=False,
    )  # fmt: skip


@contextmanager
def _media_progress() -> Iterator[Callable[[str, int], object] | None]:
    """Files done of those to fetch, bytes and their rate, and an ETA, only on a terminal."""
    if not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("fetching"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files, {task.fields[mb]:.1f} MB ({task.fields[speed]:.2f} MB/s)"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("fetch", total=None, mb=0.0, speed=0.0)
        received = 0

        def update(kind: str, n: int) -> None:
            nonlocal received
            if kind == "files":
                bar.update(task, total=n)
            elif kind == "file":
                bar.advance(task, 1)
            elif kind == "bytes":
                received += n
                elapsed = bar.tasks[0].elapsed or 0.0
                speed = received / 1e6 / elapsed if elapsed else 0.0
                bar.update(task, mb=received / 1e6, speed=speed)

        yield update


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one line per error, exit 2 for usage errors, 1 for failures."""
    try:
        code = app(
            args=list(argv) if argv is not None else None, prog_name="nivl", standalone_mode=False
        )
    except typer.TyperException as exc:  # typer's (click's) usage and file errors
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `nivl`; typer tests it by name too
            err.print(exc.format_message(), markup=False, highlight=False)
            sys.exit(2)
        _fail(_usage_message(exc), getattr(exc, "exit_code", 1))
    except typer.Abort:
        err.print("nivl: interrupted")
        sys.exit(130)
    except BadRequest as exc:
        _fail(f"error: {exc}", 2)
    except NivlError as exc:
        _fail(str(exc), 1)
    except BrokenPipeError:
        _reader_left()
    except SystemExit as exc:  # typer turns EPIPE into exit status 1, even in this mode
        if isinstance(exc.__context__, BrokenPipeError):
            _reader_left()
        raise
    except OSError as exc:  # e.g. --out in a directory that does not exist
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}", 1)
    sys.exit(code if isinstance(code, int) else 0)


def _reader_left() -> NoReturn:
    """The reader of stdout left (``nivl export | head``): that is not a failure."""
    with contextlib.suppress(OSError):  # no final flush into the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _fail(message: str, status: int) -> NoReturn:
    err.print(f"nivl: {plain(message)}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(status)


def _usage_message(exc: typer.TyperException) -> str:
    """click's message in CLI words, with the failing command's help command."""
    _reword(exc)
    ctx = getattr(exc, "ctx", None)
    hint = ""
    if getattr(exc, "exit_code", 1) == 2 and ctx is not None and ctx.parent is not None:
        hint = f" (see '{ctx.command_path} --help')"
    return f"error: {exc.format_message()}{hint}"


def _reword(exc: typer.TyperException) -> None:
    """Replace pydantic's wording (typer 0.29 validates values with it) by plain words."""
    errors = getattr(exc.__cause__, "errors", None)
    if not callable(errors) or not (details := errors()):
        return
    kind, value = details[0].get("type"), details[0].get("input")
    limits = details[0].get("ctx") or {}
    if kind == "value_error" and "error" in limits:
        exc.message = str(limits["error"]).rstrip(".")
    elif kind == "int_parsing":
        exc.message = f"{value!r} is not a whole number"
    elif kind == "float_parsing":
        exc.message = f"{value!r} is not a number"
    elif kind in ("greater_than_equal", "less_than_equal"):
        bound = "at least" if kind == "greater_than_equal" else "at most"
        exc.message = f"must be {bound} {limits.get('ge', limits.get('le'))}, not {value}"
