"""One retry policy for every backend call (SPEC 15.1, 15.4; DESIGN invariant 6).

Transient failures — a :class:`StorageError` with ``retryable=True`` (connection
refused or reset, timeouts, HTTP 429/500/502/503/504), or a raw
``ConnectionError``/``TimeoutError`` a backend failed to map — are tried again
up to ``attempts`` times in all, with exponential backoff and jitter
(``base * 2**n`` plus up to ``base`` of random jitter, capped; tenacity's
``wait_exponential_jitter``, see :attr:`RetryPolicy.wait`). Everything else
(not found, permission, quota, integrity, bad input, a lost create-if-absent
race) fails at once. Each retry and each
final failure is logged with the operation, the key and the attempt number.

The policy is applied in exactly one place, :class:`RetryingBackend`, which
wraps every configured backend; the SDKs' own retries are turned down to one
attempt so tries are never multiplied.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

import tenacity

from ..exceptions import ArtifactStoreError, StorageError
from .base import (
    CHUNK_SIZE,
    MiB,
    ObjectExistsError,
    ObjectInfo,
    ReadStream,
    RecordWrite,
    StagedObject,
    StorageBackend,
    WriteSource,
    iter_source,
)

if TYPE_CHECKING:
    from ..config import ArtifactStoreConfig

__all__ = ["ReplayableSource", "RetryPolicy", "RetryingBackend", "is_transient"]

log = logging.getLogger("necrocode.artifact_store.backends.retry")
T = TypeVar("T")

DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_BASE = 0.2
DEFAULT_BACKOFF_MAX = 5.0
#: Upload bytes from a one-shot stream are kept in memory up to this, then in a temp file,
#: so that a retried upload can send them again.
SPOOL_MEMORY_LIMIT = 8 * MiB


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth trying again."""
    if isinstance(exc, StorageError):
        return exc.retryable
    if isinstance(exc, ArtifactStoreError):
        return False  # e.g. LockTimeoutError is a TimeoutError, but not a network one
    return isinstance(exc, ConnectionError | TimeoutError)


