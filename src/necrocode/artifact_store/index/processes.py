"""Worker processes for the Python-bound part of upkeep on a local disk.

Reading, inflating and hashing small artifacts holds the GIL most of the time, so
threads of one process cannot use a second core (on a quiet 2-core machine two
threads verified *slower* than one). :func:`ordered_in_processes` runs the work in
child processes instead, each a fresh ``python -m
necrocode.artifact_store.index.processes`` (never a fork of the caller, which
may hold locks of its other threads, and never a re-import of the caller's main
script, as :mod:`multiprocessing`'s spawn would do).

Parts go to the workers in turn and their results come back in the order of the
input, one at a time, while at most ``workers * (AHEAD + 1)`` parts are in flight:
memory stays flat, and the caller sees the sequence a single pass would give. When
the caller stops early (an exception, a progress callback raising) the workers are
stopped and waited for before the exception goes on: nothing keeps running after
the call returns. Work run this way must only read.
"""

from __future__ import annotations

import importlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..backends.base import ObjectInfo, StorageBackend
from ..backends.filesystem import FilesystemBackend
from ..exceptions import ArtifactStoreError, StorageError

if TYPE_CHECKING:
    from .base import MetadataIndex

__all__ = [
    "LocalParts",
    "WorkerFailedError",
    "local_parts",
    "local_processes",
    "ordered_in_processes",
]

#: Parts queued per worker beyond the one it works on.
AHEAD = 2
#: Worker processes for Python-bound upkeep of a local disk, at most (one per core).
MAX_PROCESSES = 4

#: Below this many indexed artifacts (and top-level folders), starting worker processes
#: (~0.2 s) costs more than they save.
PROCESS_MIN_ARTIFACTS = 5000
PROCESS_MIN_FOLDERS = 100
#: Artifacts a worker process takes per hand-over (whole top-level folders of about
#: this many): large enough that the hand-over and the index page read beyond a part
#: cost little, small enough that a stopped pass ends soon.
PART_ARTIFACTS = 1500


@dataclass
class LocalParts:
    """A walk of a local store cut into parts for worker processes."""

    #: Absolute paths of the store's root and of its SQLite index file.
    root: str
    index_path: str
    processes: int
    #: Leftovers of interrupted writes in the root folder itself (never artifacts).
    root_leftovers: list[ObjectInfo]
    #: Lists of top-level folders, in walk order.
    parts: list[list[str]]


_LENGTH = struct.Struct("!Q")
#: The package folder's parent, put on the workers' import path.
_SOURCE_ROOT = str(Path(__file__).resolve().parents[3])


class WorkerFailedError(RuntimeError):
    """A worker process hit a bug (its traceback is the message) or ended abruptly."""


def local_processes(configured: int | None = None) -> int:
    """How many worker processes Python-bound upkeep of a local disk uses:
    ``configured`` (the ``maintenance_workers`` setting) if given, else one per core,
    at most :data:`MAX_PROCESSES`. 1 means none: the caller's thread does it all.
    """
    if configured is not None:
        return configured
    return max(1, min(MAX_PROCESSES, os.cpu_count() or 1))


