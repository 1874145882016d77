"""Changes to stored artifacts other than uploads: delete, prune versions, edit records.

Each runs under the artifact's lock and starts from the records in the backend
(the source of truth), never from the index alone. A removal writes a delete
intent first (:mod:`..index.intents`), so a crash half-way leaves an artifact
that is either there or gone for every reader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ..exceptions import ArtifactNotFoundError, InvalidInputError
from ..index.intents import DeleteIntent
from ..models import ArtifactMetadata
from ..naming import validate_tags
from .parts import StoreParts

__all__ = [
    "adding_tags",
    "all_versions",
    "delete",
    "delete_old_versions",
    "pinning",
    "removing_tags",
    "setting_tags",
    "update_record",
]

Change = Callable[[ArtifactMetadata], ArtifactMetadata]

log = logging.getLogger("necrocode.artifact_store")


def delete(parts: StoreParts, uri: str, missing_ok: bool) -> int:
    """Delete every version of the artifact ``uri`` names, or the one version a
    ``?version=N`` URI names; 1, or 0 when absent and ``missing_ok``."""
    key, version = parts.parse_uri(uri)
    with parts.hold(key, uri):
        stored = parts.metadata.stored(key)
        versions = sorted(stored.records) if version is None else [version]
        versions = [v for v in versions if v in stored.records]
        if not versions:
            parts.metadata.unindex(key, None if version is None else [version])
            if missing_ok:
                return 0
            raise ArtifactNotFoundError(f"no artifact at {uri}", uri=uri)
        metas = [m for m in parts.metadata.load_all(stored) if m.version in versions]
        objects = tuple(m.object_key for m in metas if m.object_key)
        removal = DeleteIntent(key, tuple(versions), objects, all_versions=version is None)
        parts.metadata.remove_versions([removal])
    log.info("deleted %s", uri)
    return 1


def delete_old_versions(parts: StoreParts, uri: str, keep: int) -> int:
    """Delete all but the newest ``keep`` versions; how many were deleted."""
    if type(keep) is not int or keep < 1:
        raise InvalidInputError(f"keep must be a positive integer, got {keep!r}")
    key, _ = parts.parse_uri(uri)
    with parts.hold(key, uri):
        stored = parts.metadata.stored(key)
        if not stored.records:
            raise ArtifactNotFoundError(f"no artifact at {uri}", uri=uri)
        doomed = sorted(stored.records)[:-keep]
        metas = [m for m in parts.metadata.load_all(stored) if m.version in doomed]
        objects = tuple(m.object_key for m in metas if m.object_key)
        parts.metadata.remove_versions([DeleteIntent(key, tuple(doomed), objects)])
    return len(doomed)


def update_record(parts: StoreParts, uri: str, change: Change) -> ArtifactMetadata:
    """Rewrite the record ``uri`` names with ``change`` applied to the stored truth."""
    key, version = parts.parse_uri(uri)
    with parts.hold(key, uri):
        current = parts.metadata.refresh(key, version)
        if current is None:
            raise ArtifactNotFoundError(f"no artifact at {uri}", uri=uri)
        updated = change(current)
        if updated != current:
            parts.metadata.save(updated, create=False)
    return updated


def all_versions(parts: StoreParts, uri: str) -> list[ArtifactMetadata]:
    """Every stored version of the artifact, oldest first (the records are consulted
    when the index knows none)."""
    key, _ = parts.parse_uri(uri)
    versions = parts.metadata.versions(key)
    if not versions:
        if parts.metadata.refresh(key) is None:
            raise ArtifactNotFoundError(f"no artifact at {uri}", uri=uri)
        versions = parts.metadata.versions(key)
    return versions


# The changes :func:`update_record` applies; each validates its input when made, so a
# bad tag is refused before the lock is taken.


def adding_tags(tags: Iterable[str]) -> Change:
    """Add ``tags``; tags already present stay once."""
    new = validate_tags(tags)
    return lambda m: m.with_changes(tags=validate_tags((*m.tags, *new)))


def setting_tags(tags: Iterable[str]) -> Change:
    """Replace the tags with ``tags``."""
    new = validate_tags(tags)
    return lambda m: m.with_changes(tags=new)


def removing_tags(tags: Iterable[str]) -> Change:
    """Remove ``tags`` (absent ones are ignored)."""
    gone = set(validate_tags(tags))
    return lambda m: m.with_changes(tags=tuple(t for t in m.tags if t not in gone))


def pinning(pinned: bool) -> Change:
    """Pin (kept forever) or unpin."""
    return lambda m: m.with_changes(pinned=pinned)
