"""The parts of one open store, wired together once and shared by every operation.

:func:`open_parts` builds them from a configuration: the backend (bytes), the
compression engine, the index behind the metadata manager (records), the
artifact locks and the quota meter that suit that index. The operations
(:mod:`.upload`, :mod:`.download`, :mod:`.records`, :mod:`..maintenance`) take a
:class:`StoreParts` and nothing else, so each reads alone.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from ..backends import create_backend
from ..backends.base import StorageBackend
from ..config import ArtifactStoreConfig
from ..exceptions import ArtifactStoreError, ConfigError
from ..index import open_index
from ..index.coordination import ArtifactLocks, QuotaGuard, coordination_for
from ..index.manager import MetadataManager, StoredArtifact
from ..models import ArtifactMetadata
from ..naming import ArtifactKey
from .compression import CompressionEngine

__all__ = ["StoreParts", "open_parts"]

log = logging.getLogger("necrocode.artifact_store")


@dataclass(slots=True)
class StoreParts:
    """Everything an operation on one store uses."""

    config: ArtifactStoreConfig
    backend: StorageBackend
    compression: CompressionEngine
    metadata: MetadataManager
    locks: ArtifactLocks
    quota: QuotaGuard
    #: Whether every writer of this store uses this index (see ``upload.current_versions``).
    index_is_shared: bool

    @property
    def root_uri(self) -> str:
        return self.backend.root_uri

    def parse_uri(self, uri: str) -> tuple[ArtifactKey, int | None]:
        return ArtifactKey.from_uri(uri, self.root_uri)

    @contextlib.contextmanager
    def hold(self, key: ArtifactKey, uri: str) -> Iterator[None]:
        """Hold ``key``'s lock, first finishing a removal a crashed writer left half-done."""
        with self.locks.hold(key.path, uri=uri):
            self.metadata.finish_removal(key)
            yield

    @contextlib.contextmanager
    def try_hold(self, key: ArtifactKey) -> Iterator[bool]:
        """:meth:`hold`, only if the lock is free: ``with parts.try_hold(k) as got:``."""
        with self.locks.try_hold(key.path) as got:
            if got:
                self.metadata.finish_removal(key)
            yield got

    def load_versions(self, stored: StoredArtifact) -> list[ArtifactMetadata]:
        """The records of ``stored``, oldest first (unreadable ones skipped)."""
        return self.metadata.load_all(stored)

    def finish_interrupted_removals(self) -> None:
        """Finish the removals crashed processes left (those whose lock is free)."""
        for intent in list(self.metadata.intents.all()):
            try:
                with self.locks.try_hold(intent.key.path) as got:
                    if got:
                        self.metadata.finish_removal(intent.key)
            except ArtifactStoreError as exc:
                # A read-only store, say: readers count the versions as gone all the same,
                # and the next writer of the artifact finishes the removal.
                log.warning("could not finish an interrupted removal now: %s", exc)

    def close(self) -> None:
        """Release the index connection, lock connections and backend clients."""
        close_locks = getattr(self.locks, "close", None)
        if close_locks is not None:
            close_locks()
        self.metadata.close()
        self.backend.close()


def open_parts(config: ArtifactStoreConfig, backend: StorageBackend | None) -> StoreParts:
    """Wire the parts of the store ``config`` describes (``backend``: a ready one)."""
    _check_folders(config)
    backend = backend if backend is not None else create_backend(config)
    state_dir = config.effective_state_dir
    index = open_index(
        config.index_url,
        state_dir,
        backend.root_uri,
        connect_timeout=config.index_connect_timeout,
        reservation_timeout=config.index_reservation_timeout,
    )
    locks, quota = coordination_for(
        index,
        state_dir / "locks",
        lock_timeout=config.lock_timeout,
        lock_retry_interval=config.lock_retry_interval,
        quota_bytes=config.storage_quota.max_bytes,
    )
    if not config.locking_enabled:
        log.info("locking_enabled: false is accepted, but writers still lock each artifact")
    parts = StoreParts(
        config=config,
        backend=backend,
        compression=CompressionEngine(
            config.compression_codec, config.compression_level, config.compression_enabled
        ),
        metadata=MetadataManager(backend, state_dir, index, workers=config.maintenance_workers),
        locks=locks,
        quota=quota,
        index_is_shared=index.shared
        or (backend.capabilities.local_locks and config.state_dir is None),
    )
    parts.finish_interrupted_removals()
    return parts


def _check_folders(config: ArtifactStoreConfig) -> None:
    """Refuse a ``base_path`` or ``state_dir`` that exists but is not a folder."""
    folders = [("state_dir", config.effective_state_dir)]
    if config.backend_type == "filesystem":
        folders.insert(0, ("base_path", config.base_path))
    for key, folder in folders:
        for place in (folder, *folder.parents):
            if place.is_dir():
                break
            if place.exists() or place.is_symlink():
                what = "" if place == folder else f" ({place} is not a folder)"
                raise ConfigError(f"{key}: {folder} is not a folder{what}", key=key)
