"""The whole store, unchanged, on every backend: filesystem, memory, S3 (moto) and GCS
(fake-gcs-server).

Then several machines on one bucket: two stores with their own state folders
(index and locks, as on two hosts) writing the same artifacts at once.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from necrocode.artifact_store import (
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreConfig,
    RetryingBackend,
)
from necrocode.artifact_store.models import utc_now

from .cloud_servers import GCS_PROJECT, FakeGCS, MotoS3

StoreFactory = Callable[..., ArtifactStore]
BACKENDS = ["filesystem", "memory", "s3", "gcs"]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Open stores on one backend location; each call may name its own state folder."""
    kind: str = request.param
    location: dict[str, Any]
    if kind == "filesystem":
        location = {"base_path": tmp_path / "artifacts"}
    elif kind == "memory":
        location = {"backend": {"space": request.getfixturevalue("memory_space")}}
    elif kind == "s3":
        server: MotoS3 = request.getfixturevalue("moto_server")
        location = {
            "backend": {
                "bucket": request.getfixturevalue("s3_bucket"),
                "prefix": "necrocode",
                "region": "us-east-1",
                "endpoint_url": server.url,
            }
        }
    else:
        emulator: FakeGCS = request.getfixturevalue("gcs_server")
        location = {
            "backend": {
                "bucket": request.getfixturevalue("gcs_bucket"),
                "prefix": "necrocode",
                "project": GCS_PROJECT,
                "endpoint_url": emulator.url,
            }
        }
    opened: list[ArtifactStore] = []

    def make(state: str | None = None, **settings: Any) -> ArtifactStore:
        values = {"backend_type": kind, **location, "retry_backoff_base": 0.01, **settings}
        if state is not None:
            values["state_dir"] = tmp_path / state
        store = ArtifactStore(ArtifactStoreConfig(**values))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_configured_backends_retry(make_store: StoreFactory) -> None:
    assert isinstance(make_store().backend, RetryingBackend)


def test_upload_download_search_delete(make_store: StoreFactory) -> None:
    store = make_store()
    uris = {
        (task, kind): store.upload(task, "chat-app", kind, f"{task} {kind} ".encode() * 300)
        for task in ("1.1", "1.2")
        for kind in ("diff", "log", "test")
    }
    assert store.root_uri.split("://")[0] in ("file", "memory", "s3", "gs")
    for (task, kind), uri in uris.items():
        assert store.download(uri) == f"{task} {kind} ".encode() * 300
        assert b"".join(store.iter_chunks(uri)) == store.download(uri)
        assert store.verify_checksum(uri)
    assert len(store.search(spec_name="chat-app")) == 6
    assert {m.type.value for m in store.search(task_id="1.1")} == {"diff", "log", "test"}
    assert [m.task_id for m in store.search(artifact_type="log")] == ["1.1", "1.2"]
    meta = store.get_metadata(uris["1.2", "diff"])
    assert meta.compressed and meta.stored_size < meta.size
    assert store.delete(uris["1.1", "diff"]) == 1
    assert not store.exists(uris["1.1", "diff"])
    with pytest.raises(ArtifactNotFoundError):
        store.download(uris["1.1", "diff"])
    assert store.delete_by_task_id("1.2") == 3
    assert [m.uri for m in store.search(spec_name="chat-app")] == [
        uris["1.1", "log"],
        uris["1.1", "test"],
    ]


def test_replacing_without_versioning_keeps_one_version(make_store: StoreFactory) -> None:
    store = make_store()
    for n in range(3):
        uri = store.upload("1", "spec", "diff", f"content {n}".encode())
    assert store.download(uri) == b"content 2"
    assert [m.version for m in store.get_all_versions(uri)] == [3]
    report = store.verify_all()
    assert report.orphaned == [] and len(report.ok) == 1


def test_versions_and_tags(make_store: StoreFactory) -> None:
    store = make_store(versioning_enabled=True)
    for n in range(1, 4):
        uri = store.upload("2.1", "spec", "log", f"run {n}".encode(), tags=[f"run-{n}"])
    assert [m.version for m in store.get_all_versions(uri)] == [1, 2, 3]
    assert store.download_version(uri, 1) == b"run 1"
    assert store.download(uri) == b"run 3"
    store.add_tags(uri, ["flaky", "ci"])
    assert store.get_metadata(uri).tags == ("ci", "flaky", "run-3")
    store.update_tags(uri, ["kept"])
    store.remove_tags(uri, ["absent"])
    assert [m.version for m in store.search_by_tags(["kept"])] == [3]
    assert store.search_by_tags(["kept", "run-3"], match="any")[0].uri == uri
    assert store.delete_old_versions(uri, keep=1) == 2
    assert [m.version for m in store.get_all_versions(uri)] == [3]


