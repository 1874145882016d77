"""Search indexes behind one seam: SQLite (embedded, per host) and PostgreSQL (shared).

:func:`open_index` picks one from the ``index_url`` setting: unset or ``sqlite``
is the embedded index in the store's state folder; ``postgresql://...`` is one
database shared by every host of a bucket (extra ``postgres``).
"""

from __future__ import annotations

from pathlib import Path

from ..exceptions import ConfigError
from .base import IndexKey, MetadataIndex, SearchQuery, UsageRow, UsageSums, redact_url
from .sqlite import SQLiteIndex

__all__ = [
    "INDEX_FILENAME",
    "IndexKey",
    "MetadataIndex",
    "SQLiteIndex",
    "SearchQuery",
    "UsageRow",
    "UsageSums",
    "describe_index",
    "is_postgres_url",
    "open_index",
    "redact_url",
]

#: The SQLite index's file inside the state folder.
INDEX_FILENAME = "index.sqlite3"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(url: str | None) -> bool:
    """Whether ``index_url`` names a PostgreSQL database."""
    return url is not None and url.startswith(_POSTGRES_SCHEMES)


def describe_index(index_url: str | None, state_dir: Path) -> str:
    """Which index ``index_url`` names, for people (never a password); no connection made."""
    if is_postgres_url(index_url):
        assert index_url is not None
        return redact_url(index_url)
    return f"sqlite {state_dir / INDEX_FILENAME}"


def open_index(
    index_url: str | None,
    state_dir: Path,
    root_uri: str,
    *,
    connect_timeout: float = 10.0,
    reservation_timeout: float = 900.0,
) -> MetadataIndex:
    """The index ``index_url`` names for the store at ``root_uri``."""
    if index_url is None or index_url == "sqlite":
        return SQLiteIndex(state_dir / INDEX_FILENAME)
    if is_postgres_url(index_url):
        try:
            from .postgres import PostgresIndex  # noqa: PLC0415 - the extra is optional
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ConfigError(
                "index_url: a PostgreSQL index needs psycopg 3; install "
                "necrocode-artifact-store[postgres]",
                key="index_url",
            ) from exc
        return PostgresIndex(
            index_url,
            root_uri,
            connect_timeout=connect_timeout,
            reservation_timeout=reservation_timeout,
        )
    raise ConfigError(
        f"index_url: expected 'sqlite' or a postgresql:// URL, got {index_url!r}",
        key="index_url",
    )
