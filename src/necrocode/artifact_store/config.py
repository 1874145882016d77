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
      backend:                      # the chosen backend's own settings (cloud example)
        bucket: team-artifacts
        prefix: necrocode
        endpoint_url: http://127.0.0.1:9000
        connect_timeout: 5          # seconds
        read_timeout: 15

``backend`` is a union keyed by ``backend_type``: each backend has its own
settings class (:class:`FilesystemSettings`, :class:`S3Settings`,
:class:`GCSSettings`, :class:`MemorySettings`). The old flat keys
(``s3_bucket``, ``gcs_project``, ``conditional_writes``, ...) still work for one
release and warn (``DeprecationWarning``) with the key to write instead.

A bad value raises :class:`~necrocode.artifact_store.exceptions.ConfigError`
naming the key and the reason (and the file, when loaded from one).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from .exceptions import ConfigError
from .models import MAX_RETENTION_DAYS, ArtifactType

__all__ = [
    "DEFAULT_BASE_PATH",
    "DEFAULT_CONFIG_PATH",
    "FLAT_BACKEND_KEYS",
    "ArtifactStoreConfig",
    "BackendSettings",
    "CloudSettings",
    "FilesystemSettings",
    "GCSSettings",
    "MemorySettings",
    "RetentionDays",
    "S3Settings",
    "StorageQuota",
]

log = logging.getLogger("necrocode.artifact_store.config")

DEFAULT_CONFIG_PATH = Path("~/.necrocode/config/artifact-store.yaml")
DEFAULT_BASE_PATH = Path("~/.necrocode/artifacts")
#: Name of the folder, inside a filesystem store's base path, holding the index and locks.
STATE_DIRNAME = ".necrocode"


#: Upper bounds of numeric settings: beyond them a value cannot be meant, and would
#: overflow a computation (sleep lengths, byte counts, dates) long after loading.
MAX_QUOTA_GB = 8_000_000_000  # just under 2**63 bytes
MAX_WAIT_S = 7 * 86400.0
MAX_RETRY_INTERVAL_S = 3600.0


class _Section(BaseModel):
    # inf and nan are refused in every float setting (YAML's .inf, .nan).
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )


class _RetentionMapping(_Section):
    """What every ``RetentionDays`` offers: a mapping artifact type -> days kept."""

    def for_type(self, artifact_type: str) -> int:
        """Days kept for ``artifact_type`` (``"diff"``, ``"log"``, ``"test"``, ...)."""
        kind = ArtifactType.parse(artifact_type)
        days: int = getattr(self, kind.value)
        return days

    def as_dict(self) -> dict[str, int]:
        """``{type: days}`` for every artifact type, in the registry's order."""
        return {kind.value: self.for_type(kind.value) for kind in ArtifactType}

    def __getitem__(self, artifact_type: str) -> int:
        return self.for_type(artifact_type)


if TYPE_CHECKING:

    class RetentionDays(_RetentionMapping):
        """Days an artifact of each type is kept (a field per :class:`ArtifactType`)."""

        def __init__(self, **days: int) -> None: ...
        def __getattr__(self, artifact_type: str) -> int: ...

else:
    #: Days an artifact of each type is kept before cleanup may delete it: one field per
    #: :class:`~.models.ArtifactType` (``diff``, ``log``, ``test``, ...), defaulting to
    #: the type's ``default_retention_days``. Built from the registry of types.
    RetentionDays = create_model(
        "RetentionDays",
        __base__=_RetentionMapping,
        __module__=__name__,
        __doc__="Days an artifact of each type is kept before cleanup may delete it.",
        **{
            kind.value: (
                int,
                Field(default=kind.default_retention_days, ge=0, le=MAX_RETENTION_DAYS),
            )
            for kind in ArtifactType
        },
    )