def test_retention_usage_and_export(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store()
    kept = store.upload("3.1", "exported", "diff", b"d" * 5000)
    store.upload("3.1", "exported", "log", b"l" * 3000)
    store.upload("3.2", "other", "test", b'{"ok": true}')
    store.pin(kept)
    usage = store.get_storage_usage()
    assert (usage.artifact_count, usage.original_bytes) == (3, 5000 + 3000 + len(b'{"ok": true}'))
    assert set(store.get_usage_by_spec()) == {"exported", "other"}
    assert store.get_usage_by_type()["diff"].original_bytes == 5000

    archive = store.export_by_spec("exported", tmp_path / "exported.zip")
    with zipfile.ZipFile(archive) as opened:
        names = opened.namelist()
        assert "exported/3.1/diff.txt" in names and "manifest.json" in names
        assert opened.read("exported/3.1/log.txt") == b"l" * 3000
    assert store.export_by_task("3.2", output_path=tmp_path / "t.zip").is_file()

    later = utc_now() + timedelta(days=40)
    assert {m.uri for m in store.find_expired(now=later)} == {
        m.uri for m in store.search() if m.uri != kept
    }
    report = store.cleanup_expired(now=later)
    assert report.count == 2 and report.errors == []
    assert [m.uri for m in store.search()] == [kept]


def test_verify_all_and_repair(make_store: StoreFactory) -> None:
    store = make_store()
    good = store.upload("4.1", "spec", "diff", b"good bytes " * 100)
    bad = store.upload("4.2", "spec", "diff", b"to be damaged " * 100)
    store.backend.upload(store.get_metadata(bad).object_key, b"damaged")
    orphan = "spec/4.3/log.txt.v000001.0123456789abcdef.gz"
    store.backend.upload(orphan, b"left by a writer that died")

    report = store.verify_all()
    assert report.ok == [good]
    assert [problem.uri for problem in report.corrupted] == [bad]
    assert report.orphaned == [orphan]
    repaired = store.repair(older_than=timedelta(0))
    assert repaired.removed_orphans == [orphan]
    assert not store.backend.exists(orphan)


def test_a_new_host_sees_everything_after_reindex(make_store: StoreFactory) -> None:
    writer = make_store("host-a")
    uri = writer.upload("5.1", "spec", "test", b"{}", tags=["nightly"])
    reader = make_store("host-b")
    assert reader.get_metadata(uri).tags == ("nightly",)  # a miss looks in the records
    writer.upload("5.2", "spec", "log", b"later")
    assert [m.task_id for m in reader.search(spec_name="spec")] == ["5.1"]
    assert reader.reindex() == 2
    assert [m.task_id for m in reader.search(spec_name="spec")] == ["5.1", "5.2"]


# -- several machines, one bucket -------------------------------------------------------

SHARED_UPLOADS = 12
OWN_UPLOADS = 4


def _host_workload(store: ArtifactStore, host: str) -> list[str]:
    """Upload to one shared artifact and to artifacts of this host's own."""
    uris = []
    for n in range(SHARED_UPLOADS):
        uris.append(store.upload("shared", "fleet", "log", f"{host} {n}".encode()))
        if n < OWN_UPLOADS:
            uris.append(store.upload(f"{host}-{n}", "fleet", "diff", f"{host} own {n}".encode()))
    return uris


@pytest.mark.parametrize("versioning", [True, False])
def test_two_hosts_write_one_bucket_at_once(make_store: StoreFactory, versioning: bool) -> None:
    hosts = {
        name: make_store(f"state-{name}", versioning_enabled=versioning) for name in ("a", "b")
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_host_workload, store, name) for name, store in hosts.items()}
        returned = {name: future.result() for name, future in futures.items()}

    written = {f"{host} {n}".encode() for host in hosts for n in range(SHARED_UPLOADS)}
    for store in hosts.values():
        store.reindex()
        own = {
            (m.task_id, store.download(m.uri))
            for m in store.search(spec_name="fleet", artifact_type="diff")
        }
        assert own == {
            (f"{host}-{n}", f"{host} own {n}".encode())
            for host in hosts
            for n in range(OWN_UPLOADS)
        }
        shared = next(uri for uri in returned["a"] if "/shared/" in uri)
        versions = store.get_all_versions(shared)
        if versioning:
            numbers = [m.version for m in versions]
            assert numbers == list(range(1, 2 * SHARED_UPLOADS + 1))  # unique, no gaps
            contents = {store.download_version(shared, v) for v in numbers}
            assert contents == written  # nothing lost
        else:
            assert store.download(shared) in written
        report = store.verify_all()
        assert report.corrupted == [] and report.missing == []


def test_a_host_with_a_stale_index_never_buries_its_upload(make_store: StoreFactory) -> None:
    """Host A's index has not seen B's versions: A's upload must still become the latest."""
    host_a = make_store("host-a")  # opened (and indexed) while the bucket is empty
    host_b = make_store("host-b")
    host_b.upload("7.1", "spec", "diff", b"b first")
    uri = host_b.upload("7.1", "spec", "diff", b"b second")  # v2 replaces v1
    assert host_a.upload("7.1", "spec", "diff", b"from a") == uri
    assert host_a.download(uri) == b"from a"
    assert host_b.download(uri) == b"from a"
    assert [m.version for m in host_b.get_all_versions(uri)] == [3]
