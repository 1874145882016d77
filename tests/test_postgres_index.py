"""What only the PostgreSQL index does: migrating safely when many hosts start at once,
refusing a database of another store or of a newer release, resuming a rebuild."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from necrocode.artifact_store import (
    ArtifactStore,
    ConfigError,
    IndexUnavailableError,
    MetadataManager,
)
from necrocode.artifact_store.backends.filesystem import FilesystemBackend
from necrocode.artifact_store.index import SearchQuery, open_index
from necrocode.artifact_store.index.insights import InsightFilter
from necrocode.artifact_store.index.pg_schema import (
    FAILING_TEST_INDEX,
    MIGRATIONS,
    SCHEMA_VERSION,
)
from necrocode.artifact_store.index.postgres import PostgresIndex, search_sql
from necrocode.artifact_store.naming import ArtifactKey

from .index_conformance import DIFF, LOG, TEST, diff_of, meta, summarised
from .pg_server import PostgresServer


def test_many_hosts_starting_at_once_migrate_the_schema_once(pg_url: str) -> None:
    indexes = [PostgresIndex(pg_url, "memory://store") for _ in range(6)]
    barrier = threading.Barrier(len(indexes))
    errors: list[BaseException] = []

    def start(index: PostgresIndex) -> None:
        barrier.wait()
        try:
            index.put(meta("s", f"t{id(index)}", DIFF))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(index,)) for index in indexes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert indexes[0].count() == 6
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM necro_schema").fetchall() == [(SCHEMA_VERSION,)]
    for index in indexes:
        index.close()


def test_a_database_of_a_newer_release_is_refused(pg_url: str) -> None:
    first = PostgresIndex(pg_url, "memory://store")
    first.count()
    first.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE necro_schema SET version = version + 1")
    later = PostgresIndex(pg_url, "memory://store")
    with pytest.raises(ConfigError, match="newer than this release"):
        later.count()
    later.close()


def test_a_database_of_another_store_is_refused(pg_url: str) -> None:
    mine = PostgresIndex(pg_url, "s3://bucket-a")
    mine.count()
    mine.close()
    other = PostgresIndex(pg_url, "s3://bucket-b")
    with pytest.raises(ConfigError, match="indexes the store s3://bucket-a"):
        other.count()
    other.close()


def test_index_url_chooses_the_index(tmp_path: Path, pg_url: str) -> None:
    assert open_index(None, tmp_path, "x").describe().startswith("sqlite ")
    assert open_index("sqlite", tmp_path, "x").shared is False
    shared = open_index(pg_url, tmp_path, "x")
    assert shared.shared and shared.describe() == pg_url
    with pytest.raises(ConfigError, match="index_url"):
        open_index("mysql://db", tmp_path, "x")
    with pytest.raises(ConfigError, match="index_url"):
        ArtifactStore({"base_path": str(tmp_path), "index_url": "mysql://db"})


@pytest.fixture
def manager(tmp_path: Path, pg_url: str) -> Iterator[MetadataManager]:
    backend = FilesystemBackend(tmp_path / "root", durable=False)
    index = PostgresIndex(pg_url, backend.root_uri)
    opened = MetadataManager(backend, tmp_path / "state", index)
    yield opened
    opened.close()


def test_an_interrupted_rebuild_resumes_without_reading_records_again(
    manager: MetadataManager,
) -> None:
    for n in range(1200):
        record = meta("spec", f"t{n:04d}", DIFF)
        key = ArtifactKey(record.spec_name, record.task_id, record.type)
        manager.backend.upload(key.record_key(1), record.to_json().encode())
    index = manager.index
    assert isinstance(index, PostgresIndex)

    def dies_after(records: Iterator[object], count: int) -> Iterator[object]:
        for n, record in enumerate(records):
            if n == count:
                raise IndexUnavailableError("the host lost the database")
            yield record

    real = index.replace_all
    index.replace_all = lambda records: real(dies_after(iter(records), 700))  # type: ignore[method-assign, assignment, arg-type]
    with pytest.raises(IndexUnavailableError):
        manager.rebuild_index()
    index.replace_all = real  # type: ignore[method-assign]
    assert not index.is_built()
    assert len(index.rebuild_progress()) == 500  # one batch committed before the failure
    loads: list[object] = []
    real_load = manager.load_known
    manager.load_known = lambda key, version, known: (  # type: ignore[method-assign]
        loads.append(key) or real_load(key, version, known)  # type: ignore[func-returns-value]
    )
    assert manager.rebuild_index() == 1200
    assert len(loads) == 700
    assert index.is_built() and index.rebuild_progress() == set()
    assert index.count() == 1200
    assert index.usage_sums() == (1200, 1200, 12000, 24000)


def test_a_schema_1_database_is_migrated_and_its_rows_get_their_insights(pg_url: str) -> None:
    old = meta("s", "t", DIFF, summary=summarised(DIFF, diff_of("src/x.py")))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE necro_schema (version integer NOT NULL)")
        conn.execute(MIGRATIONS[0])
        conn.execute("INSERT INTO necro_schema VALUES (1)")
        conn.execute(
            "INSERT INTO artifacts (spec_name, task_id, type, version, is_latest, created_at,"
            " size, original_size, record) VALUES ('s', 't', 'diff', 1, true, %s, 10, 20, %s)",
            (old.created_at.timestamp(), old.to_json()),
        )
    index = PostgresIndex(pg_url, "memory://store")
    query = SearchQuery(insights=InsightFilter.build(touches="src/*.py"))
    assert index.search(query) == [old]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM necro_schema").fetchone() == (SCHEMA_VERSION,)
    index.close()


# -- content searches that stay flat: changed-paths table, trigram index (schema 3) ------


def _junit_failing(name: str) -> bytes:
    return (
        f'<testsuite name="s" tests="1" failures="1"><testcase classname="tests.mod"'
        f' name="{name}"><failure message="x"/></testcase></testsuite>'
    ).encode()


def test_a_schema_2_database_gets_the_paths_table_and_the_trigram_index(pg_url: str) -> None:
    diff = meta("s", "t", DIFF, summary=summarised(DIFF, diff_of("auth/login.py", "ui/x.py")))
    report = meta("s", "t", TEST, summary=summarised(TEST, _junit_failing("test_login_100")))
    # A database as release 2 of the schema left it, rows and their insight columns filled.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE necro_schema (version integer NOT NULL)")
        first, second = MIGRATIONS[:2]
        assert isinstance(first, str) and isinstance(second, str)
        conn.execute(first)
        for row in (diff, report):
            conn.execute(
                "INSERT INTO artifacts (spec_name, task_id, type, version, is_latest,"
                " created_at, size, original_size, record) VALUES (%s, %s, %s, 1, true, %s,"
                " 10, 20, %s)",
                (
                    row.spec_name,
                    row.task_id,
                    row.type.value,
                    row.created_at.timestamp(),
                    row.to_json(),
                ),
            )
        conn.execute(second)  # fills the insight columns from the records
        conn.execute("INSERT INTO necro_schema VALUES (2)")
    index = PostgresIndex(pg_url, "memory://store")  # migrates when first used
    assert index.search(SearchQuery(insights=InsightFilter.build(touches="auth/**"))) == [diff]
    assert index.search(SearchQuery(insights=InsightFilter.build(test="LOGIN_1"))) == [report]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM necro_schema").fetchone() == (SCHEMA_VERSION,)
        paths = conn.execute("SELECT path FROM artifact_paths ORDER BY path").fetchall()
        assert paths == [("auth/login.py",), ("ui/x.py",)]
        found = conn.execute("SELECT to_regclass(%s)", (FAILING_TEST_INDEX,)).fetchone()
        assert found is not None and found[0] is not None
    index.close()


def test_changed_paths_follow_every_write_of_the_row(pg_url: str) -> None:
    index = PostgresIndex(pg_url, "memory://store")

    def paths() -> list[tuple[str, str]]:
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute("SELECT task_id, path FROM artifact_paths ORDER BY 1, 2")
            return [(r[0], r[1]) for r in rows.fetchall()]

    first = meta("s", "a", DIFF, summary=summarised(DIFF, diff_of("auth/a.py")))
    index.put(first)
    index.put(meta("s", "b", DIFF, summary=summarised(DIFF, diff_of("lib/b.py", "lib/c.py"))))
    index.put(meta("s", "c", LOG))  # no paths, no rows
    assert paths() == [("a", "auth/a.py"), ("b", "lib/b.py"), ("b", "lib/c.py")]
    # The same version written again with other content: its paths are replaced.
    index.put(meta("s", "a", DIFF, summary=summarised(DIFF, diff_of("auth/z.py"))))
    assert paths() == [("a", "auth/z.py"), ("b", "lib/b.py"), ("b", "lib/c.py")]
    touches = SearchQuery(insights=InsightFilter.build(touches="auth/a.py"))
    assert index.search(touches) == []
    index.remove(ArtifactKey("s", "b", DIFF))
    assert paths() == [("a", "auth/z.py")]
    index.replace_all([first])  # a rebuild from the records
    assert paths() == [("a", "auth/a.py")]
    assert index.search(touches) == [first]
    index.destroy()
    assert paths() == []
    index.close()


def _plan(pg_url: str, query: SearchQuery) -> str:
    sql, params = search_sql(query)
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
    assert row is not None
    return json.dumps(row[0])


def test_content_searches_are_index_lookups_not_scans(pg_url: str) -> None:
    """At a few thousand rows (statistics fresh from the rebuild) the planner reads the
    changed-paths index and the trigram index: the growth B9 measures is theirs."""
    diffs = [
        meta(
            "s",
            f"d{i}",
            DIFF,
            tags=(f"batch-{i // 50}", "bench"),
            summary=summarised(DIFF, diff_of(f"pkg{i:04d}/m.py")),
        )
        for i in range(1500)
    ]
    reports = [
        meta("s", f"t{i}", TEST, summary=summarised(TEST, _junit_failing(f"test_case_{i:04d}")))
        for i in range(1500)
    ]
    index = PostgresIndex(pg_url, "memory://store")
    index.replace_all([*diffs, *reports])
    touches = SearchQuery(insights=InsightFilter.build(touches="pkg0042/**"))
    assert index.search(touches) == [diffs[42]]
    assert "artifact_paths_by_path" in _plan(pg_url, touches)
    test = SearchQuery(insights=InsightFilter.build(test="case_0777"))
    assert index.search(test) == [reports[777]]
    assert FAILING_TEST_INDEX in _plan(pg_url, test)
    # No GIN pending list for a search to scan besides the index: the trigram index
    # takes its entries at once, the rebuild moved the tag index's into place.
    with psycopg.connect(pg_url) as conn:
        options = conn.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s", (FAILING_TEST_INDEX,)
        ).fetchone()
        assert options is not None and "fastupdate=off" in options[0]
        pending = conn.execute("SELECT gin_clean_pending_list('artifacts_by_tag'::regclass)")
        assert pending.fetchone() == (0,)
    index.close()


def test_a_multi_word_test_search_looks_up_one_word_and_checks_the_whole_substring(
    pg_url: str,
) -> None:
    """The trigram index is asked for the longest word of the needle (the parts every
    test id shares are in every failing row); the answers are those of a plain
    case-insensitive substring match, wildcards and case included."""
    names = [
        "test_login_ok",
        "test_login_fails",
        "Test_Pay_50%_OFF",
        "test_pay_50x_off",
        "test_a_b",
        *(f"test_filler_{i:03d}" for i in range(200)),
    ]
    reports = [
        meta("s", f"t{i}", TEST, summary=summarised(TEST, _junit_failing(name)))
        for i, name in enumerate(names)
    ]
    index = PostgresIndex(pg_url, "memory://store")
    index.replace_all(reports)

    def expected(needle: str) -> set[str]:
        return {
            r.task_id
            for r in reports
            if r.summary is not None
            and any(needle.lower() in t.lower() for t in r.summary.failing_tests())
        }

    needles = [
        "test_login",
        "mod::test_login_f",
        "TEST_LOGIN_OK",
        "pay_50%_off",
        "_50x_",
        "a_b",
        "login_fails_not",
        "filler_01",
        "::test",
    ]
    for needle in needles:
        query = SearchQuery(insights=InsightFilter.build(test=needle))
        assert {m.task_id for m in index.search(query)} == expected(needle), needle
    assert expected("test_login") == {"t0", "t1"}
    assert expected("pay_50%_off") == {"t2"}
    plan = _plan(pg_url, SearchQuery(insights=InsightFilter.build(test="mod::test_login_f")))
    assert FAILING_TEST_INDEX in plan
    assert "%login%" in plan  # the longest word, not the whole needle, is looked up
    index.close()


def test_without_pg_trgm_test_searches_still_work(pg_server: PostgresServer) -> None:
    """A role that may not create extensions gets the schema without the trigram index
    (a warning says so) and the same answers."""
    role = f"necro_plain_{uuid.uuid4().hex[:8]}"
    url = pg_server.new_database()
    database = url.rpartition("/")[2]
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC')
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'GRANT CREATE ON SCHEMA public TO "{role}"')
    scheme, _, rest = url.partition("://")
    role_url = f"{scheme}://{role}@{rest.partition('@')[2]}"
    try:
        index = PostgresIndex(role_url, "memory://store")
        failing = meta("s", "t", TEST, summary=summarised(TEST, _junit_failing("test_50%_off")))
        index.put(failing)
        index.put(meta("s", "u", TEST, summary=summarised(TEST, _junit_failing("test_500_off"))))
        with psycopg.connect(role_url) as conn:
            found = conn.execute("SELECT to_regclass(%s)", (FAILING_TEST_INDEX,)).fetchone()
            assert found == (None,)
        assert index.search(SearchQuery(insights=InsightFilter.build(test="50%"))) == [failing]
        # Once an administrator has made pg_trgm available, a rebuild adds the index.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_trgm")
        index.replace_all([failing])
        with psycopg.connect(role_url) as conn:
            found = conn.execute("SELECT to_regclass(%s)", (FAILING_TEST_INDEX,)).fetchone()
            assert found is not None and found[0] is not None
        assert index.search(SearchQuery(insights=InsightFilter.build(test="50%"))) == [failing]
        index.close()
    finally:
        pg_server.drop_database(url)
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
