"""Metadata: one JSON record per artifact version in the backend, plus the index.

The record, stored beside the bytes it describes, is the source of truth and
its creation is the commit point of an upload. The SQLite index
(:mod:`.metadata_index`) answers lookups and searches; when it is missing,
damaged or marked stale it is rebuilt from the records alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..backends.base import ObjectInfo, RecordWrite, StagedObject, StorageBackend
from ..exceptions import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    IndexUnavailableError,
    IntegrityError,
    StorageFullError,
    StoragePermissionError,
)
from ..models import ArtifactMetadata
from ..naming import ArtifactKey, parse_key
from . import INDEX_FILENAME, MetadataIndex, SQLiteIndex
from .intents import DeleteIntent, IntentLog
from .processes import LocalParts, local_parts, ordered_in_processes
from .query import SearchQuery
from .rebuild import load_parallel
from .rows import KnownRecords, decode_record
from .snapshot import read_snapshot, write_snapshot
from .sqlite import BulkRow, IndexCorruptError

__all__ = ["MetadataManager", "RecordReader", "StoredArtifact", "group_stored"]

log = logging.getLogger(__name__)
T = TypeVar("T")

STALE_MARKER = "index.stale"
INTENTS_DIRNAME = "intents"
#: The worker side of a rebuild in processes (it imports this module: named, not imported).
_LOADER_MODULE = f"{__package__}.loader"
#: Free bytes beyond the index's own size a rebuild needs before it is attempted.
REBUILD_MARGIN = 1024 * 1024


@dataclass
class StoredArtifact:
    """What the backend holds for one artifact: record keys and object keys by version."""

    key: ArtifactKey
    records: dict[int, str] = field(default_factory=dict)
    objects: dict[str, ObjectInfo] = field(default_factory=dict)

    @property
    def latest_version(self) -> int:
        """The highest version with a record (0 when there is none)."""
        return max(self.records, default=0)


class RecordReader:
    """Reads and checks the records of one backend: what :class:`MetadataManager`
    builds on, and all a worker process of ``verify_all`` needs (no index, no intents).
    """

    def __init__(self, backend: StorageBackend) -> None:
        self.backend = backend

    @property
    def root_uri(self) -> str:
        """URI of the backend root: the prefix of every artifact URI."""
        return self.backend.root_uri

    def with_uri(self, meta: ArtifactMetadata) -> ArtifactMetadata:
        """``meta`` with its URI under this backend's root (records may have moved)."""
        # ArtifactKey(...).uri(root), spelled out: every download and search row passes here.
        uri = f"{self.root_uri.rstrip('/')}/{meta.spec_name}/{meta.task_id}/{meta.type.filename}"
        return meta if meta.uri == uri else meta.with_changes(uri=uri)

    def load(self, key: ArtifactKey, version: int) -> ArtifactMetadata:
        """Read the record of ``version`` of ``key`` from the backend."""
        return self._parse_record(key, version, self.backend.download(key.record_key(version)))

    def load_known(self, key: ArtifactKey, version: int, known: str | None) -> ArtifactMetadata:
        """:meth:`load`, where ``known`` is the index row's record text, if any.

        The record is read from the backend all the same; only when its bytes are
        exactly ``known`` (text this library wrote from a record it had validated) is
        it decoded by the index's fast decoder instead of the full checks.
        """
        data = self.backend.download(key.record_key(version))
        if known is not None and data == known.encode():
            meta = decode_record(known)
            if (meta.spec_name, meta.task_id, meta.type, meta.version) == (
                key.spec_name,
                key.task_id,
                key.type,
                version,
            ):
                return self.with_uri(meta)
        return self._parse_record(key, version, data)

    def load_row(
        self, key: ArtifactKey, version: int, known: str | None
    ) -> tuple[ArtifactMetadata, str]:
        """:meth:`load_known`, and the record's index text (``meta.to_json()``): ``known``
        itself when the record's bytes are exactly ``known`` and its URI is unchanged."""
        data = self.backend.download(key.record_key(version))
        if known is not None and data == known.encode():
            decoded = decode_record(known)
            if (decoded.spec_name, decoded.task_id, decoded.type, decoded.version) == (
                key.spec_name,
                key.task_id,
                key.type,
                version,
            ):
                meta = self.with_uri(decoded)
                return meta, known if meta is decoded else meta.to_json()
        meta = self._parse_record(key, version, data)
        return meta, meta.to_json()

    def _parse_record(self, key: ArtifactKey, version: int, data: bytes) -> ArtifactMetadata:
        """The record ``data`` of ``version`` of ``key``, checked to describe it."""
        record_key = key.record_key(version)
        try:
            meta = ArtifactMetadata.from_json(data)
        except IntegrityError as exc:
            raise IntegrityError(f"{record_key}: {exc}", uri=key.uri(self.root_uri)) from exc
        if (meta.spec_name, meta.task_id, meta.type, meta.version) != (
            key.spec_name,
            key.task_id,
            key.type,
            version,
        ):
            raise IntegrityError(
                f"{record_key}: record describes a different artifact", uri=key.uri(self.root_uri)
            )
        return self.with_uri(meta)


