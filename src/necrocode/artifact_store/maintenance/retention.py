"""Retention: how long artifacts are kept, and the record of each cleanup run.

An artifact version expires ``days`` after its creation, where ``days`` is its
own ``retention_days`` (given at upload) or else the configured days for its
type: a mapping type -> days (defaults from the registry of types in
:class:`~.models.ArtifactType`: diff 30, log 7, test 14). Pinned artifacts never
expire.

This module owns the rule whole: the predicate on one record
(:meth:`RetentionPolicy.is_expired`), the same predicate as SQL for the index
(:func:`expired_conditions`: one range scan per type on ``(type, created_at)``
plus the few rows with their own days, never a computation over every row), and
the cleanup loop (:func:`cleanup_expired`), which re-checks every version under
its lock with the Python predicate before deleting it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import RetentionDays
from ..exceptions import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    InvalidInputError,
    StorageError,
)
from ..index.base import SHARED_JOB_WORKERS, Condition
from ..index.intents import DeleteIntent
from ..models import ArtifactMetadata, format_time, utc_now
from ..naming import ArtifactKey
from ..pipeline.parts import StoreParts
from .parallel import maintenance_workers, ordered_map

__all__ = [
    "CleanupReport",
    "RetentionPolicy",
    "cleanup_expired",
    "expired_conditions",
    "find_expired",
]

log = logging.getLogger("necrocode.artifact_store.retention")

CLEANUP_LOG_FILENAME = "cleanup.log"
SECONDS_PER_DAY = 86400.0
#: Artifact versions one cleanup batch removes together (whole task folders): one
#: delete intent, one index transaction and one round of folder fsyncs for all of them.
CLEANUP_BATCH = 96
#: Artifact locks (one open file each) all cleanup threads hold at once, at most
#: about: with many threads (an object store's 8) the batches get smaller.
LOCKS_IN_FLIGHT = 2 * CLEANUP_BATCH


class RetentionPolicy:
    """Days kept per artifact type, with per-artifact overrides and pinning."""

    def __init__(self, days: RetentionDays | Mapping[str, int] | None = None) -> None:
        """``days``: the ``retention_policy`` setting, or a mapping of some types to days
        (the others keep their defaults)."""
        if days is None:
            days = RetentionDays()
        elif not isinstance(days, RetentionDays):
            days = RetentionDays(**dict(days))
        self.days = days

    def days_by_type(self) -> dict[str, int]:
        """``{"diff": 30, "log": 7, "test": 14}`` with the configured values."""
        return self.days.as_dict()

    def days_for(self, meta: ArtifactMetadata) -> int | None:
        """Days ``meta`` is kept; ``None`` when pinned (kept forever)."""
        if meta.pinned:
            return None
        if meta.retention_days is not None:
            return meta.retention_days
        return self.days.for_type(meta.type.value)

    def expires_at(self, meta: ArtifactMetadata) -> datetime | None:
        """When ``meta`` expires; ``None`` when it never does."""
        days = self.days_for(meta)
        if days is None:
            return None
        try:
            return meta.created_at + timedelta(days=days)
        except OverflowError:  # past the calendar's end: never in practice
            return datetime.max.replace(tzinfo=UTC)

    def is_expired(self, meta: ArtifactMetadata, now: datetime) -> bool:
        """Whether ``meta`` is past its retention period at ``now``."""
        expiry = self.expires_at(meta)
        return expiry is not None and expiry <= now

    def describe(self) -> dict[str, Any]:
        """The policy as plain data (for logs and reports)."""
        return {"days": self.days_by_type()}


@dataclass
class CleanupReport:
    """What one :meth:`ArtifactStore.cleanup_expired` run did (or would do, when dry)."""

    started_at: datetime
    dry_run: bool
    policy: dict[str, Any]
    uris: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    errors: list[str] = field(default_factory=list)
    finished_at: datetime | None = None

    @property
    def count(self) -> int:
        """How many artifact versions were deleted (or would be)."""
        return len(self.uris)

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the cleanup log line and the ``--json`` output."""
        return {
            "time": format_time(self.started_at),
            "finished": format_time(self.finished_at) if self.finished_at else None,
            "dry_run": self.dry_run,
            "policy": self.policy,
            "count": self.count,
            "bytes_freed": self.bytes_freed,
            "deleted": self.uris,
            "errors": self.errors,
        }


