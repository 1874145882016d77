"""Logs: streaming line statistics, error/warning detection, ANSI colours, CI sections.

Public API::

    LogScanner(max_line_bytes=65536, max_sections=1000)   # 0: sections not looked for
        .feed(chunk: bytes)          # any chunking; lines may span chunks
        .close() -> LogStats
    scan_log(data: bytes | Iterable[bytes]) -> LogStats
    LogStats(lines, error_lines, warning_lines, tracebacks, first_error_line,
             sections, long_lines)
    LogSection(name, title, start_line, end_line)

    line_level(text: str) -> "error" | "warning" | None    # same rule as the scanner
    section_marker(text: str) -> SectionMarker | None      # ::group::, section_start: ...
    SectionMarker(kind: "start" | "end", name, title)

    strip_ansi(text: str) -> str
    ansi_spans(line: str, start: Style = PLAIN) -> list[tuple[str, Style]]
    AnsiDecoder().spans(line) / .style  # carries SGR state from one line to the next
    ansi_html(line: str, decoder: AnsiDecoder | None = None) -> str   # escaped HTML
    Style(fg, bg, bold, dim, italic, underline, strike, inverse).css()
        colours: None (default), int 0-255 (xterm palette) or (r, g, b)

The scanner works on bytes (any ASCII-compatible encoding; invalid UTF-8 does not
matter) with a pass of a literal search per keyword (two with one first byte
share one) and ``bytes.count``, so it keeps up with an upload; a line longer
than ``max_line_bytes`` is judged by its head and counted, the rest skipped, so
memory stays bounded even for one 100 MB line. Line numbers are 1-based.

An **error line** contains (case-insensitively) a word ending in ``error`` or
``exception`` (``ERROR``, ``ValueError:``, ``RuntimeException``), ``fatal``,
``critical``, a word starting ``panic`` or a Python ``Traceback (most recent call
last):``; or ``FAILED`` in capitals (pytest's ``FAILED tests/x.py::test_y``); or a
count of at least one before ``failed`` or ``errors`` (``=== 2 failed ===``,
``2 errors generated``); or it starts with ``E`` and three spaces, pytest's
explanation lines (``E   assert 1 == 2``). A **warning line** has ``warn``/
``warning`` ending a word (``WARNING``, ``DeprecationWarning``) or a count of at
least one before ``warnings``. A count of zero never counts (``0 errors``). An
ANSI escape right before a keyword counts as a word boundary (``ESC[31mFATAL``).
A line can be both.

Sections: GitHub Actions ``::group::Title`` / ``::endgroup::`` and GitLab CI
``section_start:<epoch>:<name>[options]`` / ``section_end:<epoch>:<name>``.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "PLAIN",
    "AnsiDecoder",
    "Color",
    "LogScanner",
    "LogSection",
    "LogStats",
    "SectionMarker",
    "Style",
    "ansi_html",
    "ansi_spans",
    "line_level",
    "scan_log",
    "section_marker",
    "strip_ansi",
]

#: A line longer than this is judged by its first bytes only.
MAX_LINE_BYTES = 64 * 1024
#: Sections kept per log; more are counted as lines but not listed.
MAX_SECTIONS = 1000

# CSI sequences (colours, cursor, erase), OSC sequences (titles, hyperlinks) and
# the remaining two-byte escapes.
_ANSI_TEXT = r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])"
_ANSI_RE = re.compile(_ANSI_TEXT)
_TOKEN_RE = re.compile(r"(\x1b\[([0-?]*)([ -/]*)([@-~]))|" + _ANSI_TEXT)

_GITLAB_RE = re.compile(r"section_(start|end):\d+:([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\r?(.*)")

# (keyword, whether a word character may precede it, whether one may follow it).
# One pass per keyword (see _finder): an alternation of them all is ten times slower.
_ERROR_WORDS: tuple[tuple[bytes, bool, bool], ...] = (
    (b"error", True, False),
    (b"exception", True, False),
    (b"fatal", False, False),
    (b"critical", False, False),
    (b"panic", False, True),
    (b"traceback (most recent call last)", False, True),
    (b"failed", False, False),  # "FAILED" as written, or after a count: "2 failed"
)
_WARNING_WORDS: tuple[tuple[bytes, bool, bool], ...] = ((b"warn", True, False),)
_TRACEBACK = b"traceback (most recent call last)"
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_")
_DIGITS = frozenset(b"0123456789")
# Words whose plural counts after a count of at least one ("2 errors", "3 warnings").
_COUNTED_PLURALS = frozenset((b"error", b"warn"))
# pytest's explanation lines ("E       assert 1 == 2"), after any colour escapes.
_PYTEST_E = b"E   "
_ESCAPES_RE = re.compile(rb"(?:\x1b\[[0-?]*[ -/]*[@-~])*")
# "group::" is in both "::group::" and "::endgroup::".
_SECTION_HINTS = (b"group::", b"section_")


@dataclass(slots=True)
class LogSection:
    """A collapsible CI section. ``end_line`` is ``None`` if the log ended inside it."""

    name: str
    title: str
    start_line: int
    end_line: int | None = None


@dataclass(slots=True)
class LogStats:
    """What :class:`LogScanner` found. ``long_lines`` counts lines judged by their head."""

    lines: int = 0
    error_lines: int = 0
    warning_lines: int = 0
    tracebacks: int = 0
    first_error_line: int | None = None
    sections: list[LogSection] = field(default_factory=list)
    long_lines: int = 0


@dataclass(frozen=True, slots=True)
class SectionMarker:
    """A section start or end found on one line."""

    kind: Literal["start", "end"]
    name: str
    title: str


def section_marker(text: str) -> SectionMarker | None:
    """The CI section marker on this line, if it carries one."""
    plain = strip_ansi(text).lstrip()
    if plain.startswith("::group::"):
        title = plain[len("::group::") :].strip()
        return SectionMarker("start", title, title)
    if plain.startswith("::endgroup::"):
        return SectionMarker("end", "", "")
    match = _GITLAB_RE.search(plain)
    if match is None:
        return None
    kind: Literal["start", "end"] = "start" if match.group(1) == "start" else "end"
    title = match.group(3).rsplit("\r", 1)[-1].strip() or match.group(2)
    return SectionMarker(kind, match.group(2), title if kind == "start" else "")


def line_level(text: str) -> Literal["error", "warning"] | None:
    """``"error"``, ``"warning"`` or ``None`` for one line, by the scanner's rule."""
    raw = text.encode("utf-8", "replace")  # escapes are handled as the scanner does
    lowered = raw.lower()
    if _error_hits(raw, lowered):
        return "error"
    if _hits(raw, lowered, _WARNING_WORDS):
        return "warning"
    return None


