"""Per-backend settings: a union keyed by ``backend_type``; the old flat keys still work.

The flat keys (``s3_bucket``, ``gcs_project``, ``conditional_writes``, ...) warn
with a ``DeprecationWarning`` that names the key to write instead, and give the
same configuration as the ``backend`` section.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from necrocode.artifact_store import ArtifactStoreConfig, ConfigError
from necrocode.artifact_store.config import GCSSettings, MemorySettings, S3Settings
from necrocode.artifact_store.settings import load_config, resolve_config


def test_backend_section_is_chosen_by_backend_type() -> None:
    config = ArtifactStoreConfig.from_dict(
        {
            "backend_type": "s3",
            "backend": {"bucket": "b", "prefix": "/p/q/", "connect_timeout": 2, "read_timeout": 3},
        }
    )
    assert isinstance(config.backend, S3Settings)
    assert (config.backend.bucket, config.backend.prefix) == ("b", "p/q")
    assert (config.backend.connect_timeout, config.backend.read_timeout) == (2.0, 3.0)
    assert config.to_dict()["backend"] == {
        "bucket": "b",
        "prefix": "p/q",
        "endpoint_url": None,
        "conditional_writes": "require",
        "connect_timeout": 2.0,
        "read_timeout": 3.0,
        "region": None,
    }
    assert ArtifactStoreConfig.from_dict(config.to_dict()) == config
    # backend_type may also be given inside the section.
    inside = ArtifactStoreConfig.from_dict({"backend": {"backend_type": "gcs", "bucket": "g"}})
    assert isinstance(inside.backend, GCSSettings) and inside.backend_type == "gcs"


def test_cloud_timeouts_default_to_seconds() -> None:
    settings = S3Settings(bucket="b")
    assert settings.connect_timeout <= 10 and settings.read_timeout <= 30


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({"backend_type": "gcs"}, "backend.bucket", "required when backend_type is 'gcs'"),
        (
            {"backend_type": "s3", "backend": {"bucket": "b", "project": "p"}},
            "backend.project",
            "unknown key",
        ),
        (
            {"backend_type": "s3", "backend": {"bucket": "b", "read_timeout": 0}},
            "backend.read_timeout",
            "greater than 0",
        ),
        (
            {"backend_type": "s3", "backend": {"backend_type": "gcs", "bucket": "b"}},
            "backend.backend_type",
            "does not match backend_type 's3'",
        ),
        ({"backend_type": "memory", "backend": {"space": ""}}, "backend.space", "at least 1"),
    ],
)
def test_bad_backend_settings_name_the_key(data: dict[str, object], key: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        ArtifactStoreConfig.from_dict(data)
    assert caught.value.key == key


def test_old_flat_keys_still_work_and_say_what_to_write() -> None:
    with pytest.warns(
        DeprecationWarning,
        match=r"s3_bucket, s3_endpoint_url are deprecated.*"
        r"write backend\.bucket, backend\.endpoint_url instead",
    ):
        old = ArtifactStoreConfig(
            backend_type="s3", s3_bucket="b", s3_endpoint_url="http://127.0.0.1:9"
        )
    new = ArtifactStoreConfig.from_dict(
        {"backend_type": "s3", "backend": {"bucket": "b", "endpoint_url": "http://127.0.0.1:9"}}
    )
    assert old == new
    # The state folder of a bucket did not move.
    assert old.effective_state_dir.name.startswith("s3-b-")
    with pytest.warns(DeprecationWarning, match="conditional_writes"):
        emulate = ArtifactStoreConfig(
            backend_type="gcs", gcs_bucket="g", conditional_writes="emulate"
        )
    assert isinstance(emulate.backend, GCSSettings)
    assert emulate.backend.conditional_writes == "emulate"


def test_old_environment_names_still_work(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "NECROCODE_ARTIFACT_STORE_BACKEND_TYPE": "gcs",
        "NECROCODE_ARTIFACT_STORE_GCS_BUCKET": "from-env",
    }
    with pytest.warns(DeprecationWarning, match="gcs_bucket"):
        resolved = resolve_config(environ=env)
    assert resolved.config.settings_for(GCSSettings).bucket == "from-env"
    sources = {s.key: (s.source, s.origin) for s in resolved.settings}
    assert sources["backend.bucket"] == ("env", "NECROCODE_ARTIFACT_STORE_GCS_BUCKET")
    env = {
        "HOME": str(tmp_path),
        "NECROCODE_ARTIFACT_STORE_BACKEND_TYPE": "memory",
        "NECROCODE_ARTIFACT_STORE_BACKEND__SPACE": "shared",
    }
    assert load_config(environ=env).settings_for(MemorySettings).space == "shared"


def test_settings_for_refuses_another_backend() -> None:
    with pytest.raises(ConfigError, match="'filesystem' has no S3Settings"):
        ArtifactStoreConfig().settings_for(S3Settings)


def test_every_backend_type_has_its_settings_and_its_backend() -> None:
    """The names backend_type takes, the settings union and the registry agree."""
    from typing import get_args

    from necrocode.artifact_store.backends import KNOWN_BACKENDS
    from necrocode.artifact_store.config import BackendSettings, BackendType

    union = get_args(get_args(BackendSettings)[0])
    tags = [get_args(cls.model_fields["backend_type"].annotation)[0] for cls in union]
    assert sorted(tags) == sorted(get_args(BackendType)) == sorted(KNOWN_BACKENDS)


def test_the_command_line_shows_the_deprecation(tmp_path: Path) -> None:
    """Python hides DeprecationWarnings raised under a tool; the store's log shows it."""
    import subprocess
    import sys

    from .conftest import subprocess_env

    config = tmp_path / "old.yaml"
    config.write_text("artifact_store:\n  backend_type: gcs\n  gcs_bucket: old-style\n")
    env = {**subprocess_env(), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "necrocode.artifact_store", "--config", str(config),
         "config", "show", "--json"],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "gcs_bucket is deprecated" in result.stderr
    assert "write backend.bucket instead" in result.stderr
    assert '"backend.bucket"' in result.stdout
