"""Store-wide upkeep: verify every artifact against its record, and repair the waste
that interrupted writes leave. Both walk the backend (the source of truth), never
only the index.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from .exceptions import ArtifactNotFoundError, IntegrityError
from .integrity import ArtifactProblem, ArtifactReader, VerifyReport, vars_of
from .locking import LockManager
from .metadata_manager import MetadataManager, StoredArtifact
from .models import ArtifactMetadata, ArtifactType, utc_now
from .naming import ArtifactKey
from .storage_backend import StorageBackend

__all__ = ["DEFAULT_REPAIR_GRACE", "RepairReport", "load_versions", "repair_store", "verify_store"]

log = logging.getLogger("necrocode.artifact_store")

#: Leftovers younger than this are presumed to belong to a write still running.
DEFAULT_REPAIR_GRACE = timedelta(minutes=15)

ProgressCallback = Callable[[int, int], None]


@dataclass
class RepairReport:
    """What :meth:`ArtifactStore.repair` removed or fixed, and what it cannot fix.

    With ``dry_run`` the ``removed_*`` lists name what *would* be removed and
    nothing changes (``indexed`` stays 0). ``missing`` (a record whose stored
    object is gone) and ``unreadable`` (a record that does not parse) are
    committed artifacts repair never deletes: they are reported so that someone
    decides (re-upload, or delete the artifact).
    """

    removed_orphans: list[str] = field(default_factory=list)
    removed_incomplete: list[str] = field(default_factory=list)
    skipped_busy: list[str] = field(default_factory=list)
    indexed: int = 0
    dry_run: bool = False
    missing: list[ArtifactProblem] = field(default_factory=list)
    unreadable: list[ArtifactProblem] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """Plain data for JSON output."""
        return {
            "dry_run": self.dry_run,
            "removed_orphans": self.removed_orphans,
            "removed_incomplete": self.removed_incomplete,
            "skipped_busy": self.skipped_busy,
            "indexed": self.indexed,
            "missing": [vars_of(p) for p in self.missing],
            "unreadable": [vars_of(p) for p in self.unreadable],
        }


def load_versions(metadata: MetadataManager, stored: StoredArtifact) -> list[ArtifactMetadata]:
    """The readable records of ``stored``, oldest first (vanished or unreadable ones skipped)."""
    found = []
    for version in sorted(stored.records):
        with contextlib.suppress(ArtifactNotFoundError, IntegrityError):
            found.append(metadata.load(stored.key, version))
    return found


def verify_store(
    backend: StorageBackend, metadata: MetadataManager, progress: ProgressCallback | None = None
) -> VerifyReport:
    """See :meth:`ArtifactStore.verify_all`."""
    report = VerifyReport()
    seen: set[tuple[str, str, str, int]] = set()
    total = metadata.index.count() if progress is not None else 0
    for done, stored in enumerate(metadata.iter_stored(), start=1):
        _verify_stored(backend, metadata, stored, report, seen)
        if progress is not None:
            progress(done, max(total, done))
    report.incomplete = [info.key for info in backend.list_incomplete()]
    _fix_index(metadata, seen, report)
    return report


def _verify_stored(
    backend: StorageBackend,
    metadata: MetadataManager,
    stored: StoredArtifact,
    report: VerifyReport,
    seen: set[tuple[str, str, str, int]],
) -> None:
    key = stored.key
    referenced: set[str] = set()
    latest = stored.latest_version
    for version in sorted(stored.records):
        uri = key.uri(metadata.root_uri, None if version == latest else version)
        try:
            meta = metadata.load(key, version)
        except ArtifactNotFoundError:
            continue  # deleted while we looked
        except IntegrityError as exc:
            report.corrupted.append(ArtifactProblem(uri, version, str(exc)))
            continue
        seen.add((key.spec_name, key.task_id, key.type.value, version))
        referenced.add(meta.object_key)
        if meta.object_key not in stored.objects:
            report.missing.append(ArtifactProblem(uri, version, "stored object is missing"))
            continue
        try:
            raw = backend.open_read(meta.object_key)
        except ArtifactNotFoundError:
            report.missing.append(ArtifactProblem(uri, version, "stored object is missing"))
            continue
        try:
            with ArtifactReader(meta, raw, verify=True) as reader:
                reader.drain()
        except IntegrityError as exc:
            report.corrupted.append(ArtifactProblem(uri, version, str(exc)))
            continue
        report.ok.append(uri)
        report.bytes_checked += meta.stored_size
    report.orphaned.extend(sorted(set(stored.objects) - referenced))


def _fix_index(
    metadata: MetadataManager, seen: set[tuple[str, str, str, int]], report: VerifyReport
) -> None:
    indexed = metadata.index.keys()
    for spec, task, kind, version in sorted(seen - indexed):
        key = ArtifactKey(spec, task, ArtifactType(kind))
        report.index_stale.append(key.uri(metadata.root_uri, version))
        # refresh re-reads the record inside an index transaction: one deleted
        # since the walk listed it is not brought back into the index.
        with contextlib.suppress(IntegrityError):
            metadata.refresh(key, version)
    extra = sorted(indexed - seen)
    for spec, task, kind, version in extra:
        key = ArtifactKey(spec, task, ArtifactType(kind))
        if metadata.refresh(key, version) is None:
            report.index_stale.append(key.uri(metadata.root_uri, version))


def repair_store(
    backend: StorageBackend,
    metadata: MetadataManager,
    locks: LockManager,
    older_than: timedelta = DEFAULT_REPAIR_GRACE,
    *,
    dry_run: bool = False,
) -> RepairReport:
    """See :meth:`ArtifactStore.repair`."""
    report = RepairReport(dry_run=dry_run)
    cutoff = utc_now() - older_than
    for stored in metadata.iter_stored():
        with locks.try_hold(stored.key.path) as got:
            if not got:
                report.skipped_busy.append(stored.key.uri(metadata.root_uri))
                continue
            referenced = _check_records(metadata, stored, report)
            for object_key, info in stored.objects.items():
                old = info.modified is None or info.modified <= cutoff
                if object_key in referenced or not old:
                    continue
                if dry_run or backend.delete(object_key):
                    report.removed_orphans.append(object_key)
    for info in backend.list_incomplete():
        old = info.modified is None or info.modified <= cutoff
        if old and (dry_run or backend.remove_incomplete(info.key)):
            report.removed_incomplete.append(info.key)
    if not dry_run:
        report.indexed = metadata.rebuild_index()
    log.info(
        "repair%s removed %d orphaned objects and %d leftovers; %d records indexed",
        " (dry run)" if dry_run else "",
        len(report.removed_orphans),
        len(report.removed_incomplete),
        report.indexed,
    )
    return report


def _check_records(
    metadata: MetadataManager, stored: StoredArtifact, report: RepairReport
) -> set[str]:
    """The object keys the records of ``stored`` refer to; problems go into ``report``."""
    referenced: set[str] = set()
    latest = stored.latest_version
    for version in sorted(stored.records):
        uri = stored.key.uri(metadata.root_uri, None if version == latest else version)
        try:
            meta = metadata.load(stored.key, version)
        except ArtifactNotFoundError:
            continue  # deleted while we looked
        except IntegrityError as exc:
            report.unreadable.append(ArtifactProblem(uri, version, str(exc)))
            # Its record cannot say which object is its own: keep every object of
            # that version rather than delete an artifact's only bytes.
            prefix = f"{stored.key.path}.v{version:06d}."
            referenced.update(key for key in stored.objects if key.startswith(prefix))
            continue
        referenced.add(meta.object_key)
        if meta.object_key not in stored.objects:
            report.missing.append(ArtifactProblem(uri, version, "stored object is missing"))
    return referenced
