"""The process's summary worker processes (see :mod:`..content.worker`), started on use.

Public API::

    PROCESSES.acquire(limit=None) -> WorkerProcess | None   # a ready, idle worker, or None
    PROCESSES.release(worker)                     # its job is over (or it broke)
    PROCESSES.limit                               # workers at most on this machine (0: none)
    PROCESSES.shutdown()                          # stop them (they start again on use)
    WorkerProcess.send(op, payload) / .result(timeout) -> outcome   # raise WorkerBroken
    WorkerProcess.send_job(kind, content)         # START, the content and FINISH at once

A worker is started the first time an upload could use one and none is idle;
that upload does not wait for it (the interpreter takes tens of milliseconds to
start) but is summarised on a thread, and the worker serves the uploads after
it. There are workers only where there is a second core to run them on
(``os.sched_getaffinity``), at most :data:`MAX_PROCESSES` (or a store's
``summary_processes``, passed as ``limit``), and never in a child forked from
this process (it drops its parent's, unwaited). A worker that fails to start,
dies or answers garbage is dropped; after :data:`MAX_START_FAILURES` failed
starts the pool stops trying, so a machine where they cannot run pays for that
once.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import math
import mmap
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Final

from ..content.summary import Summary
from ..content.worker import (
    CHUNK,
    FINISH,
    HEADER_SIZE,
    READY,
    RESULT,
    START,
    frame_header,
    pack_shared,
    parse_header,
    unpack_outcome,
)

__all__ = [
    "MAX_PROCESSES",
    "PROCESSES",
    "RESULT_TIMEOUT",
    "WorkerBroken",
    "WorkerProcess",
]

log = logging.getLogger("necrocode.artifact_store.content")

#: Worker processes at most (no more than the cores the process may run on).
MAX_PROCESSES: Final = 4
#: Failed starts after which no worker is started again in this process.
MAX_START_FAILURES: Final = 3
#: Seconds a finished job's result may take before its worker is given up.
RESULT_TIMEOUT: Final = 120.0
#: Bytes a worker's pipe holds (Linux lets an unprivileged process ask for 1 MiB).
PIPE_BYTES: Final = 1024 * 1024
#: Bytes of a job's content passed through shared memory (the rest through the pipe).
#: Its pages are taken as a job first reaches them and kept for the next jobs.
SHARED_BYTES: Final = 4 * 1024 * 1024
#: Bytes asked of the worker's pipe at a time.
_READ_BYTES: Final = 64 * 1024
#: glibc's allocator gives a freed block of 128 KiB or more back to the system at
#: once, so each chunk a worker copies out of the shared memory (and each copy a
#: parser makes) faults its pages in afresh: ~0.3 ms a MiB here. A worker keeps
#: what it frees instead. Other
#: allocators ignore these; a value already in the environment is kept. It keeps
#: at most 32 MiB it does not use; blocks of 8 MiB or more (a big test report,
#: parsed whole) still come and go.
_MALLOC_SETTINGS: Final = {
    "MALLOC_MMAP_THRESHOLD_": str(8 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(32 * 1024 * 1024),
}
#: The folder the ``necrocode`` package is imported from, for the worker's path.
_IMPORT_ROOT = str(Path(__file__).resolve().parents[3])
_COMMAND = "from necrocode.artifact_store.content.worker import main; main()"

_Outcome = tuple[Summary | None, str | None]


class WorkerBroken(Exception):
    """A worker process died, timed out or broke the protocol: it is not used again."""


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _machine_limit() -> int:
    cores = _available_cores()
    return min(MAX_PROCESSES, cores) if cores >= 2 else 0


def _shared_memory(size: int) -> tuple[int, mmap.mmap] | None:
    """A shared memory file of ``size`` bytes (descriptor and mapping), or ``None``
    where there is none (``memfd_create`` is Linux's): the pipe carries everything."""
    create = getattr(os, "memfd_create", None)
    if create is None or size <= 0:
        return None
    try:
        descriptor: int = create("necrocode-summary", getattr(os, "MFD_CLOEXEC", 1))
    except OSError:
        return None
    try:
        os.ftruncate(descriptor, size)
        return descriptor, mmap.mmap(descriptor, size, mmap.MAP_SHARED)
    except OSError:
        os.close(descriptor)
        return None


class WorkerProcess:
    """One worker process, the two pipes to it and the shared memory it reads chunks
    from (see :mod:`..content.worker`)."""

    def __init__(self) -> None:
        environment = dict(os.environ)
        inherited = environment.get("PYTHONPATH")
        environment["PYTHONPATH"] = (
            _IMPORT_ROOT if not inherited else _IMPORT_ROOT + os.pathsep + inherited
        )
        for name, value in _MALLOC_SETTINGS.items():
            environment.setdefault(name, value)
        shared = _shared_memory(SHARED_BYTES)
        command = [sys.executable, "-c", _COMMAND]
        if shared is not None:
            command.append(str(shared[0]))
        try:
            self.popen = subprocess.Popen(  # our own interpreter and module
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                pass_fds=() if shared is None else (shared[0],),
                start_new_session=True,  # no terminal signals
                env=environment,
                bufsize=0,
            )
        except BaseException:
            if shared is not None:
                shared[1].close()
            raise
        finally:
            if shared is not None:
                os.close(shared[0])  # the child has its copy; the mapping stays
        self._shared = None if shared is None else shared[1]
        self._cursor = 0  # where the job's next chunk goes in the shared memory
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self._stdin: IO[bytes] = self.popen.stdin
        self._stdout: IO[bytes] = self.popen.stdout
        self._to = self._stdin.fileno()
        self._from = self._stdout.fileno()
        with contextlib.suppress(AttributeError, OSError):  # Linux only; a hint
            fcntl.fcntl(self._to, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._poller = select.poll()
        self._poller.register(self._from, select.POLLIN)
        self._unread = b""  # read from the pipe beyond what was asked for
        self.ready = False
        self.broken = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll_ready(self) -> bool:
        """Whether the worker has said it is ready (never waits). Raises
        :class:`WorkerBroken` if it ended instead."""
        if self.ready:
            return True
        if not self._readable(0):
            if self.popen.poll() is not None:
                raise WorkerBroken(f"the summary worker exited with {self.popen.returncode}")
            return False
        op, length = parse_header(self._read(HEADER_SIZE, time.monotonic() + RESULT_TIMEOUT))
        if op != READY or length:
            raise WorkerBroken("the summary worker did not start as expected")
        self.ready = True
        return True

    def send(self, op: int, payload: bytes = b"") -> None:
        """One frame to the worker (waits while its pipe is full); a ``CHUNK`` goes
        through the shared memory while the job's chunks fit there."""
        shared = self._shared
        if op == START:
            self._cursor = 0
        elif op == CHUNK and shared is not None and self._cursor + len(payload) <= len(shared):
            start = self._cursor
            self._cursor += len(payload)
            shared[start : self._cursor] = payload
            self._send_frame(pack_shared(start, len(payload)))
            return
        self._send_frame(frame_header(op, len(payload)), payload)

    def send_job(self, kind: bytes, content: bytes) -> None:
        """A whole job at once (``START``, the content, ``FINISH``): one write to the
        pipe when the content fits the shared memory."""
        shared = self._shared
        if shared is None or len(content) > len(shared):
            self.send(START, kind)
            for start in range(0, len(content), PIPE_BYTES):
                self.send(CHUNK, content[start : start + PIPE_BYTES])
            self.send(FINISH)
            return
        shared[0 : len(content)] = content
        self._cursor = len(content)
        frames = (frame_header(START, len(kind)), kind, pack_shared(0, len(content)))
        self._send_frame(b"".join(frames) + frame_header(FINISH, 0))

    def _send_frame(self, header: bytes, payload: bytes = b"") -> None:
        try:
            if len(payload) < 4096:
                self._write_all(header + payload)
            else:  # header and payload in one call, without copying the payload
                written = os.writev(self._to, (header, payload))
                if written < len(header):
                    self._write_all(header[written:])
                    written = len(header)
                if written - len(header) < len(payload):
                    self._write_all(memoryview(payload)[written - len(header) :])
        except OSError as exc:
            self.broken = True
            raise WorkerBroken(f"the summary worker went away: {exc}") from exc
        except BaseException:
            self.broken = True  # cut off inside a frame: the stream is out of step
            raise

    def _write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._to, view) :]

    def result(self, timeout: float = RESULT_TIMEOUT) -> _Outcome:
        """The answer to the job just finished."""
        deadline = time.monotonic() + timeout
        op, length = parse_header(self._read(HEADER_SIZE, deadline))
        if op != RESULT:
            raise WorkerBroken(f"the summary worker sent frame {op} instead of a result")
        answer = self._read(length, deadline)
        try:
            return unpack_outcome(answer)
        except (ValueError, TypeError, EOFError, IndexError) as exc:
            raise WorkerBroken(f"the summary worker's answer is malformed: {exc!r}") from exc

    def _readable(self, timeout: float) -> bool:
        """Whether the worker's pipe has data or has ended, waiting up to ``timeout``
        seconds (``poll``, not ``select``: a busy service's descriptors may pass 1024)."""
        return bool(self._poller.poll(max(0, math.ceil(timeout * 1000))))

    def _read(self, size: int, deadline: float) -> bytes:
        """``size`` bytes from the worker. The pipe is read in big gulps (an answer's
        header and body usually come in one), the rest kept for the next call."""
        while len(self._unread) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerBroken("the summary worker took too long to answer")
            if not self._readable(remaining):
                continue
            try:
                part = os.read(self._from, max(_READ_BYTES, size - len(self._unread)))
            except OSError as exc:
                raise WorkerBroken(f"the summary worker went away: {exc}") from exc
            if not part:
                raise WorkerBroken("the summary worker ended")
            self._unread += part
        data, self._unread = self._unread[:size], self._unread[size:]
        return data

    def stop(self, *, wait: float = 1.0) -> None:
        """End the worker: its input closes and it exits (killed if it does not)."""
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self.popen.wait(wait)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        with contextlib.suppress(OSError):
            self._stdout.close()
        self._unmap()

    def forget(self) -> None:
        """In a forked child: close this process's ends of the pipes and its mapping
        of the shared memory, and let the worker be (it is the parent's)."""
        for pipe in (self._stdin, self._stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        self._unmap()
        self.popen.returncode = 0  # not ours to wait for

    def _unmap(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            with contextlib.suppress(BufferError):  # a view still open: freed with it
                shared.close()


class _ProcessPool:
    """Idle and busy workers; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._failures = 0
        self._limit: int | None = None  # read from the machine on first use
        self._forgotten: list[WorkerProcess] = []  # a forked child's, kept unwaited

    @property
    def limit(self) -> int:
        if self._limit is None:
            self._limit = _machine_limit()
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        """For tests and embedders: at most ``value`` workers from now on."""
        self._limit = max(0, value)

    def acquire(self, limit: int | None = None) -> WorkerProcess | None:
        """An idle, ready worker, now busy; ``None`` if there is none (one is then
        started, if the limit allows, for later uploads). ``limit``: at most this
        many workers (and never more than :attr:`limit`)."""
        with self._lock:
            allowed = self.limit if limit is None else min(limit, self.limit)
            if allowed == 0 or self._failures >= MAX_START_FAILURES:
                return None
            starting = False
            for worker in list(self._idle):
                try:
                    ready = worker.poll_ready()
                except WorkerBroken as exc:
                    self._idle.remove(worker)
                    self._drop(worker, exc, starting=True)
                    continue
                if ready:
                    self._idle.remove(worker)
                    self._busy.add(worker)
                    return worker
                starting = True
            if (
                not starting
                and self._failures < MAX_START_FAILURES
                and len(self._idle) + len(self._busy) < allowed
            ):
                try:
                    self._idle.append(WorkerProcess())
                except OSError as exc:
                    self._failures += 1
                    log.warning("could not start a summary worker process: %s", exc)
            return None

    def release(self, worker: WorkerProcess) -> None:
        """``worker``'s job is over: idle again, or dropped if it broke."""
        with self._lock:
            self._busy.discard(worker)
            if worker.broken or self._limit == 0:
                self._drop(worker, None, starting=False)
            else:
                self._idle.append(worker)

    def _drop(self, worker: WorkerProcess, exc: WorkerBroken | None, *, starting: bool) -> None:
        if starting:
            self._failures += 1
        if exc is not None:
            log.warning("summary worker process %d dropped: %s", worker.pid, exc)
        worker.stop(wait=0.2)

    def shutdown(self) -> None:
        """Stop the idle workers (busy ones stop when released)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def forget(self) -> None:
        """In a forked child: drop the parent's workers, unwaited."""
        self._lock = threading.Lock()
        self._forgotten += [*self._idle, *self._busy]
        for worker in self._forgotten:
            worker.forget()
        self._idle, self._busy = [], set()


PROCESSES = _ProcessPool()
os.register_at_fork(after_in_child=PROCESSES.forget)
atexit.register(PROCESSES.shutdown)
