"""Store-wide commands of ``necrocode-artifacts``: export, usage, verify, cleanup,
reindex, repair and ``config show``.

Plain functions with typer annotations; :mod:`.commands` registers them on the app.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..exceptions import IntegrityError
from ..models import StorageUsage
from ..pipeline.integrity import ArtifactProblem, VerifyReport
from .init import store_exists
from .insights import ForceOption, SummariesOption, refresh_summaries
from .output import Output, format_size, plural
from .prompt import DryRun, Yes, confirm, listed, per_spec_summary
from .runtime import (
    EXIT_FAILURE,
    Json,
    Spec,
    Task,
    Ver,
    parse_duration,
    resolve_ref,
    session,
)

if TYPE_CHECKING:  # the store's modules load only once a command needs them
    from ..artifact_store import ArtifactStore
    from ..maintenance.export import ExportProgress
    from ..maintenance.verify import RepairReport

__all__ = ["cleanup", "config_show", "export", "init", "reindex", "repair", "usage", "verify"]

#: Artifacts named in the one-line error of a failed verification; the rest are counted.
MAX_NAMED_PROBLEMS = 5
USAGE_COLUMNS = ("SCOPE", "NAME", "ARTIFACTS", "VERSIONS", "STORED", "ORIGINAL")


def _fail(out: Output, message: str) -> None:
    out.error(message)
    raise typer.Exit(EXIT_FAILURE)


def export(
    ctx: typer.Context,
    spec: Spec = None,
    task: Task = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="ZIP file or folder (default: ./<spec>-<time>.zip here)."
        ),
    ] = None,
    json_flag: Json = False,
) -> None:
    """Export a spec's (--spec) or a task's (--task) artifacts to a ZIP; print its path.

    \b
    Examples:
      necrocode-artifacts export --spec chat-app -o chat-app.zip
      necrocode-artifacts export --spec chat-app --task 1.1 -o exports/
    """
    from ..maintenance.export import read_manifest  # noqa: PLC0415 - off the start-up path

    state, out = session(ctx, json_flag)
    if not spec and not task:
        raise typer.BadParameter("give --spec, --task, or both")
    store = state.store()
    if not store.search(task_id=task, spec_name=spec, limit=1):
        scope = " ".join(
            f"--{name} {value}" for name, value in (("spec", spec), ("task", task)) if value
        )
        _fail(out, f"no artifacts match {scope}; nothing exported")
    with out.progress("exporting", transfer=True) as bar:

        def progress(step: ExportProgress) -> None:
            if bar is not None:
                bar(step.bytes_done, step.bytes_total)

        if task:
            path = store.export_by_task(task, spec_name=spec, output_path=output, progress=progress)
        else:
            path = store.export_by_spec(str(spec), output_path=output, progress=progress)
    manifest = read_manifest(path)
    if out.json_mode:
        out.json(
            {
                "path": str(path),
                "bytes": path.stat().st_size,
                "artifact_count": manifest["artifact_count"],
                "skipped": manifest["skipped"],
            }
        )
        return
    out.line(str(path))
    out.note(f"exported {plural(manifest['artifact_count'], 'artifact')}")


def init(ctx: typer.Context, json_flag: Json = False) -> None:
    """Create the store the configuration names (nothing changes if it exists).

    Other commands refuse a store that does not exist (exit 10), so a mistyped
    base_path is noticed; upload creates the store too.

    \b
    Example:
      necrocode-artifacts -c team.yaml init
    """
    state, out = session(ctx, json_flag)
    config = state.resolved().config
    existed = store_exists(config)
    store = state.store(create=True)
    if config.backend_type == "filesystem":
        # The mark store_exists looks for, whatever index and state folder are configured.
        from ..config import STATE_DIRNAME  # noqa: PLC0415 - off the start-up path

        (config.base_path / STATE_DIRNAME).mkdir(parents=True, exist_ok=True)
    if out.json_mode:
        out.json({"root_uri": store.root_uri, "created": not existed})
    else:
        out.line(store.root_uri)
        out.note("store already exists" if existed else "created the store")


def usage(ctx: typer.Context, json_flag: Json = False) -> None:
    """Show storage used: in total, per spec and per type, against the quota.

    \b
    Example:
      necrocode-artifacts usage --json
    """
    state, out = session(ctx, json_flag)
    store = state.store()
    total = store.get_storage_usage()
    by_spec = store.get_usage_by_spec()
    by_type = store.get_usage_by_type()
    quota = store.config.storage_quota
    index = store.index_description
    if out.json_mode:
        out.json(
            {
                "index": index,
                "total": total.to_dict(),
                "by_spec": {name: item.to_dict() for name, item in by_spec.items()},
                "by_type": {name: item.to_dict() for name, item in by_type.items()},
                "quota": {
                    "max_bytes": quota.max_bytes,
                    "warn_threshold": quota.warn_threshold,
                    "fraction_used": total.fraction_used,
                },
            }
        )
        return

    def row(scope: str, name: str, item: StorageUsage) -> list[str]:
        return [
            scope,
            name,
            str(item.artifact_count),
            str(item.version_count),
            format_size(item.stored_bytes) if out.is_terminal else str(item.stored_bytes),
            format_size(item.original_bytes) if out.is_terminal else str(item.original_bytes),
        ]

    rows = [row("total", "-", total)]
    rows += [row("spec", name, item) for name, item in by_spec.items()]
    rows += [row("type", name, item) for name, item in by_type.items()]
    out.table(USAGE_COLUMNS, rows)
    out.fields([("index", index)])
    if quota.max_bytes is None:
        out.fields([("quota", "none")])
    else:
        used = total.fraction_used or 0.0
        out.fields(
            [
                (
                    "quota",
                    f"{format_size(total.stored_bytes)} of {format_size(quota.max_bytes)} "
                    f"({used:.1%}), warning at {quota.warn_threshold:.0%}",
                )
            ]
        )


def verify(
    ctx: typer.Context,
    ref: Annotated[
        str | None, typer.Argument(help="One artifact (URI or SPEC/TASK/TYPE); none: all.")
    ] = None,
    version_number: Ver = None,
    json_flag: Json = False,
) -> None:
    """Check stored bytes against their SHA-256; exit 1 naming what is corrupted or missing.

    \b
    Examples:
      necrocode-artifacts verify                       # every artifact version
      necrocode-artifacts verify chat-app/1.1/diff --ver 2
    """
    state, out = session(ctx, json_flag)
    store = state.store()
    if ref is not None:
        report = _verify_one(store, resolve_ref(store, ref, version_number))
    else:
        with out.progress("verifying") as bar:
            report = store.verify_all(progress=bar)
    problems = [*report.corrupted, *report.missing]
    if out.json_mode:
        out.json(report.to_dict())
    else:
        _print_verify_report(out, report)
    if problems:
        named = ", ".join(p.uri for p in problems[:MAX_NAMED_PROBLEMS])
        more = len(problems) - MAX_NAMED_PROBLEMS
        _fail(
            out,
            f"{plural(len(problems), 'artifact version')} failed verification: {named}"
            + (f" and {more} more" if more > 0 else ""),
        )


def _reason(problem: ArtifactProblem) -> str:
    """The problem's reason without the URI (and version) the row already shows."""
    base = re.escape(problem.uri.partition("?")[0])
    return re.sub(rf"^{base}(\?version=\d+)?:\s*", "", problem.reason)