class StorageQuota(_Section):
    """Upper bound on stored bytes; ``max_size_gb: null`` means no limit."""

    max_size_gb: float | None = Field(default=100.0, gt=0, le=MAX_QUOTA_GB)
    warn_threshold: float = Field(default=0.8, gt=0, le=1)

    @property
    def max_bytes(self) -> int | None:
        """The quota in bytes (GiB-based: 1 GB here is 2**30 bytes), or ``None``."""
        return None if self.max_size_gb is None else int(self.max_size_gb * 2**30)


def _clean_prefix(value: str) -> str:
    parts = [part for part in value.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ValueError("must not contain '.' or '..' components")
    return "/".join(parts)


class FilesystemSettings(_Section):
    """``backend_type: filesystem``: files under ``base_path`` (a top-level setting)."""

    backend_type: Literal["filesystem"] = "filesystem"

    def default_state_dir(self, base_path: Path) -> Path:
        """Inside the store, so that every writer shares the index and locks."""
        return base_path / STATE_DIRNAME


class CloudSettings(_Section):
    """What S3 and GCS both take. Timeouts are seconds per connection attempt and per read."""

    backend_type: str
    #: Required; ``None`` only so that the message can say so in the store's words.
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    #: What to do when the server ignores create-if-absent (see docs/cloud.md):
    #: ``require`` refuses to write; ``emulate`` checks then writes (one writing host only).
    conditional_writes: Literal["require", "emulate"] = "require"
    connect_timeout: float = Field(default=5.0, gt=0, le=3600)
    read_timeout: float = Field(default=15.0, gt=0, le=3600)

    _prefix = field_validator("prefix")(_clean_prefix)

    def default_state_dir(self, base_path: Path) -> Path:
        """``~/.necrocode/state/<type>-<bucket>-<digest>``: one per bucket and prefix."""
        ident = f"{self.backend_type}:{self.bucket}/{self.prefix}"
        digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
        folder = f"{self.backend_type}-{self.bucket}-{digest}"
        return Path("~/.necrocode/state").expanduser() / folder


class S3Settings(CloudSettings):
    """``backend_type: s3``: a bucket on AWS S3 or any S3-compatible endpoint."""

    backend_type: Literal["s3"] = "s3"
    region: str | None = None


class GCSSettings(CloudSettings):
    """``backend_type: gcs``: a Google Cloud Storage bucket (or an emulator)."""

    backend_type: Literal["gcs"] = "gcs"
    project: str | None = None


class MemorySettings(_Section):
    """``backend_type: memory``: objects in this process's memory (tests, experiments)."""

    backend_type: Literal["memory"] = "memory"
    #: Backends of this process naming the same space see the same objects.
    space: str = Field(default="default", min_length=1)
    prefix: str = ""

    _prefix = field_validator("prefix")(_clean_prefix)

    def default_state_dir(self, base_path: Path) -> Path:
        """A temporary folder of this process: the index lives as long as the objects."""
        digest = hashlib.sha256(f"{self.space}/{self.prefix}".encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"necrocode-memory-{os.getpid()}-{digest}"


BackendSettings = Annotated[
    FilesystemSettings | S3Settings | GCSSettings | MemorySettings,
    Field(discriminator="backend_type"),
]
#: The names ``backend_type`` takes: one per member of :data:`BackendSettings`.
BackendType = Literal["filesystem", "s3", "gcs", "memory"]
_BACKEND_TYPES: tuple[str, ...] = get_args(BackendType)
#: Old flat keys -> (backend type they belong to, or None for every cloud one; new key).
FLAT_BACKEND_KEYS: dict[str, tuple[str | None, str]] = {
    "s3_bucket": ("s3", "bucket"),
    "s3_prefix": ("s3", "prefix"),
    "s3_region": ("s3", "region"),
    "s3_endpoint_url": ("s3", "endpoint_url"),
    "gcs_bucket": ("gcs", "bucket"),
    "gcs_prefix": ("gcs", "prefix"),
    "gcs_project": ("gcs", "project"),
    "gcs_endpoint_url": ("gcs", "endpoint_url"),
    "conditional_writes": (None, "conditional_writes"),
}
_Settings = TypeVar("_Settings", bound=_Section)


_LOGGED_DEPRECATIONS: set[str] = set()


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that blames a warning on the first caller outside this package
    and pydantic (so that Python's default filters show it to the code that used the
    old key)."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        ("necrocode.artifact_store", "pydantic")
    ):
        frame = frame.f_back
        level += 1
    return level


def _gather_backend_settings(data: dict[str, Any]) -> dict[str, Any]:
    """Put ``backend_type`` and the old flat keys into the ``backend`` section."""
    data = dict(data)
    section = data.get("backend")
    if isinstance(section, BaseModel):
        section = section.model_dump()
    section = dict(section) if isinstance(section, dict) else section
    kind = data.get("backend_type")
    if isinstance(section, dict):
        inner = section.get("backend_type")
        if kind is None:
            kind = inner
        elif inner is not None and inner != kind:
            raise ValueError(
                f"backend.backend_type: {inner!r} does not match backend_type {kind!r}"
            )
    kind = "filesystem" if kind is None else kind
    data["backend_type"] = kind
    flat = [key for key in data if key in FLAT_BACKEND_KEYS]
    if flat:
        new = ", ".join(f"backend.{FLAT_BACKEND_KEYS[key][1]}" for key in flat)
        message = (
            f"the {'settings' if len(flat) > 1 else 'setting'} {', '.join(flat)} "
            f"{'are' if len(flat) > 1 else 'is'} deprecated and will be removed in the next "
            f"release; write {new} instead (a 'backend:' section of the configuration, or "
            "NECROCODE_ARTIFACT_STORE_BACKEND__<KEY> in the environment)"
        )
        warnings.warn(message, DeprecationWarning, stacklevel=_caller_stacklevel())
        # Also once per process in the log, which the command line shows on stderr
        # (Python hides DeprecationWarnings raised below a command-line tool).
        if message not in _LOGGED_DEPRECATIONS:
            _LOGGED_DEPRECATIONS.add(message)
            log.warning("%s", message)
    for key in flat:
        owner, new_key = FLAT_BACKEND_KEYS[key]
        value = data.pop(key)
        if owner == kind or (owner is None and kind in ("s3", "gcs")):
            if section is None:
                section = {}
            if isinstance(section, dict):
                section[new_key] = value
    if kind not in _BACKEND_TYPES:
        data.pop("backend", None)  # the backend_type error says it all
    elif section is None:
        data["backend"] = {"backend_type": kind}
    elif isinstance(section, dict):
        data["backend"] = {**section, "backend_type": kind}
    return data


class ArtifactStoreConfig(_Section):
    """Every setting of the store, with the spec's defaults."""

    backend_type: BackendType = "filesystem"
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
    #: Worker processes that parse large uploads' summaries beside them (``null``: one
    #: per core the process may use, at most 4, none on one core; ``0``: a worker
    #: thread instead). Shared by the stores of a process; see docs/insights.md.
    summary_processes: int | None = Field(default=None, ge=0, le=4)
    retention_policy: RetentionDays = Field(default_factory=RetentionDays)
    storage_quota: StorageQuota = Field(default_factory=StorageQuota)

    #: Accepted for configurations written for the reference API. Writers of one artifact
    #: always take its lock (unique, gap-free versions depend on it): ``false`` changes
    #: nothing but a notice in the log.
    locking_enabled: bool = True
    lock_timeout: float = Field(default=30.0, ge=0, le=MAX_WAIT_S)
    lock_retry_interval: float = Field(default=0.05, gt=0, le=MAX_RETRY_INTERVAL_S)
    retry_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_base: float = Field(default=0.2, ge=0, le=MAX_RETRY_INTERVAL_S)
    retry_backoff_max: float = Field(default=5.0, ge=0, le=MAX_RETRY_INTERVAL_S)
    #: Workers of verify_all, rebuild_index, cleanup_expired and export; ``null``: 8
    #: threads on an object store; on a local disk one process per core (at most 4) for
    #: verify_all and rebuild_index of a large store (else 1 thread), 4 threads for
    #: cleanup (2 on one or two cores), 1 for export; 1: all in the caller's thread.
    maintenance_workers: int | None = Field(default=None, ge=1, le=64)

    #: The search index: ``sqlite`` (default: embedded, one per host, in ``state_dir``) or
    #: ``postgresql://user@host:port/db``: one database shared by every host (docs/cloud.md).
    index_url: str | None = None
    #: Seconds to wait for the index database before an operation fails.
    index_connect_timeout: float = Field(default=10.0, gt=0)
    #: Seconds an upload's quota reservation survives without progress (shared index).
    index_reservation_timeout: float = Field(default=900.0, gt=0)
    #: The chosen backend's own settings (the union keyed by ``backend_type``).
    backend: BackendSettings = Field(default_factory=FilesystemSettings)

    @model_validator(mode="before")
    @classmethod
    def _gather_backend(cls, data: Any) -> Any:
        return _gather_backend_settings(data) if isinstance(data, dict) else data

    @field_validator("base_path", "state_dir", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            # Path("") is the current folder: never what an empty setting meant.
            raise ValueError("must not be empty (use null for the default)")
        return value

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

    @model_validator(mode="after")
    def _check_combinations(self) -> ArtifactStoreConfig:
        if self.compression_codec == "gzip" and self.compression_level > 9:
            raise ValueError("compression_level: gzip levels are 1-9")
        if isinstance(self.backend, CloudSettings) and not self.backend.bucket:
            raise ValueError(f"backend.bucket: required when backend_type is {self.backend_type!r}")
        return self

    def settings_for(self, kind: type[_Settings]) -> _Settings:
        """The backend settings, as the class ``kind`` the caller expects."""
        if not isinstance(self.backend, kind):
            raise ConfigError(
                f"backend_type: {self.backend_type!r} has no {kind.__name__}", key="backend_type"
            )
        return self.backend

    @property
    def effective_state_dir(self) -> Path:
        """The folder for the index, locks and cleanup log (see ``state_dir``)."""
        if self.state_dir is not None:
            return self.state_dir
        return self.backend.default_state_dir(self.base_path)

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> ArtifactStoreConfig:
        """Validate a mapping, either flat or wrapped in ``{"artifact_store": {...}}``."""
        settings = unwrap_settings(data, source=source)
        try:
            return cls.model_validate(settings)
        except ValidationError as exc:
            raise _config_error(exc, source) from None

    @classmethod
    def coerce(cls, config: ArtifactStoreConfig | dict[str, Any]) -> ArtifactStoreConfig:
        """``config`` itself, or the configuration a mapping of its keys describes."""
        return config if isinstance(config, cls) else cls.from_dict(config)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ArtifactStoreConfig:
        """Load and validate a YAML file."""
        file = Path(path).expanduser()
        return cls.from_dict(read_yaml_file(file), source=str(file))

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (paths as strings), loadable by :meth:`from_dict`.

        ``backend_type`` is given once, at the top.
        """
        return self.model_dump(mode="json", exclude={"backend": {"backend_type"}})


def read_yaml_file(path: Path) -> Any:
    """The parsed content of a YAML configuration file (``ConfigError`` naming the file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r})",
            source=str(path),
        ) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKeyError as exc:
        raise ConfigError(f"{path}: {exc}", key=exc.key, source=str(path)) from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply", source=str(path)) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{path}: not a usable value: {exc}", source=str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", source=str(path)) from exc


class _DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(f"key '{key}' is given twice (again on line {line}); keep one")
        self.key = key


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that names a key twice (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise _DuplicateKeyError(str(key), key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


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
        loc = list(error["loc"])
        if len(loc) > 2 and loc[0] == "backend" and loc[1] in _BACKEND_TYPES:
            del loc[1]  # the union's tag: "backend.s3.bucket" is written "backend.bucket"
        key = ".".join(str(part) for part in loc)
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
