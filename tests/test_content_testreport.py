"""Test report parsing on reports that pytest itself writes, and on hostile input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from necrocode.artifact_store import ContentParseError, InvalidInputError
from necrocode.artifact_store.content import parse_test_report, sniff_test_format

from .content_inputs import run_tiny_suite


@pytest.fixture(scope="module")
def pytest_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return run_tiny_suite(tmp_path_factory.mktemp("suite"))


def test_junit_xml_written_by_pytest(pytest_reports: dict[str, bytes]) -> None:
    report = parse_test_report(pytest_reports["junit"])
    assert report.format == "junit"
    assert (report.passed, report.failed, report.errors, report.skipped) == (1, 2, 1, 1)
    assert report.total == 5
    assert report.success is False
    assert report.duration is not None and report.duration >= 0
    by_name = {case.name: case for case in report.cases}
    login = by_name["test_login_fails"]
    assert login.status == "failed"
    assert login.classname == "test_tiny"
    assert login.id == "test_tiny.test_login_fails"
    assert login.message is not None and "math is broken" in login.message
    assert login.output is not None and "assert 1 + 1 == 3" in login.output
    assert by_name["test_uses_broken"].status == "error"
    assert by_name["test_skipped"].status == "skipped"
    assert by_name["test_token"].classname == "test_tiny.TestAuth"
    assert report.failing_ids() == [
        "test_tiny.test_login_fails",
        "test_tiny.test_uses_broken",
        "test_tiny.TestAuth.test_token",
    ]


def test_pytest_json_report_written_by_the_plugin(pytest_reports: dict[str, bytes]) -> None:
    report = parse_test_report(pytest_reports["pytest-json"])
    assert report.format == "pytest-json"
    assert (report.passed, report.failed, report.errors, report.skipped) == (1, 2, 1, 1)
    assert report.success is False
    ids = report.failing_ids()
    assert ids == [
        "test_tiny.py::test_login_fails",
        "test_tiny.py::test_uses_broken",
        "test_tiny.py::TestAuth::test_token",
    ]
    token = next(case for case in report.cases if case.name == "test_token")
    assert token.classname == "test_tiny.py"
    assert token.message == "ValueError: bad token"
    assert token.output is not None and "some stdout" in token.output


def test_ctrf_written_by_the_plugin(pytest_reports: dict[str, bytes]) -> None:
    report = parse_test_report(pytest_reports["ctrf"])
    assert report.format == "ctrf"
    # The CTRF plugin reports the fixture error as a failure: CTRF has no "error".
    assert (report.passed, report.failed, report.skipped) == (1, 3, 1)
    assert report.success is False
    assert "test_tiny.py::test_login_fails" in report.failing_ids()
    login = next(case for case in report.cases if case.id == "test_tiny.py::test_login_fails")
    assert login.classname == "test_tiny.py"
    assert login.duration is not None and login.duration < 60
    assert login.output is not None and "AssertionError" in login.output


def test_agent_runner_json_names_failing_pytest_ids(pytest_reports: dict[str, bytes]) -> None:
    document = {
        "success": False,
        "test_results": [
            {
                "command": "ruff check .",
                "success": True,
                "stdout": "All checks passed!\n",
                "stderr": "",
                "exit_code": 0,
                "duration_seconds": 0.25,
            },
            {
                "command": "pytest tests/",
                "success": False,
                "stdout": pytest_reports["stdout"].decode(),
                "stderr": "",
                "exit_code": 1,
                "duration_seconds": 1.5,
            },
        ],
        "total_duration_seconds": 1.75,
    }
    report = parse_test_report(json.dumps(document).encode())
    assert report.format == "necrocode"
    assert (report.passed, report.failed) == (1, 1)
    assert report.success is False
    assert report.duration == 1.75
    failing = report.failing[0]
    assert (failing.command, failing.exit_code, failing.status) == ("pytest tests/", 1, "failed")
    assert report.failing_ids() == [
        "pytest tests/",
        "test_tiny.py::test_login_fails",
        "test_tiny.py::TestAuth::test_token",
        "test_tiny.py::test_uses_broken",
    ]


def test_sniffing_tells_the_formats_apart(pytest_reports: dict[str, bytes]) -> None:
    for fmt in ("junit", "pytest-json", "ctrf"):
        assert sniff_test_format(pytest_reports[fmt]) == fmt
    assert sniff_test_format(b'{"test_results": []}') == "necrocode"
    assert sniff_test_format(b"hello") is None
    assert sniff_test_format(b'{"other": 1}') is None


def test_caps_keep_counts_exact() -> None:
    cases = "".join(f'<testcase classname="c" name="t{i}"><failure/></testcase>' for i in range(50))
    data = f"<testsuite>{cases}</testsuite>".encode()
    report = parse_test_report(data, max_cases=10)
    assert report.failed == 50
    assert len(report.cases) == 10
    assert report.truncated
    body = "y" * 5000
    long = parse_test_report(
        f'<testsuite><testcase name="x"><failure>{body}</failure></testcase></testsuite>'.encode(),
        max_output=100,
    )
    output = long.cases[0].output
    assert output is not None and len(output) < 200 and "4900 more characters" in output


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<testsuite><testcase name="&lol9;"/></testsuite>
"""


