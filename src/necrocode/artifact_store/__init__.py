"""NecroCode Artifact Store: durable, searchable storage for what agent tasks produce.

Quick start::

    from necrocode.artifact_store import ArtifactStore, ArtifactType

    store = ArtifactStore()  # filesystem store under ~/.necrocode/artifacts
    uri = store.upload("1.1", "chat-app", ArtifactType.DIFF, b"--- a\\n+++ b\\n")
    assert store.download(uri) == b"--- a\\n+++ b\\n"

The public API is the names in ``__all__``. Apart from the backend contract
(``storage_backend``, ``backends.cloud``), the modules of this package are
internal and may change without notice (see docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .artifact_store import ArtifactStore
from .backends.cloud import CloudBackend
from .backends.filesystem import FilesystemBackend
from .backends.memory import MemoryBackend
from .backfill import SummaryRefreshReport
from .compression_engine import CompressionEngine
from .config import ArtifactStoreConfig, RetentionDays, StorageQuota
from .content.summary import Summary
from .exceptions import (
    ArtifactExistsError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    ConfigError,
    ContentParseError,
    IndexUnavailableError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    InvalidURIError,
    LockTimeoutError,
    StorageError,
    StorageFullError,
    StoragePermissionError,
    deprecated_alias,
)
from .export import ExportProgress, read_manifest
from .integrity import ArtifactProblem, ArtifactReader, VerifyReport, calculate_checksum
from .maintenance import RepairReport
from .metadata_manager import MetadataManager
from .models import ArtifactMetadata, ArtifactType, StorageUsage
from .retention_policy import CleanupReport, RetentionPolicy
from .retry import RetryingBackend, RetryPolicy
from .settings import load_config
from .storage_backend import (
    BackendCapabilities,
    ObjectInfo,
    ReadStream,
    StagedObject,
    StorageBackend,
)

if TYPE_CHECKING:
    from .service.client import RemoteArtifactStore

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Names imported on first use, and deprecated names still resolving for one release.

    ``RemoteArtifactStore`` needs httpx (extra ``service``); ``PermissionError``
    resolves with a deprecation warning.
    """
    if name == "RemoteArtifactStore":
        from .service.client import RemoteArtifactStore  # noqa: PLC0415

        return RemoteArtifactStore
    return deprecated_alias(__name__, name)


__all__ = [
    "ArtifactExistsError",
    "ArtifactMetadata",
    "ArtifactNotFoundError",
    "ArtifactProblem",
    "ArtifactReader",
    "ArtifactStore",
    "ArtifactStoreConfig",
    "ArtifactStoreError",
    "ArtifactType",
    "BackendCapabilities",
    "CleanupReport",
    "CloudBackend",
    "CompressionEngine",
    "ConfigError",
    "ContentParseError",
    "ExportProgress",
    "FilesystemBackend",
    "IndexUnavailableError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidNameError",
    "InvalidURIError",
    "LockTimeoutError",
    "MemoryBackend",
    "MetadataManager",
    "ObjectInfo",
    "ReadStream",
    "RemoteArtifactStore",
    "RepairReport",
    "RetentionDays",
    "RetentionPolicy",
    "RetryPolicy",
    "RetryingBackend",
    "StagedObject",
    "StorageBackend",
    "StorageError",
    "StorageFullError",
    "StoragePermissionError",
    "StorageQuota",
    "StorageUsage",
    "Summary",
    "SummaryRefreshReport",
    "VerifyReport",
    "__version__",
    "calculate_checksum",
    "load_config",
    "read_manifest",
]
