"""Test reports in the four formats agents and CI produce, read into one shape.

Public API::

    parse_test_report(data: bytes, *, max_cases=None, max_output=65536, keep_passing=True)
        -> TestReport
    sniff_test_format(data: bytes) -> TestFormat | None

    TestReport(format, success, passed, failed, skipped, errors, duration, cases,
               truncated)
        .total, .failing (cases that failed or errored), .failing_ids()
    TestCase(id, name, classname, status, duration, message, output, command, exit_code)
        status: "passed" | "failed" | "error" | "skipped"

Formats, found by sniffing the bytes (never by trusting a file name):

- ``"necrocode"``: the NecroCode Agent Runner's JSON — ``success``,
  ``test_results[]`` of ``command/success/stdout/stderr/exit_code/duration_seconds``
  and ``total_duration_seconds``. Each command is one case; pytest's
  ``FAILED <nodeid>`` summary lines in its output also name failing tests in
  :meth:`TestReport.failing_ids`.
- ``"junit"``: JUnit XML (``<testsuites>``/``<testsuite>``/``<testcase>``, as
  pytest ``--junitxml``, Maven Surefire, Jest and most CI tools write it). Read
  through ``defusedxml`` with DTDs forbidden, so entity expansion ("billion
  laughs") and external entities are refused rather than expanded.
- ``"pytest-json"``: the pytest-json-report plugin (``tests[].nodeid/outcome``,
  collection errors from ``collectors[]``).
- ``"ctrf"``: the Common Test Report Format (``results.tool/summary/tests``).

Counts are always exact; ``max_cases`` only caps the :class:`TestCase` list
(``truncated`` says so) and ``max_output`` caps each message/output string.
Content that is none of these, or is malformed, raises
:class:`~necrocode.artifact_store.exceptions.ContentParseError`.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from xml.parsers import expat

import defusedxml
import defusedxml.ElementTree as DefusedET

from ..exceptions import ContentParseError

__all__ = [
    "TestCase",
    "TestFormat",
    "TestReport",
    "TestStatus",
    "parse_test_report",
    "sniff_test_format",
]

TestFormat = Literal["necrocode", "junit", "pytest-json", "ctrf"]
TestStatus = Literal["passed", "failed", "error", "skipped"]

#: Default cap on each message/output string kept per case, in characters.
MAX_OUTPUT_CHARS = 64 * 1024

# pytest's short test summary: "FAILED tests/test_x.py::test_a - AssertionError".
_PYTEST_SUMMARY_RE = re.compile(r"^(?:FAILED|ERROR) (\S+::\S+|\S+\.py)(?: - .*)?$", re.MULTILINE)
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


@dataclass(slots=True)
class TestCase:
    """One test (or, for the Agent Runner format, one test command)."""

    __test__ = False  # not a pytest test class, despite the name

    id: str
    name: str
    classname: str | None
    status: TestStatus
    duration: float | None = None
    message: str | None = None
    output: str | None = None
    command: str | None = None
    exit_code: int | None = None


@dataclass(slots=True)
class TestReport:
    """A whole report: exact counts, overall verdict and the (maybe capped) cases."""

    __test__ = False

    format: TestFormat
    success: bool
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    duration: float | None = None
    cases: list[TestCase] = field(default_factory=list)
    truncated: bool = False

    @property
    def total(self) -> int:
        """Every test counted, whatever its status."""
        return self.passed + self.failed + self.skipped + self.errors

    @property
    def failing(self) -> list[TestCase]:
        """The kept cases that failed or errored, in report order."""
        return [case for case in self.cases if case.status in ("failed", "error")]

    def failing_ids(self) -> list[str]:
        """Ids of failing tests: the failing cases, plus for Agent Runner reports the
        pytest node ids its failing commands printed (``FAILED tests/x.py::test_a``)."""
        ids: list[str] = []
        seen: set[str] = set()
        for case in self.failing:
            found = [case.id]
            if self.format == "necrocode" and case.output:
                found += _PYTEST_SUMMARY_RE.findall(_ANSI_RE.sub("", case.output))
            for test_id in found:
                if test_id not in seen:
                    seen.add(test_id)
                    ids.append(test_id)
        return ids


def sniff_test_format(data: bytes) -> TestFormat | None:
    """The format ``data`` looks like from its first bytes and top-level keys, or ``None``.

    Only cheap checks: ``"<"`` means XML (JUnit); a JSON object is told apart by
    its keys. The full parse may still refuse it.
    """
    head = _strip_bom(data).lstrip()
    if head.startswith(b"<"):
        return "junit"
    if not head.startswith(b"{"):
        return None
    try:
        document = json.loads(head)
    except (ValueError, RecursionError):
        return None
    return _json_format(document)


def parse_test_report(
    data: bytes,
    *,
    max_cases: int | None = None,
    max_output: int | None = MAX_OUTPUT_CHARS,
    keep_passing: bool = True,
) -> TestReport:
    """Parse a test report in any supported format (see the module docstring).

    ``keep_passing=False`` keeps only failing and erroring cases in ``cases``
    (passed and skipped ones are still counted): what a summary needs.
    """
    head = _strip_bom(data).lstrip()
    builder = _Builder(max_cases, max_output, keep_passing)
    if head.startswith(b"<"):
        return _parse_junit(data, builder)
    if not head.startswith(b"{"):
        raise ContentParseError("not a test report: neither a JSON object nor XML")
    try:
        document = json.loads(head)
    except (ValueError, RecursionError) as exc:
        raise ContentParseError(f"test report is not valid JSON: {exc}") from exc
    fmt = _json_format(document)
    if fmt is None:
        raise ContentParseError(
            "JSON is not a known test report (Agent Runner, pytest-json-report or CTRF)"
        )
    parse = _JSON_PARSERS[fmt]
    try:
        return parse(document, builder)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ContentParseError(f"malformed {fmt} test report: {exc!r}", format=fmt) from exc


# -- shared helpers --------------------------------------------------------


def _strip_bom(data: bytes) -> bytes:
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def _json_format(document: Any) -> TestFormat | None:
    if not isinstance(document, dict):
        return None
    if "test_results" in document:
        return "necrocode"
    results = document.get("results")
    if isinstance(results, dict) and "tests" in results and "tool" in results:
        return "ctrf"
    if "tests" in document and "summary" in document:
        return "pytest-json"
    return None


class _Builder:
    """Counts every case and keeps the first ``max_cases`` of them."""

    def __init__(self, max_cases: int | None, max_output: int | None, keep_passing: bool) -> None:
        self.max_cases = max_cases
        self.max_output = max_output
        self.keep_passing = keep_passing
        self.counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
        self.cases: list[TestCase] = []
        self.truncated = False

    def add(self, case: TestCase) -> None:
        self.counts[case.status] += 1
        if not self.keep_passing and case.status in ("passed", "skipped"):
            return
        if self.max_cases is not None and len(self.cases) >= self.max_cases:
            self.truncated = True
            return
        case.message = self.clip(case.message)
        case.output = self.clip(case.output)
        self.cases.append(case)

    def clip(self, text: str | None) -> str | None:
        if text is None or self.max_output is None or len(text) <= self.max_output:
            return text
        dropped = len(text) - self.max_output
        return f"{text[: self.max_output]}\n… [{dropped} more characters not kept]"

    def report(self, fmt: TestFormat, success: bool | None, duration: float | None) -> TestReport:
        counts = self.counts
        if success is None:
            success = counts["failed"] == 0 and counts["error"] == 0
        if duration is None and self.cases and not self.truncated and self.keep_passing:
            durations = [case.duration for case in self.cases if case.duration is not None]
            duration = sum(durations) if durations else None
        return TestReport(
            format=fmt,
            success=success,
            passed=counts["passed"],
            failed=counts["failed"],
            skipped=counts["skipped"],
            errors=counts["error"],
            duration=duration,
            cases=self.cases,
            truncated=self.truncated,
        )


def _number(value: Any) -> float | None:
    """A duration from JSON or an XML attribute; anything unusable is ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(item) for item in value)
    return str(value)


