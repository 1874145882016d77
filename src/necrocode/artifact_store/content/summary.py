"""The summary of an artifact's content, as kept in its metadata record and the index.

Public API::

    SUMMARY_VERSION                      # bump when a parser changes what it reports
    Summary(kind, parser_version, test=None, diff=None, log=None, capped=False)
        .failed        True/False for test reports, None otherwise
        .has_errors    failing tests, or error lines / tracebacks in a log
        .paths()       changed paths (old and new) of a diff
        .failing_tests()  failing test ids of a test report
        .to_dict() / Summary.from_dict(data)
    TestSummary(format, success, passed, failed, skipped, errors, duration, failing)
    DiffSummary(files_changed, added, removed, binary_files, files)
    ChangedFile(path, status, added, removed, binary, old_path)
    LogSummary(lines, error_lines, warning_lines, tracebacks, first_error_line)

Lists are capped (``MAX_FAILING_IDS`` failing ids, ``MAX_CHANGED_FILES`` files) so
a record stays small; the counts beside them are always exact. ``capped`` says
the summariser stopped reading a huge artifact early: the counts then cover its
first bytes only. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..exceptions import IntegrityError
from .diff import FileStatus

__all__ = [
    "MAX_CHANGED_FILES",
    "MAX_FAILING_IDS",
    "SUMMARY_VERSION",
    "ChangedFile",
    "DiffSummary",
    "LogSummary",
    "Summary",
    "SummaryKind",
    "TestSummary",
]

#: Version of the parsers' output; summaries of an older version are refreshed by
#: ``necrocode-artifacts reindex --summaries``.
SUMMARY_VERSION = 2
#: Failing test ids kept per test report.
MAX_FAILING_IDS = 50
#: Changed files listed per diff.
MAX_CHANGED_FILES = 500
#: Longest failing test id or path kept (longer ones are cut).
MAX_NAME_CHARS = 1024

SummaryKind = Literal["test", "diff", "log"]
_STATUSES: tuple[FileStatus, ...] = ("modified", "added", "deleted", "renamed", "copied")


@dataclass(frozen=True, slots=True)
class TestSummary:
    """Counts and failing ids of a test report (see :mod:`.testreport` for formats)."""

    __test__ = False

    format: str
    success: bool
    passed: int
    failed: int
    skipped: int
    errors: int
    duration: float | None
    failing: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Every test counted."""
        return self.passed + self.failed + self.skipped + self.errors


@dataclass(frozen=True, slots=True)
class ChangedFile:
    """One file of a diff. ``old_path`` is set for renames and copies only."""

    path: str
    status: FileStatus
    added: int
    removed: int
    binary: bool = False
    old_path: str | None = None


@dataclass(frozen=True, slots=True)
class DiffSummary:
    """Totals of a diff and its first ``MAX_CHANGED_FILES`` files."""

    files_changed: int
    added: int
    removed: int
    binary_files: int
    files: tuple[ChangedFile, ...] = ()


@dataclass(frozen=True, slots=True)
class LogSummary:
    """Line statistics of a log (see :mod:`.logs` for what counts as an error)."""

    lines: int
    error_lines: int
    warning_lines: int
    tracebacks: int
    first_error_line: int | None


