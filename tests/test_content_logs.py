"""Log scanning and ANSI rendering on real program output and hostile input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from necrocode.artifact_store.content import (
    PLAIN,
    AnsiDecoder,
    LogScanner,
    Style,
    ansi_html,
    ansi_spans,
    line_level,
    logs,
    scan_log,
    section_marker,
    strip_ansi,
)


@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A coloured pytest run followed by a crashing Python program, as a CI log holds them."""
    folder = tmp_path_factory.mktemp("logs")
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_it.py").write_text(
        "import warnings\n"
        "def test_warns():\n"
        "    warnings.warn('old api', DeprecationWarning)\n"
        "def test_fails():\n"
        "    raise KeyError('missing')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--color=yes"],
        cwd=folder,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    crash = subprocess.run(
        [sys.executable, "-c", "def f():\n    raise ValueError('boom')\nf()\n"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert b"\x1b[" in tests.stdout and crash.returncode == 1
    return (
        b"::group::Run tests\n"
        + tests.stdout
        + b"::endgroup::\n"
        + b"section_start:1700000000:crash[collapsed=true]\r\x1b[0KRun the program\n"
        + crash.stderr
        + b"section_end:1700000001:crash\r\x1b[0K\n"
    )


def test_real_log_statistics(real_log: bytes) -> None:
    stats = scan_log(real_log)
    lines = real_log.decode().split("\n")
    assert stats.lines == real_log.count(b"\n")
    assert stats.tracebacks == 1
    assert stats.error_lines >= 3  # KeyError lines, the FAILED summary, ValueError: boom
    assert stats.warning_lines >= 1  # DeprecationWarning
    assert stats.first_error_line is not None
    first = lines[stats.first_error_line - 1]
    assert line_level(first) == "error"
    assert all(line_level(line) != "error" for line in lines[: stats.first_error_line - 1])
    assert [(s.name, s.title) for s in stats.sections] == [
        ("Run tests", "Run tests"),
        ("crash", "Run the program"),
    ]
    group, crash = stats.sections
    assert lines[group.start_line - 1] == "::group::Run tests"
    assert group.end_line is not None and lines[group.end_line - 1] == "::endgroup::"
    assert crash.end_line == stats.lines
    assert "Traceback (most recent call last):" in lines[crash.start_line]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4000), max_size=12))
def test_chunking_never_changes_the_result(real_log: bytes, cuts: list[int]) -> None:
    scanner = LogScanner()
    position = 0
    for cut in sorted(cuts):
        scanner.feed(real_log[position:cut])
        position = max(position, cut)
    scanner.feed(real_log[position:])
    assert scanner.close() == scan_log(real_log)


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("ERROR: build failed", "error"),
        ("ValueError: bad value", "error"),
        ("java.lang.RuntimeException: x", "error"),
        ("\x1b[31mFATAL\x1b[0m disk", "error"),
        ("thread 'main' panicked at src/main.rs", "error"),
        ("Traceback (most recent call last):", "error"),
        ("WARNING: deprecated", "warning"),
        ("UserWarning: careful", "warning"),
        ("=== 0 errors, 0 warnings ===", None),
        ("=== 1 passed, 2 warnings in 0.1s ===", "warning"),
        ("2 errors generated.", "error"),
        ("===== 3 failed, 7 passed in 1.20s =====", "error"),
        ("=== 0 failed ===", None),
        ("FAILED tests/x.py::test_y - AssertionError", "error"),
        ("FAILED tests/x.py::test_y - assert 1 == 2", "error"),
        ("\x1b[31mFAILED\x1b[0m tests/x.py::\x1b[1mtest_y\x1b[0m", "error"),
        ("Build FAILED.", "error"),
        ("E   AssertionError", "error"),
        ("E       assert [1] == [2]", "error"),
        ("\x1b[1m\x1b[31mE   assert (1 + 1) == 3\x1b[0m", "error"),
        ("the connection failed to open", None),
        ("TAKE   care", None),
        ("v2 failed", None),
        ("error_count=0 stderr ok", None),
        ("all good", None),
    ],
)
def test_line_levels(line: str, level: str | None) -> None:
    assert line_level(line) == level
    stats = scan_log(line.encode())
    assert (stats.error_lines > 0) == (level == "error")


