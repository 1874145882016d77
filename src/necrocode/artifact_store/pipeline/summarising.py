"""An upload's content summary, parsed beside the upload by a worker process or thread.

Public API::

    with SummaryTap(artifact_type or None, processes=None) as summary:   # None: off
        summary.start_early(content)       # optional: in-memory content, to a worker now
        chunks = summary.tap(chunks)       # the same chunks, handed to the summariser
        ...                                # compress, hash and stage the chunks
        summary.finish() -> (Summary | None, reason | None)   # never raises
    SUMMARY_THREAD_BYTES                   # from this many bytes on, a worker parses

``processes``: the store's ``summary_processes`` (``None``: the machine's
default, ``0``: no worker process). From :data:`SUMMARY_THREAD_BYTES` on, an
idle, ready worker process (:mod:`.summary_processes`) takes the summary over:
the chunks summarised inline so far are sent to it again, then each chunk as it
passes, up to the summariser's caps. It parses with a GIL of its own, so the
upload thread only copies the chunks into its pipe. A worker that breaks gives
``(None, reason)`` (or, if it breaks while taking the job over, the inline
summariser just goes on). Without a ready worker process, a worker thread
takes over, as follows.

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
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Final

from ..content.summariser import MAX_TEST_REPORT_BYTES, Summariser
from ..content.summary import Summary
from ..content.worker import ABANDON, CHUNK, FINISH, START
from .summary_processes import PROCESSES, SHARED_BYTES, WorkerBroken, WorkerProcess

__all__ = ["EARLY_BYTES", "SUMMARY_THREAD_BYTES", "SummaryTap"]

log = logging.getLogger("necrocode.artifact_store.content")

#: Content whose bytes reach this is summarised by a worker thread.
SUMMARY_THREAD_BYTES = 64 * 1024
#: In-memory content from this size on goes to an idle worker process whole when
#: its upload starts (:meth:`SummaryTap.start_early`): the worker has the upload's
#: lock, versioning and staging to parse in, so smaller content is worth a process.
EARLY_BYTES = 8 * 1024
#: Chunks queued for a worker at most (each up to ``CHUNK_SIZE``).
QUEUE_CHUNKS = 4
#: Bytes of content read ahead of the upload while a worker process summarises it:
#: it can then parse them all while the upload compresses them.
READ_AHEAD_BYTES = 4 * 1024 * 1024
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

    def __init__(
        self,
        artifact_type: str | None,
        *,
        thread_bytes: int | None = None,
        processes: int | None = None,
    ) -> None:
        self.summariser = Summariser(artifact_type) if artifact_type is not None else None
        self._thread_bytes = SUMMARY_THREAD_BYTES if thread_bytes is None else thread_bytes
        self._seen = 0
        self._inbox: queue.Queue[bytes | _Mark] | None = None  # while a worker is fed
        self._future: Future[_Outcome] | None = None
        self._outcome: _Outcome | None = None
        # A worker process: the chunks fed inline so far (re-sent to it when it takes
        # over), then the process itself while it is fed, and what it was sent.
        self._process_limit = processes
        self._processes = self.summariser is not None and processes != 0 and PROCESSES.limit > 0
        self._held: list[bytes] = []
        self._process: WorkerProcess | None = None
        self._sent = 0
        self._send_limit = 0
        self._finish_sent = False
        self._early = False  # the whole content went to the worker at once
        self._process_failure: str | None = None

    @property
    def threaded(self) -> bool:
        """Whether a worker thread took the summary over."""
        return self._future is not None

    @property
    def in_process(self) -> bool:
        """Whether a worker process took the summary over."""
        return self._process is not None or self._finish_sent

    def __enter__(self) -> SummaryTap:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start_early(self, content: bytes) -> bool:
        """Give the whole of ``content``, which is in memory, to an idle worker process
        now, before the upload locks, versions and streams it: the worker parses
        while the upload does that, and :meth:`tap` then only passes the chunks on.
        ``False`` (nothing done: the chunks are tapped as usual) for content outside
        ``EARLY_BYTES`` to ``SHARED_BYTES``, or with no worker process idle."""
        if (
            self.summariser is None
            or not self._processes
            or self._process is not None
            or self._seen
            or not EARLY_BYTES <= len(content) <= SHARED_BYTES
        ):
            return False
        worker = PROCESSES.acquire(self._process_limit)
        if worker is None:
            return False
        try:
            worker.send_job(self.summariser.kind.encode(), content)
        except WorkerBroken as exc:
            log.warning("summary worker process failed at the start of a job: %s", exc)
            worker.broken = True
            PROCESSES.release(worker)
            return False
        self._process = worker
        self._finish_sent = True
        self._early = True
        return True

    def tap(self, chunks: Iterable[bytes]) -> Iterable[bytes]:
        """``chunks`` unchanged, each handed to the summariser as it passes (unless the
        content went to a worker whole, see :meth:`start_early`)."""
        return chunks if self.summariser is None or self._early else self._tapped(chunks)

    def _tapped(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        iterator = iter(chunks)
        for chunk in iterator:
            self._feed(chunk)
            if self._inbox is None and self._process is None:
                yield chunk
                continue
            # On a worker: read ahead, so that the worker learns where the content
            # ends before the upload thread compresses the last chunks, and can
            # finish (a test report is parsed whole) beside that. A thread, fed
            # through a bounded queue, is one chunk ahead; a process, which copies
            # what it is sent, up to READ_AHEAD_BYTES.
            budget = READ_AHEAD_BYTES if self._process is not None else 0
            held: deque[bytes] = deque((chunk,))
            held_bytes = len(chunk)
            for following in iterator:
                self._feed(following)
                held.append(following)
                held_bytes += len(following)
                while held_bytes > budget and len(held) > 1:
                    passed = held.popleft()
                    held_bytes -= len(passed)
                    yield passed
            self._end(_FINISH)
            while held:
                yield held.popleft()
            return

    def _feed(self, chunk: bytes) -> None:
        assert self.summariser is not None
        if self.summariser.done:
            # Capped or unparseable: the rest of the content changes nothing. (Read
            # while a worker may set it; it only ever turns True, and a chunk fed
            # after that is ignored by the summariser anyway.)
            return
        if self._inbox is not None:
            self._inbox.put(chunk)  # waits while the worker is QUEUE_CHUNKS behind
            return
        if self._process is not None:
            self._send(chunk)
            return
        if self._process_failure is not None:
            return  # the worker process died with part of the content: no summary
        if self._future is None and self._outcome is None:
            self._seen += len(chunk)
            if self._seen >= self._thread_bytes:
                if self._processes and self._hand_to_process(chunk):
                    return
                inbox: queue.Queue[bytes | _Mark] = queue.Queue(QUEUE_CHUNKS)
                self._future = POOL.start(self.summariser, inbox)
                if self._future is not None:
                    self._inbox = inbox
                    self._held = []
                    inbox.put(chunk)
                    return
            elif self._processes:
                self._held.append(chunk)  # immutable bytes: a reference, not a copy
        self.summariser.feed(chunk)

    def _hand_to_process(self, chunk: bytes) -> bool:
        """Give the summary to a worker process from here on: ``False`` (and the
        inline summariser goes on) if none is ready or it broke at once."""
        assert self.summariser is not None
        worker = PROCESSES.acquire(self._process_limit)
        if worker is None:
            return False
        held, self._held = self._held, []
        kind = self.summariser.kind
        # Only this many bytes can change the outcome (the summariser's caps): the
        # rest of a huge upload is not copied into the pipe for nothing.
        limit = MAX_TEST_REPORT_BYTES + 1 if kind == "test" else self.summariser.max_bytes
        self._send_limit = limit
        self._process = worker
        try:
            worker.send(START, kind.encode())
            for earlier in held:
                self._send_checked(earlier)
            self._send_checked(chunk)
        except WorkerBroken as exc:
            # The inline summariser has had every chunk but this one: it goes on.
            log.warning("summary worker process failed at the start of a job: %s", exc)
            self._release(broken=True)
            return False
        return True

    def _send(self, chunk: bytes) -> None:
        try:
            self._send_checked(chunk)
        except WorkerBroken as exc:
            self._process_failure = f"summary worker process failed: {exc}"
            self._release(broken=True)

    def _send_checked(self, chunk: bytes) -> None:
        assert self._process is not None
        if self._sent < self._send_limit:
            self._process.send(CHUNK, chunk)
            self._sent += len(chunk)

    def _release(self, *, broken: bool = False) -> None:
        worker, self._process = self._process, None
        if worker is not None:
            worker.broken = worker.broken or broken
            PROCESSES.release(worker)

    def _end(self, mark: _Mark) -> None:
        """Queue ``mark`` for the worker, if it is being fed (a worker process is sent
        ``FINISH``, or ``ABANDON`` if it is not finishing)."""
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.put(mark)
        if self._process is not None and not self._finish_sent:
            try:
                self._process.send(FINISH if mark is _FINISH else ABANDON)
            except WorkerBroken as exc:
                self._process_failure = f"summary worker process failed: {exc}"
                self._release(broken=True)
                return
            if mark is _FINISH:
                self._finish_sent = True
            else:
                self._release()

    def _process_result(self) -> _Outcome:
        """The worker process's answer to the job it was sent ``FINISH`` for."""
        assert self._process is not None
        try:
            outcome = self._process.result()
        except WorkerBroken as exc:
            self._release(broken=True)
            return None, f"summary worker process failed: {exc}"
        self._release()
        return outcome

    def finish(self) -> _Outcome:
        """The summary of everything tapped, or ``None`` and why. Never raises."""
        if self._outcome is None:
            if self.summariser is None:
                self._outcome = (None, None)
            elif self._process_failure is not None:
                self._outcome = (None, self._process_failure)
            elif self._process is not None:
                self._end(_FINISH)
                if self._process_failure is not None:
                    self._outcome = (None, self._process_failure)
                else:
                    self._outcome = self._process_result()
            elif self._future is None:
                self._outcome = self.summariser.finish()
            else:
                self._end(_FINISH)
                self._outcome = self._result(self._future)
        return self._outcome

    def close(self) -> None:
        """Stop the worker's part, if any, and wait for it (an upload that ended early:
        its summary is dropped). Idempotent."""
        self._held = []
        if self._process is not None:
            if self._finish_sent:
                outcome = self._process_result()  # read, so the next job's answer is next
                if self._outcome is None:
                    self._outcome = outcome
            else:
                self._end(_ABANDON)
                if self._outcome is None:
                    self._outcome = (None, ABANDONED)
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
