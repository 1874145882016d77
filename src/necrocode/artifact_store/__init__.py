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

from typing import TYPE_CHECKING, Any

from .exceptions import deprecated_alias

if TYPE_CHECKING:
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
    from .paging import SearchPage
    from .upload_args import ArgumentOrderWarning

#: Where each public name lives; imported on first access (PEP 562), so that
#: ``import necrocode.artifact_store`` and the command line start fast.
_LAZY = {
    "ArtifactStore": ".artifact_store",
    "CloudBackend": ".backends.cloud",
    "FilesystemBackend": ".backends.filesystem",
    "MemoryBackend": ".backends.memory",
    "SummaryRefreshReport": ".backfill",
    "CompressionEngine": ".compression_engine",
    "ArtifactStoreConfig": ".config",
    "RetentionDays": ".config",
    "StorageQuota": ".config",
    "Summary": ".content.summary",
    "ArtifactExistsError": ".exceptions",
    "ArtifactNotFoundError": ".exceptions",
    "ArtifactStoreError": ".exceptions",
    "ConfigError": ".exceptions",
    "ContentParseError": ".exceptions",
    "IndexUnavailableError": ".exceptions",
    "IntegrityError": ".exceptions",
    "InvalidInputError": ".exceptions",
    "InvalidNameError": ".exceptions",
    "InvalidURIError": ".exceptions",
    "LockTimeoutError": ".exceptions",
    "StorageError": ".exceptions",
    "StorageFullError": ".exceptions",
    "StoragePermissionError": ".exceptions",
    "ExportProgress": ".export",
    "read_manifest": ".export",
    "ArtifactProblem": ".integrity",
    "ArtifactReader": ".integrity",
    "VerifyReport": ".integrity",
    "calculate_checksum": ".integrity",
    "RepairReport": ".maintenance",
    "MetadataManager": ".metadata_manager",
    "ArtifactMetadata": ".models",
    "ArtifactType": ".models",
    "StorageUsage": ".models",
    "CleanupReport": ".retention_policy",
    "RetentionPolicy": ".retention_policy",
    "RetryingBackend": ".retry",
    "RetryPolicy": ".retry",
    "load_config": ".settings",
    "BackendCapabilities": ".storage_backend",
    "ObjectInfo": ".storage_backend",
    "ReadStream": ".storage_backend",
    "StagedObject": ".storage_backend",
    "StorageBackend": ".storage_backend",
    "RemoteArtifactStore": ".service.client",
    "SearchPage": ".paging",
    "ArgumentOrderWarning": ".upload_args",
}

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """A public name, imported on first use; deprecated names (``PermissionError``)
    still resolve for one release, with a warning."""
    module = _LAZY.get(name)
    if module is None:
        return deprecated_alias(__name__, name)
    from importlib import import_module  # noqa: PLC0415

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ArgumentOrderWarning",
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
    "SearchPage",
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
