"""The storage quota at upload: refuse a write past it, warn while usage is high.

The check runs once the new object's stored size is known and before its
record is committed, so a refused upload leaves the store as it was.
Concurrent writers on one host may overshoot by at most their own uploads; a
shared index also *reserves* quota before the bytes are written (see
:mod:`..index.pg_coordination`).
"""

from __future__ import annotations

import logging
import threading
import time

from ..config import StorageQuota
from ..exceptions import StorageFullError
from ..index.manager import MetadataManager
from ..index.usage import grouped_usage
from ..models import ArtifactMetadata
from ..units import format_size

__all__ = ["Quota"]

log = logging.getLogger("necrocode.artifact_store")

#: Quota warnings are repeated at most this often (seconds) per process and store.
QUOTA_WARNING_INTERVAL = 60.0
#: Specs named in quota messages, largest first.
QUOTA_TOP_SPECS = 3
_warned: dict[str, float] = {}
_warned_lock = threading.Lock()


class Quota:
    """The ``storage_quota`` setting of one store, applied to its uploads."""

    def __init__(self, setting: StorageQuota, metadata: MetadataManager, root_uri: str) -> None:
        self.setting = setting
        self.metadata = metadata
        self.root_uri = root_uri

    def check(self, meta: ArtifactMetadata, replaced: list[ArtifactMetadata]) -> int | None:
        """Refuse ``meta`` if storing it (and dropping ``replaced``) passes the quota.

        Returns the stored bytes before this upload (``None`` without a quota).
        """
        quota = self.setting.max_bytes
        if quota is None:
            return None
        before = self.metadata.query(lambda index: index.stored_bytes())
        after = before - sum(m.stored_size for m in replaced) + meta.stored_size
        if after > quota:
            raise StorageFullError(
                f"storage quota exceeded: storing {meta.uri} ({format_size(meta.stored_size)}) "
                f"would use {format_size(after)} of {format_size(quota)}; "
                f"{self.advice()}, or raise storage_quota.max_size_gb "
                f"(now {self.setting.max_size_gb:g})",
                uri=meta.uri,
            )
        return before

    def advice(self) -> str:
        """What to do about a full store: the cleanup preview, and the biggest specs."""
        usage = grouped_usage(self.metadata, self.setting, "spec")
        biggest = sorted(usage.items(), key=lambda item: item[1].stored_bytes, reverse=True)
        named = ", ".join(
            f"{name} {format_size(u.stored_bytes)}" for name, u in biggest[:QUOTA_TOP_SPECS]
        )
        advice = "see what expired with 'necrocode-artifacts cleanup --dry-run'"
        return f"{advice} (largest specs: {named})" if named else advice

    def warn_if_high(
        self, before: int, meta: ArtifactMetadata, replaced: list[ArtifactMetadata]
    ) -> None:
        """Warn while usage is above the threshold: every upload, at most once a minute.

        Rate-limited per process (and store), so a busy service logs one line a
        minute and every run of the command line that uploads says it once.
        """
        quota = self.setting.max_bytes
        if not quota:
            return
        after = before - sum(m.stored_size for m in replaced) + meta.stored_size
        if after < self.setting.warn_threshold * quota:
            return
        now = time.monotonic()
        with _warned_lock:
            last = _warned.get(self.root_uri)
            if last is not None and now - last < QUOTA_WARNING_INTERVAL:
                return
            _warned[self.root_uri] = now
        log.warning(
            "storage usage is above %.0f%% of the quota: %s of %s (%.1f%%); %s",
            self.setting.warn_threshold * 100,
            format_size(after),
            format_size(quota),
            after / quota * 100,
            self.advice(),
        )
