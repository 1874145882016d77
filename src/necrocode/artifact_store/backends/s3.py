"""S3 backend (boto3, extra ``s3``): AWS S3 or any S3-compatible endpoint.

Objects live at ``s3://<bucket>/<prefix>/<key>``. Credentials are found the way
boto3 always finds them (environment, shared files, instance roles); nothing
secret is logged. Uploads up to :data:`MULTIPART_THRESHOLD` are one
``PutObject``; larger ones stream as a multipart upload, one part in memory at a
time, aborted on any failure so no partial object or dangling upload remains.
Create-if-absent is ``If-None-Match: *`` (checked once, see :mod:`._cloud`).
botocore's own retries are off (one attempt): the store's
:class:`~necrocode.artifact_store.retry.RetryPolicy` is the only retry layer.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.handlers
import botocore.session

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

__all__ = ["MULTIPART_THRESHOLD", "PART_SIZE", "S3Backend", "map_s3_error"]

log = logging.getLogger("necrocode.artifact_store.backends.s3")

#: Objects larger than this are sent as multipart uploads.
MULTIPART_THRESHOLD = 8 * MiB
#: Size of each multipart part (S3's minimum is 5 MiB for all but the last).
PART_SIZE = 8 * MiB
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
#: Separates an object key from its upload id in :meth:`S3Backend.list_incomplete` keys.
UPLOAD_ID_MARK = "?uploadId="

_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404", "NoSuchUpload"}
_DENIED_CODES = {
    "AccessDenied",
    "Forbidden",
    "403",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "AccountProblem",
    "ExpiredToken",
    "InvalidToken",
}
_FULL_CODES = {"QuotaExceeded", "InsufficientStorage", "XMinioStorageFull", "StorageFull", "507"}
_PRECONDITION_CODES = {"PreconditionFailed", "412"}
_TRANSIENT_CODES = {
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "ConditionalRequestConflict",
    "OperationAborted",
}
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
#: Failures of the connection itself: the request may be sent again.
_TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.IncompleteReadError,
    ConnectionError,
    TimeoutError,
)


def map_s3_error(
    exc: Exception,
    what: str,
    key: str | None,
    precondition: type[StorageError] = ObjectExistsError,
) -> ArtifactStoreError:
    """The store's typed error for a boto3 failure (the caller chains ``exc``).

    The table: not found -> ``ArtifactNotFoundError``; 403 -> ``PermissionError``;
    quota or 507 -> ``StorageFullError``; 412 -> ``precondition``; connection
    errors, timeouts, 408/429/5xx -> ``StorageError(retryable=True)``; the rest
    -> ``StorageError``.
    """
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        detail = f"{what}: {code or status} {error.get('Message', '')}".rstrip()
        if code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket"):
            return ArtifactNotFoundError(f"no object {key!r} ({detail})")
        if code in _DENIED_CODES or status == 403:
            return PermissionError(f"access denied while {detail}", key=key)
        if code in _FULL_CODES or status == 507:
            return StorageFullError(f"storage full while {detail}", key=key)
        if code in _PRECONDITION_CODES or status == 412:
            return precondition(f"precondition failed while {detail}", key=key)
        if code in _TRANSIENT_CODES or status in _TRANSIENT_STATUS:
            return StorageError(f"transient S3 error while {detail}", key=key, retryable=True)
        return StorageError(f"S3 error while {detail}", key=key)
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return PermissionError(f"no usable S3 credentials while {what}: {exc}", key=key)
    if isinstance(exc, _TRANSIENT_EXCEPTIONS):
        return StorageError(
            f"S3 connection failed while {what}: {type(exc).__name__}: {exc}",
            key=key,
            retryable=True,
        )
    return StorageError(f"S3 error while {what}: {type(exc).__name__}: {exc}", key=key)


@contextlib.contextmanager
def _mapped(
    what: str, key: str | None, precondition: type[StorageError] = ObjectExistsError
) -> Iterator[None]:
    """Translate every boto3 error raised inside into the store's typed errors."""
    try:
        yield
    except ArtifactStoreError:
        raise
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise map_s3_error(exc, what, key, precondition) from exc
    except (ConnectionError, TimeoutError) as exc:
        raise map_s3_error(exc, what, key, precondition) from exc


_LOADER_LOCK = threading.Lock()
_LOADER: Any = None


