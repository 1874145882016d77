"""The log viewer's adaptation of the content parsers: ANSI as classes, markers, info."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from necrocode.artifact_store.content.logs import Style
from necrocode.artifact_store.service.viewer.logscan import (
    PREFILTER,
    markers_of,
    style_data,
    styled_lines,
)

CLASS = re.compile(r"^a-(fg|bg)(\d|1[0-5])$|^a-[bdius]$")
CSS_COLOUR = re.compile(r"^rgb\(\d{1,3},\d{1,3},\d{1,3}\)$")
ESC = "\x1b"

sgr = st.lists(st.integers(min_value=0, max_value=300), max_size=6).map(
    lambda codes: f"{ESC}[{';'.join(map(str, codes))}m"
)
hostile = st.lists(
    st.one_of(
        st.text(max_size=20),
        sgr,
        st.sampled_from([f"{ESC}[", f"{ESC}]8;;http://x{ESC}\\", "\r", f"{ESC}[2K", "\x00", ESC]),
    ),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(hostile)
def test_any_line_becomes_spans_of_text_and_known_classes(line: str) -> None:
    [styled] = styled_lines(7, [line])
    assert styled["n"] == 7
    for text, classes, fg, bg in styled["spans"]:
        assert isinstance(text, str)
        assert text and ESC not in text and "\x00" not in text
        for name in classes.split():
            assert CLASS.match(name), name
        for colour in (fg, bg):
            assert colour is None or CSS_COLOUR.match(colour)
    assert styled["level"] in (None, "error", "warning")


def test_colours_bold_and_reset() -> None:
    [line] = styled_lines(1, [f"{ESC}[1;31mboom{ESC}[0m ok {ESC}[38;2;1;2;3mrgb{ESC}[48;5;200mbg"])
    assert line["spans"][0] == ["boom", "a-fg1 a-b", None, None]
    assert line["spans"][1] == [" ok ", "", None, None]
    assert line["spans"][2] == ["rgb", "", "rgb(1,2,3)", None]
    assert line["spans"][3][3] is not None and line["spans"][3][3].startswith("rgb(")


def test_colours_carry_over_within_a_range() -> None:
    lines = styled_lines(1, [f"{ESC}[32mgreen", "still green", f"{ESC}[0mplain"])
    assert [span[1] for line in lines for span in line["spans"]] == ["a-fg2", "a-fg2", ""]


def test_inverse_swaps_colours() -> None:
    classes, _, _ = style_data(Style(fg=1, inverse=True))
    assert set(classes.split()) == {"a-fg0", "a-bg1"}


@settings(max_examples=300, deadline=None)
@given(hostile)
def test_the_prefilter_never_hides_a_marker(line: str) -> None:
    if markers_of(1, line):
        folded = PREFILTER.clean(line).lower()
        assert any(word in folded for word in PREFILTER.keywords)


def test_markers_are_plain_text() -> None:
    [marker] = markers_of(12, f"{ESC}[31mERROR:{ESC}[0m disk full")
    assert (marker.line, marker.kind, marker.text) == (12, "error", "ERROR: disk full")
    assert markers_of(1, "0 errors, all good") == []


def test_markers_keep_their_line_numbers_across_escapes(tmp_path: Path) -> None:
    from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
    from necrocode.artifact_store.service.viewer.logscan import make_line_cache

    lines = [f"{ESC}]0;title\nstill the title{ESC}\\ ok", f"{ESC}[31mERROR{ESC}[0m here", "fine"]
    lines += [
        f"{ESC}]8;;http://x{ESC}\\link{ESC}]8;;{ESC}\\ warning: w",
        "Traceback (most recent call last):",
    ]
    data = "\n".join(lines).encode() + b"\n"
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "s")) as store:
        cache = make_line_cache(tmp_path / "c")
        try:
            meta = store.get_metadata(store.upload("1", "s", "log", data))
            index = cache.get(store, meta)
        finally:
            cache.close()
    expected = [
        (n, m.kind)
        for n, line in enumerate(data.decode().split("\n")[:-1], 1)
        for m in markers_of(n, line)
    ]
    assert [(m.line, m.kind) for m in index.markers] == expected
    assert (3, "error") in expected and (6, "error") in expected
