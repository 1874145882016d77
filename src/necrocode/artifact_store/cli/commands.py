"""``necrocode-artifacts``: the command line over :class:`ArtifactStore`.

Every command is a thin layer over one or two public methods of the store.
This module holds the commands about artifacts (upload, download, info, ls,
versions, rm, tags, pinning); :mod:`.admin` the store-wide ones (export,
usage, verify, cleanup, reindex, repair, config show); output rules live in
:mod:`.output`, error mapping and parsing in :mod:`.runtime`.
docs/cli.md is the reference, with the JSON schema of every command.
Artifacts are named by URI or by ``<spec>/<task>/<type>``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import typer

from .. import __version__
from ..backends.base import CHUNK_SIZE
from ..models import MAX_INT64, MAX_RETENTION_DAYS, ArtifactType
from . import admin as cli_admin
from . import serve as cli_serve
from .bulk import collect_uploads
from .insights import (
    FailedOption,
    HasErrorsOption,
    TestOption,
    TouchesOption,
    summary_fields,
)
from .output import (
    Output,
    ProgressUpdate,
    format_size,
    format_time,
    plural,
    print_artifacts,
)
from .prompt import DryRun, Yes, confirm, listed, per_spec_summary
from .runtime import (
    COMPLETE_VAR,
    PROG_NAME,
    Json,
    Ref,
    Spec,
    StoreGroup,
    Task,
    Ver,
    exit_code_for,
    install_logging,
    parse_when,
    resolve_ref,
    session,
    state_of,
)

if TYPE_CHECKING:  # the store's modules load only once a command needs them
    from ..artifact_store import ArtifactStore, Content
    from ..models import ArtifactMetadata

__all__ = ["app", "main"]

ARTIFACT_PANEL = "Artifacts"
STORE_PANEL = "The whole store"

app = typer.Typer(
    name=PROG_NAME,
    cls=StoreGroup,
    help="Store, find, verify and clean up the artifacts of coding-agent tasks.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain click help: rendering it through rich costs ~60 ms of imports per --help.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
tag_app = typer.Typer(
    help="Add, replace or remove an artifact's tags.", no_args_is_help=True, rich_markup_mode=None
)
config_app = typer.Typer(
    help="Inspect the configuration.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(tag_app, name="tag", rich_help_panel=ARTIFACT_PANEL)
app.add_typer(config_app, name="config", rich_help_panel=STORE_PANEL)


class SortBy(StrEnum):
    """What ``ls --sort`` orders by."""

    CREATED = "created"
    SIZE = "size"
    NAME = "name"


class TagMatch(StrEnum):
    """How several ``--tag`` filters combine."""

    ALL = "all"
    ANY = "any"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG_NAME} {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", metavar="PATH", help="Configuration file (see 'config show')."
        ),
    ] = None,
    json_output: Json = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or confirmations.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also the store's info log on stderr.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Tracebacks and debug logs.")] = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            metavar="URL",
            envvar="NECROCODE_ARTIFACT_STORE_SERVER",
            help="Use the artifact service at URL instead of a local store.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="NECROCODE_ARTIFACT_STORE_TOKEN",
            show_envvar=True,
            help="Access token for --server.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Store, find, verify and clean up the artifacts of coding-agent tasks.

    Artifacts are named by URI or by SPEC/TASK/TYPE (e.g. chat-app/1.1/diff).
    Global options work before or after the command.
    Exit codes: 0 success, 1 operation failed, 2 usage or configuration error,
    10 the store does not exist (see 'init').
    """
    state = state_of(ctx)
    state.config_path, state.json, state.quiet, state.debug = config, json_output, quiet, debug
    state.verbose = verbose
    state.server, state.token = server, token
    install_logging(state)


# -- upload and download --------------------------------------------------------------


