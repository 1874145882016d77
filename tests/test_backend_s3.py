"""The S3 backend against moto's S3 server on 127.0.0.1: conformance and error mapping."""

from __future__ import annotations

import builtins
from collections.abc import Iterator

import botocore.exceptions
import pytest

from necrocode.artifact_store import (
    ArtifactNotFoundError,
    ArtifactStoreConfig,
    ConfigError,
    RetryingBackend,
    StorageBackend,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from necrocode.artifact_store.backends import create_backend
from necrocode.artifact_store.backends.base import ObjectExistsError
from necrocode.artifact_store.backends.s3 import S3Backend

from .cloud_servers import S3_ENV, MotoS3, free_port
from .fault_proxy import CannedServer, canned_server
from .test_storage_backend import BackendConformance


class TestS3Backend(BackendConformance):
    scheme = "s3"

    @pytest.fixture
    def backend(self, moto_server: MotoS3, s3_bucket: str) -> Iterator[StorageBackend]:
        backend = S3Backend(s3_bucket, "team/store", endpoint_url=moto_server.url)
        yield backend
        backend.close()


def _s3_error(code: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>canned {code}</Message><RequestId>r1</RequestId></Error>"
    ).encode()


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    with canned_server() as server:
        yield server


@pytest.mark.parametrize(
    ("status", "code", "error", "retryable"),
    [
        (404, "NoSuchKey", ArtifactNotFoundError, False),
        (403, "AccessDenied", StoragePermissionError, False),
        (403, "SignatureDoesNotMatch", StoragePermissionError, False),
        (400, "QuotaExceeded", StorageFullError, False),
        (507, "InsufficientStorage", StorageFullError, False),
        (412, "PreconditionFailed", ObjectExistsError, False),
        (429, "TooManyRequests", StorageError, True),
        (503, "SlowDown", StorageError, True),
        (500, "InternalError", StorageError, True),
        (502, "BadGateway", StorageError, True),
        (504, "GatewayTimeout", StorageError, True),
        (400, "InvalidArgument", StorageError, False),
        (404, "NoSuchBucket", StorageError, False),
    ],
)
def test_error_mapping(
    canned: CannedServer,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    code: str,
    error: type[Exception],
    retryable: bool,
) -> None:
    """A real S3 error answer over HTTP becomes the typed error, with the cause chained."""
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    canned.answer(status, _s3_error(code), "application/xml")
    backend = S3Backend("bucket", endpoint_url=canned.url)
    with pytest.raises(error) as caught:
        if error is ObjectExistsError:  # a 412 only means "exists" for a write
            backend.upload("s/t/k", b"x")
        else:
            backend.open_read("s/t/k")
    assert type(caught.value) is error
    assert isinstance(caught.value.__cause__, botocore.exceptions.ClientError)
    if isinstance(caught.value, StorageError):
        assert caught.value.retryable is retryable
    if error is StoragePermissionError:
        assert isinstance(caught.value, builtins.PermissionError)


def test_head_without_a_body_maps_by_status(
    canned: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    backend = S3Backend("bucket", endpoint_url=canned.url)
    canned.answer(404, b"", "application/xml")
    assert backend.exists("s/t/k") is False
    canned.answer(403, b"", "application/xml")
    with pytest.raises(StoragePermissionError):
        backend.exists("s/t/k")
    canned.answer(503, b"", "application/xml")
    with pytest.raises(StorageError) as caught:
        backend.get_size("s/t/k")
    assert caught.value.retryable


def test_connection_refused_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    backend = S3Backend("bucket", endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StorageError) as caught:
        backend.upload("s/t/k", b"x")
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, botocore.exceptions.EndpointConnectionError)


def test_missing_credentials_are_a_permission_error(moto_server: MotoS3) -> None:
    backend = S3Backend("bucket", endpoint_url=moto_server.url)  # clean_environ: no keys
    with pytest.raises(StoragePermissionError) as caught:
        backend.exists("s/t/k")
    assert isinstance(caught.value.__cause__, botocore.exceptions.NoCredentialsError)


def test_endpoint_ignoring_conditional_creates_is_refused(
    canned: CannedServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that answers 200 to every create-if-absent would let hosts overwrite versions."""
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    canned.answer(200, b"", "application/xml")
    with pytest.raises(ConfigError, match="ignores conditional creates"):
        S3Backend("bucket", endpoint_url=canned.url).upload("s/t/k", b"x", if_absent=True)
    assert any("ignores conditional creates" in r.getMessage() for r in caplog.records)


def test_emulated_conditional_creates_fall_back_to_check_then_write(
    moto_server: MotoS3, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = S3Backend(s3_bucket, endpoint_url=moto_server.url, conditional_writes="emulate")
    backend._probe._honoured = False  # as if the probe had found the header ignored
    backend.upload("s/t/k", b"first", if_absent=True)
    with pytest.raises(ObjectExistsError):
        backend.upload("s/t/k", b"second", if_absent=True)
    assert backend.download("s/t/k") == b"first"


def test_from_config_and_create_backend(moto_server: MotoS3, s3_bucket: str) -> None:
    config = ArtifactStoreConfig(
        backend_type="s3",
        backend={
            "bucket": s3_bucket,
            "prefix": "/team/arts/",
            "region": "us-east-1",
            "endpoint_url": moto_server.url,
        },
        retry_attempts=4,
    )
    backend = create_backend(config)
    assert isinstance(backend, RetryingBackend)
    assert isinstance(backend.inner, S3Backend)
    assert backend.policy.attempts == 4
    assert backend.root_uri == f"s3://{s3_bucket}/team/arts"
    backend.upload("a/b/c", b"x")
    listed = moto_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [item["Key"] for item in listed] == ["team/arts/a/b/c"]
