"""Google Cloud Storage backend (google-cloud-storage, extra ``gcs``).

Objects live at ``gs://<bucket>/<prefix>/<key>``. Credentials come from
Application Default Credentials; a plain-``http://`` ``gcs_endpoint_url`` (an
emulator) is accessed anonymously. Uploads up to
:data:`RESUMABLE_THRESHOLD` are one request; larger or longer streams go
through a resumable upload (``blob.open("wb")``) that is cancelled on any
failure, so nothing becomes visible. Reads fetch :data:`READ_CHUNK` ranges
pinned to the generation first seen. Create-if-absent is
``if_generation_match=0`` (checked once, see :mod:`._cloud`). Every call passes
``retry=None``: the store's retry policy is the only retry layer.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import google.auth.exceptions
import requests
import urllib3.exceptions
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

from ..exceptions import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    PermissionError,
    StorageError,
    StorageFullError,
)
from ..storage_backend import (
    MiB,
    ObjectExistsError,
    ObjectInfo,
    ReadStream,
    StorageBackend,
    WriteSource,
    iter_source,
)
from ._cloud import ConditionalMode, ConditionalWriteProbe, PrefixedKeys

if TYPE_CHECKING:
    from ..config import ArtifactStoreConfig

__all__ = ["READ_CHUNK", "RESUMABLE_THRESHOLD", "GCSBackend", "map_gcs_error"]

log = logging.getLogger("necrocode.artifact_store.backends.gcs")

#: Objects larger than this (or streams longer than it) use a resumable upload.
RESUMABLE_THRESHOLD = 8 * MiB
#: Piece size of resumable uploads (a multiple of 256 KiB, as GCS requires).
RESUMABLE_CHUNK = 8 * MiB
#: Size of each ranged read request.
READ_CHUNK = 8 * MiB
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
LIST_PAGE_SIZE = 1000

_FULL_REASONS = {"quotaExceeded", "storageQuotaExceeded", "insufficientStorage"}
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
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


def map_gcs_error(
    exc: Exception,
    what: str,
    key: str | None,
    precondition: type[StorageError] = ObjectExistsError,
) -> ArtifactStoreError:
    """The store's typed error for a google-cloud-storage failure (the caller chains ``exc``).

    The table: 404 -> ``ArtifactNotFoundError``; 401/403 -> ``PermissionError``
    (403 for a quota -> ``StorageFullError``, for a rate limit -> retryable);
    507 -> ``StorageFullError``; 412 -> ``precondition``; connection errors,
    timeouts, 408/429/5xx -> ``StorageError(retryable=True)``; the rest ->
    ``StorageError``.
    """
    status: int | None = None
    reasons: set[str] = set()
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        status = int(exc.code) if exc.code is not None else None
        reasons = _reasons(exc)
    elif isinstance(exc, InvalidResponse):
        status = getattr(exc.response, "status_code", None)
    if status is not None:
        detail = f"{what}: HTTP {status} {exc}"
        if status == 404:
            return ArtifactNotFoundError(f"no object {key!r} ({detail})")
        if reasons & _FULL_REASONS or status == 507:
            return StorageFullError(f"storage full while {detail}", key=key)
        if reasons & _RATE_REASONS or status in _TRANSIENT_STATUS:
            return StorageError(f"transient GCS error while {detail}", key=key, retryable=True)
        if status in (401, 403):
            return PermissionError(f"access denied while {detail}", key=key)
        if status == 412:
            return precondition(f"precondition failed while {detail}", key=key)
        return StorageError(f"GCS error while {detail}", key=key)
    if isinstance(
        exc, google.auth.exceptions.DefaultCredentialsError | google.auth.exceptions.RefreshError
    ):
        return PermissionError(f"no usable GCS credentials while {what}: {exc}", key=key)
    if isinstance(exc, _TRANSIENT_EXCEPTIONS):
        return StorageError(
            f"GCS connection failed while {what}: {type(exc).__name__}: {exc}",
            key=key,
            retryable=True,
        )
    return StorageError(f"GCS error while {what}: {type(exc).__name__}: {exc}", key=key)


_SDK_ERRORS: tuple[type[BaseException], ...] = (
    api_exceptions.GoogleAPIError,
    InvalidResponse,
    google.auth.exceptions.GoogleAuthError,
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


@contextlib.contextmanager
def _mapped(
    what: str, key: str | None, precondition: type[StorageError] = ObjectExistsError
) -> Iterator[None]:
    """Translate every SDK error raised inside into the store's typed errors."""
    try:
        yield
    except ArtifactStoreError:
        raise
    except _SDK_ERRORS as exc:
        raise map_gcs_error(exc, what, key, precondition) from exc  # type: ignore[arg-type]


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