def _new_client(service: str, **options: Any) -> Any:
    """A client from a fresh session (credentials are looked up anew) that shares
    botocore's data loader: loading the service models again for every client
    costs a few tenths of a second.
    """
    global _LOADER  # noqa: PLW0603 - a process-wide cache of read-only model data
    session = botocore.session.get_session()
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _LOADER)
    return boto3.session.Session(botocore_session=session).client(service, **options)


def _require(answer: dict[str, Any], fields: tuple[str, ...], what: str, key: str | None) -> None:
    """Refuse an answer that lacks what a complete one always has.

    A connection cut inside the headers can reach us as a bare ``200`` with no
    headers and no body; for a read that must never pass as an empty object.
    """
    missing = [name for name in fields if answer.get(name) is None]
    if missing:
        raise StorageError(
            f"incomplete answer from S3 while {what} (no {', '.join(missing)})",
            key=key,
            retryable=True,
        )


class _ChangedWhileReading(StorageError):
    """A resumed read found another revision of the object (never retried)."""


class S3Backend(StorageBackend):
    """Objects in an S3 bucket under an optional prefix.

    ``client`` may be injected (any boto3 S3 client); otherwise one is built
    with SDK retries off and the given timeouts.
    """

    name = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        conditional_writes: ConditionalMode = "require",
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.bucket = bucket
        self.keys = PrefixedKeys(prefix)
        if client is None:
            client = _new_client(
                "s3",
                region_name=region,
                endpoint_url=endpoint_url,
                config=botocore.config.Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=connect_timeout,
                    read_timeout=read_timeout,
                    s3={"addressing_style": "path"} if endpoint_url else None,
                ),
            )
        # botocore sends "Expect: 100-continue" with every body and, if the connection
        # closes right after the interim "100" status line, loops forever reading
        # empty lines (botocore.awsrequest._consume_headers): bodies go without it.
        client.meta.events.unregister("before-call.s3", botocore.handlers.add_expect_header)
        self.client = client
        self._probe = ConditionalWriteProbe(conditional_writes, endpoint_url or "S3")

    @classmethod
    def from_config(cls, config: ArtifactStoreConfig) -> S3Backend:
        """The backend the ``s3_*`` settings describe."""
        assert config.s3_bucket is not None  # the config validator requires it
        return cls(
            config.s3_bucket,
            config.s3_prefix,
            region=config.s3_region,
            endpoint_url=config.s3_endpoint_url,
            conditional_writes=config.conditional_writes,
        )

    @property
    def root_uri(self) -> str:
        base = f"s3://{self.bucket}"
        return f"{base}/{self.keys.prefix}" if self.keys.prefix else base

    # -- writes -----------------------------------------------------------------------

    def upload(self, key: str, data: WriteSource, *, if_absent: bool = False) -> int:
        name = self.keys.name(key)
        condition: dict[str, str] = {}
        if if_absent:
            if self._conditional_creates_work():
                condition = {"IfNoneMatch": "*"}
            elif self.exists(key):
                raise ObjectExistsError(f"{key} already exists", key=key)
        chunks = iter_source(data)
        head = bytearray()
        for chunk in chunks:
            head += chunk
            if len(head) > MULTIPART_THRESHOLD:
                return self._upload_multipart(name, key, head, chunks, condition)
        with _mapped(f"writing {key}", key):
            self.client.put_object(Bucket=self.bucket, Key=name, Body=bytes(head), **condition)
        return len(head)

    def _upload_multipart(
        self,
        name: str,
        key: str,
        head: bytearray,
        rest: Iterator[bytes],
        condition: dict[str, str],
    ) -> int:
        """Send parts of :data:`PART_SIZE` as the source yields them; abort on any failure."""
        with _mapped(f"starting a multipart upload of {key}", key):
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=name)[
                "UploadId"
            ]
        parts: list[dict[str, Any]] = []
        total = 0
        buffer = head

        def send(body: bytes) -> None:
            number = len(parts) + 1
            with _mapped(f"writing part {number} of {key}", key):
                answer = self.client.upload_part(
                    Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=body
                )
                _require(answer, ("ETag",), f"writing part {number} of {key}", key)
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})

        try:
            while True:
                while len(buffer) >= PART_SIZE:
                    send(bytes(buffer[:PART_SIZE]))
                    total += PART_SIZE
                    del buffer[:PART_SIZE]
                chunk = next(rest, None)
                if chunk is None:
                    break
                buffer += chunk
            if buffer or not parts:
                send(bytes(buffer))
                total += len(buffer)
            with _mapped(f"completing the multipart upload of {key}", key):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **condition,
                )
        except BaseException:
            self._abort(name, upload_id)
            raise
        return total

    def _abort(self, name: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except Exception as exc:  # the original failure matters more; list_incomplete sees it
            log.warning("could not abort multipart upload of %s: %s", name, exc)

    def _conditional_creates_work(self) -> bool:
        def create(name: str) -> None:
            with _mapped("probing conditional creates", name):
                self.client.put_object(Bucket=self.bucket, Key=name, Body=b"", IfNoneMatch="*")

        def delete(name: str) -> None:
            with _mapped("removing the probe object", name):
                self.client.delete_object(Bucket=self.bucket, Key=name)

        return self._probe.honoured(create, delete, self.keys.probe_name())

    def delete(self, key: str) -> bool:
        name = self.keys.name(key)
        if not self.exists(key):
            return False
        with _mapped(f"deleting {key}", key):
            self.client.delete_object(Bucket=self.bucket, Key=name)
        return True

    # -- reads ------------------------------------------------------------------------

    def open_read(self, key: str) -> ReadStream:
        return self.open_read_from(key, 0)

    def open_read_from(self, key: str, offset: int, *, revision: str | None = None) -> ReadStream:
        name = self.keys.name(key)
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if offset:
            request["Range"] = f"bytes={offset}-"
        if revision is not None:
            request["IfMatch"] = revision
        try:
            with _mapped(f"opening {key}", key, precondition=_ChangedWhileReading):
                answer = self.client.get_object(**request)
        except StorageError as exc:
            if offset and isinstance(exc.__cause__, botocore.exceptions.ClientError):
                code = exc.__cause__.response.get("Error", {}).get("Code")
                if code == "InvalidRange":  # resuming exactly at the end
                    return ReadStream(lambda count: b"", key=key, revision=revision)
            raise
        body = answer["Body"]
        try:
            _require(answer, ("ContentLength", "ETag"), f"opening {key}", key)
        except StorageError:
            body.close()
            raise
        size = offset + int(answer["ContentLength"])

        def read(count: int) -> bytes:
            with _mapped(f"reading {key}", key):
                data: bytes = body.read(count)
            return data

        return ReadStream(read, body.close, size=size, key=key, revision=answer.get("ETag"))

    def _head(self, key: str) -> dict[str, Any] | None:
        name = self.keys.name(key)
        try:
            with _mapped(f"looking up {key}", key):
                answer: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=name)
            _require(answer, ("ContentLength", "ETag"), f"looking up {key}", key)
        except ArtifactNotFoundError:
            return None
        return answer

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def get_size(self, key: str) -> int:
        answer = self._head(key)
        if answer is None:
            raise ArtifactNotFoundError(f"no object {key!r}")
        return int(answer["ContentLength"])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.keys.list_prefix(prefix))
        with _mapped(f"listing {prefix or '/'}", None):
            for page in pages:
                _require(page, ("IsTruncated",), f"listing {prefix or '/'}", None)
                for item in page.get("Contents", ()):
                    key = self.keys.key(item["Key"])
                    if key is not None:
                        yield ObjectInfo(
                            key, int(item["Size"]), item.get("LastModified"), item.get("ETag")
                        )

    def list_incomplete(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.keys.list_prefix(prefix))
        found: list[ObjectInfo] = []
        with _mapped(f"listing unfinished uploads under {prefix or '/'}", None):
            for page in pages:
                _require(page, ("IsTruncated",), "listing unfinished uploads", None)
                for upload in page.get("Uploads", ()):
                    key = self.keys.key(upload["Key"])
                    if key is not None:
                        marker = f"{key}{UPLOAD_ID_MARK}{upload['UploadId']}"
                        found.append(ObjectInfo(marker, 0, upload.get("Initiated")))
        return iter(sorted(found, key=lambda info: info.key))

    def remove_incomplete(self, key: str) -> bool:
        object_key, mark, upload_id = key.partition(UPLOAD_ID_MARK)
        if not mark or not upload_id:
            return False
        name = self.keys.name(object_key)
        try:
            with _mapped(f"aborting the upload of {object_key}", object_key):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except ArtifactNotFoundError:
            return False
        return True

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"S3Backend({self.root_uri!r})"
