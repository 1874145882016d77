"""The log viewer's use of the content parsers: markers while spooling, ANSI as classes.

Which lines are errors or warnings, where CI sections start and end, and how SGR
escapes style text is decided by :mod:`necrocode.artifact_store.content.logs`;
this module only adapts those answers to the viewer. Styles become CSS *classes*
(``a-fg1``, ``a-b``), never inline ``style`` attributes, so the page's
``Content-Security-Policy`` needs no ``'unsafe-inline'``; colours outside the 16
base ones travel as data that the script applies through the CSSOM.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...content.logs import (
    AnsiDecoder,
    LogScanner,
    LogStats,
    Style,
    line_level,
    palette_rgb,
    strip_ansi,
)
from .loglines import LineIndex, LineMarker
from .logspool import LineCache, Prefilter

__all__ = ["PREFILTER", "log_info", "make_line_cache", "markers_of", "styled_lines"]

#: Control characters a terminal would not print (tab is kept): what an escape the
#: decoder could not read (cut off, or not SGR) leaves behind is dropped, not shown.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

#: Every line ``line_level`` can call an error or a warning contains one of these
#: words once lower-cased (it judges the raw text, escapes included), so only such
#: lines are judged one by one while spooling.
PREFILTER = Prefilter(("error", "exception", "fatal", "critical", "panic", "traceback", "warn"))


def markers_of(number: int, text: str) -> list[LineMarker]:
    """The error/warning marker of one line, judged by the content parser's rule."""
    level = line_level(text)
    return [] if level is None else [LineMarker(number, level, strip_ansi(text)[:300])]


def make_line_cache(folder: Path | None = None) -> LineCache:
    """A spool cache that records errors, warnings and CI sections of every log."""
    return LineCache(folder, scanner=markers_of, prefilter=PREFILTER, observer=LogScanner)


def _color(color: int | tuple[int, int, int] | None, layer: str) -> tuple[str | None, str | None]:
    """A class for the 16 base colours, else a CSS colour for the script to apply."""
    if color is None:
        return None, None
    if isinstance(color, int):
        if 0 <= color < 16:
            return f"a-{layer}{color}", None
        red, green, blue = palette_rgb(color)
    else:
        red, green, blue = color
    return None, f"rgb({red},{green},{blue})"


def style_data(style: Style) -> tuple[str, str | None, str | None]:
    """``(classes, fg css, bg css)`` of a span's style."""
    fg, bg = style.fg, style.bg
    if style.inverse:
        fg, bg = (bg if bg is not None else 0), (fg if fg is not None else 7)
    classes: list[str] = []
    fg_class, fg_css = _color(fg, "fg")
    bg_class, bg_css = _color(bg, "bg")
    classes.extend(c for c in (fg_class, bg_class) if c)
    for flag, name in (
        (style.bold, "a-b"),
        (style.dim, "a-d"),
        (style.italic, "a-i"),
        (style.underline, "a-u"),
        (style.strike, "a-s"),
    ):
        if flag:
            classes.append(name)
    return " ".join(classes), fg_css, bg_css


def styled_lines(first: int, lines: list[str]) -> list[dict[str, Any]]:
    """Lines as ``{"n", "spans": [[text, classes, fg, bg], ...], "level"}`` for the page.

    Colours carry over from line to line within the range, as in a terminal.
    """
    decoder = AnsiDecoder()
    out = []
    for number, text in enumerate(lines, start=first):
        spans = []
        for part, style in decoder.spans(text):
            text_part = _CONTROL.sub("", part)
            if text_part:
                classes, fg, bg = style_data(style)
                spans.append([text_part, classes, fg, bg])
        out.append({"n": number, "spans": spans, "level": line_level(text)})
    return out


def log_info(index: LineIndex) -> dict[str, Any]:
    """What the page needs once a log is spooled: size, sections, errors and warnings."""
    stats: LogStats | None = index.stats
    sections = []
    if stats is not None:
        for section in stats.sections:
            end = section.end_line if section.end_line is not None else index.total_lines
            if end > section.start_line:
                sections.append(
                    {
                        "name": section.name,
                        "title": section.title,
                        "start": section.start_line,
                        "end": end,
                    }
                )
    return {
        "ready": True,
        "total_lines": index.total_lines,
        "total_bytes": index.total_bytes,
        "sections": sections,
        "errors": [{"line": m.line, "text": m.text} for m in index.markers if m.kind == "error"],
        "warnings": [
            {"line": m.line, "text": m.text} for m in index.markers if m.kind == "warning"
        ],
        "error_count": index.marker_counts.get("error", 0),
        "warning_count": index.marker_counts.get("warning", 0),
        "tracebacks": stats.tracebacks if stats is not None else 0,
    }
