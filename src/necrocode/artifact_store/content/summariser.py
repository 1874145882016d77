"""Derive a :class:`~.summary.Summary` from an artifact's bytes while they stream past.

Public API::

    Summariser(artifact_type, *, max_bytes=MAX_SUMMARY_BYTES)   # "diff" | "log" | "test"
        .feed(chunk)                 # never raises
        .tap(chunks) -> Iterator[bytes]   # passes chunks through, feeding itself
        .finish() -> (Summary | None, reason | None)
    summarise(artifact_type, data: bytes | Iterable[bytes]) -> (Summary | None, reason | None)

The parser is chosen by the artifact type (``diff`` → :mod:`.diff`, ``log`` →
:mod:`.logs`, ``test`` → :mod:`.testreport`, whose format is sniffed). Work is
bounded: diffs and logs are parsed as they stream with constant memory (a line
is judged by its first 64 KiB) and only their first ``max_bytes`` are read
(``capped`` then marks the summary); a test report must be parsed whole, so it
is buffered up to ``MAX_TEST_REPORT_BYTES`` and a bigger one gets no summary.
Nothing here ever raises into an upload: content that does not parse, or a bug
in a parser, gives ``(None, reason)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from ..exceptions import ContentParseError
from .diff import FileDiff
from .diff_scan import DiffCounter
from .junit_scan import scan_junit
from .logs import LogScanner
from .summary import (
    MAX_CHANGED_FILES,
    MAX_FAILING_IDS,
    MAX_NAME_CHARS,
    SUMMARY_VERSION,
    ChangedFile,
    DiffSummary,
    LogSummary,
    Summary,
    TestSummary,
)
from .testreport import parse_test_report

__all__ = [
    "MAX_SUMMARY_BYTES",
    "MAX_TEST_REPORT_BYTES",
    "SUMMARISED_TYPES",
    "Summariser",
    "summarise",
]

log = logging.getLogger("necrocode.artifact_store.content")

MiB = 1024 * 1024
#: Diffs and logs are summarised from their first this many bytes. Their parse holds
#: the GIL at ~4-6 ms/MiB: 32 MiB (~0.2 s) keeps a 1 GiB upload within a few per cent
#: of its speed without summaries (B4), where 256 MiB cost it half.
MAX_SUMMARY_BYTES = 32 * MiB
#: Test reports bigger than this are not summarised (they must be parsed whole).
MAX_TEST_REPORT_BYTES = 32 * MiB
#: A diff line is judged by this many of its first bytes.
MAX_DIFF_LINE = 64 * 1024
#: Artifact types (``ArtifactType`` values) that have a parser.
SUMMARISED_TYPES = ("diff", "log", "test")
#: Bytes looked at to tell binary content from text.
SNIFF_BYTES = 8000


def _clip(name: str) -> str:
    return name if len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS]


class _DiffPart:
    """Lines out of chunks into a :class:`DiffCounter`."""

    def __init__(self) -> None:
        self.parser = DiffCounter()
        self.carry = b""
        self.skipping = False  # dropping the tail of an over-long line
        self.files: list[ChangedFile] = []
        self.count = self.added = self.removed = self.binary = 0

    def feed(self, chunk: bytes) -> None:
        if self.skipping:
            newline = chunk.find(b"\n")
            if newline < 0:
                return
            self.skipping = False
            self._take(self.parser.feed_bytes(self.carry + b"\n"))
            self.carry = b""
            chunk = chunk[newline + 1 :]
        last = chunk.rfind(b"\n")
        if last < 0:
            self.carry += chunk
        else:
            start = 0
            if self.carry:  # the line the last chunk ended inside, completed
                start = chunk.find(b"\n") + 1
                self._take(self.parser.feed_bytes(self.carry + chunk[:start]))
            # The chunk's whole lines where they are: a chunk is not copied.
            self._take(self.parser.feed_bytes(chunk, start, last + 1))
            self.carry = chunk[last + 1 :]
        if len(self.carry) > MAX_DIFF_LINE:
            self.carry = self.carry[:MAX_DIFF_LINE]
            self.skipping = True

    def finish(self) -> tuple[DiffSummary | None, str | None]:
        if self.carry:
            self._take(self.parser.feed_bytes(self.carry))
        self._take(self.parser.close())
        if self.count == 0:
            return None, "no file changes found: not a diff"
        summary = DiffSummary(
            files_changed=self.count,
            added=self.added,
            removed=self.removed,
            binary_files=self.binary,
            files=tuple(self.files),
        )
        return summary, None

    def _take(self, done: list[FileDiff]) -> None:
        files = self.files
        for file in done:
            self.count += 1
            self.added += file.added
            self.removed += file.removed
            self.binary += file.binary
            if len(files) < MAX_CHANGED_FILES:
                path = file.path
                old_path = file.old_path if file.status in ("renamed", "copied") else None
                files.append(
                    ChangedFile(
                        path if len(path) <= MAX_NAME_CHARS else path[:MAX_NAME_CHARS],
                        file.status,
                        file.added,
                        file.removed,
                        file.binary,
                        _clip(old_path) if old_path else None,
                    )
                )


class Summariser:
    """Summarise one artifact fed in chunks (see the module docstring)."""

    def __init__(self, artifact_type: str, *, max_bytes: int = MAX_SUMMARY_BYTES) -> None:
        # An ArtifactType is a str enum: "diff", "log" or "test".
        kind = str(artifact_type)
        self.kind = kind
        self.max_bytes = max_bytes
        self.seen = 0
        self.capped = False
        # A type added to ArtifactType later has no parser yet: its uploads go on,
        # unsummarised, with the reason.
        self._failure: str | None = (
            None if kind in SUMMARISED_TYPES else f"no summariser for artifact type {kind!r}"
        )
        self._head = b""  # the first bytes, to tell binary content
        self._diff = _DiffPart() if kind == "diff" else None
        # A summary lists no CI sections: the scanner skips looking for them.
        self._log = LogScanner(max_sections=0) if kind == "log" else None
        self._report: list[bytes] | None = [] if kind == "test" else None

    @property
    def done(self) -> bool:
        """Nothing more will change the outcome (capped, or no summary possible):
        later chunks need not be fed."""
        return self._failure is not None or self.capped

    def tap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield ``chunks`` unchanged, feeding each one to the summariser first."""
        for chunk in chunks:
            self.feed(chunk)
            yield chunk

    def feed(self, chunk: bytes) -> None:
        """Consume the next bytes of the artifact. Never raises."""
        if self._failure is not None or self.capped or not chunk:
            return
        try:
            self._feed(bytes(chunk))
        except Exception as exc:  # a parser bug must never fail an upload
            log.warning("summariser of a %s failed: %r", self.kind, exc)
            self._failure = f"summariser failed: {type(exc).__name__}: {exc}"

    def _feed(self, chunk: bytes) -> None:
        if len(self._head) < SNIFF_BYTES:
            self._head += chunk[: SNIFF_BYTES - len(self._head)]
            if b"\x00" in self._head and self._report is None:
                self._failure = "binary content"
                return
        room = self.max_bytes - self.seen
        if self._report is not None:
            self.seen += len(chunk)
            if self.seen > MAX_TEST_REPORT_BYTES:
                self._failure = (
                    f"test report larger than {MAX_TEST_REPORT_BYTES // MiB} MiB is not summarised"
                )
                self._report = None
                return
            self._report.append(chunk)
            return
        if len(chunk) >= room:
            chunk = chunk[:room]
            self.capped = True
        self.seen += len(chunk)
        if self._diff is not None:
            self._diff.feed(chunk)
        elif self._log is not None:
            self._log.feed(chunk)

    def finish(self) -> tuple[Summary | None, str | None]:
        """The summary, or ``None`` and the reason there is none. Never raises."""
        if self._failure is not None:
            return None, self._failure
        try:
            return self._finish()
        except ContentParseError as exc:
            return None, str(exc)
        except Exception as exc:  # a parser bug must never fail an upload
            log.warning("summariser of a %s failed: %r", self.kind, exc)
            return None, f"summariser failed: {type(exc).__name__}: {exc}"

    def _finish(self) -> tuple[Summary | None, str | None]:
        if self._log is not None:
            stats = self._log.close()
            log_summary = LogSummary(
                lines=stats.lines,
                error_lines=stats.error_lines,
                warning_lines=stats.warning_lines,
                tracebacks=stats.tracebacks,
                first_error_line=stats.first_error_line,
            )
            return Summary("log", SUMMARY_VERSION, log=log_summary, capped=self.capped), None
        if self._diff is not None:
            if self.seen == 0:
                empty = DiffSummary(files_changed=0, added=0, removed=0, binary_files=0)
                return Summary("diff", SUMMARY_VERSION, diff=empty), None
            diff, reason = self._diff.finish()
            if diff is None:
                return None, reason
            return Summary("diff", SUMMARY_VERSION, diff=diff, capped=self.capped), None
        assert self._report is not None
        data = b"".join(self._report)
        self._report = None
        return Summary("test", SUMMARY_VERSION, test=_test_summary(data)), None


