"""The shared index: one PostgreSQL database in front of one bucket, for many hosts.

Every host of a fleet points ``index_url`` at the same database, so an upload
committed anywhere is in every host's search and usage at once. The database is
still only a cache of the JSON records in the bucket (``rebuild_index`` recreates
it). psycopg 3 with a connection pool; every value travels as a server-side
parameter, never spliced into SQL.

Writes are short transactions; each holds the advisory lock
:data:`~.pg_schema.WRITE_LOCK` shared, and :meth:`PostgresIndex.exclusive` holds
it exclusively, so a block of index reads and writes sees no other writer of any
host. A lost connection (database restarted, network cut) is retried a few times
for the idempotent operations here; an unreachable database raises
:class:`IndexUnavailableError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

import psycopg
import psycopg_pool

from ..exceptions import ConfigError, IndexUnavailableError, StorageError
from ..models import ArtifactMetadata
from ..naming import ArtifactKey
from .base import Condition, IndexKey, SearchQuery, UsageRow, UsageSums, redact_url
from .insights import InsightFilter, touches_regex
from .pg_schema import WRITE_LOCK, ensure_failing_test_index, flush_pending_entries, migrate
from .query import SORT_COLUMNS
from .rows import decode_record

__all__ = ["IndexUnavailableError", "PostgresIndex", "active_reservation"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Connections per process in the query pool (locks held by uploads use their own).
POOL_SIZE = 8  # at least 2 * base.SHARED_JOB_WORKERS + 1: claims need two each

#: How often an idempotent operation is tried again after losing its connection.
RECONNECT_ATTEMPTS = 4
RECONNECT_DELAY_S = 0.25
#: Rows per statement when a rebuild loads records.
BULK_BATCH = 500

_COLUMNS = (
    "spec_name, task_id, type, version, created_at, size, original_size,"
    " retention_days, pinned, tags, record, summary_kind, summary_failed,"
    " summary_has_errors, paths, failing_tests"
)
_KEY = "spec_name = %s AND task_id = %s AND type = %s"


def _upsert(latest: str) -> str:
    """Insert-or-update of one row; ``latest`` is the SQL of a new row's ``is_latest``."""
    return (
        f"INSERT INTO artifacts ({_COLUMNS}, is_latest, generation)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        f" {latest},"
        " COALESCE((SELECT value::bigint FROM index_state WHERE name = 'generation'), 0))"
        " ON CONFLICT (spec_name, task_id, type, version) DO UPDATE SET"
        " created_at = excluded.created_at, size = excluded.size,"
        " original_size = excluded.original_size, retention_days = excluded.retention_days,"
        " pinned = excluded.pinned, tags = excluded.tags, record = excluded.record,"
        " summary_kind = excluded.summary_kind, summary_failed = excluded.summary_failed,"
        " summary_has_errors = excluded.summary_has_errors, paths = excluded.paths,"
        " failing_tests = excluded.failing_tests, generation = excluded.generation"
    )


#: A rebuild's rows: latest flags are set once at its end.
_BULK_UPSERT = _upsert("false")
#: An upload's row: the latest unless a higher version is indexed already.
_PUT_UPSERT = _upsert(f"NOT EXISTS (SELECT 1 FROM artifacts WHERE {_KEY} AND version > %s)")
#: The quota reservation of the upload this thread is committing (see pg_coordination):
#: :meth:`PostgresIndex.put` releases it in the transaction that adds the row.
_reservation: ContextVar[dict[str, int] | None] = ContextVar("necrocode_reservation", default=None)


def active_reservation() -> ContextVar[dict[str, int] | None]:
    """The context variable naming the reservation that the next ``put`` releases."""
    return _reservation


def _quiet_pool_logger() -> None:
    """Silence the pool's reconnect warnings unless the application set a level: each
    failed attempt is logged there, and IndexUnavailableError says it once."""
    pool_log = logging.getLogger("psycopg.pool")
    if pool_log.level == logging.NOTSET:
        pool_log.setLevel(logging.CRITICAL)


def _row(meta: ArtifactMetadata, record: str | None = None) -> tuple[Any, ...]:
    summary = meta.summary
    failing = [] if summary is None else summary.failing_tests()
    return (
        meta.spec_name,
        meta.task_id,
        meta.type.value,
        meta.version,
        meta.created_at.timestamp(),
        meta.stored_size,  # column "size": stored bytes
        meta.size,  # column "original_size": bytes uploaded
        meta.retention_days,
        meta.pinned,
        list(meta.tags),
        meta.to_json() if record is None else record,
        None if summary is None else summary.kind,
        None if summary is None else summary.failed,
        None if summary is None else summary.has_errors,
        [] if summary is None else sorted(set(summary.paths())),
        "\n".join(failing) if failing else None,
    )


