"""Content insights in the SQLite index: side tables, the triggers that fill them, queries.

Public API::

    InsightFilter(failed=None, test=None, touches=None, has_errors=None)
        .build(...)  validating constructor (InvalidInputError on a bad value)
        .active      whether any filter is set
    install_insights(conn)              # DDL, triggers, SQL function; once per connection
    compact_insights(conn)              # merge the trigram index (after a bulk fill)
    write_insights(conn, meta)          # the side rows of one version (row writer calls it)
    insights_search_sql(clauses, params, insight, newest_first=, limit=) -> (sql, params)
    touches_regex(pattern) -> re.Pattern  # the glob rule of ``touches``

The summary lives in each row's JSON ``record`` (``$.summary``). What searches
need is copied into side tables in the same transaction as the row: by
:func:`write_insights`, which the index's row writer calls for every insert or
update (uploads, tag changes, ``replace_all`` rebuilds from the records), and by
a delete trigger on ``artifacts``. When this schema is new to an index, the
tables are filled from the rows' JSON in one SQL pass:

- ``insights``: one row per summarised version with ``failed`` and
  ``has_errors``, indexed with ``created_at`` so "newest failing" walks an
  index and stops at ``limit``;
- ``insight_paths``: every changed path (old and new) of a diff, keyed by path,
  so ``touches="auth/**"`` is a range scan over the pattern's literal prefix;
- ``insight_tests`` + ``insight_tests_fts``: the failing test ids of each
  version (one row, ids joined by newlines) and an FTS5 trigram index over
  them, so a substring of three or more characters is an index lookup
  (shorter ones scan the failing ids, never the artifacts).

``touches`` globs: ``*`` and ``?`` stay inside one path segment, ``**`` crosses
segments (``**/x.py`` matches ``x.py`` at any depth), a pattern without
wildcards matches that path or anything below it (``src/auth``). ``test`` is a
case-insensitive substring of a failing test id.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..exceptions import InvalidInputError
from ..models import ArtifactMetadata

__all__ = [
    "INSIGHTS_SCHEMA_VERSION",
    "InsightFilter",
    "clear_insights",
    "compact_insights",
    "insert_insight_values",
    "insert_insights_bulk",
    "insight_values",
    "insights_search_sql",
    "install_insights",
    "restore_insights_trigger",
    "touches_regex",
    "write_insights",
]

#: Bumped when the side tables change; an index with an older one refills them.
INSIGHTS_SCHEMA_VERSION = 1
MAX_PATTERN_CHARS = 1024
#: Substrings shorter than this cannot use the trigram index.
TRIGRAM = 3

_KEY = "spec_name, task_id, type, version"

_TABLES = """
CREATE TABLE IF NOT EXISTS insights (
    spec_name      TEXT    NOT NULL,
    task_id        TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    created_at     REAL    NOT NULL,
    kind           TEXT    NOT NULL,
    failed         INTEGER,
    has_errors     INTEGER NOT NULL,
    parser_version INTEGER NOT NULL,
    PRIMARY KEY (spec_name, task_id, type, version)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS insights_by_failed ON insights (failed, created_at)
    WHERE failed IS NOT NULL;
CREATE INDEX IF NOT EXISTS insights_by_errors ON insights (has_errors, created_at);
CREATE TABLE IF NOT EXISTS insight_paths (
    path      TEXT    NOT NULL,
    spec_name TEXT    NOT NULL,
    task_id   TEXT    NOT NULL,
    type      TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (path, spec_name, task_id, type, version)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS insight_paths_by_artifact
    ON insight_paths (spec_name, task_id, type, version);
CREATE TABLE IF NOT EXISTS insight_tests (
    id        INTEGER PRIMARY KEY,
    test_ids  TEXT    NOT NULL,
    spec_name TEXT    NOT NULL,
    task_id   TEXT    NOT NULL,
    type      TEXT    NOT NULL,
    version   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS insight_tests_by_artifact
    ON insight_tests (spec_name, task_id, type, version);
"""

_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS insight_tests_fts USING fts5(
    test_ids, content='insight_tests', content_rowid='id', tokenize='trigram');
CREATE TRIGGER IF NOT EXISTS insight_tests_fts_add AFTER INSERT ON insight_tests BEGIN
    INSERT INTO insight_tests_fts (rowid, test_ids) VALUES (new.id, new.test_ids);
END;
CREATE TRIGGER IF NOT EXISTS insight_tests_fts_drop AFTER DELETE ON insight_tests BEGIN
    INSERT INTO insight_tests_fts (insight_tests_fts, rowid, test_ids)
    VALUES ('delete', old.id, old.test_ids);
END;
"""


def _fill(row: str) -> str:
    """Statements adding the side rows of the artifacts row ``row`` (``new`` or a table)."""
    rec = f"{row}.record"
    key = f"{row}.spec_name, {row}.task_id, {row}.type, {row}.version"
    return f"""
    INSERT OR REPLACE INTO insights ({_KEY}, created_at, kind, failed, has_errors, parser_version)
    SELECT {key}, {row}.created_at, json_extract({rec}, '$.summary.kind'),
        json_extract({rec}, '$.summary.failed'),
        coalesce(json_extract({rec}, '$.summary.has_errors'), 0),
        coalesce(json_extract({rec}, '$.summary.parser_version'), 0)
    {{source}} WHERE json_type({rec}, '$.summary') = 'object';
    INSERT OR IGNORE INTO insight_paths (path, {_KEY})
    SELECT json_extract(f.value, '$.path'), {key}
    {{source}}, json_each({rec}, '$.summary.diff.files') AS f
    WHERE json_extract(f.value, '$.path') IS NOT NULL;
    INSERT OR IGNORE INTO insight_paths (path, {_KEY})
    SELECT json_extract(f.value, '$.old_path'), {key}
    {{source}}, json_each({rec}, '$.summary.diff.files') AS f
    WHERE json_extract(f.value, '$.old_path') IS NOT NULL;
    INSERT INTO insight_tests (test_ids, {_KEY})
    SELECT * FROM (
        SELECT (SELECT group_concat(t.value, char(10))
                FROM json_each({rec}, '$.summary.test.failing') AS t) AS ids, {key}
        {{source}}
    ) WHERE ids IS NOT NULL;
    """


def _clear(row: str) -> str:
    where = (
        f"spec_name = {row}.spec_name AND task_id = {row}.task_id AND type = {row}.type"
        f" AND version = {row}.version"
    )
    return "".join(
        f"DELETE FROM {table} WHERE {where};\n"
        for table in ("insights", "insight_paths", "insight_tests")
    )


# Deleting an artifacts row (one version, an artifact, a rebuild) drops its side
# rows in the same statement. Inserts and updates go through write_insights(),
# called by the index's one row-writing method: computing the side rows from the
# Summary object is several times cheaper than having SQLite parse the record's
# JSON once per json_extract/json_each.
#: One statement (for ``execute`` inside a transaction): a trigger body is part of it.
_ON_DELETE = f"""CREATE TRIGGER IF NOT EXISTS insights_on_delete AFTER DELETE ON artifacts BEGIN
{_clear("old")}
END"""

_TRIGGERS = f"""
DROP TRIGGER IF EXISTS insights_on_insert;
DROP TRIGGER IF EXISTS insights_on_update;
{_ON_DELETE};
"""


def clear_insights(conn: sqlite3.Connection) -> None:
    """Empty the side tables at once and drop the trigger that clears them row by row
    (inside a rebuild's transaction, before ``DELETE FROM artifacts``: without any
    trigger on it, SQLite empties the table without visiting its rows).
    :func:`restore_insights_trigger` puts the trigger back before the commit."""
    conn.execute("DROP TRIGGER IF EXISTS insights_on_delete")
    for table in ("insights", "insight_paths", "insight_tests"):
        conn.execute(f"DELETE FROM {table}")


def restore_insights_trigger(conn: sqlite3.Connection) -> None:
    """Re-create the trigger :func:`clear_insights` dropped."""
    conn.execute(_ON_DELETE)


_WHERE_KEY = "spec_name = ? AND task_id = ? AND type = ? AND version = ?"


def write_insights(
    conn: sqlite3.Connection, meta: ArtifactMetadata, *, fresh: bool = False
) -> None:
    """Replace the side rows of ``meta``'s version (inside the caller's transaction).

    ``fresh``: the version's row was just created, so it has no side rows to drop.
    """
    key = (meta.spec_name, meta.task_id, meta.type.value, meta.version)
    if not fresh:
        for table in ("insights", "insight_paths", "insight_tests"):
            conn.execute(f"DELETE FROM {table} WHERE {_WHERE_KEY}", key)
    summary = meta.summary
    if summary is None:
        return
    failed = summary.failed
    conn.execute(
        f"INSERT INTO insights ({_KEY}, created_at, kind, failed, has_errors, parser_version)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (
            *key,
            meta.created_at.timestamp(),
            summary.kind,
            None if failed is None else int(failed),
            int(summary.has_errors),
            summary.parser_version,
        ),
    )
    paths = summary.paths()
    if paths:
        conn.executemany(
            f"INSERT OR IGNORE INTO insight_paths (path, {_KEY}) VALUES (?,?,?,?,?)",
            [(path, *key) for path in paths],
        )
    failing = summary.failing_tests()
    if failing:
        conn.execute(
            f"INSERT INTO insight_tests (test_ids, {_KEY}) VALUES (?,?,?,?,?)",
            ("\n".join(failing), *key),
        )


def compact_insights(conn: sqlite3.Connection) -> None:
    """Merge the trigram index into one segment (inside the caller's transaction).

    FTS5 adds a segment per transaction and merges them only in part, and every
    lookup reads every segment: after many single uploads a substring search is
    several times slower than on a merged index. A bulk fill (``rebuild_index``,
    a schema refill) ends with this, so its searches start from one segment.
    """
    if TRIGRAM_AVAILABLE:
        conn.execute("INSERT INTO insight_tests_fts (insight_tests_fts) VALUES ('optimize')")


def insight_values(
    meta: ArtifactMetadata,
) -> tuple[tuple[Any, ...] | None, tuple[str, ...], str | None]:
    """The side rows of ``meta`` for a bulk load, without its key: the ``insights``
    values (``None`` without a summary), the touched paths and the failing tests
    (``None`` if none). Plain data: a worker process of a rebuild computes them."""
    summary = meta.summary
    if summary is None:
        return None, (), None
    failed = summary.failed
    insight = (
        meta.created_at.timestamp(),
        summary.kind,
        None if failed is None else int(failed),
        int(summary.has_errors),
        summary.parser_version,
    )
    failing = summary.failing_tests()
    return insight, tuple(dict.fromkeys(summary.paths())), "\n".join(failing) if failing else None


def insert_insights_bulk(conn: sqlite3.Connection, metas: Iterable[ArtifactMetadata]) -> None:
    """Insert the side rows of ``metas`` into tables known to hold none of them yet."""
    insert_insight_values(
        conn,
        (
            ((meta.spec_name, meta.task_id, meta.type.value, meta.version), *insight_values(meta))
            for meta in metas
        ),
    )


def insert_insight_values(
    conn: sqlite3.Connection,
    rows: Iterable[
        tuple[tuple[str, str, str, int], tuple[Any, ...] | None, tuple[str, ...], str | None]
    ],
) -> None:
    """Insert ``(key, *insight_values)`` side rows into tables known to hold none of
    them yet: the rebuild's path, one ``executemany`` per table instead of the
    per-version deletes and inserts of :func:`write_insights`."""
    insights: list[tuple[Any, ...]] = []
    paths: list[tuple[Any, ...]] = []
    tests: list[tuple[Any, ...]] = []
    for key, insight, touched, failing in rows:
        if insight is None:
            continue
        insights.append((*key, *insight))
        paths.extend((path, *key) for path in touched)
        if failing is not None:
            tests.append((failing, *key))
    conn.executemany(
        f"INSERT INTO insights ({_KEY}, created_at, kind, failed, has_errors, parser_version)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        insights,
    )
    conn.executemany(
        f"INSERT OR IGNORE INTO insight_paths (path, {_KEY}) VALUES (?,?,?,?,?)", paths
    )
    conn.executemany(f"INSERT INTO insight_tests (test_ids, {_KEY}) VALUES (?,?,?,?,?)", tests)


def _trigram_available() -> bool:
    """Whether this process's SQLite has FTS5 with the trigram tokenizer."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE probe USING fts5(x, tokenize='trigram')")
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()
    return True


TRIGRAM_AVAILABLE = _trigram_available()


def install_insights(conn: sqlite3.Connection) -> None:
    """Create the side tables and triggers if missing; refill them for an older schema.

    Also registers the ``necro_touches(pattern, path)`` SQL function used by
    :func:`insights_search_sql` on this connection.
    """
    conn.create_function("necro_touches", 2, _touches_sql, deterministic=True)
    conn.executescript(_TABLES)
    # Without the FTS5 trigram tokenizer (SQLite < 3.34) a plain table of the same
    # shape stands in, and substring searches scan the failing ids.
    conn.executescript(_FTS if TRIGRAM_AVAILABLE else _PLAIN_FTS)
    conn.executescript(_TRIGGERS)
    state = conn.execute("SELECT value FROM index_state WHERE name = 'insights'").fetchone()
    if state is None or state[0] != str(INSIGHTS_SCHEMA_VERSION):
        _refill(conn)


_PLAIN_FTS = """
CREATE TABLE IF NOT EXISTS insight_tests_fts (rowid INTEGER PRIMARY KEY, test_ids TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS insight_tests_fts_add AFTER INSERT ON insight_tests BEGIN
    INSERT INTO insight_tests_fts (rowid, test_ids) VALUES (new.id, new.test_ids);
END;
CREATE TRIGGER IF NOT EXISTS insight_tests_fts_drop AFTER DELETE ON insight_tests BEGIN
    DELETE FROM insight_tests_fts WHERE rowid = old.id;
END;
"""


def _refill(conn: sqlite3.Connection) -> None:
    """Rebuild every side row from the ``artifacts`` rows, in one transaction."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        state = conn.execute("SELECT value FROM index_state WHERE name = 'insights'").fetchone()
        if state is None or state[0] != str(INSIGHTS_SCHEMA_VERSION):
            for table in ("insights", "insight_paths", "insight_tests"):
                conn.execute(f"DELETE FROM {table}")
            for statement in _fill("a").split(";"):
                if statement.strip():
                    conn.execute(statement.replace("{source}", "FROM artifacts a"))
            compact_insights(conn)
            conn.execute(
                "INSERT OR REPLACE INTO index_state (name, value) VALUES ('insights', ?)",
                (str(INSIGHTS_SCHEMA_VERSION),),
            )
    except BaseException:
        if own:
            conn.execute("ROLLBACK")
        raise
    if own:
        conn.execute("COMMIT")


# -- filters and queries -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InsightFilter:
    """Content filters of a search; ``None`` means "any"."""

    failed: bool | None = None
    test: str | None = None
    touches: str | None = None
    has_errors: bool | None = None

    @classmethod
    def build(
        cls,
        *,
        failed: bool | None = None,
        test: str | None = None,
        touches: str | None = None,
        has_errors: bool | None = None,
    ) -> InsightFilter:
        """A validated filter; a bad value raises ``InvalidInputError`` naming it."""
        for name, flag in (("failed", failed), ("has_errors", has_errors)):
            if flag is not None and not isinstance(flag, bool):
                raise InvalidInputError(f"{name} must be True, False or None, got {flag!r}")
        for name, text in (("test", test), ("touches", touches)):
            if text is None:
                continue
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError(f"{name} must be a non-empty string, got {text!r}")
            if len(text) > MAX_PATTERN_CHARS or "\x00" in text:
                raise InvalidInputError(
                    f"{name} must be at most {MAX_PATTERN_CHARS} characters without NUL"
                )
        pattern = touches.strip().lstrip("/") if touches is not None else None
        if pattern == "":
            raise InvalidInputError(f"touches must name a path or a glob, got {touches!r}")
        return cls(failed, test, pattern, has_errors)

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return any(v is not None for v in (self.failed, self.test, self.touches, self.has_errors))


@functools.lru_cache(maxsize=256)
def touches_regex(pattern: str) -> re.Pattern[str]:
    """The compiled rule of one ``touches`` glob (see the module docstring)."""
    pattern = pattern.lstrip("/")
    if not any(c in pattern for c in "*?"):
        base = re.escape(pattern.rstrip("/"))
        return re.compile(f"{base}(?:/.*)?", re.DOTALL)
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _touches_sql(pattern: str, path: str) -> int:
    return int(touches_regex(pattern).fullmatch(path) is not None)


#: Trigrams of a needle looked up in the index (the rest is checked by instr()).
QUERY_TRIGRAMS = 2


def _trigram_query(needle: str) -> str:
    """An FTS5 query for a few non-overlapping trigrams from the end of ``needle``.

    Every trigram of the needle costs a read of its posting list, and the common
    ones ("tes", "est" of every "test_...") are as long as the index is big; the
    end of a test id is where ids differ ("..._login_fails"), so a few trigrams
    from there select few candidates.
    """
    starts = range(len(needle) - TRIGRAM, -1, -TRIGRAM)
    grams = [needle[i : i + TRIGRAM] for i in list(starts)[:QUERY_TRIGRAMS]]
    return " ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


def _literal_prefix(pattern: str) -> str:
    cut = min((pattern.find(c) for c in "*?" if c in pattern), default=len(pattern))
    return pattern[:cut]


def _test_rows_sql(needle: str) -> tuple[str, list[Any]]:
    """The keys of the versions with a failing id containing ``needle``.

    A needle of three or more characters is looked up in the trigram index, which
    yields the rows holding a few of its trigrams; ``instr()`` then checks the
    whole needle. (One row per version: its failing ids joined by newlines, so a
    match never spans two ids.) Shorter needles scan the failing ids.
    """
    check = "instr(lower(test_ids), lower(?))"
    if len(needle) >= TRIGRAM and TRIGRAM_AVAILABLE:
        ids = "SELECT rowid FROM insight_tests_fts WHERE insight_tests_fts MATCH ?"
        sql = f"SELECT {_KEY} FROM insight_tests WHERE id IN ({ids}) AND {check}"
        return sql, [_trigram_query(needle), needle]
    return f"SELECT {_KEY} FROM insight_tests WHERE {check}", [needle]


def insights_search_sql(
    clauses: list[str],
    params: list[Any],
    insight: InsightFilter,
    *,
    newest_first: bool,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """The search SQL for base ``clauses`` (on ``artifacts a``) plus ``insight`` filters.

    The query is driven from the ``insights`` rows (``i``) so that a filter on
    ``failed``/``has_errors`` walks the ``(flag, created_at)`` index in the
    requested order and stops at ``limit``; ``touches`` narrows the rows through
    the path index first. With ``test``, the versions whose failing ids match
    drive the query instead (found through the trigram index, read once).
    """
    clauses = list(clauses)
    params = list(params)
    if insight.failed is not None:
        clauses.append("i.failed = ?")
        params.append(int(insight.failed))
    if insight.has_errors is not None:
        clauses.append("i.has_errors = ?")
        params.append(int(insight.has_errors))
    source, join = "insights i", "JOIN"
    source_params: list[Any] = []
    if insight.test is not None:
        # The versions with a matching failing id drive the query: the trigram index
        # is read once and only those rows are joined, whatever the store's size.
        # (CROSS JOIN keeps SQLite from reordering the join.)
        tests_sql, source_params = _test_rows_sql(insight.test.strip())
        source = (
            f"({tests_sql}) t CROSS JOIN insights i ON i.spec_name = t.spec_name"
            " AND i.task_id = t.task_id AND i.type = t.type AND i.version = t.version"
        )
        join = "CROSS JOIN"
    if insight.touches is not None:
        prefix = _literal_prefix(insight.touches)
        where = ["necro_touches(?, path)"]
        inner_params: list[Any] = [insight.touches]
        if prefix:
            # A range over the path index: every match starts with the literal prefix.
            where[:0] = ["path >= ?", "path < ?"]
            inner_params[:0] = [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
        clauses.append(
            f"(i.spec_name, i.task_id, i.type, i.version) IN (SELECT {_KEY} FROM"
            f" insight_paths WHERE {' AND '.join(where)})"
        )
        params.extend(inner_params)
    direction = " DESC" if newest_first else ""
    sql = (
        f"SELECT a.record FROM {source} {join} artifacts a ON a.spec_name = i.spec_name"
        " AND a.task_id = i.task_id AND a.type = i.type AND a.version = i.version"
    )
    params = source_params + params
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY " + ", ".join(
        f"i.{column}{direction}"
        for column in ("created_at", "spec_name", "task_id", "type", "version")
    )
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params
