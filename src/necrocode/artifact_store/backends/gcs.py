"""Google Cloud Storage backend (google-cloud-storage, extra ``gcs``).

Objects live at ``gs://<bucket>/<prefix>/<key>``. Credentials come from
Application Default Credentials; a plain-``http://`` ``gcs_endpoint_url`` (an
emulator) is accessed anonymously. Uploads up to 8 MiB are one request; larger
or longer streams go through a resumable upload (``blob.open("wb")``) that is
cancelled on any failure, so nothing becomes visible. Reads fetch
:data:`READ_CHUNK` ranges pinned to the generation first seen. Create-if-absent
is ``if_generation_match=0``. The shared logic is
:class:`~.cloud.CloudBackend`'s; this module holds the SDK calls. Every call
passes ``retry=None``: the store's retry policy is the only retry layer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import google.auth.exceptions
import requests
import urllib3.exceptions
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

from ..config import CloudSettings, GCSSettings
from ..exceptions import ArtifactNotFoundError, StorageError
from .base import MiB, ReadStream
from .cloud import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    TRANSIENT_STATUS,
    CloudBackend,
    ConditionalMode,
    ErrorKind,
    ObjectStat,
)

__all__ = ["READ_CHUNK", "GCSBackend"]

log = logging.getLogger("necrocode.artifact_store.backends.gcs")

#: Piece size of resumable uploads (a multiple of 256 KiB, as GCS requires).
RESUMABLE_CHUNK = 8 * MiB
#: Size of each ranged read request.
READ_CHUNK = 8 * MiB
LIST_PAGE_SIZE = 1000

_FULL_REASONS = {"quotaExceeded", "storageQuotaExceeded", "insufficientStorage"}
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
_TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    # A JSON answer cut short (even to a bare "200" with no body) fails to decode.
    requests.exceptions.JSONDecodeError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    google.auth.exceptions.TransportError,
    DataCorruption,  # bytes damaged on the way: a new request may well succeed
    ConnectionError,
    TimeoutError,
)


def _reasons(exc: api_exceptions.GoogleAPICallError) -> set[str]:
    """The ``reason`` fields of a GCS error (upload errors keep them only in the body)."""
    items: list[object] = list(exc.errors or ())
    response = getattr(exc, "response", None)
    if not items and response is not None:
        try:
            items = list(response.json()["error"]["errors"])
        except (ValueError, KeyError, TypeError, AttributeError):
            items = []
    return {str(item.get("reason", "")) for item in items if isinstance(item, dict)}


def _check_resource(resource: object, fields: tuple[str, ...], what: str, key: str | None) -> None:
    """Refuse a JSON answer that lacks what a complete one always has.

    A connection cut inside the headers can reach the SDK as a bare ``200``
    whose (empty) body it keeps as bytes instead of a resource: never take that
    for an object, or for an empty listing.
    """
    if not isinstance(resource, dict) or any(resource.get(name) is None for name in fields):
        raise StorageError(f"incomplete answer from GCS while {what}", key=key, retryable=True)


def _client(project: str | None, endpoint_url: str | None) -> storage.Client:
    """A client for GCS, or for the endpoint given.

    A plain-``http://`` endpoint is an emulator: credentials are never sent over
    an unencrypted connection, so it is accessed anonymously.
    """
    if endpoint_url and endpoint_url.startswith("http://"):
        log.info("using anonymous access to the emulator at %s", endpoint_url)
        return storage.Client(
            project=project or "necrocode",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint_url},
        )
    options = {"api_endpoint": endpoint_url} if endpoint_url else None
    return storage.Client(project=project, client_options=options)


class _ResumableUpload:
    """One resumable upload session (the SDK's blob writer)."""

    def __init__(self, backend: GCSBackend, name: str, *, if_absent: bool) -> None:
        blob = backend.bucket.blob(name, chunk_size=RESUMABLE_CHUNK)
        condition = {"if_generation_match": 0} if if_absent else {}
        self.writer = blob.open(
            "wb",
            ignore_flush=True,
            retry=None,
            timeout=backend.timeout,
            content_type="application/octet-stream",
            **condition,
        )

    def write(self, chunk: bytes) -> None:
        self.writer.write(chunk)

    def finish(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.terminate()  # the session would expire by itself anyway


class GCSBackend(CloudBackend):
    """Objects in a GCS bucket under an optional prefix.

    ``client`` may be injected (a ``google.cloud.storage.Client``). Timeouts are
    in seconds.
    """

    name = "gcs"
    settings_class = GCSSettings
    scheme = "gs"
    vendor = "GCS"
    sdk_errors = (
        api_exceptions.GoogleAPIError,
        InvalidResponse,
        google.auth.exceptions.GoogleAuthError,
        requests.exceptions.RequestException,
        urllib3.exceptions.HTTPError,
        ConnectionError,
        TimeoutError,
    )

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: storage.Client | None = None,
        project: str | None = None,
        endpoint_url: str | None = None,
        conditional_writes: ConditionalMode = "require",
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        super().__init__(
            bucket,
            prefix,
            client=client,
            endpoint=endpoint_url or "GCS",
            conditional_writes=conditional_writes,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        if client is None:
            with self.mapped("creating the GCS client", None):
                client = _client(project, endpoint_url)
        # Recent SDKs fetch bucket metadata in a background thread, with their own
        # retries, only to decorate tracing spans: an extra request per bucket that
        # escapes the retry policy. Their code skips it when this cache is unset.
        if getattr(client, "_bucket_metadata_cache", None) is not None:
            client._bucket_metadata_cache = None
        self.client = client
        self.bucket = client.bucket(bucket)
        self.timeout = (connect_timeout, read_timeout)

    @classmethod
    def options_of(cls, settings: CloudSettings) -> dict[str, Any]:
        assert isinstance(settings, GCSSettings)
        return {**super().options_of(settings), "project": settings.project}

    def classify_error(self, exc: BaseException) -> tuple[ErrorKind, str | None]:
        status: int | None = None
        reasons: set[str] = set()
        if isinstance(exc, api_exceptions.GoogleAPICallError):
            status = int(exc.code) if exc.code is not None else None
            reasons = _reasons(exc)
        elif isinstance(exc, InvalidResponse):
            status = getattr(exc.response, "status_code", None)
        if status is not None:
            answer = f"HTTP {status} {exc}"
            if status == 404:
                return "missing", answer
            if reasons & _FULL_REASONS or status == 507:
                return "full", answer
            if reasons & _RATE_REASONS or status in TRANSIENT_STATUS:
                return "transient", answer
            if status in (401, 403):
                return "denied", answer
            if status == 412:
                return "precondition", answer
            return "other", answer
        if isinstance(
            exc,
            google.auth.exceptions.DefaultCredentialsError | google.auth.exceptions.RefreshError,
        ):
            return "denied", None
        if isinstance(exc, _TRANSIENT_EXCEPTIONS):
            return "transient", None
        return "other", None

    # -- client calls -------------------------------------------------------------------

    def _put_object(self, name: str, body: bytes, *, if_absent: bool) -> None:
        condition = {"if_generation_match": 0} if if_absent else {}
        self.bucket.blob(name).upload_from_string(
            body,
            content_type="application/octet-stream",
            retry=None,
            timeout=self.timeout,
            **condition,
        )

    def _start_upload(self, name: str, key: str, *, if_absent: bool) -> _ResumableUpload:
        return _ResumableUpload(self, name, if_absent=if_absent)

    def _delete_object(self, name: str) -> bool:
        try:
            self.bucket.blob(name).delete(retry=None, timeout=self.timeout)
        except api_exceptions.NotFound:
            return False
        return True

    def _blob(self, name: str, key: str) -> storage.Blob | None:
        """The object's current metadata (size, generation), or ``None``."""
        blob = self.bucket.get_blob(name, retry=None, timeout=self.timeout)
        if blob is not None:
            _check_resource(blob._properties, ("size", "generation"), f"looking up {key}", key)
        return blob

    def _stat_object(self, name: str, key: str) -> ObjectStat | None:
        blob = self._blob(name, key)
        return None if blob is None else ObjectStat(int(blob.size or 0), str(blob.generation))

    def _open_object(self, name: str, key: str, offset: int, revision: str | None) -> ReadStream:
        blob = self._blob(name, key)
        if blob is None:
            raise ArtifactNotFoundError(f"no object {key!r}")
        generation = str(blob.generation)
        if revision is not None and revision != generation:
            raise StorageError(f"{key} changed while it was being read", key=key)
        size = int(blob.size or 0)
        # A blob without loaded metadata downloads from the client's endpoint, not from
        # the ``mediaLink`` the server advertised (which an emulator sets to its own URL).
        reader = self.bucket.blob(blob.name)
        position = offset
        buffer = b""

        def read(count: int) -> bytes:
            nonlocal position, buffer
            if not buffer and position < size:
                end = min(position + max(count, READ_CHUNK), size) - 1
                with self.mapped(f"reading {key}", key):
                    buffer = reader.download_as_bytes(
                        start=position,
                        end=end,
                        checksum=None,
                        if_generation_match=int(generation),
                        retry=None,
                        timeout=self.timeout,
                    )
                if len(buffer) != end - position + 1:
                    buffer = b""
                    raise StorageError(
                        f"{key}: asked for bytes {position}-{end}, got a different amount",
                        key=key,
                        retryable=True,
                    )
            data, buffer = buffer[:count], buffer[count:]
            position += len(data)
            return data

        return ReadStream(read, size=size, key=key, revision=generation)

    def _list_objects(
        self, name_prefix: str
    ) -> Iterator[tuple[str, int, datetime | None, str | None]]:
        what = f"listing {name_prefix or '/'}"
        blobs = self.client.list_blobs(
            self.bucket,
            prefix=name_prefix,
            page_size=LIST_PAGE_SIZE,
            retry=None,
            timeout=self.timeout,
        )
        pages = iter(blobs.pages)
        while True:
            try:
                page = next(pages, None)
            except (AttributeError, TypeError) as exc:  # the SDK got bytes, not JSON
                raise StorageError(
                    f"incomplete answer from GCS while {what}", retryable=True
                ) from exc
            if page is None:
                return
            _check_resource(page.raw_page, ("kind",), what, None)
            for blob in page:
                yield blob.name, int(blob.size or 0), blob.updated, blob.etag
