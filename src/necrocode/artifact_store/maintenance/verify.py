"""Store-wide upkeep: verify every artifact against its record, and repair the waste
that interrupted writes leave. Both walk the backend (the source of truth), never
only the index.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from ..backends.base import ObjectInfo, StorageBackend
from ..backends.filesystem import FilesystemBackend
from ..exceptions import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    IntegrityError,
    InvalidInputError,
    StorageFullError,
    StoragePermissionError,
)
from ..index.coordination import ArtifactLocks
from ..index.manager import MetadataManager, RecordReader, StoredArtifact, group_stored
from ..index.processes import LocalParts, local_parts, ordered_in_processes
from ..index.rows import KnownRecords
from ..index.sqlite import RecordPages
from ..models import ArtifactType, utc_now
from ..naming import ArtifactKey, parse_key
from ..pipeline.integrity import (
    SMALL_OBJECT,
    ArtifactProblem,
    ArtifactReader,
    VerifyReport,
    check_small,
    small_object,
    vars_of,
)
from .parallel import maintenance_workers, ordered_map

__all__ = ["DEFAULT_REPAIR_GRACE", "RepairReport", "repair_store", "verify_store"]

log = logging.getLogger("necrocode.artifact_store")

#: Leftovers younger than this are presumed to belong to a write still running.
DEFAULT_REPAIR_GRACE = timedelta(minutes=15)
#: The longest grace ``repair`` accepts (older than the calendar: nothing would qualify).
MAX_REPAIR_GRACE = timedelta(days=365 * 1000)
#: What marks a filesystem backend's temporary file (``.<name>.tmp-<random>``).
TMP_MARKER = ".tmp-"

#: Artifacts one worker verifies per hand-over (a small one takes ~0.1 ms).
VERIFY_BATCH = 32

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
    #: Record keys that exist but cannot be read: their objects are kept, never collected.
    unreadable_records: list[str] = field(default_factory=list)
    indexed: int = 0
    #: Why the index could not be rebuilt at the end (a full disk), if it could not.
    index_error: str | None = None
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
            "unreadable_records": self.unreadable_records,
            "indexed": self.indexed,
            "index_error": self.index_error,
            "missing": [vars_of(p) for p in self.missing],
            "unreadable": [vars_of(p) for p in self.unreadable],
        }


def _artifact_of_leftover(key: str) -> ArtifactKey | None:
    """The artifact a leftover of an interrupted write belongs to, if its name tells.

    A filesystem leftover is ``<folder>/.<name>.tmp-<random>``; cloud backends report
    the key being written.
    """
    folder, _, name = key.rpartition("/")
    if name.startswith(".") and TMP_MARKER in name:
        name = name[1:].split(TMP_MARKER, 1)[0]
    parsed = parse_key(f"{folder}/{name}" if folder else name)
    return None if parsed is None else parsed.artifact


def _referenced_objects(
    metadata: MetadataManager, stored: StoredArtifact, report: RepairReport | None = None
) -> tuple[set[str], set[int]]:
    """Object keys the readable records name, and the versions whose record is unreadable.

    Both kinds of damage (an unreadable record, a record whose object is gone) are
    also added to ``report`` as problems someone has to decide about.
    """
    latest = stored.latest_version
    referenced: set[str] = set()
    unreadable: set[int] = set()
    for version in sorted(stored.records):
        try:
            object_key = metadata.load(stored.key, version).object_key
        except ArtifactNotFoundError:
            continue  # deleted while we looked
        except IntegrityError as exc:
            log.error("repair keeps the objects of an unreadable record: %s", exc)
            unreadable.add(version)
            if report is not None:
                report.unreadable.append(
                    ArtifactProblem(_uri(metadata, stored, version, latest), version, str(exc))
                )
            continue
        referenced.add(object_key)
        if object_key not in stored.objects:
            if report is not None:
                report.missing.append(
                    ArtifactProblem(
                        _uri(metadata, stored, version, latest), version, "stored object is missing"
                    )
                )
            # The record names an object that is not there (a damaged name?): the
            # objects of its version may be its bytes, so they are not collected.
            log.error(
                "repair keeps the objects of %s: its record names a missing one",
                stored.records[version],
            )
            unreadable.add(version)
    return referenced, unreadable


def _uri(metadata: MetadataManager, stored: StoredArtifact, version: int, latest: int) -> str:
    return stored.key.uri(metadata.root_uri, None if version == latest else version)


def verify_store(
    backend: StorageBackend,
    metadata: MetadataManager,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """See :meth:`ArtifactStore.verify_all`.

    One walk of the backend finds the artifacts and the leftovers of interrupted
    writes. On a local disk, where reading, inflating and hashing small artifacts is
    Python-bound, a large store is verified by worker processes (one per core), each
    walking and checking whole top-level folders; on an object store by threads
    (:func:`~.parallel.maintenance_workers`), which wait on round trips. Either way
    this thread merges the findings in walk order, so the report and the progress
    calls are those of a single-threaded pass. A storage error on one artifact is
    reported as that artifact's problem.
    """
    report = VerifyReport()
    seen: set[tuple[str, str, str, int]] = set()
    total = metadata.index.count() if progress is not None else 0
    leftovers: list[ObjectInfo] = []
    local = local_parts(backend, metadata.index, workers)
    findings = (
        _in_processes(metadata, local, leftovers)
        if local is not None
        else _in_threads(backend, metadata, workers, leftovers)
    )
    done = 0
    for found, artifacts in findings:
        found.merge_into(report, seen)
        if progress is not None:
            for _ in range(artifacts):
                done += 1
                progress(done, max(total, done))
    report.incomplete = [info.key for info in leftovers]
    report.escaping = list(backend.list_escaping())
    _fix_index(metadata, seen, report)
    return report


def _in_threads(
    backend: StorageBackend,
    metadata: MetadataManager,
    workers: int | None,
    leftovers: list[ObjectInfo],
) -> Iterator[tuple[_Findings, int]]:
    """The findings of every artifact, in walk order, from a walk in this thread and
    ``workers`` threads (1 on a local disk: there threads only contend for the GIL)."""
    count = maintenance_workers(backend, workers)
    rows = KnownRecords(metadata.index)
    walk = (
        (stored, rows.texts(stored.key.spec_name, stored.key.task_id, stored.key.type.value))
        for stored in metadata.iter_stored(leftovers=leftovers)
    )
    outcomes = ordered_map(
        lambda item: _verify_one(backend, metadata, *item), walk, count, batch=VERIFY_BATCH
    )
    for outcome in outcomes:
        assert outcome.value is not None  # _verify_one reports its errors as findings
        yield outcome.value, 1


def _in_processes(
    metadata: MetadataManager, local: LocalParts, leftovers: list[ObjectInfo]
) -> Iterator[tuple[_Findings, int]]:
    """The findings of every part of the walk, in walk order, from worker processes:
    each part is a list of top-level folders that one worker walks and checks,
    reading the index rows of its range beside the walk (read-only)."""
    leftovers.extend(local.root_leftovers)
    start_args = (local.root, local.index_path, metadata.intents.gone())
    results = ordered_in_processes(
        f"{__name__}:_start_worker",
        f"{__name__}:_verify_part",
        start_args,
        local.parts,
        local.processes,
    )
    for found, artifacts, found_leftovers in results:
        leftovers.extend(found_leftovers)
        yield found, artifacts


@dataclass
class _Worker:
    """What a worker process of ``verify_all`` reads with (set once per process)."""

    backend: FilesystemBackend
    records: RecordReader
    rows: RecordPages
    gone: dict[ArtifactKey, set[int]]


#: The worker of this process (set by :func:`_start_worker`, in worker processes only).
_WORKER: list[_Worker] = []


def _start_worker(root: str, index_path: str, gone: dict[ArtifactKey, set[int]]) -> None:
    backend = FilesystemBackend(root, create=False, durable=False)  # only read here
    _WORKER[:] = [_Worker(backend, RecordReader(backend), RecordPages(Path(index_path)), gone)]


def _verify_part(folders: list[str]) -> tuple[_Findings, int, list[ObjectInfo]]:
    """Walk and verify ``folders`` (top-level, in walk order) in a worker process:
    the merged findings, how many artifacts they cover and the leftovers found."""
    (worker,) = _WORKER  # a worker process starts with _start_worker
    leftovers: list[ObjectInfo] = []
    listing = itertools.chain.from_iterable(
        worker.backend.list_names_with_incomplete(f"{folder}/") for folder in folders
    )
    rows = KnownRecords(worker.rows, start=(folders[0], "", "", 0))
    merged = _Findings()
    artifacts = 0
    for stored in group_stored(listing, worker.gone, leftovers):
        k = stored.key
        found = _verify_one(
            worker.backend,
            worker.records,
            stored,
            rows.texts(k.spec_name, k.task_id, k.type.value),
        )
        merged.extend(found)
        artifacts += 1
    return merged, artifacts, leftovers


@dataclass
class _Findings:
    """What verifying artifacts found (built in a worker, merged by the caller)."""

    ok: list[str] = field(default_factory=list)
    corrupted: list[ArtifactProblem] = field(default_factory=list)
    missing: list[ArtifactProblem] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    seen: list[tuple[str, str, str, int]] = field(default_factory=list)
    bytes_checked: int = 0

    def extend(self, other: _Findings) -> None:
        self.ok.extend(other.ok)
        self.corrupted.extend(other.corrupted)
        self.missing.extend(other.missing)
        self.orphaned.extend(other.orphaned)
        self.seen.extend(other.seen)
        self.bytes_checked += other.bytes_checked

    def merge_into(self, report: VerifyReport, seen: set[tuple[str, str, str, int]]) -> None:
        report.ok.extend(self.ok)
        report.corrupted.extend(self.corrupted)
        report.missing.extend(self.missing)
        report.orphaned.extend(self.orphaned)
        report.bytes_checked += self.bytes_checked
        seen.update(self.seen)


def _verify_one(
    backend: StorageBackend,
    records: RecordReader,
    stored: StoredArtifact,
    row_texts: dict[int, str],
) -> _Findings:
    """:func:`_verify_stored`, with a storage error reported as the artifact's problem."""
    try:
        return _verify_stored(backend, records, stored, row_texts)
    except ArtifactStoreError as exc:
        found = _Findings()
        uri = stored.key.uri(records.root_uri)
        found.corrupted.append(
            ArtifactProblem(uri, stored.latest_version, f"could not be read: {exc}")
        )
        # Unread, not known wrong: its index rows are left as they are.
        k = stored.key
        found.seen.extend((k.spec_name, k.task_id, k.type.value, v) for v in stored.records)
        return found


