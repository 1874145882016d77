"""A streaming ``multipart/form-data`` reader for the Agent Runner's upload.

Starlette's form parser spools every file part to a temporary file before the
route sees it: an upload would be written twice. This reader runs in the worker
thread over :func:`~.transfer.body_chunks` and hands the ``file`` part to the
store as it arrives. The Agent Runner's ``requests`` client sends its form
fields (``type``, ``metadata``) before the file, so the store knows the
artifact's key before the first byte; a client that sends the file first has
it spooled to a temporary file (disk, not memory) until the fields arrive.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Iterator
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import ApiError

__all__ = ["FILE_FIELD", "MultipartUpload", "boundary_of"]

FILE_FIELD = "file"
#: Largest form field other than the file (the metadata JSON string).
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 16
SPOOL_MEMORY = 1024 * 1024


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type (400 for anything else)."""
    if not content_type:
        raise _bad("expected a multipart/form-data body with fields file, type and metadata")
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise _bad(f"expected multipart/form-data with a boundary, got {content_type!r}")
    return boundary


class MultipartUpload:
    """Parse a form body; :meth:`fields` first, then :meth:`file_chunks`, then :meth:`finish`."""

    def __init__(self, body: Iterator[bytes], boundary: bytes) -> None:
        self._body = body
        self.form: dict[str, str] = {}
        self._pending: deque[bytes] = deque()
        self._header_name = b""
        self._header_value = b""
        self._part_name: str | None = None
        self._part_is_file = False
        self._field = bytearray()
        self.file_seen = False
        self._file_open = False
        self._ended = False
        self._spool: IO[bytes] | None = None
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_end": self._on_end,
            },
        )

    # -- parser callbacks -------------------------------------------------------------

    def _on_part_begin(self) -> None:
        self._part_name, self._part_is_file = None, False
        self._field.clear()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            _, options = parse_options_header(self._header_value)
            name = options.get(b"name")
            self._part_name = name.decode("utf-8", "replace") if name is not None else None
        self._header_name, self._header_value = b"", b""

    def _on_headers_finished(self) -> None:
        if self._part_name == FILE_FIELD:
            if self.file_seen:
                raise _bad("more than one 'file' part")
            self.file_seen = self._file_open = self._part_is_file = True

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_is_file:
            self._pending.append(bytes(data[start:end]))
            return
        self._field += data[start:end]
        if len(self._field) > MAX_FIELD_BYTES:
            raise _bad(f"form field {self._part_name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def _on_part_end(self) -> None:
        if self._part_is_file:
            self._file_open = False
        elif self._part_name is not None:
            if len(self.form) >= MAX_FIELDS:
                raise _bad(f"more than {MAX_FIELDS} form fields")
            try:
                self.form[self._part_name] = self._field.decode("utf-8")
            except UnicodeDecodeError:
                raise _bad(f"form field {self._part_name!r} is not UTF-8 text") from None

    def _on_end(self) -> None:
        self._ended = True

    # -- driving ----------------------------------------------------------------------

    def _feed(self) -> bool:
        """Parse one more body chunk; ``False`` at the end of the body."""
        chunk = next(self._body, None)
        if chunk is None:
            if not self._ended:
                raise _bad("the multipart body ended before its closing boundary")
            return False
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise _bad(f"malformed multipart body: {exc}") from None
        return True

    def fields(self, needed: tuple[str, ...]) -> dict[str, str]:
        """Read until the ``needed`` fields are known (spooling the file if it comes first)."""
        while not all(name in self.form for name in needed):
            if self.file_seen and self._spool is None:
                self._spool = tempfile.SpooledTemporaryFile(SPOOL_MEMORY)  # noqa: SIM115
            if self._spool is not None:
                while self._pending:
                    self._spool.write(self._pending.popleft())
            if not self._feed():
                break
        return self.form

    def file_chunks(self) -> Iterator[bytes]:
        """The file part's bytes as they arrive (from the spool first, if any)."""
        if not self.file_seen:
            raise _bad("the form has no 'file' part")
        if self._spool is not None:
            self._spool.seek(0)
            while block := self._spool.read(SPOOL_MEMORY):
                yield block
        while True:
            while self._pending:
                yield self._pending.popleft()
            if not self._file_open or not self._feed():
                break
        while self._pending:
            yield self._pending.popleft()

    def has_file(self) -> bool:
        """Whether a ``file`` part started (read far enough to know, if needed)."""
        while not self.file_seen and self._feed():
            pass
        return self.file_seen

    def finish(self) -> None:
        """Read the rest of the body (trailing fields are parsed, then ignored)."""
        while self._feed():
            self._pending.clear()

    def close(self) -> None:
        """Drop the spool file, if any."""
        if self._spool is not None:
            self._spool.close()
