"""The PostgreSQL index's schema, as numbered migrations applied in order.

:func:`migrate` brings a database to :data:`SCHEMA_VERSION` inside one
transaction that holds a transaction-level advisory lock, so hosts starting at
the same moment apply each migration exactly once: the first takes the lock and
migrates, the others wait for it and then find nothing left to do. A database
with a newer schema than this code knows is refused, not downgraded.

Text columns use the ``"C"`` collation so ordering matches the SQLite index
(byte order), whatever the database's locale. Times are epoch seconds
(``double precision``), as in the SQLite index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..exceptions import ConfigError

__all__ = [
    "FAILING_TEST_INDEX",
    "MIGRATION_LOCK",
    "SCHEMA_VERSION",
    "ensure_failing_test_index",
    "flush_pending_entries",
    "migrate",
]

log = logging.getLogger(__name__)

#: Key of the advisory lock held while migrating (any fixed 64-bit number).
MIGRATION_LOCK = 0x4E4352_0001
#: Key of the advisory lock that :meth:`PostgresIndex.exclusive` holds exclusively
#: and every index write holds shared.
WRITE_LOCK = 0x4E4352_0002

_V1 = """
CREATE TABLE artifacts (
    spec_name      text COLLATE "C" NOT NULL,
    task_id        text COLLATE "C" NOT NULL,
    type           text COLLATE "C" NOT NULL,
    version        integer NOT NULL,
    is_latest      boolean NOT NULL DEFAULT false,
    created_at     double precision NOT NULL,
    size           bigint  NOT NULL,
    original_size  bigint  NOT NULL,
    retention_days integer,
    pinned         boolean NOT NULL DEFAULT false,
    tags           text[] COLLATE "C" NOT NULL DEFAULT '{}',
    record         text    NOT NULL,
    -- Generation of the rebuild that wrote the row: rows of an older generation are
    -- dropped when a rebuild finishes (see PostgresIndex.replace_all).
    generation     bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (spec_name, task_id, type, version)
);
CREATE INDEX artifacts_by_task ON artifacts (task_id) WHERE is_latest;
CREATE INDEX artifacts_by_latest_time ON artifacts (created_at) WHERE is_latest;
CREATE INDEX artifacts_by_type_time ON artifacts (type, created_at);
CREATE INDEX artifacts_with_retention ON artifacts (created_at) WHERE retention_days IS NOT NULL;
CREATE INDEX artifacts_by_tag ON artifacts USING gin (tags);

CREATE TABLE index_state (name text PRIMARY KEY, value text NOT NULL);

-- Running totals, kept by a trigger in the transaction that changes the rows.
CREATE TABLE usage_totals (
    spec_name     text COLLATE "C" NOT NULL,
    type          text COLLATE "C" NOT NULL,
    artifacts     bigint NOT NULL DEFAULT 0,
    versions      bigint NOT NULL DEFAULT 0,
    size          bigint NOT NULL DEFAULT 0,
    original_size bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (spec_name, type)
);
CREATE TABLE usage_grand (
    id            integer PRIMARY KEY CHECK (id = 1),
    artifacts     bigint NOT NULL DEFAULT 0,
    versions      bigint NOT NULL DEFAULT 0,
    size          bigint NOT NULL DEFAULT 0,
    original_size bigint NOT NULL DEFAULT 0
);
INSERT INTO usage_grand (id) VALUES (1);

-- Space promised to uploads in flight (the exact global quota): bytes reserved
-- before they are written, released when the upload commits or fails. A row whose
-- holder session is gone, or that was not touched for the reservation timeout, is
-- swept by the next reservation.
CREATE TABLE reservations (
    id          bigserial PRIMARY KEY,
    uri         text NOT NULL,
    size        bigint NOT NULL DEFAULT 0,
    credit      bigint NOT NULL DEFAULT 0,
    holder_pid  integer NOT NULL,
    touched_at  timestamptz NOT NULL DEFAULT now()
);

-- Maintenance batches being worked on: a host holds its batch's row locked
-- (FOR UPDATE SKIP LOCKED) until the batch is done; other hosts skip it.
CREATE TABLE work_claims (
    job  text NOT NULL,
    item text NOT NULL,
    PRIMARY KEY (job, item)
);

