"""The shared vocabulary: types, metadata records, errors and configuration."""

from __future__ import annotations

import builtins
import json
import pickle
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import necrocode.artifact_store as api
from necrocode.artifact_store import (
    ArtifactMetadata,
    ArtifactNotFoundError,
    ArtifactStoreConfig,
    ArtifactStoreError,
    ArtifactType,
    ConfigError,
    IntegrityError,
    InvalidNameError,
    LockTimeoutError,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)

PUBLIC_API = {
    "ArgumentOrderWarning",
    "ArtifactExistsError",
    "ArtifactMetadata",
    "ArtifactNotFoundError",
    "ArtifactProblem",
    "ArtifactReader",
    "ArtifactStore",
    "ArtifactStoreConfig",
    "ArtifactStoreError",
    "ArtifactType",
    "BackendCapabilities",
    "CleanupReport",
    "CloudBackend",
    "CompressionEngine",
    "ConfigError",
    "ContentParseError",
    "ExportProgress",
    "FilesystemBackend",
    "IndexUnavailableError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidNameError",
    "InvalidURIError",
    "LockTimeoutError",
    "MemoryBackend",
    "MetadataManager",
    "ObjectInfo",
    "ReadStream",
    "RemoteArtifactStore",
    "StagedObject",
    "RepairReport",
    "RetentionDays",
    "RetentionPolicy",
    "RetryPolicy",
    "RetryingBackend",
    "SearchPage",
    "StorageBackend",
    "StorageError",
    "StorageFullError",
    "StoragePermissionError",
    "StorageQuota",
    "StorageUsage",
    "Summary",
    "SummaryRefreshReport",
    "UploadItem",
    "UploadResult",
    "VerifyReport",
    "__version__",
    "calculate_checksum",
    "load_config",
    "read_manifest",
}


def test_public_api_is_pinned() -> None:
    assert set(api.__all__) == PUBLIC_API
    for name in api.__all__:
        assert hasattr(api, name), name


def test_permission_error_is_a_deprecated_alias() -> None:
    """The old name still works for one release, and says what replaces it."""
    from necrocode.artifact_store import exceptions

    for module in (api, exceptions):
        with pytest.warns(DeprecationWarning, match="use StoragePermissionError"):
            old = module.PermissionError
        assert old is StoragePermissionError
    with pytest.raises(AttributeError):
        _ = api.NoSuchName
    assert "PermissionError" not in api.__all__


def test_artifact_types() -> None:
    assert [t.value for t in ArtifactType] == ["diff", "log", "test"]
    assert ArtifactType.DIFF.filename == "diff.txt"
    assert ArtifactType.LOG.filename == "log.txt"
    assert ArtifactType.TEST_RESULT.filename == "test-result.json"
    assert ArtifactType.TEST_RESULT.mime_type == "application/json"
    assert ArtifactType.from_filename("log.txt") is ArtifactType.LOG
    assert ArtifactType.parse("test") is ArtifactType.TEST_RESULT
    with pytest.raises(ValueError, match="expected one of: diff, log, test"):
        ArtifactType.parse("binary")


names = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,30}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def metadata(draw: st.DrawFn) -> ArtifactMetadata:
    kind = draw(st.sampled_from(list(ArtifactType)))
    codec = draw(st.sampled_from(["none", "gzip", "zstd"]))
    return ArtifactMetadata(
        uri=f"file:///x/{draw(names)}",
        task_id=draw(names),
        spec_name=draw(names),
        type=kind,
        size=draw(st.integers(0, 2**40)),
        checksum="sha256:" + draw(st.from_regex(r"[0-9a-f]{64}", fullmatch=True)),
        created_at=draw(st.datetimes(timezones=st.just(UTC))),
        compressed=codec != "none",
        original_size=draw(st.integers(0, 2**40)),
        mime_type=kind.mime_type,
        tags=tuple(sorted(draw(st.sets(names, max_size=4)))),
        version=draw(st.integers(1, 10**6)),
        metadata=draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4)),
        codec=codec,
        object_key=draw(names),
        retention_days=draw(st.none() | st.integers(0, 3650)),
        pinned=draw(st.booleans()),
    )


@given(metadata())
def test_metadata_round_trips_losslessly(meta: ArtifactMetadata) -> None:
    assert ArtifactMetadata.from_dict(meta.to_dict()) == meta
    assert ArtifactMetadata.from_json(meta.to_json()) == meta
    assert ArtifactMetadata.from_json(meta.to_json().encode()) == meta
    assert ArtifactMetadata.from_trusted_json(meta.to_json()) == meta


