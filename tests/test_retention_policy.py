"""Retention: expiry per type, overrides, pinning, cleanup runs and their log."""

from __future__ import annotations

import gzip
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from necrocode.artifact_store import (
    ArtifactMetadata,
    ArtifactStore,
    ArtifactStoreConfig,
    ArtifactType,
    InvalidInputError,
    RetentionDays,
    RetentionPolicy,
)
from necrocode.artifact_store.maintenance.retention import read_cleanup_log
from necrocode.artifact_store.models import utc_now
from necrocode.artifact_store.naming import ArtifactKey, new_generation
from necrocode.artifact_store.pipeline.integrity import calculate_checksum


def _meta(kind: ArtifactType, created: datetime, **changes: object) -> ArtifactMetadata:
    meta = ArtifactMetadata(
        uri="file:///x/s/t/f",
        task_id="t",
        spec_name="s",
        type=kind,
        size=1,
        checksum="sha256:" + "0" * 64,
        created_at=created,
        compressed=False,
        original_size=1,
        mime_type="text/plain",
    )
    return meta.with_changes(**changes)


def test_policy_defaults_overrides_and_pins() -> None:
    policy = RetentionPolicy()
    assert policy.days_by_type() == {"diff": 30, "log": 7, "test": 14}
    created = datetime(2026, 1, 1, tzinfo=UTC)
    log = _meta(ArtifactType.LOG, created)
    assert policy.expires_at(log) == created + timedelta(days=7)
    assert not policy.is_expired(log, created + timedelta(days=7) - timedelta(microseconds=1))
    assert policy.is_expired(log, created + timedelta(days=7))
    assert policy.days_for(log.with_changes(retention_days=90)) == 90
    assert policy.expires_at(log.with_changes(pinned=True)) is None
    assert not policy.is_expired(log.with_changes(pinned=True), created + timedelta(days=10_000))
    custom = RetentionPolicy(RetentionDays(diff=1, log=2, test=3))
    assert custom.days_for(_meta(ArtifactType.TEST_RESULT, created)) == 3


@pytest.fixture
def typed(store: ArtifactStore) -> dict[str, str]:
    return {
        kind: store.upload("1", "spec", kind, kind.encode() * 50)
        for kind in ("diff", "log", "test")
    }


def test_find_expired_follows_the_days_per_type(
    store: ArtifactStore, typed: dict[str, str]
) -> None:
    now = utc_now()
    assert store.find_expired(now) == []
    assert [m.uri for m in store.find_expired(now + timedelta(days=8))] == [typed["log"]]
    assert {m.uri for m in store.find_expired(now + timedelta(days=15))} == {
        typed["log"],
        typed["test"],
    }
    assert len(store.find_expired(now + timedelta(days=31))) == 3
    with pytest.raises(InvalidInputError):
        store.find_expired(datetime(2030, 1, 1))


def test_retention_override_and_pinning(store: ArtifactStore, typed: dict[str, str]) -> None:
    short = store.upload("2", "spec", "diff", b"short-lived", retention_days=1)
    now = utc_now()
    assert [m.uri for m in store.find_expired(now + timedelta(days=2))] == [short]
    store.pin(typed["log"])
    assert store.get_metadata(typed["log"]).pinned
    assert typed["log"] not in {m.uri for m in store.find_expired(now + timedelta(days=3650))}
    store.unpin(typed["log"])
    assert typed["log"] in {m.uri for m in store.find_expired(now + timedelta(days=8))}


def test_dry_run_deletes_nothing_but_is_logged(store: ArtifactStore, typed: dict[str, str]) -> None:
    later = utc_now() + timedelta(days=15)
    report = store.cleanup_expired(dry_run=True, now=later)
    assert report.dry_run and report.count == 2
    assert set(report.uris) == {typed["log"], typed["test"]}
    assert all(store.exists(uri) for uri in typed.values())
    lines = read_cleanup_log(store.config.effective_state_dir)
    assert len(lines) == 1 and lines[0]["dry_run"] is True and lines[0]["count"] == 2


