"""Many hosts, one bucket, one PostgreSQL index: the hosts are separate processes with
separate state folders (``shared_host.py``), on the moto S3 server and a real
PostgreSQL database started by the suite."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from necrocode.artifact_store import (
    ArtifactStore,
    IndexUnavailableError,
    LockTimeoutError,
    StorageFullError,
)
from necrocode.artifact_store.models import utc_now

from .cloud_servers import MotoS3, free_port
from .conftest import subprocess_env
from .pg_server import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
HostConfig = Callable[..., dict[str, Any]]


@pytest.fixture
def host_config(s3_bucket: str, moto_server: MotoS3, pg_url: str, tmp_path: Path) -> HostConfig:
    """The configuration of host ``n``: the shared bucket and database, its own state."""

    def make(n: int, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "backend_type": "s3",
            "backend": {"bucket": s3_bucket, "endpoint_url": moto_server.url},
            "state_dir": str(tmp_path / f"host{n}"),
            "index_url": pg_url,
            "index_connect_timeout": 3,
            "compression_enabled": False,
            "durable_writes": False,
        }
        config.update(overrides)
        return config

    return make


def spawn(action: str, config: dict[str, Any], *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.shared_host", action, json.dumps(config), *map(str, args)],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result(process: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    document: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return document


def test_an_upload_on_one_host_is_seen_by_every_other_at_once(host_config: HostConfig) -> None:
    writer = spawn("upload", host_config(1), "fleet", 20, 100)
    with ArtifactStore(host_config(2)) as reader:
        assert reader.search(spec_name="fleet") == []
        uris = result(writer)["uris"]
        # No rebuild, no listing: the next query sees everything.
        found = reader.search(spec_name="fleet")
        assert sorted(m.uri for m in found) == sorted(uris)
        usage = reader.get_storage_usage()
        assert (usage.artifact_count, usage.stored_bytes) == (20, 2000)
        assert reader.download(uris[3]) == bytes([3]) * 100
        assert reader.metadata.index.describe().startswith("postgresql://")


def test_three_hosts_racing_for_the_quota_never_exceed_it(host_config: HostConfig) -> None:
    size = 10_000
    quota = {"max_size_gb": 10 * size / 2**30, "warn_threshold": 1.0}
    hosts = [
        spawn("upload", host_config(n, storage_quota=quota), f"h{n}", 6, size) for n in range(3)
    ]
    outcomes = [result(host) for host in hosts]
    stored = sum(len(o["uris"]) for o in outcomes)
    assert stored == 10  # exactly as many as fit: 18 tried
    assert sum(o["refused"] for o in outcomes) == 8
    with ArtifactStore(host_config(9, storage_quota=quota)) as store:
        usage = store.get_storage_usage()
        assert usage.stored_bytes == 10 * size <= usage.quota_bytes
        assert usage.artifact_count == 10
        with pytest.raises(StorageFullError, match="quota"):
            store.upload("one-more", "h9", "log", b"z" * size)
        with store.metadata.index.connection() as conn:  # type: ignore[attr-defined]
            assert conn.execute("SELECT COUNT(*) FROM reservations").fetchone() == (0,)


def test_three_hosts_writing_one_artifact_get_gap_free_versions(host_config: HostConfig) -> None:
    hosts = [
        spawn("versions", host_config(n, versioning_enabled=True), f"host{n}", "race", 8)
        for n in range(3)
    ]
    for host in hosts:
        result(host)
    with ArtifactStore(host_config(9, versioning_enabled=True)) as store:
        uri = store.search(task_id="race")[0].uri
        versions = store.get_all_versions(uri)
        assert [m.version for m in versions] == list(range(1, 25))
        contents = sorted(store.download(m.version_uri) for m in versions)
        expected = sorted(f"host{n} {i}\n".encode() for n in range(3) for i in range(8))
        assert contents == expected


def test_deletes_and_cleanup_on_one_host_are_seen_by_the_others(
    host_config: HostConfig,
) -> None:
    result(spawn("upload", host_config(1), "old", 12, 50))
    with ArtifactStore(host_config(2)) as other:
        found = other.search(spec_name="old")
        assert len(found) == 12
        other.delete(found[0].uri)
        with ArtifactStore(host_config(3)) as third:
            assert len(third.search(spec_name="old")) == 11
            # Two hosts clean up at once, a year later: each artifact is deleted once.
            later = (utc_now() + timedelta(days=365)).isoformat()
            first, second = (
                spawn("cleanup", host_config(4), later),
                spawn("cleanup", host_config(5), later),
            )
            reports = [result(first), result(second)]
            assert all(r["errors"] == [] for r in reports)
            deleted = [uri for r in reports for uri in r["deleted"]]
            assert sorted(deleted) == sorted(m.uri for m in found[1:])
            assert third.search(spec_name="old") == []
            assert third.get_storage_usage().artifact_count == 0


def test_a_cleanup_that_dies_half_way_is_finished_by_the_next_run(
    host_config: HostConfig,
) -> None:
    result(spawn("upload", host_config(1), "expiring", 6, 30))
    with ArtifactStore(host_config(2)) as store:
        store.pin(store.search(spec_name="expiring")[0].uri)
    later = (utc_now() + timedelta(days=365)).isoformat()
    # One thread, so the second delete_many is the first folder's objects.
    crashed = spawn("cleanup-crash", host_config(3, maintenance_workers=1), later)
    crashed.communicate(timeout=60)
    assert crashed.returncode == 137
    with ArtifactStore(host_config(4)) as store:
        report = store.cleanup_expired(now=datetime.fromisoformat(later))
        assert report.errors == []
        # Nothing lost: the pinned artifact stays, every expired one is gone.
        left = store.search(spec_name="expiring")
        assert [m.task_id for m in left] == ["t0"]
        assert store.download(left[0].uri) == bytes([0]) * 30
        assert store.get_storage_usage().artifact_count == 1
        # What the dead host left (objects without records) is repair's to collect.
        repaired = store.repair(older_than=timedelta(0))
        assert len(repaired.removed_orphans) == 1
        assert store.verify_all().orphaned == []


def test_a_killed_host_leaves_no_lock_and_no_reservation_behind(
    host_config: HostConfig,
) -> None:
    quota = {"max_size_gb": 8192 / 2**30, "warn_threshold": 1.0}
    holder = spawn("hold", host_config(1, storage_quota=quota), "spec", "task")
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "holding"
    with ArtifactStore(host_config(2, storage_quota=quota, lock_timeout=0.2)) as other:
        # The lock is held on another host: this one times out, typed.
        with pytest.raises(LockTimeoutError):
            other.upload("task", "spec", "log", b"mine")
        # 4 KiB of the 8 KiB quota are reserved by the host in flight.
        with pytest.raises(StorageFullError, match="quota"):
            other.upload("other", "spec", "log", b"y" * 6000)
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=10)
        # Its session is gone: the lock is free and the reservation swept.
        deadline = time.monotonic() + 10
        while True:
            try:
                other.upload("task", "spec", "log", b"mine")
                break
            except LockTimeoutError:
                assert time.monotonic() < deadline
        other.upload("other", "spec", "log", b"y" * 6000)
        assert other.get_storage_usage().stored_bytes == 6004


def test_uploads_survive_a_database_restart(
    host_config: HostConfig, pg_server: PostgresServer, pg_url: str
) -> None:
    loop = spawn("loop", host_config(1), "restart", 6)
    time.sleep(2)
    if pg_server.restartable:
        pg_server.stop()
        time.sleep(0.5)
        pg_server.start()
    else:
        pg_server.cut_connections(pg_url.rpartition("/")[2])
    outcome = result(loop)
    assert len(outcome["uris"]) > 5
    assert set(outcome["errors"]) <= {"IndexUnavailableError"}
    with ArtifactStore(host_config(2)) as store:
        # Every upload that returned a URI is in the shared index and downloads.
        found = {m.uri for m in store.search(spec_name="restart")}
        assert set(outcome["uris"]) <= found
        for uri in outcome["uris"][::7]:
            assert store.download(uri).startswith(b"line ")


def test_rebuild_index_fills_a_dropped_database_from_the_bucket(
    host_config: HostConfig, pg_server: PostgresServer, pg_url: str
) -> None:
    uris = result(spawn("upload", host_config(1), "keep", 30, 20))["uris"]
    pg_server.drop_database(pg_url)
    name = pg_url.rpartition("/")[2]
    with pg_server._admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    with ArtifactStore(host_config(2)) as store:
        # Opening the empty database migrates it and rebuilds it from the records.
        assert sorted(m.uri for m in store.search(spec_name="keep")) == sorted(uris)
        assert store.rebuild_index() == 30
        assert store.get_storage_usage().stored_bytes == 600


def test_with_the_database_down_reads_by_uri_still_work(host_config: HostConfig) -> None:
    with ArtifactStore(host_config(1)) as store:
        uri = store.upload("1.1", "spec", "diff", b"+a\n")
    dead = f"postgresql://nobody@127.0.0.1:{free_port()}/gone"
    with ArtifactStore(host_config(2, index_url=dead, index_connect_timeout=1)) as down:
        assert down.download(uri) == b"+a\n"
        assert down.get_metadata(uri).checksum.startswith("sha256:")
        with pytest.raises(IndexUnavailableError, match="unreachable"):
            down.search(spec_name="spec")
        with pytest.raises(IndexUnavailableError):
            down.upload("1.2", "spec", "diff", b"+b\n")


def test_a_reservation_failing_mid_stream_stores_nothing(
    host_config: HostConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database dropping while an upload reserves its bytes: the upload fails, typed,
    and the backend's retry policy does not replay the cut stream into a short object."""
    from necrocode.artifact_store.index.pg_coordination import ReservedQuota

    calls: list[int] = []
    real = ReservedQuota._reserve

    def flaky(self: ReservedQuota, *args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise IndexUnavailableError("index database went away", retryable=True)
        real(self, *args)

    monkeypatch.setattr(ReservedQuota, "_reserve", flaky)
    quota = {"max_size_gb": 1.0}
    with ArtifactStore(host_config(1, storage_quota=quota)) as store:
        chunks = [b"a" * 1000, b"b" * 1000, b"c" * 1000]
        with pytest.raises(IndexUnavailableError, match="went away"):
            store.upload("cut", "spec", "log", iter(chunks))
        assert store.search(task_id="cut") == []
        assert not store.exists(store.root_uri + "/spec/cut/log.txt")
        uri = store.upload("whole", "spec", "log", iter(chunks))
        assert store.download(uri) == b"".join(chunks)
        assert store.verify_all().orphaned == []
