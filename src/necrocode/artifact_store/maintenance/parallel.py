"""A bounded worker pool for store-wide upkeep, with ordered, streaming results.

``verify_all``, ``cleanup_expired`` and ``export`` wait on the network (object
stores) or on the disk (cleanup's fsyncs), waits that release the GIL, so a few
threads keep the disk or the network busy while the caller's thread merges results.
Results come back in the order of the input, one at a time, while at most
``workers * (AHEAD + 1)`` items are in flight: memory stays flat however large the
store, and progress callbacks see the same sequence they would see without the pool.

A failure in one item is that item's :class:`Outcome`, never the end of the others.
When the consumer stops early (a progress callback raised, ``KeyboardInterrupt``),
items not started are cancelled and running ones are waited for before the exception
goes on: nothing keeps working after the call returns.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..backends.base import StorageBackend
from ..exceptions import ArtifactStoreError

__all__ = ["AHEAD", "Outcome", "maintenance_workers", "ordered_map"]

T = TypeVar("T")
R = TypeVar("R")

#: Items queued per worker beyond the one it runs: enough to never leave a worker idle
#: while the consumer merges, few enough that memory does not grow with the store.
AHEAD = 2
#: Local disks, for work that waits on the disk (deletions and their fsyncs): the
#: waits overlap. Reading and hashing small artifacts is Python-bound instead: there
#: threads mostly contend for the GIL (0.4-0.7x one item per hand-over); verify_all
#: hands over batches of 32 and counts as disk work (0.92-1.82x on 2 busy cores),
#: exports stay on one thread.
LOCAL_WORKERS = 4
#: Object stores: each call waits on a round trip, so more requests in flight pay.
REMOTE_WORKERS = 8


@dataclass(frozen=True)
class Outcome(Generic[T, R]):
    """What one item gave: its ``value``, or the ``error`` it raised (never both)."""

    item: T
    value: R | None = None
    error: ArtifactStoreError | None = None


def maintenance_workers(
    backend: StorageBackend, configured: int | None = None, *, waits_on_disk: bool = False
) -> int:
    """How many threads upkeep of ``backend`` uses: ``configured`` (the
    ``maintenance_workers`` setting) if given; else 8 on an object store, and on a local
    disk 4 for work that ``waits_on_disk`` (2 on one core), 1 for the rest.
    """
    if configured is not None:
        return configured
    if backend.capabilities.transient_failures:
        return REMOTE_WORKERS
    if waits_on_disk:
        return min(LOCAL_WORKERS, max(2, os.cpu_count() or 1))
    return 1


def ordered_map(
    work: Callable[[T], R], items: Iterable[T], workers: int, *, batch: int = 1
) -> Iterator[Outcome[T, R]]:
    """``work(item)`` for every item on ``workers`` threads, yielded in input order.

    ``items`` is consumed lazily (a backend listing streams). An
    :class:`ArtifactStoreError` from ``work`` becomes the item's ``Outcome.error``;
    anything else (a bug, ``MemoryError``) ends the iteration with that exception,
    after the items in flight have finished. ``batch`` items go to a thread at a
    time (cheap items: the hand-over costs more than one of them). ``workers <= 1``
    runs everything in the caller's thread, in the same order.
    """
    if workers <= 1:
        for item in items:
            yield _run(work, item)
        return
    source = iter(items)
    pending: deque[Future[list[Outcome[T, R]]]] = deque()
    limit = workers * (AHEAD + 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="necrocode-upkeep") as pool:
        try:
            while chunk := list(itertools.islice(source, batch)):
                pending.append(pool.submit(_run_all, work, chunk))
                if len(pending) >= limit:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            # Stopped early (or a worker hit a bug): drop what has not started; the
            # pool's exit then waits for the few items still running.
            for future in pending:
                future.cancel()


def _run_all(work: Callable[[T], R], chunk: list[T]) -> list[Outcome[T, R]]:
    return [_run(work, item) for item in chunk]


def _run(work: Callable[[T], R], item: T) -> Outcome[T, R]:
    try:
        return Outcome(item, value=work(item))
    except ArtifactStoreError as exc:
        return Outcome(item, error=exc)
