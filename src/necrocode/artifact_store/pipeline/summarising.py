"""An upload's content summary, parsed beside the upload by a worker thread.

Public API::

    with SummaryTap(artifact_type or None) as summary:   # None: summaries are off
        chunks = summary.tap(chunks)       # the same chunks, handed to the summariser
        ...                                # compress, hash and stage the chunks
        summary.finish() -> (Summary | None, reason | None)   # never raises
    SUMMARY_THREAD_BYTES                   # from this many bytes on, a worker parses

zlib's ``deflate``, ``hashlib`` (on more than 2 KiB) and file writes release the
GIL; the content parsers mostly hold it. So, where a second core is free, a
chunk is parsed by a worker while the upload thread compresses and writes the
same chunk (chunks are immutable ``bytes``). The tap sits after the hashing, so
the upload thread hands a chunk over and then goes into one long GIL-free call
(``deflate``) while the worker parses it; a test report, which is parsed whole,
is parsed while the upload thread flushes the compressor and the object.

A hand-over costs about 30 µs of CPU per upload, so content is summarised
inline until its bytes reach :data:`SUMMARY_THREAD_BYTES`; then the same
:class:`~..content.summariser.Summariser`, with its state so far, moves to a
worker, which is fed the following chunks in order through a bounded queue
(memory stays at a few chunks): the summary is the one the inline path gives.
When every worker is busy (many uploads at once) an upload summarises inline.

Nothing here fails an upload: a parser error is the summariser's own ``(None,
reason)``, and anything else going wrong on the worker gives ``(None, reason)``
too. Leaving the ``with`` block, however the upload ended, stops the worker's
part and waits until it has: no summary keeps running, or keeps chunks alive,
after its upload is over.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Final

from ..content.summariser import Summariser
from ..content.summary import Summary

__all__ = ["SUMMARY_THREAD_BYTES", "SummaryTap"]

log = logging.getLogger("necrocode.artifact_store.content")

#: Content whose bytes reach this is summarised by a worker thread.
SUMMARY_THREAD_BYTES = 64 * 1024
#: Chunks queued for a worker at most (each up to ``CHUNK_SIZE``).
QUEUE_CHUNKS = 4
#: Why an upload that ended early has no summary (never stored: it has no record).
ABANDONED = "the upload ended before its content did"

_Outcome = tuple[Summary | None, str | None]


class _Mark:
    """A queue item that ends a worker's job."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_FINISH: Final = _Mark("finish")  # the content is complete: summarise it
_ABANDON: Final = _Mark("abandon")  # the upload failed: stop


def _work(summariser: Summariser, inbox: queue.Queue[bytes | _Mark]) -> _Outcome:
    """Feed queued chunks to ``summariser`` up to a mark; its outcome at ``_FINISH``.

    Always drains the queue up to the mark, so the upload thread never waits on a
    full queue that nobody empties.
    """
    failure: str | None = None
    while True:
        item = inbox.get()
        if isinstance(item, _Mark):
            break
        if failure is None:
            try:
                summariser.feed(item)
            except Exception as exc:  # feed() catches its parsers' errors: a last guard
                failure = f"summariser failed: {type(exc).__name__}: {exc}"
    if item is _ABANDON:
        return None, ABANDONED
    if failure is not None:
        return None, failure
    return summariser.finish()


class _Pool:
    """The process's summary workers, started on first use.

    At most :attr:`WORKERS` uploads are summarised on threads at once; another
    one gets no worker and summarises inline. Shut down before ``fork()`` (and
    started again when next needed), so no child inherits idle threads.
    """

    #: Parsing holds the GIL: more workers than cores could only queue up.
    WORKERS = max(1, min(4, os.cpu_count() or 1))

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.running = 0

    def start(
        self, summariser: Summariser, inbox: queue.Queue[bytes | _Mark]
    ) -> Future[_Outcome] | None:
        """Run ``summariser`` on a worker fed by ``inbox``; ``None`` if none is free."""
        with self._lock:
            if self.running >= self.WORKERS:
                return None
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.WORKERS, "necrocode-summary")
            self.running += 1
            try:
                return self._executor.submit(self._job, summariser, inbox)
            except BaseException:
                self.running -= 1
                raise

    def _job(self, summariser: Summariser, inbox: queue.Queue[bytes | _Mark]) -> _Outcome:
        try:
            return _work(summariser, inbox)
        finally:  # before the future is resolved: a waiter sees the worker free
            with self._lock:
                self.running -= 1

    def shutdown(self) -> None:
        """Stop the threads (they start again when next needed)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def forget(self) -> None:
        """In a forked child: drop the parent's pool, whose threads do not exist here."""
        self._lock = threading.Lock()
        self._executor = None
        self.running = 0


