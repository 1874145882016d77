"""RemoteArtifactStore against a real service: the facade's methods, streams and errors."""

from __future__ import annotations

import builtins
import gzip
import hashlib
import threading
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from necrocode.artifact_store import (
    ArtifactExistsError,
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreConfig,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    RemoteArtifactStore,
    RetryPolicy,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from necrocode.artifact_store.models import utc_now
from necrocode.artifact_store.service import client as client_module

from .conftest import ServiceFactory
from .service_server import ThreadServer, stream_of


@pytest.fixture
def remote(service: ThreadServer) -> Iterator[RemoteArtifactStore]:
    with RemoteArtifactStore(service.url) as store:
        yield store


def test_round_trip_of_every_content_kind(remote: RemoteArtifactStore, tmp_path: Path) -> None:
    uri = remote.upload("1.1", "chat", "diff", b"--- a\n+++ b\n", {"agent": "r1"}, tags=["x"])
    assert uri == f"{remote.base_url}/artifacts/chat/1.1/diff"
    assert remote.download(uri) == b"--- a\n+++ b\n"
    meta = remote.get_metadata(uri)
    assert meta.metadata == {"agent": "r1"}
    assert meta.tags == ("x",)
    assert meta.version_uri == f"{uri}?version=1"

    source = tmp_path / "log.txt"
    source.write_bytes(b"line\n" * 1000)
    log_uri = remote.upload("1.1", "chat", "log", source)
    assert remote.download(log_uri) == source.read_bytes()

    big = 3 * 1024 * 1024 + 7
    stream_uri = remote.upload("1.2", "chat", "log", stream_of(big), mime_type="text/plain")
    with remote.open(stream_uri) as reader:
        total = sum(len(chunk) for chunk in reader)
    assert total == big
    digest = hashlib.sha256(b"".join(stream_of(big))).hexdigest()
    assert remote.get_metadata(stream_uri).checksum == f"sha256:{digest}"

    with open(source, "rb") as handle:
        file_uri = remote.upload("1.3", "chat", "test", handle)
    target = tmp_path / "out" / "copy.txt"
    target.parent.mkdir()
    assert remote.download_to(file_uri, target).original_size == 5000
    assert target.read_bytes() == source.read_bytes()
    assert b"".join(remote.iter_chunks(file_uri)) == source.read_bytes()
    assert remote.exists(file_uri)
    assert not remote.exists(f"{remote.base_url}/artifacts/chat/9/test")


def test_versions_tags_pins_and_deletes(remote: RemoteArtifactStore) -> None:
    uri = remote.upload("1", "spec", "log", b"one")
    remote.upload("1", "spec", "log", b"two")
    assert remote.upload_version("1", "spec", "log", b"two", if_changed=True).version == 2
    assert [m.version for m in remote.get_all_versions(uri)] == [1, 2]
    assert remote.download_version(uri, 1) == b"one"
    assert remote.add_tags(uri, ["b", "a"]).tags == ("a", "b")
    assert remote.update_tags(uri, ["c"]).tags == ("c",)
    assert remote.remove_tags(uri, ["c"]).tags == ()
    assert remote.pin(uri).pinned
    assert not remote.unpin(uri).pinned
    remote.add_tags(uri, ["keep"])
    assert [m.uri for m in remote.search_by_tags(["keep"])] == [uri]
    assert remote.delete_old_versions(uri, keep=1) == 1
    assert [m.version for m in remote.get_all_versions(uri)] == [2]
    with pytest.raises(ArtifactExistsError):
        remote.upload("1", "spec", "log", b"three", if_absent=True)
    assert remote.delete(uri) == 1
    assert remote.delete(uri, missing_ok=True) == 0
    with pytest.raises(ArtifactNotFoundError):
        remote.download(uri)
    with pytest.raises(ArtifactNotFoundError):
        remote.delete(uri)


def test_search_pages_through_everything(
    remote: RemoteArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "PAGE_SIZE", 3)
    for number in range(10):
        remote.upload(str(number), "many", "diff", b"d%d" % number)
    remote.upload("0", "other", "log", b"x")
    found = remote.search(spec_name="many")
    assert [m.task_id for m in found] == [str(n) for n in range(10)]
    assert len(remote.search(limit=4)) == 4
    assert len(remote.search(created_after=utc_now() - timedelta(hours=1))) == 11
    assert [m.spec_name for m in remote.get_by_task_id("0")] == ["many", "other"]
    remote.upload("9", "logs", "log", b"Traceback (most recent call last):\n  boom\n")
    assert [m.task_id for m in remote.search(has_errors=True)] == ["9"]
    assert remote.delete_by_spec_name("logs") == 1
    assert remote.delete_by_spec_name("many") == 10
    assert [m.spec_name for m in remote.search()] == ["other"]


def test_usage_export_and_maintenance(remote: RemoteArtifactStore, tmp_path: Path) -> None:
    remote.upload("1", "exp", "diff", b"diff")
    remote.upload("2", "exp", "log", b"log")
    assert remote.get_storage_usage().artifact_count == 2
    assert set(remote.get_usage_by_spec()) == {"exp"}
    assert set(remote.get_usage_by_type()) == {"diff", "log"}
    assert remote.config.storage_quota.max_size_gb == 100
    path = remote.export_by_spec("exp", tmp_path)
    with zipfile.ZipFile(path) as archive:
        assert archive.read("exp/2/log.txt") == b"log"
    task_zip = remote.export_by_task("1", "exp", tmp_path / "one.zip")
    with zipfile.ZipFile(task_zip) as archive:
        assert "exp/1/diff.txt" in archive.namelist()
    report = remote.verify_all()
    assert report.healthy and report.checked == 2
    assert remote.find_expired() == []
    later = remote.find_expired(utc_now() + timedelta(days=31))
    assert sorted(m.type.value for m in later) == ["diff", "log"]  # 30 and 7 days
    assert [m.type.value for m in remote.find_expired(utc_now() + timedelta(days=8))] == ["log"]
    assert remote.cleanup_expired(dry_run=True).dry_run
    assert remote.repair().indexed == 2
    assert remote.repair(older_than=timedelta(0)).indexed == 2
    assert remote.rebuild_index() == 2


def test_errors_map_to_the_same_classes(service_factory: ServiceFactory, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("read reader-token-0123456789\nwrite writer-token-0123456789\n")
    server = service_factory(tokens_file=tokens, max_upload_size=100)
    with RemoteArtifactStore(server.url, token="writer-token-0123456789") as writer:
        uri = writer.upload("1", "s", "log", b"ok")
        with pytest.raises(StorageFullError):
            writer.upload("1", "s", "log", b"x" * 101)
        with pytest.raises(StoragePermissionError) as caught:
            writer.delete(uri)  # admin only
        assert isinstance(caught.value, builtins.PermissionError)
        with pytest.raises(ArtifactNotFoundError):
            writer.get_metadata(f"{server.url}/artifacts/s/2/log")
        with pytest.raises(InvalidNameError):
            writer.upload("..", "s", "log", b"x")  # refused before any request
        with pytest.raises(InvalidInputError):
            writer.get_metadata("http://elsewhere.example/artifacts/s/1/log")
    with RemoteArtifactStore(server.url) as anonymous, pytest.raises(StoragePermissionError):
        anonymous.download(uri)
    with RemoteArtifactStore(server.url, token="reader-token-0123456789") as reader:
        assert reader.download(uri) == b"ok"
        with pytest.raises(StoragePermissionError):
            reader.upload("1", "s", "log", b"new")


def test_a_corrupted_artifact_cuts_the_download(service: ThreadServer) -> None:
    store = service.store
    content = bytes(range(256)) * 16384  # 4 MiB, several chunks
    uri = store.upload("1", "bad", "log", content)
    meta = store.get_metadata(uri)
    path = Path(store.config.base_path) / meta.object_key
    damaged = bytearray(gzip.decompress(path.read_bytes()))
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(damaged)))
    with RemoteArtifactStore(service.url) as remote:
        url = f"{remote.base_url}/artifacts/bad/1/log"
        # The server holds the last chunk back until the hash is checked: the
        # transfer is cut short instead of completing with bad bytes.
        with pytest.raises((IntegrityError, StorageError)):
            remote.download(url)


