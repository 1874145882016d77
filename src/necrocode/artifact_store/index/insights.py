"""Content insights in the SQLite index: side tables, the triggers that fill them, queries.

Public API::

    InsightFilter(failed=None, test=None, touches=None, has_errors=None)
        .build(...)  validating constructor (InvalidInputError on a bad value)
        .active      whether any filter is set
    install_insights(conn)              # DDL, triggers, SQL function; once per connection
    compact_insights(conn)              # merge the trigram index (after a bulk fill)
    flush_pending(conn)                 # move the rows waiting for it in, now
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
- ``insight_files`` + ``insight_files_fts``: the changed paths (old and new) of
  each diff (one row per version, one path a line) and an FTS5 trigram index
  over them, so ``touches="auth/**"`` looks up the pattern's longest literal
  part (``auth/``) and checks the glob on the few rows that hold it (a table
  keyed by path took a page write per changed path);
- ``insight_tests`` + ``insight_tests_fts``: the failing test ids of each
  version (one row, ids joined by newlines) and an FTS5 trigram index over
  them, so a substring of three or more characters is an index lookup
  (shorter ones scan the failing ids, never the artifacts).

New rows of the two text tables enter their trigram indexes in batches: an
insert trigger notes each in ``<table>_pending`` (with its length), searches
check those rows directly (``instr`` in C, at most :data:`MAX_PENDING_ROWS`
rows or :data:`MAX_PENDING_CHARS` characters), and the write that fills the
list moves them all in with one statement. FTS5 writes an index segment per
transaction, which cost ~0.1 ms per upload when every upload indexed its row.

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
    "flush_pending",
    "insert_insight_values",
    "insert_insights_bulk",
    "insight_values",
    "insights_search_sql",
    "install_insights",
    "restore_insights_trigger",
    "touches_regex",
    "write_insights",
]

#: Bumped when the side tables change; an index with an older one refills them
#: (from 2, the pending lists are only added).
INSIGHTS_SCHEMA_VERSION = 3
MAX_PATTERN_CHARS = 1024
#: Substrings shorter than this cannot use the trigram index.
TRIGRAM = 3

_KEY = "spec_name, task_id, type, version"
#: Every side table, keyed by a version's key (the trigram tables follow theirs).
_SIDE_TABLES = ("insights", "insight_files", "insight_tests")
#: The side tables of older schemas, dropped when the tables are refilled.
_OLD_TABLES = ("insight_paths",)


def _escaped(path: str) -> str:
    """``path`` as one line of ``insight_files.paths``: backslashes and newlines escaped."""
    if "\\" in path or "\n" in path:
        return path.replace("\\", "\\\\").replace("\n", "\\n")
    return path


def _unescaped(line: str) -> str:
    if "\\" not in line:
        return line
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), line)


def _escaped_sql(column: str) -> str:
    """SQL for :func:`_escaped` of ``column``."""
    return f"replace(replace({column}, '\\', '\\\\'), char(10), '\\n')"


def joined_paths(paths: Iterable[str]) -> str:
    """The ``paths`` column of a diff's changed paths."""
    listed = list(paths)
    joined = "\n".join(listed)
    if "\\" not in joined and joined.count("\n") == max(0, len(listed) - 1):
        return joined  # nothing to escape (the usual case), found in C
    return "\n".join(_escaped(path) for path in listed)


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
CREATE TABLE IF NOT EXISTS insight_files (
    id        INTEGER PRIMARY KEY,
    paths     TEXT    NOT NULL,
    spec_name TEXT    NOT NULL,
    task_id   TEXT    NOT NULL,
    type      TEXT    NOT NULL,
    version   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS insight_files_by_artifact
    ON insight_files (spec_name, task_id, type, version);
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

#: The side tables with a trigram index over one text column: (table, column, options).
#: Lookups are ANDs of single trigrams, which need no positions (``detail=none``)
#: nor column sizes: the paths' index goes without them (half the work per upload
#: of a big diff); the failing ids' index predates that.
_TEXT_TABLES = (
    ("insight_tests", "test_ids", ""),
    ("insight_files", "paths", ", detail=none, columnsize=0"),
)


#: New rows wait in a ``<table>_pending`` list (searches scan them) and enter the
#: trigram index together, once this many wait or hold this many characters: FTS5
#: writes a segment per transaction, ~0.1 ms per upload when each row made its own.
MAX_PENDING_ROWS = 32
MAX_PENDING_CHARS = 64 * 1024
_SQLITE_READONLY = 8  # the primary result code of a write to a read-only file


def _fts_add(table: str, column: str) -> str:
    """The trigger noting each new row's text for the index (one statement, for
    ``execute``): into the pending list, or straight into the plain stand-in table."""
    if not TRIGRAM_AVAILABLE:
        return f"""CREATE TRIGGER IF NOT EXISTS {table}_fts_add AFTER INSERT ON {table} BEGIN
    INSERT INTO {table}_fts (rowid, {column}) VALUES (new.id, new.{column});
END"""
    return f"""CREATE TRIGGER IF NOT EXISTS {table}_fts_add AFTER INSERT ON {table} BEGIN
    INSERT INTO {table}_pending (id, chars) VALUES (new.id, length(new.{column}));
END"""


def _fts_statements(table: str, column: str, options: str) -> list[str]:
    """The trigram index of ``table``, its pending list and their triggers (one
    statement each, for ``execute``). A deleted row leaves the index only if it
    entered it: an FTS5 'delete' of a row the index does not hold corrupts it."""
    return [
        f"""CREATE VIRTUAL TABLE IF NOT EXISTS {table}_fts USING fts5(
    {column}, content='{table}', content_rowid='id', tokenize='trigram'{options})""",
        f"CREATE TABLE IF NOT EXISTS {table}_pending"
        " (id INTEGER PRIMARY KEY, chars INTEGER NOT NULL)",
        _fts_add(table, column),
        f"""CREATE TRIGGER IF NOT EXISTS {table}_fts_drop AFTER DELETE ON {table} BEGIN
    INSERT INTO {table}_fts ({table}_fts, rowid, {column})
        SELECT 'delete', old.id, old.{column}
        WHERE NOT EXISTS (SELECT 1 FROM {table}_pending WHERE id = old.id);
    DELETE FROM {table}_pending WHERE id = old.id;
END""",
    ]


def _fts(table: str, column: str, options: str) -> str:
    return "".join(f"{statement};\n" for statement in _fts_statements(table, column, options))


def flush_pending(conn: sqlite3.Connection, tables: Iterable[str] | None = None) -> None:
    """Move the pending rows of ``tables`` (default: every text table) into their
    trigram indexes, inside the caller's transaction."""
    if not TRIGRAM_AVAILABLE:
        return
    for table, column, _ in _TEXT_TABLES:
        if tables is None or table in tables:
            conn.execute(
                f"INSERT INTO {table}_fts (rowid, {column}) SELECT t.id, t.{column}"
                f" FROM {table}_pending p JOIN {table} t ON t.id = p.id ORDER BY p.id"
            )
            conn.execute(f"DELETE FROM {table}_pending")


def _flush_if_full(conn: sqlite3.Connection, table: str) -> None:
    rows, chars = conn.execute(f"SELECT COUNT(*), TOTAL(chars) FROM {table}_pending").fetchone()
    if rows >= MAX_PENDING_ROWS or chars >= MAX_PENDING_CHARS:
        flush_pending(conn, (table,))


def _plain_fts(table: str, column: str, _options: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table}_fts (rowid INTEGER PRIMARY KEY, {column} TEXT NOT NULL);
{_fts_add(table, column)};
CREATE TRIGGER IF NOT EXISTS {table}_fts_drop AFTER DELETE ON {table} BEGIN
    DELETE FROM {table}_fts WHERE rowid = old.id;
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
    INSERT INTO insight_files (paths, {_KEY})
    SELECT * FROM (
        SELECT (SELECT group_concat({_escaped_sql("p.path")}, char(10)) FROM (
                SELECT json_extract(f.value, '$.path') AS path
                FROM json_each({rec}, '$.summary.diff.files') AS f
                UNION ALL
                SELECT json_extract(f.value, '$.old_path')
                FROM json_each({rec}, '$.summary.diff.files') AS f
                WHERE json_extract(f.value, '$.old_path') IS NOT json_extract(f.value, '$.path')
            ) AS p WHERE p.path IS NOT NULL) AS paths, {key}
        {{source}}
    ) WHERE paths IS NOT NULL;
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
    return "".join(f"DELETE FROM {table} WHERE {where};\n" for table in _SIDE_TABLES)


# Deleting an artifacts row (one version, an artifact, a rebuild) drops its side
# rows in the same statement. Inserts and updates go through write_insights(),
# called by the index's one row-writing method: computing the side rows from the
# Summary object is several times cheaper than having SQLite parse the record's
# JSON once per json_extract/json_each.
#: One statement (for ``execute`` inside a transaction): a trigger body is part of it.
_ON_DELETE = f"""CREATE TRIGGER IF NOT EXISTS insight_rows_on_delete AFTER DELETE ON artifacts
BEGIN
{_clear("old")}
END"""

_TRIGGERS = f"""
DROP TRIGGER IF EXISTS insights_on_insert;
DROP TRIGGER IF EXISTS insights_on_update;
DROP TRIGGER IF EXISTS insights_on_delete;
{_ON_DELETE};
"""


def clear_insights(conn: sqlite3.Connection) -> None:
    """Empty the side tables at once and drop the trigger that clears them row by row
    (inside a rebuild's transaction, before ``DELETE FROM artifacts``: without any
    trigger on it, SQLite empties the table without visiting its rows).
    :func:`restore_insights_trigger` puts the trigger back before the commit."""
    conn.execute("DROP TRIGGER IF EXISTS insight_rows_on_delete")
    conn.execute("DROP TRIGGER IF EXISTS insights_on_delete")  # an older schema's name
    for table in _SIDE_TABLES:
        conn.execute(f"DELETE FROM {table}")
    # The text indexes are built once after the load (see restore_insights_trigger).
    for table, _, _ in _TEXT_TABLES:
        conn.execute(f"DROP TRIGGER IF EXISTS {table}_fts_add")
        if TRIGRAM_AVAILABLE:
            conn.execute(f"DELETE FROM {table}_pending")


def restore_insights_trigger(conn: sqlite3.Connection) -> None:
    """Re-create the triggers :func:`clear_insights` dropped, after building the text
    indexes of the loaded rows in one pass: an FTS5 ``rebuild`` tokenizes the rows an
    order of magnitude faster than the insert trigger does row by row."""
    for table, column, _ in _TEXT_TABLES:
        if TRIGRAM_AVAILABLE:
            conn.execute(f"INSERT INTO {table}_fts ({table}_fts) VALUES ('rebuild')")
        else:
            conn.execute(f"DELETE FROM {table}_fts")
            conn.execute(
                f"INSERT INTO {table}_fts (rowid, {column}) SELECT id, {column} FROM {table}"
            )
        conn.execute(_fts_add(table, column))
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
        for table in _SIDE_TABLES:
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
        conn.execute(
            f"INSERT INTO insight_files (paths, {_KEY}) VALUES (?,?,?,?,?)",
            (joined_paths(paths), *key),
        )
        if TRIGRAM_AVAILABLE:
            _flush_if_full(conn, "insight_files")
    failing = summary.failing_tests()
    if failing:
        conn.execute(
            f"INSERT INTO insight_tests (test_ids, {_KEY}) VALUES (?,?,?,?,?)",
            ("\n".join(failing), *key),
        )
        if TRIGRAM_AVAILABLE:
            _flush_if_full(conn, "insight_tests")


def compact_insights(conn: sqlite3.Connection) -> None:
    """Merge the trigram index into one segment (inside the caller's transaction).

    FTS5 adds a segment per transaction and merges them only in part, and every
    lookup reads every segment: after many single uploads a substring search is
    several times slower than on a merged index. A bulk fill (``rebuild_index``,
    a schema refill) ends with this, so its searches start from one segment.
    """
    if TRIGRAM_AVAILABLE:
        flush_pending(conn)
        for table, _, _ in _TEXT_TABLES:
            conn.execute(f"INSERT INTO {table}_fts ({table}_fts) VALUES ('optimize')")


def insight_values(
    meta: ArtifactMetadata,
) -> tuple[tuple[Any, ...] | None, str | None, str | None]:
    """The side rows of ``meta`` for a bulk load, without its key: the ``insights``
    values (``None`` without a summary), the changed paths' column and the failing
    tests (``None`` if none). Plain data: a worker process of a rebuild computes them."""
    summary = meta.summary
    if summary is None:
        return None, None, None
    failed = summary.failed
    insight = (
        meta.created_at.timestamp(),
        summary.kind,
        None if failed is None else int(failed),
        int(summary.has_errors),
        summary.parser_version,
    )
    changed = summary.paths()
    failing = summary.failing_tests()
    return (
        insight,
        joined_paths(changed) if changed else None,
        "\n".join(failing) if failing else None,
    )


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
        tuple[tuple[str, str, str, int], tuple[Any, ...] | None, str | None, str | None]
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
        if touched is not None:
            paths.append((touched, *key))
        if failing is not None:
            tests.append((failing, *key))
    conn.executemany(
        f"INSERT INTO insights ({_KEY}, created_at, kind, failed, has_errors, parser_version)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        insights,
    )
    conn.executemany(f"INSERT INTO insight_files (paths, {_KEY}) VALUES (?,?,?,?,?)", paths)
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

    Also registers the ``necro_touches_any(pattern, paths)`` SQL function used by
    :func:`insights_search_sql` on this connection.
    """
    conn.create_function("necro_touches_any", 2, _touches_any_sql, deterministic=True)
    if TRIGRAM_AVAILABLE:
        _add_pending_lists(conn)
    conn.executescript(_TABLES)
    # Without the FTS5 trigram tokenizer (SQLite < 3.34) a plain table of the same
    # shape stands in, and substring searches scan the failing ids and paths.
    for text_table in _TEXT_TABLES:
        conn.executescript((_fts if TRIGRAM_AVAILABLE else _plain_fts)(*text_table))
    conn.executescript(_TRIGGERS)
    state = conn.execute("SELECT value FROM index_state WHERE name = 'insights'").fetchone()
    if state is None or state[0] != str(INSIGHTS_SCHEMA_VERSION):
        _refill(conn)


def _add_pending_lists(conn: sqlite3.Connection) -> None:
    """Give the trigram indexes of an older index (every row indexed on insert) their
    pending lists and the triggers that use them, in one transaction; the rows are
    all indexed already, so nothing is refilled. On a read-only connection, empty
    temporary lists stand in."""
    missing = [
        text_table
        for text_table in _TEXT_TABLES
        if conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = ?", (f"{text_table[0]}_fts",)
        ).fetchone()
        and not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = ?", (f"{text_table[0]}_pending",)
        ).fetchone()
    ]
    if not missing:
        return
    own = not conn.in_transaction
    try:
        if own:
            conn.execute("BEGIN IMMEDIATE")
        for table, column, options in missing:
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_fts_add")
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_fts_drop")
            for statement in _fts_statements(table, column, options):
                conn.execute(statement)
        conn.execute(
            "UPDATE index_state SET value = ? WHERE name = 'insights' AND value = '2'",
            (str(INSIGHTS_SCHEMA_VERSION),),
        )
    except sqlite3.DatabaseError as exc:
        if own and conn.in_transaction:
            conn.execute("ROLLBACK")
        if not own or exc.sqlite_errorcode & 0xFF != _SQLITE_READONLY:
            raise
        for table, _, _ in missing:  # a read-only file: nothing can be pending
            conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {table}_pending"
                " (id INTEGER PRIMARY KEY, chars INTEGER NOT NULL)"
            )
        return
    except BaseException:
        if own and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if own:
        conn.execute("COMMIT")


def _refill(conn: sqlite3.Connection) -> None:
    """Rebuild every side row from the ``artifacts`` rows, in one transaction."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        state = conn.execute("SELECT value FROM index_state WHERE name = 'insights'").fetchone()
        if state is None or state[0] != str(INSIGHTS_SCHEMA_VERSION):
            for table in _OLD_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            for table in _SIDE_TABLES:
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


#: Trigrams of a needle looked up in the index (the rest is checked by instr()).
QUERY_TRIGRAMS = 2
#: ... of a path's literal part, at most: paths share their ends (``src/``, ``.py``)
#: and differ anywhere between, so the whole literal is looked up.
PATH_TRIGRAMS = 8


def _trigram_query(needle: str, count: int = QUERY_TRIGRAMS) -> str:
    """An FTS5 query for a few non-overlapping trigrams from the end of ``needle``.

    Every trigram of the needle costs a read of its posting list, and the common
    ones ("tes", "est" of every "test_...") are as long as the index is big; the
    end of a test id is where ids differ ("..._login_fails"), so a few trigrams
    from there select few candidates.
    """
    starts = range(len(needle) - TRIGRAM, -1, -TRIGRAM)
    grams = [needle[i : i + TRIGRAM] for i in list(starts)[:count]]
    return " ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


def _required_literal(pattern: str) -> str:
    """The longest run of plain characters every path matching ``pattern`` contains
    (see :func:`touches_regex`: the ``/`` of ``**/`` is optional)."""
    pattern = pattern.lstrip("/")
    if not any(c in pattern for c in "*?"):
        return pattern.rstrip("/")
    runs: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] in "*?":
            runs.append("".join(current))
            current = []
            i += 3 if pattern.startswith("**/", i) else 2 if pattern.startswith("**", i) else 1
        else:
            current.append(pattern[i])
            i += 1
    runs.append("".join(current))
    return max(runs, key=len)