POOL = _Pool()
os.register_at_fork(before=POOL.shutdown, after_in_child=POOL.forget)


class SummaryTap:
    """One upload's summary (see the module docstring); ``None``: no summary."""

    def __init__(self, artifact_type: str | None, *, thread_bytes: int | None = None) -> None:
        self.summariser = Summariser(artifact_type) if artifact_type is not None else None
        self._thread_bytes = SUMMARY_THREAD_BYTES if thread_bytes is None else thread_bytes
        self._seen = 0
        self._inbox: queue.Queue[bytes | _Mark] | None = None  # while a worker is fed
        self._future: Future[_Outcome] | None = None
        self._outcome: _Outcome | None = None

    @property
    def threaded(self) -> bool:
        """Whether a worker took the summary over."""
        return self._future is not None

    def __enter__(self) -> SummaryTap:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def tap(self, chunks: Iterable[bytes]) -> Iterable[bytes]:
        """``chunks`` unchanged, each handed to the summariser as it passes."""
        return chunks if self.summariser is None else self._tapped(chunks)

    def _tapped(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        iterator = iter(chunks)
        for chunk in iterator:
            self._feed(chunk)
            if self._inbox is None:
                yield chunk
                continue
            # On a worker: read one chunk ahead, so that the worker learns where the
            # content ends before the upload thread compresses the last chunk, and
            # can finish (a test report is parsed whole) beside that.
            held = chunk
            for following in iterator:
                self._feed(following)
                yield held
                held = following
            self._end(_FINISH)
            yield held
            return

    def _feed(self, chunk: bytes) -> None:
        assert self.summariser is not None
        if self._inbox is not None:
            self._inbox.put(chunk)  # waits while the worker is QUEUE_CHUNKS behind
            return
        if self._future is None and self._outcome is None:
            self._seen += len(chunk)
            if self._seen >= self._thread_bytes:
                inbox: queue.Queue[bytes | _Mark] = queue.Queue(QUEUE_CHUNKS)
                self._future = POOL.start(self.summariser, inbox)
                if self._future is not None:
                    self._inbox = inbox
                    inbox.put(chunk)
                    return
        self.summariser.feed(chunk)

    def _end(self, mark: _Mark) -> None:
        """Queue ``mark`` for the worker, if it is being fed."""
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.put(mark)

    def finish(self) -> _Outcome:
        """The summary of everything tapped, or ``None`` and why. Never raises."""
        if self._outcome is None:
            if self.summariser is None:
                self._outcome = (None, None)
            elif self._future is None:
                self._outcome = self.summariser.finish()
            else:
                self._end(_FINISH)
                self._outcome = self._result(self._future)
        return self._outcome

    def close(self) -> None:
        """Stop the worker's part, if any, and wait for it (an upload that ended early:
        its summary is dropped). Idempotent."""
        future = self._future
        if future is None:
            return
        self._end(_ABANDON)  # nothing to queue once the content was complete
        outcome = self._result(future)
        if self._outcome is None:
            self._outcome = outcome

    def _result(self, future: Future[_Outcome]) -> _Outcome:
        try:
            return future.result()
        except Exception as exc:  # the worker must never fail the upload
            log.warning("summary worker of a %s failed: %r", self._kind, exc)
            return None, f"summariser failed: {type(exc).__name__}: {exc}"

    @property
    def _kind(self) -> str:
        return self.summariser.kind if self.summariser is not None else "-"
