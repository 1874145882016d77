"""A tolerant, streaming parser for ``git diff`` output and plain unified diffs.

Public API::

    parse_diff(lines, *, max_lines_per_file=None) -> Iterator[FileDiff]
    DiffParser(max_lines_per_file=None)      # push form: feed(line) -> list[FileDiff],
                                             # feed_bytes(whole lines) -> list[FileDiff], close()

    FileDiff(old_path, new_path, status, binary, added, removed, hunks,
             old_mode, new_mode, similarity, hunk_count, truncated)
        .path                       new_path, or old_path for a deletion
    Hunk(header, old_start, old_len, new_start, new_len, section, lines)
    DiffLine(kind, text, old_no, new_no)     kind: "context" | "add" | "del" | "note"

``lines`` is any iterable of text lines, with or without their line ends, so a
file object, ``text.splitlines()`` or a generator over a network stream all work;
one file's diff is yielded as soon as the next one starts, so memory holds one
file at a time. Recognised: git's extended headers (``new file mode``,
``deleted file mode``, ``old mode``/``new mode``, ``rename from/to``,
``copy from/to``, ``similarity index``, ``index``), quoted paths with C escapes,
``Binary files ... differ``, ``GIT binary patch`` bodies (skipped, the file is
marked binary), plain ``---``/``+++`` unified diffs (with ``diff -u``/``Index:``
preambles and tab-separated timestamps) and ``\\ No newline at end of file``.

Content is never trusted: a malformed hunk header or a line that fits nowhere is
skipped rather than raised, since a reviewer would rather see most of a damaged
diff than nothing. ``max_lines_per_file`` caps the :class:`DiffLine` objects kept
per file (for a huge diff in a viewer); ``added``/``removed``/``hunk_count`` stay
exact and ``truncated`` tells that lines were dropped. ``0`` keeps counts only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DiffLine", "DiffParser", "FileDiff", "FileStatus", "Hunk", "LineKind", "parse_diff"]

LineKind = Literal["context", "add", "del", "note"]
FileStatus = Literal["modified", "added", "deleted", "renamed", "copied"]

# The end of a line followed by one that cannot be inside a hunk body: it starts with
# none of " ", "+", "-", "\\" and is not empty. (A leading "\n" lets the regex engine
# scan for it at memchr speed; "^" in multiline mode is six times slower.)
_STRUCTURE_RE = re.compile(rb"\n[^ +\-\\\n]")
_BODY_STARTS = frozenset(b" +-\\\n")
_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
_DEV_NULL = "/dev/null"
_C_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


@dataclass(slots=True)
class DiffLine:
    """One line of a hunk. ``old_no``/``new_no`` are 1-based, ``None`` on the side it lacks."""

    kind: LineKind
    text: str
    old_no: int | None
    new_no: int | None


@dataclass(slots=True)
class Hunk:
    """One ``@@ -a,b +c,d @@ section`` block and the lines kept of it."""

    header: str
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    section: str
    lines: list[DiffLine] = field(default_factory=list)


@dataclass(slots=True)
class FileDiff:
    """The changes to one file. A path is ``None`` on the ``/dev/null`` side."""

    old_path: str | None
    new_path: str | None
    status: FileStatus = "modified"
    binary: bool = False
    added: int = 0
    removed: int = 0
    hunks: list[Hunk] = field(default_factory=list)
    old_mode: str | None = None
    new_mode: str | None = None
    similarity: int | None = None
    hunk_count: int = 0
    truncated: bool = False

    @property
    def path(self) -> str:
        """The path a reviewer knows the file by: the new one, or the old one if deleted."""
        return self.new_path or self.old_path or ""


def parse_diff(
    lines: Iterable[str], *, max_lines_per_file: int | None = None
) -> Iterator[FileDiff]:
    """Yield one :class:`FileDiff` per file in ``lines``, in order, as they complete."""
    parser = DiffParser(max_lines_per_file=max_lines_per_file)
    for line in lines:
        yield from parser.feed(line)
    yield from parser.close()


class DiffParser:
    """Push form of :func:`parse_diff`: ``feed`` one line at a time, then ``close``.

    Each call returns the files that completed with it (usually none or one).
    """

    def __init__(self, *, max_lines_per_file: int | None = None) -> None:
        if max_lines_per_file is not None and max_lines_per_file < 0:
            raise ValueError("max_lines_per_file must be >= 0 or None")
        self._cap = max_lines_per_file
        self._file: FileDiff | None = None
        self._git = False  # the current file started with "diff --git"
        self._hunk: Hunk | None = None
        self._old_left = 0
        self._new_left = 0
        self._old_no = 0
        self._new_no = 0
        self._kept = 0
        self._in_binary_patch = False
        self._pending_minus: str | None = None  # a "--- x" line waiting for its "+++ y"

    def feed(self, line: str) -> list[FileDiff]:
        """Consume one line; return the files it completed."""
        line = line.rstrip("\n")
        if line.endswith("\r"):
            line = line[:-1]
        done: list[FileDiff] = []
        open_hunk = self._hunk is not None and (self._old_left > 0 or self._new_left > 0)
        if open_hunk and self._hunk_line(line):
            return done
        if self._hunk is not None and line.startswith("\\"):
            self._keep(DiffLine("note", line[1:].strip(), None, None))
            return done
        self._hunk = None
        if self._pending_minus is not None:
            minus, self._pending_minus = self._pending_minus, None
            if line.startswith("+++ "):
                self._plain_header(minus, line[4:], done)
                return done
        if line.startswith("diff --git ") or line.startswith("diff --cc "):
            self._finish(done)
            self._start_git(line)
            return done
        if self._in_binary_patch:
            return done
        if line.startswith("@@ ") and self._file is not None:
            self._start_hunk(line)
            return done
        if line.startswith("--- "):
            self._pending_minus = line[4:]
            return done
        if self._file is not None and self._git:
            self._git_header(line)
        elif line.startswith("Binary files ") and line.endswith(" differ"):
            # "diff -r" of two trees reports binary files without any other header.
            self._finish(done)
            old, _, new = line[len("Binary files ") : -len(" differ")].partition(" and ")
            file = FileDiff(*_strip_prefixes(old, new), binary=True)
            if old == _DEV_NULL:
                file.old_path, file.status = None, "added"
            if new == _DEV_NULL:
                file.new_path, file.status = None, "deleted"
            self._file = file
        return done

    def feed_bytes(self, block: bytes, encoding: str = "utf-8") -> list[FileDiff]:
        """Consume whole lines given as bytes (the last may lack its newline).

        Same result as :meth:`feed` on each decoded line. When no more lines are
        kept (``max_lines_per_file`` reached, or ``0``), runs of hunk body lines
        are counted with ``bytes.count`` instead of one by one: a summary of a
        large diff then costs little more than reading it.
        """
        done: list[FileDiff] = []
        pos, size = 0, len(block)
        while pos < size:
            if self._counting_only():
                if block[pos] not in _BODY_STARTS:
                    end = pos
                else:
                    match = _STRUCTURE_RE.search(block, pos)
                    end = size if match is None else match.start() + 1
                if end > pos:
                    if not self._count_body(block[pos:end]):
                        # Lines end at "\n" only, as in feed(): splitlines would also
                        # cut at a "\r" inside a line.
                        for line in _lines(block[pos:end]):
                            done += self.feed(line.decode(encoding, "replace"))
                    pos = end
                    continue
            newline = block.find(b"\n", pos)
            stop = size if newline < 0 else newline + 1
            done += self.feed(block[pos:stop].decode(encoding, "replace"))
            pos = stop
        return done

    def _counting_only(self) -> bool:
        return (
            self._hunk is not None
            and (self._old_left > 0 or self._new_left > 0)
            and self._cap is not None
            and self._kept >= self._cap
        )

    def _count_body(self, segment: bytes) -> bool:
        """Account a run of lines that all start with `` ``, ``+``, ``-``, ``\\`` or are
        empty, if the open hunk can hold them all; ``False`` (nothing done) if not."""
        first = segment[:1]
        lines = segment.count(b"\n") + (not segment.endswith(b"\n"))
        added = segment.count(b"\n+") + (first == b"+")
        removed = segment.count(b"\n-") + (first == b"-")
        notes = segment.count(b"\n\\") + (first == b"\\")
        context = lines - added - removed - notes
        if removed + context > self._old_left or added + context > self._new_left:
            return False
        file = self._file
        assert file is not None
        file.added += added
        file.removed += removed
        self._old_left -= removed + context
        self._new_left -= added + context
        self._old_no += removed + context
        self._new_no += added + context
        if lines:
            file.truncated = True
        return True

    def close(self) -> list[FileDiff]:
        """End of input: return the last file, if any."""
        done: list[FileDiff] = []
        self._finish(done)
        return done

    # -- file boundaries -------------------------------------------------

    def _finish(self, done: list[FileDiff]) -> None:
        if self._file is not None:
            done.append(self._file)
        self._file = None
        self._hunk = None
        self._git = False
        self._kept = 0
        self._in_binary_patch = False

    def _start_git(self, line: str) -> None:
        old, new = _split_git_paths(line.split(" ", 2)[2] if line.count(" ") >= 2 else "")
        self._file = FileDiff(old_path=old, new_path=new)
        self._git = True

    def _plain_header(self, minus: str, plus: str, done: list[FileDiff]) -> None:
        old = _header_path(minus)
        new = _header_path(plus)
        current = self._file
        if current is not None and self._git and current.hunk_count == 0 and not current.binary:
            # The "---/+++" pair that belongs to the current "diff --git" header.
            file = current
        else:
            self._finish(done)
            file = FileDiff(old_path=old, new_path=new)
            self._file = file
            self._git = False
        if old == _DEV_NULL:
            file.old_path = None
            file.status = "added"
        if new == _DEV_NULL:
            file.new_path = None
            file.status = "deleted"
        if not self._git:
            file.old_path, file.new_path = _strip_prefixes(file.old_path, file.new_path)
        else:
            if file.old_path is not None and old != _DEV_NULL:
                file.old_path = _strip_one(old, "a/")
            if file.new_path is not None and new != _DEV_NULL:
                file.new_path = _strip_one(new, "b/")

    def _git_header(self, line: str) -> None:
        file = self._file
        assert file is not None
        key = line.split(" ", 1)[0]
        if line.startswith("new file mode "):
            file.status = "added"
            file.new_mode = line.rsplit(" ", 1)[-1]
            file.old_path = None
        elif line.startswith("deleted file mode "):
            file.status = "deleted"
            file.old_mode = line.rsplit(" ", 1)[-1]
            file.new_path = None
        elif line.startswith("old mode "):
            file.old_mode = line[9:].strip()
        elif line.startswith("new mode "):
            file.new_mode = line[9:].strip()
        elif line.startswith("rename from ") or line.startswith("copy from "):
            file.status = "renamed" if key == "rename" else "copied"
            file.old_path = _unquote(line.split(" ", 2)[2])
        elif line.startswith("rename to ") or line.startswith("copy to "):
            file.new_path = _unquote(line.split(" ", 2)[2])
        elif line.startswith("similarity index ") or line.startswith("dissimilarity index "):
            digits = line.rsplit(" ", 1)[-1].rstrip("%")
            if digits.isdigit():
                file.similarity = int(digits)
        elif line.startswith("Binary files ") and line.endswith(" differ"):
            file.binary = True
        elif line == "GIT binary patch":
            file.binary = True
            self._in_binary_patch = True

    # -- hunks -----------------------------------------------------------

    def _start_hunk(self, line: str) -> None:
        file = self._file
        assert file is not None
        match = _HUNK_RE.match(line)
        if match is None:
            return  # combined diffs ("@@@") and damaged headers: skipped
        old_start, old_len, new_start, new_len, section = match.groups()
        hunk = Hunk(
            header=line,
            old_start=int(old_start),
            old_len=1 if old_len is None else int(old_len),
            new_start=int(new_start),
            new_len=1 if new_len is None else int(new_len),
            section=section,
        )
        file.hunk_count += 1
        if self._cap is None or self._kept < self._cap:
            file.hunks.append(hunk)
        else:
            file.truncated = True
        self._hunk = hunk
        self._old_left, self._new_left = hunk.old_len, hunk.new_len
        self._old_no, self._new_no = hunk.old_start, hunk.new_start

    def _hunk_line(self, line: str) -> bool:
        """Account one body line of the open hunk; ``False`` if it cannot belong to it."""
        file = self._file
        assert file is not None
        marker = line[:1]
        if marker == "+" and self._new_left > 0:
            file.added += 1
            self._new_left -= 1
            self._keep(DiffLine("add", line[1:], None, self._new_no))
            self._new_no += 1
        elif marker == "-" and self._old_left > 0:
            file.removed += 1
            self._old_left -= 1
            self._keep(DiffLine("del", line[1:], self._old_no, None))
            self._old_no += 1
        elif (marker == " " or line == "") and self._old_left > 0 and self._new_left > 0:
            # An empty line is a context line whose leading space an editor stripped.
            self._old_left -= 1
            self._new_left -= 1
            self._keep(DiffLine("context", line[1:], self._old_no, self._new_no))
            self._old_no += 1
            self._new_no += 1
        elif marker == "\\":
            self._keep(DiffLine("note", line[1:].strip(), None, None))
        else:
            # The hunk header promised more lines than came: close it and reparse.
            self._old_left = self._new_left = 0
            return False
        return True

    def _keep(self, diff_line: DiffLine) -> None:
        file = self._file
        hunk = self._hunk
        assert file is not None and hunk is not None
        if self._cap is not None and self._kept >= self._cap:
            file.truncated = True
            return
        if file.hunks and file.hunks[-1] is hunk:
            hunk.lines.append(diff_line)
            self._kept += 1
        else:
            file.truncated = True


def _split_git_paths(rest: str) -> tuple[str | None, str | None]:
    """Split ``a/x b/y`` (maybe quoted, maybe with spaces) into the two paths, prefixes off."""
    rest = rest.strip()
    if rest.startswith('"'):
        old, tail = _take_quoted(rest)
        tail = tail.strip()
        new = _take_quoted(tail)[0] if tail.startswith('"') else tail
        return _strip_prefixes(old, new)
    if rest.endswith('"') and ' "' in rest:
        head, _, quoted = rest.rpartition(' "')
        return _strip_prefixes(head, _take_quoted('"' + quoted)[0])
    # Unquoted: the same path on both sides is by far the most common case, and the
    # only one that is unambiguous with spaces; otherwise split at " b/".
    half = (len(rest) - 1) // 2
    if len(rest) % 2 == 1 and rest[half] == " ":
        left, right = rest[:half], rest[half + 1 :]
        if left[2:] == right[2:]:
            return _strip_prefixes(left, right)
    if " b/" in rest:
        left, _, right = rest.partition(" b/")
        return _strip_prefixes(left, "b/" + right)
    left, _, right = rest.partition(" ")
    return _strip_prefixes(left, right)


def _strip_prefixes(old: str | None, new: str | None) -> tuple[str | None, str | None]:
    """Drop git's ``a/``/``b/`` prefixes when both sides carry them."""
    old_prefixed = old in (None, _DEV_NULL) or old.startswith("a/")
    new_prefixed = new in (None, _DEV_NULL) or new.startswith("b/")
    if old_prefixed and new_prefixed:
        return _strip_one(old, "a/") if old else old, _strip_one(new, "b/") if new else new
    return old, new