def _test_summary(data: bytes) -> TestSummary:
    """A report's summary: JUnit XML by byte search when that can vouch for the
    answer (:mod:`.junit_scan`), anything else through the full parser."""
    counts = scan_junit(data, max_ids=MAX_FAILING_IDS) if data.lstrip()[:1] == b"<" else None
    if counts is not None:
        return TestSummary(
            format="junit",
            success=counts.failed == 0 and counts.errors == 0,
            passed=counts.passed,
            failed=counts.failed,
            skipped=counts.skipped,
            errors=counts.errors,
            duration=counts.duration,
            failing=tuple(_clip(i) for i in counts.failing_ids),
        )
    report = parse_test_report(data, max_output=None, keep_passing=False)
    return TestSummary(
        format=report.format,
        success=report.success,
        passed=report.passed,
        failed=report.failed,
        skipped=report.skipped,
        errors=report.errors,
        duration=report.duration,
        failing=tuple(_clip(i) for i in report.failing_ids()[:MAX_FAILING_IDS]),
    )


def summarise(
    artifact_type: str, data: bytes | Iterable[bytes]
) -> tuple[Summary | None, str | None]:
    """Summarise a whole artifact given as bytes or as an iterable of chunks."""
    summariser = Summariser(artifact_type)
    if isinstance(data, bytes | bytearray | memoryview):
        summariser.feed(bytes(data))
    else:
        for chunk in data:
            summariser.feed(chunk)
    return summariser.finish()