@pytest.mark.parametrize(
    "data",
    [
        BILLION_LAUGHS,
        b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<testsuite><testcase name="&x;"/></testsuite>',
        b'<!DOCTYPE testsuite SYSTEM "http://127.0.0.1:9/evil.dtd"><testsuite/>',
    ],
    ids=["billion-laughs", "external-entity", "external-dtd"],
)
def test_entity_attacks_are_refused(data: bytes) -> None:
    with pytest.raises(ContentParseError) as caught:
        parse_test_report(data)
    assert caught.value.format == "junit"
    assert "refused" in str(caught.value)
    assert isinstance(caught.value, InvalidInputError)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'<testsuite><testcase name="a">', "does not parse"),
        (b"<html><body/></html>", "not <testsuites>"),
        (b'{"test_results": 3}', "malformed necrocode"),
        (b'{"results": {"tool": {}, "tests": [1]}}', "malformed ctrf"),
        (b'{"tests": [{"outcome": "passed"}], "summary": {}}', "malformed pytest-json"),
        (b'{"test_results": [', "not valid JSON"),
        (b"\xff\xfe\x00garbage", "neither a JSON object nor XML"),
        (b'{"unknown": true}', "not a known test report"),
        (b'{"a":' + b"[" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_reports_raise_a_typed_error(data: bytes, fragment: str) -> None:
    with pytest.raises(ContentParseError, match=fragment):
        parse_test_report(data)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=400), st.sampled_from([b"", b"<testsuite>", b'{"test_results":']))
def test_hostile_bytes_never_escape_the_error_tree(tail: bytes, prefix: bytes) -> None:
    try:
        report = parse_test_report(prefix + tail)
    except ContentParseError:
        return
    assert report.total == report.passed + report.failed + report.skipped + report.errors


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=2000))
def test_truncated_junit_never_escapes_the_error_tree(cut: int) -> None:
    data = Path(__file__).read_bytes()  # any text; wrapped to look like a report
    document = b"<testsuite><testcase name='a'><failure message='x'>" + data[:5000]
    try:
        parse_test_report(document[:cut])
    except ContentParseError:
        pass
    else:  # only a cut that ends exactly on a complete element could parse
        raise AssertionError("an unclosed testsuite parsed")


def test_invalid_utf8_in_xml_is_refused() -> None:
    with pytest.raises(ContentParseError, match="does not parse"):
        parse_test_report(b'<?xml version="1.0" encoding="utf-8"?><testsuite name="\xff\xfe"/>')


def test_keep_passing_false_keeps_only_failures(pytest_reports: dict[str, bytes]) -> None:
    for fmt in ("junit", "pytest-json", "ctrf"):
        full = parse_test_report(pytest_reports[fmt])
        lean = parse_test_report(pytest_reports[fmt], keep_passing=False)
        assert (lean.passed, lean.failed, lean.errors, lean.skipped) == (
            full.passed,
            full.failed,
            full.errors,
            full.skipped,
        )
        assert lean.failing_ids() == full.failing_ids()
        assert all(case.status in ("failed", "error") for case in lean.cases)


def test_both_junit_paths_agree(pytest_reports: dict[str, bytes]) -> None:
    """A document that merely mentions a DOCTYPE (in a comment) takes the defusedxml
    path; one that cannot hold a DTD takes the C-parser path; the reports match."""
    plain = pytest_reports["junit"]
    head, _, rest = plain.partition(b"?>")
    mentioned = head + b"?><!-- not a real <!DOCTYPE x> -->" + rest
    for keep_passing in (True, False):
        fast = parse_test_report(plain, keep_passing=keep_passing)
        slow = parse_test_report(mentioned, keep_passing=keep_passing)
        assert fast == slow


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_billion_laughs_in_other_encodings_is_refused(encoding: str) -> None:
    text = BILLION_LAUGHS.decode().replace('<?xml version="1.0"?>', "")
    data = text.encode(encoding)
    if encoding == "utf-16-le":
        data = b"\xff\xfe" + data
    with pytest.raises(ContentParseError):
        parse_test_report(data)


def test_declared_single_byte_encodings_take_the_defused_path() -> None:
    data = (
        b'<?xml version="1.0" encoding="iso-8859-15"?>'
        b'<testsuite><testcase name="caf\xe9"><failure message="x"/></testcase></testsuite>'
    )
    report = parse_test_report(data)
    assert report.failing_ids() == ["caf\u00e9"]