def _key(key: ArtifactKey) -> tuple[str, str, str]:
    return (key.spec_name, key.task_id, key.type.value)


def _records(rows: Iterable[tuple[Any, ...]]) -> list[ArtifactMetadata]:
    return [decode_record(row[0]) for row in rows]


class PostgresIndex:
    """The index of one store (``root_uri``) in a PostgreSQL database."""

    shared = True
    placeholder = "%s"

    def __init__(
        self,
        url: str,
        root_uri: str,
        *,
        connect_timeout: float = 10.0,
        reservation_timeout: float = 900.0,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.url = url
        self.root_uri = root_uri
        self.connect_timeout = connect_timeout
        self.reservation_timeout = reservation_timeout
        self.pool_size = pool_size
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._pid = 0
        self._guard = threading.Lock()
        self._local = threading.local()
        self._ready = False

    # -- connections ------------------------------------------------------------------

    def describe(self) -> str:
        """``postgresql://user@host:port/db`` (password removed)."""
        return redact_url(self.url)

    def unavailable(self, exc: BaseException, *, retryable: bool = True) -> IndexUnavailableError:
        """The typed, one-line error for a database that cannot be reached."""
        if isinstance(exc, psycopg_pool.PoolTimeout):
            # The pool only says it waited: one direct attempt tells why.
            try:
                psycopg.connect(self.url, **self.connection_kwargs()).close()
            except psycopg.Error as direct:
                exc = direct
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        return IndexUnavailableError(
            f"index database {self.describe()} is unreachable: {reason}", retryable=retryable
        )

    def connection_kwargs(self) -> dict[str, Any]:
        """Options of every connection (autocommit; transactions are explicit)."""
        return {
            "autocommit": True,
            "connect_timeout": max(1, round(self.connect_timeout)),
            "application_name": "necrocode-artifact-store",
        }

    def pool(self) -> psycopg_pool.ConnectionPool:
        """This process's pool, opened (and the schema migrated) on first use."""
        with self._guard:
            if self._pool is not None and self._pid == os.getpid():
                return self._pool
            # A pool must not cross fork(): the child opens its own.
            _quiet_pool_logger()
            pool = psycopg_pool.ConnectionPool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                kwargs=self.connection_kwargs(),
                timeout=self.connect_timeout,
                open=False,
                name="necrocode-index",
            )
            pool.open(wait=False)
            self._pool, self._pid, self._ready = pool, os.getpid(), False
        if not self._ready:
            self._prepare(pool)
        return pool

    def _prepare(self, pool: psycopg_pool.ConnectionPool) -> None:
        try:
            with pool.connection() as conn:
                migrate(conn)
                self._claim_store(conn)
        except psycopg_pool.PoolTimeout as exc:
            raise self.unavailable(exc, retryable=False) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self.unavailable(exc) from exc
        self._ready = True

    def _claim_store(self, conn: psycopg.Connection[Any]) -> None:
        """Bind the database to this store's root on first use; refuse another store's."""
        conn.execute(
            "INSERT INTO index_state (name, value) VALUES ('root_uri', %s)"
            " ON CONFLICT (name) DO NOTHING",
            (self.root_uri,),
        )
        row = conn.execute("SELECT value FROM index_state WHERE name = 'root_uri'").fetchone()
        if row is not None and row[0] != self.root_uri:
            raise ConfigError(
                f"index_url: database {self.describe()} indexes the store {row[0]}, not "
                f"{self.root_uri}; give each store its own database",
                key="index_url",
            )

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (the one of the enclosing :meth:`exclusive` block, if any)."""
        joined: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if joined is not None:
            yield joined
            return
        try:
            with self.pool().connection() as conn:
                yield conn
        except psycopg.errors.UndefinedTable as exc:
            # The database was dropped and created again under us: migrate on next use.
            self._ready = False
            raise self.unavailable(exc) from exc
        except psycopg_pool.PoolTimeout as exc:
            # Waited the whole connect timeout already: not worth another try.
            raise self.unavailable(exc, retryable=False) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self.unavailable(exc) from exc
        except psycopg.Error as exc:
            raise StorageError(f"index database {self.describe()}: {exc}") from exc

    def _run(self, operation: Callable[[psycopg.Connection[Any]], T], *, write: bool) -> T:
        """Run an idempotent ``operation``, reconnecting a few times if the link drops."""
        if getattr(self._local, "conn", None) is not None:
            with self.connection() as conn:
                return operation(conn)
        # A restart of the server cuts every pooled connection: retry on fresh ones for
        # up to the connect timeout (at least RECONNECT_ATTEMPTS tries).
        deadline = time.monotonic() + self.connect_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.connection() as conn:
                    if not write:
                        return operation(conn)
                    # Pipelined: a write whose statements need no answers in between
                    # (an upload's row) costs one round trip.
                    with conn.pipeline(), conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (WRITE_LOCK,))
                        return operation(conn)
            except IndexUnavailableError as exc:
                if not exc.retryable or (
                    attempt >= RECONNECT_ATTEMPTS and time.monotonic() >= deadline
                ):
                    raise
                time.sleep(min(RECONNECT_DELAY_S * attempt, 1.0))

    def close(self) -> None:
        """Close this process's pool."""
        with self._guard:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None

    def destroy(self) -> None:
        """Empty every table of this index (after damage); the schema stays."""

        def wipe(conn: psycopg.Connection[Any]) -> None:
            conn.execute("TRUNCATE artifacts, artifact_paths, usage_totals")
            conn.execute("UPDATE usage_grand SET artifacts=0, versions=0, size=0, original_size=0")
            conn.execute("DELETE FROM index_state WHERE name IN ('built', 'rebuilding')")

        self._run(wipe, write=True)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Keep every other index writer (of every host) out for the block; the block's
        index operations share one transaction, committed at its end."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with self.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextlib.contextmanager
    def claim(self, job: str, item: str) -> Iterator[bool]:
        """Claim a maintenance batch: its ``work_claims`` row, locked ``FOR UPDATE SKIP
        LOCKED`` by a transaction open for the block (rolled back if the host dies)."""
        with self.connection() as conn:
            # Committed on its own: an uncommitted insert would make other hosts wait.
            conn.execute(
                "INSERT INTO work_claims (job, item) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (job, item),
            )
            with conn.transaction():
                yield from self._claimed(conn, job, item)

    @staticmethod
    def _claimed(conn: psycopg.Connection[Any], job: str, item: str) -> Iterator[bool]:
        got = conn.execute(
            "SELECT 1 FROM work_claims WHERE job = %s AND item = %s FOR UPDATE SKIP LOCKED",
            (job, item),
        ).fetchone()
        if got is None:
            yield False
            return
        yield True
        conn.execute("DELETE FROM work_claims WHERE job = %s AND item = %s", (job, item))

    # -- state ------------------------------------------------------------------------

    def is_built(self) -> bool:
        """Whether a rebuild finished since the index was created or emptied."""
        row = self._run(
            lambda conn: conn.execute(
                "SELECT value FROM index_state WHERE name = 'built'"
            ).fetchone(),
            write=False,
        )
        return row is not None

    def rebuild_progress(self) -> set[IndexKey]:
        """The versions an unfinished rebuild already loaded (it resumes after them)."""

        def loaded(conn: psycopg.Connection[Any]) -> set[IndexKey]:
            state = conn.execute(
                "SELECT value FROM index_state WHERE name = 'rebuilding'"
            ).fetchone()
            if state is None:
                return set()
            rows = conn.execute(
                "SELECT spec_name, task_id, type, version FROM artifacts WHERE generation = %s",
                (int(state[0]),),
            )
            return {(r[0], r[1], r[2], int(r[3])) for r in rows}

        return self._run(loaded, write=False)

    def replace_all(self, records: Iterable[ArtifactMetadata]) -> int:
        """Fill the index from ``records`` (an iterator, consumed in batches), then drop
        every row the records did not bring.

        Resumable: each batch commits with a new rebuild generation; a rebuild
        that stops half-way is continued by the next (its rows are kept, see
        :meth:`rebuild_progress`). Uploads committed meanwhile take the new
        generation too, so they survive the final sweep.
        """

        def begin(conn: psycopg.Connection[Any]) -> int:
            state = conn.execute(
                "SELECT value FROM index_state WHERE name = 'rebuilding'"
            ).fetchone()
            if state is not None:
                return int(state[0])
            row = conn.execute(
                "SELECT COALESCE(MAX(value::bigint), 0) + 1 FROM index_state"
                " WHERE name = 'generation'"
            ).fetchone()
            generation = int(row[0]) if row else 1
            for name in ("generation", "rebuilding"):
                conn.execute(
                    "INSERT INTO index_state (name, value) VALUES (%s, %s)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (name, str(generation)),
                )
            conn.execute("DELETE FROM index_state WHERE name = 'built'")
            return generation

        generation = self._run(begin, write=True)
        batch: list[tuple[Any, ...]] = []
        for meta in records:
            batch.append(_row(meta))
            if len(batch) >= BULK_BATCH:
                self._load_batch(batch)
                batch = []
        if batch:
            self._load_batch(batch)

        def finish(conn: psycopg.Connection[Any]) -> int:
            # Recompute latest flags and totals once, with writers kept out meanwhile.
            conn.execute("LOCK TABLE artifacts IN SHARE ROW EXCLUSIVE MODE")
            conn.execute("SET LOCAL necrocode.bulk_load = 'on'")
            conn.execute("DELETE FROM artifacts WHERE generation <> %s", (generation,))
            conn.execute(
                "UPDATE artifacts a SET is_latest = (a.version = m.top) FROM ("
                " SELECT spec_name, task_id, type, MAX(version) AS top FROM artifacts"
                " GROUP BY spec_name, task_id, type) m"
                " WHERE a.spec_name = m.spec_name AND a.task_id = m.task_id AND a.type = m.type"
                " AND a.is_latest IS DISTINCT FROM (a.version = m.top)"
            )
            conn.execute("DELETE FROM usage_totals")
            conn.execute(
                "INSERT INTO usage_totals (spec_name, type, artifacts, versions, size,"
                " original_size) SELECT spec_name, type, COUNT(*) FILTER (WHERE is_latest),"
                " COUNT(*), SUM(size), SUM(original_size) FROM artifacts"
                " GROUP BY spec_name, type"
            )
            conn.execute(
                "UPDATE usage_grand SET artifacts = t.a, versions = t.v, size = t.s,"
                " original_size = t.o FROM (SELECT COALESCE(SUM(artifacts), 0) AS a,"
                " COALESCE(SUM(versions), 0) AS v, COALESCE(SUM(size), 0) AS s,"
                " COALESCE(SUM(original_size), 0) AS o FROM usage_totals) t WHERE id = 1"
            )
            conn.execute("DELETE FROM index_state WHERE name = 'rebuilding'")
            conn.execute(
                "INSERT INTO index_state (name, value) VALUES ('built', %s)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (str(generation),),
            )
            # The trigram index, if pg_trgm has become available since the migration.
            ensure_failing_test_index(conn)
            flush_pending_entries(conn)
            # Fresh statistics, so the planner picks the right index at once.
            conn.execute("ANALYZE artifacts")
            conn.execute("ANALYZE artifact_paths")
            (count,) = conn.execute("SELECT COUNT(*) FROM artifacts").fetchone() or (0,)
            return int(count)

        return self._run(finish, write=True)

    def _load_batch(self, rows: list[tuple[Any, ...]]) -> None:
        def load(conn: psycopg.Connection[Any]) -> None:
            conn.execute("SET LOCAL necrocode.bulk_load = 'on'")
            with conn.cursor() as cur:
                cur.executemany(_BULK_UPSERT, rows)

        self._run(load, write=True)

    # -- writes -----------------------------------------------------------------------

    def put(
        self,
        meta: ArtifactMetadata,
        *,
        remove_versions: Sequence[int] = (),
        record: str | None = None,
    ) -> None:
        """Insert or replace the row of ``meta``; drop ``remove_versions``; release the
        quota reservation of the upload in progress (see :mod:`.pg_coordination`)."""
        params = (meta.spec_name, meta.task_id, meta.type.value)
        state = _reservation.get()
        reservation = None if state is None else state.get("id")

        def write(conn: psycopg.Connection[Any]) -> None:
            conn.execute(_PUT_UPSERT, (*_row(meta, record), *params, meta.version))
            if remove_versions:
                conn.execute(
                    f"DELETE FROM artifacts WHERE {_KEY} AND version = ANY(%s)",
                    (*params, list(remove_versions)),
                )
            self._refresh_latest(conn, params)
            if reservation is not None:
                conn.execute("DELETE FROM reservations WHERE id = %s", (reservation,))

        self._run(write, write=True)

    @staticmethod
    def _refresh_latest(conn: psycopg.Connection[Any], params: tuple[str, str, str]) -> None:
        """Mark the highest version of the artifact, and only it, as the latest."""
        conn.execute(
            f"UPDATE artifacts SET is_latest = (version = (SELECT MAX(version) FROM artifacts"
            f" WHERE {_KEY})) WHERE {_KEY} AND is_latest IS DISTINCT FROM"
            f" (version = (SELECT MAX(version) FROM artifacts WHERE {_KEY}))",
            params * 3,
        )

    def remove(self, key: ArtifactKey, versions: Sequence[int] | None = None) -> None:
        """Drop the rows of ``versions`` of ``key`` (every version when ``None``)."""
        params = _key(key)

        def write(conn: psycopg.Connection[Any]) -> None:
            if versions is None:
                conn.execute(f"DELETE FROM artifacts WHERE {_KEY}", params)
                return
            conn.execute(
                f"DELETE FROM artifacts WHERE {_KEY} AND version = ANY(%s)",
                (*params, list(versions)),
            )
            self._refresh_latest(conn, params)

        self._run(write, write=True)

    # -- reads ------------------------------------------------------------------------

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._run(lambda conn: conn.execute(sql, params).fetchall(), write=False)

    def get(self, key: ArtifactKey, version: int | None = None) -> ArtifactMetadata | None:
        """The row of ``version`` of ``key`` (the latest when ``None``)."""
        if version is None:
            rows = self._fetch(
                f"SELECT record FROM artifacts WHERE {_KEY} AND is_latest", _key(key)
            )
        else:
            rows = self._fetch(
                f"SELECT record FROM artifacts WHERE {_KEY} AND version = %s",
                (*_key(key), version),
            )
        return _records(rows)[0] if rows else None

    def versions(self, key: ArtifactKey) -> list[ArtifactMetadata]:
        """Every indexed version of ``key``, oldest first."""
        return _records(
            self._fetch(f"SELECT record FROM artifacts WHERE {_KEY} ORDER BY version", _key(key))
        )

    def search(self, query: SearchQuery) -> list[ArtifactMetadata]:
        """Rows matching every filter of ``query``, oldest first.

        Never a prepared statement: psycopg prepares a query after its fifth run, and
        PostgreSQL may then plan it once for any values. A search's best plan depends on
        its values (a tag on every row or on a few; a spec of 20 rows), and a generic
        plan took 14 ms where the planned one takes 0.3 ms (B9, combined search)."""
        sql, params = search_sql(query)
        rows = self._run(
            lambda conn: conn.execute(sql, params, prepare=False).fetchall(), write=False
        )
        return _records(rows)

    def records_where(self, conditions: Sequence[Condition]) -> list[ArtifactMetadata]:
        """Versions matching any of ``conditions``, oldest first (one round trip)."""
        if not conditions:
            return []
        sql = " UNION ALL ".join(
            f"SELECT created_at, record FROM artifacts WHERE {where}" for where, _ in conditions
        )
        params = [value for _, values in conditions for value in values]
        rows = self._fetch(sql + " ORDER BY created_at", params)
        return [ArtifactMetadata.from_trusted_json(row[1]) for row in rows]

    def usage_totals(self) -> list[UsageRow]:
        """Usage per spec and type, ordered by spec then type."""
        rows = self._fetch(
            "SELECT spec_name, type, artifacts, versions, size, original_size"
            " FROM usage_totals ORDER BY spec_name, type",
            (),
        )
        return [(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]

    def usage_sums(self) -> UsageSums:
        """Usage over the whole store (one row, kept by a trigger)."""
        rows = self._fetch(
            "SELECT artifacts, versions, size, original_size FROM usage_grand WHERE id = 1", ()
        )
        if not rows:
            return (0, 0, 0, 0)
        r = rows[0]
        return (int(r[0]), int(r[1]), int(r[2]), int(r[3]))

    def stored_bytes(self) -> int:
        """Stored bytes over every version."""
        return self.usage_sums()[2]

    def keys(self) -> set[IndexKey]:
        """Every indexed version."""
        rows = self._fetch("SELECT spec_name, task_id, type, version FROM artifacts", ())
        return {(r[0], r[1], r[2], int(r[3])) for r in rows}

    def count(self) -> int:
        """Number of artifacts (latest versions) indexed."""
        rows = self._fetch("SELECT COUNT(*) FROM artifacts WHERE is_latest", ())
        return int(rows[0][0])


def search_sql(query: SearchQuery) -> tuple[str, list[Any]]:
    """The statement and parameters of ``query``."""
    clauses: list[str] = []
    params: list[Any] = []
    if query.latest_only:
        clauses.append("is_latest")
    for column, value in (
        ("task_id", query.task_id),
        ("spec_name", query.spec_name),
        ("type", query.artifact_type.value if query.artifact_type else None),
    ):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if query.created_after is not None:
        clauses.append("created_at >= %s")
        params.append(query.created_after.timestamp())
    if query.created_before is not None:
        clauses.append("created_at < %s")
        params.append(query.created_before.timestamp())
    if query.tags:
        clauses.append("tags @> %s::text[]" if query.match_all_tags else "tags && %s::text[]")
        params.append(sorted(set(query.tags)))
    if query.insights is not None and query.insights.active:
        _insight_clauses(query.insights, clauses, params)
    # The sort of the SQLite index (sort_key_of), keyset-paged after query.after.
    columns = [column.removeprefix("a.") for column in SORT_COLUMNS[query.sort]]
    if query.after is not None:
        marks = ", ".join("%s" for _ in columns)
        clauses.append(f"({', '.join(columns)}) {'<' if query.newest_first else '>'} ({marks})")
        params.extend(query.after)
    sql = "SELECT record FROM artifacts"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    order = " DESC" if query.newest_first else ""
    sql += " ORDER BY " + ", ".join(f"{column}{order}" for column in columns)
    if query.limit is not None:
        sql += " LIMIT %s"
        params.append(query.limit)
    return sql, params


def _insight_clauses(insight: InsightFilter, clauses: list[str], params: list[Any]) -> None:
    """The content filters (see :mod:`.insights`): only summarised versions match."""
    clauses.append("summary_kind IS NOT NULL")
    if insight.failed is not None:
        clauses.append("summary_failed = %s")
        params.append(insight.failed)
    if insight.has_errors is not None:
        clauses.append("summary_has_errors = %s")
        params.append(insight.has_errors)
    if insight.test is not None:
        needle = insight.test.strip()
        word = _selective_word(needle)
        if word is None:
            # LIKE (its wildcards escaped), so the trigram index can serve it where it exists.
            clauses.append("lower(failing_tests) LIKE lower(%s) ESCAPE '\\'")
            params.append(f"%{_like_escaped(needle)}%")
        else:
            # The index looks up the trigrams of one distinctive word only; the whole
            # substring is checked on the few rows that hold it (see _selective_word).
            clauses.append("lower(failing_tests) LIKE lower(%s)")
            clauses.append("strpos(lower(failing_tests), lower(%s)) > 0")
            params.extend([f"%{word}%", needle])
    if insight.touches is not None:
        # The glob's rule as a PostgreSQL regular expression (the Python one uses only
        # constructs both dialects read alike), anchored for a full match.
        # The literal prefix makes it a range scan of artifact_paths.
        where = ["path ~ %s"]
        values: list[Any] = [f"^(?:{touches_regex(insight.touches).pattern})$"]
        prefix = _literal_prefix(insight.touches)
        if prefix:
            where[:0] = ["path >= %s", "path < %s"]
            values[:0] = [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
        clauses.append(
            "(spec_name, task_id, type, version) IN (SELECT spec_name, task_id, type,"
            f" version FROM artifact_paths WHERE {' AND '.join(where)})"
        )
        params.extend(values)


#: Runs of letters and digits: what pg_trgm makes trigrams of (other characters separate).
_WORD_RE = re.compile(r"[^\W_]+")


def _selective_word(needle: str) -> str | None:
    """The word of a multi-word ``test=`` substring for the trigram index to look up.

    A GIN lookup reads the whole posting list of every trigram of the pattern, and
    the parts test ids share (``test``, ``case``, ``tests/``, ``.py::``) are in
    every failing row: a full-pattern lookup grows with the failing rows. One word's
    trigrams are enough to find the candidates, and the longest word (the last of
    equals: a test's own name ends its id) is the one least likely to be shared.
    ``None`` when the needle is a single word, or has none of three characters or
    more (a trigram lookup needs three): the whole needle is looked up then.
    """
    words: list[str] = _WORD_RE.findall(needle)
    if not words:
        return None
    word = max(reversed(words), key=len)
    if len(word) < 3 or word == needle:
        return None
    return word


def _like_escaped(text: str) -> str:
    """``text`` as a LIKE pattern matching itself (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _literal_prefix(pattern: str) -> str:
    cut = min((pattern.find(c) for c in "*?" if c in pattern), default=len(pattern))
    return pattern[:cut]
