"""Shared fixtures: an isolated environment and ready stores."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.service.settings import ServiceSettings

from .cloud_servers import S3_ENV, FakeGCS, MotoS3
from .pg_server import PostgresServer
from .service_server import ThreadServer

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees the developer's configuration or writes under the real home folder."""
    for name in list(os.environ):
        if name.startswith(("NECROCODE_", "AWS_", "GOOGLE_", "STORAGE_EMULATOR")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


def subprocess_env() -> dict[str, str]:
    """Environment for child Python processes: import this checkout's sources."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def store_config(tmp_path: Path) -> ArtifactStoreConfig:
    """A filesystem store configuration in a fresh temporary folder."""
    return ArtifactStoreConfig(base_path=tmp_path / "artifacts")


@pytest.fixture
def store(store_config: ArtifactStoreConfig) -> Iterator[ArtifactStore]:
    """A fresh filesystem store, closed after the test."""
    with ArtifactStore(store_config) as opened:
        yield opened


@pytest.fixture
def versioned_store(tmp_path: Path) -> Iterator[ArtifactStore]:
    """A fresh filesystem store with versioning on."""
    config = ArtifactStoreConfig(base_path=tmp_path / "versioned", versioning_enabled=True)
    with ArtifactStore(config) as opened:
        yield opened


# -- real object-store servers on 127.0.0.1 (see cloud_servers.py) ----------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoS3]:
    """moto's S3 server, once per session."""
    with MotoS3.running() as server:
        yield server


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[FakeGCS]:
    """fake-gcs-server (memory backend), once per session."""
    with FakeGCS.running() as server:
        yield server


@pytest.fixture
def s3_bucket(moto_server: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty bucket on the moto server, emptied and deleted after the test.

    Dummy credentials are set in the environment, as boto3 looks for them there.
    """
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    name = moto_server.new_bucket()
    yield name
    moto_server.drop_bucket(name)


@pytest.fixture
def memory_space() -> Iterator[str]:
    """A fresh, empty space of the in-memory backend, forgotten after the test."""
    from necrocode.artifact_store.backends.memory import MemoryBackend
    from necrocode.artifact_store.config import MemorySettings

    name = f"test-{uuid.uuid4().hex}"
    yield name
    MemoryBackend.drop_space(name)
    for prefix in ("", "prefix"):  # the prefixes the tests use: their state folders go too
        state = MemorySettings(space=name, prefix=prefix).default_state_dir(Path())
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def gcs_bucket(gcs_server: FakeGCS) -> Iterator[str]:
    """A fresh, empty bucket on the GCS emulator, deleted after the test."""
    name = gcs_server.new_bucket()
    yield name
    gcs_server.drop_bucket(name)


# -- the artifact service on 127.0.0.1 (see service_server.py) ---------------------------

ServiceFactory = Callable[..., ThreadServer]


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Start services: ``service_factory(store=None, **settings)``; all stopped after the test.

    Without ``store`` each gets a fresh versioned filesystem store in ``tmp_path``.
    """
    with contextlib.ExitStack() as stack:
        count = 0

        def start(store: ArtifactStore | None = None, **settings: Any) -> ThreadServer:
            nonlocal count
            count += 1
            if store is None:
                config = ArtifactStoreConfig(
                    base_path=tmp_path / f"service-{count}", versioning_enabled=True
                )
                store = stack.enter_context(ArtifactStore(config))
            options = ServiceSettings(host="127.0.0.1", port=0, **settings)
            return stack.enter_context(ThreadServer(store, options))

        yield start


@pytest.fixture
def service(service_factory: ServiceFactory) -> ThreadServer:
    """The service over a fresh versioned store, without tokens."""
    return service_factory()


# -- a real PostgreSQL server (see pg_server.py) ------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """PostgreSQL once per session: ``NECRO_PG_URL``, or a throwaway local cluster."""
    with PostgresServer.running() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    url = pg_server.new_database()
    yield url
    pg_server.drop_database(url)
