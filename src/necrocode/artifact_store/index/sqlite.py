"""The embedded index of one host: a SQLite database (WAL mode) that caches the metadata records.

The records in the backend are the source of truth; this index only makes
lookups, search, usage and retention fast, and can be rebuilt from the records
at any time. Many processes may use one index file at once: SQLite's WAL mode
lets readers proceed while one writer commits, and every write here is one
short transaction touching only the rows of one artifact.

``synchronous=NORMAL`` is deliberate: a power cut may lose the last index
commits, never corrupt the file, and a lost commit is repaired by a rebuild
from the records, which are written durably.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..backends.base import MiB
from ..exceptions import (
    ArtifactStoreError,
    InvalidInputError,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from ..group_commit import CommitQueue
from ..models import ArtifactMetadata
from ..naming import ArtifactKey
from .base import Condition, IndexKey
from .insights import (
    clear_insights,
    compact_insights,
    insert_insight_values,
    insight_values,
    insights_search_sql,
    install_insights,
    restore_insights_trigger,
    write_insights,
)
from .query import SORT_COLUMNS, SearchQuery
from .rows import decode_record

__all__ = ["IndexCorruptError", "SQLiteIndex"]

SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 60.0
#: Checkpoint the WAL into the database every this many pages (32 MiB) rather than
#: SQLite's 1,000: each checkpoint costs two fsyncs, and the pages every commit
#: touches (usage totals, index tails) are copied once per checkpoint, not per commit.
WAL_CHECKPOINT_PAGES = 8000
#: Read the database through a memory map of up to this many bytes (shared with
#: the OS page cache) rather than ``pread`` into SQLite's 2 MB page cache: at
#: 100,000 artifacts a type + date search reads ~20 rows from scattered pages and
#: took 0.77 ms against 0.34 ms at 1,000; mapped, 0.37 ms.
MMAP_BYTES = 256 * MiB
#: Reads check at most this often (writes always) that the index file is still the one
#: the connection has open, so a deleted index is noticed without a stat per lookup.
FILE_CHECK_INTERVAL_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    spec_name      TEXT    NOT NULL,
    task_id        TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    is_latest      INTEGER NOT NULL DEFAULT 0,
    created_at     REAL    NOT NULL,
    size           INTEGER NOT NULL,
    original_size  INTEGER NOT NULL,
    retention_days INTEGER,
    pinned         INTEGER NOT NULL DEFAULT 0,
    record         TEXT    NOT NULL,
    PRIMARY KEY (spec_name, task_id, type, version)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS artifacts_by_task ON artifacts (task_id, is_latest);
CREATE INDEX IF NOT EXISTS artifacts_by_latest_time ON artifacts (is_latest, created_at);
CREATE INDEX IF NOT EXISTS artifacts_by_type_time ON artifacts (type, created_at);
CREATE INDEX IF NOT EXISTS artifacts_with_retention ON artifacts (retention_days)
    WHERE retention_days IS NOT NULL;
CREATE TABLE IF NOT EXISTS tags (
    tag       TEXT    NOT NULL,
    spec_name TEXT    NOT NULL,
    task_id   TEXT    NOT NULL,
    type      TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (tag, spec_name, task_id, type, version)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_by_artifact ON tags (spec_name, task_id, type, version);
CREATE TABLE IF NOT EXISTS index_state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Running totals per spec and type, kept by triggers in the same transaction as
-- the rows, so usage and quota checks never scan the artifacts.
CREATE TABLE IF NOT EXISTS usage_totals (
    spec_name     TEXT    NOT NULL,
    type          TEXT    NOT NULL,
    artifacts     INTEGER NOT NULL DEFAULT 0,
    versions      INTEGER NOT NULL DEFAULT 0,
    size          INTEGER NOT NULL DEFAULT 0,
    original_size INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (spec_name, type)
) WITHOUT ROWID;
-- The same totals over the whole store, in one row: quota checks read one row.
CREATE TABLE IF NOT EXISTS usage_grand (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    artifacts     INTEGER NOT NULL DEFAULT 0,
    versions      INTEGER NOT NULL DEFAULT 0,
    size          INTEGER NOT NULL DEFAULT 0,
    original_size INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO usage_grand (id) VALUES (1);
"""


