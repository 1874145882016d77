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
    from .backends.base import (
        BackendCapabilities,
        ObjectInfo,
        ReadStream,
        StagedObject,
        StorageBackend,
    )
    from .backends.cloud import CloudBackend
    from .backends.filesystem import FilesystemBackend
    from .backends.memory import MemoryBackend
    from .backends.retry import RetryingBackend, RetryPolicy
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
    from .index.manager import MetadataManager
    from .maintenance.export import ExportProgress, read_manifest
    from .maintenance.retention import CleanupReport, RetentionPolicy
    from .maintenance.summaries import SummaryRefreshReport
    from .maintenance.verify import RepairReport
    from .models import ArtifactMetadata, ArtifactType, StorageUsage
    from .pipeline.compression import CompressionEngine
    from .pipeline.integrity import (
        ArtifactProblem,
        ArtifactReader,
        VerifyReport,
        calculate_checksum,
    )
    from .settings import load_config

    if TYPE_CHECKING:
        from .service.client import RemoteArtifactStore
    from .index.paging import SearchPage
    from .pipeline.batch import UploadItem, UploadResult
    from .pipeline.upload_args import ArgumentOrderWarning

#: Where each public name lives; imported on first access (PEP 562), so that
#: ``import necrocode.artifact_store`` and the command line start fast.
_LAZY = {
    "ArtifactStore": ".artifact_store",
    "CloudBackend": ".backends.cloud",
    "FilesystemBackend": ".backends.filesystem",
    "MemoryBackend": ".backends.memory",
    "SummaryRefreshReport": ".maintenance.summaries",
    "CompressionEngine": ".pipeline.compression",
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
    "ExportProgress": ".maintenance.export",
    "read_manifest": ".maintenance.export",
    "ArtifactProblem": ".pipeline.integrity",
    "ArtifactReader": ".pipeline.integrity",
    "VerifyReport": ".pipeline.integrity",
    "calculate_checksum": ".pipeline.integrity",
    "RepairReport": ".maintenance.verify",
    "MetadataManager": ".index.manager",
    "ArtifactMetadata": ".models",
    "ArtifactType": ".models",
    "StorageUsage": ".models",
    "CleanupReport": ".maintenance.retention",
    "RetentionPolicy": ".maintenance.retention",
    "RetryingBackend": ".backends.retry",
    "RetryPolicy": ".backends.retry",
    "load_config": ".settings",
    "BackendCapabilities": ".backends.base",
    "ObjectInfo": ".backends.base",
    "ReadStream": ".backends.base",
    "StagedObject": ".backends.base",
    "StorageBackend": ".backends.base",
    "RemoteArtifactStore": ".service.client",
    "SearchPage": ".index.paging",
    "ArgumentOrderWarning": ".pipeline.upload_args",
    "UploadItem": ".pipeline.batch",
    "UploadResult": ".pipeline.batch",
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
    "UploadItem",
    "UploadResult",
    "VerifyReport",
    "__version__",
    "calculate_checksum",
    "load_config",
    "read_manifest",
]
