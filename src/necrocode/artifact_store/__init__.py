"""NecroCode Artifact Store: durable, searchable storage for what agent tasks produce.

Quick start::

    from necrocode.artifact_store import ArtifactStore, ArtifactType

    store = ArtifactStore()  # filesystem store under ~/.necrocode/artifacts
    uri = store.upload("1.1", "chat-app", ArtifactType.DIFF, b"--- a\\n+++ b\\n")
    assert store.download(uri) == b"--- a\\n+++ b\\n"
"""

from __future__ import annotations

from .artifact_store import ArtifactStore
from .backends.filesystem import FilesystemBackend
from .backfill import SummaryRefreshReport
from .compression_engine import CompressionEngine
from .config import ArtifactStoreConfig, RetentionDays, StorageQuota
from .content.summary import Summary
from .exceptions import (
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
    PermissionError,
    StorageError,
    StorageFullError,
)
from .export import ExportProgress, read_manifest
from .integrity import ArtifactProblem, ArtifactReader, VerifyReport, calculate_checksum
from .maintenance import RepairReport
from .metadata_manager import MetadataManager
from .models import ArtifactMetadata, ArtifactType, StorageUsage
from .retention_policy import CleanupReport, RetentionPolicy
from .retry import RetryingBackend, RetryPolicy
from .settings import load_config
from .storage_backend import ObjectInfo, ReadStream, StagedObject, StorageBackend

__version__ = "0.1.0"

__all__ = [
    "ArtifactMetadata",
    "ArtifactNotFoundError",
    "ArtifactProblem",
    "ArtifactReader",
    "ArtifactStore",
    "ArtifactStoreConfig",
    "ArtifactStoreError",
    "ArtifactType",
    "CleanupReport",
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
    "MetadataManager",
    "ObjectInfo",
    "PermissionError",
    "ReadStream",
    "RepairReport",
    "RetentionDays",
    "RetentionPolicy",
    "RetryPolicy",
    "RetryingBackend",
    "StagedObject",
    "StorageBackend",
    "StorageError",
    "StorageFullError",
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
