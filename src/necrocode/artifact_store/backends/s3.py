"""S3 backend (boto3, extra ``s3``): AWS S3 or any S3-compatible endpoint.

Objects live at ``s3://<bucket>/<prefix>/<key>``. Credentials are found the way
boto3 always finds them (environment, shared files, instance roles); nothing
secret is logged. Uploads up to 8 MiB are one ``PutObject``; larger ones stream
as a multipart upload, one :data:`PART_SIZE` part in memory at a time, aborted
on any failure so no partial object or dangling upload remains.
Create-if-absent is ``If-None-Match: *``. The shared logic (streaming,
conditional creates, error table) is :class:`~.cloud.CloudBackend`'s; this
module holds the boto3 calls. botocore's own retries are off (one attempt):
the store's :class:`~necrocode.artifact_store.backends.retry.RetryPolicy` is the only
retry layer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.handlers
import botocore.session

from ..config import CloudSettings, S3Settings
from ..exceptions import ArtifactNotFoundError, StorageError
from .base import MiB, ObjectInfo, ReadStream
from .cloud import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    TRANSIENT_STATUS,
    CloudBackend,
    ConditionalMode,
    ErrorKind,
    ObjectStat,
)

__all__ = ["PART_SIZE", "S3Backend"]

#: Size of each multipart part (S3's minimum is 5 MiB for all but the last).
PART_SIZE = 8 * MiB
#: Separates an object key from its upload id in :meth:`S3Backend.list_incomplete` keys.
UPLOAD_ID_MARK = "?uploadId="

#: Error codes by what they mean; a code not listed is judged by its HTTP status.
_CODES: dict[ErrorKind, frozenset[str]] = {
    "missing": frozenset({"NoSuchKey", "NotFound", "404", "NoSuchUpload"}),
    "denied": frozenset(
        {
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
    ),
    "full": frozenset(
        {"QuotaExceeded", "InsufficientStorage", "XMinioStorageFull", "StorageFull", "507"}
    ),
    "precondition": frozenset({"PreconditionFailed", "412"}),
    "transient": frozenset(
        {
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
    ),
}
_STATUS: dict[ErrorKind, frozenset[int]] = {
    "missing": frozenset({404}),
    "denied": frozenset({403}),
    "full": frozenset({507}),
    "precondition": frozenset({412}),
    "transient": TRANSIENT_STATUS,
}
#: Failures of the connection itself: the request may be sent again.
_TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.IncompleteReadError,
    ConnectionError,
    TimeoutError,
)


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


class _MultipartUpload:
    """One multipart upload: parts of :data:`PART_SIZE` sent as the bytes arrive."""

    def __init__(self, backend: S3Backend, name: str, key: str, *, if_absent: bool) -> None:
        self.backend = backend
        self.name = name
        self.key = key
        self.condition = {"IfNoneMatch": "*"} if if_absent else {}
        self.upload_id: str = backend.client.create_multipart_upload(
            Bucket=backend.bucket, Key=name
        )["UploadId"]
        self.parts: list[dict[str, Any]] = []
        self.buffer = bytearray()

    def _send(self, body: bytes) -> None:
        number = len(self.parts) + 1
        what = f"writing part {number} of {self.key}"
        with self.backend.mapped(what, self.key):
            answer = self.backend.client.upload_part(
                Bucket=self.backend.bucket,
                Key=self.name,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
            )
            _require(answer, ("ETag",), what, self.key)
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        while len(self.buffer) >= PART_SIZE:
            self._send(bytes(self.buffer[:PART_SIZE]))
            del self.buffer[:PART_SIZE]

    def finish(self) -> None:
        if self.buffer or not self.parts:
            self._send(bytes(self.buffer))
            self.buffer.clear()
        self.backend.client.complete_multipart_upload(
            Bucket=self.backend.bucket,
            Key=self.name,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
            **self.condition,
        )

    def abort(self) -> None:
        self.backend.client.abort_multipart_upload(
            Bucket=self.backend.bucket, Key=self.name, UploadId=self.upload_id
        )


class S3Backend(CloudBackend):
    """Objects in an S3 bucket under an optional prefix.

    ``client`` may be injected (any boto3 S3 client); otherwise one is built
    with SDK retries off and the given timeouts (seconds).
    """

    name = "s3"
    settings_class = S3Settings
    scheme = "s3"
    vendor = "S3"
    delete_reports_missing = False  # DeleteObject answers 204 for a missing key too
    sdk_errors = (
        botocore.exceptions.BotoCoreError,
        botocore.exceptions.ClientError,
        ConnectionError,
        TimeoutError,
    )

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
        super().__init__(
            bucket,
            prefix,
            client=client,
            endpoint=endpoint_url or "S3",
            conditional_writes=conditional_writes,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self.bucket = bucket

    @classmethod
    def options_of(cls, settings: CloudSettings) -> dict[str, Any]:
        assert isinstance(settings, S3Settings)
        return {**super().options_of(settings), "region": settings.region}

    def classify_error(self, exc: BaseException) -> tuple[ErrorKind, str | None]:
        if isinstance(exc, botocore.exceptions.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            answer = f"{code or status} {error.get('Message', '')}"
            if code == "NoSuchBucket":
                return "other", answer
            for kind, codes in _CODES.items():
                if code in codes or status in _STATUS[kind]:
                    return kind, answer
            return "other", answer
        if isinstance(
            exc,
            botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError,
        ):
            return "denied", None
        if isinstance(exc, _TRANSIENT_EXCEPTIONS):
            return "transient", None
        return "other", None

    # -- client calls -------------------------------------------------------------------

    def _put_object(self, name: str, body: bytes, *, if_absent: bool) -> None:
        condition = {"IfNoneMatch": "*"} if if_absent else {}
        self.client.put_object(Bucket=self.bucket, Key=name, Body=body, **condition)

    def _start_upload(self, name: str, key: str, *, if_absent: bool) -> _MultipartUpload:
        return _MultipartUpload(self, name, key, if_absent=if_absent)

    def _delete_object(self, name: str) -> bool:
        self.client.delete_object(Bucket=self.bucket, Key=name)
        return True

    def _stat_object(self, name: str, key: str) -> ObjectStat | None:
        try:
            answer: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=name)
        except botocore.exceptions.ClientError as exc:
            if self.classify_error(exc)[0] == "missing":
                return None
            raise
        _require(answer, ("ContentLength", "ETag"), f"looking up {key}", key)
        return ObjectStat(int(answer["ContentLength"]), answer["ETag"])

    def _open_object(self, name: str, key: str, offset: int, revision: str | None) -> ReadStream:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if offset:
            request["Range"] = f"bytes={offset}-"
        if revision is not None:
            request["IfMatch"] = revision
        try:
            with self.mapped(f"opening {key}", key, precondition=_ChangedWhileReading):
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
            with self.mapped(f"reading {key}", key):
                data: bytes = body.read(count)
            return data

        return ReadStream(read, body.close, size=size, key=key, revision=answer.get("ETag"))

    def _list_objects(
        self, name_prefix: str
    ) -> Iterator[tuple[str, int, datetime | None, str | None]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=name_prefix):
            _require(page, ("IsTruncated",), f"listing {name_prefix or '/'}", None)
            for item in page.get("Contents", ()):
                yield item["Key"], int(item["Size"]), item.get("LastModified"), item.get("ETag")

    # -- leftovers of interrupted multipart uploads ----------------------------------------

    def list_incomplete(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.keys.list_prefix(prefix))
        found: list[ObjectInfo] = []
        with self.mapped(f"listing unfinished uploads under {prefix or '/'}", None):
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
            with self.mapped(f"aborting the upload of {object_key}", object_key):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except ArtifactNotFoundError:
            return False
        return True