def _print_verify_report(out: Output, report: VerifyReport) -> None:
    """Problems as rows (status, artifact or key, reason); a summary note when healthy."""
    rows = [["corrupted", p.uri, _reason(p)] for p in report.corrupted]
    rows += [["missing", p.uri, _reason(p)] for p in report.missing]
    rows += [["orphaned", key, "stored object no record refers to"] for key in report.orphaned]
    rows += [["incomplete", key, "leftover of an interrupted write"] for key in report.incomplete]
    rows += [["escaping", key, "symbolic link out of the store root"] for key in report.escaping]
    if rows:
        out.table(("STATUS", "ARTIFACT", "REASON"), rows)
    if report.healthy:  # otherwise the error line says what failed
        out.note(
            f"checked {plural(report.checked, 'artifact version')} "
            f"({format_size(report.bytes_checked)} stored): all intact; "
            f"{len(report.orphaned)} orphaned, {len(report.incomplete)} incomplete"
        )


def _verify_one(store: ArtifactStore, uri: str) -> VerifyReport:
    """A :class:`VerifyReport` for one artifact, so both forms share one JSON schema."""
    report = VerifyReport()
    meta = store.get_metadata(uri)  # ArtifactNotFoundError: exit 1 with its message
    try:
        with store.open(uri, verify_checksum=True) as reader:
            reader.drain()
    except IntegrityError as exc:
        problem = ArtifactProblem(uri, meta.version, str(exc))
        if store.backend.exists(meta.object_key):
            report.corrupted.append(problem)
        else:
            report.missing.append(ArtifactProblem(uri, meta.version, "stored object is missing"))
        return report
    report.ok.append(uri)
    report.bytes_checked += meta.stored_size
    return report


