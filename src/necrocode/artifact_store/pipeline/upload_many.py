"""``upload_many``: several artifacts in one call, made durable together.

Each item runs the steps of the upload pipeline (:mod:`.upload`) up to its
staged object; then the records of every item are created in one backend batch
(one round of fsyncs for their data and objects, one fsync per folder they
were linked into) and indexed in one index transaction
(:meth:`~..index.manager.MetadataManager.save_many`). Each item stays
all-or-nothing on its own: a failure at any step (validation, its lock, the
quota, its content, its record) is that item's result, the other items go on.

Items that name the same artifact are done in *waves*: the second goes in the
next wave, after the first committed, so it becomes the next version (or, with
versioning off, replaces it) exactly as two ``upload`` calls in a row would.
The locks of a wave are taken in name order, so two batches never deadlock.

Where a record write can fail transiently (cloud backends, whose answer may be
lost after the write happened) or the index is shared (its quota reservations
belong to one upload at a time), the items are uploaded one after the other
through the ordinary pipeline, with the same per-item results.

:func:`stage_combined` and :func:`finish_combined` are the same batch, in two
steps, for ``upload`` calls of several threads that :mod:`.combining` gathered;
they never wait for a lock: an item whose artifact another writer holds (or
that an earlier item of the batch names) is handed back, for its own thread to
upload the ordinary way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..backends.base import ObjectExistsError, SourceError, StagedObject
from ..exceptions import ArtifactExistsError, ArtifactStoreError, InvalidInputError
from ..models import ArtifactMetadata
from ..naming import ArtifactKey, new_generation
from .batch import UploadItem, UploadResult
from .integrity import HashingSource
from .summarising import SummaryTap
from .upload import (
    Content,
    Uploader,
    UploadOptions,
    _check,
    content_chunks,
    current_versions,
    new_version,
    remove_replaced,
    upload_key,
)

__all__ = ["CombinedBatch", "can_share_commits", "finish_combined", "stage_combined", "upload_many"]

log = logging.getLogger("necrocode.artifact_store")


@dataclass
class _Pending:
    """One item on its way through a wave."""

    index: int
    item: UploadItem
    key: ArtifactKey
    options: UploadOptions
    #: Set once staged: the new version, its object, what it replaces.
    meta: ArtifactMetadata | None = None
    staged: StagedObject | None = None
    replaced: list[ArtifactMetadata] = field(default_factory=list)
    usage_before: int | None = None


def upload_many(uploader: Uploader, items: Sequence[UploadItem]) -> list[UploadResult]:
    """Store ``items`` (see the module docstring); one result per item, in order."""
    for position, item in enumerate(items):
        if not isinstance(item, UploadItem):
            raise InvalidInputError(
                f"upload_many takes UploadItem values; item {position} is {type(item).__name__}"
            )
    results: dict[int, UploadResult] = {}
    pendings: list[_Pending] = []
    for position, item in enumerate(items):
        try:
            pendings.append(_pending(position, item))
        except ArtifactStoreError as exc:
            results[position] = UploadResult(position, item, error=exc)
    together = can_share_commits(uploader)
    for wave in _waves(pendings):
        if together:
            results.update(_wave(uploader, wave))
        else:
            for pending in wave:
                results[pending.index] = _one(uploader, pending)
    ordered = [results[position] for position in range(len(items))]
    for result in ordered:
        if result.error is not None:
            # Returned, not raised: DEBUG, like any failing call (see .operation).
            log.debug(
                "upload_many item %d failed: %s: %s",
                result.index,
                type(result.error).__name__,
                result.error,
            )
    return ordered


class CombinedBatch:
    """Uploads of :func:`stage_combined`: staged, their locks held, not committed yet."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.locks = contextlib.ExitStack()
        self.results: dict[int, UploadResult] = {}
        self.staged: list[_Pending] = []