class MetadataManager(RecordReader):
    """Saves, loads and finds metadata records; keeps the index in step."""

    def __init__(
        self,
        backend: StorageBackend,
        state_dir: Path,
        index: MetadataIndex | None = None,
        *,
        workers: int | None = None,
    ) -> None:
        super().__init__(backend)
        #: The ``maintenance_workers`` setting: processes (local disk) or threads
        #: (object store) of a rebuild; ``None`` for the defaults.
        self.workers = workers
        self.state_dir = state_dir
        self.index = index if index is not None else SQLiteIndex(state_dir / INDEX_FILENAME)
        self._stale_marker = state_dir / STALE_MARKER
        self.intents = IntentLog(state_dir / INTENTS_DIRNAME)
        self._open_index()

    # -- index upkeep -----------------------------------------------------------------

    def _open_index(self) -> None:
        try:
            built = self.index.is_built() and not self._stale_marker.exists()
        except IndexUnavailableError as exc:
            # Reads by URI can still be served from the bucket; the rest fails, typed
            # (and says so itself: no second line here).
            log.info("%s", exc)
            return
        except IndexCorruptError as exc:
            log.warning("search index is damaged (%s); rebuilding it from the records", exc)
            self.index.destroy()
            built = False
        if not built and self._usable_index() and not self._room_to_rebuild():
            log.warning(
                "search index is marked for rebuild, but there is no room to rebuild it; "
                "using it as it is until there is"
            )
            return
        if not built:
            try:
                count = self.rebuild_index()
            except (StorageFullError, StoragePermissionError) as exc:
                if not self._usable_index():
                    raise
                # No room (or no right) to rebuild now: carry on with the index as it
                # is, so reads and deletes (which free space) keep working. It may miss
                # the last changes; lookups that miss fall back to the records, and the
                # marker stays, so a later opening rebuilds it.
                log.warning("search index not rebuilt (%s); using it as it is", exc)
                return
            log.info("search index built from %d metadata records", count)

    def _room_to_rebuild(self) -> bool:
        """Whether the disk has room for a second copy of the index (a rebuild's WAL)."""
        path = getattr(self.index, "path", None)  # only a local index file takes local room
        if path is None:
            return True
        try:
            held = sum(
                os.stat(f"{path}{suffix}").st_size
                for suffix in ("", "-wal")
                if os.path.exists(f"{path}{suffix}")
            )
            return shutil.disk_usage(self.state_dir).free > held + REBUILD_MARGIN
        except OSError:
            return True  # unknown: try, and cope if it fails

    def _usable_index(self) -> bool:
        """Whether the index holds a complete (if possibly stale) build."""
        try:
            return self.index.is_built()
        except ArtifactStoreError:
            return False

    def _indexed(self, operation: Callable[[], T]) -> T:
        """Run an index operation; rebuild the index once if it turns out damaged."""
        try:
            return operation()
        except IndexCorruptError as exc:
            log.warning("search index is damaged (%s); rebuilding it from the records", exc)
            self.index.destroy()
            self.rebuild_index()
            return operation()

    def _index_after_commit(self, operation: Callable[[], None]) -> None:
        """Update the index after a record change that already committed.

        The record is the truth, so a failing index must not turn a committed
        change into a reported failure: the index is marked stale instead and
        rebuilt by the next process that opens the store.
        """
        try:
            self._indexed(operation)
        except ArtifactStoreError as exc:
            self.mark_stale(exc)

    def mark_stale(self, exc: ArtifactStoreError) -> None:
        """Log an index failure and leave a marker: the next opening rebuilds the index."""
        log.error("search index update failed (%s); marking it for rebuild", exc)
        try:
            self._stale_marker.parent.mkdir(parents=True, exist_ok=True)
            self._stale_marker.touch()
        except OSError as marker_exc:
            log.error("could not mark the index stale: %s", marker_exc)

    def rebuild_index(self) -> int:
        """Recreate the index from the records alone; return how many were indexed.

        Records are read many at a time. A shared index is filled batch by batch as
        they arrive, and a rebuild interrupted half-way resumes: records it already
        loaded are not read again. The embedded index is filled in one transaction.
        A large local store is read by worker processes, one per core (a local
        disk's records are Python-bound to read and check), a smaller one in this
        thread; an object store's by threads waiting on GETs.
        """
        local = local_parts(self.backend, self.index, self.workers)
        if local is not None and isinstance(self.index, SQLiteIndex):
            return self._rebuild_in_processes(self.index, local)
        done = self.index.rebuild_progress()
        gone = self.intents.gone()  # versions being removed are gone already (see .intents)
        listed: list[tuple[ArtifactKey, int, ObjectInfo]] = []
        for info in self.backend.list():
            parsed = parse_key(info.key)
            if (
                parsed is not None
                and parsed.kind == "record"
                and parsed.version not in gone.get(parsed.artifact, ())
            ):
                artifact = parsed.artifact
                index_key = (artifact.spec_name, artifact.task_id, artifact.type.value)
                if (*index_key, parsed.version) not in done:
                    listed.append((parsed.artifact, parsed.version, info))
        # Records whose ETag the last rebuild saw come from its snapshot, not a GET.
        snapshot = read_snapshot(self.backend) if any(i.etag for _, _, i in listed) else {}
        seen: dict[str, tuple[str, ArtifactMetadata]] = {}

        def load(key: ArtifactKey, version: int) -> ArtifactMetadata:
            info = etags[(key, version)]
            known = snapshot.get(info.key) if info.etag else None
            meta = None
            if known is not None and known[0] == info.etag:
                with contextlib.suppress(IntegrityError):  # a damaged entry: read the record
                    meta = self._parse_record(key, version, known[1].encode())
            if meta is None:
                meta = self.load_known(key, version, row_texts.pop((key, version), None))
            if info.etag:
                seen[info.key] = (info.etag, meta)
            return meta

        etags = {(key, version): info for key, version, info in listed}
        # The old index's rows, where still readable, spare re-validating unchanged records.
        row_texts: dict[tuple[ArtifactKey, int], str] = {}
        workers = self.workers if self.backend.capabilities.transient_failures else 1
        loaded = load_parallel(
            _with_known(listed, KnownRecords(self.index), row_texts), load, workers
        )
        records = loaded if self.index.shared else list(loaded)
        try:
            count = self.index.replace_all(records)
        except IndexCorruptError:
            self.index.destroy()
            count = self.index.replace_all(records)
        if seen and not done:
            write_snapshot(
                self.backend, ((k, etag, m.to_json()) for k, (etag, m) in sorted(seen.items()))
            )
        self._rebuilt()
        return count

    def _rebuild_in_processes(self, index: SQLiteIndex, local: LocalParts) -> int:
        """:meth:`rebuild_index` of a large local store: worker processes walk and read
        the parts (:mod:`.loader`), this thread fills the index in one transaction."""
        start_args = (local.root, local.index_path, self.intents.gone())

        def batches() -> Iterator[list[BulkRow]]:
            for loaded, skipped in ordered_in_processes(
                f"{_LOADER_MODULE}:start_loader",
                f"{_LOADER_MODULE}:load_part",
                start_args,
                local.parts,
                local.processes,
            ):
                for reason in skipped:
                    log.error("skipping unreadable metadata record: %s", reason)
                yield loaded

        try:
            count = index.replace_rows(batches())
        except IndexCorruptError:
            index.destroy()
            count = index.replace_rows(batches())
        self._rebuilt()
        return count

    def _rebuilt(self) -> None:
        if self._stale_marker.exists() and not getattr(self.index, "read_only", False):
            try:
                self._stale_marker.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not clear the index's rebuild marker: %s", exc)

    # -- records ----------------------------------------------------------------------

    def save(
        self,
        meta: ArtifactMetadata,
        *,
        create: bool = True,
        remove_versions: tuple[int, ...] = (),
        after: StagedObject | None = None,
    ) -> None:
        """Write the record of ``meta`` (the commit point), then index it.

        With ``create`` the record must not exist yet (``ObjectExistsError``
        otherwise: another writer took this version). ``remove_versions`` are
        dropped from the index in the same index transaction. ``after`` is the
        staged object the record refers to: it is durable before the record is.
        """
        key = ArtifactKey(meta.spec_name, meta.task_id, meta.type)
        record_key, record = key.record_key(meta.version), meta.to_json()
        if after is None:
            self.backend.upload(record_key, record.encode(), if_absent=create)
        else:
            self.backend.upload_after(after, record_key, record.encode(), if_absent=create)
        self._index_after_commit(
            lambda: self.index.put(meta, remove_versions=remove_versions, record=record)
        )

    def save_many(
        self, saves: Sequence[tuple[ArtifactMetadata, tuple[int, ...], StagedObject]]
    ) -> list[ArtifactStoreError | None]:
        """:meth:`save` (``create=True``) several new versions with one shared commit.

        Each entry is ``(meta, remove_versions, staged object)``. The records are
        created in one batch of the backend (one fsync round on a local disk) and
        the committed ones indexed in one index transaction. Returns, per entry,
        ``None`` once its record is committed and indexed, or the error that kept
        its record from being created (``ObjectExistsError`` on a version race):
        one entry's failure leaves the others committed. An index row that fails
        is retried alone, then the index is marked stale, as for :meth:`save`.
        """
        records = [meta.to_json() for meta, _, _ in saves]
        writes = [
            RecordWrite(
                staged,
                ArtifactKey(meta.spec_name, meta.task_id, meta.type).record_key(meta.version),
                record.encode(),
                if_absent=True,
            )
            for (meta, _, staged), record in zip(saves, records, strict=True)
        ]
        outcomes = self.backend.upload_after_many(writes)
        errors = [o if isinstance(o, ArtifactStoreError) else None for o in outcomes]
        committed = [i for i, error in enumerate(errors) if error is None]
        rows = [(saves[i][0], saves[i][1], records[i]) for i in committed]
        put_many = getattr(self.index, "put_many", None)
        failed = committed
        if put_many is not None:
            row_errors = put_many(rows)
            failed = [i for i, error in zip(committed, row_errors, strict=True) if error]
        for i in failed:
            self._index_after_commit(self._put_later(saves[i][0], saves[i][1], records[i]))
        return errors

    def _put_later(
        self, meta: ArtifactMetadata, remove: tuple[int, ...], record: str
    ) -> Callable[[], None]:
        """An index put of one row, to run (and retry) on its own."""
        return lambda: self.index.put(meta, remove_versions=remove, record=record)

    def load_all(self, stored: StoredArtifact) -> list[ArtifactMetadata]:
        """The readable records of ``stored``, oldest first (vanished or unreadable ones
        skipped)."""
        found = []
        for version in sorted(stored.records):
            with contextlib.suppress(ArtifactNotFoundError, IntegrityError):
                found.append(self.load(stored.key, version))
        return found

    def delete_record(self, key: ArtifactKey, version: int) -> bool:
        """Remove the record of one version from the backend (not yet from the index)."""
        return self.backend.delete(key.record_key(version))

    def delete_records(self, versions: list[tuple[ArtifactKey, int]]) -> list[bool]:
        """Remove several records in the given order, made durable together."""
        return self.backend.delete_many([key.record_key(version) for key, version in versions])

    def remove_versions(self, removals: list[DeleteIntent]) -> None:
        """Remove versions of artifacts so that a crash at any step is all-or-nothing.

        The intent comes first; while it exists its versions count as gone for
        every listing. Then the index rows, the records (oldest first) and the
        objects go, and the intent last. The caller holds the artifacts' locks.
        """
        removals = [r for r in removals if r.versions or r.all_versions]
        if not removals:
            return
        batch = None
        try:
            if len(removals) > 1:
                # Several artifacts (a cleanup batch): one intent file for all of them.
                batch = self.intents.begin_batch(removals)
            if batch is None:
                self.intents.begin(removals)
        except StorageFullError as exc:
            # A full disk must not stop a delete, which is what frees space. Without an
            # intent the same steps run; a crash in between leaves the records (and
            # objects) that were not reached yet, found again by the next lookup.
            log.warning("removing without a delete intent: %s", exc)
            self._finish(removals, with_intent=False)
            return
        self._finish(removals, batch=batch)

    def finish_removal(self, key: ArtifactKey) -> bool:
        """Finish a removal of ``key`` a crashed process left half-done (caller holds the lock).

        Returns whether there was one.
        """
        intent = self.intents.pending(key)
        if intent is None:
            return False
        # Only records that still name one of the intent's objects (or cannot be read)
        # are its own: a record that names another object is a newer version that took
        # a removed number after the intent was done (an intent back after a power cut).
        versions = []
        for version in intent.versions:
            try:
                current = self.load(key, version)
            except (ArtifactNotFoundError, IntegrityError):
                versions.append(version)
                continue
            if current.object_key in intent.objects:
                versions.append(version)
        kept = len(versions) < len(intent.versions)
        log.warning(
            "finishing an interrupted removal of %s (versions %s)",
            key.uri(self.root_uri),
            ", ".join(map(str, versions)) or "none",
        )
        self._finish(
            [DeleteIntent(key, tuple(versions), intent.objects, intent.all_versions and not kept)]
        )
        return True

    def _finish(
        self, removals: list[DeleteIntent], *, with_intent: bool = True, batch: Path | None = None
    ) -> None:
        """The steps after the intent: index rows, records (oldest first), objects, intent
        (``batch``: the one file of all of them)."""
        remove_many = getattr(self.index, "remove_many", None)
        if remove_many is not None and len(removals) > 1:
            # A cleanup batch: every row in one index transaction.
            rows = [(r.key, None if r.all_versions else list(r.versions)) for r in removals]
            self._index_after_commit(lambda: remove_many(rows))
        else:
            for removal in removals:
                self._unindex_removal(removal)
        self.delete_records([(r.key, v) for r in removals for v in sorted(r.versions)])
        self.backend.delete_many([key for r in removals for key in r.objects])
        if batch is not None:
            self.intents.end_batch(batch)
        elif with_intent:
            self.intents.end([r.key for r in removals])

    def _unindex_removal(self, removal: DeleteIntent) -> None:
        rows = None if removal.all_versions else list(removal.versions)
        self.unindex(removal.key, rows)

    def unindex(self, key: ArtifactKey, versions: list[int] | None = None) -> None:
        """Drop index rows of ``key`` after their records were deleted."""
        self._index_after_commit(lambda: self.index.remove(key, versions))

    def reindex(self, meta: ArtifactMetadata) -> None:
        """Put one record's row back in the index (after finding it stale)."""
        self._index_after_commit(lambda: self.index.put(meta))

    def stored(self, key: ArtifactKey) -> StoredArtifact:
        """List what the backend holds for ``key`` (a listing of its task folder)."""
        found = StoredArtifact(key)
        for info in self.backend.list(key.prefix):
            parsed = parse_key(info.key)
            if parsed is None or parsed.artifact != key:
                continue
            if parsed.kind == "record":
                found.records[parsed.version] = info.key
            else:
                found.objects[info.key] = info
        pending = self.intents.pending(key)
        if pending is not None:
            # Versions being removed are gone already for readers (see .intents).
            for version in pending.versions:
                found.records.pop(version, None)
        return found

    def iter_stored(
        self, prefix: str = "", leftovers: list[ObjectInfo] | None = None
    ) -> Iterator[StoredArtifact]:
        """Group one backend listing into artifacts (listing order keeps them together).

        With ``leftovers``, the same walk also appends the leftovers of interrupted
        writes to it (what :meth:`StorageBackend.list_incomplete` yields).
        """
        if leftovers is None:
            listing: Iterator[tuple[ObjectInfo, bool]] = (
                (info, False) for info in self.backend.list(prefix)
            )
        else:
            listing = self.backend.list_with_incomplete(prefix)
        yield from group_stored(listing, self.intents.gone(), leftovers)

    def iter_records(self, prefix: str = "") -> Iterator[ArtifactMetadata]:
        """Every readable record in the backend; unreadable ones are logged and skipped."""
        for stored in self.iter_stored(prefix):
            for version in sorted(stored.records):
                try:
                    yield self.load(stored.key, version)
                except ArtifactNotFoundError:
                    continue  # deleted while we listed
                except IntegrityError as exc:
                    log.error("skipping unreadable metadata record: %s", exc)

    # -- lookups ----------------------------------------------------------------------

    def get(self, key: ArtifactKey, version: int | None = None) -> ArtifactMetadata | None:
        """The metadata of ``key`` (latest version, or ``version``), or ``None``.

        Looks in the index first; on a miss, in the backend (another machine
        may have written it), and repairs the index with what it finds.
        """
        try:
            meta = self._indexed(lambda: self.index.get(key, version))
        except IndexUnavailableError as exc:
            log.warning("%s; reading %s from the records", exc, key.path)
            return self._load_listed(self.stored(key), version)
        if meta is not None:
            return self.with_uri(meta)
        return self.refresh(key, version)

    def refresh(self, key: ArtifactKey, version: int | None = None) -> ArtifactMetadata | None:
        """Read ``key`` from the backend, bypassing the index, and re-index what is found.

        Readers call this without the artifact's lock, so the listing and the index
        correction run inside one exclusive index transaction: a writer of this
        machine cannot index a newer version (or drop a replaced one) in between,
        and a stale listing never un-indexes a fresh version or re-indexes a
        deleted one. Writers create a record before indexing it and delete
        replaced records only after, so the listing taken here is never behind
        the index. If the index itself fails, the answer comes from the backend
        alone and the index is marked for rebuild.
        """
        found: list[ArtifactMetadata | None] = []
        backend_failure: list[ArtifactStoreError] = []

        def look_and_correct() -> None:
            found.clear()
            backend_failure.clear()
            with self.index.exclusive():
                try:
                    stored = self.stored(key)
                    meta = self._load_listed(stored, version)
                except IntegrityError as exc:
                    # A damaged record: its row must not keep serving the artifact.
                    backend_failure.append(exc)
                    self.index.remove(key, [stored.latest_version if version is None else version])
                    return
                except ArtifactStoreError as exc:
                    backend_failure.append(exc)
                    return
                found.append(meta)
                indexed = {m.version for m in self.index.versions(key)}
                gone = sorted(indexed - set(stored.records))
                if gone:
                    self.index.remove(key, gone)
                if meta is not None:
                    self.index.put(meta)

        try:
            self._indexed(look_and_correct)
        except ArtifactStoreError as exc:
            self.mark_stale(exc)
            if found:
                return found[0]
            return self._load_listed(self.stored(key), version)
        if backend_failure:
            raise backend_failure[0]
        return found[0]

    def _load_listed(self, stored: StoredArtifact, version: int | None) -> ArtifactMetadata | None:
        """The record of ``version`` (default: the latest) among ``stored``, if it is there."""
        wanted = stored.latest_version if version is None else version
        if wanted not in stored.records:
            return None
        try:
            return self.load(stored.key, wanted)
        except ArtifactNotFoundError:
            return None  # deleted since the listing

    def versions(self, key: ArtifactKey) -> list[ArtifactMetadata]:
        """Every version of ``key`` known to the index, oldest first."""
        return [self.with_uri(m) for m in self._indexed(lambda: self.index.versions(key))]

    def search(self, query: SearchQuery) -> list[ArtifactMetadata]:
        """Indexed artifacts matching ``query``.

        While the index is marked stale (an update failed, e.g. on a full disk) it may
        hold rows of removed artifacts: each row is then checked against its record,
        so search never lists what a download would not find.
        """
        found = self._indexed(lambda: self.index.search(query))
        if self._stale_marker.exists():
            found = [
                m
                for m in found
                if self.backend.exists(
                    ArtifactKey(m.spec_name, m.task_id, m.type).record_key(m.version)
                )
            ]
        return [self.with_uri(m) for m in found]

    def query(self, operation: Callable[[MetadataIndex], T]) -> T:
        """Run a read-only ``operation`` on the index, rebuilding it once if damaged."""
        return self._indexed(lambda: operation(self.index))

    def get_by_uri(self, uri: str) -> ArtifactMetadata:
        """Metadata of what ``uri`` names; ``ArtifactNotFoundError`` if nothing."""
        key, version = ArtifactKey.from_uri(uri, self.root_uri)
        meta = self.get(key, version)
        if meta is not None:
            # The answer comes from the record, the truth: an indexed row whose record
            # is gone (another host, a damaged store) or damaged is corrected on the way.
            try:
                current = self.load(key, meta.version)
            except ArtifactNotFoundError:
                meta = self.refresh(key, version)
            except IntegrityError:
                self.unindex(key, [meta.version])
                raise
            else:
                if current != meta:
                    self.reindex(current)
                meta = current
        if meta is None:
            raise ArtifactNotFoundError(f"no artifact at {uri}", uri=uri)
        return meta

    def get_by_task_id(self, task_id: str, spec_name: str | None = None) -> list[ArtifactMetadata]:
        """Metadata of every artifact of ``task_id`` (within ``spec_name`` if given)."""
        return self.search(SearchQuery(task_id=task_id, spec_name=spec_name))

    def get_by_spec_name(self, spec_name: str) -> list[ArtifactMetadata]:
        """Metadata of every artifact of ``spec_name``."""
        return self.search(SearchQuery(spec_name=spec_name))

    def close(self) -> None:
        """Close the index connection."""
        self.index.close()


