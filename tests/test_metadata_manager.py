"""Metadata records are the truth; the SQLite index is a cache rebuilt from them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from necrocode.artifact_store import (
    ArtifactMetadata,
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreConfig,
    ArtifactType,
    FilesystemBackend,
    MetadataManager,
)
from necrocode.artifact_store.backends.base import ObjectExistsError
from necrocode.artifact_store.index.query import SearchQuery
from necrocode.artifact_store.naming import ArtifactKey


def _meta(
    spec: str, task: str, kind: ArtifactType, *, version: int = 1, when: datetime | None = None
) -> ArtifactMetadata:
    return ArtifactMetadata(
        uri="",
        task_id=task,
        spec_name=spec,
        type=kind,
        size=3,
        checksum="sha256:" + "1" * 64,
        created_at=when or datetime(2026, 3, 1, tzinfo=UTC),
        compressed=False,
        original_size=3,
        mime_type=kind.mime_type,
        version=version,
        object_key=f"{spec}/{task}/{kind.filename}.v{version:06d}.0000000000000000.raw",
    )


@pytest.fixture
def backend(tmp_path: Path) -> FilesystemBackend:
    return FilesystemBackend(tmp_path / "root")


@pytest.fixture
def manager(backend: FilesystemBackend, tmp_path: Path) -> MetadataManager:
    return MetadataManager(backend, tmp_path / "state")


def _fill(manager: MetadataManager) -> list[ArtifactMetadata]:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    metas = []
    for s, spec in enumerate(["chat-app", "iot-dashboard"]):
        for t in range(3):
            for k, kind in enumerate(ArtifactType):
                when = start + timedelta(days=s * 10 + t * 3 + k)
                meta = _meta(spec, f"1.{t}", kind, when=when)
                manager.save(meta)
                metas.append(manager.with_uri(meta))
    return metas


def test_record_is_json_beside_the_artifact(
    manager: MetadataManager, backend: FilesystemBackend
) -> None:
    meta = _meta("chat-app", "1.1", ArtifactType.DIFF)
    manager.save(meta)
    path = backend.root / "chat-app" / "1.1" / "diff.txt.v000001.meta.json"
    assert ArtifactMetadata.from_json(path.read_bytes()).checksum == meta.checksum
    key = ArtifactKey.of("chat-app", "1.1", "diff")
    assert manager.load(key, 1) == manager.with_uri(meta)
    assert manager.get_by_uri(key.uri(backend.root_uri)).version == 1


def test_a_version_record_is_created_once(manager: MetadataManager) -> None:
    meta = _meta("s", "t", ArtifactType.LOG)
    manager.save(meta)
    with pytest.raises(ObjectExistsError):
        manager.save(meta.with_changes(size=99))
    key = ArtifactKey.of("s", "t", "log")
    assert manager.load(key, 1).size == 3


def test_lookups_by_task_and_spec(manager: MetadataManager) -> None:
    _fill(manager)
    by_task = manager.get_by_task_id("1.1")
    assert {(m.spec_name, m.type.value) for m in by_task} == {
        (spec, kind.value) for spec in ("chat-app", "iot-dashboard") for kind in ArtifactType
    }
    assert len(manager.get_by_task_id("1.1", "chat-app")) == 3
    assert len(manager.get_by_spec_name("chat-app")) == 9
    assert manager.get_by_spec_name("nothing") == []
    with pytest.raises(ArtifactNotFoundError):
        manager.get_by_uri(ArtifactKey.of("no", "pe", "log").uri(manager.root_uri))


def test_search_combinations(manager: MetadataManager) -> None:
    metas = _fill(manager)
    after, before = datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC)
    for query in [
        SearchQuery(artifact_type=ArtifactType.LOG),
        SearchQuery(spec_name="iot-dashboard", artifact_type=ArtifactType.DIFF),
        SearchQuery(created_after=after, created_before=before),
        SearchQuery(spec_name="chat-app", task_id="1.2", created_after=after),
        SearchQuery(task_id="1.0", artifact_type=ArtifactType.TEST_RESULT, created_before=before),
    ]:
        expected = [
            m
            for m in metas
            if (query.spec_name is None or m.spec_name == query.spec_name)
            and (query.task_id is None or m.task_id == query.task_id)
            and (query.artifact_type is None or m.type == query.artifact_type)
            and (query.created_after is None or m.created_at >= query.created_after)
            and (query.created_before is None or m.created_at < query.created_before)
        ]
        found = manager.search(query)
        assert found == sorted(expected, key=lambda m: m.created_at), query
        assert found, query


def test_rebuild_from_records_alone(
    manager: MetadataManager, backend: FilesystemBackend, tmp_path: Path
) -> None:
    metas = _fill(manager)
    manager.close()
    for leftover in (tmp_path / "state").glob("index.sqlite3*"):
        leftover.unlink()
    reopened = MetadataManager(backend, tmp_path / "state")
    assert reopened.search(SearchQuery()) == sorted(metas, key=lambda m: m.created_at)
    assert reopened.rebuild_index() == len(metas)


@pytest.mark.parametrize("damage", ["truncate-half", "truncate-zero", "garbage"])
def test_damaged_index_is_rebuilt_on_open(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path / "store")
    with ArtifactStore(config) as store:
        uris = [store.upload(f"t{i}", "spec", "log", f"log {i}".encode() * 100) for i in range(200)]
        index = store.metadata.index.path
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    size = index.stat().st_size
    with open(index, "r+b") as handle:
        if damage == "truncate-half":
            handle.truncate(size // 2)
        elif damage == "truncate-zero":
            handle.truncate(0)
        else:
            handle.seek(0)
            handle.write(b"this is not a database" * 200)
    with caplog.at_level(logging.INFO), ArtifactStore(config) as store:
        found = store.search(spec_name="spec")
        assert sorted(m.uri for m in found) == sorted(uris)
        assert store.download(uris[123]) == b"log 123" * 100


def test_stale_marker_forces_a_rebuild(
    manager: MetadataManager, backend: FilesystemBackend, tmp_path: Path
) -> None:
    _fill(manager)
    manager.index.remove(ArtifactKey.of("chat-app", "1.0", "diff"))
    assert len(manager.get_by_spec_name("chat-app")) == 8
    (tmp_path / "state" / "index.stale").touch()
    reopened = MetadataManager(backend, tmp_path / "state")
    assert len(reopened.get_by_spec_name("chat-app")) == 9
    assert not (tmp_path / "state" / "index.stale").exists()


def test_record_written_elsewhere_is_found_and_indexed(
    manager: MetadataManager, backend: FilesystemBackend
) -> None:
    """Another machine (another index) wrote a record: a lookup finds it in the backend."""
    meta = _meta("shared", "9", ArtifactType.DIFF)
    key = ArtifactKey.of("shared", "9", "diff")
    backend.upload(key.record_key(1), meta.to_json().encode())
    assert manager.get(key) == manager.with_uri(meta)
    assert manager.index.get(key) is not None  # healed the cache


def test_unreadable_record_is_skipped_on_rebuild(
    manager: MetadataManager, backend: FilesystemBackend, caplog: pytest.LogCaptureFixture
) -> None:
    _fill(manager)
    backend.upload(ArtifactKey.of("chat-app", "9.9", "log").record_key(1), b"{not json")
    with caplog.at_level(logging.ERROR):
        assert manager.rebuild_index() == 18
    assert "unreadable metadata record" in caplog.text


def test_usage_totals_stay_exact_through_every_change(tmp_path: Path) -> None:
    """The one-row grand total (read by every quota check) equals the per-spec totals
    and the rows themselves after uploads, overwrites, versions, deletes and a rebuild."""
    config = ArtifactStoreConfig(base_path=tmp_path / "s", versioning_enabled=True)
    with ArtifactStore(config) as store:
        for i in range(30):
            store.upload(
                f"t{i % 7}", f"spec{i % 3}", ("diff", "log", "test")[i % 3], b"x" * (i * 97)
            )
        store.delete_old_versions(f"{store.root_uri}/spec0/t0/diff.txt", keep=1)
        store.delete_by_spec_name("spec1")

        def check() -> None:
            rows = store.metadata.index.search(SearchQuery(latest_only=False))
            grand = store.metadata.index.usage_sums()
            assert grand == (
                sum(
                    1
                    for m in rows
                    if m == store.metadata.index.get(ArtifactKey(m.spec_name, m.task_id, m.type))
                ),
                len(rows),
                sum(m.stored_size for m in rows),
                sum(m.size for m in rows),
            )
            per_spec = store.get_usage_by_spec()
            assert sum(u.stored_bytes for u in per_spec.values()) == grand[2]
            assert sum(u.version_count for u in per_spec.values()) == grand[1]

        check()
        store.rebuild_index()
        check()


def test_index_of_an_older_schema_is_rebuilt(tmp_path: Path) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path / "s")
    with ArtifactStore(config) as store:
        uri = store.upload("1", "s", "log", b"abc")
        with store.metadata.index._write() as conn:
            conn.execute("UPDATE index_state SET value = '1' WHERE name = 'schema'")
            conn.execute("DROP TRIGGER usage_on_insert")
            conn.execute("UPDATE usage_grand SET size = 999")
    with ArtifactStore(config) as store:
        assert store.get_storage_usage().stored_bytes == store.get_metadata(uri).stored_size
        store.upload("2", "s", "log", b"defg")
        assert store.get_storage_usage().version_count == 2
