"""Spooling logs for the viewer: each log read once into a local file, then indexed.

A log of a gigabyte cannot be decoded for every page view, and the store's
streams cannot seek (a compressed artifact is read from its start). So the first
request for a log beyond its head spools the artifact once: the verified,
decompressed bytes go to a file in a cache folder, and every
:data:`CHECKPOINT_BYTES` the byte offset and number of the next line start are
recorded (a :class:`~.loglines.LineIndex`). Line counting uses ``bytes.count``
over whole chunks, and the lines worth marking (errors, warnings) are found with
``str.find`` over whole blocks before any is judged alone, so spooling keeps up
with the disk more than with Python.

Versions are immutable and named by their SHA-256, so the cache key is the
checksum and an entry is never stale. The folder is bounded: the least recently
used spools are removed when the total passes the budget. A spool is written to a
temporary name and renamed only when the artifact has been read to its end, where
the reader checks its size and checksum; a corrupted artifact never gets a spool.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import weakref
from array import array
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ...models import ArtifactMetadata
from ...pipeline.integrity import ArtifactReader
from .loglines import (
    MAX_LINE_CHARS,
    ArtifactOpener,
    ChunkObserver,
    LineIndex,
    LineMarker,
    MarkerScanner,
    decode_line,
)

__all__ = ["CHECKPOINT_BYTES", "DEFAULT_CACHE_BYTES", "MAX_MARKERS", "LineCache", "Prefilter"]

KiB = 1024
GiB = 1024 * 1024 * KiB

#: Distance between two recorded line starts: bounds the bytes read for any range.
CHECKPOINT_BYTES = 64 * KiB
#: Default budget of the spool folder.
DEFAULT_CACHE_BYTES = 4 * GiB
#: Most markers (errors, warnings) kept per log: the rest are counted only.
MAX_MARKERS = 2000


def _spool(
    reader: ArtifactReader,
    target: Path,
    scanner: MarkerScanner | None,
    prefilter: Prefilter | None,
    observer: ChunkObserver | None = None,
) -> LineIndex:
    offsets = array("Q", [0])
    numbers = array("Q", [1])
    markers: list[LineMarker] = []
    counts: dict[str, int] = {}
    offset = 0  # bytes spooled before the current chunk
    newlines = 0  # newlines before the current chunk
    next_mark = CHECKPOINT_BYTES
    pending = b""  # the unfinished last line of the previous chunk, for the scanner
    last_byte = b""
    with open(target, "wb") as out:
        for chunk in reader:
            out.write(chunk)
            if observer is not None:
                observer.feed(chunk)
            while next_mark < offset + len(chunk):
                found = chunk.find(b"\n", max(0, next_mark - offset))
                if found < 0:
                    break
                offsets.append(offset + found + 1)
                numbers.append(newlines + chunk.count(b"\n", 0, found + 1) + 1)
                next_mark = offset + found + 1 + CHECKPOINT_BYTES
            if scanner is not None:
                _scan_chunk(pending, chunk, newlines, scanner, prefilter, markers, counts)
                cut = chunk.rfind(b"\n")
                pending = (pending + chunk)[-MAX_LINE_CHARS:] if cut < 0 else chunk[cut + 1 :]
            newlines += chunk.count(b"\n")
            offset += len(chunk)
            last_byte = chunk[-1:]
        out.flush()
        os.fsync(out.fileno())
    if scanner is not None and pending:
        _scan_lines(newlines + 1, [pending], scanner, markers, counts)
    total_lines = newlines + (1 if offset and last_byte != b"\n" else 0)
    if offsets[-1] >= offset and len(offsets) > 1:  # a checkpoint at the very end
        offsets.pop()
        numbers.pop()
    stats = observer.close() if observer is not None else None
    return LineIndex(target, offset, total_lines, offsets, numbers, markers, counts, stats)


@dataclass(frozen=True)
class Prefilter:
    """Which lines the scanner could mark: those whose ``clean``-ed, lower-cased text
    contains one of ``keywords``. Other lines are skipped without a Python-level look."""

    keywords: tuple[str, ...]
    #: Applied to each line before matching (e.g. removing ANSI escapes); it must
    #: never remove a newline from text without OSC escapes.
    clean: Callable[[str], str] = str


def _scan_chunk(
    pending: bytes,
    chunk: bytes,
    newlines_before: int,
    scanner: MarkerScanner,
    prefilter: Prefilter | None,
    markers: list[LineMarker],
    counts: dict[str, int],
) -> None:
    """Hand the complete lines ending in ``chunk`` to the scanner.

    ``pending`` (the unfinished line before ``chunk``) starts at a line start and
    the body ends at a newline, so the body decodes without a cut character.
    """
    data = pending + chunk
    cut = data.rfind(b"\n")
    if cut < 0:
        return
    body = data[: cut + 1]
    first_line = newlines_before + 1  # the line ``pending`` began
    if prefilter is None:
        _scan_lines(first_line, body.split(b"\n")[:-1], scanner, markers, counts)
        return
    text = body.decode("utf-8", errors="replace")
    if "\x1b]" in text:  # an OSC escape may run across lines: clean each on its own
        folded = "\n".join(map(prefilter.clean, text.split("\n"))).lower()
    else:  # escapes without OSC never hold a newline: clean the block at once
        folded = prefilter.clean(text).lower()
    starts: set[int] = set()
    for word in prefilter.keywords:
        pos = folded.find(word)
        while pos >= 0:
            starts.add(folded.rfind("\n", 0, pos) + 1)
            end = folded.find("\n", pos)
            if end < 0:
                break
            pos = folded.find(word, end)
    if not starts:
        return
    lines = body.split(b"\n")
    previous, number = 0, 0
    for start in sorted(starts):
        number += folded.count("\n", previous, start)
        previous = start
        _scan_lines(first_line + number, [lines[number]], scanner, markers, counts)


def _scan_lines(
    first: int,
    raws: list[bytes],
    scanner: MarkerScanner,
    markers: list[LineMarker],
    counts: dict[str, int],
) -> None:
    for number, raw in enumerate(raws, start=first):
        for marker in scanner(number, decode_line(raw)):
            counts[marker.kind] = counts.get(marker.kind, 0) + 1
            if len(markers) < MAX_MARKERS:
                markers.append(marker)


class LineCache:
    """Spools of logs by checksum, built once and shared by every request.

    ``scanner`` marks errors, warnings and sections while spooling; ``prefilter``
    names the lines it could mark (a fast path for gigabyte logs); ``observer``
    makes a fresh chunk observer per spool, whose result becomes
    :attr:`LineIndex.stats`. The folder is created on first use and removed by
    :meth:`close`.
    """

    def __init__(
        self,
        folder: Path | None = None,
        *,
        budget_bytes: int = DEFAULT_CACHE_BYTES,
        scanner: MarkerScanner | None = None,
        prefilter: Prefilter | None = None,
        observer: Callable[[], ChunkObserver] | None = None,
    ) -> None:
        self._folder = folder
        self._own_folder = folder is None
        self._budget = budget_bytes
        self._scanner = scanner
        self._prefilter = prefilter
        self._observer = observer
        self._lock = threading.Lock()
        self._entries: dict[str, LineIndex] = {}
        self._building: dict[str, Future[LineIndex]] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="log-spool")

    @property
    def folder(self) -> Path:
        """Where the spools are (created on first use)."""
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="necrocode-viewer-"))
                # Removed at exit even if nobody calls close() (e.g. a killed worker's
                # sibling, or an app whose lifespan never ran).
                weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)
            self._folder.mkdir(parents=True, exist_ok=True)
            return self._folder

    def peek(self, meta: ArtifactMetadata) -> LineIndex | None:
        """The spool of ``meta`` if it is ready, without waiting or building."""
        with self._lock:
            return self._entries.get(meta.checksum)

    def start(self, store: ArtifactOpener, meta: ArtifactMetadata) -> Future[LineIndex]:
        """Spool ``meta`` in the background (once); the future gives the index."""
        with self._lock:
            ready = self._entries.get(meta.checksum)
            if ready is not None:
                done: Future[LineIndex] = Future()
                done.set_result(ready)
                return done
            running = self._building.get(meta.checksum)
            if running is None:
                running = self._pool.submit(self._build, store, meta)
                self._building[meta.checksum] = running
            return running

    def get(self, store: ArtifactOpener, meta: ArtifactMetadata) -> LineIndex:
        """The spool of ``meta``, built now if needed (raises what reading raised)."""
        return self.start(store, meta).result()

    def _build(self, store: ArtifactOpener, meta: ArtifactMetadata) -> LineIndex:
        digest = meta.checksum.removeprefix("sha256:")
        final = self.folder / f"{digest}.log"
        partial = final.with_name(f".{digest}.{threading.get_ident()}.part")
        try:
            with store.open(meta.version_uri, verify_checksum=True) as reader:
                observer = self._observer() if self._observer is not None else None
                index = _spool(reader, partial, self._scanner, self._prefilter, observer)
            os.replace(partial, final)
            index.path = final
        except BaseException:
            partial.unlink(missing_ok=True)
            with self._lock:
                self._building.pop(meta.checksum, None)
            raise
        with self._lock:
            self._entries[meta.checksum] = index
            self._building.pop(meta.checksum, None)
            self._evict(keep=meta.checksum)
        return index

    def _evict(self, keep: str) -> None:
        total = sum(entry.total_bytes for entry in self._entries.values())
        for checksum, entry in sorted(self._entries.items(), key=lambda kv: kv[1].last_used):
            if total <= self._budget:
                break
            if checksum == keep:
                continue
            del self._entries[checksum]
            total -= entry.total_bytes
            # A reader may still hold it open: POSIX keeps the bytes until it closes.
            entry.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop spooling and remove the folder if the cache created it."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._entries.clear()
            folder, self._folder = self._folder, None
        if folder is not None and self._own_folder:
            shutil.rmtree(folder, ignore_errors=True)
        elif folder is not None:
            for stale in folder.glob("*.log"):
                with contextlib.suppress(OSError):
                    stale.unlink()
