"""Counting the files and lines of a ``git diff`` a whole file at a time, for summaries.

Public API::

    DiffCounter()                 # same answers as DiffParser(max_lines_per_file=0)
        .feed_bytes(whole lines) -> list[FileDiff]
        .close() -> list[FileDiff]

A summary needs, per file, only its paths, status and ``+added -removed``. Git
writes every file as a ``diff --git`` section, so :class:`DiffCounter` cuts the
stream at those lines and takes each section in a handful of calls into C: one
regular expression for the usual header (``diff --git``, an optional ``new file
mode``/``deleted file mode``, ``index``, ``---``, ``+++``), one for the hunk
headers, and ``bytes.count`` for the lines starting with ``+`` and ``-``. It
then checks the counts against what the hunk headers promise; a section that
does not add up, or has any other header (renames, copies, mode changes,
binary files, quoted paths, CRLF line ends), and whatever stands before the
first ``diff --git`` (a plain unified diff, a mail's preamble) go through
:class:`~.diff.DiffParser` line by line, so the answers never differ from it.
A section is held until the next one starts, up to :data:`MAX_SECTION_BYTES`;
a bigger one is handed to the line parser as it streams, so memory stays bounded.
"""

from __future__ import annotations

import re

from .diff import DiffParser, FileDiff

__all__ = ["MAX_SECTION_BYTES", "DiffCounter"]

#: A file's section longer than this is parsed line by line as it streams.
MAX_SECTION_BYTES = 4 * 1024 * 1024

_BOUNDARY = b"\ndiff --git "
_HEADER_RE = re.compile(
    rb"diff --git a/(\S+) b/(\S+)\n"
    rb"(?:(new|deleted) file mode ([0-7]+)\n)?"
    rb"index [0-9a-f]+\.\.[0-9a-f]+(?: [0-7]+)?\n"
    rb"--- (?:a/(\S+)|/dev/null)\n"
    rb"\+\+\+ (?:b/(\S+)|/dev/null)\n"
)
# A line of a hunk body that is not a context, added or removed line: a hunk
# header (its counts captured), or anything else (its first byte captured).
_BODY_STRUCTURE_RE = re.compile(rb"\n(?:@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@[^\n]*|([^ +\-\n]))")


class DiffCounter:
    """Counting-only diff parsing, whole ``diff --git`` sections at a time."""

    def __init__(self) -> None:
        self._section = b""  # the open "diff --git" section, complete lines
        self._lines: DiffParser | None = None  # the line parser, while it holds a file

    def feed_bytes(self, block: bytes) -> list[FileDiff]:
        """Consume whole lines (the last may lack its newline only at the end)."""
        done: list[FileDiff] = []
        data = self._section + block if self._section else block
        position = 0
        if not self._section and not data.startswith(b"diff --git "):
            boundary = data.find(_BOUNDARY)
            position = len(data) if boundary < 0 else boundary + 1
            done += self._by_line(data[:position])
            if boundary < 0:
                self._section = b""
                return done
        if self._lines is not None:
            done += self._lines.close()  # a new file starts: the line parser's file is done
            self._lines = None
        while True:
            boundary = data.find(_BOUNDARY, position)
            if boundary < 0:
                break
            done += self._take(data, position, boundary + 1)
            position = boundary + 1
        rest = data[position:]
        if len(rest) > MAX_SECTION_BYTES:
            done += self._by_line(rest)
            rest = b""
        self._section = rest
        return done

    def close(self) -> list[FileDiff]:
        """End of input: the last files."""
        done = self._take(self._section, 0, len(self._section)) if self._section else []
        self._section = b""
        if self._lines is not None:
            done += self._lines.close()
            self._lines = None
        return done

    def _by_line(self, block: bytes) -> list[FileDiff]:
        if self._lines is None:
            self._lines = DiffParser(max_lines_per_file=0)
        return self._lines.feed_bytes(block)

    def _take(self, data: bytes, start: int, end: int) -> list[FileDiff]:
        """The complete ``diff --git`` section ``data[start:end]``: counted, or parsed
        line by line."""
        file = _count_section(data, start, end)
        if file is not None:
            return [file]
        parser = DiffParser(max_lines_per_file=0)
        return parser.feed_bytes(data[start:end]) + parser.close()


def _count_section(data: bytes, start: int, end: int) -> FileDiff | None:
    """The file of section ``data[start:end]`` if its header is the usual one and its
    counts add up."""
    header = _HEADER_RE.match(data, start, end)
    if header is None:
        return None
    body = header.end()
    if not data.startswith(b"@@ ", body, end):
        return None
    counts = _count_hunks(data, body - 1, end)
    if counts is None:
        return None
    added, removed, hunks = counts
    _, _, kind, mode, old, new = header.groups()  # the ---/+++ paths win, as in DiffParser
    if kind == b"new":
        if old is not None or new is None:
            return None
        file = FileDiff(None, new.decode("utf-8", "replace"), "added", new_mode=mode.decode())
    elif kind == b"deleted":
        if old is None or new is not None:
            return None
        file = FileDiff(old.decode("utf-8", "replace"), None, "deleted", old_mode=mode.decode())
    else:
        if old is None or new is None:
            return None
        file = FileDiff(old.decode("utf-8", "replace"), new.decode("utf-8", "replace"))
    file.added, file.removed, file.hunk_count = added, removed, hunks
    file.truncated = True  # no lines are kept
    return file


def _count_hunks(section: bytes, start: int, stop: int) -> tuple[int, int, int] | None:
    """``(added, removed, hunks)`` of the hunks after ``start`` (the newline before the
    first ``@@``), if every hunk holds exactly the lines its header promises.

    That check is what makes the counts those of :class:`~.diff.DiffParser`: when
    each hunk's removed and context lines add up to its old length, and its added
    and context lines to its new length, the parser takes every line as a body
    line, in any order they come.
    """
    end_of_text = stop - 1 if section[stop - 1] == 0x0A else stop
    added = removed = hunks = 0
    open_hunk: tuple[int, int, int] | None = None  # (body start, old length, new length)
    notes = 0
    for match in _BODY_STRUCTURE_RE.finditer(section, start, stop):
        old_len, new_len, other = match.groups()
        if other is not None:
            if other != b"\\" or open_hunk is None:
                return None  # a line that belongs in no hunk
            notes += 1
            continue
        if open_hunk is not None:
            counted = _check_hunk(section, open_hunk, match.start(), notes)
            if counted is None:
                return None
            added, removed = added + counted[0], removed + counted[1]
        hunks += 1
        notes = 0
        open_hunk = (match.end(), int(old_len or 1), int(new_len or 1))
    if open_hunk is None:
        return None
    counted = _check_hunk(section, open_hunk, end_of_text, notes)
    if counted is None:
        return None
    return added + counted[0], removed + counted[1], hunks


def _check_hunk(
    section: bytes, hunk: tuple[int, int, int], end: int, notes: int
) -> tuple[int, int] | None:
    """``(added, removed)`` of one hunk whose body lies between ``hunk[0]`` (the end
    of its header line) and ``end``, or ``None`` if it holds more or fewer lines."""
    body, old_len, new_len = hunk
    lines = section.count(b"\n", body, end) - notes
    added = section.count(b"\n+", body, end + 1)
    removed = section.count(b"\n-", body, end + 1)
    context = lines - added - removed
    if removed + context != old_len or added + context != new_len:
        return None
    return added, removed