_CSI_BODY = bytes(range(0x20, 0x40))  # parameter and intermediate bytes of a CSI escape


def _after_escape(block: bytes, pos: int) -> bool:
    """Whether ``block[:pos]`` ends with a CSI escape (``ESC [ 1;31 m``, ``ESC [ 2 K``):
    its final letter is then no word character before a keyword."""
    start = block.rfind(b"\x1b[", max(0, pos - 24), pos)
    return start >= 0 and not block[start + 2 : pos - 1].strip(_CSI_BODY)


def _counted(block: bytes, pos: int) -> bool:
    """Whether ``block[:pos]`` ends with a count of at least one and a space: ``"2 "``."""
    digits = pos - 1
    if digits < 1 or block[digits] != 0x20:
        return False
    start = digits
    while start > 0 and block[start - 1] in _DIGITS:
        start -= 1
    if start == digits or (start > 0 and block[start - 1] in _WORD):
        return False
    return bool(block[start:digits].strip(b"0"))


def _matches(
    block: bytes, lowered: bytes, pos: int, word: bytes, before_ok: bool, after_ok: bool
) -> bool:
    if not before_ok and pos > 0 and lowered[pos - 1] in _WORD and not _after_escape(block, pos):
        return False
    end = pos + len(word)
    if word == b"warn" and lowered.startswith(b"ing", end):
        end += 3  # "warning" ends the word as well as "warn"
    if after_ok or end >= len(lowered) or lowered[end] not in _WORD:
        if word == b"failed":
            return block.startswith(b"FAILED", pos) or _counted(lowered, pos)
        return True
    if word in _COUNTED_PLURALS and lowered[end] == 0x73:  # "errors", "warnings"
        plural_end = end + 1
        if plural_end >= len(lowered) or lowered[plural_end] not in _WORD:
            return _counted(lowered, pos)
    return False


