"""The GCS backend against fake-gcs-server on 127.0.0.1: conformance and error mapping."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator

import google.auth.exceptions
import pytest
from google.api_core import exceptions as api_exceptions

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
from necrocode.artifact_store.backends.gcs import GCSBackend

from .cloud_servers import FakeGCS, free_port
from .fault_proxy import CannedServer, canned_server
from .test_storage_backend import BackendConformance


class TestGCSBackend(BackendConformance):
    scheme = "gs"

    @pytest.fixture
    def backend(self, gcs_server: FakeGCS, gcs_bucket: str) -> Iterator[StorageBackend]:
        backend = GCSBackend(gcs_bucket, "team/store", endpoint_url=gcs_server.url)
        yield backend
        backend.close()


def _gcs_error(status: int, reason: str) -> bytes:
    error = {"code": status, "message": f"canned {reason}", "errors": [{"reason": reason}]}
    return json.dumps({"error": error}).encode()


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    with canned_server() as server:
        yield server


@pytest.mark.parametrize(
    ("status", "reason", "error", "retryable"),
    [
        (403, "forbidden", StoragePermissionError, False),
        (401, "required", StoragePermissionError, False),
        (403, "quotaExceeded", StorageFullError, False),
        (507, "insufficientStorage", StorageFullError, False),
        (412, "conditionNotMet", ObjectExistsError, False),
        (429, "rateLimitExceeded", StorageError, True),
        (403, "userRateLimitExceeded", StorageError, True),
        (500, "backendError", StorageError, True),
        (502, "badGateway", StorageError, True),
        (503, "backendError", StorageError, True),
        (504, "gatewayTimeout", StorageError, True),
        (400, "invalid", StorageError, False),
    ],
)
def test_error_mapping(
    canned: CannedServer, status: int, reason: str, error: type[Exception], retryable: bool
) -> None:
    """A real GCS JSON error answer becomes the typed error, with the cause chained."""
    canned.answer(status, _gcs_error(status, reason), "application/json")
    backend = GCSBackend("bucket", endpoint_url=canned.url)
    with pytest.raises(error) as caught:
        backend.upload("s/t/k", b"x")
    assert type(caught.value) is error
    # (A 401 makes the SDK try to refresh the anonymous credentials first.)
    cause_types = (api_exceptions.GoogleAPICallError, google.auth.exceptions.GoogleAuthError)
    assert isinstance(caught.value.__cause__, cause_types)
    assert isinstance(caught.value, StorageError)
    assert caught.value.retryable is retryable
    if error is StoragePermissionError:
        assert isinstance(caught.value, builtins.PermissionError)


def test_not_found_maps_to_artifact_not_found(canned: CannedServer) -> None:
    canned.answer(404, _gcs_error(404, "notFound"), "application/json")
    backend = GCSBackend("bucket", endpoint_url=canned.url)
    assert backend.exists("s/t/k") is False
    assert backend.delete("s/t/k") is False
    with pytest.raises(ArtifactNotFoundError):
        backend.open_read("s/t/k")
    with pytest.raises(ArtifactNotFoundError) as caught:
        list(backend.list_incomplete())  # nothing to list: GCS leaves no partial objects
        backend.upload("s/t/k", b"x")  # a missing bucket
    assert isinstance(caught.value.__cause__, api_exceptions.NotFound)


def test_connection_refused_is_transient() -> None:
    backend = GCSBackend("bucket", endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StorageError) as caught:
        backend.upload("s/t/k", b"x")
    assert caught.value.retryable
    assert caught.value.__cause__ is not None


def test_endpoint_ignoring_conditional_creates_is_refused(canned: CannedServer) -> None:
    canned.answer(200, json.dumps({"name": "x", "generation": "1"}).encode(), "application/json")
    with pytest.raises(ConfigError, match="ignores conditional creates"):
        GCSBackend("bucket", endpoint_url=canned.url).upload("s/t/k", b"x", if_absent=True)


def test_from_config_and_create_backend(gcs_server: FakeGCS, gcs_bucket: str) -> None:
    config = ArtifactStoreConfig(
        backend_type="gcs",
        backend={
            "bucket": gcs_bucket,
            "prefix": "team/arts",
            "project": "necrocode-test",
            "endpoint_url": gcs_server.url,
        },
    )
    backend = create_backend(config)
    assert isinstance(backend, RetryingBackend)
    assert isinstance(backend.inner, GCSBackend)
    assert backend.root_uri == f"gs://{gcs_bucket}/team/arts"
    backend.upload("a/b/c", b"x")
    direct = GCSBackend(gcs_bucket, endpoint_url=gcs_server.url)
    assert [info.key for info in direct.list("")] == ["team/arts/a/b/c"]