def stage_combined(
    uploader: Uploader, requests: Sequence[tuple[ArtifactKey, Content, UploadOptions]]
) -> CombinedBatch:
    """Lock (without waiting) and stage ``upload`` calls of several threads; commit them
    with :func:`finish_combined` (only where :func:`can_share_commits`).

    A request whose artifact another writer holds, or that names an artifact an
    earlier request of the batch names too, is not done here (its outcome is
    ``None``: its own thread uploads it the ordinary way).
    """
    batch = CombinedBatch(len(requests))
    seen: set[ArtifactKey] = set()
    wave: list[_Pending] = []
    for position, (key, content, options) in enumerate(requests):
        if key in seen:
            batch.results[position] = _taken(position, content, key, uploader)
            continue
        seen.add(key)
        wave.append(_Pending(position, UploadItem(content=content), key, options))
    try:
        results, batch.staged = _stage_wave(uploader, wave, batch.locks, wait=False)
    except BaseException:
        batch.locks.close()
        raise
    batch.results.update(results)
    return batch


def finish_combined(
    uploader: Uploader, batch: CombinedBatch
) -> list[ArtifactMetadata | Exception | None]:
    """Commit what :func:`stage_combined` staged and release its locks; each request's
    metadata or error, in order, or ``None`` (see :func:`stage_combined`)."""
    with batch.locks:
        batch.results.update(_commit_all(uploader, batch.staged))
    outcomes: list[ArtifactMetadata | Exception | None] = []
    for position in range(batch.count):
        result = batch.results[position]
        if isinstance(result.error, _LockTaken):
            outcomes.append(None)
        else:
            outcomes.append(result.error if result.error is not None else result.metadata)
    return outcomes


def _taken(position: int, content: Content, key: ArtifactKey, uploader: Uploader) -> UploadResult:
    uri = key.uri(uploader.parts.root_uri)
    return UploadResult(position, UploadItem(content=content), error=_LockTaken(uri))


class _LockTaken(Exception):
    """An item of :func:`upload_combined` whose artifact another writer holds."""


def _waves(pendings: list[_Pending]) -> list[list[_Pending]]:
    """``pendings`` in waves: the n-th item naming an artifact goes in wave n."""
    waves: list[list[_Pending]] = []
    seen: dict[ArtifactKey, int] = {}
    for pending in pendings:
        number = seen.get(pending.key, -1) + 1
        seen[pending.key] = number
        if number == len(waves):
            waves.append([])
        waves[number].append(pending)
    return waves


def _pending(position: int, item: UploadItem) -> _Pending:
    """An item's name and options, checked before any I/O."""
    key = upload_key(item.task_id, item.spec_name, item.artifact_type, item.ref)
    if item.content is None:
        raise InvalidInputError(f"item {position} ({key.path}) has no content")
    options = UploadOptions(
        item.metadata,
        item.mime_type,
        item.tags,
        item.retention_days,
        item.if_changed,
        item.if_absent,
    )
    return _Pending(position, item, key, options)


def can_share_commits(uploader: Uploader) -> bool:
    """Whether records can be created in one batch (see the module docstring)."""
    parts = uploader.parts
    return not parts.backend.capabilities.transient_failures and not parts.metadata.index.shared


def _one(uploader: Uploader, pending: _Pending) -> UploadResult:
    """An item through the ordinary pipeline."""
    try:
        assert pending.item.content is not None
        meta = uploader.upload(pending.key, pending.item.content, pending.options)
    except Exception as exc:  # the item's result: typed, or its content's own exception
        return UploadResult(pending.index, pending.item, error=exc)
    return UploadResult(pending.index, pending.item, metadata=meta)


def _wave(uploader: Uploader, wave: list[_Pending]) -> dict[int, UploadResult]:
    """Items of distinct artifacts: lock, stage each, commit all at once, unlock."""
    with contextlib.ExitStack() as locks:
        results, staged = _stage_wave(uploader, wave, locks, wait=True)
        results.update(_commit_all(uploader, staged))
    return results