def test_long_single_line_is_bounded() -> None:
    scanner = LogScanner(max_line_bytes=1024)
    scanner.feed(b"start\nERROR at the head " + b"x" * 5000)
    for _ in range(100):
        scanner.feed(b"y" * 10_000 + b" error hidden in the tail ")
    scanner.feed(b"\nlast line")
    stats = scanner.close()
    assert (stats.lines, stats.long_lines, stats.error_lines, stats.first_error_line) == (
        3,
        1,
        1,
        2,
    )


@pytest.mark.stress
def test_hundred_megabyte_single_line() -> None:
    scanner = LogScanner()
    chunk = b"a" * (1 << 20)
    for _ in range(100):
        scanner.feed(chunk)
    stats = scanner.close()
    assert (stats.lines, stats.long_lines) == (1, 1)


def test_invalid_utf8_is_scanned_as_bytes() -> None:
    stats = scan_log(b"\xff\xfe error \xc3\x28\n\x80warning\n")
    assert (stats.lines, stats.error_lines, stats.warning_lines) == (2, 1, 1)


def test_sgr_colours_and_attributes() -> None:
    spans = ansi_spans(
        "\x1b[1;31mred bold\x1b[0m plain \x1b[38;5;208morange\x1b[39m "
        "\x1b[48;2;1;2;3mtrue\x1b[0m \x1b[92;4mbright\x1b[24m \x1b[3;7mx\x1b[m"
    )
    assert spans == [
        ("red bold", Style(fg=1, bold=True)),
        (" plain ", PLAIN),
        ("orange", Style(fg=208)),
        (" ", PLAIN),
        ("true", Style(bg=(1, 2, 3))),
        (" ", PLAIN),
        ("bright", Style(fg=10, underline=True)),
        (" ", Style(fg=10)),
        ("x", Style(fg=10, italic=True, inverse=True)),
    ]
    assert ansi_spans("\x1b[38:2::10:20:30mcolon\x1b[0m") == [("colon", Style(fg=(10, 20, 30)))]
    assert Style(fg=1, bold=True).css() == "color:#cd0000;font-weight:bold"
    assert Style(fg=196).css() == "color:#ff0000"
    assert Style(bg=232).css() == "background-color:#080808"


def test_state_carries_across_lines_and_carriage_returns() -> None:
    decoder = AnsiDecoder()
    assert decoder.spans("\x1b[32mgreen starts") == [("green starts", Style(fg=2))]
    assert decoder.spans("still green\x1b[0m") == [("still green", Style(fg=2))]
    assert decoder.spans("progress 10%\rprogress 100%") == [("progress 100%", PLAIN)]
    assert ansi_spans("\x1b[2K\x1b[1Gcursor moves dropped") == [("cursor moves dropped", PLAIN)]
    assert ansi_spans("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\") == [("link", PLAIN)]


def test_html_is_escaped() -> None:
    html = ansi_html('\x1b[31m<script>alert("x")</script>\x1b[0m & more')
    assert html == (
        '<span style="color:#cd0000">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</span>'
        " &amp; more"
    )


def test_section_markers() -> None:
    start = section_marker(
        "\x1b[0Ksection_start:1700000000:build_step[collapsed=true]\r\x1b[0KBuild"
    )
    assert start is not None and (start.kind, start.name, start.title) == (
        "start",
        "build_step",
        "Build",
    )
    end = section_marker("section_end:1700000009:build_step\r\x1b[0K")
    assert end is not None and (end.kind, end.name) == ("end", "build_step")
    assert section_marker("::group::Install") is not None
    assert section_marker("nothing here") is None


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab\x1b[];:0123456789m\r\n<&\"'"), max_size=80))
def test_hostile_escapes_never_break_rendering(text: str) -> None:
    spans = ansi_spans(text)
    rendered = "".join(span for span, _ in spans)
    assert "\x1b" not in rendered or "\x1b" in strip_ansi(text)
    assert "<" not in ansi_html(text).replace("<span", "").replace("</span>", "")