def _strip_one(path: str, prefix: str) -> str:
    return path[len(prefix) :] if path.startswith(prefix) else path


def _header_path(text: str) -> str:
    """The path of a ``---``/``+++`` line: quotes decoded, a trailing timestamp dropped."""
    text = text.rstrip()
    if text.startswith('"'):
        return _take_quoted(text)[0]
    return text.split("\t", 1)[0].rstrip()


def _unquote(text: str) -> str:
    text = text.strip()
    return _take_quoted(text)[0] if text.startswith('"') else text


def _take_quoted(text: str) -> tuple[str, str]:
    """Decode a C-quoted string at the start of ``text``; return it and the rest.

    Git writes octal escapes for the UTF-8 bytes of non-ASCII names, so the
    escaped bytes are collected and decoded together.
    """
    out = bytearray()
    i = 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return out.decode("utf-8", "replace"), text[i + 1 :]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in "01234567" and i + 3 < len(text) and text[i + 1 : i + 4].isdigit():
                out.append(int(text[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out.extend(_C_ESCAPES.get(nxt, nxt).encode())
            i += 2
            continue
        out.extend(char.encode("utf-8", "surrogateescape"))
        i += 1
    return out.decode("utf-8", "replace"), ""


def _lines(segment: bytes) -> list[bytes]:
    """``segment`` cut after every ``\n`` (the last piece may lack it)."""
    pieces = segment.split(b"\n")
    lines = [piece + b"\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines
