"""Property-based fuzzing of the service from its own ``/openapi.json`` (schemathesis).

Every operation gets generated requests — valid and invalid paths, queries,
headers and bodies — over a real socket; no response may be a 5xx, and each
must match the schema (status, content type, body). The store is seeded with
an artifact so reads find something. The default run keeps the number of
examples small; the stress run fuzzes longer.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.service.app import create_app

from .conftest import ServiceFactory
from .service_server import ThreadServer

EXAMPLES = int(os.environ.get("NECROCODE_FUZZ_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzzed_service(service_factory: ServiceFactory) -> Iterator[ThreadServer]:
    server = service_factory()
    server.store.upload("1.1", "chat-app", "diff", b"--- a\n+++ b\n", tags=["ci"])
    server.store.upload("1.1", "chat-app", "log", b"log line\n")
    yield server


def _openapi() -> dict[str, Any]:
    """The schema ``/openapi.json`` serves (built once, before the tests are collected).

    Loaded here rather than from a running server: schemathesis' lazy fixture
    loader does not work with pytest 9. The test below checks it is what the
    running server serves.
    """
    with (
        tempfile.TemporaryDirectory() as scratch,
        ArtifactStore(ArtifactStoreConfig(base_path=Path(scratch))) as store,
    ):
        return create_app(store).openapi()


OPENAPI = _openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_the_fuzzed_schema_is_the_served_one(fuzzed_service: ThreadServer) -> None:
    served = httpx.get(f"{fuzzed_service.url}/openapi.json", timeout=30).json()
    assert served == OPENAPI


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors_and_responses_match_the_schema(
    case: schemathesis.Case, fuzzed_service: ThreadServer
) -> None:
    case.call_and_validate(base_url=fuzzed_service.url, checks=CHECKS, timeout=30)