def test_timestamps_are_utc_aware() -> None:
    meta = _meta()
    local = meta.with_changes(
        created_at=datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=9)))
    )
    back = ArtifactMetadata.from_json(local.to_json())
    assert back.created_at == local.created_at
    assert back.created_at.tzinfo is UTC
    assert back.created_at.hour == 3


def _meta(**changes: Any) -> ArtifactMetadata:
    base = ArtifactMetadata(
        uri="file:///s/spec/1/diff.txt",
        task_id="1",
        spec_name="spec",
        type=ArtifactType.DIFF,
        size=10,
        checksum="sha256:" + "0" * 64,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        compressed=True,
        original_size=20,
        mime_type="text/x-diff",
        codec="gzip",
    )
    return base.with_changes(**changes)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("checksum"), "missing field 'checksum'"),
        (lambda d: d.update(size="10"), "size: expected int"),
        (lambda d: d.update(size=True), "size: expected int"),
        (lambda d: d.update(size=-1), "size: must be >= 0"),
        (lambda d: d.update(version=0), "version: must be >= 1"),
        (lambda d: d.update(type="binary"), "unknown artifact type"),
        (lambda d: d.update(created_at="2026-01-01T00:00:00"), "has no timezone"),
        (lambda d: d.update(created_at="yesterday"), "not an ISO 8601"),
        (lambda d: d.update(checksum="md5:abc"), "checksum: expected"),
        (lambda d: d.update(codec="lz4"), "unknown codec"),
        (lambda d: d.update(tags=[1]), "every tag must be a string"),
        (lambda d: d.update(schema=99), "unsupported record schema"),
        (lambda d: d.update(retention_days=-3), "retention_days"),
    ],
)
def test_malformed_records_are_refused(mutate: Any, reason: str) -> None:
    data = _meta().to_dict()
    mutate(data)
    with pytest.raises(IntegrityError, match=reason):
        ArtifactMetadata.from_dict(data)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("checksum"), "missing field 'checksum'"),
        (lambda d: d.update(type="binary"), "unknown artifact type"),
        (lambda d: d.update(created_at="2026-01-01T00:00:00"), "has no timezone"),
        (lambda d: d.update(codec="lz4"), "unknown codec"),
        (lambda d: d.update(schema=99), "unsupported record schema"),
    ],
)
def test_a_damaged_index_row_is_still_refused_with_the_reason(mutate: Any, reason: str) -> None:
    """The trusted parser of index rows skips field checks, never structure checks."""
    data = _meta().to_dict()
    mutate(data)
    with pytest.raises(IntegrityError, match=reason):
        ArtifactMetadata.from_trusted_json(json.dumps(data))


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '"x"', b"\xff\xfe"])
def test_non_object_records_are_refused(text: str | bytes) -> None:
    with pytest.raises(IntegrityError, match="malformed metadata record"):
        ArtifactMetadata.from_json(text)


