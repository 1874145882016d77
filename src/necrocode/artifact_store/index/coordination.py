"""What writers of one store coordinate on besides the index rows: per-artifact locks
and quota reservations. The embedded index coordinates one host (kernel file locks,
a quota check before commit); the shared index coordinates every host
(:mod:`.pg_coordination`). :func:`coordination_for` picks the pair.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from .base import MetadataIndex, Meter
from .locking import LockManager

__all__ = ["ArtifactLocks", "LocalQuota", "QuotaGuard", "coordination_for"]

#: Wraps the stored bytes of an upload on their way to the backend.


class ArtifactLocks(Protocol):
    """Per-artifact write locks (:class:`~..locking.LockManager` and advisory locks)."""

    timeout: float
    retry_interval: float

    def hold(self, name: str, *, uri: str | None = None) -> AbstractContextManager[None]:
        """Hold the lock of ``name`` for a block; ``LockTimeoutError`` after ``timeout``."""
        ...

    def try_hold(self, name: str) -> AbstractContextManager[bool]:
        """Take the lock only if it is free; the block learns whether it got it."""
        ...


class QuotaGuard(Protocol):
    """Space for an upload in flight."""

    def reserving(self, uri: str, credit: int) -> AbstractContextManager[Meter]:
        """A block in which the upload of ``uri`` streams its stored bytes through the
        yielded meter; ``credit`` bytes (the versions it replaces) count as freed."""
        ...


class LocalQuota:
    """One host's quota: nothing reserved; the facade checks before commit."""

    @contextlib.contextmanager
    def reserving(self, uri: str, credit: int) -> Iterator[Meter]:
        """Yield a meter that lets the bytes pass untouched."""
        yield lambda chunks: chunks


def coordination_for(
    index: MetadataIndex,
    lock_dir: Path,
    *,
    lock_timeout: float,
    lock_retry_interval: float,
    quota_bytes: int | None,
) -> tuple[ArtifactLocks, QuotaGuard]:
    """The locks and the quota guard that go with ``index``."""
    if index.shared:
        from .pg_coordination import AdvisoryLocks, ReservedQuota  # noqa: PLC0415
        from .postgres import PostgresIndex  # noqa: PLC0415

        assert isinstance(index, PostgresIndex)
        locks = AdvisoryLocks(index, timeout=lock_timeout, retry_interval=lock_retry_interval)
        quota: QuotaGuard = (
            LocalQuota() if quota_bytes is None else ReservedQuota(index, quota_bytes)
        )
        return locks, quota
    manager = LockManager(lock_dir, timeout=lock_timeout, retry_interval=lock_retry_interval)
    return manager, LocalQuota()
