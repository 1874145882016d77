"""Parsers of what artifacts contain: diffs, test reports and logs.

Shared by the upload summariser (:mod:`.summary`) and the viewer. Every parser
treats content as hostile: it never executes anything, bounds its memory, and
either tolerates damage (diffs, logs) or raises
:class:`~necrocode.artifact_store.exceptions.ContentParseError` (test reports).

- :mod:`.diff` — ``parse_diff(lines) -> Iterator[FileDiff]``, ``DiffParser``
- :mod:`.testreport` — ``parse_test_report(data) -> TestReport``
- :mod:`.logs` — ``LogScanner``/``scan_log``, ``line_level``, ``section_marker``,
  ``strip_ansi``, ``ansi_spans``, ``ansi_html``, ``AnsiDecoder``, ``Style``
- :mod:`.summary` — the ``Summary`` kept in metadata records (no I/O)
- :mod:`.summariser` — ``Summariser``/``summarise``: a ``Summary`` from streamed bytes
"""

from __future__ import annotations

from .diff import DiffLine, DiffParser, FileDiff, FileStatus, Hunk, LineKind, parse_diff
from .logs import (
    PLAIN,
    AnsiDecoder,
    Color,
    LogScanner,
    LogSection,
    LogStats,
    SectionMarker,
    Style,
    ansi_html,
    ansi_spans,
    line_level,
    scan_log,
    section_marker,
    strip_ansi,
)
from .summariser import Summariser, summarise
from .summary import (
    SUMMARY_VERSION,
    ChangedFile,
    DiffSummary,
    LogSummary,
    Summary,
    SummaryKind,
    TestSummary,
)
from .testreport import (
    TestCase,
    TestFormat,
    TestReport,
    TestStatus,
    parse_test_report,
    sniff_test_format,
)

__all__ = [
    "PLAIN",
    "SUMMARY_VERSION",
    "AnsiDecoder",
    "ChangedFile",
    "Color",
    "DiffLine",
    "DiffParser",
    "DiffSummary",
    "FileDiff",
    "FileStatus",
    "Hunk",
    "LineKind",
    "LogScanner",
    "LogSection",
    "LogStats",
    "LogSummary",
    "SectionMarker",
    "Style",
    "Summariser",
    "Summary",
    "SummaryKind",
    "TestCase",
    "TestFormat",
    "TestReport",
    "TestStatus",
    "TestSummary",
    "ansi_html",
    "ansi_spans",
    "line_level",
    "parse_diff",
    "parse_test_report",
    "scan_log",
    "section_marker",
    "sniff_test_format",
    "strip_ansi",
    "summarise",
]
