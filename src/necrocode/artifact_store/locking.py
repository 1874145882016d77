"""Per-artifact write locks on local lock files (the ``filelock`` package).

Writers of one artifact serialise on its lock; writers of different artifacts
use different lock files and never wait for each other; readers take no lock.
The locks are ``flock(2)`` locks: the kernel releases them when the holder dies,
so a lock file left by a killed process never blocks a later writer. Lock files
are kept after release on purpose: deleting them lets two writers lock two
different inodes of "the same" file (https://github.com/tox-dev/filelock/issues/31).
"""

from __future__ import annotations

import builtins
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from .exceptions import LockTimeoutError, PermissionError, StorageError

__all__ = ["LockManager"]


class LockManager:
    """Hands out the lock of an artifact, identified by its logical path."""

    def __init__(self, lock_dir: Path, *, timeout: float = 30.0, retry_interval: float = 0.05):
        self.lock_dir = lock_dir
        self.timeout = timeout
        self.retry_interval = retry_interval

    def path_for(self, name: str) -> Path:
        """The lock file of ``name``, spread over 256 sub-folders."""
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
        return self.lock_dir / digest[:2] / f"{digest[2:26]}.lock"

    def _file_lock(self, name: str, timeout: float) -> filelock.FileLock:
        path = self.path_for(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _os_error(exc, f"cannot create lock folder {path.parent}") from exc
        return filelock.FileLock(
            path,
            timeout=timeout,
            poll_interval=self.retry_interval,
            thread_local=False,
            preserve_lock_file=True,
            fallback_to_soft=False,
        )

    @contextmanager
    def hold(self, name: str, *, uri: str | None = None) -> Iterator[None]:
        """Hold the lock of ``name`` for the ``with`` block.

        Waits up to ``lock_timeout`` seconds, retrying every
        ``lock_retry_interval``; raises :class:`LockTimeoutError` naming the
        artifact and how long it waited.
        """
        lock = self._file_lock(name, self.timeout)
        started = time.monotonic()
        try:
            lock.acquire()
        except filelock.Timeout:
            waited = time.monotonic() - started
            raise LockTimeoutError(
                f"could not lock {uri or name}: another writer held it for the "
                f"{waited:.2f}s this writer waited (lock_timeout={self.timeout}s, "
                f"retried every {self.retry_interval}s)",
                uri=uri,
                lock_path=str(lock.lock_file),
                waited=waited,
            ) from None
        except OSError as exc:
            raise _os_error(exc, f"cannot open lock file {lock.lock_file}") from exc
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def try_hold(self, name: str) -> Iterator[bool]:
        """Take the lock only if it is free: ``with locks.try_hold(n) as got: ...``."""
        lock = self._file_lock(name, 0)
        try:
            lock.acquire()
        except filelock.Timeout:
            yield False
            return
        except OSError as exc:
            raise _os_error(exc, f"cannot open lock file {lock.lock_file}") from exc
        try:
            yield True
        finally:
            lock.release()


def _os_error(exc: OSError, message: str) -> StorageError:
    if isinstance(exc, builtins.PermissionError):
        return PermissionError(f"{message}: {exc.strerror or exc}")
    return StorageError(f"{message}: {exc.strerror or exc}")
