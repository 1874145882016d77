"""Coordination of many hosts through the shared index's database.

* :class:`AdvisoryLocks`: the per-artifact write lock as a PostgreSQL session
  advisory lock, so writers of one artifact on different hosts exclude each
  other. Same semantics as the file locks: retried every ``retry_interval``
  until ``timeout``, then :class:`LockTimeoutError`; released by the server when
  the holder's connection dies (a killed host never leaves a lock behind). Each
  held lock keeps one connection of a separate small pool.
* :class:`ReservedQuota`: the exact global quota. An upload reserves its stored
  bytes chunk by chunk *before* they go to the backend, in a transaction that
  serialises on the usage row, so committed bytes plus every reservation never
  pass the quota, however many hosts race. The commit releases the reservation
  in the same transaction that adds the row (:meth:`PostgresIndex.put`); a
  failure releases it at once; a crashed host's reservation is swept by the next
  reservation once its lock session is gone, or after ``reservation_timeout``
  seconds without progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import psycopg
import psycopg_pool

from ..backends.base import SourceError
from ..exceptions import ArtifactStoreError, LockTimeoutError, StorageFullError
from .base import Meter
from .postgres import PostgresIndex, active_reservation

__all__ = ["AdvisoryLocks", "ReservedQuota", "advisory_key"]

#: Connections for held locks, per process (each held lock keeps one).
LOCK_POOL_SIZE = 32
#: Backend process id of the connection holding this thread's artifact lock: a
#: reservation names it, so it can be swept once that session is gone.
_holder_pid: ContextVar[int | None] = ContextVar("necrocode_lock_holder", default=None)


def advisory_key(root_uri: str, name: str) -> int:
    """The signed 64-bit advisory-lock key of artifact ``name`` of the store ``root_uri``."""
    digest = hashlib.sha256(f"{root_uri}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLocks:
    """Per-artifact locks shared by every host of the store."""

    def __init__(self, index: PostgresIndex, *, timeout: float, retry_interval: float) -> None:
        self.index = index
        self.timeout = timeout
        self.retry_interval = retry_interval
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._guard = threading.Lock()

    def _connections(self) -> psycopg_pool.ConnectionPool:
        with self._guard:
            if self._pool is None:
                self.index.pool()  # migrates and checks the store first
                self._pool = psycopg_pool.ConnectionPool(
                    self.index.url,
                    min_size=0,
                    max_size=LOCK_POOL_SIZE,
                    kwargs=self.index.connection_kwargs(),
                    timeout=self.index.connect_timeout,
                    open=False,
                    name="necrocode-locks",
                )
                self._pool.open(wait=False)
            return self._pool

    def close(self) -> None:
        """Close the lock connections (every lock held through them is released)."""
        with self._guard:
            if self._pool is not None:
                self._pool.close()
            self._pool = None

    def _acquire(self, name: str, timeout: float) -> tuple[Any, int] | None:
        """Lock ``name`` within ``timeout``: the connection and key, or ``None``."""
        key = advisory_key(self.index.root_uri, name)
        pool = self._connections()
        deadline = time.monotonic() + timeout
        conn = self._try_first(pool, key)
        if conn is not None:
            return conn, key
        conn = self._checkout(pool)
        try:
            while True:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                if row is not None and row[0]:
                    return conn, key
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pool.putconn(conn)
                    return None
                time.sleep(min(self.retry_interval, remaining))
        except psycopg.Error as exc:
            pool.putconn(conn)
            raise self.index.unavailable(exc) from exc

    def _checkout(self, pool: psycopg_pool.ConnectionPool) -> Any:
        try:
            return pool.getconn()
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise self.index.unavailable(exc, retryable=False) from exc

    def _try_first(self, pool: psycopg_pool.ConnectionPool, key: int) -> Any:
        """One try on a pooled connection (a free lock costs one round trip); a
        connection that went bad while idle (server restarted) is replaced once."""
        for attempt in range(2):
            conn = self._checkout(pool)
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            except psycopg.Error as exc:
                pool.putconn(conn)
                if attempt == 1:
                    raise self.index.unavailable(exc) from exc
                continue
            if row is not None and row[0]:
                return conn
            pool.putconn(conn)
            return None
        return None

    def _release(self, conn: Any, key: int) -> None:
        with contextlib.suppress(psycopg.Error):
            # A connection lost meanwhile took the lock with it.
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        self._connections().putconn(conn)

    @contextlib.contextmanager
    def hold(self, name: str, *, uri: str | None = None) -> Iterator[None]:
        """Hold the lock of ``name`` for the block (``LockTimeoutError`` after ``timeout``)."""
        started = time.monotonic()
        got = self._acquire(name, self.timeout)
        if got is None:
            waited = time.monotonic() - started
            raise LockTimeoutError(
                f"could not lock {uri or name}: another writer held it for the "
                f"{waited:.2f}s this writer waited (lock_timeout={self.timeout}s, "
                f"retried every {self.retry_interval}s)",
                uri=uri,
                lock_path=f"{self.index.describe()} advisory lock "
                f"{advisory_key(self.index.root_uri, name)}",
                waited=waited,
            )
        conn, key = got
        token = _holder_pid.set(conn.info.backend_pid)
        try:
            yield
        finally:
            _holder_pid.reset(token)
            self._release(conn, key)

    @contextlib.contextmanager
    def try_hold(self, name: str) -> Iterator[bool]:
        """Take the lock only if it is free right now."""
        got = self._acquire(name, 0)
        if got is None:
            yield False
            return
        conn, key = got
        try:
            yield True
        finally:
            self._release(conn, key)


class ReservedQuota:
    """The store's quota, enforced across hosts by reservations in the database."""

    def __init__(self, index: PostgresIndex, quota_bytes: int) -> None:
        self.index = index
        self.quota_bytes = quota_bytes

    @contextlib.contextmanager
    def reserving(self, uri: str, credit: int) -> Iterator[Meter]:
        """Yield a meter that reserves each chunk before passing it on; release the
        reservation when the block ends (the commit inside it already did, if any)."""
        state: dict[str, int] = {}
        holder = _holder_pid.get()

        def meter(chunks: Iterable[bytes]) -> Iterator[bytes]:
            for chunk in chunks:
                if chunk:
                    try:
                        self._reserve(state, uri, credit, len(chunk), holder)
                    except ArtifactStoreError as exc:
                        # Raised inside the upload's byte stream: as a SourceError, so
                        # the backend's retry policy never replays a stream cut here
                        # (it would store a truncated object); the facade re-raises
                        # the cause, typed (StorageFullError, IndexUnavailableError).
                        raise SourceError(str(exc)) from exc
                yield chunk

        # The commit inside the block (PostgresIndex.put) finds the reservation here,
        # whichever thread the backend consumed the chunks in.
        variable = active_reservation()
        token = variable.set(state)
        try:
            yield meter
        finally:
            variable.reset(token)
            if "id" in state:
                self._release(state["id"])

    def _reserve(
        self, state: dict[str, int], uri: str, credit: int, size: int, holder: int | None
    ) -> None:
        timeout = self.index.reservation_timeout

        def reserve(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                (used,) = conn.execute(
                    "SELECT size FROM usage_grand WHERE id = 1 FOR UPDATE"
                ).fetchone() or (0,)
                conn.execute(
                    "DELETE FROM reservations WHERE touched_at < now() - %s * interval '1 second'"
                    " OR holder_pid NOT IN (SELECT pid FROM pg_stat_activity)",
                    (timeout,),
                )
                if "id" not in state:
                    row = conn.execute(
                        "INSERT INTO reservations (uri, credit, holder_pid)"
                        " VALUES (%s, %s, COALESCE(%s, pg_backend_pid())) RETURNING id",
                        (uri, credit, holder),
                    ).fetchone()
                    assert row is not None
                    state["id"] = int(row[0])
                (promised,) = conn.execute(
                    "SELECT COALESCE(SUM(size - credit), 0) FROM reservations"
                ).fetchone() or (0,)
                after = int(used) + int(promised) + size
                if after > self.quota_bytes:
                    raise StorageFullError(
                        f"storage quota exceeded: storing {uri} would use {after} of "
                        f"{self.quota_bytes} bytes, counting the uploads in flight on every "
                        "host",
                        uri=uri,
                    )
                conn.execute(
                    "UPDATE reservations SET size = size + %s, touched_at = now() WHERE id = %s",
                    (size, state["id"]),
                )

        with self.index.connection() as conn:
            reserve(conn)

    def _release(self, reservation: int) -> None:
        with contextlib.suppress(Exception), self.index.connection() as conn:
            conn.execute("DELETE FROM reservations WHERE id = %s", (reservation,))