@dataclass(frozen=True, slots=True)
class Summary:
    """What the store understood of one artifact version's content."""

    kind: SummaryKind
    parser_version: int
    test: TestSummary | None = None
    diff: DiffSummary | None = None
    log: LogSummary | None = None
    capped: bool = False

    @property
    def failed(self) -> bool | None:
        """For a test report: whether anything failed or errored. ``None`` for other kinds."""
        if self.test is None:
            return None
        return not self.test.success or self.test.failed + self.test.errors > 0

    @property
    def has_errors(self) -> bool:
        """Failing tests, or error lines or tracebacks in a log."""
        if self.test is not None:
            return bool(self.failed)
        if self.log is not None:
            return self.log.error_lines > 0 or self.log.tracebacks > 0
        return False

    def paths(self) -> list[str]:
        """Every path a diff touches (old paths of renames too), in diff order."""
        if self.diff is None:
            return []
        found: list[str] = []
        for file in self.diff.files:
            found.append(file.path)
            if file.old_path and file.old_path != file.path:
                found.append(file.old_path)
        return found

    def failing_tests(self) -> list[str]:
        """Failing test ids (capped at ``MAX_FAILING_IDS``)."""
        return [] if self.test is None else list(self.test.failing)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data; :meth:`from_dict` restores an equal summary.

        ``failed`` and ``has_errors`` are written out too, so the index and other
        readers of the record need not recompute them.
        """
        data: dict[str, Any] = {
            "kind": self.kind,
            "parser_version": self.parser_version,
            "capped": self.capped,
            "failed": self.failed,
            "has_errors": self.has_errors,
        }
        if self.test is not None:
            t = self.test
            data["test"] = {
                "format": t.format,
                "success": t.success,
                "passed": t.passed,
                "failed": t.failed,
                "skipped": t.skipped,
                "errors": t.errors,
                "duration": t.duration,
                "failing": list(t.failing),
            }
        if self.diff is not None:
            d = self.diff
            data["diff"] = {
                "files_changed": d.files_changed,
                "added": d.added,
                "removed": d.removed,
                "binary_files": d.binary_files,
                "files": [
                    {
                        "path": f.path,
                        "status": f.status,
                        "added": f.added,
                        "removed": f.removed,
                        "binary": f.binary,
                        "old_path": f.old_path,
                    }
                    for f in d.files
                ],
            }
        if self.log is not None:
            g = self.log
            data["log"] = {
                "lines": g.lines,
                "error_lines": g.error_lines,
                "warning_lines": g.warning_lines,
                "tracebacks": g.tracebacks,
                "first_error_line": g.first_error_line,
            }
        return data

    @classmethod
    def from_trusted_dict(cls, data: dict[str, Any]) -> Summary:
        """Build from :meth:`to_dict` output this library wrote, without the checks of
        :meth:`from_dict` (for index rows, read many at a time). A missing key or a
        wrong type raises ``KeyError``/``TypeError``; the caller falls back then."""
        t, d, g = data.get("test"), data.get("diff"), data.get("log")
        return cls(
            data["kind"],
            data["parser_version"],
            None
            if t is None
            else TestSummary(
                t["format"],
                t["success"],
                t["passed"],
                t["failed"],
                t["skipped"],
                t["errors"],
                t["duration"],
                tuple(t["failing"]),
            ),
            None
            if d is None
            else DiffSummary(
                d["files_changed"],
                d["added"],
                d["removed"],
                d["binary_files"],
                tuple(
                    ChangedFile(
                        f["path"], f["status"], f["added"], f["removed"], f["binary"], f["old_path"]
                    )
                    for f in d["files"]
                ),
            ),
            None
            if g is None
            else LogSummary(
                g["lines"],
                g["error_lines"],
                g["warning_lines"],
                g["tracebacks"],
                g["first_error_line"],
            ),
            data["capped"],
        )

    @classmethod
    def from_dict(cls, data: Any) -> Summary:
        """Read :meth:`to_dict` output; anything malformed raises ``IntegrityError``."""
        try:
            return _summary_from(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"malformed summary in metadata record: {exc!r}") from exc


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"expected a count, got {value!r}")
    return value


def _summary_from(data: Any) -> Summary:
    if not isinstance(data, dict):
        raise TypeError("summary must be an object")
    kind = data["kind"]
    if kind not in ("test", "diff", "log"):
        raise ValueError(f"unknown summary kind {kind!r}")
    test = diff = log = None
    if (t := data.get("test")) is not None:
        duration = t.get("duration")
        test = TestSummary(
            format=str(t["format"]),
            success=bool(t["success"]),
            passed=_count(t["passed"]),
            failed=_count(t["failed"]),
            skipped=_count(t["skipped"]),
            errors=_count(t["errors"]),
            duration=None if duration is None else float(duration),
            failing=tuple(str(i) for i in t.get("failing", ())),
        )
    if (d := data.get("diff")) is not None:
        files = []
        for f in d.get("files", ()):
            status = f["status"]
            if status not in _STATUSES:
                raise ValueError(f"unknown file status {status!r}")
            files.append(
                ChangedFile(
                    path=str(f["path"]),
                    status=status,
                    added=_count(f["added"]),
                    removed=_count(f["removed"]),
                    binary=bool(f.get("binary", False)),
                    old_path=None if f.get("old_path") is None else str(f["old_path"]),
                )
            )
        diff = DiffSummary(
            files_changed=_count(d["files_changed"]),
            added=_count(d["added"]),
            removed=_count(d["removed"]),
            binary_files=_count(d["binary_files"]),
            files=tuple(files),
        )
    if (g := data.get("log")) is not None:
        first = g.get("first_error_line")
        log = LogSummary(
            lines=_count(g["lines"]),
            error_lines=_count(g["error_lines"]),
            warning_lines=_count(g["warning_lines"]),
            tracebacks=_count(g["tracebacks"]),
            first_error_line=None if first is None else _count(first),
        )
    return Summary(
        kind=kind,
        parser_version=_count(data["parser_version"]),
        test=test,
        diff=diff,
        log=log,
        capped=bool(data.get("capped", False)),
    )
