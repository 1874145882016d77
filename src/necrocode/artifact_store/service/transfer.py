"""Moving bytes between HTTP and the store without holding an artifact in memory.

Store calls are synchronous and run in worker threads; request bodies arrive
on the event loop. :func:`body_chunks` bridges the two: inside the worker it
pulls one body chunk at a time from the loop (``anyio.from_thread``), counting
bytes against the upload limit and timing out a silent client. Downloads go
the other way through a ``StreamingResponse`` over the store's chunk iterator.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import Request
from starlette.requests import ClientDisconnect

from ..backends.base import CHUNK_SIZE
from ..models import ArtifactMetadata
from ..pipeline.integrity import ArtifactReader
from .errors import ApiError
from .settings import ServiceSettings

__all__ = [
    "ByteRange",
    "body_chunks",
    "check_declared_size",
    "close_quietly",
    "etag_matches",
    "etag_of",
    "guard_disconnect",
    "parse_range",
    "read_ahead",
    "reader_chunks",
    "run_store",
    "small_body",
]

T = TypeVar("T")
#: Bodies up to this size (one store chunk) are read before the store call.
SMALL_BODY = CHUNK_SIZE
_RANGE = re.compile(r"bytes=(?P<start>\d*)-(?P<end>\d*)")


async def run_store(function: Callable[[], T]) -> T:
    """Run a store call in a worker thread: the event loop never blocks on storage."""
    return await anyio.to_thread.run_sync(function)


def too_large(limit: int) -> ApiError:
    """The 413 of an upload over ``--max-upload-size``."""
    return ApiError(
        413,
        "payload_too_large",
        f"the upload exceeds the limit of {limit} bytes (--max-upload-size)",
    )


def check_declared_size(request: Request, settings: ServiceSettings) -> None:
    """Refuse at once a request whose Content-Length is over the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_upload_size:
        raise too_large(settings.max_upload_size)


async def small_body(request: Request, settings: ServiceSettings) -> bytes | None:
    """The whole body if its ``Content-Length`` is at most one store chunk, else ``None``.

    Streaming such a body would hold the same single chunk in memory; reading
    it here saves the worker thread a round trip to the event loop per piece.
    """
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit() or int(declared) > SMALL_BODY:
        return None
    try:
        with anyio.fail_after(settings.body_timeout):
            body = await request.body()
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client closed the connection") from None
    except TimeoutError:
        raise ApiError(
            408, "request_timeout", f"no request body bytes for {settings.body_timeout:g} seconds"
        ) from None
    if len(body) > settings.max_upload_size:
        raise too_large(settings.max_upload_size)
    return body


def body_chunks(request: Request, settings: ServiceSettings) -> Iterator[bytes]:
    """The request body, chunk by chunk, for code running in a worker thread.

    Raises ``ApiError`` 413 past ``max_upload_size`` and 408 when the client
    sends nothing for ``body_timeout`` seconds; the store then aborts the upload.
    """
    stream: AsyncIterator[bytes] = request.stream()
    limit, timeout = settings.max_upload_size, settings.body_timeout

    async def next_chunk() -> bytes | None:
        try:
            with anyio.fail_after(timeout):
                return await stream.__anext__()
        except StopAsyncIteration:
            return None

    received = 0
    while True:
        try:
            chunk = anyio.from_thread.run(next_chunk)
        except TimeoutError:
            raise ApiError(
                408, "request_timeout", f"no request body bytes for {timeout:g} seconds"
            ) from None
        if chunk is None:
            return
        received += len(chunk)
        if received > limit:
            raise too_large(limit)
        if chunk:
            yield chunk


def reader_chunks(
    reader: ArtifactReader, start: int = 0, length: int | None = None
) -> Iterator[bytes]:
    """The bytes of an open reader, closing it at the end.

    A whole artifact is sent one chunk behind the reader: the last chunk leaves
    only once the reader has checked size and SHA-256 at the end, so a corrupt
    artifact ends in a cut connection rather than a complete-looking body. A
    range (``start``, ``length``) skips to ``start`` by reading (compressed
    artifacts cannot seek) and is not verified.
    """
    with reader:
        if length is None and start == 0:
            held: bytes | None = None
            for chunk in reader:
                if held is not None:
                    yield held
                held = chunk
            if held is not None:
                yield held
            return
        to_skip = start
        while to_skip > 0:
            skipped = reader.read(min(to_skip, 1024 * 1024))
            if not skipped:
                return
            to_skip -= len(skipped)
        remaining = length if length is not None else -1
        while remaining != 0:
            chunk = reader.read(1024 * 1024 if remaining < 0 else min(remaining, 1024 * 1024))
            if not chunk:
                return
            if remaining > 0:
                remaining -= len(chunk)
            yield chunk


async def read_ahead(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Yield ``chunks`` while a worker thread already produces the next one.

    The store's reader decompresses and hashes; sending waits for the socket.
    Overlapping the two keeps both busy (one chunk ahead, so memory stays at
    two chunks). A response cut short waits for the chunk in progress, then stops.
    """
    pending = asyncio.ensure_future(anyio.to_thread.run_sync(next, chunks, None))
    try:
        while (chunk := await pending) is not None:
            pending = asyncio.ensure_future(anyio.to_thread.run_sync(next, chunks, None))
            yield chunk
    finally:
        if not pending.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)


def close_quietly(reader: ArtifactReader) -> None:
    """Close a reader whose response may have been cut short."""
    with contextlib.suppress(Exception):
        reader.close()


@dataclass(frozen=True, slots=True)
class ByteRange:
    """An inclusive byte range ``first..last`` of an artifact of ``size`` bytes."""

    first: int
    last: int
    size: int

    @property
    def length(self) -> int:
        """Bytes in the range."""
        return self.last - self.first + 1

    def content_range(self) -> str:
        """The ``Content-Range`` header value."""
        return f"bytes {self.first}-{self.last}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single range ``Range: bytes=a-b`` asks for; ``None`` to send everything.

    Several ranges, or a header that is not a byte range, are ignored (the
    whole artifact is sent, as RFC 9110 allows); a range wholly past the end is 416.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match["start"] and not match["end"]):
        return None
    if not match["start"]:  # a suffix: the last n bytes
        count = int(match["end"])
        if count == 0:
            raise _unsatisfiable(size)
        return ByteRange(max(size - count, 0), size - 1, size) if size else None
    first = int(match["start"])
    last = int(match["end"]) if match["end"] else size - 1
    if match["end"] and last < first:
        return None  # invalid: ignored
    if first >= size:
        raise _unsatisfiable(size)
    return ByteRange(first, min(last, size - 1), size)


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(
        416,
        "range_not_satisfiable",
        f"the artifact has {size} bytes",
        {"Content-Range": f"bytes */{size}"},
    )


def etag_of(meta: ArtifactMetadata) -> str:
    """The strong ETag of a version: its SHA-256, quoted."""
    return f'"{meta.checksum.removeprefix("sha256:")}"'


def etag_matches(header: str | None, meta: ArtifactMetadata) -> bool:
    """Whether an ``If-None-Match`` header names this version (``*`` names any)."""
    if header is None:
        return False
    wanted = etag_of(meta)
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


async def guard_disconnect(coroutine: Callable[[], T]) -> T:
    """Run a store upload in a worker; a client that hung up gets a 400 it never reads."""
    try:
        return await run_store(coroutine)
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client closed the connection") from None