def _with_known(
    listed: list[tuple[ArtifactKey, int, ObjectInfo]],
    rows: KnownRecords,
    known: dict[tuple[ArtifactKey, int], str],
) -> Iterator[tuple[ArtifactKey, int]]:
    """``(key, version)`` of every listed record, first noting its index row's text in
    ``known`` (see :class:`~.rows.KnownRecords`)."""
    current: ArtifactKey | None = None
    texts: dict[int, str] = {}
    for key, version, _ in listed:
        if key != current:
            current = key
            texts = rows.texts(key.spec_name, key.task_id, key.type.value)
        text = texts.get(version)
        if text is not None:
            known[(key, version)] = text
        yield key, version


def group_stored(
    listing: Iterable[tuple[ObjectInfo, bool]],
    gone: dict[ArtifactKey, set[int]],
    leftovers: list[ObjectInfo] | None = None,
) -> Iterator[StoredArtifact]:
    """Group a listing of ``(info, incomplete)`` into artifacts (listing order keeps
    them together), leaving out records of the versions in ``gone`` and appending
    the leftovers of interrupted writes to ``leftovers``."""
    current: StoredArtifact | None = None
    for info, incomplete in listing:
        if incomplete:
            if leftovers is not None:
                leftovers.append(info)
            continue
        parsed = parse_key(info.key)
        if parsed is None:
            continue
        if parsed.kind == "record" and parsed.version in gone.get(parsed.artifact, ()):
            continue  # being removed: gone already for readers (see .intents)
        if current is None or current.key != parsed.artifact:
            if current is not None:
                yield current
            current = StoredArtifact(parsed.artifact)
        if parsed.kind == "record":
            current.records[parsed.version] = info.key
        else:
            current.objects[info.key] = info
    if current is not None:
        yield current