def _join(*parts: tuple[str, str | None]) -> str | None:
    """Join non-empty named sections of output, labelled when there are several."""
    present = [(label, text) for label, text in parts if text and text.strip()]
    if not present:
        return None
    if len(present) == 1:
        return present[0][1]
    return "\n".join(f"--- {label} ---\n{text.rstrip()}" for label, text in present)


# -- NecroCode Agent Runner ------------------------------------------------


# How a runner may spell a test's outcome in ``status`` (or ``outcome``/``result``).
_RUNNER_STATUSES: dict[str, TestStatus] = {
    "passed": "passed",
    "pass": "passed",
    "ok": "passed",
    "success": "passed",
    "succeeded": "passed",
    "failed": "failed",
    "fail": "failed",
    "failure": "failed",
    "error": "error",
    "errored": "error",
    "skipped": "skipped",
    "skip": "skipped",
    "xfailed": "skipped",
    "xpassed": "passed",
}


def _runner_status(item: dict[str, Any], exit_code: int | None) -> TestStatus:
    """One result's outcome: ``success: bool`` if given, else a ``status`` word, else the
    exit code. A result that states none of them failed: nothing says it passed."""
    ok = item.get("success")
    if isinstance(ok, bool):
        return "passed" if ok else "failed"
    for key in ("status", "outcome", "result"):
        word = item.get(key)
        if isinstance(word, str):
            status = _RUNNER_STATUSES.get(word.strip().lower())
            if status is not None:
                return status
            return "error"  # a status the runner spelled but nobody knows: not a pass
    return "passed" if exit_code == 0 else "failed"


