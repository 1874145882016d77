"""What only the PostgreSQL index does: migrating safely when many hosts start at once,
refusing a database of another store or of a newer release, resuming a rebuild."""

from __future__ import annotations

import threading
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
from necrocode.artifact_store.index.pg_schema import MIGRATIONS, SCHEMA_VERSION
from necrocode.artifact_store.index.postgres import PostgresIndex
from necrocode.artifact_store.naming import ArtifactKey

from .index_conformance import DIFF, diff_of, meta, summarised


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