def _verify_stored(
    backend: StorageBackend,
    metadata: RecordReader,
    stored: StoredArtifact,
    row_texts: dict[int, str],
) -> _Findings:
    """Verify one artifact's versions; ``row_texts`` are its index rows' record texts
    (a record byte-identical to its row is decoded without the full checks)."""
    found = _Findings()
    key = stored.key
    small_reader = backend.read_small if isinstance(backend, FilesystemBackend) else None
    referenced: set[str] = set()
    latest = stored.latest_version
    for version in sorted(stored.records):
        uri = key.uri(metadata.root_uri, None if version == latest else version)
        try:
            meta = metadata.load_known(key, version, row_texts.get(version))
        except ArtifactNotFoundError:
            continue  # deleted while we looked
        except IntegrityError as exc:
            found.corrupted.append(ArtifactProblem(uri, version, str(exc)))
            continue
        found.seen.append((key.spec_name, key.task_id, key.type.value, version))
        referenced.add(meta.object_key)
        read_small = small_reader if small_object(meta) else None
        if meta.object_key not in stored.objects:
            found.missing.append(ArtifactProblem(uri, version, "stored object is missing"))
            continue
        try:
            # A small object on a local disk is read whole and checked in one call.
            whole = read_small(meta.object_key, SMALL_OBJECT) if read_small else None
            if whole is None:
                raw = backend.open_read(meta.object_key)
        except ArtifactNotFoundError:
            found.missing.append(ArtifactProblem(uri, version, "stored object is missing"))
            continue
        try:
            if whole is not None:
                check_small(meta, whole)
            else:
                with ArtifactReader(meta, raw, verify=True) as reader:
                    reader.drain()
        except IntegrityError as exc:
            found.corrupted.append(ArtifactProblem(uri, version, str(exc)))
            continue
        found.ok.append(uri)
        found.bytes_checked += meta.stored_size
    found.orphaned.extend(sorted(set(stored.objects) - referenced))
    return found


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
        try:
            found = metadata.refresh(key, version)
        except IntegrityError:
            found = None  # a damaged record (reported above): refresh dropped its row
        if found is None:
            report.index_stale.append(key.uri(metadata.root_uri, version))


