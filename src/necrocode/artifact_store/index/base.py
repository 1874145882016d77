"""The index seam: what the facade, the metadata manager, retention and maintenance
ask of a search index.

Two implementations satisfy :class:`MetadataIndex`: the embedded SQLite index of
one host (:mod:`..metadata_index`, the default) and the shared PostgreSQL index of
many hosts (:mod:`.postgres`). Either is only a cache of the JSON records in the
backend and can be rebuilt from them at any time; ``tests/test_index_conformance.py``
runs one suite against both.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from ..models import ArtifactMetadata
from ..naming import ArtifactKey
from .query import SearchQuery

__all__ = [
    "SHARED_JOB_WORKERS",
    "Condition",
    "IndexKey",
    "MetadataIndex",
    "Meter",
    "SearchQuery",
    "UsageRow",
    "UsageSums",
    "redact_url",
]

#: Threads one maintenance job may run against a shared index. Each holds its batch's
#: claim on one pooled connection while its deletes need a second one, so the pool
#: (``index.postgres.POOL_SIZE``) must hold twice as many plus one for the caller.
SHARED_JOB_WORKERS = 3

#: ``(spec, task, type, version)`` of one indexed version.
IndexKey = tuple[str, str, str, int]
#: ``(spec, type, artifacts, versions, stored bytes, original bytes)``.
UsageRow = tuple[str, str, int, int, int, int]
#: Counts (and may refuse) the stored bytes of an upload as they stream past.
Meter = Callable[[Iterable[bytes]], Iterable[bytes]]
#: An SQL condition over the ``artifacts`` table and its parameters.
Condition = tuple[str, Sequence[Any]]
#: ``(artifacts, versions, stored bytes, original bytes)``.
UsageSums = tuple[int, int, int, int]


def redact_url(url: str) -> str:
    """``url`` without its password (for logs, errors and ``config show``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=user + host))


@runtime_checkable
class MetadataIndex(Protocol):
    """A rebuildable cache of every metadata record of one store.

    Writes are one transaction each; ``exclusive`` groups several into one that no
    other writer interleaves with. Reads never block writers for long.
    """

    #: Whether every host writing the store uses this same index (a shared database):
    #: then the index, not a listing of the bucket, answers "what versions exist".
    shared: bool

    def describe(self) -> str:
        """What the index is, for people: ``"sqlite /path"``, ``"postgresql://u@h/db"``
        (never a password)."""
        ...

    def close(self) -> None:
        """Release this process's connections."""
        ...

    def destroy(self) -> None:
        """Throw the index away after corruption; the next use recreates it empty."""
        ...

    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the index's write lock for a block; writes inside join one transaction."""
        ...

    def claim(self, job: str, item: str) -> AbstractContextManager[bool]:
        """Claim one batch of a maintenance ``job`` (cleanup, repair) for the block.

        The block learns whether it got the batch: ``False`` means another host is
        working on it right now (skip it). A claim dies with its holder, so a batch
        a crashed host left half-done is claimed again by the next run.
        """
        ...

    def is_built(self) -> bool:
        """Whether the index was (re)built completely and matches this schema."""
        ...

    def replace_all(self, records: Iterable[ArtifactMetadata]) -> int:
        """Empty the index and fill it with ``records``; return how many rows it holds.

        ``records`` may be a lazy iterator: it is consumed once.
        """
        ...

    def rebuild_progress(self) -> set[IndexKey]:
        """Versions an interrupted :meth:`replace_all` already loaded: a rebuild that
        resumes skips reading their records again (empty if there is nothing to resume)."""
        ...

    def put(
        self,
        meta: ArtifactMetadata,
        *,
        remove_versions: Sequence[int] = (),
        record: str | None = None,
    ) -> None:
        """Insert or replace the row of ``meta``; drop ``remove_versions`` of the same
        artifact in the same transaction (``record`` is ``meta.to_json()`` if known)."""
        ...

    def remove(self, key: ArtifactKey, versions: Sequence[int] | None = None) -> None:
        """Drop the rows of ``versions`` of ``key`` (every version when ``None``)."""
        ...

    def get(self, key: ArtifactKey, version: int | None = None) -> ArtifactMetadata | None:
        """The row of ``version`` of ``key`` (the latest when ``None``)."""
        ...

    def versions(self, key: ArtifactKey) -> list[ArtifactMetadata]:
        """Every indexed version of ``key``, oldest first."""
        ...

    def search(self, query: SearchQuery) -> list[ArtifactMetadata]:
        """Rows matching every filter of ``query``, oldest first."""
        ...

    #: The parameter marker of this index's SQL dialect (``?`` or ``%s``).
    placeholder: str

    def records_where(self, conditions: Sequence[Condition]) -> list[ArtifactMetadata]:
        """Versions matching any of ``conditions`` — SQL over the columns of the
        ``artifacts`` table, each one scan — oldest first. Callers own their SQL
        (retention, :mod:`..maintenance.retention`); values go in as parameters."""
        ...

    def usage_totals(self) -> list[UsageRow]:
        """Usage per spec and type, ordered by spec then type."""
        ...

    def usage_sums(self) -> UsageSums:
        """Usage over the whole store."""
        ...

    def stored_bytes(self) -> int:
        """Stored bytes over every version (for quota checks)."""
        ...

    def keys(self) -> set[IndexKey]:
        """Every indexed version, for consistency checks."""
        ...

    def count(self) -> int:
        """Number of artifacts (latest versions) indexed."""
        ...