def test_cleanup_deletes_expired_and_logs_the_run(
    store: ArtifactStore, typed: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    later = utc_now() + timedelta(days=15)
    sizes = {uri: store.get_metadata(uri).stored_size for uri in typed.values()}
    with caplog.at_level(logging.INFO, logger="necrocode.artifact_store"):
        report = store.cleanup_expired(now=later)
    assert set(report.uris) == {typed["log"], typed["test"]}
    assert report.bytes_freed == sizes[typed["log"]] + sizes[typed["test"]]
    assert not store.exists(typed["log"]) and not store.exists(typed["test"])
    assert store.download(typed["diff"]) == b"diff" * 50
    assert "cleanup: 2 expired artifact versions deleted" in caplog.text
    second = store.cleanup_expired(now=later)
    assert second.count == 0
    log_path = store.config.effective_state_dir / "cleanup.log"
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [e["count"] for e in entries] == [2, 0]
    assert entries[0]["policy"] == {"days": {"diff": 30, "log": 7, "test": 14}}
    assert sorted(entries[0]["deleted"]) == sorted([typed["log"], typed["test"]])
    assert entries[0]["errors"] == [] and entries[0]["dry_run"] is False


def test_cleanup_applies_to_old_versions_too(versioned_store: ArtifactStore) -> None:
    uri = versioned_store.upload("1", "s", "log", b"v1")
    versioned_store.upload("1", "s", "log", b"v2", retention_days=365)
    report = versioned_store.cleanup_expired(now=utc_now() + timedelta(days=8))
    assert report.uris == [f"{uri}?version=1"]
    assert [m.version for m in versioned_store.get_all_versions(uri)] == [2]
    assert versioned_store.download(uri) == b"v2"


def _bulk_fill(store: ArtifactStore, count: int, old: datetime, new: datetime) -> None:
    """Write ``count`` artifacts' objects and records straight to the backend, then index.

    Half are created at ``old`` and half at ``new``; going around ``upload`` only
    makes a 20,000-artifact fixture affordable in the default test run.
    """
    payload = b"log line\n" * 200
    stored = gzip.compress(payload)
    checksum = calculate_checksum(payload)
    for i in range(count):
        key = ArtifactKey.of(f"spec{i % 20}", f"task{i}", "log")
        object_key = key.object_key(1, new_generation(), "gzip")
        meta = ArtifactMetadata(
            uri=key.uri(store.root_uri),
            task_id=key.task_id,
            spec_name=key.spec_name,
            type=ArtifactType.LOG,
            size=len(stored),
            checksum=checksum,
            created_at=old if i % 2 == 0 else new,
            compressed=True,
            original_size=len(payload),
            mime_type="text/plain",
            codec="gzip",
            object_key=object_key,
        )
        store.backend.upload(object_key, stored)
        store.backend.upload(key.record_key(1), meta.to_json().encode(), if_absent=True)
    assert store.rebuild_index() == count


def test_cleanup_10000_of_20000(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path / "bulk", durable_writes=False)
    now = utc_now()
    with ArtifactStore(config) as store:
        _bulk_fill(store, 20_000, old=now - timedelta(days=30), new=now - timedelta(days=1))
        started = time.perf_counter()
        report = store.cleanup_expired(now=now)
        elapsed = time.perf_counter() - started
        assert report.count == 10_000 and report.errors == []
        remaining = store.search(artifact_type="log")
        assert len(remaining) == 10_000
        assert all(int(m.task_id.removeprefix("task")) % 2 == 1 for m in remaining)
        usage = store.get_storage_usage()
        assert usage.artifact_count == 10_000
        assert store.download(remaining[0].uri) == b"log line\n" * 200
        assert store.find_expired(now) == []
    with capsys.disabled():
        rate = report.count / elapsed
        print(f"\n[cleanup] {report.count} expired deleted in {elapsed:.1f}s: {rate:.0f}/s")