def _parse_necrocode(document: dict[str, Any], builder: _Builder) -> TestReport:
    results = document["test_results"]
    if not isinstance(results, list):
        raise TypeError("test_results must be a list")
    for index, item in enumerate(results):
        if not isinstance(item, dict):
            raise TypeError(f"test_results[{index}] must be an object")
        command = _text(item.get("command"))
        name = _text(item.get("name")) or command or f"test_results[{index}]"
        exit_code = item.get("exit_code")
        exit_code = (
            exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None
        )
        status = _runner_status(item, exit_code)
        stdout, stderr = _text(item.get("stdout")), _text(item.get("stderr"))
        message = _text(item.get("message"))
        if message is None and status in ("failed", "error") and exit_code is not None:
            message = f"exit code {exit_code}"
        builder.add(
            TestCase(
                id=name,
                name=name,
                classname=None,
                status=status,
                duration=_number(item.get("duration_seconds")),
                message=message,
                output=_join(("stdout", stdout), ("stderr", stderr)),
                command=command,
                exit_code=exit_code,
            )
        )
    success = document.get("success")
    return builder.report(
        "necrocode",
        success if isinstance(success, bool) else None,
        _number(document.get("total_duration_seconds")),
    )


# -- pytest-json-report ----------------------------------------------------

_PYTEST_OUTCOMES: dict[str, TestStatus] = {
    "passed": "passed",
    "xpassed": "passed",
    "failed": "failed",
    "error": "error",
    "skipped": "skipped",
    "xfailed": "skipped",
}


def _parse_pytest_json(document: dict[str, Any], builder: _Builder) -> TestReport:
    for collector in document.get("collectors") or []:
        if isinstance(collector, dict) and collector.get("outcome") == "failed":
            nodeid = str(collector.get("nodeid") or "<collection>")
            builder.add(
                TestCase(
                    id=nodeid,
                    name=nodeid,
                    classname=None,
                    status="error",
                    message="collection failed",
                    output=_text(collector.get("longrepr")),
                )
            )
    tests = document["tests"]
    if not isinstance(tests, list):
        raise TypeError("tests must be a list")
    for test in tests:
        if not isinstance(test, dict):
            raise TypeError("every entry of tests must be an object")
        nodeid = str(test["nodeid"])
        outcome = str(test.get("outcome", ""))
        status = _PYTEST_OUTCOMES.get(outcome, "error")
        duration = 0.0
        message = output = None
        outputs: list[tuple[str, str | None]] = []
        for phase_name in ("setup", "call", "teardown"):
            phase = test.get(phase_name)
            if not isinstance(phase, dict):
                continue
            duration += _number(phase.get("duration")) or 0.0
            if phase.get("outcome") in ("failed", "error") and output is None:
                crash = phase.get("crash")
                if isinstance(crash, dict):
                    message = _text(crash.get("message"))
                output = _text(phase.get("longrepr"))
                if phase_name != "call" and status == "failed":
                    status = "error"  # pytest reports setup/teardown failures as errors
            outputs += [
                (f"{phase_name} stdout", _text(phase.get("stdout"))),
                (f"{phase_name} stderr", _text(phase.get("stderr"))),
            ]
        module, _, rest = nodeid.partition("::")
        builder.add(
            TestCase(
                id=nodeid,
                name=rest.rsplit("::", 1)[-1] if rest else nodeid,
                classname=module if rest else None,
                status=status,
                duration=duration,
                message=message,
                output=_join(("traceback", output), *outputs),
            )
        )
    exitcode = document.get("exitcode")
    success = exitcode == 0 if isinstance(exitcode, int) and exitcode in (0, 1) else None
    return builder.report("pytest-json", success, _number(document.get("duration")))


# -- CTRF ------------------------------------------------------------------

_CTRF_STATUSES: dict[str, TestStatus] = {
    "passed": "passed",
    "failed": "failed",
    "skipped": "skipped",
    "pending": "skipped",
    "other": "skipped",
}