def _touches_any_sql(pattern: str, paths: str) -> int:
    rule = touches_regex(pattern)
    return int(any(rule.fullmatch(_unescaped(line)) for line in paths.split("\n")))


def _file_rows_sql(pattern: str) -> tuple[str, list[Any]]:
    """The keys of the versions with a changed path matching the glob ``pattern``.

    The trigram index yields the rows holding a few trigrams of the pattern's
    longest literal part; the glob is then checked on each of their paths. A
    pattern without three literal characters in a row scans the changed paths.
    """
    check = "necro_touches_any(?, paths)"
    literal = _escaped(_required_literal(pattern))
    if len(literal) >= TRIGRAM and TRIGRAM_AVAILABLE:
        ids = (
            "SELECT rowid FROM insight_files_fts WHERE insight_files_fts MATCH ?"
            " UNION ALL SELECT id FROM insight_files_pending"
        )
        # instr() (in C) rules out most rows before the glob is checked in Python:
        # every path the glob matches contains its literal part as it is.
        sql = (
            f"SELECT {_KEY} FROM insight_files WHERE id IN ({ids}) AND instr(paths, ?) AND {check}"
        )
        return sql, [_trigram_query(literal, PATH_TRIGRAMS), literal, pattern]
    return f"SELECT {_KEY} FROM insight_files WHERE {check}", [pattern]


def _test_rows_sql(needle: str) -> tuple[str, list[Any]]:
    """The keys of the versions with a failing id containing ``needle``.

    A needle of three or more characters is looked up in the trigram index, which
    yields the rows holding a few of its trigrams; ``instr()`` then checks the
    whole needle. (One row per version: its failing ids joined by newlines, so a
    match never spans two ids.) Shorter needles scan the failing ids.
    """
    check = "instr(lower(test_ids), lower(?))"
    if len(needle) >= TRIGRAM and TRIGRAM_AVAILABLE:
        ids = (
            "SELECT rowid FROM insight_tests_fts WHERE insight_tests_fts MATCH ?"
            " UNION ALL SELECT id FROM insight_tests_pending"
        )
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
        files_sql, files_params = _file_rows_sql(insight.touches)
        clauses.append(f"(i.spec_name, i.task_id, i.type, i.version) IN ({files_sql})")
        params.extend(files_params)
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