def test_unreachable_server_is_retried_then_a_storage_error() -> None:
    attempts: list[float] = []
    policy = RetryPolicy(attempts=3, backoff_base=0.01, jitter=False, sleep=attempts.append)
    with (
        RemoteArtifactStore("http://127.0.0.1:9", retry_policy=policy) as remote,
        pytest.raises(StorageError) as caught,
    ):
        remote.get_metadata("http://127.0.0.1:9/artifacts/s/t/diff")
    assert len(attempts) == 2  # three attempts, two waits between them
    assert caught.value.__cause__ is not None


def test_reads_while_an_unversioned_artifact_is_replaced(
    service_factory: ServiceFactory, tmp_path: Path
) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path / "plain", durable_writes=False)
    with ArtifactStore(config) as store:
        server = service_factory(store)
        contents = [bytes([n]) * (1000 + n) for n in range(20)]
        with RemoteArtifactStore(server.url) as remote:
            uri = remote.upload("1", "swap", "log", contents[0])
            stop = threading.Event()

            def replace() -> None:  # a new version every few milliseconds
                number = 0
                while not stop.wait(0.005):
                    number += 1
                    store.upload("1", "swap", "log", contents[number % len(contents)])

            writer = threading.Thread(target=replace)
            writer.start()
            try:
                for _ in range(40):
                    assert remote.download(uri) in contents  # old or new, never torn or lost
            finally:
                stop.set()
                writer.join()


