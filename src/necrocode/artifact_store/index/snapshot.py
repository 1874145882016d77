"""A rebuild's memory, kept in the bucket: every record it read, with the record's ETag.

A rebuild from an object store costs one GET per record. The next rebuild (a
dropped database, a new host, a stale marker) lists the bucket anyway, and the
listing tells each record's ETag, which changes whenever the record's bytes do.
So a rebuild writes what it read to one hidden object,
``.necrocode-index/records.jsonl.gz`` (names starting with ``.`` are never
listed as artifacts), and the next rebuild takes a record from there only when
the listing shows the *same ETag* for it; every other record — new, rewritten,
or on a backend whose listing has no ETags (filesystem) — is read from the
bucket as before. The records in the bucket stay the only truth: the snapshot
is never used for a record without the listing vouching for it.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections.abc import Iterable

from ..backends.base import StorageBackend
from ..exceptions import ArtifactNotFoundError, ArtifactStoreError

__all__ = ["SNAPSHOT_KEY", "read_snapshot", "write_snapshot"]

log = logging.getLogger(__name__)

SNAPSHOT_KEY = ".necrocode-index/records.jsonl.gz"


def read_snapshot(backend: StorageBackend) -> dict[str, tuple[str, str]]:
    """``record key -> (etag, record JSON)`` of the last rebuild ({} if none or unreadable)."""
    try:
        data = backend.download(SNAPSHOT_KEY)
    except ArtifactNotFoundError:
        return {}
    except ArtifactStoreError as exc:
        log.warning("index snapshot unreadable (%s); reading every record", exc)
        return {}
    found: dict[str, tuple[str, str]] = {}
    try:
        for line in gzip.decompress(data).splitlines():
            entry = json.loads(line)
            found[str(entry["k"])] = (str(entry["e"]), str(entry["r"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("index snapshot damaged (%s); reading every record", exc)
        return {}
    return found


def write_snapshot(backend: StorageBackend, entries: Iterable[tuple[str, str, str]]) -> int:
    """Replace the snapshot with ``(record key, etag, record JSON)`` entries; how many.

    Best effort: a failure is logged, the rebuild it follows stands.
    """
    buffer = io.BytesIO()
    count = 0
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as out:
        for key, etag, record in entries:
            out.write(json.dumps({"k": key, "e": etag, "r": record}).encode() + b"\n")
            count += 1
    try:
        backend.upload(SNAPSHOT_KEY, buffer.getvalue())
    except ArtifactStoreError as exc:
        log.warning("could not write the index snapshot: %s", exc)
    return count
