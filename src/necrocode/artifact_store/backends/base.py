"""The contract every storage backend fulfils: move bytes by key, nothing more.

Checksums, compression, metadata and retention live above this layer. Keys are
``/``-separated paths relative to the backend's root (see :mod:`.naming`);
backends refuse keys that could leave the root.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from ..exceptions import ArtifactStoreError, InvalidInputError, InvalidNameError, StorageError

__all__ = [
    "CHUNK_SIZE",
    "BackendCapabilities",
    "KiB",
    "MiB",
    "ObjectExistsError",
    "ObjectInfo",
    "ReadStream",
    "RecordWrite",
    "SourceError",
    "StagedObject",
    "StorageBackend",
    "WriteSource",
    "iter_source",
    "source_chunks",
    "validate_key",
]

KiB = 1024
MiB = 1024 * KiB
#: Size of the pieces bytes move in, everywhere: memory stays flat at a few of these.
CHUNK_SIZE = 1 * MiB

WriteSource = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]


class ObjectExistsError(StorageError):
    """A create-if-absent write found the key already taken (another writer won)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object as a listing reports it."""

    key: str
    size: int
    modified: datetime | None = None
    #: The server's entity tag (changes whenever the bytes do); ``None`` if not listed.
    etag: str | None = None


def validate_key(key: str) -> str:
    """Refuse a key that is empty, absolute, or has empty, ``.`` or ``..`` parts."""
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") for part in parts) or "\x00" in key or "\\" in key:
        raise InvalidNameError(f"unsafe storage key {key!r}", field="key", value=key)
    return key


def iter_source(data: WriteSource, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield the bytes of ``data`` in pieces of at most ``chunk_size``."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data).cast("B")
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start : start + chunk_size])
        return
    read = getattr(data, "read", None)
    if callable(read):
        while chunk := read(chunk_size):
            yield _as_bytes(chunk)
        return
    for chunk in data:
        if chunk:
            yield _as_bytes(chunk)


def _as_bytes(chunk: object) -> bytes:
    """A chunk of content as bytes; anything but bytes-like is refused.

    ``bytes(5)`` is five NUL bytes and ``bytes("x")`` a ``TypeError``: neither may
    pass for content.
    """
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    raise InvalidInputError(
        f"content chunks must be bytes, got {type(chunk).__name__} "
        "(open files in binary mode, 'rb'; pass text as one str)"
    )


class SourceError(Exception):
    """The content being uploaded failed to produce its bytes; ``__cause__`` says why.

    Raised by :func:`source_chunks` so that backends never mistake a failing
    source (a dropped network stream, an unreadable input file) for a storage
    failure; the facade re-raises the original exception.
    """


def source_chunks(data: WriteSource, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Like :func:`iter_source`, with failures of ``data`` itself raised as ``SourceError``."""
    iterator = iter_source(data, chunk_size)
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        except InvalidInputError:
            raise
        except Exception as exc:
            raise SourceError(f"reading the content failed: {exc}") from exc
        yield chunk


