"""The GCS backend against fake-gcs-server on 127.0.0.1: conformance and error mapping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from necrocode.artifact_store import StorageBackend
from necrocode.artifact_store.backends.gcs import GCSBackend

from .cloud_servers import FakeGCS
from .test_storage_backend import BackendConformance


class TestGCSBackend(BackendConformance):
    scheme = "gs"

    @pytest.fixture
    def backend(self, gcs_server: FakeGCS, gcs_bucket: str) -> Iterator[StorageBackend]:
        backend = GCSBackend(gcs_bucket, "team/store", endpoint_url=gcs_server.url)
        yield backend
        backend.close()
