"""The test-result viewer: counts, failures first, output, durations, per-command sections.

Reports are read by :func:`~necrocode.artifact_store.content.testreport.parse_test_report`
(Agent Runner JSON, JUnit XML, pytest-json-report, CTRF). A report that is none
of these, or too large to parse in memory, is shown as text by the log viewer.
"""

from __future__ import annotations

from typing import Any

from ...content.testreport import TestCase, TestReport, parse_test_report
from ...exceptions import ContentParseError
from ...models import ArtifactMetadata
from .state import Viewer

__all__ = ["MAX_REPORT_BYTES", "STATUS_ORDER", "report_context", "test_context"]

#: Reports larger than this are not parsed (they are shown as text).
MAX_REPORT_BYTES = 64 * 1024 * 1024
#: Cases kept for display; counts stay exact beyond it.
MAX_CASES = 5000
#: Failures first, then errors, skips and passes.
STATUS_ORDER = {"failed": 0, "error": 1, "skipped": 2, "passed": 3}
_FORMAT_LABELS = {
    "necrocode": "Agent Runner",
    "junit": "JUnit XML",
    "pytest-json": "pytest-json-report",
    "ctrf": "CTRF",
}
BAR_WIDTH = 600


def duration_text(seconds: float | None) -> str:
    """``0.0042`` → ``4 ms``, ``75.5`` → ``1 min 15.5 s``."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.1f} s"


def _case(case: TestCase, index: int) -> dict[str, Any]:
    return {
        "index": index,
        "id": case.id,
        "name": case.name,
        "classname": case.classname,
        "status": case.status,
        "duration": case.duration,
        "duration_text": duration_text(case.duration),
        "message": case.message,
        "output": case.output,
        "command": case.command,
        "exit_code": case.exit_code,
        "anchor": f"case-{index}",
    }


def _bar(report: TestReport) -> list[dict[str, Any]]:
    total = report.total or 1
    x = 0.0
    parts = []
    for status, count in (
        ("fail", report.failed),
        ("error", report.errors),
        ("skip", report.skipped),
        ("pass", report.passed),
    ):
        if count:
            width = BAR_WIDTH * count / total
            parts.append({"status": status, "x": round(x, 2), "width": round(width, 2)})
            x += width
    return parts


def report_context(report: TestReport) -> dict[str, Any]:
    """The parsed report as page data: failures first, then the rest in report order."""
    cases = [_case(case, index) for index, case in enumerate(report.cases)]
    ordered = sorted(cases, key=lambda c: (STATUS_ORDER[c["status"]], c["index"]))
    slowest = sorted(
        (c for c in cases if c["duration"] is not None), key=lambda c: -float(c["duration"])
    )[:10]
    return {
        "format": report.format,
        "format_label": _FORMAT_LABELS.get(report.format, report.format),
        "success": report.success,
        "passed": report.passed,
        "failed": report.failed,
        "skipped": report.skipped,
        "errors": report.errors,
        "total": report.total,
        "duration": report.duration,
        "duration_text": duration_text(report.duration),
        "truncated": report.truncated,
        "per_command": report.format == "necrocode",
        "failing_ids": report.failing_ids(),
        "cases": ordered,
        "slowest": [
            {"name": c["name"], "anchor": c["anchor"], "duration_text": c["duration_text"]}
            for c in slowest
        ],
        "bar": {"width": BAR_WIDTH, "parts": _bar(report)},
    }


def test_context(viewer: Viewer, meta: ArtifactMetadata) -> dict[str, Any]:
    """``{"report": ...}`` when the artifact parses; ``{"problem": ...}`` when it does not."""
    if meta.original_size > MAX_REPORT_BYTES:
        return {
            "report": None,
            "problem": f"The report is {meta.original_size} bytes: too large to parse here.",
        }
    data = viewer.store.download(meta.version_uri)
    try:
        report = parse_test_report(data, max_cases=MAX_CASES)
    except ContentParseError as exc:
        return {"report": None, "problem": f"Not a test report this viewer reads: {exc}"}
    return {"report": report_context(report), "problem": None}