class ReadStream(io.RawIOBase):
    """A readable binary stream over a backend object.

    Iterating yields chunks of up to :data:`CHUNK_SIZE`; ``read()`` with no
    argument returns the rest; closing (or leaving the ``with`` block) releases
    the connection or file. Backends build one from a ``read(n)`` function.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        close: Callable[[], None] | None = None,
        *,
        size: int | None = None,
        key: str = "",
        revision: str | None = None,
    ) -> None:
        super().__init__()
        self._read = read
        self._close = close
        self.size = size
        self.key = key
        #: What identifies this state of the object (S3 ETag, GCS generation), if known:
        #: a resumed read passes it to :meth:`StorageBackend.open_read_from`.
        self.revision = revision

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self._read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        return self._read(size)

    def readall(self) -> bytes:
        parts = []
        while chunk := self._read(CHUNK_SIZE):
            parts.append(chunk)
        return b"".join(parts)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self._read(CHUNK_SIZE):
            yield chunk

    def close(self) -> None:
        if not self.closed and self._close is not None:
            self._close()
        super().close()


class StagedObject:
    """An object written under its key whose durability may still be pending.

    :meth:`StorageBackend.stage` returns one so that a backend can make it
    durable together with the write that will refer to it
    (:meth:`StorageBackend.upload_after`) instead of one after the other: on a
    local disk that overlaps their fsyncs. Readers may already see the object;
    it is durable once :meth:`settle` returns (cloud objects already are).
    """

    __slots__ = ("_settle", "key", "size")

    def __init__(self, key: str, size: int, settle: Callable[[], None] | None = None) -> None:
        self.key = key
        #: Bytes written.
        self.size = size
        self._settle = settle

    @property
    def settled(self) -> bool:
        """Whether the object is known to be durable."""
        return self._settle is None

    def settle(self) -> None:
        """Make the object durable now (once; later calls do nothing)."""
        if self._settle is not None:
            self._settle()
            self._settle = None

    def mark_settled(self) -> None:
        """Record that the backend made the object durable by other means."""
        self._settle = None

    def __repr__(self) -> str:
        state = "settled" if self.settled else "pending"
        return f"StagedObject({self.key!r}, {self.size} bytes, {state})"


@dataclass(frozen=True, slots=True)
class RecordWrite:
    """One write of :meth:`StorageBackend.upload_after_many`: ``data`` under ``key``,
    durable no sooner than ``staged`` (the object the record refers to)."""

    staged: StagedObject
    key: str
    data: bytes
    if_absent: bool = False


@dataclass(frozen=True, slots=True)
class BackendCapabilities:
    """What a backend can do, so that the layers above ask this and never its name."""

    #: Objects are files renamed into place on a local disk: ``upload`` is atomic by
    #: ``rename(2)`` and interrupted writes leave temporary files behind.
    atomic_rename: bool = False
    #: Every writer of the store reaches it through this machine's filesystem, so lock
    #: files and the index kept inside the store (the default ``state_dir``) are shared
    #: by all of them; otherwise each host keeps its own and the records decide.
    local_locks: bool = False
    #: ``upload(..., if_absent=True)`` is enforced by the storage itself (``link(2)``,
    #: ``If-None-Match: *``, a generation precondition), not checked then written.
    conditional_create: bool = True
    #: ``open_read_from`` starts at the offset without reading what comes before it.
    range_reads: bool = False
    #: Calls can fail transiently (network backends). Only then does the retry wrapper
    #: keep a replayable copy of one-shot upload sources and resume cut reads.
    transient_failures: bool = True


class StorageBackend(ABC):
    """Stores opaque bytes under keys. Implementations differ as documented per method."""

    #: Short name used in configuration (``backend_type``); for messages, never for
    #: deciding behaviour (that is :attr:`capabilities`).
    name: str = ""
    #: What this backend can do.
    capabilities: BackendCapabilities = BackendCapabilities()

    @property
    @abstractmethod
    def root_uri(self) -> str:
        """The URI of the root, e.g. ``file:///srv/artifacts`` or ``s3://bucket/prefix``."""

    @abstractmethod
    def upload(self, key: str, data: WriteSource, *, if_absent: bool = False) -> int:
        """Store ``data`` under ``key`` atomically; return the number of bytes written.

        Readers see the old object or the new one, never a part. With
        ``if_absent`` the write fails with :class:`ObjectExistsError` when the key
        exists (filesystem: ``link(2)``; S3: ``If-None-Match: *``; GCS:
        ``if_generation_match=0``). When this returns, the object is durable.
        A failed write leaves nothing visible under ``key``.
        """

    def stage(self, key: str, data: WriteSource) -> StagedObject:
        """Write ``data`` under ``key`` like :meth:`upload`, possibly not yet durably.

        For an object that a later :meth:`upload_after` will refer to: the backend
        may then make both durable together. A failed stage leaves nothing under
        ``key``. This default uploads durably at once.
        """
        return StagedObject(key, self.upload(key, data))

    def upload_after(
        self, staged: StagedObject, key: str, data: WriteSource, *, if_absent: bool = False
    ) -> int:
        """:meth:`upload` ``data`` under ``key`` once ``staged`` is durable.

        When this returns both are durable, and ``key`` never becomes durable
        before ``staged`` does: a record written this way never outlives, in a
        crash, the object it refers to. This default settles ``staged`` first.
        """
        staged.settle()
        return self.upload(key, data, if_absent=if_absent)

    def upload_after_many(self, writes: Sequence[RecordWrite]) -> list[int | ArtifactStoreError]:
        """:meth:`upload_after` for each write; each one's size, or its error.

        The records of several uploads (``upload_many``) share this call, so a
        backend that can make a batch durable at once (one fsync round on a
        local disk) overrides it. A failure belongs to its own write: the others
        still happen. This default writes one after the other.
        """
        outcomes: list[int | ArtifactStoreError] = []
        for write in writes:
            try:
                outcomes.append(
                    self.upload_after(
                        write.staged, write.key, write.data, if_absent=write.if_absent
                    )
                )
            except ArtifactStoreError as exc:
                outcomes.append(exc)
        return outcomes

    @abstractmethod
    def open_read(self, key: str) -> ReadStream:
        """Open ``key`` for streaming reads; ``ArtifactNotFoundError`` if absent."""

    def open_read_from(self, key: str, offset: int, *, revision: str | None = None) -> ReadStream:
        """Open ``key`` for reading from byte ``offset`` (to resume an interrupted read).

        With ``revision`` (a :attr:`ReadStream.revision` seen earlier) the read
        fails with a non-retryable ``StorageError`` if the object changed since.
        Cloud backends send a ranged request; this default reads and drops the
        first ``offset`` bytes, which is correct everywhere, only slower.
        """
        stream = self.open_read(key)
        if revision is not None and stream.revision is not None and stream.revision != revision:
            stream.close()
            raise StorageError(f"{key} changed while it was being read", key=key)
        remaining = offset
        try:
            while remaining > 0:
                skipped = stream.read(min(remaining, CHUNK_SIZE))
                if not skipped:
                    break
                remaining -= len(skipped)
        except BaseException:
            stream.close()
            raise
        return stream

    def download(self, key: str) -> bytes:
        """Read the whole object into memory (small objects only)."""
        with self.open_read(key) as stream:
            return stream.readall()

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it existed. Durable when it returns."""

    def delete_many(self, keys: Sequence[str]) -> list[bool]:
        """Remove ``keys`` in order; return whether each existed. Durable when it returns.

        Backends that can make a batch durable at once (one folder fsync, one
        bulk request) override this; the default deletes one key at a time.
        """
        return [self.delete(key) for key in keys]

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object."""

    @abstractmethod
    def get_size(self, key: str) -> int:
        """Size of ``key`` in bytes; ``ArtifactNotFoundError`` if absent."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every complete object whose key starts with ``prefix`` (any depth), by key.

        Cloud backends page through results transparently.
        """

    def list_incomplete(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Leftovers of interrupted writes (temporary files, dangling multipart uploads).

        Their keys can be passed to :meth:`remove_incomplete`. Backends whose writes
        leave nothing behind yield nothing.
        """
        return iter(())

    def list_with_incomplete(self, prefix: str = "") -> Iterator[tuple[ObjectInfo, bool]]:
        """:meth:`list` and :meth:`list_incomplete` together, each flagged ``True`` if a
        leftover: one walk where the backend can (the filesystem), else one after the other.
        """
        for info in self.list(prefix):
            yield info, False
        for info in self.list_incomplete(prefix):
            yield info, True

    def remove_incomplete(self, key: str) -> bool:
        """Remove one leftover reported by :meth:`list_incomplete`."""
        return False

    def list_escaping(self) -> Iterator[str]:
        """Paths inside the root that lead out of it (the filesystem's symbolic links).

        Writes through them are refused; ``verify_all`` reports them. Object stores
        have no such thing and yield nothing.
        """
        return iter(())

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release clients and connections."""
