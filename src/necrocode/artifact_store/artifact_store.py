"""The public facade: :class:`ArtifactStore` wires backend, codecs, metadata and locks.

An upload streams the content through SHA-256 and the compressor into a new,
uniquely named object, then creates the version's metadata record (the commit
point), updates the index, and only then removes what the new version replaces.
A reader therefore always finds a complete old or new artifact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, overload

from .backends import create_backend
from .backends.base import (
    CHUNK_SIZE,
    ObjectExistsError,
    SourceError,
    StagedObject,
    StorageBackend,
    iter_source,
    source_chunks,
)
from .config import ArtifactStoreConfig
from .content.summariser import Summariser
from .content.summary import Summary
from .exceptions import (
    ArtifactExistsError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    ConfigError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    StorageError,
    StorageFullError,
)
from .index import open_index
from .index.base import SHARED_JOB_WORKERS
from .index.coordination import coordination_for
from .index.insights import InsightFilter
from .index.intents import DeleteIntent
from .index.manager import MetadataManager, StoredArtifact
from .index.paging import DEFAULT_PAGE_SIZE, SearchPage, decode_cursor, encode_cursor
from .index.query import SearchQuery, SortKey
from .maintenance.export import ExportProgress, export_zip
from .maintenance.parallel import maintenance_workers, ordered_map
from .maintenance.retention import CleanupReport, RetentionPolicy, append_cleanup_log
from .maintenance.summaries import SummaryRefreshReport, refresh_summaries
from .maintenance.verify import (
    DEFAULT_REPAIR_GRACE,
    RepairReport,
    load_versions,
    repair_store,
    verify_store,
)
from .models import (
    MAX_INT64,
    MAX_RETENTION_DAYS,
    ArtifactMetadata,
    ArtifactType,
    Codec,
    StorageUsage,
    utc_now,
)
from .naming import ArtifactKey, new_generation, validate_name, validate_tags
from .pipeline.compression import CompressionEngine
from .pipeline.integrity import ArtifactReader, HashingSource, VerifyReport
from .pipeline.output_target import check_output_file
from .pipeline.upload_args import content_size, upload_target, with_progress
from .settings import load_config
from .units import format_size

__all__ = ["ArtifactStore", "Content", "RepairReport"]

log = logging.getLogger("necrocode.artifact_store")

#: What ``upload`` stores. A ``str`` is stored as its UTF-8 *text*, never opened as
#: a path: pass a ``pathlib.Path`` (any ``os.PathLike``) or call ``upload_file``.
Text = str
Content = bytes | bytearray | memoryview | Text | os.PathLike[str] | BinaryIO | Iterable[bytes]
ProgressCallback = Callable[[int, int], None]
ExportProgressCallback = Callable[[ExportProgress], None]

#: Checkpoint of an interrupted ``refresh_summaries``, in the state folder.
SUMMARY_CHECKPOINT = "summaries-refresh.json"
#: How often an upload retries after another writer took its version number.
MAX_VERSION_RACES = 16
#: How often a reader re-resolves an artifact whose object vanished under it.
MAX_READ_RACES = 5
MAX_MIME_LENGTH = 255
#: Quota warnings are repeated at most this often (seconds) per process and store.
QUOTA_WARNING_INTERVAL = 60.0
#: Specs named in quota messages, largest first.
QUOTA_TOP_SPECS = 3
_QUOTA_WARNED: dict[str, float] = {}
_QUOTA_WARNED_LOCK = threading.Lock()
#: The longest grace ``repair`` accepts (older than the calendar: nothing would qualify).
MAX_REPAIR_GRACE = timedelta(days=365 * 1000)
#: Attribute of the log record a failing public call writes (the command line drops
#: those records, since it reports the same error itself).
FAILED_OPERATION = "necrocode_failed_operation"


class ArtifactStore:
    """Store, find, verify and delete the artifacts of agent tasks.

    ``ArtifactStore()`` discovers its configuration like the command line does
    (``NECROCODE_ARTIFACT_STORE_CONFIG``, then
    ``~/.necrocode/config/artifact-store.yaml``, then per-setting environment
    variables; with none of them, a filesystem store under
    ``~/.necrocode/artifacts``); pass an :class:`ArtifactStoreConfig` (or a dict
    of its keys) to choose explicitly. A ready ``backend`` may be injected
    (tests, custom clients); it is used as given, so wrap it in
    :class:`~necrocode.artifact_store.backends.retry.RetryingBackend` to get the retry
    policy that configured backends always have. Safe to share between
    threads; every process opens its own.
    """

    def __init__(
        self,
        config: ArtifactStoreConfig | dict[str, Any] | None = None,
        *,
        backend: StorageBackend | None = None,
    ) -> None:
        if config is None:
            config = load_config()
        elif isinstance(config, dict):
            config = ArtifactStoreConfig.from_dict(config)
        self.config = config
        _check_folders(config)
        self.backend = backend if backend is not None else create_backend(config)
        self.compression = CompressionEngine(
            config.compression_codec, config.compression_level, config.compression_enabled
        )
        state_dir = config.effective_state_dir
        index = open_index(
            config.index_url,
            state_dir,
            self.backend.root_uri,
            connect_timeout=config.index_connect_timeout,
            reservation_timeout=config.index_reservation_timeout,
        )
        self.locks, self._quota = coordination_for(
            index,
            state_dir / "locks",
            lock_timeout=config.lock_timeout,
            lock_retry_interval=config.lock_retry_interval,
            quota_bytes=config.storage_quota.max_bytes,
        )
        self.metadata = MetadataManager(self.backend, state_dir, index)
        #: Whether every writer of this store uses this index (see ``_current_versions``).
        self._index_is_shared = index.shared or (
            self.backend.capabilities.local_locks and config.state_dir is None
        )
        self.retention_policy = RetentionPolicy(config.retention_policy)
        if not config.locking_enabled:
            log.info("locking_enabled: false is accepted, but writers still lock each artifact")
        self._depth = threading.local()
        self._finish_interrupted_removals()

    # -- plumbing -------------------------------------------------------------------

    @property
    def root_uri(self) -> str:
        """Every URI of this store starts with this."""
        return self.backend.root_uri

    @property
    def index_description(self) -> str:
        """Which index this store uses, for people (a database URL without its password)."""
        return self.metadata.index.describe()

    def _operation(self, name: str, target: str | None = None) -> _Operation:
        """Log a failing public operation once, at the outermost call."""
        return _Operation(self._depth, name, target)

    def _parse_uri(self, uri: str) -> tuple[ArtifactKey, int | None]:
        return ArtifactKey.from_uri(uri, self.root_uri)

    @contextlib.contextmanager
    def _hold(self, key: ArtifactKey, uri: str) -> Iterator[None]:
        """Hold ``key``'s lock, first finishing a removal a crashed writer left half-done."""
        with self.locks.hold(key.path, uri=uri):
            self.metadata.finish_removal(key)
            yield

    def _finish_interrupted_removals(self) -> None:
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

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- upload -----------------------------------------------------------------------

    @overload
    def upload(
        self,
        task_id: str,
        spec_name: str,
        artifact_type: ArtifactType | str,
        content: Content,
        metadata: dict[str, Any] | None = None,
        mime_type: str | None = None,
        *,
        tags: Iterable[str] | None = None,
        retention_days: int | None = None,
        if_changed: bool = False,
        if_absent: bool = False,
        progress: ProgressCallback | None = None,
    ) -> str: ...

    @overload
    def upload(
        self,
        *,
        ref: str,
        content: Content,
        metadata: dict[str, Any] | None = None,
        mime_type: str | None = None,
        tags: Iterable[str] | None = None,
        retention_days: int | None = None,
        if_changed: bool = False,
        if_absent: bool = False,
        progress: ProgressCallback | None = None,
    ) -> str: ...

    def upload(
        self,
        task_id: str | None = None,
        spec_name: str | None = None,
        artifact_type: ArtifactType | str | None = None,
        content: Content | None = None,
        metadata: dict[str, Any] | None = None,
        mime_type: str | None = None,
        *,
        ref: str | None = None,
        tags: Iterable[str] | None = None,
        retention_days: int | None = None,
        if_changed: bool = False,
        if_absent: bool = False,
        progress: ProgressCallback | None = None,
    ) -> str:
        """Store ``content`` as the ``artifact_type`` artifact of a task; return its URI.

        ``content`` is bytes, a ``str`` — **stored as that text, not read as a
        file name** (use :meth:`upload_file` or a ``pathlib.Path`` for a file)
        —, a ``pathlib.Path`` (the file's bytes), a binary file object, or an
        iterable of byte chunks; it is streamed in chunks, so size does not
        matter. Name the artifact by ``task_id, spec_name, artifact_type``
        (this order, the reverse of the URI; keywords work) or by
        ``ref="spec/task/type"``; see :mod:`.upload_args` for the warning a
        likely swap gets. ``progress(done, total)`` is called as bytes are read
        (``total`` 0 when the size is not known up front). Uploading the same
        spec/task/type again replaces the artifact, or adds a version when
        versioning is enabled. All-or-nothing: on any error nothing changes.

        ``if_changed``: when the bytes equal the latest version's (same SHA-256),
        store nothing and keep that version (a retried upload is a no-op).
        ``if_absent``: refuse with ``ArtifactExistsError`` if the artifact exists.
        """
        spec, task, kind = upload_target(task_id, spec_name, artifact_type, ref)
        if content is None:
            raise InvalidInputError("upload needs content")
        options = _UploadOptions(tags, retention_days, if_changed, if_absent, progress)
        return self._upload(spec, task, kind, content, metadata, mime_type, options).uri

    def upload_version(
        self,
        task_id: str,
        spec_name: str,
        artifact_type: ArtifactType | str,
        content: Content,
        metadata: dict[str, Any] | None = None,
        mime_type: str | None = None,
        *,
        tags: Iterable[str] | None = None,
        retention_days: int | None = None,
        if_changed: bool = False,
        if_absent: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ArtifactMetadata:
        """Like :meth:`upload`, but return the metadata of the version now stored
        (with ``if_changed`` and unchanged bytes: of the existing latest version).
        """
        spec, task, kind = upload_target(task_id, spec_name, artifact_type, None)
        options = _UploadOptions(tags, retention_days, if_changed, if_absent, progress)
        return self._upload(spec, task, kind, content, metadata, mime_type, options)

    def _upload(
        self,
        spec: str,
        task: str,
        kind: ArtifactType | str,
        content: Content,
        metadata: dict[str, Any] | None,
        mime_type: str | None,
        options: _UploadOptions,
    ) -> ArtifactMetadata:
        key = ArtifactKey.of(spec, task, kind)
        uri = key.uri(self.root_uri)
        retention_days = options.retention_days
        with self._operation("upload", uri):
            custom = _check_custom_metadata(metadata)
            mime = _check_mime(mime_type or key.type.mime_type)
            tag_tuple = validate_tags(options.tags)
            if retention_days is not None and (
                type(retention_days) is not int or not 0 <= retention_days <= MAX_RETENTION_DAYS
            ):
                raise InvalidInputError(
                    f"retention_days must be an integer from 0 to {MAX_RETENTION_DAYS}, "
                    f"got {retention_days!r}"
                )
            chunks, close_source = _content_chunks(content)
            if options.progress is not None:
                chunks = with_progress(chunks, content_size(content), options.progress)
            try:
                with self._hold(key, uri):
                    meta = self._write_version(
                        key,
                        chunks,
                        mime,
                        tag_tuple,
                        custom,
                        retention_days,
                        options.if_changed,
                        options.if_absent,
                    )
            except SourceError as exc:
                # The caller's content failed, not the store: give back their exception.
                raise exc.__cause__ or exc from None
            finally:
                close_source()
            log.debug("uploaded %s v%d (%d bytes)", uri, meta.version, meta.size)
            return meta

    def upload_file(
        self,
        path: str | os.PathLike[str],
        task_id: str | None = None,
        spec_name: str | None = None,
        artifact_type: ArtifactType | str | None = None,
        *,
        ref: str | None = None,
        metadata: dict[str, Any] | None = None,
        mime_type: str | None = None,
        tags: Iterable[str] | None = None,
        retention_days: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> str:
        """Store the file at ``path`` (a ``str`` here *is* a path, as in boto3's
        ``upload_file``); otherwise the same as :meth:`upload`."""
        if not isinstance(path, str | os.PathLike):
            raise InvalidInputError(f"path must be a str or os.PathLike, not {type(path).__name__}")
        spec, task, kind = upload_target(task_id, spec_name, artifact_type, ref)
        options = _UploadOptions(tags, retention_days, False, False, progress)
        return self._upload(spec, task, kind, Path(path), metadata, mime_type, options).uri

    def _write_version(
        self,
        key: ArtifactKey,
        chunks: Iterable[bytes],
        mime_type: str,
        tags: tuple[str, ...],
        custom: dict[str, Any],
        retention_days: int | None,
        if_changed: bool = False,
        if_absent: bool = False,
    ) -> ArtifactMetadata:
        """Write one new version of ``key``; the caller holds its lock."""
        previous = self._current_versions(key)
        if if_absent and previous:
            raise ArtifactExistsError(
                f"{key.uri(self.root_uri)} exists already", uri=previous[-1].uri
            )
        version = previous[-1].version + 1 if previous else 1
        codec = self.compression.codec
        object_key = key.object_key(version, new_generation(), codec)
        summariser = Summariser(key.type) if self.config.content_summaries else None
        source = HashingSource(summariser.tap(chunks) if summariser else chunks)
        replaced = [] if self.config.versioning_enabled else previous
        # A shared index reserves quota for the stored bytes before they are written.
        with self._quota.reserving(
            key.uri(self.root_uri), sum(m.stored_size for m in replaced)
        ) as meter:
            # Staged: the backend may make the object durable together with its record.
            staged = self.backend.stage(object_key, meter(self.compression.compress_stream(source)))
            return self._finish_version(
                key,
                version,
                object_key,
                staged,
                source,
                replaced,
                mime_type=mime_type,
                tags=tags,
                custom=custom,
                retention_days=retention_days,
                codec=codec,
                summariser=summariser,
                unchanged_from=previous[-1] if if_changed and previous else None,
            )

    def _finish_version(
        self,
        key: ArtifactKey,
        version: int,
        object_key: str,
        staged: StagedObject,
        source: HashingSource,
        replaced: list[ArtifactMetadata],
        *,
        mime_type: str,
        tags: tuple[str, ...],
        custom: dict[str, Any],
        retention_days: int | None,
        codec: Codec,
        summariser: Summariser | None,
        unchanged_from: ArtifactMetadata | None = None,
    ) -> ArtifactMetadata:
        """Commit the staged object of a new version (see :meth:`_write_version`).

        With ``unchanged_from`` (the latest version, for ``if_changed``) and the same
        bytes, nothing is committed and that version is returned.
        """
        stored_size = staged.size
        summary, summary_reason = summariser.finish() if summariser else (None, None)
        if unchanged_from is not None and unchanged_from.checksum == source.checksum:
            # A retried upload of the same bytes: nothing refers to the new object yet.
            self.backend.delete(object_key)
            log.debug("%s unchanged: kept v%d", unchanged_from.uri, unchanged_from.version)
            return unchanged_from
        meta = ArtifactMetadata(
            uri=key.uri(self.root_uri),
            task_id=key.task_id,
            spec_name=key.spec_name,
            type=key.type,
            size=source.size,
            checksum=source.checksum,
            created_at=utc_now(),
            compressed=codec != "none",
            stored_size=stored_size,
            mime_type=mime_type,
            tags=tags,
            version=version,
            metadata=custom,
            codec=codec,
            object_key=object_key,
            retention_days=retention_days,
            summary=summary,
            summary_reason=summary_reason,
        )
        try:
            usage_before = self._check_quota(meta, replaced)
            meta, replaced = self._commit(key, meta, replaced, staged)
        except BaseException as exc:
            if not _outcome_unknown(exc):
                # Nothing refers to the new object yet: remove it so no orphan stays.
                with contextlib.suppress(Exception):
                    self.backend.delete(object_key)
                raise
            # The record write failed in a way that may have reached the server after
            # all (the answer was lost): never delete an object a record may point to.
            landed = self._find_record_of(key, object_key)
            if landed is None:
                raise  # the object, if unreferenced, is an orphan for repair to collect
            log.warning(
                "%s v%d was stored although its commit reported %s",
                meta.uri,
                landed.version,
                type(exc).__name__,
            )
            meta = landed
            self.metadata.reindex(meta)
            replaced = [m for m in replaced if m.version < meta.version]
        self._remove_versions(key, replaced)
        if usage_before is not None:
            self._warn_on_threshold(usage_before, meta, replaced)
        return meta

    def _current_versions(self, key: ArtifactKey) -> list[ArtifactMetadata]:
        """The stored versions of ``key`` a new upload follows (and, unversioned, replaces).

        A filesystem store's index lives inside the store, shared by every writer,
        so it answers. Otherwise (cloud buckets, or a separate ``state_dir``) each
        host has its own index, possibly behind the records another host wrote:
        the records are listed, so a version number is never reused below a newer
        one and nothing another host committed is overlooked.
        """
        if self._index_is_shared:
            return self.metadata.versions(key)
        return self._load_versions(self.metadata.stored(key))

    def _find_record_of(self, key: ArtifactKey, object_key: str) -> ArtifactMetadata | None:
        """The committed record that refers to ``object_key``, if any (best effort)."""
        try:
            stored = self.metadata.stored(key)
            for meta in reversed(self._load_versions(stored)):
                if meta.object_key == object_key:
                    return meta
        except ArtifactStoreError as exc:
            log.warning("could not check whether %s was committed: %s", object_key, exc)
        return None

    def _check_quota(self, meta: ArtifactMetadata, replaced: list[ArtifactMetadata]) -> int | None:
        """Refuse a write that would take stored bytes past the quota.

        Checked once the new object's stored size is known and before it is
        committed, so a refused upload leaves the store as it was. Concurrent
        writers may overshoot the quota by at most their own uploads. Returns
        the stored bytes before this upload (``None`` without a quota).
        """
        quota = self.config.storage_quota.max_bytes
        if quota is None:
            return None
        before = self.metadata.query(lambda index: index.stored_bytes())
        after = before - sum(m.stored_size for m in replaced) + meta.stored_size
        if after > quota:
            raise StorageFullError(
                f"storage quota exceeded: storing {meta.uri} ({format_size(meta.stored_size)}) "
                f"would use {format_size(after)} of {format_size(quota)}; "
                f"{self._quota_advice()}, or raise storage_quota.max_size_gb "
                f"(now {self.config.storage_quota.max_size_gb:g})",
                uri=meta.uri,
            )
        return before

    def _quota_advice(self) -> str:
        """What to do about a full store: the cleanup preview, and the biggest specs."""
        biggest = sorted(
            self._grouped_usage(0).items(), key=lambda item: item[1].stored_bytes, reverse=True
        )[:QUOTA_TOP_SPECS]
        named = ", ".join(f"{name} {format_size(u.stored_bytes)}" for name, u in biggest)
        advice = "see what expired with 'necrocode-artifacts cleanup --dry-run'"
        return f"{advice} (largest specs: {named})" if named else advice

    def _warn_on_threshold(
        self, before: int, meta: ArtifactMetadata, replaced: list[ArtifactMetadata]
    ) -> None:
        """Warn while usage is above the threshold: every upload, at most once a minute.

        Rate-limited per process (and store), so a busy service logs one line a
        minute and every run of the command line that uploads says it once.
        """
        quota = self.config.storage_quota.max_bytes
        threshold = self.config.storage_quota.warn_threshold
        if not quota:
            return
        after = before - sum(m.stored_size for m in replaced) + meta.stored_size
        if after < threshold * quota:
            return
        now = time.monotonic()
        with _QUOTA_WARNED_LOCK:
            last = _QUOTA_WARNED.get(self.root_uri)
            if last is not None and now - last < QUOTA_WARNING_INTERVAL:
                return
            _QUOTA_WARNED[self.root_uri] = now
        log.warning(
            "storage usage is above %.0f%% of the quota: %s of %s (%.1f%%); %s",
            threshold * 100,
            format_size(after),
            format_size(quota),
            after / quota * 100,
            self._quota_advice(),
        )

    def _commit(
        self,
        key: ArtifactKey,
        meta: ArtifactMetadata,
        replaced: list[ArtifactMetadata],
        staged: StagedObject,
    ) -> tuple[ArtifactMetadata, list[ArtifactMetadata]]:
        """Create the record of ``meta`` (durable no sooner than ``staged``, its object).

        On a version race, take the next free number.
        """
        for _ in range(MAX_VERSION_RACES):
            try:
                self.metadata.save(
                    meta,
                    create=True,
                    remove_versions=tuple(m.version for m in replaced),
                    after=staged,
                )
                return meta, replaced
            except ObjectExistsError:
                # The index was behind the records (a writer died before indexing,
                # or another machine wrote): trust the records and retry.
                stored = self.metadata.stored(key)
                meta = meta.with_changes(version=stored.latest_version + 1, created_at=utc_now())
                if not self.config.versioning_enabled:
                    replaced = self._load_versions(stored)
        raise StorageError(
            f"gave up on {meta.uri}: the version number kept being taken", uri=meta.uri
        )

    def _load_versions(self, stored: StoredArtifact) -> list[ArtifactMetadata]:
        return load_versions(self.metadata, stored)

    def _remove_versions(
        self, key: ArtifactKey, versions: list[ArtifactMetadata], *, strict: bool = False
    ) -> None:
        """Delete versions: their records first (oldest first), then their objects.

        Oldest first, so an interruption never brings back an older version over
        a newer one. After an upload (``strict=False``) a failure here only leaves
        waste for ``repair`` to collect, so it is logged, not raised.
        """
        try:
            self.metadata.delete_records([(key, meta.version) for meta in versions])
            self.backend.delete_many([meta.object_key for meta in versions if meta.object_key])
        except ArtifactStoreError as exc:
            if strict:
                raise
            log.warning("could not remove replaced versions of %s: %s", key.path, exc)

    # -- download ---------------------------------------------------------------------

    def open(self, uri: str, verify_checksum: bool | None = None) -> ArtifactReader:
        """Open an artifact for streaming: a binary file object of its original bytes.

        Decompresses and hashes as bytes pass and raises ``IntegrityError`` at
        the end on a mismatch. Use it in a ``with`` block. ``verify_checksum``
        defaults to the configuration's ``verify_checksum`` (the size is always
        checked).
        """
        with self._operation("open", uri):
            return self._open(uri, verify_checksum)

    def _open(self, uri: str, verify_checksum: bool | None) -> ArtifactReader:
        key, version = self._parse_uri(uri)
        verify = self.config.verify_checksum if verify_checksum is None else verify_checksum
        meta = self.metadata.get(key, version)
        for _ in range(MAX_READ_RACES):
            if meta is None:
                raise ArtifactNotFoundError(f"no artifact at {uri}", uri=uri)
            try:
                raw = self.backend.open_read(meta.object_key)
            except InvalidNameError:
                raise IntegrityError(
                    f"{uri}: its record names an unusable object key {meta.object_key!r}", uri=uri
                ) from None
            except ArtifactNotFoundError:
                # Replaced or deleted since the lookup: look again in the records.
                fresh = self.metadata.refresh(key, version)
                if fresh is not None and fresh.object_key == meta.object_key:
                    raise IntegrityError(
                        f"{uri}: stored object {meta.object_key} is missing", uri=uri
                    ) from None
                meta = fresh
                continue
            return ArtifactReader(meta, raw, verify=verify)
        raise StorageError(f"{uri} kept changing while opening it", uri=uri)

    def download(self, uri: str, verify_checksum: bool | None = None) -> bytes:
        """The artifact's original bytes, verified (see :meth:`open`)."""
        with self._operation("download", uri), self._open(uri, verify_checksum) as reader:
            return reader.readall()

    def iter_chunks(self, uri: str, verify_checksum: bool | None = None) -> Iterator[bytes]:
        """Yield the artifact's bytes in chunks of up to 1 MiB (see :meth:`open`)."""
        with self.open(uri, verify_checksum) as reader:
            yield from reader

    def download_stream(
        self, uri: str, chunk_size: int = 8192, verify_checksum: bool | None = None
    ) -> Iterator[bytes]:
        """Yield the artifact's bytes in chunks of at most ``chunk_size`` bytes.

        Streams (memory stays flat) and verifies like :meth:`open`: a mismatch
        raises ``IntegrityError`` before the last chunk is given out.
        """
        if type(chunk_size) is not int or chunk_size < 1:
            raise InvalidInputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        with self.open(uri, verify_checksum) as reader:
            while chunk := reader.read(chunk_size):
                yield chunk

    def download_to(
        self,
        uri: str,
        path: str | os.PathLike[str],
        verify_checksum: bool | None = None,
        progress: ProgressCallback | None = None,
    ) -> ArtifactMetadata:
        """Stream an artifact into ``path``; the file appears only once fully verified."""
        target = Path(path)
        check_output_file(target)
        tmp = target.with_name(f".{target.name}.part-{new_generation()}")
        with self._operation("download", uri), self._open(uri, verify_checksum) as reader:
            done = 0
            try:
                with open(tmp, "wb") as out:
                    for chunk in reader:
                        out.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, reader.metadata.size)
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return reader.metadata

    # -- metadata and search ----------------------------------------------------------

    def get_metadata(self, uri: str) -> ArtifactMetadata:
        """Metadata of the artifact (or the version) ``uri`` names."""
        with self._operation("get_metadata", uri):
            return self.metadata.get_by_uri(uri)

    def exists(self, uri: str) -> bool:
        """Whether ``uri`` names a stored artifact (or version); ``False`` for a URI of
        another store. A malformed URI of this store raises ``InvalidURIError``."""
        if isinstance(uri, str) and not uri.startswith(self.root_uri.rstrip("/") + "/"):
            return False
        key, version = self._parse_uri(uri)
        return self.metadata.get(key, version) is not None

    def search(
        self,
        task_id: str | None = None,
        spec_name: str | None = None,
        artifact_type: ArtifactType | str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        *,
        tags: Iterable[str] | None = None,
        match: str = "all",
        limit: int | None = None,
        failed: bool | None = None,
        test: str | None = None,
        touches: str | None = None,
        has_errors: bool | None = None,
        order: str | None = None,
        sort: SortKey = "created",
        reverse: bool | None = None,
    ) -> list[ArtifactMetadata]:
        """Artifacts (latest versions) matching every given filter.

        ``created_after`` is inclusive and ``created_before`` exclusive; naive
        datetimes are taken as UTC. ``tags`` matches artifacts carrying all of them
        (``match="any"``: at least one). Content filters use the summaries made
        at upload (docs/insights.md): ``failed`` (test reports with failures, or
        with none), ``test`` (a substring of a failing test id), ``touches`` (a
        glob over a diff's changed paths, ``"auth/**"``) and ``has_errors``
        (failing tests, error lines or tracebacks in a log). ``sort`` orders by
        ``"created"``, ``"size"`` (original bytes) or ``"name"`` (spec, task,
        type); content filters sort by creation only. ``order`` is ``"oldest"``
        or ``"newest"`` first, or ``reverse=True`` for descending order of any
        sort (newest, largest, Z first); by default newest first when a content
        filter is given, else ascending. For result sets too big for one list
        see :meth:`search_page` and :meth:`iter_search`.
        """
        return self.search_page(
            task_id, spec_name, artifact_type, created_after, created_before,
            tags=tags, match=match, limit=limit, failed=failed, test=test,
            touches=touches, has_errors=has_errors, order=order, sort=sort, reverse=reverse,
        ).items  # fmt: skip

    def search_page(
        self,
        task_id: str | None = None,
        spec_name: str | None = None,
        artifact_type: ArtifactType | str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        *,
        tags: Iterable[str] | None = None,
        match: str = "all",
        limit: int | None = None,
        failed: bool | None = None,
        test: str | None = None,
        touches: str | None = None,
        has_errors: bool | None = None,
        order: str | None = None,
        sort: SortKey = "created",
        reverse: bool | None = None,
        cursor: str | None = None,
    ) -> SearchPage:
        """One page of :meth:`search`: at most ``limit`` items after ``cursor``.

        ``page.next_cursor`` (``None`` on the last page) continues the same
        query; it is an opaque string, valid for the same sort and direction.
        Pages are keyset-paged, so an artifact uploaded meanwhile never shifts
        or repeats the rest.
        """
        with self._operation("search"):
            insight = InsightFilter.build(
                failed=failed, test=test, touches=touches, has_errors=has_errors
            )
            if order not in (None, "oldest", "newest"):
                raise InvalidInputError(f"order must be 'oldest' or 'newest', got {order!r}")
            if order is not None and reverse is not None:
                raise InvalidInputError("give order or reverse, not both")
            if sort not in ("created", "size", "name"):
                raise InvalidInputError(f"sort must be created, size or name, got {sort!r}")
            if sort != "created" and insight.active:
                raise InvalidInputError("content filters sort by creation time only")
            query = self._query(
                task_id, spec_name, artifact_type, created_after, created_before, tags, match, limit
            )
            if reverse is None:
                reverse = order == "newest" or (order is None and insight.active)
            after = decode_cursor(cursor, sort, reverse) if cursor is not None else None
            # One more row than asked: is there a next page? (No room above the largest.)
            fetch = None if limit is None or limit >= MAX_INT64 else limit + 1
            query = dataclasses.replace(
                query,
                insights=insight if insight.active else None,
                newest_first=bool(reverse),
                sort=sort,
                after=after,
                limit=fetch,
            )
            found = self.metadata.search(query)
            if limit is None or len(found) <= limit:
                return SearchPage(found, None)
            items = found[:limit]
            return SearchPage(items, encode_cursor(items[-1], sort, bool(reverse)))

    def iter_search(
        self,
        task_id: str | None = None,
        spec_name: str | None = None,
        artifact_type: ArtifactType | str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        *,
        tags: Iterable[str] | None = None,
        match: str = "all",
        failed: bool | None = None,
        test: str | None = None,
        touches: str | None = None,
        has_errors: bool | None = None,
        order: str | None = None,
        sort: SortKey = "created",
        reverse: bool | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[ArtifactMetadata]:
        """:meth:`search` as a lazy iterator, fetching ``page_size`` rows at a time."""
        cursor: str | None = None
        while True:
            page = self.search_page(
                task_id, spec_name, artifact_type, created_after, created_before,
                tags=tags, match=match, limit=page_size, failed=failed, test=test,
                touches=touches, has_errors=has_errors, order=order, sort=sort,
                reverse=reverse, cursor=cursor,
            )  # fmt: skip
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    @staticmethod
    def _query(
        task_id: str | None,
        spec_name: str | None,
        artifact_type: ArtifactType | str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        tags: Iterable[str] | None,
        match: str,
        limit: int | None,
        latest_only: bool = True,
    ) -> SearchQuery:
        if task_id is not None:
            validate_name("task_id", task_id)
        if spec_name is not None:
            validate_name("spec_name", spec_name)
        kind = None
        if artifact_type is not None:
            try:
                kind = ArtifactType.parse(artifact_type)
            except ValueError as exc:
                raise InvalidInputError(str(exc)) from None
        created_after = _as_utc("created_after", created_after)
        created_before = _as_utc("created_before", created_before)
        if match not in ("all", "any"):
            raise InvalidInputError(f"match must be 'all' or 'any', got {match!r}")
        if limit is not None and (type(limit) is not int or not 1 <= limit <= MAX_INT64):
            raise InvalidInputError(
                f"limit must be an integer from 1 to {MAX_INT64}, got {limit!r}"
            )
        return SearchQuery(
            task_id=task_id,
            spec_name=spec_name,
            artifact_type=kind,
            created_after=created_after,
            created_before=created_before,
            tags=validate_tags(tags),
            match_all_tags=match == "all",
            latest_only=latest_only,
            limit=limit,
        )

    def get_by_task_id(self, task_id: str, spec_name: str | None = None) -> list[ArtifactMetadata]:
        """Metadata of every artifact of a task."""
        return self.search(task_id=task_id, spec_name=spec_name)

    def get_by_spec_name(self, spec_name: str) -> list[ArtifactMetadata]:
        """Metadata of every artifact of a spec."""
        return self.search(spec_name=spec_name)

    def get_all_artifacts(self) -> list[ArtifactMetadata]:
        """Metadata of every stored artifact (its latest version), oldest first."""
        return self.search()

    # -- delete -----------------------------------------------------------------------

    def delete(self, uri: str, *, missing_ok: bool = False) -> int:
        """Delete the artifact ``uri`` names (every version), or just the version
        a ``?version=N`` URI names, with its metadata. Returns 1, or 0 when it
        did not exist and ``missing_ok`` is set (else ``ArtifactNotFoundError``).
        """
        with self._operation("delete", uri):
            key, version = self._parse_uri(uri)
            with self._hold(key, uri):
                stored = self.metadata.stored(key)
                versions = sorted(stored.records) if version is None else [version]
                versions = [v for v in versions if v in stored.records]
                if not versions:
                    self.metadata.unindex(key, None if version is None else [version])
                    if missing_ok:
                        return 0
                    raise ArtifactNotFoundError(f"no artifact at {uri}", uri=uri)
                metas = [m for m in self._load_versions(stored) if m.version in versions]
                objects = tuple(m.object_key for m in metas if m.object_key)
                removal = DeleteIntent(key, tuple(versions), objects, all_versions=version is None)
                self.metadata.remove_versions([removal])
            log.info("deleted %s", uri)
            return 1

    def delete_by_task_id(self, task_id: str, spec_name: str | None = None) -> int:
        """Delete every artifact of a task (in every spec, unless ``spec_name`` is given)."""
        with self._operation("delete_by_task_id", task_id):
            found = self.search(task_id=task_id, spec_name=spec_name)
            return sum(self.delete(meta.uri, missing_ok=True) for meta in found)

    def delete_by_spec_name(self, spec_name: str) -> int:
        """Delete every artifact of a spec; return how many were deleted."""
        with self._operation("delete_by_spec_name", spec_name):
            found = self.search(spec_name=spec_name)
            return sum(self.delete(meta.uri, missing_ok=True) for meta in found)

    # -- integrity --------------------------------------------------------------------

    def verify_checksum(self, uri: str) -> bool:
        """Whether the artifact's bytes still match their recorded size and SHA-256."""
        with self._operation("verify_checksum", uri):
            try:
                with self.open(uri, verify_checksum=True) as reader:
                    reader.drain()
            except IntegrityError as exc:
                log.warning("integrity check failed: %s", exc)
                return False
            return True

    def verify_all(self, progress: ProgressCallback | None = None) -> VerifyReport:
        """Check every stored artifact version against its record.

        Walks the records in the backend (the source of truth), reads and hashes
        every object, and reports corrupted and missing artifacts, orphaned
        objects and leftovers of interrupted writes. Index rows that disagree
        with the records are corrected in passing and listed.
        """
        with self._operation("verify_all"):
            return verify_store(
                self.backend, self.metadata, progress, self.config.maintenance_workers
            )

    def repair(
        self, older_than: timedelta = DEFAULT_REPAIR_GRACE, *, dry_run: bool = False
    ) -> RepairReport:
        """Remove the waste interrupted writes leave, then rebuild the index.

        Deletes orphaned objects and temporary leftovers older than
        ``older_than`` (younger ones may belong to a write in progress), skipping
        artifacts whose lock is held right now. Never touches a committed
        artifact: records whose object is missing or that cannot be read are
        reported (``missing``, ``unreadable``). ``dry_run`` only lists.
        """
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise InvalidInputError(f"older_than must be a timedelta >= 0, got {older_than!r}")
        if older_than > MAX_REPAIR_GRACE:
            raise InvalidInputError(
                f"older_than must be at most {MAX_REPAIR_GRACE.days} days, got {older_than!r}"
            )
        with self._operation("repair"):
            return repair_store(
                self.backend, self.metadata, self.locks, older_than, dry_run=dry_run
            )

    # -- records: tags and pinning ----------------------------------------------------

    def _update_record(
        self, operation: str, uri: str, change: Callable[[ArtifactMetadata], ArtifactMetadata]
    ) -> ArtifactMetadata:
        """Rewrite the record ``uri`` names (under its lock, from the stored truth)."""
        with self._operation(operation, uri):
            key, version = self._parse_uri(uri)
            with self._hold(key, uri):
                current = self.metadata.refresh(key, version)
                if current is None:
                    raise ArtifactNotFoundError(f"no artifact at {uri}", uri=uri)
                updated = change(current)
                if updated != current:
                    self.metadata.save(updated, create=False)
            return updated

    def add_tags(self, uri: str, tags: Iterable[str]) -> ArtifactMetadata:
        """Add ``tags`` to the artifact (the latest version, or the version ``uri`` names).

        Idempotent: tags already present stay once. Returns the updated metadata.
        """
        new = validate_tags(tags)
        return self._update_record(
            "add_tags", uri, lambda m: m.with_changes(tags=validate_tags((*m.tags, *new)))
        )

    def update_tags(self, uri: str, tags: Iterable[str]) -> ArtifactMetadata:
        """Replace the artifact's tags with ``tags``."""
        new = validate_tags(tags)
        return self._update_record("update_tags", uri, lambda m: m.with_changes(tags=new))

    def remove_tags(self, uri: str, tags: Iterable[str]) -> ArtifactMetadata:
        """Remove ``tags`` from the artifact (absent ones are ignored)."""
        gone = set(validate_tags(tags))
        return self._update_record(
            "remove_tags",
            uri,
            lambda m: m.with_changes(tags=tuple(t for t in m.tags if t not in gone)),
        )

    def search_by_tags(
        self, tags: Iterable[str], match: str = "all", **filters: Any
    ) -> list[ArtifactMetadata]:
        """Artifacts carrying all ``tags`` (``match="any"``: at least one), plus any
        :meth:`search` filters."""
        tag_tuple = validate_tags(tags)
        if not tag_tuple:
            raise InvalidInputError("search_by_tags needs at least one tag")
        return self.search(tags=tag_tuple, match=match, **filters)

    def pin(self, uri: str) -> ArtifactMetadata:
        """Keep the artifact (or version) forever: cleanup never deletes it."""
        return self._update_record("pin", uri, lambda m: m.with_changes(pinned=True))

    def unpin(self, uri: str) -> ArtifactMetadata:
        """Let the retention policy apply to the artifact again."""
        return self._update_record("unpin", uri, lambda m: m.with_changes(pinned=False))

    # -- versions ---------------------------------------------------------------------

    def get_all_versions(self, uri: str) -> list[ArtifactMetadata]:
        """Every stored version of the artifact, oldest first."""
        with self._operation("get_all_versions", uri):
            key, _ = self._parse_uri(uri)
            versions = self.metadata.versions(key)
            if not versions:
                if self.metadata.refresh(key) is None:
                    raise ArtifactNotFoundError(f"no artifact at {uri}", uri=uri)
                versions = self.metadata.versions(key)
            return versions

    def download_version(
        self, uri: str, version: int, verify_checksum: bool | None = None
    ) -> bytes:
        """The bytes of one version of the artifact."""
        if type(version) is not int or not 1 <= version <= MAX_INT64:
            raise InvalidInputError(
                f"version must be an integer from 1 to {MAX_INT64}, got {version!r}"
            )
        key, _ = self._parse_uri(uri)
        return self.download(key.uri(self.root_uri, version), verify_checksum)

    def delete_old_versions(self, uri: str, keep: int = 1) -> int:
        """Delete all but the newest ``keep`` versions; return how many were deleted."""
        if type(keep) is not int or keep < 1:
            raise InvalidInputError(f"keep must be a positive integer, got {keep!r}")
        with self._operation("delete_old_versions", uri):
            key, _ = self._parse_uri(uri)
            with self._hold(key, uri):
                stored = self.metadata.stored(key)
                if not stored.records:
                    raise ArtifactNotFoundError(f"no artifact at {uri}", uri=uri)
                doomed = sorted(stored.records)[:-keep]
                metas = [m for m in self._load_versions(stored) if m.version in doomed]
                objects = tuple(m.object_key for m in metas if m.object_key)
                self.metadata.remove_versions([DeleteIntent(key, tuple(doomed), objects)])
            return len(doomed)

    # -- retention --------------------------------------------------------------------

    def find_expired(self, now: datetime | None = None) -> list[ArtifactMetadata]:
        """Artifact versions past their retention period at ``now`` (default: now)."""
        moment = _aware(now, "now")
        days = self.retention_policy.days_by_type()
        with self._operation("find_expired"):
            return [
                self.metadata.with_uri(meta)
                for meta in self.metadata.query(lambda index: index.expired(moment, days))
            ]

    def cleanup_expired(
        self,
        dry_run: bool = False,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
    ) -> CleanupReport:
        """Delete every expired artifact version; log the run and return a summary.

        Each deletion re-checks, under the artifact's lock, that the version is
        still stored, unpinned and expired, so a concurrent re-upload or pin wins.
        With ``dry_run`` nothing is deleted but the run is logged all the same.
        """
        moment = _aware(now, "now")
        with self._operation("cleanup_expired"):
            report = CleanupReport(utc_now(), dry_run, self.retention_policy.describe())
            expired = self.find_expired(moment)
            # One batch per task folder: its deletions share their folder fsyncs.
            by_folder: dict[str, list[ArtifactMetadata]] = {}
            for meta in expired:
                by_folder.setdefault(f"{meta.spec_name}/{meta.task_id}", []).append(meta)
            done = 0
            # Folders are deleted on a few threads (their fsyncs overlap), merged here in
            # order; a folder that fails is reported and the others go on.
            workers = maintenance_workers(
                self.backend, self.config.maintenance_workers, waits_on_disk=True
            )
            if self.metadata.index.shared:
                # Each thread holds a claim connection and needs another for its deletes.
                workers = min(workers, SHARED_JOB_WORKERS)
            outcomes = ordered_map(
                lambda group: group if dry_run else self._delete_expired_group(group, moment),
                by_folder.values(),
                1 if dry_run else workers,
            )
            for outcome in outcomes:
                group, failure = outcome.item, outcome.error
                deleted = outcome.value or []
                for meta in group:
                    label = meta.version_uri if self.config.versioning_enabled else meta.uri
                    if failure is not None:
                        report.errors.append(f"{label}: {failure}")
                    elif meta in deleted:
                        report.uris.append(label)
                        report.bytes_freed += meta.stored_size
                    done += 1
                    if progress is not None:
                        progress(done, len(expired))
            report.finished_at = utc_now()
            try:
                append_cleanup_log(self.metadata.state_dir, report)
            except StorageError as exc:
                # The deletions happened (and freed space); only their log line is lost.
                log.warning("cleanup ran, but its log could not be written: %s", exc)
            log.info(
                "cleanup%s: %d expired artifact versions %s, %d bytes, %d errors",
                " (dry run)" if dry_run else "",
                report.count,
                "found" if dry_run else "deleted",
                report.bytes_freed,
                len(report.errors),
            )
            return report

    def _delete_expired_group(
        self, group: list[ArtifactMetadata], now: datetime
    ) -> list[ArtifactMetadata]:
        """Delete the still-expired versions of one task folder; return those deleted.

        Holds the locks of the folder's artifacts (in key order, so two cleanups
        cannot deadlock) and re-checks every version from its record, so a
        concurrent re-upload or pin wins. Records go first (oldest first), then
        objects, each batch made durable by one folder fsync.
        """
        keys = sorted({ArtifactKey(m.spec_name, m.task_id, m.type) for m in group})
        with contextlib.ExitStack() as held:
            # With a shared index, hosts cleaning at once split the folders between them.
            folder = f"{group[0].spec_name}/{group[0].task_id}"
            if not held.enter_context(self.metadata.index.claim("cleanup", folder)):
                log.info("cleanup: another host is cleaning %s; left to it", folder)
                return []
            for key in keys:
                held.enter_context(self._hold(key, key.uri(self.root_uri)))
            doomed: list[tuple[ArtifactKey, ArtifactMetadata]] = []
            kept: list[ArtifactMetadata] = []
            for meta in sorted(group, key=lambda m: m.version):
                key = ArtifactKey(meta.spec_name, meta.task_id, meta.type)
                try:
                    current = self.metadata.load(key, meta.version)
                except ArtifactNotFoundError:
                    self.metadata.unindex(key, [meta.version])
                    continue
                if not self.retention_policy.is_expired(current, now):
                    self.metadata.reindex(current)
                    continue
                doomed.append((key, current))
                kept.append(meta)
            if not doomed:
                return []
            self.metadata.remove_versions(
                [
                    DeleteIntent(
                        key,
                        tuple(m.version for k, m in doomed if k == key),
                        tuple(m.object_key for k, m in doomed if k == key and m.object_key),
                    )
                    for key in keys
                ]
            )
        return kept

    # -- usage ------------------------------------------------------------------------

    def _usage(self, rows: list[tuple[str, str, int, int, int, int]]) -> StorageUsage:
        return StorageUsage(
            artifact_count=sum(r[2] for r in rows),
            version_count=sum(r[3] for r in rows),
            stored_bytes=sum(r[4] for r in rows),
            original_bytes=sum(r[5] for r in rows),
            quota_bytes=self.config.storage_quota.max_bytes,
            warn_threshold=self.config.storage_quota.warn_threshold,
        )

    def get_storage_usage(self) -> StorageUsage:
        """Total usage: artifacts, versions, stored and original bytes, quota."""
        with self._operation("get_storage_usage"):
            artifacts, versions, stored, original = self.metadata.query(
                lambda index: index.usage_sums()
            )
            return StorageUsage(
                artifact_count=artifacts,
                version_count=versions,
                stored_bytes=stored,
                original_bytes=original,
                quota_bytes=self.config.storage_quota.max_bytes,
                warn_threshold=self.config.storage_quota.warn_threshold,
            )

    def get_usage_by_spec(self) -> dict[str, StorageUsage]:
        """Usage of each spec name."""
        return self._grouped_usage(0)

    def get_usage_by_type(self) -> dict[str, StorageUsage]:
        """Usage of each artifact type (``"diff"``, ``"log"``, ``"test"``)."""
        return self._grouped_usage(1)

    def _grouped_usage(self, column: int) -> dict[str, StorageUsage]:
        with self._operation("get_usage"):
            groups: dict[str, list[tuple[str, str, int, int, int, int]]] = {}
            for row in self.metadata.query(lambda index: index.usage_totals()):
                groups.setdefault(str(row[column]), []).append(row)
            return {name: self._usage(rows) for name, rows in sorted(groups.items())}

    # -- export -----------------------------------------------------------------------

    def export_by_spec(
        self,
        spec_name: str,
        output_path: str | os.PathLike[str] | None = None,
        progress: ExportProgressCallback | None = None,
        *,
        include_metadata: bool = True,
    ) -> Path:
        """Export every artifact of a spec to a ZIP file; return its path.

        With ``include_metadata=False`` the archive holds the artifacts only, no
        ``manifest.json`` of their metadata.
        """
        with self._operation("export_by_spec", spec_name):
            found = self.search(spec_name=spec_name)
            default = f"{spec_name}-{_stamp()}.zip"
            query = {"spec_name": spec_name}
            return self._export(found, output_path, default, query, progress, include_metadata)

    def export_by_task(
        self,
        task_id: str,
        spec_name: str | None = None,
        output_path: str | os.PathLike[str] | None = None,
        progress: ExportProgressCallback | None = None,
        *,
        include_metadata: bool = True,
    ) -> Path:
        """Export every artifact of a task (within ``spec_name`` if given) to a ZIP file."""
        with self._operation("export_by_task", task_id):
            found = self.search(task_id=task_id, spec_name=spec_name)
            default = f"{spec_name + '-' if spec_name else ''}{task_id}-{_stamp()}.zip"
            query = {"task_id": task_id, "spec_name": spec_name}
            return self._export(found, output_path, default, query, progress, include_metadata)

    def _export(
        self,
        found: list[ArtifactMetadata],
        output_path: str | os.PathLike[str] | None,
        default_name: str,
        query: dict[str, Any],
        progress: ExportProgressCallback | None,
        include_metadata: bool,
    ) -> Path:
        target = Path(output_path) if output_path is not None else Path.cwd() / default_name
        if target.is_dir():
            target = target / default_name
        path = export_zip(
            found,
            target,
            lambda uri: self.open(uri, verify_checksum=True),
            query=query,
            progress=progress,
            include_manifest=include_metadata,
            workers=maintenance_workers(self.backend, self.config.maintenance_workers),
        )
        log.info("exported %d artifacts to %s", len(found), path)
        return path

    def rebuild_index(self) -> int:
        """Recreate the search index from the metadata records; return the record count."""
        with self._operation("rebuild_index"):
            return self.metadata.rebuild_index()

    reindex = rebuild_index

    def refresh_summaries(
        self, *, force: bool = False, progress: ProgressCallback | None = None
    ) -> SummaryRefreshReport:
        """Summarise stored versions that have no summary, or an older one (see
        :mod:`.backfill`): streamed, checksum-verified, resumable after an interruption.
        ``force`` re-reads every version. ``progress(done, total)`` is called per version.
        """
        with self._operation("refresh_summaries"):

            def load(key: tuple[str, str, str, int]) -> ArtifactMetadata | None:
                return self.metadata.get(ArtifactKey.of(key[0], key[1], key[2]), key[3])

            def read(meta: ArtifactMetadata) -> Iterator[bytes]:
                return self.iter_chunks(meta.version_uri, verify_checksum=True)

            def update(meta: ArtifactMetadata, summary: Summary | None, reason: str | None) -> None:
                def change(current: ArtifactMetadata) -> ArtifactMetadata:
                    if current.object_key != meta.object_key:
                        return current  # replaced meanwhile: its own upload summarised it
                    return current.with_changes(summary=summary, summary_reason=reason)

                self._update_record("refresh_summaries", meta.version_uri, change)

            return refresh_summaries(
                self.metadata.query(lambda index: index.keys()),
                load,
                read,
                update,
                checkpoint=self.config.effective_state_dir / SUMMARY_CHECKPOINT,
                force=force,
                progress=progress,
            )


@dataclasses.dataclass(frozen=True, slots=True)
class _UploadOptions:
    """The keyword options of one upload, as :meth:`ArtifactStore._upload` takes them."""

    tags: Iterable[str] | None
    retention_days: int | None
    if_changed: bool
    if_absent: bool
    progress: ProgressCallback | None


class _Operation:
    """The context of one public call: a failure is logged once, by the outermost call.

    A class rather than a ``contextlib`` generator: it wraps every download.
    """

    __slots__ = ("_depth", "_name", "_outer", "_target")

    def __init__(self, depth: threading.local, name: str, target: str | None) -> None:
        self._depth = depth
        self._name = name
        self._target = target
        self._outer = 0

    def __enter__(self) -> None:
        self._outer = getattr(self._depth, "value", 0)
        self._depth.value = self._outer + 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth.value = self._outer
        if self._outer == 0 and isinstance(exc, ArtifactStoreError):
            # The caller gets the exception; a library that also printed it would say
            # everything twice. DEBUG, so it shows only where someone asked for it.
            log.log(
                logging.DEBUG,
                "%s %s failed: %s: %s",
                self._name,
                self._target or "",
                type(exc).__name__,
                exc,
                extra={FAILED_OPERATION: self._name},
            )


def _outcome_unknown(exc: BaseException) -> bool:
    """Whether a failed backend write may nevertheless have happened.

    A transient failure (a connection cut after the request was sent) may hide
    a write that succeeded; a refusal (quota, permission, a lost version race)
    or a local error may not.
    """
    return isinstance(exc, StorageError) and (
        exc.retryable or (isinstance(exc.__cause__, StorageError) and exc.__cause__.retryable)
    )


def _check_custom_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise InvalidInputError("metadata must be a dict with string keys")
    try:
        text = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must be JSON-serialisable: {exc}") from None
    decoded: dict[str, Any] = json.loads(text)
    return decoded


def _check_mime(mime: str) -> str:
    if (
        not isinstance(mime, str)
        or not mime
        or len(mime) > MAX_MIME_LENGTH
        or "/" not in mime
        or any(ord(ch) < 33 or ord(ch) > 126 for ch in mime.replace(" ", ""))
    ):
        raise InvalidInputError(f"invalid MIME type {mime!r}")
    return mime


def _content_chunks(content: Content) -> tuple[Iterable[bytes], Callable[[], None]]:
    """Chunks of ``content`` and a function that releases what was opened for it."""
    if isinstance(content, str):
        return iter_source(content.encode("utf-8")), lambda: None
    if isinstance(content, bytes | bytearray | memoryview):
        return iter_source(content), lambda: None
    if isinstance(content, os.PathLike):
        try:
            handle = open(content, "rb")  # noqa: SIM115 - closed by the returned function
        except OSError as exc:
            raise InvalidInputError(f"cannot read content file {content}: {exc.strerror}") from exc
        return source_chunks(handle, CHUNK_SIZE), handle.close
    if getattr(content, "closed", False) is True:
        raise InvalidInputError("content is a closed file; pass an open binary file")
    if isinstance(content, io.TextIOBase):
        raise InvalidInputError(
            "content is a text-mode file; open it in binary mode ('rb') or pass its text as str"
        )
    if hasattr(content, "read") or isinstance(content, Iterable):
        return source_chunks(content), lambda: None
    raise InvalidInputError(
        f"content must be bytes, str, a path, a binary file or an iterable of bytes, "
        f"not {type(content).__name__}"
    )


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


def _aware(moment: datetime | None, name: str) -> datetime:
    if moment is None:
        return utc_now()
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidInputError(f"{name} must be a timezone-aware datetime")
    return moment


def _stamp() -> str:
    return utc_now().strftime("%Y%m%dT%H%M%SZ")


def _as_utc(name: str, moment: datetime | None) -> datetime | None:
    """A search bound in UTC: naive datetimes are taken as UTC; anything else is refused."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        raise InvalidInputError(f"{name} must be a datetime, got {type(moment).__name__}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
