"""Integrity: SHA-256 while streaming, verifying readers, and the ``verify_all`` report."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..backends.base import CHUNK_SIZE, ReadStream
from ..exceptions import IntegrityError
from .compression import CompressionEngine

if TYPE_CHECKING:  # the record's schema loads with the first record, not at start-up
    from ..models import ArtifactMetadata

#: Objects (stored bytes) a download reads whole and inflates in one call; larger ones
#: stream in chunks of :data:`CHUNK_SIZE`.
SMALL_OBJECT = 256 * 1024
#: ... if their recorded original size is at most this (a download holds it all anyway).
SMALL_ORIGINAL = 16 * 1024 * 1024

__all__ = [
    "ArtifactProblem",
    "ArtifactReader",
    "HashingSource",
    "VerifyReport",
    "calculate_checksum",
    "check_small",
    "small_object",
]


def calculate_checksum(data: bytes | Iterable[bytes]) -> str:
    """``sha256:<hex>`` of ``data`` (bytes or an iterable of chunks)."""
    digest = hashlib.sha256()
    if isinstance(data, bytes | bytearray | memoryview):
        digest.update(data)
    else:
        for chunk in data:
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


class HashingSource:
    """Pass chunks through while counting them and hashing them with SHA-256."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self._digest = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._digest.update(chunk)
            self.size += len(chunk)
            yield chunk

    @property
    def checksum(self) -> str:
        """``sha256:<hex>`` of everything that passed so far."""
        return f"sha256:{self._digest.hexdigest()}"


class ArtifactReader(io.RawIOBase):
    """A readable stream of an artifact's original bytes, checked as they pass.

    Decompresses the stored bytes, counts and hashes what it returns, and at
    the end of the stream raises :class:`IntegrityError` when the size or (with
    ``verify``) the SHA-256 differs from the metadata. The size is always
    checked, so a truncated object never passes as complete; more bytes than
    recorded fail as soon as they appear. Since a stream hands out bytes before
    it can judge them, a consumer that must never act on bad data should read
    to the end before using what it read (``download()`` does that).
    """

    def __init__(self, meta: ArtifactMetadata, raw: ReadStream, *, verify: bool = True) -> None:
        super().__init__()
        self.metadata = meta
        self._raw = raw
        self._reader: Callable[[int], bytes] | None = None  # made at the first read
        self._verify = verify
        self._digest = hashlib.sha256() if verify else None
        self._count = 0
        self._done = False

    @property
    def uri(self) -> str:
        """URI of the artifact being read."""
        return self.metadata.uri

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self._done or size == 0:
            return b""
        try:
            if self._reader is None:
                self._reader = CompressionEngine.decompressing_reader(
                    self.metadata.codec, self._raw.read
                )
            data = self._reader(size)
        except IntegrityError as exc:
            raise IntegrityError(f"{self.uri}: {exc}", uri=self.uri) from exc
        if data:
            self._count += len(data)
            if self._count > self.metadata.size:
                raise IntegrityError(
                    f"{self.uri}: more bytes than the recorded {self.metadata.size}",
                    uri=self.uri,
                    expected=str(self.metadata.size),
                    actual=f">{self.metadata.size}",
                )
            if self._digest is not None:
                self._digest.update(data)
            return data
        self._done = True
        self._check_end()
        return b""

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        if self._reader is None and not self._done:
            whole = self._read_small()
            if whole is not None:
                return whole
        parts = []
        while chunk := self.read(CHUNK_SIZE):
            parts.append(chunk)
        return b"".join(parts)

    def _read_small(self) -> bytes | None:
        """A small object read whole and inflated in one call (most downloads): the
        checks of :meth:`read` without its per-chunk layers. ``None`` when the object
        is large or of unknown size, or its codec streams only."""
        stored_size = self._raw.size
        meta = self.metadata
        if stored_size is None or stored_size > SMALL_OBJECT or not small_object(meta):
            return None
        pieces = []
        while piece := self._raw.read(stored_size + 1):
            pieces.append(piece)
            if sum(map(len, pieces)) > stored_size + SMALL_OBJECT:
                return self._restream(pieces)  # growing under us: take the streaming path
        self._done = True
        data = check_small(meta, b"".join(pieces), verify=self._digest is not None)
        self._count = len(data)
        return data

    def _restream(self, pieces: list[bytes]) -> bytes:
        """Finish a read that turned out not to be small, streaming from ``pieces`` on."""
        source = iter([b"".join(pieces)])
        raw_read = self._raw.read

        def read(count: int) -> bytes:
            for first in source:
                return first
            return raw_read(count)

        self._reader = CompressionEngine.decompressing_reader(self.metadata.codec, read)
        parts = []
        while chunk := self.read(CHUNK_SIZE):
            parts.append(chunk)
        return b"".join(parts)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK_SIZE):
            yield chunk

    def drain(self) -> int:
        """Read to the end, discarding the bytes, so the size and checksum get checked.

        Returns how many bytes were read; raises ``IntegrityError`` on a mismatch.
        """
        if self._reader is None and not self._done:
            whole = self._read_small()
            if whole is not None:
                return len(whole)
        total = 0
        while chunk := self.read(CHUNK_SIZE):
            total += len(chunk)
        return total

    def _check_end(self) -> None:
        _check_end(self.metadata, self._count, self._digest)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def small_object(meta: ArtifactMetadata) -> bool:
    """Whether ``meta``'s object is read whole and inflated in one call, when its
    stored bytes are at most :data:`SMALL_OBJECT` (see :func:`check_small`)."""
    return meta.size <= SMALL_ORIGINAL and meta.codec in ("gzip", "none")