def repair_store(
    backend: StorageBackend,
    metadata: MetadataManager,
    locks: ArtifactLocks,
    older_than: timedelta = DEFAULT_REPAIR_GRACE,
    *,
    dry_run: bool = False,
) -> RepairReport:
    """See :meth:`ArtifactStore.repair`."""
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise InvalidInputError(f"older_than must be a timedelta >= 0, got {older_than!r}")
    if older_than > MAX_REPAIR_GRACE:
        raise InvalidInputError(
            f"older_than must be at most {MAX_REPAIR_GRACE.days} days, got {older_than!r}"
        )
    report = RepairReport(dry_run=dry_run)
    cutoff = utc_now() - older_than
    for intent in [] if dry_run else list(metadata.intents.all()):
        with locks.try_hold(intent.key.path) as got:
            if got:
                metadata.finish_removal(intent.key)
    for stored in metadata.iter_stored():
        with (
            metadata.index.claim("repair", stored.key.path) as mine,
            locks.try_hold(stored.key.path) as got,
        ):
            if not (mine and got):
                report.skipped_busy.append(stored.key.uri(metadata.root_uri))
                continue
            referenced, unreadable = _referenced_objects(metadata, stored, report)
            report.unreadable_records.extend(stored.records[v] for v in sorted(unreadable))
            for object_key, info in stored.objects.items():
                old = info.modified is None or info.modified <= cutoff
                parsed = parse_key(object_key)
                # An object whose record exists but cannot be read may be that record's
                # bytes: it is live data, kept until the record is restored or removed.
                kept = object_key in referenced or (
                    parsed is not None and parsed.version in unreadable
                )
                if not kept and old and (dry_run or backend.delete(object_key)):
                    report.removed_orphans.append(object_key)
    for info in backend.list_incomplete():
        old = info.modified is None or info.modified <= cutoff
        if not old:
            continue
        artifact = _artifact_of_leftover(info.key)
        if artifact is None:
            if dry_run or backend.remove_incomplete(info.key):
                report.removed_incomplete.append(info.key)
            continue
        # Age is no proof that the writer is gone: its lock is. A writer holds the
        # artifact's lock for as long as its temporary file exists.
        with locks.try_hold(artifact.path) as got:
            if not got:
                report.skipped_busy.append(info.key)
            elif dry_run or backend.remove_incomplete(info.key):
                report.removed_incomplete.append(info.key)
    if dry_run:
        return report
    try:
        report.indexed = metadata.rebuild_index()
    except (StorageFullError, StoragePermissionError) as exc:
        # What repair removed stays removed; the index is marked stale and rebuilt once
        # there is room, and until then lookups fall back to the records.
        metadata.mark_stale(exc)
        report.index_error = str(exc)
    log.info(
        "repair%s removed %d orphaned objects and %d leftovers; %d records indexed",
        " (dry run)" if dry_run else "",
        len(report.removed_orphans),
        len(report.removed_incomplete),
        report.indexed,
    )
    return report