def cleanup(
    ctx: typer.Context,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_flag: Json = False,
) -> None:
    """Delete artifacts past their retention period (pinned ones are kept).

    \b
    Examples:
      necrocode-artifacts cleanup --dry-run
      necrocode-artifacts --quiet cleanup --yes      # cron: 15 3 * * *
    """
    state, out = session(ctx, json_flag)
    store = state.store()
    if not dry_run and not yes:
        expired = store.find_expired()
        if expired:
            stored = format_size(sum(meta.stored_size for meta in expired))
            question = (
                f"Delete {plural(len(expired), 'expired artifact version')} ({stored} stored)?"
            )
            details = per_spec_summary((m.spec_name for m in expired), "version")
            confirm(out, question, details, yes=yes)
    with out.progress("cleaning up") as bar:
        report = store.cleanup_expired(dry_run=dry_run, progress=bar)
    if out.json_mode:
        data = report.to_dict()
        if dry_run:
            data["would_delete"] = data.pop("deleted")
        out.json(data)
    else:
        for uri in report.uris:
            out.line(uri)
        verb = "would delete" if dry_run else "deleted"
        out.note(
            f"{verb} {plural(report.count, 'expired artifact version')}, "
            f"{format_size(report.bytes_freed)} stored"
        )
    if report.errors:
        _fail(out, f"{plural(len(report.errors), 'deletion')} failed: {report.errors[0]}")


def reindex(
    ctx: typer.Context,
    summaries: SummariesOption = False,
    force: ForceOption = False,
    json_flag: Json = False,
) -> None:
    """Rebuild the search index from the metadata records (--summaries: then backfill
    content summaries; resumable).

    \b
    Examples:
      necrocode-artifacts reindex
      necrocode-artifacts reindex --summaries
    """
    state, out = session(ctx, json_flag)
    with out.spinner("rebuilding the index"):
        count = state.store().rebuild_index()
    if not out.json_mode:
        out.note(f"indexed {plural(count, 'record')}")
    result: dict[str, object] = {"indexed": count}
    if summaries:
        result["summaries"] = report = refresh_summaries(state.store(), out, force)
    if out.json_mode:
        out.json(result)
    if summaries and report["problems"]:
        _fail(out, "some artifacts could not be read; see the errors above")


