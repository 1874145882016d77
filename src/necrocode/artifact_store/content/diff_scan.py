"""Counting the files and lines of a ``git diff`` a whole file at a time, for summaries.

Public API::

    DiffCounter()                 # same answers as DiffParser(max_lines_per_file=0)
        .feed_bytes(whole lines, start=0, end=None) -> list[FileDiff]
        .close() -> list[FileDiff]

A summary needs, per file, only its paths, status and ``+added -removed``. Git
writes every file as a ``diff --git`` section, so :class:`DiffCounter` cuts the
stream at those lines and takes each section in a handful of calls into C: one
regular expression for the usual header (``diff --git``, an optional ``new file
mode``/``deleted file mode``, ``index``, ``---``, ``+++``), one pass of another
for the hunk headers and any line that is no body line, then ``bytes.translate``
down to the bytes that can start a line (a fifth of a typical body) and
``bytes.count`` of the lines and of those starting with ``+`` and ``-`` in each
hunk. It then checks the counts against what the hunk headers promise; a section that
does not add up, or has any other header (renames, copies, mode changes,
binary files, quoted paths, CRLF line ends), and whatever stands before the
first ``diff --git`` (a plain unified diff, a mail's preamble) go through
:class:`~.diff.DiffParser` line by line, so the answers never differ from it.
A section is held until the next one starts, up to :data:`MAX_SECTION_BYTES`;
a bigger one is handed to the line parser as it streams, so memory stays bounded.
"""

from __future__ import annotations

import re
from itertools import repeat
from operator import sub

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

    def feed_bytes(self, block: bytes, start: int = 0, end: int | None = None) -> list[FileDiff]:
        """Consume the whole lines of ``block[start:end]`` (the last may lack its
        newline only at the end), read where they are: only the open section's
        start and its end are copied."""
        stop = len(block) if end is None else end
        done: list[FileDiff] = []
        if start >= stop:
            return done
        position = start
        if self._section:
            # The open section goes on to the next boundary (at the very start, if the
            # block starts with a "diff --git" line: the section ends with a newline).
            if block.startswith(b"diff --git ", position, stop):
                boundary = position - 1
            else:
                boundary = block.find(_BOUNDARY, position, stop)
            if boundary < 0:
                self._section += block[position:stop]
                if len(self._section) > MAX_SECTION_BYTES:
                    done += self._by_line(self._section)
                    self._section = b""
                return done
            section = self._section + block[position : boundary + 1]
            self._section = b""
            done += self._take(section, 0, len(section))
            position = boundary + 1
        elif not block.startswith(b"diff --git ", position, stop):
            boundary = block.find(_BOUNDARY, position, stop)
            after = stop if boundary < 0 else boundary + 1
            done += self._by_line(block[position:after])
            if boundary < 0:
                return done
            position = after
        if self._lines is not None:
            done += self._lines.close()  # a new file starts: the line parser's file is done
            self._lines = None
        while True:
            boundary = block.find(_BOUNDARY, position, stop)
            if boundary < 0:
                break
            done += self._take(block, position, boundary + 1)
            position = boundary + 1
        if stop - position > MAX_SECTION_BYTES:
            done += self._by_line(block[position:stop])
        else:
            self._section = block[position:stop]
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
    # No lines are kept ("truncated"); every field in one call, the quickest way in.
    if kind == b"new":
        if old is not None or new is None:
            return None
        new_path = new.decode("utf-8", "replace")
        return FileDiff(
            None, new_path, "added", False, added, removed, [], None, mode.decode(), None,
            hunks, True,
        )  # fmt: skip
    if kind == b"deleted":
        if old is None or new is not None:
            return None
        old_path = old.decode("utf-8", "replace")
        return FileDiff(
            old_path, None, "deleted", False, added, removed, [], mode.decode(), None, None,
            hunks, True,
        )  # fmt: skip
    if old is None or new is None:
        return None
    return FileDiff(
        old.decode("utf-8", "replace"), new.decode("utf-8", "replace"), "modified", False,
        added, removed, [], None, None, None, hunks, True,
    )  # fmt: skip


