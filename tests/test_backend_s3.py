"""The S3 backend against moto's S3 server on 127.0.0.1: conformance and error mapping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from necrocode.artifact_store import StorageBackend
from necrocode.artifact_store.backends.s3 import S3Backend

from .cloud_servers import MotoS3
from .test_storage_backend import BackendConformance


class TestS3Backend(BackendConformance):
    scheme = "s3"

    @pytest.fixture
    def backend(self, moto_server: MotoS3, s3_bucket: str) -> Iterator[StorageBackend]:
        backend = S3Backend(s3_bucket, "team/store", endpoint_url=moto_server.url)
        yield backend
        backend.close()