def _parse_ctrf(document: dict[str, Any], builder: _Builder) -> TestReport:
    results = document["results"]
    tests = results["tests"]
    if not isinstance(tests, list):
        raise TypeError("results.tests must be a list")
    for test in tests:
        if not isinstance(test, dict):
            raise TypeError("every entry of results.tests must be an object")
        name = str(test["name"])
        raw_suite = test.get("suite")  # a string, or (since CTRF 1.0) a list of names
        parts = [str(p) for p in raw_suite] if isinstance(raw_suite, list) else [raw_suite]
        suite = " > ".join(p for p in parts if p) or None
        status = _CTRF_STATUSES.get(str(test.get("status", "")), "error")
        millis = _number(test.get("duration"))
        # pytest's CTRF names already start with the file the suite names.
        qualified = suite is None or name.startswith(str(parts[0]))
        builder.add(
            TestCase(
                id=name if qualified else f"{suite} > {name}",
                name=name,
                classname=suite,
                status=status,
                duration=None if millis is None else millis / 1000,
                message=_text(test.get("message")),
                output=_join(
                    ("trace", _text(test.get("trace"))),
                    ("stdout", _text(test.get("stdout"))),
                    ("stderr", _text(test.get("stderr"))),
                ),
            )
        )
    duration = None
    summary = results.get("summary")
    if isinstance(summary, dict):
        start, stop = _number(summary.get("start")), _number(summary.get("stop"))
        if start is not None and stop is not None and stop >= start:
            duration = (stop - start) / 1000
    return builder.report("ctrf", None, duration)


_JSON_PARSERS: dict[TestFormat, Callable[[dict[str, Any], _Builder], TestReport]] = {
    "necrocode": _parse_necrocode,
    "pytest-json": _parse_pytest_json,
    "ctrf": _parse_ctrf,
}


# -- JUnit XML -------------------------------------------------------------


def _local(tag: str) -> str:
    """An element's name without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


_XML_ENCODING_RE = re.compile(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)""")
_PLAIN_ENCODINGS = (b"utf-8", b"utf8", b"us-ascii", b"ascii")


def _cannot_hold_a_dtd(data: bytes) -> bool:
    """Whether ``data`` provably has no DTD: an ASCII-compatible encoding that expat
    reads natively and no ``<!DOCTYPE`` (nor ``<!ENTITY``) anywhere in the bytes.

    Entities can only be declared in a DTD, so such a document can expand no
    entity and reference no external one; anything else goes through defusedxml.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]:
        return False  # UTF-16/32: the byte test below would not see the markup
    declared = _XML_ENCODING_RE.match(data, 3 if data.startswith(b"\xef\xbb\xbf") else 0)
    if declared is not None and declared.group(1).lower() not in _PLAIN_ENCODINGS:
        return False
    return b"<!DOCTYPE" not in data and b"<!ENTITY" not in data


def _parse_junit(data: bytes, builder: _Builder) -> TestReport:
    if _cannot_hold_a_dtd(data):
        return _parse_junit_tree(data, builder)
    # A target that keeps only what a report needs, instead of a whole element tree;
    # memory holds one test case at a time.
    target = _JUnitTarget(builder)
    try:
        # defusedxml's parser installs the handlers that refuse DTDs, entity
        # declarations and external references on its expat parser; the element
        # handlers go straight to the target, skipping ElementTree's Python layer.
        defused = DefusedET.DefusedXMLParser(forbid_dtd=True)
        expat_parser = defused.parser
        expat_parser.ordered_attributes = False
        expat_parser.StartElementHandler = target.start
        expat_parser.EndElementHandler = target.end
        expat_parser.CharacterDataHandler = target.data
        expat_parser.Parse(data, True)
    except defusedxml.DefusedXmlException as exc:
        raise ContentParseError(
            f"JUnit XML refused: {type(exc).__name__} (DTDs and entities are not allowed)",
            format="junit",
        ) from exc
    except _NotJUnit as exc:
        raise ContentParseError(
            f"XML root element is <{exc}>, not <testsuites> or <testsuite>", format="junit"
        ) from None
    except (expat.ExpatError, ET.ParseError, ValueError, RecursionError) as exc:
        raise ContentParseError(f"JUnit XML does not parse: {exc}", format="junit") from exc
    if target.depth != 0 or target.root is None:
        raise ContentParseError("JUnit XML does not parse: unclosed elements", format="junit")
    duration = _number(target.root_time)
    if duration is None and target.suite_times:
        times = [t for t in map(_number, target.suite_times) if t is not None]
        duration = sum(times) if times else None
    return builder.report("junit", None, duration)


class _NotJUnit(Exception):
    """The document's root element is not a JUnit one (its name is the message)."""