def test_error_hierarchy_and_builtin_mixins() -> None:
    for cls in (ArtifactNotFoundError, IntegrityError, StorageError, LockTimeoutError, ConfigError):
        assert issubclass(cls, ArtifactStoreError)
    assert issubclass(StorageFullError, StorageError)
    assert issubclass(StoragePermissionError, StorageError)
    assert issubclass(StoragePermissionError, builtins.PermissionError)
    assert issubclass(ArtifactNotFoundError, FileNotFoundError)
    assert issubclass(LockTimeoutError, TimeoutError)
    assert issubclass(InvalidNameError, ValueError)
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    "error",
    [
        ArtifactNotFoundError("gone", uri="file:///a"),
        IntegrityError("bad", uri="u", expected="sha256:1", actual="sha256:2"),
        StorageFullError("full", uri="u", key="k"),
        StoragePermissionError("denied", key="k"),
        StorageError("flaky", key="k", retryable=True),
        LockTimeoutError("slow", uri="u", lock_path="/l", waited=1.5),
        InvalidNameError("no", field="spec_name", value="../x"),
        ConfigError("bad", key="lock_timeout", source="f.yaml"),
    ],
)
def test_errors_survive_pickling(error: ArtifactStoreError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_config_defaults_match_the_spec() -> None:
    config = ArtifactStoreConfig()
    assert config.backend_type == "filesystem"
    assert config.base_path == Path("~/.necrocode/artifacts").expanduser()
    assert config.compression_enabled and config.verify_checksum
    assert not config.versioning_enabled
    assert config.retention_policy.model_dump() == {"diff": 30, "log": 7, "test": 14}
    assert config.storage_quota.max_size_gb == 100
    assert config.storage_quota.warn_threshold == 0.8
    assert config.effective_state_dir == config.base_path / ".necrocode"


def test_config_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "artifact-store.yaml"
    path.write_text(
        "artifact_store:\n"
        "  base_path: ~/store\n"
        "  compression_enabled: false\n"
        "  retention_policy: {diff: 60, log: 3, test: 14}\n"
        "  storage_quota: {max_size_gb: 0.5, warn_threshold: 0.9}\n"
    )
    config = ArtifactStoreConfig.from_yaml(path)
    assert config.base_path == Path.home() / "store"
    assert not config.compression_enabled
    assert config.retention_policy.diff == 60
    assert config.storage_quota.max_bytes == 2**29
    assert ArtifactStoreConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({"backend_type": "ftp"}, "backend_type", "Input should be"),
        ({"retention_policy": {"diff": -1}}, "retention_policy.diff", "greater than or equal"),
        ({"storage_quota": {"warn_threshold": 1.5}}, "storage_quota.warn_threshold", "less than"),
        ({"lock_timeout": "soon"}, "lock_timeout", "valid number"),
        ({"colour": "blue"}, "colour", "unknown key"),
        ({"compression_level": 12}, "compression_level", "gzip levels are 1-9"),
        ({"backend_type": "s3"}, "backend.bucket", "required"),
    ],
)
def test_bad_config_names_key_and_reason(data: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        ArtifactStoreConfig.from_dict(data)
    assert caught.value.key == key
    assert key in str(caught.value)


def test_bad_yaml_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("artifact_store:\n  verify_checksum: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid configuration: verify_checksum"):
        ArtifactStoreConfig.from_yaml(path)
    path.write_text("artifact_store: {unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        ArtifactStoreConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="cannot read"):
        ArtifactStoreConfig.from_yaml(tmp_path / "missing.yaml")


def test_size_is_the_original_and_stored_size_the_bytes_on_disk() -> None:
    new = ArtifactMetadata(
        uri="file:///s/spec/1/diff.txt",
        task_id="1",
        spec_name="spec",
        type=ArtifactType.DIFF,
        size=20,
        checksum="sha256:" + "0" * 64,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        compressed=True,
        stored_size=10,
        mime_type="text/x-diff",
        codec="gzip",
    )
    # Built with the names from before the rename: size (stored) and original_size.
    assert _meta() == new
    assert (new.size, new.stored_size, new.original_size) == (20, 10, 20)
    public = new.to_dict()
    assert public["schema"] == 2
    assert (public["size"], public["stored_size"], public["original_size"]) == (20, 10, 20)
    # Records on disk keep layout 1, which every host can read.
    record = json.loads(new.to_json())
    assert record["schema"] == 1
    assert (record["size"], record["original_size"]) == (10, 20)
    assert "stored_size" not in record
    for back in (
        ArtifactMetadata.from_dict(public),
        ArtifactMetadata.from_json(new.to_json()),
        ArtifactMetadata.from_trusted_json(new.to_json()),
    ):
        assert back == new
    with pytest.raises(TypeError):
        new.with_changes(original_size=5, stored_size=1)


def test_a_record_written_before_the_rename_still_loads() -> None:
    old = (
        '{"checksum":"sha256:' + "0" * 64 + '","codec":"gzip","compressed":true,'
        '"created_at":"2026-01-01T00:00:00.000000+00:00","metadata":{},"mime_type":"text/x-diff",'
        '"object_key":"spec/1/diff.txt.v000001.0123456789abcdef.gz","original_size":20,'
        '"pinned":false,"retention_days":null,"schema":1,"size":10,"spec_name":"spec",'
        '"tags":[],"task_id":"1","type":"diff","uri":"file:///s/spec/1/diff.txt","version":1}'
    )
    for load in (ArtifactMetadata.from_json, ArtifactMetadata.from_trusted_json):
        meta = load(old)
        assert (meta.size, meta.stored_size) == (20, 10)