_TRIGGERS = (
    """
CREATE TRIGGER IF NOT EXISTS usage_on_insert AFTER INSERT ON artifacts BEGIN
    UPDATE usage_grand SET artifacts = artifacts + new.is_latest, versions = versions + 1,
        size = size + new.size, original_size = original_size + new.original_size;
    INSERT OR IGNORE INTO usage_totals (spec_name, type) VALUES (new.spec_name, new.type);
    UPDATE usage_totals SET artifacts = artifacts + new.is_latest, versions = versions + 1,
        size = size + new.size, original_size = original_size + new.original_size
    WHERE spec_name = new.spec_name AND type = new.type;
END
""",
    """
CREATE TRIGGER IF NOT EXISTS usage_on_delete AFTER DELETE ON artifacts BEGIN
    UPDATE usage_grand SET artifacts = artifacts - old.is_latest, versions = versions - 1,
        size = size - old.size, original_size = original_size - old.original_size;
    UPDATE usage_totals SET artifacts = artifacts - old.is_latest, versions = versions - 1,
        size = size - old.size, original_size = original_size - old.original_size
    WHERE spec_name = old.spec_name AND type = old.type;
    DELETE FROM usage_totals
    WHERE spec_name = old.spec_name AND type = old.type AND versions = 0;
END
""",
    """
CREATE TRIGGER IF NOT EXISTS usage_on_update AFTER UPDATE OF is_latest, size, original_size
ON artifacts BEGIN
    UPDATE usage_grand SET artifacts = artifacts - old.is_latest + new.is_latest,
        size = size - old.size + new.size,
        original_size = original_size - old.original_size + new.original_size;
    UPDATE usage_totals SET artifacts = artifacts - old.is_latest + new.is_latest,
        size = size - old.size + new.size,
        original_size = original_size - old.original_size + new.original_size
    WHERE spec_name = old.spec_name AND type = old.type;
END
""",
)
_SCHEMA += "".join(f"{trigger};\n" for trigger in _TRIGGERS)


#: One queued :meth:`SQLiteIndex.put`: the row, versions to drop, its JSON if known.
_Put = tuple[ArtifactMetadata, tuple[int, ...], str | None]

#: The secondary indexes of the artifacts and tags tables, as the schema creates them:
#: a rebuild drops them, loads the rows and creates them again.
_SCHEMA_INDEXES = tuple(
    statement.strip()
    for statement in _SCHEMA.split(";")
    if statement.strip().startswith("CREATE INDEX")
)
_SECONDARY_INDEXES = tuple(
    statement.split("EXISTS", 1)[1].split()[0] for statement in _SCHEMA_INDEXES
)


class IndexCorruptError(StorageError):
    """The index file is damaged; the caller rebuilds it from the records."""


def _key_params(key: ArtifactKey) -> tuple[str, str, str]:
    return (key.spec_name, key.task_id, key.type.value)


#: One version's rows for a bulk load (:meth:`SQLiteIndex.replace_rows`): the values of
#: its ``artifacts`` row (the key first, the latest flag left out), its tags and its
#: side rows (:func:`~.insights.insight_values`). Plain data, cheap to send between
#: processes.
BulkRow = tuple[tuple[Any, ...], tuple[str, ...], tuple[Any, ...] | None, str | None, str | None]


def bulk_row(meta: ArtifactMetadata, record: str | None = None) -> BulkRow:
    """The rows of ``meta`` for a bulk load (``record``: its text, if known)."""
    return (_row_values(meta, record), tuple(meta.tags), *insight_values(meta))


def _insert_batch(conn: sqlite3.Connection, batch: Iterable[BulkRow]) -> int:
    """Insert rows holding every version of their artifacts into emptied tables."""
    # One row per version (a record listed twice: the last one read wins, as an
    # upsert would have it).
    by_version = {row[0][:4]: row for row in batch}
    latest: dict[tuple[str, str, str], int] = {}
    for spec, task, kind, version in by_version:
        if version > latest.get((spec, task, kind), 0):
            latest[(spec, task, kind)] = version
    conn.executemany(
        "INSERT INTO artifacts (spec_name, task_id, type, version, created_at, size,"
        " original_size, retention_days, pinned, record, is_latest)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            (*values, int(latest[(key[0], key[1], key[2])] == key[3]))
            for key, (values, *_) in by_version.items()
        ),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO tags (tag, spec_name, task_id, type, version) VALUES (?,?,?,?,?)",
        # In the table's key order: appended to B-tree pages instead of scattered.
        sorted((tag, *key) for key, (_, tags, *_) in by_version.items() for tag in tags),
    )
    insert_insight_values(
        conn,
        ((key, insight, paths, tests) for key, (_, _, insight, paths, tests) in by_version.items()),
    )
    return len(by_version)


