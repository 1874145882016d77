"""Shared fixtures: an isolated environment and ready stores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig

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