class RetryPolicy:
    """Try an operation up to ``attempts`` times while it fails transiently.

    ``sleep`` is injectable so tests can record the waits instead of waiting.
    """

    def __init__(
        self,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        *,
        jitter: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.attempts = attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.sleep = sleep
        #: The wait before each retry: ``base * 2**(n-1)`` (n = 1 for the first retry),
        #: plus up to ``base`` of random jitter so that many clients failing together
        #: do not come back together, capped at ``backoff_max``.
        self.wait: tenacity.wait.wait_base = (
            tenacity.wait_exponential_jitter(
                multiplier=backoff_base, max=backoff_max, jitter=backoff_base
            )
            if jitter
            else tenacity.wait_exponential(multiplier=backoff_base, max=backoff_max)
        )

    @classmethod
    def from_config(cls, config: ArtifactStoreConfig) -> RetryPolicy:
        """The policy the configuration's ``retry_*`` settings describe."""
        return cls(config.retry_attempts, config.retry_backoff_base, config.retry_backoff_max)

    def call(self, operation: str, key: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the policy; ``operation`` and ``key`` are for the log.

        When the attempts run out the last error is raised again as a
        ``StorageError`` (``retryable=False``: this layer already retried) with
        the original chained as its cause. Permanent errors pass unchanged.
        """
        # Fast path: the first try runs bare; tenacity's machinery (tens of
        # microseconds a call) is only set up once something failed transiently.
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            first_failure: Exception | None = exc
        return self._retry(operation, key, fn, first_failure)

    def _retry(
        self, operation: str, key: str, fn: Callable[[], T], first_failure: Exception | None
    ) -> T:
        """Continue under tenacity after the first try failed with ``first_failure``."""

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s %s: attempt %d of %d failed (%s: %s); retrying in %.2fs",
                operation,
                key,
                state.attempt_number,
                self.attempts,
                type(exc).__name__,
                exc,
                wait,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self.wait,
            retry=tenacity.retry_if_exception(is_transient),
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        attempt = 0

        def counted() -> T:
            nonlocal attempt, first_failure
            attempt += 1
            if first_failure is not None:  # attempt 1 already ran, in call()
                failure, first_failure = first_failure, None
                raise failure
            return fn()

        try:
            return retrying(counted)
        except Exception as exc:
            if not is_transient(exc):
                raise
            # WARNING, not ERROR: the error itself is logged once, by whoever handles it
            # (the store's facade logs every failed operation).
            log.warning(
                "%s %s: giving up after attempt %d of %d: %s: %s",
                operation,
                key,
                attempt,
                self.attempts,
                type(exc).__name__,
                exc,
            )
            raise StorageError(
                f"{operation} {key} failed after {attempt} attempts: {exc}", key=key
            ) from exc


class ReplayableSource:
    """Upload data that can be sent again from the start for a retried upload.

    Bytes and seekable files are replayed directly; a one-shot stream or
    iterator is copied, as it is consumed, into a spool (memory, then a
    temporary file past :data:`SPOOL_MEMORY_LIMIT`), so memory stays bounded.
    Without ``spool`` a one-shot source can be sent once only: a second
    :meth:`chunks` raises a (permanent) ``StorageError``.
    """

    def __init__(self, data: WriteSource, *, spool: bool = True) -> None:
        self._data = data
        self._once: Iterator[bytes] | None = None
        self._sent = False
        self._file: BinaryIO | None = None
        self._start = 0
        self._spool: IO[bytes] | None = None
        self._rest: Iterator[bytes] | None = None
        if isinstance(data, bytes | bytearray | memoryview):
            return
        seekable = getattr(data, "seekable", None)
        if callable(seekable) and seekable():
            self._file = cast("BinaryIO", data)
            self._start = self._file.tell()
            return
        if not spool:
            self._once = iter_source(data)
            return
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_LIMIT)  # noqa: SIM115
        self._rest = iter_source(data)

    def chunks(self) -> Iterator[bytes]:
        """The data from the beginning, every time it is called."""
        if isinstance(self._data, bytes | bytearray | memoryview):
            yield from iter_source(self._data)
            return
        if self._file is not None:
            self._file.seek(self._start)
            yield from iter_source(self._file)
            return
        if self._once is not None:
            if self._sent:
                raise StorageError("a one-shot upload source cannot be sent a second time")
            self._sent = True
            yield from self._once
            return
        assert self._spool is not None and self._rest is not None
        self._spool.seek(0)
        while chunk := self._spool.read(CHUNK_SIZE):
            yield chunk
        for chunk in self._rest:
            self._spool.seek(0, 2)
            self._spool.write(chunk)
            yield chunk

    def close(self) -> None:
        """Drop the spool."""
        if self._spool is not None:
            self._spool.close()


def _same_content(stream: ReadStream, chunks: Iterable[bytes]) -> bool:
    """Whether ``stream`` holds exactly the bytes of ``chunks`` (compared chunk by chunk)."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        while pending:
            got = stream.read(len(pending))
            if not got or pending[: len(got)] != got:
                return False
            pending = pending[len(got) :]
    return stream.read(1) == b""


class RetryingBackend(StorageBackend):
    """Apply a :class:`RetryPolicy` to every call of another backend.

    ``create_backend`` wraps every configured backend in one of these; a
    backend injected with ``ArtifactStore(backend=...)`` is used as given (wrap
    it yourself to get retries).
    """

    def __init__(self, inner: StorageBackend, policy: RetryPolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.name = inner.name
        self.capabilities = inner.capabilities

    @property
    def root_uri(self) -> str:
        return self.inner.root_uri

    def upload(self, key: str, data: WriteSource, *, if_absent: bool = False) -> int:
        return self._write(
            key, data, if_absent, lambda chunks: self.inner.upload(key, chunks, if_absent=if_absent)
        )

    def stage(self, key: str, data: WriteSource) -> StagedObject:
        staged: list[StagedObject] = []

        def send(chunks: Iterator[bytes]) -> int:
            staged.append(self.inner.stage(key, chunks))
            return staged[-1].size

        self._write(key, data, False, send)
        return staged[-1]

    def upload_after(
        self, staged: StagedObject, key: str, data: WriteSource, *, if_absent: bool = False
    ) -> int:
        return self._write(
            key,
            data,
            if_absent,
            lambda chunks: self.inner.upload_after(staged, key, chunks, if_absent=if_absent),
        )

    def upload_after_many(self, writes: Sequence[RecordWrite]) -> list[int | ArtifactStoreError]:
        """One batch where the backend never fails transiently; else each write retried."""
        if not self.inner.capabilities.transient_failures:
            return self.inner.upload_after_many(writes)
        return super().upload_after_many(writes)

    def _write(
        self, key: str, data: WriteSource, if_absent: bool, send: Callable[[Iterator[bytes]], int]
    ) -> int:
        """Run ``send`` over the bytes of ``data`` under the policy, replaying them per try."""
        source = ReplayableSource(data, spool=self.inner.capabilities.transient_failures)
        tries = 0

        def attempt() -> int:
            nonlocal tries
            tries += 1
            try:
                return send(source.chunks())
            except ObjectExistsError:
                # A retried create-if-absent can find the object its own earlier try
                # wrote before the connection failed: then the write did happen.
                if if_absent and tries > 1 and self._holds(key, source):
                    log.info("upload %s: an earlier attempt had already stored it", key)
                    return self.inner.get_size(key)
                raise

        try:
            return self.policy.call("upload", key, attempt)
        finally:
            source.close()

    def _holds(self, key: str, source: ReplayableSource) -> bool:
        try:
            with self.inner.open_read(key) as stream:
                return _same_content(stream, source.chunks())
        except ArtifactStoreError:
            return False

    def open_read(self, key: str) -> ReadStream:
        first = self.policy.call("open_read", key, lambda: self.inner.open_read(key))
        if not self.inner.capabilities.transient_failures:
            return first  # a local read is never cut off in a way worth resuming
        return _ResumingStream(self, key, first).stream()

    def delete(self, key: str) -> bool:
        """Delete with retries. If a try failed after the server acted on it, the
        next one finds nothing and this returns ``False``: the object is gone either way.
        """
        return self.policy.call("delete", key, lambda: self.inner.delete(key))

    def delete_many(self, keys: Sequence[str]) -> list[bool]:
        """The wrapped backend's batch delete, retried as a whole (see :meth:`delete`)."""
        batch = list(keys)
        if not batch:
            return []
        label = batch[0] if len(batch) == 1 else f"{batch[0]} (+{len(batch) - 1} more)"
        return self.policy.call("delete_many", label, lambda: self.inner.delete_many(batch))

    def exists(self, key: str) -> bool:
        return self.policy.call("exists", key, lambda: self.inner.exists(key))

    def get_size(self, key: str) -> int:
        return self.policy.call("get_size", key, lambda: self.inner.get_size(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self._resumed_listing("list", prefix, self.inner.list)

    def list_incomplete(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self._resumed_listing("list_incomplete", prefix, self.inner.list_incomplete)

    def list_with_incomplete(self, prefix: str = "") -> Iterator[tuple[ObjectInfo, bool]]:
        if not self.inner.capabilities.transient_failures:
            return self.inner.list_with_incomplete(prefix)  # a local walk is not cut off
        return super().list_with_incomplete(prefix)  # two listings, each resumable

    def _resumed_listing(
        self, operation: str, prefix: str, lister: Callable[[str], Iterator[ObjectInfo]]
    ) -> Iterator[ObjectInfo]:
        """A listing that, after a transient failure, starts again past the last key seen."""
        last: str | None = None
        pages: Iterator[ObjectInfo] | None = None

        def next_item() -> ObjectInfo | None:
            nonlocal pages
            try:
                if pages is None:
                    pages = lister(prefix)
                    for info in pages:
                        if last is None or info.key > last:
                            return info
                    return None
                return next(pages, None)
            except BaseException:
                pages = None
                raise

        while True:
            info = self.policy.call(operation, prefix or "/", next_item)
            if info is None:
                return
            last = info.key
            yield info

    def remove_incomplete(self, key: str) -> bool:
        return self.policy.call("remove_incomplete", key, lambda: self.inner.remove_incomplete(key))

    def list_escaping(self) -> Iterator[str]:
        return self.inner.list_escaping()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        """Anything else (e.g. ``FilesystemBackend.path_of``) is the wrapped backend's."""
        if name == "inner":  # not set yet: avoid recursing during construction or unpickling
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"RetryingBackend({self.inner!r})"


class _ResumingStream:
    """Reads that, after a transient failure, reopen the object where they stopped.

    A stream that ends before the size the backend announced is treated as
    cut, never as complete.
    """

    def __init__(self, owner: RetryingBackend, key: str, first: ReadStream) -> None:
        self._owner = owner
        self._key = key
        self._current: ReadStream | None = first
        self._size = first.size
        self._revision = first.revision
        self._offset = 0

    def stream(self) -> ReadStream:
        return ReadStream(
            self._read, self._close, size=self._size, key=self._key, revision=self._revision
        )

    def _read(self, count: int) -> bytes:
        return self._owner.policy.call("read", self._key, lambda: self._read_once(count))

    def _read_once(self, count: int) -> bytes:
        if self._current is None:
            self._current = self._owner.inner.open_read_from(
                self._key, self._offset, revision=self._revision
            )
        try:
            data = self._current.read(count)
            if not data and count > 0 and self._size is not None and self._offset < self._size:
                raise StorageError(
                    f"{self._key}: stream ended at byte {self._offset} of {self._size}",
                    key=self._key,
                    retryable=True,
                )
        except BaseException:
            self._drop()
            raise
        self._offset += len(data)
        return data

    def _drop(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            try:
                current.close()
            except Exception as exc:  # a broken connection may fail to close too
                log.debug("closing a failed stream of %s: %s", self._key, exc)

    def _close(self) -> None:
        self._drop()
