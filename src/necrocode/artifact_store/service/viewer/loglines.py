"""Line access to big text artifacts: the log viewer's ranges, tail and search.

A :class:`LineIndex` is a log spooled by :mod:`.logspool`: its decompressed bytes
in a local file, with the byte offset and number of a line start recorded every
:data:`~.logspool.CHECKPOINT_BYTES`. A range of lines is then a binary search, a
seek and a read of at most one checkpoint's worth of bytes, whatever the size of
the log; search scans the file in blocks. :func:`head_lines` reads the first
lines straight from the store, so opening a page needs no spool at all.
"""

from __future__ import annotations

import bisect
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...pipeline.integrity import ArtifactReader

__all__ = [
    "BLOCK_BYTES",
    "MAX_LINE_CHARS",
    "ArtifactOpener",
    "ChunkObserver",
    "LineIndex",
    "LineMarker",
    "MarkerScanner",
    "SearchHit",
    "decode_line",
    "head_lines",
]

KiB = 1024
MiB = 1024 * KiB

#: Size of the blocks read while spooling and searching.
BLOCK_BYTES = 1 * MiB
#: A line longer than this is cut for display (the raw artifact keeps all of it).
MAX_LINE_CHARS = 4000
#: Of a line longer than this, search looks at the head only.
LONG_LINE_BYTES = 4 * MiB


class ArtifactOpener(Protocol):
    """What the cache needs from a store: open an artifact (a version URI) for reading."""

    def open(self, uri: str, verify_checksum: bool | None = None) -> ArtifactReader: ...


@dataclass(frozen=True, slots=True)
class LineMarker:
    """A notable line found while spooling: an error, a warning or a section edge."""

    line: int
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A line containing the searched text."""

    line: int
    text: str


#: Called on each candidate line while spooling; returns the markers it finds.
MarkerScanner = Callable[[int, str], list[LineMarker]]


class ChunkObserver(Protocol):
    """Sees every chunk of a log while it is spooled (e.g. a log statistics scanner)."""

    def feed(self, chunk: bytes) -> None: ...

    def close(self) -> Any: ...


def decode_line(raw: bytes) -> str:
    """One line's bytes as display text: line end removed, invalid UTF-8 replaced, cut."""
    text = raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8", errors="replace")
    if len(text) > MAX_LINE_CHARS:
        more = len(text) - MAX_LINE_CHARS
        return f"{text[:MAX_LINE_CHARS]} … [{more} more characters; see the raw artifact]"
    return text


@dataclass
class LineIndex:
    """A spooled log: its lines by number, its markers, and search over it."""

    path: Path
    total_bytes: int
    total_lines: int
    #: Byte offsets of recorded line starts, and the numbers of those lines (1-based).
    offsets: array[int]
    numbers: array[int]
    markers: list[LineMarker] = field(default_factory=list)
    marker_counts: dict[str, int] = field(default_factory=dict)
    #: What the cache's observer concluded after the last chunk (``None`` without one).
    stats: Any = None
    last_used: float = field(default_factory=time.monotonic)

    def lines(self, start: int, count: int) -> list[str]:
        """Lines ``start`` .. ``start + count - 1`` (1-based), cut at the log's end.

        A line longer than the display cap is read only up to the cap; the rest of
        it is skipped in blocks, so one 1 GB line costs no more memory than a short one.
        """
        self.last_used = time.monotonic()
        start = max(1, start)
        if count <= 0 or start > self.total_lines:
            return []
        at = bisect.bisect_right(self.numbers, start) - 1
        number = self.numbers[at]
        out: list[str] = []
        cap = MAX_LINE_CHARS * 4
        with open(self.path, "rb") as spool:
            spool.seek(self.offsets[at])
            while len(out) < count:
                raw = spool.readline(cap)
                if not raw:
                    break
                if not raw.endswith(b"\n"):
                    while (rest := spool.readline(BLOCK_BYTES)) and not rest.endswith(b"\n"):
                        pass
                if number >= start:
                    out.append(decode_line(raw))
                number += 1
        return out

    def search(self, needle: str, after: int = 0, limit: int = 100) -> tuple[list[SearchHit], int]:
        """Lines after line ``after`` containing ``needle`` (ASCII case folded).

        Returns up to ``limit`` hits and the number of the last line scanned, so a
        caller can ask for the next page of hits from there. Blocks of the spool
        are searched whole; of a line longer than :data:`LONG_LINE_BYTES` only the
        head is searched.
        """
        self.last_used = time.monotonic()
        want = needle.encode("utf-8").lower()
        if not want or b"\n" in want:
            return [], self.total_lines
        hits: list[SearchHit] = []
        line = max(0, after)
        at = bisect.bisect_right(self.numbers, line + 1) - 1
        number = self.numbers[at]  # number of the line starting the current buffer
        carry = b""
        skipping = False  # inside the unsearched tail of a long line
        with open(self.path, "rb") as spool:
            spool.seek(self.offsets[at])
            while True:
                block = spool.read(BLOCK_BYTES)
                eof = not block
                if skipping and not eof:
                    newline = block.find(b"\n")
                    if newline < 0:
                        continue
                    block, number, skipping = block[newline + 1 :], number + 1, False
                if eof and not carry:
                    break
                data = carry + block
                if not eof:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0 and len(data) < LONG_LINE_BYTES:
                        carry = data  # a line longer than a block: keep reading it
                        continue
                    if cut == 0:  # too long to hold: search its head, skip its tail
                        carry, skipping = b"", True
                    else:
                        data, carry = data[:cut], data[cut:]
                else:
                    carry = b""
                if self._hits_in(data, want, number, line, hits, limit):
                    return hits, hits[-1].line
                number += data.count(b"\n")
        return hits, self.total_lines

    @staticmethod
    def _hits_in(
        data: bytes, want: bytes, number: int, after: int, hits: list[SearchHit], limit: int
    ) -> bool:
        """Append the hits in ``data`` (whose first line is ``number``); True at ``limit``."""
        folded = data.lower()
        pos = folded.find(want)
        while pos >= 0:
            begin = folded.rfind(b"\n", 0, pos) + 1
            end = folded.find(b"\n", pos)
            end = len(data) if end < 0 else end
            hit_line = number + data.count(b"\n", 0, begin)
            if hit_line > after:
                hits.append(SearchHit(hit_line, decode_line(data[begin : min(end, begin + 65536)])))
                if len(hits) == limit:
                    return True
            pos = folded.find(want, end)
        return False


def head_lines(store: ArtifactOpener, uri: str, count: int) -> tuple[list[str], bool]:
    """The first ``count`` lines read straight from the store, and whether more follow.

    Opening a log page needs only these, so it costs the same for 1 KB and 1 GB.
    A line too long to display is kept cut, and the rest of it is skipped unread.
    """
    lines: list[str] = []
    pending = b""
    cap = MAX_LINE_CHARS * 4
    with store.open(uri, verify_checksum=False) as reader:
        for chunk in reader:
            parts = (pending + chunk).split(b"\n")
            pending = parts.pop()
            for raw in parts:
                if len(lines) == count:
                    return lines, True
                lines.append(decode_line(raw[:cap]))
            if len(pending) > cap:
                pending = pending[: cap + 1]  # keeps it over the cap: later bytes are dropped
            if len(lines) == count and pending:
                return lines, True
    if pending:
        if len(lines) == count:
            return lines, True
        lines.append(decode_line(pending[:cap]))
    return lines, False