@app.command(rich_help_panel=ARTIFACT_PANEL)
def upload(
    ctx: typer.Context,
    sources: Annotated[
        list[str], typer.Argument(help="Files, a folder of them, or - for stdin.", metavar="FILE")
    ],
    spec: Annotated[str, typer.Option("--spec", "-s", help="Spec name.")],
    task: Annotated[str, typer.Option("--task", "-t", help="Task id.")],
    artifact_type: Annotated[
        ArtifactType | None,
        typer.Option("--type", help="Artifact type (default: from the file name)."),
    ] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="KEY=VALUE metadata (repeatable).")
    ] = None,
    mime_type: Annotated[str | None, typer.Option("--mime-type", help="MIME type.")] = None,
    retention_days: Annotated[
        int | None,
        typer.Option(
            "--retention-days", min=0, max=MAX_RETENTION_DAYS, help="Keep this many days."
        ),
    ] = None,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="Store an empty stdin as a 0-byte artifact.")
    ] = False,
    json_flag: Json = False,
) -> None:
    """Store files (or stdin) as the artifacts of a task; print their URIs.

    Each file's type comes from its name (diff.txt, *.diff, *.patch; log.txt,
    *.log; test-result.json, *.xml, *.json) unless --type is given for a
    single file. Empty stdin is refused unless --allow-empty.

    \b
    Examples:
      necrocode-artifacts upload change.diff -s chat-app -t 1.1
      necrocode-artifacts upload out/ -s chat-app -t 1.1          # every file in out/
      git diff | necrocode-artifacts upload - -s chat-app -t 1.2 --type diff
    """
    state, out = session(ctx, json_flag)
    custom = _parse_meta(meta or [])
    if mime_type is not None and len(sources) > 1:
        raise typer.BadParameter("--mime-type goes with one file", param_hint="'--mime-type'")
    planned = collect_uploads(sources, artifact_type)
    store = state.store(create=True)
    if len(planned) > 1:
        metas = _upload_files(store, planned, task, spec, custom, tags, retention_days)
    else:
        source, kind = planned[0]
        with _upload_source(source, out, allow_empty) as (content, bar):
            # Only when a bar is drawn: the remote client (--server) takes no progress.
            extra: dict[str, Any] = {} if bar is None else {"progress": bar}
            metas = [
                store.upload_version(
                    task,
                    spec,
                    kind,
                    content,
                    custom,
                    mime_type,
                    tags=tags or None,
                    retention_days=retention_days,
                    **extra,
                )
            ]
    if out.json_mode:
        records = [stored.to_dict() for stored in metas]
        one_file = len(planned) == 1 and not Path(sources[0]).expanduser().is_dir()
        out.json(records[0] if one_file else records)
    else:
        for stored in metas:
            out.line(stored.uri)


def _upload_files(
    store: ArtifactStore,
    planned: list[tuple[str, ArtifactType]],
    task: str,
    spec: str,
    custom: dict[str, str],
    tags: list[str] | None,
    retention_days: int | None,
) -> list[ArtifactMetadata]:
    """Several files of one task in one ``upload_many`` (one shared commit).

    Each file is stored or not on its own: if any failed, the others are still
    stored, each failure is reported on stderr, and the first one ends the
    command (its exit code) after the stored URIs are listed there too.
    """
    from ..pipeline.batch import UploadItem  # noqa: PLC0415 - off the start-up path

    items = [
        UploadItem(
            task,
            spec,
            kind,
            Path(source).expanduser(),
            custom,
            tags=tuple(tags or ()),
            retention_days=retention_days,
        )
        for source, kind in planned
    ]
    results = store.upload_many(items)
    failed = [r.error for r in results if r.error is not None]
    if failed:
        for result in results:
            if result.error is None:
                typer.echo(f"stored {result.uri}", err=True)
            else:
                typer.echo(f"error: {planned[result.index][0]}: {result.error}", err=True)
        raise typer.Exit(exit_code_for(failed[0]))
    return [result.unwrap() for result in results]


def _parse_meta(pairs: list[str]) -> dict[str, str]:
    custom: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="'--meta'")
        custom[key] = value
    return custom


@contextlib.contextmanager
def _upload_source(
    source: str, out: Output, allow_empty: bool
) -> Iterator[tuple[Content, ProgressUpdate | None]]:
    """The content to store and its progress bar (a large file on a terminal), if any."""
    if source == "-":
        first = sys.stdin.buffer.read(CHUNK_SIZE)
        if not first and not allow_empty:
            raise typer.BadParameter(
                "stdin is empty: nothing to upload (--allow-empty stores a 0-byte artifact)",
                param_hint="FILE",
            )
        yield _chain(first, sys.stdin.buffer), None
        return
    path = Path(source).expanduser()
    size = path.stat().st_size if out.progress_enabled and path.is_file() else 0
    with out.transfer(f"uploading {path.name}", size) as bar:
        yield path, bar  # the store streams it (and reports an unreadable file)


def _chain(first: bytes, rest: BinaryIO) -> Iterator[bytes]:
    """``first``, then the rest of the stream in chunks."""
    if first:
        yield first
    while chunk := rest.read(CHUNK_SIZE):
        yield chunk


@app.command(rich_help_panel=ARTIFACT_PANEL)
def download(
    ctx: typer.Context,
    ref: Annotated[
        str | None,
        typer.Argument(help="A URI or SPEC/TASK/TYPE; or --spec/--task for all of a task's."),
    ] = None,
    version_number: Ver = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="File or folder to write; - or none: stdout."),
    ] = None,
    spec: Spec = None,
    task: Task = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip the SHA-256 check (size is still checked).")
    ] = False,
    json_flag: Json = False,
) -> None:
    """Write an artifact to a file (all or nothing) or stream it to stdout.

    With --spec and --task instead of REF, every artifact of the task is
    written into the folder -o names (created if needed), as gh run download does.

    \b
    Examples:
      necrocode-artifacts download chat-app/1.1/diff -o change.diff
      necrocode-artifacts download chat-app/1.1/log | less
      necrocode-artifacts download --spec chat-app --task 1.1 -o review/
    """
    if ref is None:
        if not (spec and task):
            raise typer.BadParameter("give REF, or --spec and --task (with -o DIR)")
        if output in (None, "-"):
            raise typer.BadParameter("--spec/--task writes files: give -o DIR")
        _download_task(ctx, spec, task, Path(str(output)).expanduser(), no_verify, json_flag)
        return
    if spec or task:
        raise typer.BadParameter("give REF or --spec/--task, not both")
    state, out = session(ctx, json_flag)
    store = state.store()
    uri = resolve_ref(store, ref, version_number)
    verify = False if no_verify else None
    to_stdout = output in (None, "-")
    if to_stdout and out.json_mode:
        raise typer.BadParameter("--json needs --output FILE: stdout carries the bytes")
    target = None if to_stdout else Path(str(output)).expanduser()
    size = 0
    if out.progress_enabled or (target is not None and target.is_dir()):
        meta = store.get_metadata(uri)
        size = meta.size
        if target is not None and target.is_dir():
            target = target / meta.type.filename
    with out.transfer(f"downloading {ref}", size) as bar:
        if target is None:
            # Streamed: bytes go out before the end-of-stream check; exit 1 if it fails.
            sink, done = sys.stdout.buffer, 0
            for chunk in store.iter_chunks(uri, verify):
                sink.write(chunk)
                done += len(chunk)
                if bar is not None:
                    bar(done, size)
            sink.flush()
            return
        written = store.download_to(uri, target, verify, progress=bar)
    if out.json_mode:
        out.json({"path": str(target), "artifact": written.to_dict()})
    else:
        out.note(f"wrote {format_size(written.size)} to {target}")


def _download_task(
    ctx: typer.Context, spec: str, task: str, folder: Path, no_verify: bool, json_flag: bool
) -> None:
    """Every artifact of one task into ``folder`` (each file all or nothing)."""
    state, out = session(ctx, json_flag)
    store = state.store()
    found = store.search(task_id=task, spec_name=spec)
    if not found:
        out.error(f"no artifacts of spec {spec}, task {task}; nothing written")
        raise typer.Exit(1)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for meta in found:
        target = folder / meta.type.filename
        with out.transfer(f"downloading {meta.type.filename}", meta.size) as bar:
            store.download_to(meta.uri, target, False if no_verify else None, progress=bar)
        written.append({"path": str(target), "artifact": meta.to_dict()})
    if out.json_mode:
        out.json(written)
        return
    for item in written:
        out.line(str(item["path"]))
    total = sum(meta.size for meta in found)
    out.note(f"wrote {plural(len(found), 'artifact')} ({format_size(total)}) to {folder}")


# -- metadata, search, versions ------------------------------------------------------


@app.command(rich_help_panel=ARTIFACT_PANEL)
def info(ctx: typer.Context, ref: Ref, version_number: Ver = None, json_flag: Json = False) -> None:
    """Show an artifact's metadata.

    \b
    Examples:
      necrocode-artifacts info chat-app/1.1/diff
      necrocode-artifacts info chat-app/1.1/diff --ver 2 --json
    """
    state, out = session(ctx, json_flag)
    store = state.store()
    meta = store.get_metadata(resolve_ref(store, ref, version_number))
    if out.json_mode:
        out.json(meta.to_dict())
        return
    retention = "type default" if meta.retention_days is None else f"{meta.retention_days} days"
    out.fields(
        [
            ("uri", meta.uri),
            ("spec", meta.spec_name),
            ("task", meta.task_id),
            ("type", meta.type.value),
            # Without versioning the number only counts replacements: not shown.
            *([("version", str(meta.version))] if store.config.versioning_enabled else []),
            ("size", f"{format_size(meta.size)} ({meta.size} bytes)"),
            (
                "stored size",
                f"{format_size(meta.stored_size)} ({meta.stored_size} bytes, {meta.codec})",
            ),
            ("checksum", meta.checksum),
            ("created", format_time(meta.created_at)),
            ("mime type", meta.mime_type),
            ("tags", ", ".join(meta.tags) or "-"),
            ("retention", "pinned" if meta.pinned else retention),
            *((f"meta.{key}", str(value)) for key, value in sorted(meta.metadata.items())),
            *summary_fields(meta),
        ]
    )


@app.command("ls", rich_help_panel=ARTIFACT_PANEL)
def list_artifacts(
    ctx: typer.Context,
    spec: Spec = None,
    task: Task = None,
    artifact_type: Annotated[
        ArtifactType | None, typer.Option("--type", help="Artifact type.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Created at or after: 7d, 12h, or ISO 8601.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Created before: 7d, 12h, or ISO 8601.")
    ] = None,
    tags: Annotated[
        list[str] | None, typer.Option("--tag", help="Has this tag (repeatable).")
    ] = None,
    match: Annotated[
        TagMatch, typer.Option("--match", help="With several --tag: all of them or any.")
    ] = TagMatch.ALL,
    sort: Annotated[
        SortBy, typer.Option("--sort", help="Order by creation time, original size or name.")
    ] = SortBy.CREATED,
    reverse: Annotated[
        bool, typer.Option("--reverse", "-r", help="Oldest (smallest, Z) first instead.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, max=MAX_INT64, help="At most N results.")
    ] = None,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Continue after a page (see --limit).")
    ] = None,
    failed: FailedOption = None,
    test: TestOption = None,
    touches: TouchesOption = None,
    has_errors: HasErrorsOption = False,
    json_flag: Json = False,
) -> None:
    """List artifacts (latest versions) matching every filter, newest first.

    Content filters (--failed, --test, --touches, --has-errors) use the
    summaries made at upload and sort by creation time. With --limit N a
    cut-short list ends with a 'next page: --cursor C' line on stderr; give it
    back to get the next N.

    \b
    Examples:
      necrocode-artifacts ls --spec chat-app --since 7d
      necrocode-artifacts ls --limit 5                  # the newest five
      necrocode-artifacts ls --sort size --limit 10     # the ten largest
      necrocode-artifacts ls --tag env:prod --match any --json
      necrocode-artifacts ls --failed --touches 'auth/**'
    """
    state, out = session(ctx, json_flag)
    # Newest and largest first by default; names from A.
    newest_first = (sort is not SortBy.NAME) != reverse
    store = state.store()
    filters: dict[str, Any] = {
        "task_id": task,
        "spec_name": spec,
        "artifact_type": artifact_type,
        "created_after": _moment(since, "--since"),
        "created_before": _moment(until, "--until"),
        "tags": tags or None,
        "match": match.value,
        "limit": limit,
        "failed": failed,
        "test": test,
        "touches": touches,
        "has_errors": has_errors or None,
    }
    next_cursor = None
    if hasattr(store, "search_page"):
        page = store.search_page(**filters, sort=sort.value, reverse=newest_first, cursor=cursor)
        found, next_cursor = page.items, page.next_cursor
    else:  # the service's client (--server) lists by creation time, unpaged
        if sort is not SortBy.CREATED or cursor is not None:
            raise typer.BadParameter("--sort size|name and --cursor need a local store")
        found = store.search(**filters, order="newest" if newest_first else "oldest")
    versioned = bool(getattr(getattr(store, "config", None), "versioning_enabled", True))
    print_artifacts(out, found, show_versions=versioned)
    if next_cursor is not None:
        sys.stderr.write(f"next page: --cursor {next_cursor}\n")


app.command("search", help=f"Same as ls. {list_artifacts.__doc__}", rich_help_panel=ARTIFACT_PANEL)(
    list_artifacts
)


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_when(text)
    except typer.BadParameter as exc:
        exc.param_hint = f"'{option}'"
        raise