@functools.cache
def _finder(words: tuple[bytes, ...]) -> Callable[[bytes], Iterator[tuple[int, bytes]]]:
    """Where any of ``words`` (which share their first byte) occurs in a text: ``(offset,
    word)``, first to last.

    ``re``'s search for literals with a common first byte scans for that byte in a
    tight loop, which beats ``bytes.find`` (a skip table that the common letters
    and spaces of a log defeat) by a third to a half, and finds two words for the
    price of one; words with different first bytes would make it test every
    position. A long word skips far enough with ``bytes.find``. No word here
    overlaps itself or another, so the matches, which do not overlap, are all
    the occurrences.
    """
    if len(words) == 1 and len(words[0]) > 16:
        word = words[0]

        def found(text: bytes) -> Iterator[tuple[int, bytes]]:
            pos = text.find(word)
            while pos >= 0:
                yield pos, word
                pos = text.find(word, pos + len(word))

        return found
    pattern = re.compile(b"|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)))
    return lambda text: ((match.start(), match.group()) for match in pattern.finditer(text))


def _hits(
    block: bytes,
    lowered: bytes,
    words: tuple[tuple[bytes, bool, bool], ...],
    counts: dict[bytes, int] | None = None,
) -> set[int]:
    """Start offsets of the lines of ``block`` holding any of ``words``, found in
    ``lowered`` (``block.lower()``).

    ``counts``, if given, receives the number of lines each word was found on.
    """
    starts: set[int] = set()
    rules = {word: (before_ok, after_ok) for word, before_ok, after_ok in words}
    for group in _groups(words):
        line_ends = dict.fromkeys(group, -1)  # per word: the end of its last line found
        for pos, word in _finder(group)(lowered):
            if pos < line_ends[word]:
                continue
            if not _matches(block, lowered, pos, word, *rules[word]):
                continue
            starts.add(lowered.rfind(b"\n", 0, pos) + 1)
            if counts is not None:
                counts[word] = counts.get(word, 0) + 1
            line_end = lowered.find(b"\n", pos)
            line_ends[word] = len(lowered) if line_end < 0 else line_end
    return starts


@functools.cache
def _groups(words: tuple[tuple[bytes, bool, bool], ...]) -> tuple[tuple[bytes, ...], ...]:
    """``words`` in groups of one first byte, for :func:`_finder`."""
    groups: dict[int, list[bytes]] = {}
    for word, _, _ in words:
        groups.setdefault(word[0], []).append(word)
    return tuple(tuple(group) for group in groups.values())


def _error_hits(block: bytes, lowered: bytes, counts: dict[bytes, int] | None = None) -> set[int]:
    """Start offsets of the error lines of ``block``: the error words, and pytest's
    ``E   `` explanation lines."""
    starts = _hits(block, lowered, _ERROR_WORDS, counts)
    for pos, _ in _finder((_PYTEST_E,))(block):
        start = block.rfind(b"\n", 0, pos) + 1
        if start == pos or _ESCAPES_RE.fullmatch(block, start, pos):
            starts.add(start)
    return starts


class LogScanner:
    """Incremental :class:`LogStats` over a byte stream fed in arbitrary chunks."""

    def __init__(
        self, *, max_line_bytes: int = MAX_LINE_BYTES, max_sections: int = MAX_SECTIONS
    ) -> None:
        self._max_line = max_line_bytes
        self._max_sections = max_sections
        self._stats = LogStats()
        self._carry = b""
        self._skipping = False  # inside the unjudged tail of an over-long line
        self._open: list[LogSection] = []
        self._closed = False

    def feed(self, chunk: bytes) -> None:
        """Consume the next bytes of the log."""
        if self._closed:
            raise ValueError("LogScanner.feed() after close()")
        if not chunk:
            return
        if self._skipping:
            newline = chunk.find(b"\n")
            if newline < 0:
                return
            self._skipping = False
            self._stats.lines += 1
            chunk = chunk[newline + 1 :]
        data = self._carry + chunk if self._carry else chunk
        last = data.rfind(b"\n")
        if last < 0:
            self._carry = data
        else:
            self._carry = data[last + 1 :]
            self._scan(data[: last + 1], complete=True)
        if len(self._carry) > self._max_line:
            # Judge the head of the over-long line now and skip to its end.
            self._scan(self._carry[: self._max_line], complete=False)
            self._stats.long_lines += 1
            self._carry = b""
            self._skipping = True

    def close(self) -> LogStats:
        """End of stream: count a last line without a newline and return the stats."""
        if not self._closed:
            self._closed = True
            if self._carry:
                self._scan(self._carry, complete=False)
                self._carry = b""
                self._stats.lines += 1
            elif self._skipping:
                self._stats.lines += 1
        return self._stats

    def _scan(self, block: bytes, *, complete: bool) -> None:
        """Judge ``block``: whole lines if ``complete``, else the head of the current line."""
        # ANSI escapes are not stripped (a regex substitution costs more than the whole
        # scan): keywords are found inside coloured text as they are, and a colour
        # escape just before one counts as a word boundary (see _after_escape).
        stats = self._stats
        lowered = block.lower()
        found: dict[bytes, int] = {}
        errors = _error_hits(block, lowered, found)
        if errors:
            stats.error_lines += len(errors)
            stats.tracebacks += found.get(_TRACEBACK, 0)
            if stats.first_error_line is None:
                stats.first_error_line = stats.lines + lowered.count(b"\n", 0, min(errors)) + 1
        stats.warning_lines += len(_hits(block, lowered, _WARNING_WORDS))
        if self._max_sections and any(hint in block for hint in _SECTION_HINTS):
            self._sections(block)
        if complete:
            stats.lines += block.count(b"\n")

    def _sections(self, block: bytes) -> None:
        starts: set[int] = set()
        for hint in _SECTION_HINTS:
            pos = block.find(hint)
            while pos >= 0:
                starts.add(block.rfind(b"\n", 0, pos) + 1)
                pos = block.find(hint, pos + 1)
        number, counted = self._stats.lines + 1, 0
        for start in sorted(starts):
            number += block.count(b"\n", counted, start)
            counted = start
            end = block.find(b"\n", start)
            raw = block[start:] if end < 0 else block[start:end]
            marker = section_marker(raw.decode("utf-8", "replace"))
            if marker is None:
                continue
            if marker.kind == "start":
                section = LogSection(marker.name, marker.title, number)
                self._open.append(section)
                if len(self._stats.sections) < self._max_sections:
                    self._stats.sections.append(section)
                continue
            for index in range(len(self._open) - 1, -1, -1):
                if not marker.name or self._open[index].name == marker.name:
                    self._open[index].end_line = number
                    del self._open[index:]
                    break


def scan_log(data: bytes | Iterable[bytes]) -> LogStats:
    """:class:`LogStats` of a whole log given as bytes or as an iterable of chunks."""
    scanner = LogScanner()
    if isinstance(data, bytes | bytearray | memoryview):
        scanner.feed(bytes(data))
    else:
        for chunk in data:
            scanner.feed(chunk)
    return scanner.close()


# -- ANSI SGR --------------------------------------------------------------

#: A colour: an xterm palette index 0-255 or an (r, g, b) triple.
Color = int | tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Style:
    """Text attributes set by SGR escapes. ``None`` colours mean the terminal's default."""

    fg: Color | None = None
    bg: Color | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    strike: bool = False
    inverse: bool = False

    def css(self) -> str:
        """Inline CSS for this style (``""`` for plain text)."""
        fg, bg = self.fg, self.bg
        rules: list[str] = []
        if self.inverse:
            rules.append(f"color:{_css_color(bg) if bg is not None else 'Canvas'}")
            rules.append(f"background-color:{_css_color(fg) if fg is not None else 'CanvasText'}")
        else:
            if fg is not None:
                rules.append(f"color:{_css_color(fg)}")
            if bg is not None:
                rules.append(f"background-color:{_css_color(bg)}")
        if self.bold:
            rules.append("font-weight:bold")
        if self.dim:
            rules.append("opacity:0.7")
        if self.italic:
            rules.append("font-style:italic")
        decorations = [
            n for n, on in (("underline", self.underline), ("line-through", self.strike)) if on
        ]
        if decorations:
            rules.append(f"text-decoration:{' '.join(decorations)}")
        return ";".join(rules)


PLAIN = Style()

# The 16 base colours as xterm draws them.
_BASE16 = (
    (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0),
    (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
    (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0),
    (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
)  # fmt: skip


def palette_rgb(index: int) -> tuple[int, int, int]:
    """The RGB value of xterm palette entry ``index`` (0-255)."""
    if index < 16:
        return _BASE16[index]
    if index < 232:
        index -= 16
        steps = (0, 95, 135, 175, 215, 255)
        return steps[index // 36], steps[(index // 6) % 6], steps[index % 6]
    grey = 8 + (index - 232) * 10
    return grey, grey, grey


def _css_color(color: Color) -> str:
    red, green, blue = palette_rgb(color) if isinstance(color, int) else color
    return f"#{red:02x}{green:02x}{blue:02x}"


def strip_ansi(text: str) -> str:
    """``text`` without any ANSI escape sequence."""
    return _ANSI_RE.sub("", text) if "\x1b" in text else text


def _extended_color(params: list[int], i: int) -> tuple[Color | None, int]:
    """Read ``5;n`` or ``2;r;g;b`` after a 38/48; return the colour and the next index."""
    if i < len(params) and params[i] == 5 and i + 1 < len(params):
        return max(0, min(255, params[i + 1])), i + 2
    if i < len(params) and params[i] == 2 and i + 3 < len(params):
        rgb = tuple(max(0, min(255, v)) for v in params[i + 1 : i + 4])
        return (rgb[0], rgb[1], rgb[2]), i + 4
    return None, len(params)


def _sub_color(parts: list[str]) -> Color | None:
    """A colour written with colon sub-parameters: ``5:n`` or ``2:[id]:r:g:b``."""
    numbers = [_int(p) for p in parts[1:]]
    if parts[0] == "5" and numbers:
        return max(0, min(255, numbers[0]))
    if parts[0] == "2" and len(numbers) >= 3:
        red, green, blue = (max(0, min(255, v)) for v in numbers[-3:])
        return red, green, blue
    return None


def _with_color(style: Style, foreground: bool, color: Color | None) -> Style:
    if color is None:
        return style
    return replace(style, fg=color) if foreground else replace(style, bg=color)


def _int(text: str) -> int:
    return int(text[:6]) if text[:6].isdigit() else 0


def _apply_sgr(style: Style, text: str) -> Style:
    params: list[int | tuple[str, Color | None]] = []
    for group in text.split(";"):
        if ":" in group:
            head, *rest = group.split(":")
            if head in ("38", "48") and rest:
                params.append(("fg" if head == "38" else "bg", _sub_color(rest)))
            elif head == "4" and rest:  # 4:0 is "no underline", 4:1..5 kinds of underline
                params.append(24 if _int(rest[0]) == 0 else 4)
            continue
        params.append(_int(group))
    i = 0
    while i < len(params):
        code = params[i]
        i += 1
        if isinstance(code, tuple):
            style = _with_color(style, code[0] == "fg", code[1])
        elif code == 0:
            style = PLAIN
        elif code in _SGR_FLAGS:
            style = replace(style, **{_SGR_FLAGS[code][0]: _SGR_FLAGS[code][1]})
        elif code == 22:
            style = replace(style, bold=False, dim=False)
        elif 30 <= code <= 37:
            style = replace(style, fg=code - 30)
        elif 90 <= code <= 97:
            style = replace(style, fg=code - 90 + 8)
        elif 40 <= code <= 47:
            style = replace(style, bg=code - 40)
        elif 100 <= code <= 107:
            style = replace(style, bg=code - 100 + 8)
        elif code == 39:
            style = replace(style, fg=None)
        elif code == 49:
            style = replace(style, bg=None)
        elif code in (38, 48):
            numbers = [p for p in params[i:] if isinstance(p, int)]
            color, used = _extended_color(numbers, 0)
            i += used
            style = _with_color(style, code == 38, color)
    return style


_SGR_FLAGS: dict[int, tuple[str, bool]] = {
    1: ("bold", True),
    2: ("dim", True),
    3: ("italic", True),
    4: ("underline", True),
    7: ("inverse", True),
    9: ("strike", True),
    21: ("bold", False),
    23: ("italic", False),
    24: ("underline", False),
    27: ("inverse", False),
    29: ("strike", False),
}


class AnsiDecoder:
    """Turns lines into styled spans, carrying the SGR state across lines as a terminal does."""

    def __init__(self, style: Style = PLAIN) -> None:
        self.style = style

    def spans(self, line: str, *, overwrite_cr: bool = True) -> list[tuple[str, Style]]:
        """Split ``line`` into ``(text, style)`` runs; non-SGR escapes are dropped.

        With ``overwrite_cr`` only the text after the last carriage return is kept
        (what a terminal shows of a progress bar; GitLab hides its section markers so).
        """
        if overwrite_cr and "\r" in line.rstrip("\r"):
            head, _, tail = line.rstrip("\r").rpartition("\r")
            # Styles set before the carriage return still apply to the text after it.
            self.spans(head, overwrite_cr=False)
            line = tail
        spans: list[tuple[str, Style]] = []
        position = 0
        for match in _TOKEN_RE.finditer(line):
            if match.start() > position:
                _append(spans, line[position : match.start()], self.style)
            position = match.end()
            if match.group(1) and match.group(4) == "m" and not match.group(3):
                self.style = _apply_sgr(self.style, match.group(2))
        if position < len(line):
            _append(spans, line[position:], self.style)
        return spans


def _append(spans: list[tuple[str, Style]], text: str, style: Style) -> None:
    if spans and spans[-1][1] == style:
        spans[-1] = (spans[-1][0] + text, style)
    else:
        spans.append((text, style))


def ansi_spans(line: str, start: Style = PLAIN) -> list[tuple[str, Style]]:
    """``(text, style)`` runs of one line, starting from the style ``start``."""
    return AnsiDecoder(start).spans(line)


def ansi_html(line: str, decoder: AnsiDecoder | None = None) -> str:
    """One line as HTML: text escaped, styled runs in ``<span style="...">``.

    Pass the same ``decoder`` for consecutive lines to carry colours across them.
    """
    spans = (decoder or AnsiDecoder()).spans(line)
    parts: list[str] = []
    for text, style in spans:
        escaped = html.escape(text, quote=True)
        css = style.css()
        parts.append(f'<span style="{html.escape(css)}">{escaped}</span>' if css else escaped)
    return "".join(parts)