class GCSBackend(StorageBackend):
    """Objects in a GCS bucket under an optional prefix.

    ``client`` may be injected (a ``google.cloud.storage.Client``).
    """

    name = "gcs"

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
        self.keys = PrefixedKeys(prefix)
        self.bucket_name = bucket
        if client is None:
            with _mapped("creating the GCS client", None):
                client = _client(project, endpoint_url)
        # Recent SDKs fetch bucket metadata in a background thread, with their own
        # retries, only to decorate tracing spans: an extra request per bucket that
        # escapes the retry policy. Their code skips it when this cache is unset.
        if getattr(client, "_bucket_metadata_cache", None) is not None:
            client._bucket_metadata_cache = None
        self.client = client
        self.bucket = client.bucket(bucket)
        self.timeout = (connect_timeout, read_timeout)
        self._probe = ConditionalWriteProbe(conditional_writes, endpoint_url or "GCS")

    @classmethod
    def from_config(cls, config: ArtifactStoreConfig) -> GCSBackend:
        """The backend the ``gcs_*`` settings describe."""
        assert config.gcs_bucket is not None  # the config validator requires it
        return cls(
            config.gcs_bucket,
            config.gcs_prefix,
            project=config.gcs_project,
            endpoint_url=config.gcs_endpoint_url,
            conditional_writes=config.conditional_writes,
        )

    @property
    def root_uri(self) -> str:
        base = f"gs://{self.bucket_name}"
        return f"{base}/{self.keys.prefix}" if self.keys.prefix else base

    # -- writes -----------------------------------------------------------------------

    def upload(self, key: str, data: WriteSource, *, if_absent: bool = False) -> int:
        name = self.keys.name(key)
        condition: dict[str, int] = {}
        if if_absent:
            if self._conditional_creates_work():
                condition = {"if_generation_match": 0}
            elif self.exists(key):
                raise ObjectExistsError(f"{key} already exists", key=key)
        chunks = iter_source(data)
        head = bytearray()
        for chunk in chunks:
            head += chunk
            if len(head) > RESUMABLE_THRESHOLD:
                return self._upload_resumable(name, key, head, chunks, condition)
        with _mapped(f"writing {key}", key):
            self.bucket.blob(name).upload_from_string(
                bytes(head),
                content_type="application/octet-stream",
                retry=None,
                timeout=self.timeout,
                **condition,
            )
        return len(head)

    def _upload_resumable(
        self, name: str, key: str, head: bytearray, rest: Iterator[bytes], condition: dict[str, int]
    ) -> int:
        """Stream through a resumable session; cancel the session on any failure."""
        blob = self.bucket.blob(name, chunk_size=RESUMABLE_CHUNK)
        with _mapped(f"starting a resumable upload of {key}", key):
            writer = blob.open(
                "wb",
                ignore_flush=True,
                retry=None,
                timeout=self.timeout,
                content_type="application/octet-stream",
                **condition,
            )
        total = len(head)
        try:
            with _mapped(f"writing {key}", key):
                writer.write(bytes(head))
                del head[:]
                for chunk in rest:
                    writer.write(chunk)
                    total += len(chunk)
                writer.close()
        except BaseException:
            try:
                writer.terminate()
            except Exception as exc:  # keep the original failure; the session expires anyway
                log.warning("could not cancel the resumable upload of %s: %s", key, exc)
            raise
        return total

    def _conditional_creates_work(self) -> bool:
        def create(name: str) -> None:
            with _mapped("probing conditional creates", name):
                self.bucket.blob(name).upload_from_string(
                    b"", retry=None, timeout=self.timeout, if_generation_match=0
                )

        def delete(name: str) -> None:
            with _mapped("removing the probe object", name):
                self.bucket.blob(name).delete(retry=None, timeout=self.timeout)

        return self._probe.honoured(create, delete, self.keys.probe_name())

    def delete(self, key: str) -> bool:
        name = self.keys.name(key)
        try:
            with _mapped(f"deleting {key}", key):
                self.bucket.blob(name).delete(retry=None, timeout=self.timeout)
        except ArtifactNotFoundError:
            return False
        return True

    # -- reads ------------------------------------------------------------------------

    def _blob(self, key: str) -> storage.Blob | None:
        """The object's current metadata (size, generation), or ``None``."""
        blob = self.bucket.get_blob(self.keys.name(key), retry=None, timeout=self.timeout)
        if blob is not None:
            _check_resource(blob._properties, ("size", "generation"), f"looking up {key}", key)
        return blob

    def open_read(self, key: str) -> ReadStream:
        return self.open_read_from(key, 0)

    def open_read_from(self, key: str, offset: int, *, revision: str | None = None) -> ReadStream:
        with _mapped(f"opening {key}", key):
            blob = self._blob(key)
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
                with _mapped(f"reading {key}", key):
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

    def exists(self, key: str) -> bool:
        with _mapped(f"looking up {key}", key):
            return self._blob(key) is not None

    def get_size(self, key: str) -> int:
        with _mapped(f"looking up {key}", key):
            blob = self._blob(key)
        if blob is None:
            raise ArtifactNotFoundError(f"no object {key!r}")
        return int(blob.size or 0)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        what = f"listing {prefix or '/'}"
        with _mapped(what, None):
            blobs = self.client.list_blobs(
                self.bucket,
                prefix=self.keys.list_prefix(prefix),
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
                    key = self.keys.key(blob.name)
                    if key is not None:
                        yield ObjectInfo(key, int(blob.size or 0), blob.updated, blob.etag)

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"GCSBackend({self.root_uri!r})"
