"""Reading every record of a bucket for a rebuild, many at a time.

One record is one GET; against an object store the latency of those GETs, not
the index, limits a rebuild. :func:`load_parallel` keeps ``workers`` GETs in
flight (the cloud clients are thread-safe) and yields the records in listing
order, with a bounded window so memory stays flat at any bucket size.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from ..exceptions import ArtifactNotFoundError, IntegrityError
from ..models import ArtifactMetadata
from ..naming import ArtifactKey

__all__ = ["REBUILD_WORKERS", "load_parallel"]

log = logging.getLogger(__name__)

#: GETs in flight during a rebuild (the S3 client keeps 10 connections per host).
REBUILD_WORKERS = 8
#: Records read ahead of the one being yielded, per worker.
WINDOW_PER_WORKER = 16


def load_parallel(
    versions: Iterable[tuple[ArtifactKey, int]],
    load: Callable[[ArtifactKey, int], ArtifactMetadata],
    workers: int | None = None,
) -> Iterator[ArtifactMetadata]:
    """``load(key, version)`` of every item, in order; vanished records are skipped and
    unreadable ones logged and skipped (as a sequential rebuild does). ``workers``
    defaults to :data:`REBUILD_WORKERS` (read at each call); 1 reads in this thread."""
    workers = REBUILD_WORKERS if workers is None else workers
    if workers <= 1:
        yield from _load_each(versions, load)
        return

    def read(key: ArtifactKey, version: int) -> ArtifactMetadata | None:
        return _read(load, key, version)

    window = max(1, workers) * WINDOW_PER_WORKER
    pending: collections.deque[Future[ArtifactMetadata | None]] = collections.deque()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rebuild") as pool:
        try:
            for key, version in versions:
                pending.append(pool.submit(read, key, version))
                while len(pending) >= window:
                    meta = pending.popleft().result()
                    if meta is not None:
                        yield meta
            while pending:
                meta = pending.popleft().result()
                if meta is not None:
                    yield meta
        finally:
            for future in pending:
                future.cancel()


def _read(
    load: Callable[[ArtifactKey, int], ArtifactMetadata], key: ArtifactKey, version: int
) -> ArtifactMetadata | None:
    try:
        return load(key, version)
    except ArtifactNotFoundError:
        return None  # deleted while we listed
    except IntegrityError as exc:
        log.error("skipping unreadable metadata record: %s", exc)
        return None


def _load_each(
    versions: Iterable[tuple[ArtifactKey, int]],
    load: Callable[[ArtifactKey, int], ArtifactMetadata],
) -> Iterator[ArtifactMetadata]:
    """:func:`load_parallel` in this thread (a local disk: threads only contend there)."""
    for key, version in versions:
        meta = _read(load, key, version)
        if meta is not None:
            yield meta