CREATE FUNCTION necro_usage_apply(
    s text, t text, sgn integer, latest boolean, sz bigint, orig bigint
) RETURNS void LANGUAGE sql AS $$
    UPDATE usage_grand SET artifacts = artifacts + sgn * latest::integer,
        versions = versions + sgn, size = size + sgn * sz,
        original_size = original_size + sgn * orig
    WHERE id = 1;
    INSERT INTO usage_totals AS u (spec_name, type, artifacts, versions, size, original_size)
    VALUES (s, t, sgn * latest::integer, sgn, sgn * sz, sgn * orig)
    ON CONFLICT (spec_name, type) DO UPDATE SET
        artifacts = u.artifacts + excluded.artifacts, versions = u.versions + excluded.versions,
        size = u.size + excluded.size, original_size = u.original_size + excluded.original_size;
    DELETE FROM usage_totals WHERE spec_name = s AND type = t AND versions = 0;
$$;

CREATE FUNCTION necro_usage_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A rebuild loads rows in bulk and recomputes the totals once at its end.
    IF current_setting('necrocode.bulk_load', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM necro_usage_apply(OLD.spec_name, OLD.type, -1, OLD.is_latest, OLD.size,
                                  OLD.original_size);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM necro_usage_apply(NEW.spec_name, NEW.type, 1, NEW.is_latest, NEW.size,
                                  NEW.original_size);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER usage_on_insert_delete AFTER INSERT OR DELETE ON artifacts
    FOR EACH ROW EXECUTE FUNCTION necro_usage_trigger();
CREATE TRIGGER usage_on_update AFTER UPDATE OF is_latest, size, original_size ON artifacts
    FOR EACH ROW EXECUTE FUNCTION necro_usage_trigger();
"""

# Content insights (see index/insights.py): what the filters of a search need from
# each version's summary, as columns of its row, filled from the records already
# indexed.
_V2 = """
ALTER TABLE artifacts
    ADD COLUMN summary_kind       text,
    ADD COLUMN summary_failed     boolean,
    ADD COLUMN summary_has_errors boolean,
    ADD COLUMN paths              text[] COLLATE "C" NOT NULL DEFAULT '{}',
    ADD COLUMN failing_tests      text;
WITH s AS (
    SELECT spec_name, task_id, type, version, record::jsonb -> 'summary' AS j
    FROM artifacts WHERE jsonb_typeof(record::jsonb -> 'summary') = 'object'
)
UPDATE artifacts a SET
    summary_kind = s.j ->> 'kind',
    summary_failed = (s.j ->> 'failed')::boolean,
    summary_has_errors = COALESCE((s.j ->> 'has_errors')::boolean, false),
    paths = ARRAY(
        SELECT DISTINCT v.p FROM jsonb_array_elements(COALESCE(s.j -> 'diff' -> 'files', '[]'))
            AS f, LATERAL (VALUES (f ->> 'path'), (f ->> 'old_path')) AS v(p)
        WHERE v.p IS NOT NULL),
    failing_tests = (SELECT string_agg(t, E'\\n')
        FROM jsonb_array_elements_text(COALESCE(s.j -> 'test' -> 'failing', '[]')) AS t)
FROM s
WHERE a.spec_name = s.spec_name AND a.task_id = s.task_id AND a.type = s.type
    AND a.version = s.version;
CREATE INDEX artifacts_by_failed ON artifacts (summary_failed, created_at)
    WHERE summary_failed IS NOT NULL;
CREATE INDEX artifacts_by_errors ON artifacts (summary_has_errors, created_at)
    WHERE summary_kind IS NOT NULL;
"""

# Content searches that stay flat as the index grows (issue 18; B9 measures them):
# every changed path of a version is a row of ``artifact_paths``, kept by triggers in
# the transaction that writes the artifact's row and dropped with it, so a
# ``touches`` glob is a range scan over its literal prefix; a failing-test substring
# uses a trigram index when the database has ``pg_trgm`` (see _v3).
_V3_PATHS = """
CREATE TABLE artifact_paths (
    spec_name text COLLATE "C" NOT NULL,
    task_id   text COLLATE "C" NOT NULL,
    type      text COLLATE "C" NOT NULL,
    version   integer NOT NULL,
    path      text COLLATE "C" NOT NULL,
    PRIMARY KEY (spec_name, task_id, type, version, path),
    FOREIGN KEY (spec_name, task_id, type, version) REFERENCES artifacts ON DELETE CASCADE
);
CREATE INDEX artifact_paths_by_path ON artifact_paths (path);

CREATE FUNCTION necro_paths_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM artifact_paths
        WHERE spec_name = OLD.spec_name AND task_id = OLD.task_id AND type = OLD.type
            AND version = OLD.version;
    END IF;
    INSERT INTO artifact_paths (spec_name, task_id, type, version, path)
        SELECT DISTINCT NEW.spec_name, NEW.task_id, NEW.type, NEW.version, p
        FROM unnest(NEW.paths) AS p;
    RETURN NULL;
END
$$;

CREATE TRIGGER paths_on_insert AFTER INSERT ON artifacts
    FOR EACH ROW WHEN (cardinality(NEW.paths) > 0) EXECUTE FUNCTION necro_paths_trigger();
CREATE TRIGGER paths_on_update AFTER UPDATE OF paths ON artifacts
    FOR EACH ROW WHEN (OLD.paths IS DISTINCT FROM NEW.paths)
    EXECUTE FUNCTION necro_paths_trigger();

INSERT INTO artifact_paths (spec_name, task_id, type, version, path)
    SELECT DISTINCT spec_name, task_id, type, version, p FROM artifacts, unnest(paths) AS p;
ANALYZE artifact_paths;
"""

#: The trigram index of failing test ids (present only where ``pg_trgm`` could be used).
FAILING_TEST_INDEX = "artifacts_by_failing_test"


def _v3(conn: Any) -> None:
    """The changed-paths table, and the trigram index of failing test ids if it can be.

    ``pg_trgm`` ships with PostgreSQL (contrib) and is a trusted extension, so the
    database's owner may create it; where it is missing or not allowed, searches by
    failing test id stay correct and scan the summarised rows instead (logged once,
    here). After an administrator's ``CREATE EXTENSION pg_trgm``, the next
    ``rebuild_index`` adds the index (it calls :func:`ensure_failing_test_index`).
    """
    conn.execute(_V3_PATHS)
    ensure_failing_test_index(conn)


def ensure_failing_test_index(conn: Any) -> bool:
    """Create the trigram index of failing test ids if ``pg_trgm`` allows; True if it
    exists afterwards. A failure rolls back only its own savepoint."""
    import psycopg  # noqa: PLC0415 - psycopg is imported only with a PostgreSQL index

    found = conn.execute("SELECT to_regclass(%s)", (FAILING_TEST_INDEX,)).fetchone()
    if found is not None and found[0] is not None:
        return True
    try:
        with conn.transaction():  # a savepoint inside the migration's transaction
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            conn.execute(
                f"CREATE INDEX {FAILING_TEST_INDEX} ON artifacts"
                " USING gin (lower(failing_tests) gin_trgm_ops)"
                # Entries go straight into the index: with GIN's pending list a search
                # also scans up to 4 MB of unsorted entries (2.5 ms instead of 0.45 ms
                # at 100,000 artifacts after a rebuild). Only failing reports add rows.
                " WITH (fastupdate = off)"
                " WHERE failing_tests IS NOT NULL"
            )
    except psycopg.Error as exc:
        log.warning(
            "PostgreSQL index: no trigram index of failing test ids (%s); searches by"
            " test id scan the summarised rows",
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
        )
        return False
    return True


def flush_pending_entries(conn: Any) -> None:
    """Move the tags index's pending entries into the index proper (after a bulk load:
    searches by tag otherwise scan them too). Needs to own the index; a failure rolls
    back only its savepoint and leaves the entries for autovacuum."""
    import psycopg  # noqa: PLC0415 - psycopg is imported only with a PostgreSQL index

    try:
        with conn.transaction():
            conn.execute("SELECT gin_clean_pending_list('artifacts_by_tag'::regclass)")
    except psycopg.Error as exc:
        log.debug("PostgreSQL index: pending tag entries left to autovacuum (%s)", exc)


#: Migration ``n`` (1-based) brings schema ``n - 1`` to ``n``: a script, or a function
#: of the connection for steps that may partly not apply.
MIGRATIONS: tuple[str | Callable[[Any], None], ...] = (_V1, _V2, _v3)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: Any) -> int:
    """Bring the database of ``conn`` (a psycopg connection, autocommit) to the current
    schema; return the version found before. Safe when many hosts call it at once."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS necro_schema (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM necro_schema").fetchone()
        found = 0 if row is None else int(row[0])
        if found > SCHEMA_VERSION:
            raise ConfigError(
                f"index_url: the database has index schema {found}, newer than this "
                f"release's {SCHEMA_VERSION}; upgrade necrocode-artifact-store",
                key="index_url",
            )
        for step in MIGRATIONS[found:]:
            if isinstance(step, str):
                conn.execute(step)
            else:
                step(conn)
        if row is None:
            conn.execute("INSERT INTO necro_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif found < SCHEMA_VERSION:
            conn.execute("UPDATE necro_schema SET version = %s", (SCHEMA_VERSION,))
    return found
