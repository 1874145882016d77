"""Content insights on the command line: ``ls`` filters, ``info`` lines, ``reindex --summaries``.

Kept apart from :mod:`.commands` and :mod:`.admin` so those stay small; they
import the option types and helpers from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .output import Output, plural

if TYPE_CHECKING:  # the store, the record and the parsers load once a command needs them
    from ..artifact_store import ArtifactStore
    from ..content.summary import Summary
    from ..models import ArtifactMetadata

__all__ = [
    "FailedOption",
    "ForceOption",
    "HasErrorsOption",
    "SummariesOption",
    "TestOption",
    "TouchesOption",
    "refresh_summaries",
    "summary_fields",
]

FailedOption = Annotated[
    bool | None,
    typer.Option(
        "--failed/--passed", help="Test results with failing tests (--passed: without any)."
    ),
]
TestOption = Annotated[
    str | None,
    typer.Option("--test", metavar="ID", help="A failing test whose id contains ID."),
]
TouchesOption = Annotated[
    str | None,
    typer.Option(
        "--touches",
        metavar="PATH",
        help="Diffs changing PATH: a path, a folder or a glob ('auth/**', '**/*.py').",
    ),
]
HasErrorsOption = Annotated[
    bool,
    typer.Option("--has-errors", help="Logs with error lines or tracebacks, failing tests."),
]
SummariesOption = Annotated[
    bool,
    typer.Option(
        "--summaries",
        help="Then summarise stored artifacts that have no (or an outdated) summary.",
    ),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="With --summaries: summarise every version again.")
]


def summary_fields(meta: ArtifactMetadata) -> list[tuple[str, str]]:
    """``info`` lines describing the artifact's summary."""
    summary = meta.summary
    if summary is None:
        reason = meta.summary_reason or "not summarised (run 'reindex --summaries')"
        return [("summary", f"none: {reason}")]
    lines = _kind_lines(summary)
    if summary.capped:
        lines.append(("summary", "covers the first bytes only (artifact too large)"))
    return lines


def _kind_lines(summary: Summary) -> list[tuple[str, str]]:
    if summary.test is not None:
        t = summary.test
        verdict = "failed" if summary.failed else "passed"
        duration = "" if t.duration is None else f" in {t.duration:.2f}s"
        lines = [
            (
                "tests",
                f"{verdict} ({t.format}): {t.passed} passed, {t.failed} failed, "
                f"{t.errors} errors, {t.skipped} skipped{duration}",
            )
        ]
        lines += [("failing", test_id) for test_id in t.failing]
        return lines
    if summary.diff is not None:
        d = summary.diff
        lines = [
            (
                "changes",
                f"{plural(d.files_changed, 'file')}, +{d.added} -{d.removed}"
                + (f", {d.binary_files} binary" if d.binary_files else ""),
            )
        ]
        for file in d.files:
            moved = f" (from {file.old_path})" if file.old_path else ""
            detail = "binary" if file.binary else f"+{file.added} -{file.removed}"
            lines.append(("file", f"{file.status} {file.path}{moved} {detail}"))
        if len(d.files) < d.files_changed:
            lines.append(("file", f"... {d.files_changed - len(d.files)} more"))
        return lines
    g = summary.log
    assert g is not None
    first = "" if g.first_error_line is None else f", first error at line {g.first_error_line}"
    return [
        (
            "log",
            f"{plural(g.lines, 'line')}, {g.error_lines} with errors, "
            f"{g.warning_lines} with warnings, {plural(g.tracebacks, 'traceback')}{first}",
        )
    ]


def refresh_summaries(store: ArtifactStore, out: Output, force: bool) -> dict[str, object]:
    """Run the summary backfill with a progress bar; return its report as data."""
    with out.progress("summarising") as bar:
        report = store.refresh_summaries(force=force, progress=bar)
    if not out.json_mode:
        resumed = f" (resumed after {report.resumed_after})" if report.resumed_after else ""
        out.note(
            f"summarised {plural(report.summarised, 'artifact version')}, "
            f"{report.unparsed} did not parse, {report.skipped} skipped{resumed}"
        )
        for uri, reason in report.problems:
            out.error(f"{uri}: {reason}")
    return report.to_dict()
