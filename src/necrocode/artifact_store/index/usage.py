"""Storage usage, read from the index's running totals (never a walk of the store).

Both indexes keep per-(spec, type) totals and one grand total up to date by
triggers, so usage costs one small query at any store size.
"""

from __future__ import annotations

from ..config import StorageQuota
from ..models import StorageUsage
from .base import UsageRow
from .manager import MetadataManager

__all__ = ["grouped_usage", "total_usage"]

#: The columns of a usage row that :func:`grouped_usage` groups by.
GROUP_COLUMNS = {"spec": 0, "type": 1}


def total_usage(metadata: MetadataManager, quota: StorageQuota) -> StorageUsage:
    """Artifacts, versions, stored and original bytes of the whole store, with its quota."""
    artifacts, versions, stored, original = metadata.query(lambda index: index.usage_sums())
    return StorageUsage(
        artifact_count=artifacts,
        version_count=versions,
        stored_bytes=stored,
        original_bytes=original,
        quota_bytes=quota.max_bytes,
        warn_threshold=quota.warn_threshold,
    )


def grouped_usage(
    metadata: MetadataManager, quota: StorageQuota, by: str
) -> dict[str, StorageUsage]:
    """Usage of each spec (``by="spec"``) or artifact type (``by="type"``), by name."""
    column = GROUP_COLUMNS[by]
    groups: dict[str, list[UsageRow]] = {}
    for row in metadata.query(lambda index: index.usage_totals()):
        groups.setdefault(str(row[column]), []).append(row)
    return {name: _summed(rows, quota) for name, rows in sorted(groups.items())}


def _summed(rows: list[UsageRow], quota: StorageQuota) -> StorageUsage:
    return StorageUsage(
        artifact_count=sum(r[2] for r in rows),
        version_count=sum(r[3] for r in rows),
        stored_bytes=sum(r[4] for r in rows),
        original_bytes=sum(r[5] for r in rows),
        quota_bytes=quota.max_bytes,
        warn_threshold=quota.warn_threshold,
    )
