"""The public facade: :class:`ArtifactStore`, a table of contents over the store's parts.

Each method names one operation and hands it to the module that does it: the
upload pipeline (:mod:`.pipeline.upload`), reading (:mod:`.pipeline.download`),
record changes (:mod:`.pipeline.records`), search (:mod:`.index.search`), usage
(:mod:`.index.usage`), retention (:mod:`.maintenance.retention`), verify and
repair (:mod:`.maintenance.verify`), export (:mod:`.maintenance.export`) and
summaries (:mod:`.maintenance.summaries`). :func:`~.pipeline.operation.operation`
logs a failing call once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from typing_extensions import Unpack

from .backends.base import StorageBackend
from .config import ArtifactStoreConfig
from .exceptions import InvalidInputError
from .index.paging import DEFAULT_PAGE_SIZE, SearchPage
from .index.search import SearchFilters, check_filters, iter_pages, search_page, tags_to_find
from .index.usage import grouped_usage, total_usage
from .maintenance import export, retention, summaries
from .maintenance.export import ExportProgress
from .maintenance.retention import CleanupReport, RetentionPolicy
from .maintenance.summaries import SummaryRefreshReport
from .maintenance.verify import DEFAULT_REPAIR_GRACE, RepairReport, repair_store, verify_store
from .models import ArtifactMetadata, ArtifactType, StorageUsage
from .pipeline import download, records
from .pipeline.batch import UploadItem, UploadResult
from .pipeline.combining import UploadCombiner
from .pipeline.integrity import ArtifactReader, VerifyReport
from .pipeline.operation import FAILED_OPERATION, Operation, operation
from .pipeline.parts import open_parts
from .pipeline.upload import (
    Content,
    ProgressCallback,
    Uploader,
    UploadFlags,
    file_content,
    options,
    upload_key,
)
from .pipeline.upload_many import upload_many
from .settings import load_config

__all__ = ["FAILED_OPERATION", "ArtifactStore", "Content", "RepairReport"]

ExportProgressCallback = Callable[[ExportProgress], None]


class ArtifactStore:
    """Store, find, verify and delete the artifacts of agent tasks.

    ``ArtifactStore()`` finds its configuration as the command line does
    (:func:`~.settings.load_config`), or takes an :class:`ArtifactStoreConfig` or a
    dict of its keys; an injected ``backend`` is used as given (wrap it in a
    :class:`~.backends.retry.RetryingBackend` to retry). Thread-safe, one per process.
    """

    def __init__(
        self,
        config: ArtifactStoreConfig | dict[str, Any] | None = None,
        *,
        backend: StorageBackend | None = None,
    ) -> None:
        self.config = config = (
            load_config() if config is None else ArtifactStoreConfig.coerce(config)
        )
        self._parts = parts = open_parts(config, backend)
        self.backend, self.compression = parts.backend, parts.compression
        self.metadata, self.locks = parts.metadata, parts.locks
        self.retention_policy = RetentionPolicy(config.retention_policy)
        self._uploader = Uploader(parts)
        # Small uploads of several threads at once share one batch (pipeline/combining.py).
        self._uploads = UploadCombiner(self._uploader)

    @property
    def root_uri(self) -> str:
        """Every URI of this store starts with this."""
        return self.backend.root_uri

    @property
    def index_description(self) -> str:
        """Which index this store uses, for people (a database URL without its password)."""
        return self.metadata.index.describe()

    def close(self) -> None:
        """Release the index connection, lock connections and backend clients."""
        self._parts.close()

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- upload (pipeline/upload.py) -----------------------------------------------------

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
        **flags: Unpack[UploadFlags],
    ) -> str:
        """Store ``content`` as the ``artifact_type`` artifact of a task; return its URI.

        ``content``: bytes, a ``str`` (**stored as text, not read as a file name**:
        use :meth:`upload_file` or a ``Path``), a binary file or an iterable of
        chunks, streamed. Name it by ``task_id, spec_name, artifact_type`` (the
        reverse of the URI) or ``ref="spec/task/type"``. Again replaces it, or adds
        a version (versioning on). All-or-nothing. ``flags``: :class:`UploadFlags`
        (``tags``, ``retention_days``, ``if_changed``, ``if_absent``, ``progress``).
        """
        if content is None:
            raise InvalidInputError("upload needs content")
        key = upload_key(task_id, spec_name, artifact_type, ref)
        return self._uploads.upload(key, content, options(metadata, mime_type, flags)).uri

    def upload_version(
        self,
        task_id: str,
        spec_name: str,
        artifact_type: ArtifactType | str,
        content: Content,
        metadata: dict[str, Any] | None = None,
        mime_type: str | None = None,
        **flags: Unpack[UploadFlags],
    ) -> ArtifactMetadata:
        """Like :meth:`upload`, but return the metadata of the version now stored."""
        key = upload_key(task_id, spec_name, artifact_type, None)
        return self._uploads.upload(key, content, options(metadata, mime_type, flags))

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
        **flags: Unpack[UploadFlags],
    ) -> str:
        """Store the file at ``path`` (a ``str`` here *is* a path); else as :meth:`upload`."""
        key = upload_key(task_id, spec_name, artifact_type, ref)
        return self._uploader.upload(
            key, file_content(path), options(metadata, mime_type, flags)
        ).uri

    @operation("upload_many")
    def upload_many(self, items: Sequence[UploadItem]) -> list[UploadResult]:
        """Store several artifacts (a task's diff, log and test result) sharing one commit,
        each all-or-nothing: one :class:`UploadResult` per :class:`UploadItem`, in order,
        with its metadata or its typed error (see :mod:`.pipeline.upload_many`)."""
        return upload_many(self._uploader, items)

    # -- download (pipeline/download.py) -----------------------------------------------

    def open(self, uri: str, verify_checksum: bool | None = None) -> ArtifactReader:
        """A binary file of the original bytes, hashed as they pass (``IntegrityError``)."""
        with Operation("open", uri):
            return download.open_artifact(self._parts, uri, verify_checksum)

    def download(self, uri: str, verify_checksum: bool | None = None) -> bytes:
        """The artifact's original bytes, verified (see :meth:`open`)."""
        with Operation("download", uri):
            return download.read_all(self._parts, uri, verify_checksum)

    def iter_chunks(self, uri: str, verify_checksum: bool | None = None) -> Iterator[bytes]:
        """Yield the artifact's bytes in chunks of up to 1 MiB (see :meth:`open`)."""
        with self.open(uri, verify_checksum) as reader:
            yield from reader

    def download_stream(
        self, uri: str, chunk_size: int = 8192, verify_checksum: bool | None = None
    ) -> Iterator[bytes]:
        """Yield the bytes in chunks of at most ``chunk_size``, verified like :meth:`open`."""
        return download.in_chunks(self.open, uri, chunk_size, verify_checksum)

    @operation("download")
    def download_to(
        self,
        uri: str,
        path: str | os.PathLike[str],
        verify_checksum: bool | None = None,
        progress: ProgressCallback | None = None,
    ) -> ArtifactMetadata:
        """Stream an artifact into ``path``; the file appears only once fully verified."""
        return download.download_to(self._parts, uri, path, verify_checksum, progress)

    @operation("download")
    def download_version(
        self, uri: str, version: int, verify_checksum: bool | None = None
    ) -> bytes:
        """The bytes of one version of the artifact."""
        return self.download(download.version_uri(self._parts, uri, version), verify_checksum)

    # -- metadata and search (index/search.py) ------------------------------------------

    @operation("get_metadata")
    def get_metadata(self, uri: str) -> ArtifactMetadata:
        """Metadata of the artifact (or the version) ``uri`` names."""
        return self.metadata.get_by_uri(uri)

    def exists(self, uri: str) -> bool:
        """Whether ``uri`` names a stored artifact (or version); ``False`` for another store's."""
        return download.exists(self._parts, uri)

    def search(
        self,
        task_id: str | None = None,
        spec_name: str | None = None,
        artifact_type: ArtifactType | str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        *,
        limit: int | None = None,
        **filters: Unpack[SearchFilters],
    ) -> list[ArtifactMetadata]:
        """Latest versions matching every filter: ``created_after`` inclusive,
        ``created_before`` exclusive (naive = UTC), and :class:`SearchFilters` (tags,
        content, sort, order). Big result sets: :meth:`search_page`, :meth:`iter_search`."""
        check_filters("search", dict(filters))
        return self.search_page(
            task_id, spec_name, artifact_type, created_after, created_before, limit=limit,
            **filters,
        ).items  # fmt: skip

    @operation("search")
    def search_page(
        self,
        task_id: str | None = None,
        spec_name: str | None = None,
        artifact_type: ArtifactType | str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **filters: Unpack[SearchFilters],
    ) -> SearchPage:
        """At most ``limit`` items of :meth:`search` after ``cursor`` (keyset paging)."""
        check_filters("search_page", dict(filters))
        return search_page(
            self.metadata, task_id, spec_name, artifact_type, created_after, created_before,
            limit, cursor, **filters,
        )  # fmt: skip

    def iter_search(
        self,
        task_id: str | None = None,
        spec_name: str | None = None,
        artifact_type: ArtifactType | str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        **filters: Unpack[SearchFilters],
    ) -> Iterator[ArtifactMetadata]:
        """:meth:`search` as a lazy iterator, fetching ``page_size`` rows at a time."""
        check_filters("iter_search", dict(filters))
        bounds = (task_id, spec_name, artifact_type, created_after, created_before)
        return iter_pages(lambda cursor: self.search_page(
            *bounds, limit=page_size, cursor=cursor, **filters
        ))  # fmt: skip

    def search_by_tags(
        self, tags: Iterable[str], match: str = "all", **filters: Any
    ) -> list[ArtifactMetadata]:
        """Artifacts carrying all ``tags`` (``match="any"``: one), plus :meth:`search` filters."""
        return self.search(tags=tags_to_find(tags), match=match, **filters)

    def get_by_task_id(self, task_id: str, spec_name: str | None = None) -> list[ArtifactMetadata]:
        """Metadata of every artifact of a task."""
        return self.search(task_id=task_id, spec_name=spec_name)

    def get_by_spec_name(self, spec_name: str) -> list[ArtifactMetadata]:
        """Metadata of every artifact of a spec."""
        return self.search(spec_name=spec_name)

    def get_all_artifacts(self) -> list[ArtifactMetadata]:
        """Metadata of every stored artifact (its latest version), oldest first."""
        return self.search()

    # -- delete, versions, tags (pipeline/records.py) -----------------------------------

    @operation("delete")
    def delete(self, uri: str, *, missing_ok: bool = False) -> int:
        """Delete the artifact (every version) or the version a ``?version=N`` URI names:
        1, or 0 when absent and ``missing_ok`` (else ``ArtifactNotFoundError``)."""
        return records.delete(self._parts, uri, missing_ok)

    @operation("delete_by_task_id")
    def delete_by_task_id(self, task_id: str, spec_name: str | None = None) -> int:
        """Delete every artifact of a task (in every spec, unless ``spec_name`` is given)."""
        found = self.search(task_id=task_id, spec_name=spec_name)
        return sum(self.delete(meta.uri, missing_ok=True) for meta in found)

    @operation("delete_by_spec_name")
    def delete_by_spec_name(self, spec_name: str) -> int:
        """Delete every artifact of a spec; return how many were deleted."""
        found = self.search(spec_name=spec_name)
        return sum(self.delete(meta.uri, missing_ok=True) for meta in found)

    @operation("get_all_versions")
    def get_all_versions(self, uri: str) -> list[ArtifactMetadata]:
        """Every stored version of the artifact, oldest first."""
        return records.all_versions(self._parts, uri)

    @operation("delete_old_versions")
    def delete_old_versions(self, uri: str, keep: int = 1) -> int:
        """Delete all but the newest ``keep`` versions; return how many were deleted."""
        return records.delete_old_versions(self._parts, uri, keep)

    @operation("add_tags")
    def add_tags(self, uri: str, tags: Iterable[str]) -> ArtifactMetadata:
        """Add ``tags`` (idempotent) to the artifact, or the version ``uri`` names."""
        return records.update_record(self._parts, uri, records.adding_tags(tags))

    @operation("update_tags")
    def update_tags(self, uri: str, tags: Iterable[str]) -> ArtifactMetadata:
        """Replace the artifact's tags with ``tags``."""
        return records.update_record(self._parts, uri, records.setting_tags(tags))

    @operation("remove_tags")
    def remove_tags(self, uri: str, tags: Iterable[str]) -> ArtifactMetadata:
        """Remove ``tags`` from the artifact (absent ones are ignored)."""
        return records.update_record(self._parts, uri, records.removing_tags(tags))

    @operation("pin")
    def pin(self, uri: str) -> ArtifactMetadata:
        """Keep the artifact (or version) forever: cleanup never deletes it."""
        return records.update_record(self._parts, uri, records.pinning(True))

    @operation("unpin")
    def unpin(self, uri: str) -> ArtifactMetadata:
        """Let the retention policy apply to the artifact again."""
        return records.update_record(self._parts, uri, records.pinning(False))

    # -- integrity (maintenance/verify.py) ----------------------------------------------

    @operation("verify_checksum")
    def verify_checksum(self, uri: str) -> bool:
        """Whether the artifact's bytes still match their recorded size and SHA-256."""
        return download.verify(self._parts, uri)

    @operation("verify_all")
    def verify_all(self, progress: ProgressCallback | None = None) -> VerifyReport:
        """Hash every stored version against its record (walking the backend); report
        corrupt, missing, orphaned and leftover objects (and correct index rows)."""
        return verify_store(self.backend, self.metadata, progress, self.config.maintenance_workers)

    @operation("repair")
    def repair(
        self, older_than: timedelta = DEFAULT_REPAIR_GRACE, *, dry_run: bool = False
    ) -> RepairReport:
        """Remove orphans and leftovers older than ``older_than`` (never a committed
        artifact; locked ones are skipped), then rebuild the index; ``dry_run`` lists."""
        return repair_store(self.backend, self.metadata, self.locks, older_than, dry_run=dry_run)

    @operation("rebuild_index")
    def rebuild_index(self) -> int:
        """Recreate the search index from the metadata records; return the record count."""
        return self.metadata.rebuild_index()

    reindex = rebuild_index

    @operation("refresh_summaries")
    def refresh_summaries(
        self, *, force: bool = False, progress: ProgressCallback | None = None
    ) -> SummaryRefreshReport:
        """Summarise versions with no or an older summary (``force``: all); resumable."""
        return summaries.refresh_store(self._parts, force=force, progress=progress)

    # -- retention (maintenance/retention.py) -------------------------------------------

    @operation("find_expired")
    def find_expired(self, now: datetime | None = None) -> list[ArtifactMetadata]:
        """Artifact versions past their retention period at ``now`` (default: now)."""
        return retention.find_expired(self._parts, self.retention_policy, now)

    @operation("cleanup_expired")
    def cleanup_expired(
        self,
        dry_run: bool = False,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
    ) -> CleanupReport:
        """Delete every expired version (each re-checked under its lock; ``dry_run``
        deletes nothing); the run is logged and reported."""
        policy, parts = self.retention_policy, self._parts
        return retention.cleanup_expired(parts, policy, now, dry_run=dry_run, progress=progress)

    # -- usage (index/usage.py) ---------------------------------------------------------

    @operation("get_storage_usage")
    def get_storage_usage(self) -> StorageUsage:
        """Total usage: artifacts, versions, stored and original bytes, quota."""
        return total_usage(self.metadata, self.config.storage_quota)

    @operation("get_usage")
    def get_usage_by_spec(self) -> dict[str, StorageUsage]:
        """Usage of each spec name."""
        return grouped_usage(self.metadata, self.config.storage_quota, "spec")

    @operation("get_usage")
    def get_usage_by_type(self) -> dict[str, StorageUsage]:
        """Usage of each artifact type (``"diff"``, ``"log"``, ``"test"``)."""
        return grouped_usage(self.metadata, self.config.storage_quota, "type")

    # -- export (maintenance/export.py) -------------------------------------------------

    @operation("export_by_spec")
    def export_by_spec(
        self,
        spec_name: str,
        output_path: str | os.PathLike[str] | None = None,
        progress: ExportProgressCallback | None = None,
        *,
        include_metadata: bool = True,
    ) -> Path:
        """Export every artifact of a spec to a ZIP file; return its path
        (``include_metadata=False``: no ``manifest.json`` of their metadata)."""
        return export.export_artifacts(
            self._parts, self.search(spec_name=spec_name), output_path,
            export.archive_name(spec_name), {"spec_name": spec_name}, progress, include_metadata,
        )  # fmt: skip

    @operation("export_by_task")
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
        query = {"task_id": task_id, "spec_name": spec_name}
        return export.export_artifacts(
            self._parts, self.search(task_id=task_id, spec_name=spec_name), output_path,
            export.archive_name(spec_name, task_id), query, progress, include_metadata,
        )  # fmt: skip
