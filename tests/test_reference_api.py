"""Drop-ins for the reference API: the calls and settings NecroCode's own code uses."""

from __future__ import annotations

import logging
import zipfile
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from necrocode.artifact_store import (
    ArtifactStore,
    ArtifactStoreConfig,
    IntegrityError,
    InvalidInputError,
    InvalidURIError,
)
from necrocode.artifact_store.naming import ArtifactKey


def test_naive_datetimes_in_search_are_utc(store: ArtifactStore) -> None:
    uri = store.upload("1.1", "spec", "diff", b"x")
    created = store.get_metadata(uri).created_at
    naive = created.astimezone(UTC).replace(tzinfo=None)
    assert [m.uri for m in store.search(created_after=naive)] == [uri]
    assert store.search(created_after=naive + timedelta(seconds=1)) == []
    assert [m.uri for m in store.search(created_before=naive + timedelta(seconds=1))] == [uri]
    aware = store.search(created_after=created - timedelta(hours=1))
    assert [m.uri for m in aware] == [uri]
    with pytest.raises(InvalidInputError, match="created_after must be a datetime"):
        store.search(created_after="yesterday")  # type: ignore[arg-type]


def test_exists_on_a_uri_of_another_store_is_false(store: ArtifactStore, tmp_path: Path) -> None:
    uri = store.upload("1.1", "spec", "log", b"x")
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "other")) as other:
        assert other.exists(uri) is False
        assert other.exists("s3://bucket/spec/1.1/log.txt") is False
        assert other.exists(other.root_uri + "/spec/1.1/log.txt") is False
        with pytest.raises(InvalidURIError):
            other.exists(other.root_uri + "/spec/1.1/nonsense.bin")
    assert store.exists(uri) is True
    with pytest.raises(InvalidURIError, match="must be a string"):
        store.exists(123)  # type: ignore[arg-type]


def test_download_stream_yields_chunks_of_the_given_size(store: ArtifactStore) -> None:
    data = bytes(range(256)) * 100
    uri = store.upload("1.1", "spec", "log", data)
    chunks = list(store.download_stream(uri, chunk_size=1000))
    assert b"".join(chunks) == data
    assert [len(c) for c in chunks] == [1000] * 25 + [600]
    assert b"".join(store.download_stream(uri)) == data  # default 8 KiB
    for bad in (0, -1, 1.5):
        with pytest.raises(InvalidInputError, match="chunk_size"):
            list(store.download_stream(uri, chunk_size=bad))  # type: ignore[arg-type]


def test_download_stream_verifies(store: ArtifactStore) -> None:
    uri = store.upload("1.1", "spec", "log", b"a" * 50_000)
    meta = store.get_metadata(uri)
    path = Path(store.config.base_path) / meta.object_key
    path.write_bytes(store.compression.compress(b"b" * 50_000))
    with pytest.raises(IntegrityError):
        list(store.download_stream(uri, chunk_size=4096))


def test_get_all_artifacts(store: ArtifactStore) -> None:
    assert store.get_all_artifacts() == []
    uris = [store.upload(task, "spec", "diff", task.encode()) for task in ("1.1", "1.2")]
    uris.append(store.upload("9", "other", "test", b"{}"))
    assert [m.uri for m in store.get_all_artifacts()] == uris


def test_export_by_spec_include_metadata(store: ArtifactStore, tmp_path: Path) -> None:
    store.upload("1.1", "spec", "diff", b"+x")
    with_meta = store.export_by_spec("spec", tmp_path / "with.zip")
    without = store.export_by_spec("spec", tmp_path / "without.zip", include_metadata=False)
    by_task = store.export_by_task("1.1", "spec", tmp_path / "task.zip", include_metadata=False)
    with zipfile.ZipFile(with_meta) as archive:
        assert sorted(archive.namelist()) == ["manifest.json", "spec/1.1/diff.txt"]
    for path in (without, by_task):
        with zipfile.ZipFile(path) as archive:
            assert archive.namelist() == ["spec/1.1/diff.txt"]
            assert archive.read("spec/1.1/diff.txt") == b"+x"


