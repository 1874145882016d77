"""Configuration: the YAML keys of the spec as validated fields.

A configuration file looks like this (every key optional)::

    artifact_store:
      backend_type: filesystem      # filesystem | s3 | gcs
      base_path: ~/.necrocode/artifacts
      compression_enabled: true
      verify_checksum: true
      versioning_enabled: false
      retention_policy: {diff: 30, log: 7, test: 14}   # days
      storage_quota: {max_size_gb: 100, warn_threshold: 0.8}

A bad value raises :class:`~necrocode.artifact_store.exceptions.ConfigError`
naming the key and the reason (and the file, when loaded from one).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .exceptions import ConfigError

__all__ = [
    "DEFAULT_BASE_PATH",
    "DEFAULT_CONFIG_PATH",
    "ArtifactStoreConfig",
    "RetentionDays",
    "StorageQuota",
]

DEFAULT_CONFIG_PATH = Path("~/.necrocode/config/artifact-store.yaml")
DEFAULT_BASE_PATH = Path("~/.necrocode/artifacts")
#: Name of the folder, inside a filesystem store's base path, holding the index and locks.
STATE_DIRNAME = ".necrocode"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class RetentionDays(_Section):
    """Days an artifact of each type is kept before cleanup may delete it."""

    diff: int = Field(default=30, ge=0)
    log: int = Field(default=7, ge=0)
    test: int = Field(default=14, ge=0)

    def for_type(self, artifact_type: str) -> int:
        """Days kept for ``artifact_type`` (``"diff"``, ``"log"`` or ``"test"``)."""
        days: int = getattr(self, str(artifact_type))
        return days


class StorageQuota(_Section):
    """Upper bound on stored bytes; ``max_size_gb: null`` means no limit."""

    max_size_gb: float | None = Field(default=100.0, gt=0)
    warn_threshold: float = Field(default=0.8, gt=0, le=1)

    @property
    def max_bytes(self) -> int | None:
        """The quota in bytes (GiB-based: 1 GB here is 2**30 bytes), or ``None``."""
        return None if self.max_size_gb is None else int(self.max_size_gb * 2**30)


class ArtifactStoreConfig(_Section):
    """Every setting of the store, with the spec's defaults."""

    backend_type: Literal["filesystem", "s3", "gcs"] = "filesystem"
    base_path: Path = DEFAULT_BASE_PATH
    #: Where the local index, lock files and cleanup log live. Default: ``<base_path>/.necrocode``
    #: for the filesystem backend, ``~/.necrocode/state/<bucket-id>`` for cloud backends.
    state_dir: Path | None = None

    compression_enabled: bool = True
    compression_codec: Literal["gzip", "zstd"] = "gzip"
    compression_level: int = Field(default=6, ge=1, le=22)
    verify_checksum: bool = True
    #: fsync every write (filesystem backend). Turn off only for scratch stores and tests:
    #: writes stay all-or-nothing for readers but a power cut may lose recent ones.
    durable_writes: bool = True
    versioning_enabled: bool = False
    #: Summarise content while uploading (failed tests, changed files, log errors) so
    #: search can filter on it; see docs/insights.md.
    content_summaries: bool = True
    retention_policy: RetentionDays = Field(default_factory=RetentionDays)
    storage_quota: StorageQuota = Field(default_factory=StorageQuota)

    lock_timeout: float = Field(default=30.0, ge=0)
    lock_retry_interval: float = Field(default=0.05, gt=0)
    retry_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_base: float = Field(default=0.2, ge=0)
    retry_backoff_max: float = Field(default=5.0, ge=0)

    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_region: str | None = None
    s3_endpoint_url: str | None = None
    gcs_bucket: str | None = None
    gcs_prefix: str = ""
    gcs_project: str | None = None
    gcs_endpoint_url: str | None = None
    #: Cloud backends: what to do when the server ignores create-if-absent (see docs/cloud.md):
    #: ``require`` refuses to write; ``emulate`` checks then writes (one writing host only).
    conditional_writes: Literal["require", "emulate"] = "require"
    #: The search index: ``sqlite`` (default: embedded, one per host, in ``state_dir``) or
    #: ``postgresql://user@host:port/db``: one database shared by every host (docs/cloud.md).
    index_url: str | None = None
    #: Seconds to wait for the index database before an operation fails.
    index_connect_timeout: float = Field(default=10.0, gt=0)
    #: Seconds an upload's quota reservation survives without progress (shared index).
    index_reservation_timeout: float = Field(default=900.0, gt=0)

    @field_validator("base_path", "state_dir")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @field_validator("index_url")
    @classmethod
    def _check_index_url(cls, value: str | None) -> str | None:
        if value is None or value == "sqlite":
            return value
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"expected 'sqlite' or a postgresql:// URL, got {value!r}")
        return value

    @field_validator("s3_prefix", "gcs_prefix")
    @classmethod
    def _clean_prefix(cls, value: str) -> str:
        parts = [part for part in value.split("/") if part]
        if any(part in (".", "..") for part in parts):
            raise ValueError("must not contain '.' or '..' components")
        return "/".join(parts)

    @model_validator(mode="after")
    def _check_combinations(self) -> ArtifactStoreConfig:
        if self.compression_codec == "gzip" and self.compression_level > 9:
            raise ValueError("compression_level: gzip levels are 1-9")
        if self.backend_type == "s3" and not self.s3_bucket:
            raise ValueError("s3_bucket: required when backend_type is 's3'")
        if self.backend_type == "gcs" and not self.gcs_bucket:
            raise ValueError("gcs_bucket: required when backend_type is 'gcs'")
        return self

    @property
    def effective_state_dir(self) -> Path:
        """The folder for the index, locks and cleanup log (see ``state_dir``)."""
        if self.state_dir is not None:
            return self.state_dir
        if self.backend_type == "filesystem":
            return self.base_path / STATE_DIRNAME
        bucket, prefix = (
            (self.s3_bucket, self.s3_prefix)
            if self.backend_type == "s3"
            else (self.gcs_bucket, self.gcs_prefix)
        )
        ident = f"{self.backend_type}:{bucket}/{prefix}"
        digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
        return Path("~/.necrocode/state").expanduser() / f"{self.backend_type}-{bucket}-{digest}"

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> ArtifactStoreConfig:
        """Validate a mapping, either flat or wrapped in ``{"artifact_store": {...}}``."""
        settings = unwrap_settings(data, source=source)
        try:
            return cls.model_validate(settings)
        except ValidationError as exc:
            raise _config_error(exc, source) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> ArtifactStoreConfig:
        """Load and validate a YAML file."""
        file = Path(path).expanduser()
        return cls.from_dict(read_yaml_file(file), source=str(file))

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (paths as strings), loadable by :meth:`from_dict`."""
        return self.model_dump(mode="json")


def read_yaml_file(path: Path) -> Any:
    """The parsed content of a YAML configuration file (``ConfigError`` naming the file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", source=str(path)) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", source=str(path)) from exc


def unwrap_settings(data: Any, *, source: str | None = None) -> dict[str, Any]:
    """The settings mapping of ``data``, flat or wrapped in ``{"artifact_store": {...}}``."""
    if data is None:
        data = {}
    if isinstance(data, dict) and set(data) == {"artifact_store"}:
        data = data["artifact_store"] or {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{_where(source)}expected a mapping of settings, got {type(data).__name__}",
            source=source,
        )
    return data


def validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """``(dotted key, reason)`` for every problem pydantic found (key ``""`` if none)."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        if not key and ": " in message:
            # Errors raised by the model validator name their key in the message.
            key, message = message.split(": ", 1)
        problems.append((key, message))
    return problems


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def _config_error(exc: ValidationError, source: str | None) -> ConfigError:
    problems = validation_problems(exc)
    first_key = next((key for key, _ in problems if key), None)
    text = "; ".join(f"{key}: {message}" if key else message for key, message in problems)
    return ConfigError(
        f"{_where(source)}invalid configuration: {text}", key=first_key, source=source
    )