def test_metadata_too_big_for_a_header_is_fetched_apart(remote: RemoteArtifactStore) -> None:
    custom = {"notes": "n" * 20000, "title": "ünïcode"}
    uri = remote.upload("1", "big-meta", "log", b"payload", custom)
    with remote.open(uri) as reader:
        assert reader.read() == b"payload"
        assert reader.metadata.metadata == custom
    small = remote.upload("2", "big-meta", "log", b"x", {"title": "ünïcode"})
    with remote.open(small) as reader:
        assert reader.metadata.metadata == {"title": "ünïcode"}  # through the header


def test_sizes_say_the_same_over_http(remote: RemoteArtifactStore, service: ThreadServer) -> None:
    """size = bytes uploaded, stored_size = bytes on disk: in the JSON and back in Python."""
    text = b"all work and no play " * 500
    uri = remote.upload("1", "sizes", "log", text)
    local = service.store.search(spec_name="sizes")[0]
    assert local.size == len(text) and 0 < local.stored_size < len(text)
    over_http = remote.get_metadata(uri)
    assert (over_http.size, over_http.stored_size) == (local.size, local.stored_size)
    body = httpx.get(f"{service.url}/v1/artifacts/sizes/1/log/metadata", timeout=30).json()
    assert (body["size"], body["stored_size"], body["original_size"]) == (
        len(text),
        local.stored_size,
        len(text),
    )


def test_the_upload_forms_of_the_facade_work_remotely(
    remote: RemoteArtifactStore, tmp_path: Path
) -> None:
    """``ref=``, ``progress``, ``upload_file`` and unknown keywords behave as on
    ``ArtifactStore``: one signature (``UploadFlags``) serves both."""
    seen: list[tuple[int, int]] = []
    data = b"line\n" * 50_000
    uri = remote.upload(
        ref="chat-app/1.1/log", content=data, progress=lambda d, t: seen.append((d, t))
    )
    assert remote.download(uri) == data
    assert seen and seen[-1] == (len(data), len(data))
    file = tmp_path / "report.json"
    file.write_bytes(b'{"success": true, "test_results": []}')
    uri = remote.upload_file(str(file), ref="chat-app/1.1/test", tags=["ci"])
    meta = remote.get_metadata(uri)
    assert meta.tags == ("ci",) and remote.download(uri) == file.read_bytes()
    with pytest.raises(TypeError, match="unexpected keyword argument 'tag'"):
        remote.upload("1.2", "chat-app", "log", b"x", tag=["x"])  # type: ignore[call-arg]
    with pytest.raises(InvalidInputError, match="upload needs content"):
        remote.upload(ref="chat-app/1.2/log")
    assert remote.search(task_id="1.2") == []