def local_parts(
    backend: StorageBackend, index: MetadataIndex, configured: int | None
) -> LocalParts | None:
    """The walk of ``backend`` cut into parts, if upkeep runs in worker processes: a
    local disk (under its retry wrapper), an index in a local SQLite file (``index``
    has a ``path``; the workers read its rows, read-only), more than one process
    (:func:`local_processes`) and a store large enough to pay for them."""
    inner = getattr(backend, "inner", backend)
    path = getattr(index, "path", None)
    if not isinstance(inner, FilesystemBackend) or not isinstance(path, Path):
        return None
    processes = local_processes(configured)
    if processes <= 1 or not sys.executable:  # an embedded interpreter starts no workers
        return None
    try:
        indexed = int(index.count())
    except ArtifactStoreError:
        indexed = 0  # a damaged index: the number of folders decides
    root_files, folders = inner.split_listing()
    if len(folders) < 2 or (indexed < PROCESS_MIN_ARTIFACTS and len(folders) < PROCESS_MIN_FOLDERS):
        return None
    per_folder = max(1, indexed // len(folders))
    size = max(1, min(PART_ARTIFACTS // per_folder, len(folders) // (processes * 4)))
    return LocalParts(
        os.path.abspath(inner.root),
        os.path.abspath(path),
        processes,
        [info for info, tmp in root_files if tmp],
        [list(folders[i : i + size]) for i in range(0, len(folders), size)],
    )


def ordered_in_processes(
    start: str, work: str, start_args: tuple[Any, ...], parts: Iterable[Any], workers: int
) -> Iterator[Any]:
    """``work(part)`` of every part, in ``workers`` processes, yielded in input order.

    ``start`` and ``work`` name module-level functions (``"package.module:function"``);
    each worker calls ``start(*start_args)`` once, then ``work`` on the parts it is
    given. Arguments and results must pickle. An :class:`ArtifactStoreError` raised by
    ``work`` is raised here when its result is due; any other exception as a
    :class:`WorkerFailedError`.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SOURCE_ROOT, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", __name__, start, work]
    procs = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        for _ in range(max(1, workers))
    ]
    # One reader thread per worker takes its replies as they come, so a worker that is
    # ahead never waits for the caller to reach its turn (a reply is larger than a pipe).
    replies: dict[int, queue.SimpleQueue[tuple[str, Any]]] = {}
    readers = []
    try:
        for proc in procs:
            replies[proc.pid] = queue.SimpleQueue()
            reader = threading.Thread(
                target=_read_replies,
                args=(_pipe(proc.stdout), replies[proc.pid]),
                name="necrocode-upkeep-reader",
                daemon=True,
            )
            reader.start()
            readers.append(reader)
            _send(_pipe(proc.stdin), start_args)
        source = iter(parts)
        due: deque[subprocess.Popen[bytes]] = deque()
        turn = 0

        def hand_over() -> None:
            nonlocal turn
            for part in source:
                proc = procs[turn % len(procs)]
                turn += 1
                _send(_pipe(proc.stdin), part)
                due.append(proc)
                return

        for _ in range(len(procs) * (AHEAD + 1)):
            hand_over()
        while due:
            status, value = replies[due.popleft().pid].get()
            hand_over()  # before the caller's turn: the workers stay busy meanwhile
            if status == "error":
                raise value
            if status == "bug":
                raise WorkerFailedError(value)
            yield value
    finally:
        for proc in procs:
            # Done, or stopped early: the workers only read, so ending them is safe.
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join()
        for proc in procs:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


def _read_replies(stream: IO[bytes], into: queue.SimpleQueue[tuple[str, Any]]) -> None:
    """Move a worker's replies into ``into`` until it ends (then a last "bug" reply)."""
    while True:
        try:
            reply = _receive(stream)
        except (WorkerFailedError, OSError, ValueError) as exc:
            into.put(("bug", str(exc)))
            return
        into.put(reply)


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    assert stream is not None  # the workers are started with both pipes
    return stream


def _send(stream: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> tuple[str, Any]:
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise WorkerFailedError("a maintenance worker process ended abruptly")
    (length,) = _LENGTH.unpack(header)
    data = stream.read(length)
    if len(data) < length:
        raise WorkerFailedError("a maintenance worker process ended abruptly")
    result: tuple[str, Any] = pickle.loads(data)  # noqa: S301 - our own worker pipe
    return result


def _function(name: str) -> Callable[..., Any]:
    module, _, attribute = name.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), attribute)
    return found


def _serve(start: str, work: str, requests: IO[bytes], replies: IO[bytes]) -> None:
    """A worker's loop: start once, then one reply per part until the input ends."""
    header = requests.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return
    _function(start)(*pickle.loads(requests.read(_LENGTH.unpack(header)[0])))  # noqa: S301 - our own worker pipe
    run = _function(work)
    while len(header := requests.read(_LENGTH.size)) == _LENGTH.size:
        part = pickle.loads(requests.read(_LENGTH.unpack(header)[0]))  # noqa: S301 - our own worker pipe
        reply: tuple[str, object]
        try:
            reply = ("ok", run(part))
        except ArtifactStoreError as exc:
            try:
                pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own worker pipe
                reply = ("error", exc)
            except Exception:  # an error that does not pickle: its text, typed alike
                reply = ("error", StorageError(str(exc)))
        except Exception:
            reply = ("bug", traceback.format_exc())
        _send(replies, reply)


if __name__ == "__main__":
    # Replies get a descriptor of their own; anything printed goes to stderr instead.
    with os.fdopen(os.dup(sys.stdout.fileno()), "wb") as replies:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        _serve(sys.argv[1], sys.argv[2], sys.stdin.buffer, replies)