def _stage_wave(
    uploader: Uploader, wave: list[_Pending], locks: contextlib.ExitStack, *, wait: bool
) -> tuple[dict[int, UploadResult], list[_Pending]]:
    """Lock (into ``locks``) and stage items of distinct artifacts: the results of those
    that failed (or are unchanged), and those staged.

    Without ``wait`` an item whose lock is taken gets a :class:`_LockTaken` error.
    """
    parts = uploader.parts
    results: dict[int, UploadResult] = {}
    staged: list[_Pending] = []
    pending_bytes = 0
    for pending in sorted(wave, key=lambda p: p.key.path):
        uri = pending.key.uri(parts.root_uri)
        try:
            if wait:
                locks.enter_context(parts.hold(pending.key, uri))
            elif not locks.enter_context(parts.try_hold(pending.key)):
                raise _LockTaken(uri)
        except Exception as exc:
            results[pending.index] = UploadResult(pending.index, pending.item, error=exc)
    locked = [p for p in wave if p.index not in results]
    for pending in locked:
        try:
            unchanged = _stage(uploader, pending, pending_bytes)
        except Exception as exc:
            results[pending.index] = UploadResult(pending.index, pending.item, error=exc)
            continue
        if unchanged is not None:
            results[pending.index] = UploadResult(pending.index, pending.item, unchanged)
            continue
        assert pending.meta is not None
        pending_bytes += pending.meta.stored_size - sum(m.stored_size for m in pending.replaced)
        staged.append(pending)
    return results, staged


def _stage(uploader: Uploader, pending: _Pending, pending_bytes: int) -> ArtifactMetadata | None:
    """Validate, version, stream and quota-check one item (its lock held).

    Returns the existing latest version for an unchanged ``if_changed`` item
    (nothing staged); otherwise fills ``pending.meta`` and ``pending.staged``.
    """
    parts = uploader.parts
    key, options = pending.key, pending.options
    uri = key.uri(parts.root_uri)
    checked = _check(key, options)
    assert pending.item.content is not None
    chunks, close_source = content_chunks(pending.item.content)
    try:
        previous = current_versions(parts, key)
        if options.if_absent and previous:
            raise ArtifactExistsError(f"{uri} exists already", uri=previous[-1].uri)
        version = previous[-1].version + 1 if previous else 1
        codec = parts.compression.codec
        object_key = key.object_key(version, new_generation(), codec)
        source = HashingSource(chunks)
        replaced = [] if parts.config.versioning_enabled else previous
        with SummaryTap(
            key.type if parts.config.content_summaries else None,
            processes=parts.config.summary_processes,
        ) as summariser:
            try:
                staged = parts.backend.stage(
                    object_key, parts.compression.compress_stream(summariser.tap(source))
                )
            except SourceError as exc:
                raise exc.__cause__ or exc from None  # the caller's content failed, not the store
            summary, summary_reason = summariser.finish()
    finally:
        close_source()
    try:
        if options.if_changed and previous and previous[-1].checksum == source.checksum:
            parts.backend.delete(object_key)
            return previous[-1]
        meta = new_version(
            uri, key, version, object_key, codec, source, staged, checked, summary, summary_reason
        )
        pending.usage_before = uploader.quota.check(meta, replaced, pending=pending_bytes)
    except BaseException:
        with contextlib.suppress(Exception):
            parts.backend.delete(object_key)  # nothing refers to it yet
        raise
    pending.meta, pending.staged, pending.replaced = meta, staged, replaced
    return None


def _commit_all(uploader: Uploader, staged: list[_Pending]) -> dict[int, UploadResult]:
    """Create every staged item's record in one batch; then drop what each replaces."""
    parts = uploader.parts
    results: dict[int, UploadResult] = {}
    if not staged:
        return results
    saves = []
    for pending in staged:
        assert pending.meta is not None and pending.staged is not None
        versions = tuple(m.version for m in pending.replaced)
        saves.append((pending.meta, versions, pending.staged))
    errors = parts.metadata.save_many(saves)
    for pending, error in zip(staged, errors, strict=True):
        assert pending.meta is not None and pending.staged is not None
        meta, replaced = pending.meta, pending.replaced
        try:
            try:
                if isinstance(error, ObjectExistsError):
                    # Another writer took the version number: the single-upload path retries.
                    meta, replaced = uploader._commit(pending.key, meta, replaced, pending.staged)
                elif error is not None:
                    raise error
            except Exception as exc:
                meta, replaced = uploader.after_failed_commit(pending.key, meta, replaced, exc)
        except Exception as exc:
            results[pending.index] = UploadResult(pending.index, pending.item, error=exc)
            continue
        remove_replaced(parts, pending.key, replaced)
        if pending.usage_before is not None:
            uploader.quota.warn_if_high(pending.usage_before, meta, replaced)
        log.debug("uploaded %s v%d (%d bytes) in a batch", meta.uri, meta.version, meta.size)
        results[pending.index] = UploadResult(pending.index, pending.item, metadata=meta)
    return results