def check_small(meta: ArtifactMetadata, stored: bytes, *, verify: bool = True) -> bytes:
    """The original bytes of a small object whose stored bytes are ``stored`` (all
    of them), checked as :class:`ArtifactReader` checks a stream: its size always,
    its SHA-256 with ``verify``. Raises :class:`IntegrityError` on a mismatch."""
    uri = meta.uri
    try:
        data = CompressionEngine.decompress_bounded(meta.codec, stored, meta.size + 1)
    except IntegrityError as exc:
        raise IntegrityError(f"{uri}: {exc}", uri=uri) from exc
    assert data is not None  # gzip and none always decompress in one call
    if len(data) > meta.size:
        raise IntegrityError(
            f"{uri}: more bytes than the recorded {meta.size}",
            uri=uri,
            expected=str(meta.size),
            actual=f">{meta.size}",
        )
    _check_end(meta, len(data), hashlib.sha256(data) if verify else None)
    return data


def _check_end(meta: ArtifactMetadata, count: int, digest: hashlib._Hash | None) -> None:
    """The end of a read of ``count`` original bytes hashed into ``digest``: raise
    :class:`IntegrityError` if the size or the checksum is not the recorded one."""
    if count != meta.size:
        raise IntegrityError(
            f"{meta.uri}: size mismatch: recorded {meta.size} bytes, read {count}",
            uri=meta.uri,
            expected=str(meta.size),
            actual=str(count),
        )
    if digest is not None:
        actual = f"sha256:{digest.hexdigest()}"
        if actual != meta.checksum:
            raise IntegrityError(
                f"{meta.uri}: checksum mismatch: recorded {meta.checksum}, computed {actual}",
                uri=meta.uri,
                expected=meta.checksum,
                actual=actual,
            )


@dataclass(frozen=True, slots=True)
class ArtifactProblem:
    """One artifact version that failed verification, and why."""

    uri: str
    version: int
    reason: str


@dataclass
class VerifyReport:
    """What :meth:`ArtifactStore.verify_all` found.

    ``ok``: URIs that verified. ``corrupted``: bytes differ from the record.
    ``missing``: a record whose stored object is gone. ``orphaned``: backend
    keys of stored objects no record refers to (left by interrupted writes).
    ``incomplete``: temporary leftovers of interrupted writes. ``index_stale``:
    artifact versions on which the index disagreed with the records (fixed in passing).
    """

    ok: list[str] = field(default_factory=list)
    corrupted: list[ArtifactProblem] = field(default_factory=list)
    missing: list[ArtifactProblem] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    index_stale: list[str] = field(default_factory=list)
    #: Folders inside the root that are symbolic links out of it (nothing is written there).
    escaping: list[str] = field(default_factory=list)
    bytes_checked: int = 0

    @property
    def healthy(self) -> bool:
        """No corrupted or missing artifact (orphans and leftovers are only waste)."""
        return not self.corrupted and not self.missing

    @property
    def checked(self) -> int:
        """How many artifact versions were checked."""
        return len(self.ok) + len(self.corrupted) + len(self.missing)

    def to_dict(self) -> dict[str, object]:
        """Plain data for JSON output."""
        return {
            "healthy": self.healthy,
            "checked": self.checked,
            "bytes_checked": self.bytes_checked,
            "ok": self.ok,
            "corrupted": [vars_of(p) for p in self.corrupted],
            "missing": [vars_of(p) for p in self.missing],
            "orphaned": self.orphaned,
            "incomplete": self.incomplete,
            "index_stale": self.index_stale,
            "escaping": self.escaping,
        }


def vars_of(problem: ArtifactProblem) -> dict[str, object]:
    """An :class:`ArtifactProblem` as a dict."""
    return {"uri": problem.uri, "version": problem.version, "reason": problem.reason}