@app.command(rich_help_panel=ARTIFACT_PANEL)
def versions(ctx: typer.Context, ref: Ref, json_flag: Json = False) -> None:
    """List every stored version of an artifact, oldest first.

    Each line names its version (--ver N on a terminal, the ?version=N URI when
    piped), ready for download, info or rm.

    \b
    Example:
      necrocode-artifacts versions chat-app/1.1/diff
      necrocode-artifacts download chat-app/1.1/diff --ver 2 -o old.diff
    """
    state, out = session(ctx, json_flag)
    store = state.store()
    print_artifacts(out, store.get_all_versions(resolve_ref(store, ref)), per_version=True)


@app.command("prune-versions", rich_help_panel=ARTIFACT_PANEL)
def prune_versions(
    ctx: typer.Context,
    ref: Ref,
    keep: Annotated[int, typer.Option("--keep", min=1, help="Newest versions to keep.")] = 1,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_flag: Json = False,
) -> None:
    """Delete all but the newest --keep versions of an artifact.

    \b
    Example:
      necrocode-artifacts prune-versions chat-app/1.1/diff --keep 3 --dry-run
    """
    state, out = session(ctx, json_flag)
    store = state.store()
    uri = resolve_ref(store, ref)
    doomed = [meta.version_uri for meta in store.get_all_versions(uri)[:-keep]]
    if dry_run:
        _report_would_delete(out, doomed, "old version")
        return
    if doomed:
        question = f"Delete {plural(len(doomed), 'old version')} of {uri} (keeping {keep})?"
        confirm(out, question, listed(doomed), yes=yes)
    deleted = store.delete_old_versions(uri, keep=keep) if doomed else 0
    if out.json_mode:
        out.json({"uri": uri, "deleted": deleted, "kept": keep})
    else:
        out.note(f"deleted {plural(deleted, 'old version')} of {uri}")


# -- deleting ------------------------------------------------------------------------


@app.command("rm", rich_help_panel=ARTIFACT_PANEL)
def remove(
    ctx: typer.Context,
    refs: Annotated[
        list[str] | None, typer.Argument(help="URIs or SPEC/TASK/TYPE to delete.")
    ] = None,
    task: Task = None,
    spec: Spec = None,
    all_specs: Annotated[
        bool, typer.Option("--all-specs", help="With --task: that task in every spec.")
    ] = False,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_flag: Json = False,
) -> None:
    """Delete artifacts (every version): by REF, by --spec (and --task), or --task --all-specs.

    \b
    Examples:
      necrocode-artifacts rm chat-app/1.1/diff
      necrocode-artifacts rm --spec chat-app --task 1.1 --dry-run
      necrocode-artifacts rm --task 1.1 --all-specs --yes
    """
    state, out = session(ctx, json_flag)
    if refs and (task or spec or all_specs):
        raise typer.BadParameter("give artifacts or --task/--spec, not both")
    if not refs and not task and not spec:
        raise typer.BadParameter("nothing to delete: give artifacts, --spec or --task")
    if task and not spec and not all_specs:
        raise typer.BadParameter(
            f"--task {task} is in every spec: add --spec SPEC, or --all-specs to mean that"
        )
    if all_specs and (spec or not task):
        raise typer.BadParameter("--all-specs goes with --task and without --spec")
    store = state.store()
    if refs:
        uris = [resolve_ref(store, ref) for ref in refs]
        # All or none: refuse before deleting anything.
        doomed = [store.get_metadata(uri) for uri in uris]
        question = f"Delete {uris[0] if len(uris) == 1 else plural(len(uris), 'artifact')}?"
    else:
        doomed = store.search(task_id=task, spec_name=spec)
        uris = [meta.uri for meta in doomed]
        scope = " and ".join(
            part for part in (spec and f"spec {spec}", task and f"task {task}") if part
        )
        question = f"Delete {plural(len(doomed), 'artifact')} of {scope}, every version?"
    if dry_run:
        _report_would_delete(out, uris)
        return
    if not doomed:
        _report_deleted(out, 0)
        return
    confirm(out, question, per_spec_summary(m.spec_name for m in doomed), yes=yes)
    deleted = sum(store.delete(uri, missing_ok=not refs) for uri in uris)
    _report_deleted(out, deleted)


def _report_would_delete(out: Output, uris: list[str], noun: str = "artifact") -> None:
    if out.json_mode:
        out.json({"dry_run": True, "would_delete": uris, "count": len(uris)})
        return
    for uri in uris:
        out.line(uri)
    out.note(f"would delete {plural(len(uris), noun)}")