def append_cleanup_log(state_dir: Path, report: CleanupReport) -> Path:
    """Append ``report`` as one JSON line to the store's cleanup log; return its path.

    One ``write(2)`` on a file opened with ``O_APPEND``, so lines written by
    concurrent cleanups never interleave.
    """
    path = state_dir / CLEANUP_LOG_FILENAME
    line = (json.dumps(report.to_dict(), sort_keys=True) + "\n").encode("utf-8")
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"cannot append to the cleanup log {path}: {exc.strerror}") from exc
    return path


def read_cleanup_log(state_dir: Path) -> list[dict[str, Any]]:
    """Every run recorded in the store's cleanup log, oldest first."""
    path = state_dir / CLEANUP_LOG_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def expired_conditions(
    days_by_type: Mapping[str, int], now: datetime, mark: str
) -> list[Condition]:
    """:meth:`RetentionPolicy.is_expired` as SQL over the index's ``artifacts`` rows
    (``created_at`` in epoch seconds), with ``mark`` as parameter marker."""
    moment = now.timestamp()
    conditions: list[Condition] = [
        (
            f"type = {mark} AND created_at <= {mark} AND retention_days IS NULL AND NOT pinned",
            (kind, moment - days * SECONDS_PER_DAY),
        )
        for kind, days in sorted(days_by_type.items())
    ]
    conditions.append(
        (
            f"retention_days IS NOT NULL AND NOT pinned"
            f" AND created_at + retention_days * {mark} <= {mark}",
            (SECONDS_PER_DAY, moment),
        )
    )
    return conditions


def find_expired(
    parts: StoreParts, policy: RetentionPolicy, now: datetime | None
) -> list[ArtifactMetadata]:
    """Every unpinned version past its retention at ``now`` (default: now), oldest first."""
    now = _aware(now)
    days = policy.days_by_type()
    found = parts.metadata.query(
        lambda index: index.records_where(expired_conditions(days, now, index.placeholder))
    )
    return [parts.metadata.with_uri(meta) for meta in found]