def repair(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Only leftovers older than this (e.g. 15m, 2h).")
    ] = "15m",
    dry_run: DryRun = False,
    yes: Yes = False,
    json_flag: Json = False,
) -> None:
    """Remove what interrupted writes left behind, then rebuild the index.

    Artifacts whose stored bytes are missing, or whose record cannot be read,
    are never deleted by repair: they are listed with the command that fixes each.

    \b
    Examples:
      necrocode-artifacts repair --dry-run
      necrocode-artifacts repair --older-than 2h --yes
    """
    state, out = session(ctx, json_flag)
    from ..maintenance.verify import MAX_REPAIR_GRACE  # noqa: PLC0415 - off the start-up path

    grace = parse_duration(older_than, "--older-than")
    if grace > MAX_REPAIR_GRACE:
        raise typer.BadParameter(
            f"{older_than!r} is longer than {MAX_REPAIR_GRACE.days} days",
            param_hint="'--older-than'",
        )
    store = state.store()
    if state.server is not None:  # the service repairs itself; no preview over HTTP
        if dry_run:
            raise typer.BadParameter("--dry-run needs a local store", param_hint="'--dry-run'")
        confirm(out, f"Repair the store at {state.server}?", [], yes=yes)
    elif not dry_run and not yes:
        preview = store.repair(older_than=grace, dry_run=True)
        waste = [*preview.removed_orphans, *preview.removed_incomplete]
        if waste:
            question = f"Remove {plural(len(waste), 'leftover object')} of interrupted writes?"
            confirm(out, question, listed(waste), yes=yes)
    with out.spinner("repairing"):
        options = {"dry_run": True} if dry_run else {}
        report = store.repair(older_than=grace, **options)
    if out.json_mode:
        data = report.to_dict()
        if dry_run:
            data.pop("removed_orphans")
            data.pop("removed_incomplete")
            data["would_delete"] = [*report.removed_orphans, *report.removed_incomplete]
        out.json(data)
    else:
        for key in (*report.removed_orphans, *report.removed_incomplete):
            out.line(key)
        if report.index_error is not None:
            out.warn(f"index not rebuilt: {report.index_error}")
        verb = "would remove" if dry_run else "removed"
        indexed = "" if dry_run else f"; indexed {plural(report.indexed, 'record')}"
        out.note(
            f"{verb} {plural(len(report.removed_orphans), 'orphaned object')} and "
            f"{plural(len(report.removed_incomplete), 'leftover')}; "
            f"skipped {len(report.skipped_busy)} busy{indexed}"
        )
    _report_unrepairable(out, report)


def _report_unrepairable(out: Output, report: RepairReport) -> None:
    """Committed artifacts repair cannot fix: one warning each, with the fixing command.

    Their bytes are kept (an unreadable record's objects too); someone decides.
    """
    for problem in report.missing:
        out.warn(
            f"{problem.uri}: stored object is missing; re-upload it, or delete the record: "
            f"necrocode-artifacts rm '{problem.uri}'"
        )
    for problem in report.unreadable:
        out.warn(
            f"{problem.uri}: record cannot be read ({_reason(problem)}); its bytes are kept; "
            f"delete it: necrocode-artifacts rm '{problem.uri}'"
        )
    if report.missing or report.unreadable:
        count = len(report.missing) + len(report.unreadable)
        _fail(out, f"{plural(count, 'artifact version')} need attention (see above)")


def config_show(ctx: typer.Context, json_flag: Json = False) -> None:
    """Show the effective configuration and where each value came from.

    \b
    Example:
      necrocode-artifacts -c team.yaml config show --json
    """
    state, out = session(ctx, json_flag)
    from ..index import describe_index, redact_url  # noqa: PLC0415 - off the start-up path

    resolved = state.resolved()
    config = resolved.config
    index = describe_index(config.index_url, config.effective_state_dir)
    if out.json_mode:
        data = resolved.to_dict()
        data["index"] = index
        for setting in data["settings"]:
            if setting["key"] == "index_url" and setting["value"]:
                setting["value"] = redact_url(setting["value"])
        out.json(data)
        return
    origin = {
        "option": "from --config",
        "env": "from $NECROCODE_ARTIFACT_STORE_CONFIG",
        "default-location": "default location",
        "none": "none found; built-in defaults",
    }[resolved.config_file_origin]
    file = str(resolved.config_file) if resolved.config_file else "-"
    out.fields(
        [
            ("config file", f"{file} ({origin})"),
            ("state dir", str(resolved.config.effective_state_dir)),
            ("index", index),
        ]
    )
    rows = []
    for setting in resolved.settings:
        source = {"default": "default", "file": "file", "env": f"${setting.origin}"}[setting.source]
        value = setting.value
        if setting.key == "index_url" and value:
            value = redact_url(value)  # a password in the URL is never shown
        rows.append([setting.key, _show_value(value), source, setting.env_var])
    out.table(("KEY", "VALUE", "SOURCE", "ENVIRONMENT VARIABLE"), rows)


def _show_value(value: Any) -> str:
    if value == "":
        return '""'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