def _report_deleted(out: Output, deleted: int) -> None:
    if out.json_mode:
        out.json({"deleted": deleted})
    else:
        out.note(f"deleted {plural(deleted, 'artifact')}")


# -- tags and pinning ----------------------------------------------------------------


def _print_updated(out: Output, meta: ArtifactMetadata) -> None:
    if out.json_mode:
        out.json(meta.to_dict())
    else:
        pinned = " (pinned)" if meta.pinned else ""
        out.note(f"{meta.uri}: tags: {', '.join(meta.tags) or '-'}{pinned}")


TagArgs = Annotated[list[str], typer.Argument(help="Tags.")]


@tag_app.command("add")
def tag_add(
    ctx: typer.Context, ref: Ref, tags: TagArgs, version_number: Ver = None, json_flag: Json = False
) -> None:
    """Add tags to an artifact.

    \b
    Example:
      necrocode-artifacts tag add chat-app/1.1/diff reviewed env:prod
    """
    state, out = session(ctx, json_flag)
    store = state.store()
    _print_updated(out, store.add_tags(resolve_ref(store, ref, version_number), tags))


@tag_app.command("set")
def tag_set(
    ctx: typer.Context,
    ref: Ref,
    version_number: Ver = None,
    tags: Annotated[list[str] | None, typer.Argument(help="Tags (none: clear).")] = None,
    json_flag: Json = False,
) -> None:
    """Replace an artifact's tags (no tags: remove them all).

    \b
    Example:
      necrocode-artifacts tag set chat-app/1.1/diff approved
    """
    state, out = session(ctx, json_flag)
    store = state.store()
    _print_updated(out, store.update_tags(resolve_ref(store, ref, version_number), tags or []))


@tag_app.command("rm")
def tag_rm(
    ctx: typer.Context, ref: Ref, tags: TagArgs, version_number: Ver = None, json_flag: Json = False
) -> None:
    """Remove tags from an artifact.

    \b
    Example:
      necrocode-artifacts tag rm chat-app/1.1/diff needs-review
    """
    state, out = session(ctx, json_flag)
    store = state.store()
    _print_updated(out, store.remove_tags(resolve_ref(store, ref, version_number), tags))


@app.command(rich_help_panel=ARTIFACT_PANEL)
def pin(ctx: typer.Context, ref: Ref, version_number: Ver = None, json_flag: Json = False) -> None:
    """Keep an artifact forever: cleanup never deletes it.

    \b
    Example:
      necrocode-artifacts pin chat-app/1.1/diff
    """
    state, out = session(ctx, json_flag)
    store = state.store()
    _print_updated(out, store.pin(resolve_ref(store, ref, version_number)))


@app.command(rich_help_panel=ARTIFACT_PANEL)
def unpin(
    ctx: typer.Context, ref: Ref, version_number: Ver = None, json_flag: Json = False
) -> None:
    """Let the retention policy apply to an artifact again.

    \b
    Example:
      necrocode-artifacts unpin chat-app/1.1/diff
    """
    state, out = session(ctx, json_flag)
    store = state.store()
    _print_updated(out, store.unpin(resolve_ref(store, ref, version_number)))


for _command in (
    cli_admin.init,
    cli_admin.usage,
    cli_admin.export,
    cli_admin.verify,
    cli_admin.cleanup,
    cli_admin.repair,
    cli_admin.reindex,
):
    app.command(rich_help_panel=STORE_PANEL)(_command)
config_app.command("show")(cli_admin.config_show)
app.command(rich_help_panel=STORE_PANEL)(cli_serve.serve)


class Shell(StrEnum):
    """Shells whose completion script ``completion`` prints."""

    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


@app.command(rich_help_panel=STORE_PANEL)
def completion(
    shell: Annotated[Shell, typer.Argument(help="The shell to complete in.")],
) -> None:
    """Print the shell completion script (or use --install-completion).

    \b
    Examples:
      necrocode-artifacts completion bash > ~/.bash_completion.d/necrocode-artifacts
      eval "$(necrocode-artifacts completion zsh)"
      necrocode-artifacts completion fish > ~/.config/fish/completions/necrocode-artifacts.fish
    """
    from typer._completion_shared import get_completion_script  # noqa: PLC0415

    script = get_completion_script(
        prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell.value
    )
    typer.echo(script)


def main() -> None:
    """Entry point of the ``necrocode-artifacts`` console script."""
    app(prog_name=PROG_NAME)