def test_scanner_reads_a_file_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"ok\n" * 10_000 + b"Traceback (most recent call last):\n" + b"ok\n" * 10)
    scanner = LogScanner()
    with path.open("rb") as handle:
        while chunk := handle.read(4096):
            scanner.feed(chunk)
    stats = scanner.close()
    assert (stats.lines, stats.tracebacks, stats.first_error_line) == (10_011, 1, 10_001)


@pytest.mark.parametrize(
    "line",
    [
        "\x1b[1;31mFATAL\x1b[0m: disk",
        "\x1b[2Kcritical: x",
        "\x1b[35mTraceback (most recent call last):\x1b[0m",
        "x\x1b[0mpanic: y",
        "\x1b[38;5;196mRuntimeError\x1b[0m: z",
    ],
)
def test_escapes_before_keywords_are_boundaries(line: str) -> None:
    assert line_level(line) == "error"
    assert scan_log(line.encode()).error_lines == 1


@pytest.mark.parametrize("color", ["yes", "no"])
def test_pytest_failure_lines_are_error_lines(tmp_path: Path, color: str) -> None:
    """A real pytest run: its ``E   `` explanation lines, ``FAILED``/``ERROR`` summary
    lines and the ``=== N failed ===`` line are error lines, coloured or not, and
    nothing else of its output is."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_it.py").write_text(
        "import pytest\n"
        "def test_ok():\n    assert True\n"
        "def test_lists():\n    assert [1] == [2]\n"
        "def test_message():\n    assert 1 + 1 == 3, 'math is broken'\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('fixture exploded')\n"
        "def test_uses_broken(broken):\n    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--color={color}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    lines = run.stdout.decode().splitlines()
    plain = [strip_ansi(line) for line in lines]
    expected = [
        number
        for number, text in enumerate(plain, 1)
        if text.startswith(("E   ", "FAILED ", "ERROR "))
        or (text.startswith("=") and " failed" in text)
    ]
    assert len([t for t in plain if t.startswith("FAILED ")]) == 2
    assert any(t.startswith("E   ") and "assert" in t for t in plain)
    levels = {number: line_level(line) for number, line in enumerate(lines, 1)}
    assert all(levels[number] == "error" for number in expected)
    # Lines naming no failure stay clean: the header, the progress line, passing tests.
    assert levels[1] is None and all(
        levels[n] is None for n, t in enumerate(plain, 1) if t.startswith(("platform", "collected"))
    )
    stats = scan_log(run.stdout)
    assert stats.error_lines == sum(level == "error" for level in levels.values())
    assert stats.first_error_line == min(n for n, level in levels.items() if level == "error")


def _reference_hits(
    block: bytes,
    lowered: bytes,
    words: tuple[tuple[bytes, bool, bool], ...],
    counts: dict[bytes, int],
) -> set[int]:
    """The keyword search done the plain way: ``bytes.find`` per word, each line once."""
    starts: set[int] = set()
    for word, before_ok, after_ok in words:
        pos = lowered.find(word)
        while pos >= 0:
            if logs._matches(block, lowered, pos, word, before_ok, after_ok):
                starts.add(lowered.rfind(b"\n", 0, pos) + 1)
                counts[word] = counts.get(word, 0) + 1
                end = lowered.find(b"\n", pos)
                if end < 0:
                    break
                pos = lowered.find(word, end)
            else:
                pos = lowered.find(word, pos + 1)
    return starts


_FRAGMENTS = [
    "error", "ERROR", "Error:", "ValueError", "errors", "exception", "RuntimeException",
    "fatal", "FATAL", "failed", "FAILED", "critical", "panic", "panicked", "warn",
    "Warning", "warnings", "traceback (most recent call last)",
    "Traceback (most recent call last):",
    "E   ", "E", "\x1b[31m", "\x1b[0m", " ", "  ", "\n", "\r\n", "2 ", "0 ", "x", "_", ":", "fa",
    "err", "exc",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=60))
def test_keyword_passes_find_what_one_find_per_word_finds(parts: list[str]) -> None:
    block = "".join(parts).encode()
    lowered = block.lower()
    for words in (logs._ERROR_WORDS, logs._WARNING_WORDS):
        counts: dict[bytes, int] = {}
        expected_counts: dict[bytes, int] = {}
        assert logs._hits(block, lowered, words, counts) == _reference_hits(
            block, lowered, words, expected_counts
        )
        assert counts == expected_counts