def _row_values(meta: ArtifactMetadata, record: str | None = None) -> tuple[Any, ...]:
    return (
        meta.spec_name,
        meta.task_id,
        meta.type.value,
        meta.version,
        meta.created_at.timestamp(),
        meta.stored_size,
        meta.size,
        meta.retention_days,
        int(meta.pinned),
        meta.to_json() if record is None else record,
    )


_GET = "SELECT record FROM artifacts WHERE spec_name=? AND task_id=? AND type=? AND "
_GET_LATEST = _GET + "is_latest = 1"
_GET_VERSION = _GET + "version = ?"


class SQLiteIndex:
    """SQLite cache of every record, shared by the processes of one machine only."""

    shared = False
    placeholder = "?"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._in_transaction = False
        self._inode: tuple[int, int] | None = None
        #: Opened read-only (a read-only mount or user): writes fail with StoragePermissionError.
        self.read_only = False
        self._next_check = 0.0
        #: The thread inside an exclusive() block (its puts join that transaction).
        self._tx_thread: int | None = None
        self._puts: CommitQueue[_Put, None] = CommitQueue(self._put_batch)

    # -- connection -----------------------------------------------------------------

    def _connect(self, *, check: bool = False) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            due = check or time.monotonic() >= self._next_check
            if not due or self._in_transaction or self.read_only:
                return self._conn
            if self._same_file():
                return self._conn
            # The file was deleted (or replaced) under this connection: writes would go to
            # an unlinked file no other process sees. Move to the file at the path now.
            self._conn.close()
            self._conn = None
            conn = self._connect()
            if not self._built(conn):
                raise IndexCorruptError(f"index {self.path} was removed while in use")
            return conn
        # A connection must not cross fork(): a child opens its own.
        try:
            conn = self._open_writable()
            self.read_only = False
        except (sqlite3.DatabaseError, OSError) as exc:
            if self._writable_place():
                if isinstance(exc, OSError):
                    raise StorageError(f"index {self.path}: {exc.strerror or exc}") from exc
                raise _classify(exc, self.path) from exc
            # A read-only mount or a reader without write access: reads must still work.
            conn = self._open_read_only()
            self.read_only = True
        self._conn, self._pid = conn, os.getpid()
        self._in_transaction = False
        self._inode = self._file_id()
        self._next_check = time.monotonic() + FILE_CHECK_INTERVAL_S
        return conn

    def _open_writable(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            _set_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.executescript(_SCHEMA)
            install_insights(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _writable_place(self) -> bool:
        """Whether this process may write the index file (or create it, and its folder)."""
        place = self.path if self.path.exists() else self.path.parent
        while not place.exists() and place.parent != place:
            place = place.parent
        return os.access(place, os.W_OK) and (
            place == self.path or os.access(place, os.W_OK | os.X_OK)
        )

    def _open_read_only(self) -> sqlite3.Connection:
        """The index file opened read-only; else an in-memory index, for a rebuild.

        ``immutable`` lets SQLite read a WAL database whose shared-memory file it
        cannot create (a read-only mount): nothing can change the file there.
        """
        if self.path.exists():
            for query in ("mode=ro", "mode=ro&immutable=1"):
                try:
                    conn = sqlite3.connect(
                        f"{self.path.as_uri()}?{query}",
                        uri=True,
                        timeout=BUSY_TIMEOUT_S,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                except sqlite3.DatabaseError:
                    continue
                try:
                    conn.execute("SELECT COUNT(*) FROM index_state").fetchone()
                except sqlite3.DatabaseError:
                    conn.close()
                    continue
                # Registers the content-search functions first; the tables are there
                # already if the file was built by this version (nothing is written).
                with contextlib.suppress(sqlite3.DatabaseError):
                    install_insights(conn)
                return conn
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.executescript(_SCHEMA)
        install_insights(conn)
        return conn

    def _file_id(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def _same_file(self) -> bool:
        """Whether the path still names the file this connection has open."""
        self._next_check = time.monotonic() + FILE_CHECK_INTERVAL_S
        current = self._file_id()
        return current is not None and current == self._inode

    @staticmethod
    def _built(conn: sqlite3.Connection) -> bool:
        row = conn.execute("SELECT value FROM index_state WHERE name = 'schema'").fetchone()
        return row is not None and row[0] == str(SCHEMA_VERSION)

    def close(self) -> None:
        """Close this process's connection."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def destroy(self) -> None:
        """Delete the index files (after corruption); the next use recreates them."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connect()
            except sqlite3.DatabaseError as exc:
                raise _classify(exc, self.path) from exc
            except OverflowError as exc:
                raise _out_of_range(exc, self.path) from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error.

        Inside :meth:`exclusive` (same thread) it joins the enclosing transaction.
        """
        with self._lock:
            if self._in_transaction:
                yield self._connect()
                return
            try:
                conn = self._connect(check=True)
                conn.execute("BEGIN IMMEDIATE")
                self._in_transaction = True
                self._tx_thread = threading.get_ident()
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                finally:
                    self._in_transaction = False
                    self._tx_thread = None
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise _classify(exc, self.path) from exc
            except OverflowError as exc:
                raise _out_of_range(exc, self.path) from exc

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the index's write lock for a block: no other writer (of any process) can
        change it until the block ends. Index writes inside the block join the one
        transaction, committed at its end (rolled back on an exception).
        """
        with self._write():
            yield

    # -- state ------------------------------------------------------------------------

    def is_built(self) -> bool:
        """Whether the index was (re)built completely and matches this schema."""
        with self._read() as conn:
            return self._built(conn)

    def replace_all(self, records: Iterable[ArtifactMetadata]) -> int:
        """Empty the index and fill it with ``records`` in one transaction (see
        :meth:`replace_rows`)."""
        return self.replace_rows([(bulk_row(meta) for meta in records)])

    def replace_rows(self, batches: Iterable[Iterable[BulkRow]]) -> int:
        """:meth:`replace_all` of rows made by :func:`bulk_row`, in batches that each hold
        every version of their artifacts (a rebuild's worker processes send the rows of
        whole folders, plain values rather than records). Batches are written as they
        come, inside the one transaction: the caller's reads overlap the inserts.

        A bulk load, not a row-by-row upload: the latest flags are computed here, the
        rows go in with ``executemany`` while the running-total triggers are off, the
        totals are summed once at the end, and the secondary indexes are dropped before
        the load and built after it (sorting once beats ~10 random B-tree inserts per
        row). Readers of other processes see the old index until the commit; writers
        of this index wait for it (and then index what they committed meanwhile).
        """
        count = 0
        with self._write() as conn:
            # Triggers of an older schema are replaced, not kept by IF NOT EXISTS.
            for trigger in ("usage_on_insert", "usage_on_delete", "usage_on_update"):
                conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
            for index in _SECONDARY_INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS {index}")
            clear_insights(conn)
            conn.execute("DELETE FROM artifacts")
            conn.execute("DELETE FROM tags")
            conn.execute("DELETE FROM usage_totals")
            for batch in batches:
                count += _insert_batch(conn, batch)
            conn.execute(
                "INSERT INTO usage_totals (spec_name, type, artifacts, versions, size,"
                " original_size) SELECT spec_name, type, SUM(is_latest), COUNT(*), SUM(size),"
                " SUM(original_size) FROM artifacts GROUP BY spec_name, type"
            )
            conn.execute(
                "UPDATE usage_grand SET (artifacts, versions, size, original_size) = (SELECT"
                " COALESCE(SUM(is_latest), 0), COUNT(*), COALESCE(SUM(size), 0),"
                " COALESCE(SUM(original_size), 0) FROM artifacts)"
            )
            for statement in _SCHEMA_INDEXES:
                conn.execute(statement)
            for trigger in _TRIGGERS:
                conn.execute(trigger)
            restore_insights_trigger(conn)
            compact_insights(conn)
            conn.execute(
                "INSERT OR REPLACE INTO index_state (name, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )
        return count

    # -- writes -----------------------------------------------------------------------

    @staticmethod
    def _insert(
        conn: sqlite3.Connection,
        meta: ArtifactMetadata,
        latest: bool = False,
        record: str | None = None,
        *,
        fresh: bool = False,
    ) -> None:
        """Insert or update the row of ``meta``; a new row starts with ``is_latest = latest``.

        ``record`` is ``meta.to_json()`` if the caller has it already. ``fresh``: no
        row of this version exists (the caller checked), so it has no tags or side
        rows to drop first.
        """
        conn.execute(
            "INSERT INTO artifacts (spec_name, task_id, type, version, created_at, size,"
            " original_size, retention_days, pinned, record, is_latest)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (spec_name, task_id, type, version) DO UPDATE SET"
            " created_at = excluded.created_at, size = excluded.size,"
            " original_size = excluded.original_size, retention_days = excluded.retention_days,"
            " pinned = excluded.pinned, record = excluded.record",
            (*_row_values(meta, record), int(latest)),
        )
        write_insights(conn, meta, fresh=fresh)
        key = (meta.spec_name, meta.task_id, meta.type.value, meta.version)
        if not fresh:
            conn.execute(
                "DELETE FROM tags WHERE spec_name=? AND task_id=? AND type=? AND version=?", key
            )
        if meta.tags:
            conn.executemany(
                "INSERT OR IGNORE INTO tags (tag, spec_name, task_id, type, version) "
                "VALUES (?,?,?,?,?)",
                [(tag, *key) for tag in meta.tags],
            )

    @staticmethod
    def _refresh_latest(conn: sqlite3.Connection, params: tuple[str, str, str]) -> None:
        """Mark the highest version of the artifact, and only it, as the latest.

        Rows already right are left alone: every rewritten row costs index pages
        in the commit.
        """
        where = "spec_name=? AND task_id=? AND type=?"
        top = f"(SELECT MAX(version) FROM artifacts WHERE {where})"
        for value, old, version_test in ((0, 1, "<"), (1, 0, "=")):
            conn.execute(
                f"UPDATE artifacts SET is_latest = {value} WHERE {where} AND is_latest = {old}"
                f" AND version {version_test} {top}",
                params + params,
            )

    def put(
        self,
        meta: ArtifactMetadata,
        *,
        remove_versions: Sequence[int] = (),
        record: str | None = None,
    ) -> None:
        """Insert or replace the row of ``meta``; drop ``remove_versions`` of the same artifact.

        ``record`` is ``meta.to_json()`` if the caller has it already. Threads that
        put rows at the same time share one transaction (a group commit, see
        :mod:`..group_commit`); each still gets its own row's error, and the row
        is committed when this returns.
        """
        if self._tx_thread == threading.get_ident():
            # Inside this thread's exclusive() block: join its transaction.
            with self._write() as conn:
                self._put_row(conn, meta, remove_versions, record)
            return
        self._puts.submit((meta, tuple(remove_versions), record))

    @property
    def put_commits(self) -> tuple[int, int]:
        """``(transactions, rows)`` that :meth:`put` and :meth:`put_many` committed."""
        return self._puts.batches, self._puts.items

    def put_many(
        self, rows: Sequence[tuple[ArtifactMetadata, Sequence[int], str | None]]
    ) -> list[ArtifactStoreError | None]:
        """:meth:`put` several rows in one transaction: ``(meta, remove_versions, record)``
        each; returns each row's error, or ``None`` once it is committed."""
        errors: list[ArtifactStoreError | None] = []
        for outcome in self._puts.outcomes([(m, tuple(v), r) for m, v, r in rows]):
            if isinstance(outcome, BaseException) and not isinstance(outcome, ArtifactStoreError):
                raise outcome  # not a row's fault (an interrupt, a bug): nothing to hand out
            errors.append(outcome)
        return errors

    def _put_batch(self, rows: list[_Put]) -> list[ArtifactStoreError | None]:
        """Commit queued rows in one transaction; a failing row is rolled back alone."""
        with self._write() as conn:
            if len(rows) == 1:
                self._put_row(conn, *rows[0])
                return [None]
            outcomes: list[ArtifactStoreError | None] = []
            for row in rows:
                conn.execute("SAVEPOINT put_row")
                try:
                    self._put_row(conn, *row)
                except (sqlite3.DatabaseError, OverflowError) as exc:
                    conn.execute("ROLLBACK TO put_row")
                    conn.execute("RELEASE put_row")
                    outcomes.append(_row_error(exc, self.path))
                else:
                    conn.execute("RELEASE put_row")
                    outcomes.append(None)
            return outcomes

    def _put_row(
        self,
        conn: sqlite3.Connection,
        meta: ArtifactMetadata,
        remove_versions: Sequence[int],
        record: str | None,
    ) -> None:
        """The statements of one :meth:`put`, as few as the row's case allows.

        A new highest version (every upload) needs no clean-up of old tags or side
        rows and only clears the previous latest flag; anything else (a re-indexed
        or older version) re-derives the flags in full.
        """
        params = (meta.spec_name, meta.task_id, meta.type.value)
        (top,) = conn.execute(
            "SELECT MAX(version) FROM artifacts WHERE spec_name=? AND task_id=? AND type=?",
            params,
        ).fetchone()
        newest = top is None or meta.version > top
        self._insert(conn, meta, latest=newest or meta.version >= top, record=record, fresh=newest)
        if remove_versions:
            self._delete_versions(conn, params, remove_versions)
        if not newest:
            self._refresh_latest(conn, params)
        elif top is not None and top not in remove_versions:
            conn.execute(
                "UPDATE artifacts SET is_latest = 0 WHERE spec_name=? AND task_id=? AND type=?"
                " AND is_latest = 1 AND version < ?",
                (*params, meta.version),
            )

    def remove(self, key: ArtifactKey, versions: Sequence[int] | None = None) -> None:
        """Drop the rows of ``versions`` of ``key`` (all versions when ``None``)."""
        self.remove_many([(key, versions)])

    def remove_many(self, removals: Sequence[tuple[ArtifactKey, Sequence[int] | None]]) -> None:
        """:meth:`remove` of several artifacts in one transaction (a cleanup batch)."""
        with self._write() as conn:
            for key, versions in removals:
                params = _key_params(key)
                if versions is None:
                    where = "spec_name=? AND task_id=? AND type=?"
                    conn.execute(f"DELETE FROM artifacts WHERE {where}", params)
                    conn.execute(f"DELETE FROM tags WHERE {where}", params)
                else:
                    self._delete_versions(conn, params, versions)
                    self._refresh_latest(conn, params)

    @staticmethod
    def _delete_versions(
        conn: sqlite3.Connection, params: tuple[str, str, str], versions: Sequence[int]
    ) -> None:
        where = "spec_name=? AND task_id=? AND type=? AND version=?"
        rows = [(*params, version) for version in versions]
        conn.executemany(f"DELETE FROM artifacts WHERE {where}", rows)
        conn.executemany(f"DELETE FROM tags WHERE {where}", rows)

    # -- reads ------------------------------------------------------------------------

    def get(self, key: ArtifactKey, version: int | None = None) -> ArtifactMetadata | None:
        """The row of ``version`` of ``key`` (the latest when ``None``).

        Every download starts here, so this spells out :meth:`_read` rather than
        entering a generator-based context manager (a tenth of the lookup).
        """
        params: tuple[Any, ...] = (key.spec_name, key.task_id, key.type.value)
        if version is None:
            sql = _GET_LATEST
        else:
            sql, params = _GET_VERSION, (*params, version)
        with self._lock:
            try:
                row = self._connect().execute(sql, params).fetchone()
            except sqlite3.DatabaseError as exc:
                raise _classify(exc, self.path) from exc
            except OverflowError as exc:
                raise _out_of_range(exc, self.path) from exc
        return None if row is None else decode_record(row[0])

    def versions(self, key: ArtifactKey) -> list[ArtifactMetadata]:
        """Every indexed version of ``key``, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT record FROM artifacts WHERE spec_name=? AND task_id=? AND type=? "
                "ORDER BY version",
                _key_params(key),
            ).fetchall()
        return [decode_record(row[0]) for row in rows]

    def search(self, query: SearchQuery) -> list[ArtifactMetadata]:
        """Rows matching every filter of ``query``, oldest first (``newest_first``: newest)."""
        clauses: list[str] = []
        params: list[Any] = []
        selective = query.task_id is not None or query.spec_name is not None or bool(query.tags)
        if query.latest_only:
            # Without statistics SQLite would walk the (is_latest, created_at) index, which
            # matches nearly every row, instead of a selective filter; the unary "+" keeps
            # that index for the queries it suits (date ranges, no filter).
            clauses.append("+a.is_latest = 1" if selective else "a.is_latest = 1")
        for column, value in (
            ("a.task_id", query.task_id),
            ("a.spec_name", query.spec_name),
            # Likewise the (type, created_at) index serves type + date queries only.
            (
                "+a.type" if selective else "a.type",
                query.artifact_type.value if query.artifact_type else None,
            ),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if query.created_after is not None:
            clauses.append("a.created_at >= ?")
            params.append(query.created_after.timestamp())
        if query.created_before is not None:
            clauses.append("a.created_at < ?")
            params.append(query.created_before.timestamp())
        if query.tags:
            marks = ",".join("?" * len(query.tags))
            needed = len(set(query.tags)) if query.match_all_tags else 1
            if query.task_id is not None or query.spec_name is not None:
                # Few candidate rows: count each one's matching tags.
                clauses.append(
                    "(SELECT COUNT(*) FROM tags t WHERE t.spec_name = a.spec_name AND "
                    "t.task_id = a.task_id AND t.type = a.type AND t.version = a.version "
                    f"AND t.tag IN ({marks})) >= ?"
                )
            else:
                # Tags are the filter: find the artifacts from the tags' (tag, ...) key.
                clauses.append(
                    "(a.spec_name, a.task_id, a.type, a.version) IN (SELECT spec_name, task_id,"
                    f" type, version FROM tags WHERE tag IN ({marks}) GROUP BY spec_name,"
                    " task_id, type, version HAVING COUNT(*) >= ?)"
                )
            params.extend(sorted(set(query.tags)))
            params.append(needed)
        columns = SORT_COLUMNS[query.sort]
        if query.after is not None:
            marks = ",".join("?" * len(columns))
            clauses.append(f"({','.join(columns)}) {'<' if query.newest_first else '>'} ({marks})")
            params.extend(query.after)
        if query.insights is not None and query.insights.active:
            # Content filters order by creation time (the facade allows no other sort).
            sql, params = insights_search_sql(
                clauses, params, query.insights, newest_first=query.newest_first, limit=query.limit
            )
        else:
            order = " DESC" if query.newest_first else ""
            sql = "SELECT a.record FROM artifacts a"
            if clauses:
                sql += " WHERE " + " AND ".join(clauses)
            sql += " ORDER BY " + ", ".join(f"{column}{order}" for column in columns)
            if query.limit is not None:
                sql += " LIMIT ?"
                params.append(query.limit)
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [decode_record(row[0]) for row in rows]

    def records_where(self, conditions: Sequence[Condition]) -> list[ArtifactMetadata]:
        """Versions matching any of ``conditions`` (each one scan), oldest first."""
        rows: list[tuple[float, str]] = []
        with self._read() as conn:
            for where, params in conditions:
                sql = f"SELECT created_at, record FROM artifacts WHERE {where}"
                rows += conn.execute(sql, params).fetchall()
        rows.sort(key=lambda row: row[0])
        return [decode_record(record) for _, record in rows]

    def usage_totals(self) -> list[tuple[str, str, int, int, int, int]]:
        """``(spec, type, artifacts, versions, stored bytes, original bytes)`` rows."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT spec_name, type, artifacts, versions, size, original_size"
                " FROM usage_totals ORDER BY spec_name, type"
            ).fetchall()
        return [(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]

    def usage_sums(self) -> tuple[int, int, int, int]:
        """``(artifacts, versions, stored bytes, original bytes)`` over the whole store.

        One row kept by triggers: constant cost whatever the number of artifacts or specs.
        """
        with self._read() as conn:
            row = conn.execute(
                "SELECT artifacts, versions, size, original_size FROM usage_grand WHERE id = 1"
            ).fetchone()
        return (0, 0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def stored_bytes(self) -> int:
        """Total stored bytes over every version (for quota checks)."""
        return self.usage_sums()[2]

    def keys(self) -> set[tuple[str, str, str, int]]:
        """``(spec, task, type, version)`` of every row, for consistency checks."""
        with self._read() as conn:
            rows = conn.execute("SELECT spec_name, task_id, type, version FROM artifacts")
            return {(r[0], r[1], r[2], int(r[3])) for r in rows}

    def record_page(
        self, after: tuple[str, str, str, int] | None, limit: int
    ) -> list[tuple[str, str, str, int, str]]:
        """Up to ``limit`` rows ``(spec, task, type, version, record)`` after ``after``, in
        key order: ``verify_all`` reads them beside its walk of the backend (see
        :func:`~..maintenance.verify.verify_store`). A page per call, so no statement
        stays open between calls."""
        with self._read() as conn:
            return read_record_page(conn, after, limit)

    def count(self) -> int:
        """Number of artifacts (latest versions) indexed."""
        with self._read() as conn:
            row = conn.execute("SELECT COUNT(*) FROM artifacts WHERE is_latest = 1").fetchone()
        return int(row[0])

    def describe(self) -> str:
        """``sqlite <path of the index file>``."""
        return f"sqlite {self.path}"

    def rebuild_progress(self) -> set[IndexKey]:
        """Nothing: a SQLite rebuild is one transaction, so there is never one to resume."""
        return set()

    @contextlib.contextmanager
    def claim(self, job: str, item: str) -> Iterator[bool]:
        """Always granted: one host only, and its processes exclude each other by the
        artifact locks."""
        yield True


def _row_error(exc: sqlite3.DatabaseError | OverflowError, path: Path) -> ArtifactStoreError:
    """The typed error of one row of a batch that failed alone (cause chained)."""
    error = _out_of_range(exc, path) if isinstance(exc, OverflowError) else _classify(exc, path)
    error.__cause__ = exc
    return error


def _out_of_range(exc: OverflowError, path: Path) -> InvalidInputError:
    """A number too large for an index column (callers check ranges; this is the backstop)."""
    return InvalidInputError(f"index {path}: a number is out of range: {exc}")


def _classify(exc: sqlite3.DatabaseError, path: Path) -> StorageError:
    message = str(exc)
    lowered = message.lower()
    if "full" in lowered:
        return StorageFullError(f"index {path}: {message}")
    if "readonly" in lowered or "read-only" in lowered:
        return StoragePermissionError(f"index {path}: {message}")
    damaged = (
        type(exc) is sqlite3.DatabaseError  # "file is not a database", "disk image is malformed"
        or "malformed" in lowered
        or "no such table" in lowered
        or "not a database" in lowered
    )
    if damaged:
        return IndexCorruptError(f"index {path} is damaged: {message}")
    return StorageError(f"index {path}: {message}")


def read_record_page(
    conn: sqlite3.Connection, after: tuple[str, str, str, int] | None, limit: int
) -> list[tuple[str, str, str, int, str]]:
    """Up to ``limit`` rows ``(spec, task, type, version, record)`` after ``after``."""
    sql = "SELECT spec_name, task_id, type, version, record FROM artifacts"
    params: tuple[Any, ...] = ()
    if after is not None:
        sql += " WHERE (spec_name, task_id, type, version) > (?, ?, ?, ?)"
        params = after
    sql += " ORDER BY spec_name, task_id, type, version LIMIT ?"
    return [
        (r[0], r[1], r[2], int(r[3]), r[4]) for r in conn.execute(sql, (*params, limit)).fetchall()
    ]


class RecordPages:
    """:meth:`SQLiteIndex.record_page` over a read-only connection of its own: what a
    worker process of ``verify_all`` reads beside its part of the walk. It never
    writes, creates or migrates the file; any failure is an :class:`IndexCorruptError`
    (the rows are only a shortcut: every record is then checked fully)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def record_page(
        self, after: tuple[str, str, str, int] | None, limit: int
    ) -> list[tuple[str, str, str, int, str]]:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    f"{self.path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
                )
            return read_record_page(self._conn, after, limit)
        except sqlite3.Error as exc:
            raise IndexCorruptError(f"index {self.path}: {exc}") from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


#: How long to wait between tries of switching a new index to WAL.
WAL_RETRY_S = 0.01


def _set_wal(conn: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, waiting while another connection writes.

    On a new file (not WAL yet) the switch needs an exclusive lock, and SQLite
    answers "database is locked" at once, without its busy handler, while
    another process holds a write transaction there: several processes opening
    a new store together would fail. It is tried again for up to
    :data:`BUSY_TIMEOUT_S`, as the busy handler would have waited.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(WAL_RETRY_S)