def cleanup_expired(
    parts: StoreParts,
    policy: RetentionPolicy,
    now: datetime | None,
    *,
    dry_run: bool,
    progress: Callable[[int, int], None] | None,
) -> CleanupReport:
    """Delete every expired version (``dry_run``: list them), log the run, report it.

    Batches of whole task folders (about ``CLEANUP_BATCH`` versions; one folder
    with a shared index, whose hosts claim folders) share one delete intent, one
    index transaction and one round of folder fsyncs; they run on a few threads
    whose results are merged in order. A folder that fails is reported and the
    others go on.
    """
    now = _aware(now)
    report = CleanupReport(utc_now(), dry_run, policy.describe())
    expired = find_expired(parts, policy, now)
    by_folder: dict[str, list[ArtifactMetadata]] = {}
    for meta in expired:
        by_folder.setdefault(f"{meta.spec_name}/{meta.task_id}", []).append(meta)
    workers = maintenance_workers(
        parts.backend, parts.config.maintenance_workers, waits_on_disk=True
    )
    limit = max(1, min(CLEANUP_BATCH, LOCKS_IN_FLIGHT // max(1, workers)))
    if parts.metadata.index.shared:
        # Each thread holds a claim connection and needs another for its deletes.
        workers = min(workers, SHARED_JOB_WORKERS)
        limit = 1  # one folder (one claim) at a time

    def work(batch: list[list[ArtifactMetadata]]) -> list[_GroupResult]:
        if dry_run:
            return [(group, group, None) for group in batch]
        return _delete_batch(parts, policy, batch, now)

    outcomes = ordered_map(
        work,
        _batches(by_folder.values(), limit),
        1 if dry_run else workers,
    )
    versioned = parts.config.versioning_enabled
    done = 0
    for outcome in outcomes:
        results: list[_GroupResult] = outcome.value or [
            # Only a bug gets here: _delete_batch reports failures per folder.
            (group, [], outcome.error)
            for group in outcome.item
        ]
        for group, deleted, error in results:
            for meta in group:
                label = meta.version_uri if versioned else meta.uri
                if error is not None:
                    report.errors.append(f"{label}: {error}")
                elif meta in deleted:
                    report.uris.append(label)
                    report.bytes_freed += meta.stored_size
                done += 1
                if progress is not None:
                    progress(done, len(expired))
    report.finished_at = utc_now()
    try:
        append_cleanup_log(parts.metadata.state_dir, report)
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


#: One group's result in a batch: the group, its versions deleted, or the error that
#: stopped its folder.
_GroupResult = tuple[list[ArtifactMetadata], list[ArtifactMetadata], ArtifactStoreError | None]


def _batches(
    groups: Iterable[list[ArtifactMetadata]], limit: int
) -> Iterator[list[list[ArtifactMetadata]]]:
    """Whole task folders, gathered until a batch holds ``limit`` versions or more."""
    batch: list[list[ArtifactMetadata]] = []
    size = 0
    for group in groups:
        batch.append(group)
        size += len(group)
        if size >= limit:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _delete_batch(
    parts: StoreParts,
    policy: RetentionPolicy,
    batch: list[list[ArtifactMetadata]],
    now: datetime,
) -> list[_GroupResult]:
    """Delete the still-expired versions of a batch of task folders, all together.

    If the batch as a whole fails (a lock timeout on one artifact, a folder that
    cannot be written), its folders are tried again one by one, so only the
    failing ones are reported (a removal the batch left half-done is finished
    first, under the artifact's lock, see :meth:`StoreParts.hold`).
    """
    announced: set[tuple[ArtifactKey, int]] = set()
    if len(batch) > 1:
        try:
            deleted = _delete_groups(parts, policy, batch, now, announced)
            return [(group, kept, None) for group, kept in deleted]
        except ArtifactStoreError as exc:
            log.warning(
                "cleanup: a batch of %d folders failed (%s); retrying them one by one",
                len(batch),
                exc,
            )
    results: list[_GroupResult] = []
    for group in batch:
        try:
            kept = _delete_groups(parts, policy, [group], now, announced)[0][1]
            results.append((group, kept, None))
        except ArtifactStoreError as exc:
            results.append((group, [], exc))
    return results


def _delete_groups(
    parts: StoreParts,
    policy: RetentionPolicy,
    groups: list[list[ArtifactMetadata]],
    now: datetime,
    announced: set[tuple[ArtifactKey, int]],
) -> list[tuple[list[ArtifactMetadata], list[ArtifactMetadata]]]:
    """Delete the still-expired versions of some task folders; return each group with
    the versions of it that were deleted.

    ``announced`` collects the versions whose delete intent was written; one found
    gone on a later try was deleted by that intent (finished when its lock was taken
    again), so it counts as deleted.

    Holds the locks of the folders' artifacts (in key order, so two cleanups
    cannot deadlock) and re-checks every version from its record, so a
    concurrent re-upload or pin wins. Then one removal covers them all: one
    index transaction, the records (oldest first), then the objects, each step
    made durable by one fsync per folder, the folders side by side.
    """
    metadata = parts.metadata
    kept: dict[int, list[ArtifactMetadata]] = {id(group): [] for group in groups}
    with contextlib.ExitStack() as held:
        mine: list[list[ArtifactMetadata]] = []
        for group in groups:
            # With a shared index, hosts cleaning at once split the folders between them.
            folder = f"{group[0].spec_name}/{group[0].task_id}"
            if held.enter_context(metadata.index.claim("cleanup", folder)):
                mine.append(group)
            else:
                log.info("cleanup: another host is cleaning %s; left to it", folder)
        keys = sorted({ArtifactKey(m.spec_name, m.task_id, m.type) for g in mine for m in g})
        for key in keys:
            held.enter_context(parts.hold(key, key.uri(parts.root_uri)))
        doomed: dict[ArtifactKey, list[ArtifactMetadata]] = {}
        for group in mine:
            for meta in sorted(group, key=lambda m: m.version):
                key = ArtifactKey(meta.spec_name, meta.task_id, meta.type)
                try:
                    current = metadata.load(key, meta.version)
                except ArtifactNotFoundError:
                    metadata.unindex(key, [meta.version])
                    if (key, meta.version) in announced:
                        kept[id(group)].append(meta)
                    continue
                if not policy.is_expired(current, now):
                    metadata.reindex(current)
                    continue
                doomed.setdefault(key, []).append(current)
                kept[id(group)].append(meta)
        if doomed:
            announced.update((key, m.version) for key, found in doomed.items() for m in found)
            metadata.remove_versions(
                [
                    DeleteIntent(
                        key,
                        tuple(m.version for m in doomed[key]),
                        tuple(m.object_key for m in doomed[key] if m.object_key),
                    )
                    for key in keys
                    if key in doomed
                ]
            )
    return [(group, kept[id(group)]) for group in groups]


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return utc_now()
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidInputError("now must be a timezone-aware datetime")
    return moment