_JUNIT_STATUSES: dict[str, TestStatus] = {
    "failure": "failed",
    "error": "error",
    "skipped": "skipped",
}
_CASE_PARTS = ("failure", "error", "skipped", "system-out", "system-err")


class _JUnitTarget:
    """Expat element handlers turning ``<testcase>`` elements into test cases."""

    def __init__(self, builder: _Builder) -> None:
        self.builder = builder
        self.depth = 0
        self.root: str | None = None
        self.root_time: str | None = None
        self.suite_times: list[str | None] = []
        self.case: dict[str, str] | None = None
        self.status: TestStatus = "passed"
        self.message: str | None = None
        self.body: str | None = None
        self.outputs: dict[str, list[str]] = {}
        self.part: str | None = None  # the child of <testcase> whose text is collected
        self.text: list[str] = []

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        name = tag if tag[:1] != "{" else _local(tag)
        self.depth += 1
        if self.depth == 1:
            if name not in ("testsuites", "testsuite"):
                raise _NotJUnit(name)
            self.root, self.root_time = name, attrib.get("time")
        elif self.depth == 2 and name == "testsuite":
            self.suite_times.append(attrib.get("time"))
        if name == "testcase" and self.case is None:
            self.case = attrib  # a fresh dict per element
            self.status, self.message, self.body, self.outputs = "passed", None, None, {}
        elif self.case is not None and self.part is None and name in _CASE_PARTS:
            self.part, self.text = name, []
            status = _JUNIT_STATUSES.get(name)
            # A failure or error outranks a skip; the first of each kind is kept.
            upgrade = self.status == "passed" or (self.status == "skipped" and status != "skipped")
            if status is not None and upgrade:
                self.status, self.message = status, attrib.get("message")
                self.part = f"{name}:body"

    def data(self, text: str) -> None:
        if self.part is not None:
            self.text.append(text)

    def end(self, tag: str) -> None:
        self.depth -= 1
        name = tag if tag[:1] != "{" else _local(tag)
        if self.part is not None and self.part.split(":")[0] == name:
            text = "".join(self.text)
            if self.part.endswith(":body"):
                self.body = text or None
            elif text:
                self.outputs.setdefault(name, []).append(text)
            self.part = None
        elif name == "testcase" and self.case is not None:
            if self.builder.keep_passing or self.status in ("failed", "error"):
                self.builder.add(self._case())
            else:
                self.builder.counts[self.status] += 1  # counted, not kept: skip building it
            self.case = None

    def close(self) -> None:
        return None

    def _case(self) -> TestCase:
        assert self.case is not None
        name = self.case.get("name") or "<unnamed>"
        classname = self.case.get("classname") or None
        out, err = self.outputs.get("system-out"), self.outputs.get("system-err")
        return TestCase(
            id=f"{classname}.{name}" if classname else name,
            name=name,
            classname=classname,
            status=self.status,
            duration=_number(self.case.get("time")),
            message=self.message,
            output=_join(
                (self.status, self.body),
                ("stdout", "\n".join(out) if out else None),
                ("stderr", "\n".join(err) if err else None),
            ),
        )


def _parse_junit_tree(data: bytes, builder: _Builder) -> TestReport:
    """The fast path of :func:`_parse_junit`: the C parser builds the tree, and test
    cases without children (passed, with no output) are only counted."""
    try:
        root = ET.fromstring(data)  # noqa: S314 - no DTD possible, see _cannot_hold_a_dtd
    except (ET.ParseError, ValueError, RecursionError) as exc:
        raise ContentParseError(f"JUnit XML does not parse: {exc}", format="junit") from exc
    tag = root.tag
    ns = tag[: tag.index("}") + 1] if tag.startswith("{") else ""
    if tag[len(ns) :] not in ("testsuites", "testsuite"):
        raise ContentParseError(
            f"XML root element is <{_local(tag)}>, not <testsuites> or <testsuite>",
            format="junit",
        )
    target = _JUnitTarget(builder)
    target.depth = 1
    for case in root.iter(f"{ns}testcase"):
        if len(case) == 0 and not builder.keep_passing:
            builder.counts["passed"] += 1
            continue
        target.start(case.tag, dict(case.attrib))
        for child in case:
            target.start(child.tag, child.attrib)
            if child.text:
                target.data(child.text)
            target.end(child.tag)
        target.end(case.tag)
    duration = _number(root.get("time"))
    if duration is None and tag[len(ns) :] == "testsuites":
        times = [_number(suite.get("time")) for suite in root.iter(f"{ns}testsuite")]
        present = [t for t in times if t is not None]
        duration = sum(present) if present else None
    return builder.report("junit", None, duration)