@pytest.mark.parametrize("enabled", [True, False])
def test_locking_enabled_is_accepted(
    tmp_path: Path, enabled: bool, caplog: pytest.LogCaptureFixture
) -> None:
    config = ArtifactStoreConfig.from_dict(
        {"base_path": str(tmp_path / "s"), "locking_enabled": enabled}
    )
    assert config.locking_enabled is enabled
    with caplog.at_level(logging.INFO, "necrocode"), ArtifactStore(config) as store:
        uri = store.upload("1.1", "spec", "diff", b"x")
        assert store.download(uri) == b"x"
        # Writers lock either way: versions stay unique.
        key = ArtifactKey.of("spec", "1.1", "diff")
        with store.locks.hold(key.path, uri=uri):
            pass
    noticed = any("locking_enabled: false" in r.getMessage() for r in caplog.records)
    assert noticed is not enabled


def test_storage_usage_reads_as_a_mapping(tmp_path: Path) -> None:
    config = ArtifactStoreConfig(
        base_path=tmp_path / "s",
        compression_enabled=False,
        storage_quota={"max_size_gb": 1e-6, "warn_threshold": 0.5},  # 1073 bytes
    )
    with ArtifactStore(config) as store:
        store.upload("1.1", "spec", "log", b"x" * 600)
        usage = store.get_storage_usage()
    assert usage.stored_bytes == usage["stored_bytes"] == usage["total_size_bytes"] == 600
    assert usage["artifact_count"] == 1
    assert usage["total_size_mb"] == round(600 / 2**20, 4)
    assert usage["quota_max_gb"] == pytest.approx(1e-6, rel=1e-3)
    assert usage["quota_used_percent"] == round(600 / config.storage_quota.max_bytes * 100, 2)
    assert usage["quota_warning"] is True
    assert set(usage.to_dict()) <= set(usage)
    assert dict(usage)["version_count"] == 1
    assert usage.get("missing") is None
    with pytest.raises(KeyError):
        usage["missing"]


def test_storage_usage_without_a_quota(tmp_path: Path) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path / "s", storage_quota={"max_size_gb": None})
    with ArtifactStore(config) as store:
        store.upload("1.1", "spec", "log", b"x" * 600)
        usage = store.get_storage_usage()
    assert usage["quota_max_gb"] is None
    assert usage["quota_warning"] is False
    assert usage["quota_used_percent"] == 0.0


def test_the_reference_module_names_still_import() -> None:
    """Code written against NecroCode's reference implementation imports these modules;
    they re-export what now lives in the layer folders."""
    import necrocode.artifact_store as api
    from necrocode.artifact_store.compression_engine import CompressionEngine
    from necrocode.artifact_store.metadata_manager import MetadataManager
    from necrocode.artifact_store.retention_policy import CleanupReport, RetentionPolicy
    from necrocode.artifact_store.storage_backend import StorageBackend

    assert CompressionEngine is api.CompressionEngine
    assert MetadataManager is api.MetadataManager
    assert RetentionPolicy is api.RetentionPolicy and CleanupReport is api.CleanupReport
    assert StorageBackend is api.StorageBackend


def test_unknown_keywords_are_type_errors_as_python_raises_them(store: ArtifactStore) -> None:
    """Keyword filters and upload flags are typed dicts; a misspelt one must not be
    silently ignored."""
    with pytest.raises(TypeError, match="unexpected keyword argument 'taggs'"):
        store.search(taggs=["x"])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'limit'"):
        list(store.iter_search(limit=3))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'retention'"):
        store.upload("1.1", "spec", "log", b"x", retention=3)  # type: ignore[call-arg]
    assert store.search() == []
