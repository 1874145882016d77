"""The byte-level scanners uploads summarise with give the full parsers' answers.

:class:`DiffCounter` must count exactly as :class:`DiffParser`, and
:func:`scan_junit` must either agree with :func:`parse_test_report` or step
aside (``None``); both are checked on real ``git``/pytest output and on
generated input, including damaged hunks and every chunking.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from necrocode.artifact_store.content import DiffParser, FileDiff, parse_test_report
from necrocode.artifact_store.content.diff_scan import DiffCounter
from necrocode.artifact_store.content.junit_scan import scan_junit
from necrocode.artifact_store.content.summariser import summarise

from .content_inputs import git, make_repo, run_tiny_suite


def _by_line(data: bytes) -> list[tuple[object, ...]]:
    parser = DiffParser(max_lines_per_file=0)
    return [_facts(f) for f in parser.feed_bytes(data) + parser.close()]


def _counted(data: bytes, cuts: list[int] | None = None) -> list[tuple[object, ...]]:
    counter = DiffCounter()
    files = []
    position = 0
    for cut in sorted(cuts or []):
        # Whole lines only, as the summariser hands them over.
        end = data.rfind(b"\n", 0, cut) + 1
        if end > position:
            files += counter.feed_bytes(data[position:end])
            position = end
    files += counter.feed_bytes(data[position:]) + counter.close()
    return [_facts(f) for f in files]


def _facts(file: FileDiff) -> tuple[object, ...]:
    names = ("old_path", "new_path", "status", "binary", "added", "removed", "hunk_count")
    return (*(getattr(file, name) for name in names), file.old_mode, file.new_mode)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("repo"))


@pytest.mark.parametrize(
    "args",
    [
        ["diff", "--cached"],
        ["diff", "--cached", "-M", "--binary"],
        ["diff", "--cached", "-M", "-C", "--find-copies-harder", "--no-prefix"],
    ],
)
def test_counts_of_a_real_git_diff_match_the_line_parser(repo: Path, args: list[str]) -> None:
    data = git(repo, *args).encode("utf-8", "surrogateescape")
    assert _counted(data) == _by_line(data)
    assert len(_counted(data)) >= 7


def test_counts_of_this_projects_history_match_the_line_parser() -> None:
    root = Path(__file__).resolve().parents[1]
    data = git(root, "log", "-p", "-25", "--format=From %H%nSubject: %s%n").encode(
        "utf-8", "surrogateescape"
    )
    assert _counted(data) == _by_line(data)
    assert _counted(data, [len(data) // 3, len(data) // 2]) == _by_line(data)


_HUNK_LINES = st.lists(
    st.sampled_from([b" ctx", b"+add", b"-del", b"", b"\\ No newline at end of file", b"+++x"]),
    max_size=8,
)


@st.composite
def _diffs(draw: st.DrawFn) -> bytes:
    """git diffs whose hunks may promise more or fewer lines than they hold."""
    out = [
        draw(st.sampled_from([b"", b"preamble line\n", b"--- a/p\n+++ b/p\n@@ -1 +1 @@\n-a\n+b\n"]))
    ]
    for number in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from([f"f{number}.py", "dir/x.py", "same.txt"])).encode()
        kind = draw(st.sampled_from(["modified", "added", "deleted", "odd"]))
        out.append(b"diff --git a/%s b/%s\n" % (path, path))
        if kind == "added":
            out.append(b"new file mode 100644\nindex 0000000..1111111\n--- /dev/null\n")
            out.append(b"+++ b/%s\n" % path)
        elif kind == "deleted":
            out.append(b"deleted file mode 100644\nindex 1111111..0000000\n")
            out.append(b"--- a/%s\n+++ /dev/null\n" % path)
        elif kind == "odd":
            out.append(draw(st.sampled_from([b"similarity index 90%\n", b"old mode 100644\n"])))
            out.append(b"--- a/%s\n+++ b/%s\n" % (path, path))
        else:
            out.append(b"index 1111111..2222222 100644\n--- a/%s\n+++ b/%s\n" % (path, path))
        for _ in range(draw(st.integers(0, 3))):
            lines = draw(_HUNK_LINES)
            honest = draw(st.booleans())
            old = sum(1 for line in lines if line[:1] in (b" ", b"-", b""))
            new = sum(1 for line in lines if line[:1] in (b" ", b"+", b""))
            if not honest:
                old, new = draw(st.integers(0, 5)), draw(st.integers(0, 5))
            out.append(b"@@ -1,%d +1,%d @@ def f():\n" % (old, new))
            out.extend(line + b"\n" for line in lines)
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(_diffs(), st.lists(st.integers(0, 2000), max_size=4), st.booleans())
def test_generated_diffs_count_as_the_line_parser_counts(
    data: bytes, cuts: list[int], cut_last_newline: bool
) -> None:
    if cut_last_newline and data.endswith(b"\n"):
        data = data[:-1]
    assert _counted(data, cuts) == _by_line(data)


def test_a_huge_file_section_streams_through_the_line_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from necrocode.artifact_store.content import diff_scan

    monkeypatch.setattr(diff_scan, "MAX_SECTION_BYTES", 64 * 1024)
    body = b"".join(b"+line %d\n" % i for i in range(20_000))
    head = b"diff --git a/big b/big\nindex 1..2 100644\n--- a/big\n+++ b/big\n"
    data = head + b"@@ -0,0 +1,20000 @@\n" + body + head + b"@@ -1 +1 @@\n-a\n+b\n"
    counter = DiffCounter()
    files = []
    held = 0
    position = 0
    while position < len(data):
        end = data.rfind(b"\n", position, position + 16 * 1024) + 1 or len(data)
        files += counter.feed_bytes(data[position:end])
        held = max(held, len(counter._section))
        position = end
    files += counter.close()
    assert [(f.path, f.added, f.removed) for f in files] == [("big", 20_000, 0), ("big", 1, 1)]
    assert held <= 64 * 1024 + 16 * 1024  # never the whole file
    assert [_facts(f) for f in files] == _by_line(data)


# -- JUnit -------------------------------------------------------------------


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return run_tiny_suite(tmp_path_factory.mktemp("suite"))


def _full(data: bytes) -> tuple[object, ...]:
    report = parse_test_report(data, keep_passing=False)
    ids = report.failing_ids()[:50]
    return report.passed, report.failed, report.skipped, report.errors, report.duration, ids


def _scanned(data: bytes) -> tuple[object, ...] | None:
    counts = scan_junit(data)
    if counts is None:
        return None
    return (
        counts.passed,
        counts.failed,
        counts.skipped,
        counts.errors,
        counts.duration,
        counts.failing_ids,
    )


def test_pytest_junit_is_scanned_like_the_parser_reads_it(reports: dict[str, bytes]) -> None:
    data = reports["junit"]
    assert _scanned(data) is not None
    assert _scanned(data) == _full(data)
    summary, _ = summarise("test", data)
    assert summary is not None and summary.test is not None
    assert summary.test.failing == (
        "test_tiny.test_login_fails",
        "test_tiny.test_uses_broken",
        "test_tiny.TestAuth.test_token",
    )


@pytest.mark.parametrize(
    "data",
    [
        b'<testsuite><testcase name="a"><failure/></testcase>',  # truncated
        b'<testsuite><!-- <testcase name="x"><failure/></testcase> --></testsuite>',
        b'<testsuite><testcase name="a"><system-out><![CDATA[<failure>]]></system-out>'
        b"</testcase></testsuite>",
        b'<?xml version="1.0" encoding="latin-1"?><testsuite><testcase name="a"/></testsuite>',
        b'<testsuite><testcase name="\xff"/></testsuite>',
        b'<testsuite><testcase name="&bogus;"><failure/></testcase></testsuite>',
        b"<html><testcase/></html>",
    ],
    ids=["truncated", "comment", "cdata", "latin-1", "bad-utf8", "entity", "not-junit"],
)
def test_what_only_a_parser_can_judge_is_left_to_it(data: bytes) -> None:
    assert scan_junit(data) is None


_NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
    | st.sampled_from("&<>\"'\t"),
    max_size=8,
)


@st.composite
def _junit(draw: st.DrawFn) -> bytes:
    cases = []
    for _ in range(draw(st.integers(0, 12))):
        attributes = f"name={quoteattr(draw(_NAMES))}"
        if draw(st.booleans()):
            attributes += f" classname={quoteattr(draw(_NAMES))}"
        if draw(st.booleans()):
            attributes += f' time="{draw(st.floats(0, 100, allow_nan=False)):.3f}"'
        parts = draw(
            st.lists(
                st.sampled_from(
                    [
                        '<failure message="x &gt; y">trace &lt;here&gt;</failure>',
                        "<error/>",
                        '<skipped message="later"/>',
                        "<system-out>out &amp; more</system-out>",
                        "<properties><property name='a' value='b'/></properties>",
                    ]
                ),
                max_size=3,
            )
        )
        space = draw(st.sampled_from([" ", "\n  "]))
        cases.append(
            f"<testcase{space}{attributes}>{''.join(parts)}</testcase>"
            if parts
            else f"<testcase{space}{attributes}/>"
        )
    body = "".join(cases)
    suite_time = draw(st.sampled_from(["", ' time="1.5"']))
    if draw(st.booleans()):
        suite = f"<testsuite name='s' time='2.5'>{body}</testsuite>"
        document = f"<testsuites{suite_time}>{suite}</testsuites>"
    else:
        document = f"<testsuite name='s'{suite_time}>{body}</testsuite>"
    declaration = draw(st.sampled_from(["", '<?xml version="1.0" encoding="utf-8"?>\n']))
    return (declaration + document + draw(st.sampled_from(["", "\n"]))).encode()


@settings(max_examples=300, deadline=None)
@given(_junit())
def test_generated_junit_is_scanned_like_the_parser_reads_it(data: bytes) -> None:
    scanned = _scanned(data)
    assert scanned is not None
    assert scanned == _full(data)


@settings(max_examples=200, deadline=None)
@given(_junit(), st.integers(0, 400))
def test_a_damaged_report_never_gets_a_wrong_summary_silently(data: bytes, cut: int) -> None:
    """Cut anywhere, the summariser either refuses the report or reads it as the
    full parser does; never half a report taken for the whole."""
    cut_data = data[: min(cut, len(data))]
    summary, reason = summarise("test", cut_data)
    if summary is None:
        assert reason
        return
    assert summary.test is not None
    full = parse_test_report(cut_data, keep_passing=False)
    assert (summary.test.passed, summary.test.failed, summary.test.errors) == (
        full.passed,
        full.failed,
        full.errors,
    )


# -- Agent Runner JSON -------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "status"),
    [
        ({"name": "t", "status": "passed"}, "passed"),
        ({"name": "t", "status": "failed"}, "failed"),
        ({"name": "t", "status": "error"}, "error"),
        ({"name": "t", "status": "skipped"}, "skipped"),
        ({"name": "t", "status": "PASSED"}, "passed"),
        ({"name": "t", "status": "ok"}, "passed"),
        ({"name": "t", "status": "weird"}, "error"),
        ({"name": "t", "success": True}, "passed"),
        ({"name": "t", "success": False, "status": "passed"}, "failed"),
        ({"command": "pytest", "exit_code": 0}, "passed"),
        ({"command": "pytest", "exit_code": 2}, "failed"),
        ({"name": "t"}, "failed"),
    ],
)
def test_every_runner_status_spelling(result: dict[str, object], status: str) -> None:
    report = parse_test_report(json.dumps({"test_results": [result]}).encode())
    (case,) = report.cases
    assert case.status == status
    assert case.id == result.get("name", result.get("command"))
    assert report.success is (status in ("passed", "skipped"))
    summary, _ = summarise("test", json.dumps({"test_results": [result]}).encode())
    assert summary is not None and summary.failed is (status in ("failed", "error"))
