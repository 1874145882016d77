"""Streaming compression: gzip (standard library) and, with the ``zstd`` extra, zstd.

Both directions work on chunks so that memory stays flat whatever the size.
Decompression bounds its output per call, so a small corrupt or hostile object
cannot expand into memory all at once, and a damaged or truncated stream raises
:class:`~necrocode.artifact_store.exceptions.IntegrityError`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from ..backends.base import CHUNK_SIZE, KiB
from ..exceptions import ConfigError, IntegrityError
from ..models import Codec

__all__ = ["DEFAULT_LEVEL", "CompressionEngine", "Compressor"]

DEFAULT_LEVEL = 6
_GZIP_WBITS = 31  # zlib's gzip container: header + deflate + CRC32/size trailer
#: Compressed bytes fed to the inflater at a time. With 1 MiB the output hit the
#: 1 MiB cap with most of the input left over, and the churn of 1 MiB buffers made
#: glibc return memory and fault it back in: 74,000 page faults per 256 MiB and a
#: quarter slower than a plain inflate loop. 128 KiB inflates below the cap.
_GZIP_INPUT_CHUNK = 128 * KiB


class Compressor(Protocol):
    """What both codecs' streaming compressors offer."""

    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self) -> bytes: ...


def _zstd() -> Any:
    try:
        import zstandard  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(
            "compression_codec: zstd needs the 'zstandard' package; "
            "install it with: pip install 'necrocode-artifact-store[zstd]'",
            key="compression_codec",
        ) from exc
    return zstandard


class CompressionEngine:
    """Compresses on upload and decompresses on download, one chunk at a time.

    ``enabled=False`` stores bytes as they are (codec ``"none"``).
    """

    def __init__(self, codec: Codec = "gzip", level: int = DEFAULT_LEVEL, enabled: bool = True):
        if codec not in ("gzip", "zstd", "none"):
            raise ConfigError(
                f"compression_codec: unknown codec {codec!r}", key="compression_codec"
            )
        max_level = 9 if codec == "gzip" else 22
        if codec != "none" and not 1 <= level <= max_level:
            raise ConfigError(
                f"compression_level: {codec} levels are 1-{max_level}, got {level}",
                key="compression_level",
            )
        if enabled and codec == "zstd":
            _zstd()
        self.codec: Codec = codec if enabled else "none"
        self.level = level

    @property
    def enabled(self) -> bool:
        """Whether uploads are compressed."""
        return self.codec != "none"

    def compressor(self) -> Compressor:
        """A fresh streaming compressor for this engine's codec."""
        if self.codec == "gzip":
            return zlib.compressobj(self.level, zlib.DEFLATED, _GZIP_WBITS)
        if self.codec == "zstd":
            compressor: Compressor = (
                _zstd().ZstdCompressor(level=self.level, write_checksum=True).compressobj()
            )
            return compressor
        return _Identity()

    def compress_stream(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Compress ``chunks`` lazily, yielding compressed pieces as they form."""
        compressor = self.compressor()
        for chunk in chunks:
            out = compressor.compress(chunk)
            if out:
                yield out
        tail = compressor.flush()
        if tail:
            yield tail

    def compress(self, data: bytes) -> bytes:
        """Compress a whole buffer (small data; large data should use the streams)."""
        return b"".join(self.compress_stream([data]))

    @staticmethod
    def decompressing_reader(codec: Codec, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
        """Wrap a ``read(n)`` of stored bytes into a ``read(n)`` of original bytes.

        The returned function returns ``b""`` at the end and raises
        ``IntegrityError`` when the stored stream is corrupt or cut short.
        """
        if codec == "gzip":
            return _GzipReader(read).read
        if codec == "zstd":
            return _ZstdReader(read).read
        if codec == "none":
            return read
        raise IntegrityError(f"unknown codec {codec!r} in metadata")

    @staticmethod
    def decompress_bounded(codec: Codec, data: bytes, limit: int) -> bytes | None:
        """All of ``data`` decompressed in one call, but at most ``limit`` bytes of it.

        For small objects read whole (a download's fast path): the same answers as
        :meth:`decompressing_reader` read to the end — several gzip members are
        concatenated, damage and truncation raise ``IntegrityError`` — with no
        per-chunk loop. Output past ``limit`` is not produced (a tiny hostile object
        cannot inflate into memory). ``None`` for a codec without a one-call path
        (zstd): the caller streams instead.
        """
        if codec == "none":
            return data[:limit]
        if codec != "gzip":
            return None
        if not data:
            raise IntegrityError("compressed data is truncated")
        out: list[bytes] = []
        produced = 0
        rest = data
        try:
            while rest and produced < limit:
                inflater = zlib.decompressobj(_GZIP_WBITS)
                piece = inflater.decompress(rest, limit - produced)
                out.append(piece)
                produced += len(piece)
                if not inflater.eof:
                    if inflater.unconsumed_tail or produced >= limit:
                        break  # at the limit: the caller reports "more bytes" (as a stream)
                    raise IntegrityError("compressed data is truncated")
                rest = inflater.unused_data
        except zlib.error as exc:
            raise IntegrityError(f"compressed data is corrupt: {exc}") from exc
        return b"".join(out)

    @classmethod
    def decompress_stream(cls, codec: Codec, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Decompress ``chunks`` of ``codec`` lazily."""
        source = _ChunkSource(chunks)
        read = cls.decompressing_reader(codec, source.read)
        while piece := read(CHUNK_SIZE):
            yield piece

    @classmethod
    def decompress(cls, data: bytes, codec: Codec = "gzip") -> bytes:
        """Decompress a whole buffer."""
        return b"".join(cls.decompress_stream(codec, [data]))


class _Identity:
    def compress(self, data: bytes, /) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _ChunkSource:
    """Turn an iterable of chunks into a ``read(n)`` function."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def read(self, size: int) -> bytes:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return b""
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


class _GzipReader:
    """Bounded-output gzip decompression over a ``read(n)``; handles multi-member files."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._inflater = zlib.decompressobj(_GZIP_WBITS)
        self._input = b""
        self._source_done = False
        self._members = 0
        self._in_member = False

    def read(self, size: int) -> bytes:
        size = max(1, size)
        while True:
            if not self._input:
                if self._source_done:
                    if self._in_member or self._members == 0:
                        raise IntegrityError("compressed data is truncated")
                    return b""
                self._input = self._read(_GZIP_INPUT_CHUNK)
                if not self._input:
                    self._source_done = True
                continue
            if not self._in_member:
                if self._members:
                    self._inflater = zlib.decompressobj(_GZIP_WBITS)
                self._in_member = True
            try:
                out = self._inflater.decompress(self._input, size)
            except zlib.error as exc:
                raise IntegrityError(f"compressed data is corrupt: {exc}") from exc
            if self._inflater.eof:
                self._input = self._inflater.unused_data
                self._in_member = False
                self._members += 1
            else:
                self._input = self._inflater.unconsumed_tail
            if out:
                return out


class _ZstdReader:
    def __init__(self, read: Callable[[int], bytes]) -> None:
        zstandard = _zstd()
        self._error = zstandard.ZstdError
        source = _ReadAdapter(read)
        self._stream = zstandard.ZstdDecompressor().stream_reader(
            source, read_size=CHUNK_SIZE, read_across_frames=True, closefd=False
        )

    def read(self, size: int) -> bytes:
        try:
            out: bytes = self._stream.read(max(1, size))
        except self._error as exc:
            raise IntegrityError(f"compressed data is corrupt: {exc}") from exc
        return out


class _ReadAdapter:
    def __init__(self, read: Callable[[int], bytes]) -> None:
        self.read = read
