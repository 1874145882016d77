"""Retention: how long artifacts are kept, and the record of each cleanup run.

An artifact version expires ``days`` after its creation, where ``days`` is its
own ``retention_days`` (given at upload) or else the configured days for its
type: a mapping type -> days (defaults from the registry of types in
:class:`~.models.ArtifactType`: diff 30, log 7, test 14). Pinned artifacts never
expire.
Finding expired artifacts is an index query; the facade deletes them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import RetentionDays
from ..exceptions import StorageError
from ..models import ArtifactMetadata, format_time

__all__ = ["CleanupReport", "RetentionPolicy"]

log = logging.getLogger("necrocode.artifact_store.retention")

CLEANUP_LOG_FILENAME = "cleanup.log"


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