def _count_hunks(section: bytes, start: int, stop: int) -> tuple[int, int, int] | None:
    """``(added, removed, hunks)`` of the hunks after ``start`` (the newline before the
    first ``@@``), if every hunk holds exactly the lines its header promises.

    That check is what makes the counts those of :class:`~.diff.DiffParser`: when
    each hunk's removed and context lines add up to its old length, and its added
    and context lines to its new length, the parser takes every line as a body
    line, in any order they come.

    One pass of :data:`_BODY_STRUCTURE_RE` finds the hunk headers and any line that
    is no body line. The body is then cut down to the bytes that can start a line
    (a fraction of it; the hunk headers keep their ``@``), split at the headers,
    and each hunk's lines, added and removed lines counted in C.
    """
    end_of_text = stop - 1 if section[stop - 1] == 0x0A else stop
    structure = _BODY_STRUCTURE_RE.findall(section, start, stop)
    if not structure or structure[0][2]:
        return None  # no hunk, or a line before the first one
    if any(other for _, _, other in structure):
        return _count_hunks_with_notes(section, start, stop, end_of_text)
    hunks = section[start:end_of_text].translate(None, _NOT_LINE_START).split(b"\n@")[1:]
    if len(hunks) != len(structure):
        return None  # an "@" line that is no hunk header (the pattern has seen none)
    lines = list(map(bytes.count, hunks, repeat(b"\n")))
    added = list(map(bytes.count, hunks, repeat(b"\n+")))
    removed = list(map(bytes.count, hunks, repeat(b"\n-")))
    # A hunk holds what it promises when its lines less its added lines are its
    # old length, and its lines less its removed lines its new length.
    if list(map(sub, lines, added)) != [int(old or 1) for old, _, _ in structure]:
        return None
    if list(map(sub, lines, removed)) != [int(new or 1) for _, new, _ in structure]:
        return None
    return sum(added), sum(removed), len(structure)


def _count_hunks_with_notes(
    section: bytes, start: int, stop: int, end_of_text: int
) -> tuple[int, int, int] | None:
    """:func:`_count_hunks` of hunks among which are ``\\ No newline`` notes (or lines
    that belong in no hunk): a hunk at a time."""
    added = removed = hunks = notes = 0
    body = -1  # where the open hunk's lines start (the newline ending its header)
    old_len = new_len = 0
    for match in _BODY_STRUCTURE_RE.finditer(section, start, stop):
        old_text, new_text, other = match.groups()
        if other is not None:
            if other != b"\\" or body < 0:
                return None  # a line that belongs in no hunk
            notes += 1
            continue
        if body >= 0:
            counted = _hunk_counts(section[body : match.start()], old_len, new_len, notes)
            if counted is None:
                return None
            added, removed = added + counted[0], removed + counted[1]
        hunks += 1
        notes = 0
        body = match.end()
        old_len = int(old_text) if old_text is not None else 1
        new_len = int(new_text) if new_text is not None else 1
    if body < 0:
        return None
    counted = _hunk_counts(section[body:end_of_text], old_len, new_len, notes)
    if counted is None:
        return None
    return added + counted[0], removed + counted[1], hunks


# Every byte but those that can start a hunk line or a hunk header: what is left of
# a hunk's body keeps each line's first byte after its newline (the pattern has
# checked that it is one of these), and is a fraction of its size.
_NOT_LINE_START = bytes(sorted(set(range(256)) - set(b"\n +-\\@")))


def _hunk_counts(lines: bytes, old_len: int, new_len: int, notes: int) -> tuple[int, int] | None:
    """``(added, removed)`` of one hunk whose body is ``lines`` (each line after its
    newline, as the structure pattern has checked), or ``None`` if it holds more or
    fewer lines than its header promises."""
    starts = lines.translate(None, _NOT_LINE_START)
    added = starts.count(b"\n+")
    removed = starts.count(b"\n-")
    context = starts.count(b"\n") - notes - added - removed
    if removed + context != old_len or added + context != new_len:
        return None
    return added, removed
