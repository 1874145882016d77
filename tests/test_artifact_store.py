"""The facade through its public API: upload, download, search, delete, integrity."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from necrocode.artifact_store import (
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreConfig,
    ArtifactType,
    ExportProgress,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    InvalidURIError,
    StorageFullError,
    read_manifest,
)
from necrocode.artifact_store.models import utc_now

from .conftest import subprocess_env


def files_under(root: Path) -> list[str]:
    """Every file below ``root`` except the store's own state folder."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".necrocode" not in p.parts
    )


def object_path(store: ArtifactStore, uri: str) -> Path:
    meta = store.get_metadata(uri)
    return store.config.base_path / meta.object_key


# -- upload and download --------------------------------------------------------------


def test_upload_returns_uri_and_download_returns_bytes(store: ArtifactStore) -> None:
    uri = store.upload("1.1", "chat-app", ArtifactType.DIFF, b"--- a\n+++ b\n")
    assert uri == f"{store.config.base_path.as_uri()}/chat-app/1.1/diff.txt"
    assert store.download(uri) == b"--- a\n+++ b\n"
    assert store.exists(uri)


@pytest.mark.parametrize(
    "make",
    [
        lambda data, tmp: data,
        lambda data, tmp: bytearray(data),
        lambda data, tmp: memoryview(data),
        lambda data, tmp: io.BytesIO(data),
        lambda data, tmp: iter([data[:10], data[10:]]),
        lambda data, tmp: (tmp / "content.bin", (tmp / "content.bin").write_bytes(data))[0],
    ],
    ids=["bytes", "bytearray", "memoryview", "file", "iterable", "path"],
)
def test_content_kinds(store: ArtifactStore, tmp_path: Path, make: object) -> None:
    data = os.urandom(3000)
    uri = store.upload("t", "s", "log", make(data, tmp_path))  # type: ignore[operator]
    assert store.download(uri) == data


def test_text_is_stored_as_utf8(store: ArtifactStore) -> None:
    uri = store.upload("t", "s", "log", "héllo wörld")
    assert store.download(uri) == "héllo wörld".encode()


def test_metadata_recorded_at_upload(store: ArtifactStore) -> None:
    data = b"PASSED test_x\n" * 500
    before = utc_now()
    uri = store.upload("2.3", "chat-app", "test", data, metadata={"agent": "a-7", "run": 3})
    meta = store.get_metadata(uri)
    assert (meta.task_id, meta.spec_name, meta.type) == (
        "2.3",
        "chat-app",
        ArtifactType.TEST_RESULT,
    )
    assert meta.size == meta.original_size == len(data)  # original_size: the old name
    assert meta.checksum == "sha256:" + hashlib.sha256(data).hexdigest()
    assert meta.compressed and meta.codec == "gzip"
    assert meta.stored_size == object_path(store, uri).stat().st_size < len(data)
    assert meta.mime_type == "application/json"
    assert meta.metadata == {"agent": "a-7", "run": 3}
    assert meta.version == 1 and meta.tags == ()
    assert meta.created_at.tzinfo is not None and before <= meta.created_at <= utc_now()
    assert store.upload("2.3", "chat-app", "log", b"x", mime_type="text/x-log")
    assert store.get_by_task_id("2.3")[-1].mime_type == "text/x-log"


def test_compression_off_stores_bytes_as_given(tmp_path: Path) -> None:
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path, compression_enabled=False)) as store:
        uri = store.upload("t", "s", "diff", b"plain" * 100)
        meta = store.get_metadata(uri)
        assert not meta.compressed and meta.codec == "none"
        assert meta.size == meta.stored_size == 500
        assert object_path(store, uri).read_bytes() == b"plain" * 100


@pytest.fixture(scope="module")
def codec_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ArtifactStore]]:
    root = tmp_path_factory.mktemp("codecs")
    stores = {
        "gzip": ArtifactStore(ArtifactStoreConfig(base_path=root / "gz", durable_writes=False)),
        "zstd": ArtifactStore(
            ArtifactStoreConfig(
                base_path=root / "zst", compression_codec="zstd", durable_writes=False
            )
        ),
        "none": ArtifactStore(
            ArtifactStoreConfig(
                base_path=root / "raw", compression_enabled=False, durable_writes=False
            )
        ),
    }
    yield stores
    for store in stores.values():
        store.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=50_000), codec=st.sampled_from(["gzip", "zstd", "none"]))
def test_round_trip_arbitrary_bytes(
    codec_stores: dict[str, ArtifactStore], data: bytes, codec: str
) -> None:
    store = codec_stores[codec]
    uri = store.upload("prop", "roundtrip", "log", data)
    assert store.download(uri) == data
    assert b"".join(store.iter_chunks(uri)) == data
    assert store.get_metadata(uri).original_size == len(data)


def test_streaming_reader(store: ArtifactStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 11)
    uri = store.upload("big", "s", "log", data)
    with store.open(uri) as reader:
        head = reader.read(100)
        rest = b"".join(reader)
    assert head + rest == data
    assert reader.closed


def test_download_to_file(store: ArtifactStore, tmp_path: Path) -> None:
    uri = store.upload("t", "s", "diff", b"x" * 5000)
    seen: list[tuple[int, int]] = []
    meta = store.download_to(uri, tmp_path / "out.diff", progress=lambda d, t: seen.append((d, t)))
    assert (tmp_path / "out.diff").read_bytes() == b"x" * 5000
    assert meta.uri == uri and seen[-1] == (5000, 5000)


# -- overwrite and atomicity ----------------------------------------------------------


def test_reupload_overwrites_and_removes_the_old_object(store: ArtifactStore) -> None:
    uri = store.upload("1.1", "chat-app", "diff", b"old")
    assert store.upload("1.1", "chat-app", "diff", b"new") == uri
    assert store.download(uri) == b"new"
    assert len(store.get_all_versions(uri)) == 1
    remaining = files_under(store.config.base_path)
    assert len(remaining) == 2  # one record + one object
    assert any(name.endswith(".meta.json") for name in remaining)


def test_failed_upload_changes_nothing(store: ArtifactStore) -> None:
    uri = store.upload("1.1", "chat-app", "diff", b"old")
    before = files_under(store.config.base_path)

    def broken() -> Iterator[bytes]:
        yield b"new" * 1000
        raise ConnectionError("agent died mid-stream")

    with pytest.raises(ConnectionError):
        store.upload("1.1", "chat-app", "diff", broken())
    assert store.download(uri) == b"old"
    assert files_under(store.config.base_path) == before
    assert store.verify_all().healthy


def test_bad_input_is_refused_before_any_io(store: ArtifactStore) -> None:
    root = store.config.base_path
    before = files_under(root)
    bad_calls = [
        lambda: store.upload("1", "../escape", "diff", b"x"),
        lambda: store.upload("../../etc", "spec", "diff", b"x"),
        lambda: store.upload("a/b", "spec", "diff", b"x"),
        lambda: store.upload("1", "/abs", "diff", b"x"),
        lambda: store.upload("", "spec", "diff", b"x"),
        lambda: store.upload("1", "sp\x00ec", "diff", b"x"),
        lambda: store.upload("1", "sp\nec", "diff", b"x"),
        lambda: store.upload("1", "s" * 256, "diff", b"x"),
        lambda: store.upload("1", "spec", "binary", b"x"),
        lambda: store.upload("1", "spec", "diff", b"x", metadata={"f": object()}),
        lambda: store.upload("1", "spec", "diff", b"x", mime_type="not a mime"),
        lambda: store.upload("1", "spec", "diff", b"x", tags=["bad tag"]),
        lambda: store.upload("1", "spec", "diff", b"x", retention_days=-1),
        lambda: store.upload("1", "spec", "diff", 12345),  # type: ignore[arg-type]
        lambda: store.upload("1", "spec", "diff", Path("/no/such/file")),
    ]
    for call in bad_calls:
        with pytest.raises(InvalidInputError):
            call()
    with pytest.raises(InvalidNameError):
        store.upload("1", "..", "diff", b"x")
    assert files_under(root) == before
    assert not (root.parent / "escape").exists()


def test_unknown_and_foreign_uris(store: ArtifactStore) -> None:
    missing = f"{store.root_uri}/chat-app/9.9/diff.txt"
    with pytest.raises(ArtifactNotFoundError):
        store.download(missing)
    with pytest.raises(FileNotFoundError):
        store.get_metadata(missing)
    assert not store.exists(missing)
    with pytest.raises(InvalidURIError):
        store.download("file:///elsewhere/chat-app/1/diff.txt")
    with pytest.raises(InvalidURIError):
        store.download(f"{store.root_uri}/chat-app/1/diff.txt?version=x")


# -- integrity ------------------------------------------------------------------------


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("compression", [True, False])
def test_flipped_byte_is_detected(tmp_path: Path, compression: bool) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path, compression_enabled=compression)
    with ArtifactStore(config) as store:
        good = store.upload("1", "s", "log", b"fine" * 1000)
        uri = store.upload("2", "s", "log", bytes(range(256)) * 40)
        path = object_path(store, uri)
        _flip_byte(path, path.stat().st_size // 2)
        with pytest.raises(IntegrityError) as caught:
            store.download(uri)
        assert caught.value.uri == uri
        assert store.verify_checksum(uri) is False
        assert store.verify_checksum(good) is True
        report = store.verify_all()
        assert [p.uri for p in report.corrupted] == [uri]
        assert report.ok == [good]
        assert not report.healthy
        if not compression:
            # The size still matches: only the checksum can tell, and it is optional.
            assert len(store.download(uri, verify_checksum=False)) == 256 * 40


def test_truncated_object_fails_even_without_checksum(tmp_path: Path) -> None:
    config = ArtifactStoreConfig(
        base_path=tmp_path, compression_enabled=False, verify_checksum=False
    )
    with ArtifactStore(config) as store:
        uri = store.upload("1", "s", "log", b"z" * 1000)
        path = object_path(store, uri)
        path.write_bytes(path.read_bytes()[:500])
        with pytest.raises(IntegrityError, match="size mismatch"):
            store.download(uri)


def test_verify_all_reports_missing_orphans_and_leftovers(store: ArtifactStore) -> None:
    keep = store.upload("1", "s", "log", b"keep")
    lost = store.upload("2", "s", "log", b"lost")
    object_path(store, lost).unlink()
    folder = store.config.base_path / "s" / "1"
    orphan = folder / "log.txt.v000009.0123456789abcdef.gz"
    orphan.write_bytes(b"orphan")
    leftover = folder / ".log.txt.v000001.meta.json.tmp-deadbeef"
    leftover.write_bytes(b"partial")
    report = store.verify_all()
    assert report.ok == [keep]
    assert [p.uri for p in report.missing] == [lost]
    assert report.orphaned == ["s/1/log.txt.v000009.0123456789abcdef.gz"]
    assert report.incomplete == ["s/1/.log.txt.v000001.meta.json.tmp-deadbeef"]
    young = store.repair()  # default grace: young leftovers may belong to live writers
    assert young.removed_orphans == [] and orphan.exists()
    repaired = store.repair(older_than=timedelta(0))
    assert repaired.removed_orphans == ["s/1/log.txt.v000009.0123456789abcdef.gz"]
    assert repaired.removed_incomplete == ["s/1/.log.txt.v000001.meta.json.tmp-deadbeef"]
    assert not orphan.exists() and not leftover.exists()
    assert store.download(keep) == b"keep"
    after = store.verify_all()
    assert after.orphaned == [] and after.incomplete == []


def test_verify_all_fixes_a_stale_index(store: ArtifactStore) -> None:
    uri = store.upload("1", "s", "diff", b"abc")
    key_row = store.search(spec_name="s")[0]
    store.metadata.index.remove(
        __import__("necrocode.artifact_store.naming", fromlist=["ArtifactKey"]).ArtifactKey.of(
            "s", "1", "diff"
        )
    )
    assert store.search(spec_name="s") == []
    report = store.verify_all()
    assert report.index_stale == [f"{uri}?version=1"]
    assert store.search(spec_name="s") == [key_row]


# -- delete and search ----------------------------------------------------------------


def _populate(store: ArtifactStore) -> dict[tuple[str, str, str], str]:
    uris = {}
    for spec in ("chat-app", "iot-dashboard"):
        for task in ("1.1", "1.2"):
            for kind in ("diff", "log", "test"):
                uris[(spec, task, kind)] = store.upload(
                    task, spec, kind, f"{spec}{task}{kind}".encode()
                )
    return uris


def test_delete_by_uri_removes_bytes_and_metadata(store: ArtifactStore) -> None:
    uris = _populate(store)
    uri = uris[("chat-app", "1.1", "diff")]
    assert store.delete(uri) == 1
    assert not store.exists(uri)
    with pytest.raises(ArtifactNotFoundError):
        store.download(uri)
    with pytest.raises(ArtifactNotFoundError):
        store.delete(uri)
    assert store.delete(uri, missing_ok=True) == 0
    assert not any(
        name.startswith("chat-app/1.1/diff") for name in files_under(store.config.base_path)
    )
    assert len(store.search()) == 11


def test_delete_by_task_and_spec(store: ArtifactStore) -> None:
    _populate(store)
    assert store.delete_by_task_id("1.1", spec_name="chat-app") == 3
    assert store.delete_by_task_id("1.2") == 6
    assert store.delete_by_spec_name("iot-dashboard") == 3
    assert store.delete_by_spec_name("iot-dashboard") == 0
    assert store.search() == []
    assert files_under(store.config.base_path) == []


def test_search_filters_combine(store: ArtifactStore) -> None:
    uris = _populate(store)
    assert {m.uri for m in store.search(task_id="1.2", artifact_type="log")} == {
        uris[("chat-app", "1.2", "log")],
        uris[("iot-dashboard", "1.2", "log")],
    }
    assert [
        m.uri
        for m in store.search(spec_name="chat-app", task_id="1.1", artifact_type=ArtifactType.DIFF)
    ] == [uris[("chat-app", "1.1", "diff")]]
    everything = store.search()
    middle = everything[5].created_at
    later = store.search(created_after=middle)
    earlier = store.search(created_before=middle)
    assert len(later) + len(earlier) == 12 and later[0] == everything[5]
    assert store.search(spec_name="chat-app", created_after=utc_now() + timedelta(seconds=1)) == []
    assert len(store.search(limit=4)) == 4
    # A naive datetime is taken as UTC (as the reference API does).
    naive = middle.astimezone(UTC).replace(tzinfo=None)
    assert store.search(created_after=naive) == later
    with pytest.raises(InvalidNameError):
        store.search(spec_name="../x")


def test_failures_are_logged_once_at_debug(
    store: ArtifactStore, caplog: pytest.LogCaptureFixture
) -> None:
    uri = store.upload("1", "s", "log", b"data")
    path = object_path(store, uri)
    _flip_byte(path, 12)
    with (
        caplog.at_level(logging.DEBUG, logger="necrocode.artifact_store"),
        pytest.raises(IntegrityError),
    ):
        store.download(uri)
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    # The caller has the exception: the library says it once, and only at DEBUG.
    assert len(failures) == 1 and failures[0].levelno == logging.DEBUG
    assert uri in failures[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


# -- crash safety ---------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
    base, run = sys.argv[1], int(sys.argv[2])
    store = ArtifactStore(ArtifactStoreConfig(base_path=base))
    print("ready", flush=True)
    step = 0
    while True:
        step += 1
        for name in ("a", "b", "c"):
            body = f"{name}:{run}:{step}:".encode() * (200 + step % 50)
            store.upload(name, "crash", "log", body)
    """
)


def _valid_body(name: str, data: bytes) -> bool:
    """Bodies are one header repeated: a torn or mixed write cannot look like one."""
    text = data.decode()
    header = text.split(":", 3)
    if len(header) < 4 or header[0] != name:
        return False
    unit = ":".join(header[:3]) + ":"
    return len(text) % len(unit) == 0 and text == unit * (len(text) // len(unit))


def _generation(data: bytes) -> tuple[int, int]:
    _, run, step, _ = data.split(b":", 3)
    return int(run), int(step)


def test_sigkilled_overwrites_leave_old_or_new(tmp_path: Path) -> None:
    """A writer killed at random moments, 20 times: every artifact is whole."""
    base = tmp_path / "crash"
    config = ArtifactStoreConfig(base_path=base)
    with ArtifactStore(config) as store:
        for name in ("a", "b", "c"):
            store.upload(name, "crash", "log", f"{name}:0:0:".encode() * 10)
    rng = random.Random(20261129)
    old: dict[str, bytes] = {}
    with ArtifactStore(config) as store:
        for name in ("a", "b", "c"):
            old[name] = store.download(f"{store.root_uri}/crash/{name}/log.txt")
    for run in range(1, 21):
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, str(base), str(run)],
            stdout=subprocess.PIPE,
            env=subprocess_env(),
        ) as child:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"ready"
            time.sleep(rng.uniform(0.0, 0.15))
            child.send_signal(signal.SIGKILL)
            child.wait()
        with ArtifactStore(config) as store:
            for name in ("a", "b", "c"):
                data = store.download(f"{store.root_uri}/crash/{name}/log.txt")
                assert _valid_body(name, data), (run, name, data[:40])
                # Old or new, never older than what was seen before: a write the
                # writer was killed in may surface once recovery indexes it.
                assert _generation(data) >= _generation(old[name]), (run, name)
                assert _generation(data)[0] <= run
                old[name] = data
            report = store.verify_all()
            assert report.healthy, (run, report)
    with ArtifactStore(config) as store:
        store.repair(older_than=timedelta(0))
        final = store.verify_all()
        assert final.healthy and final.orphaned == [] and final.incomplete == []
        indexed = store.metadata.index.keys()
        assert indexed == {
            (m.spec_name, m.task_id, m.type.value, m.version) for m in store.metadata.iter_records()
        }


# -- versions -------------------------------------------------------------------------


def test_versions_are_kept_and_addressable(versioned_store: ArtifactStore) -> None:
    store = versioned_store
    uri = store.upload("1.1", "chat-app", "diff", b"one")
    store.upload("1.1", "chat-app", "diff", b"two")
    assert store.upload("1.1", "chat-app", "diff", b"three") == uri
    versions = store.get_all_versions(uri)
    assert [m.version for m in versions] == [1, 2, 3]
    assert store.download(uri) == b"three"
    assert store.download_version(uri, 1) == b"one"
    v2 = f"{uri}?version=2"
    assert store.get_metadata(v2).version_uri == v2
    assert store.download(v2) == b"two"
    with pytest.raises(ArtifactNotFoundError):
        store.download_version(uri, 9)
    with pytest.raises(InvalidInputError):
        store.download_version(uri, 0)
    assert store.delete(v2) == 1
    assert [m.version for m in store.get_all_versions(uri)] == [1, 3]
    assert store.delete_old_versions(uri, keep=1) == 1
    assert [m.version for m in store.get_all_versions(uri)] == [3]
    assert store.upload("1.1", "chat-app", "diff", b"four") == uri
    assert store.get_metadata(uri).version == 4
    with pytest.raises(InvalidInputError):
        store.delete_old_versions(uri, keep=0)
    assert store.get_storage_usage().version_count == 2


def _upload_many(base: str, worker: int, count: int, versioning: bool) -> list[int]:
    config = ArtifactStoreConfig(base_path=base, versioning_enabled=versioning)
    with ArtifactStore(config) as store:
        versions = []
        for i in range(count):
            uri = store.upload("1", "race", "log", f"w{worker}-{i}".encode() * 100)
            versions.append(store.get_metadata(uri).version)
        return versions


@pytest.mark.parametrize("versioning", [True, False])
def test_concurrent_uploads_of_one_artifact(tmp_path: Path, versioning: bool) -> None:
    """4 processes upload the same artifact: versions unique and gap-free, nothing torn."""
    import multiprocessing

    base = str(tmp_path / "race")
    ArtifactStore(ArtifactStoreConfig(base_path=base)).close()  # create the index once
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.starmap(_upload_many, [(base, w, 10, versioning) for w in range(4)])
    config = ArtifactStoreConfig(base_path=base, versioning_enabled=versioning)
    with ArtifactStore(config) as store:
        uri = f"{store.root_uri}/race/1/log.txt"
        versions = store.get_all_versions(uri)
        if versioning:
            assert [m.version for m in versions] == list(range(1, 41))
            assert sorted(v for worker in results for v in worker) == list(range(1, 41))
            bodies = {store.download_version(uri, m.version) for m in versions}
            assert bodies == {f"w{w}-{i}".encode() * 100 for w in range(4) for i in range(10)}
        else:
            assert len(versions) == 1 and versions[0].version == 40
            assert store.download(uri) in {f"w{w}-9".encode() * 100 for w in range(4)}
        assert store.verify_all().healthy


# -- tags -----------------------------------------------------------------------------


def test_tags_add_update_remove_and_search(store: ArtifactStore) -> None:
    a = store.upload("1", "chat-app", "diff", b"a", tags=["reviewed"])
    b = store.upload("2", "chat-app", "diff", b"b")
    c = store.upload("1", "iot", "log", b"c")
    assert store.add_tags(a, ["env:prod", "reviewed"]).tags == ("env:prod", "reviewed")
    assert store.add_tags(a, ["env:prod"]).tags == ("env:prod", "reviewed")  # idempotent
    store.add_tags(b, ["env:prod"])
    store.add_tags(c, ["flaky"])
    assert {m.uri for m in store.search_by_tags(["env:prod"])} == {a, b}
    assert [m.uri for m in store.search_by_tags(["env:prod", "reviewed"])] == [a]
    assert {m.uri for m in store.search_by_tags(["reviewed", "flaky"], match="any")} == {a, c}
    assert [m.uri for m in store.search(tags=["env:prod"], task_id="2")] == [b]
    assert store.search(tags=["env:prod"], artifact_type="log") == []
    assert store.update_tags(a, ["final"]).tags == ("final",)
    assert store.remove_tags(a, ["final", "absent"]).tags == ()
    assert store.search_by_tags(["reviewed"]) == []
    with pytest.raises(InvalidNameError):
        store.add_tags(a, ["no spaces"])
    with pytest.raises(InvalidNameError, match="too many tags"):
        store.add_tags(a, [f"t{i}" for i in range(65)])
    with pytest.raises(ArtifactNotFoundError):
        store.add_tags(f"{store.root_uri}/chat-app/9/diff.txt", ["x"])
    assert store.download(a) == b"a"


def test_tags_live_in_the_records(store_config: ArtifactStoreConfig) -> None:
    with ArtifactStore(store_config) as store:
        uri = store.upload("1", "s", "log", b"x")
        store.add_tags(uri, ["keep-me"])
        index = store.metadata.index.path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    with ArtifactStore(store_config) as store:
        assert [m.uri for m in store.search_by_tags(["keep-me"])] == [uri]


# -- usage and quota ------------------------------------------------------------------


def test_usage_matches_the_bytes_stored(store: ArtifactStore) -> None:
    _populate(store)
    store.upload("1.1", "chat-app", "log", os.urandom(5000))  # overwrite: old bytes freed
    usage = store.get_storage_usage()
    objects = [m.object_key for m in store.search()]
    assert usage.artifact_count == usage.version_count == 12
    assert usage.stored_bytes == sum(store.backend.get_size(k) for k in objects)
    assert usage.original_bytes == sum(m.original_size for m in store.search())
    assert usage.quota_bytes == 100 * 2**30 and usage.fraction_used is not None
    by_spec = store.get_usage_by_spec()
    assert set(by_spec) == {"chat-app", "iot-dashboard"}
    assert sum(u.stored_bytes for u in by_spec.values()) == usage.stored_bytes
    by_type = store.get_usage_by_type()
    assert set(by_type) == {"diff", "log", "test"} and by_type["log"].artifact_count == 4
    store.delete_by_spec_name("iot-dashboard")
    assert store.get_storage_usage().stored_bytes == by_spec["chat-app"].stored_bytes


def test_quota_refusal_leaves_the_store_unchanged(tmp_path: Path) -> None:
    quota = 20_000 / 2**30  # 20,000 bytes, in GB
    config = ArtifactStoreConfig(
        base_path=tmp_path, compression_enabled=False, storage_quota={"max_size_gb": quota}
    )
    with ArtifactStore(config) as store:
        uri = store.upload("1", "s", "log", b"a" * 15_000)
        before = (files_under(tmp_path), store.get_storage_usage())
        with pytest.raises(StorageFullError, match="quota"):
            store.upload("2", "s", "log", b"b" * 6_000)
        assert (files_under(tmp_path), store.get_storage_usage()) == before
        assert not store.exists(f"{store.root_uri}/s/2/log.txt")
        # Replacing an artifact counts the bytes it frees.
        store.upload("1", "s", "log", b"c" * 19_000)
        assert store.download(uri) == b"c" * 19_000


def test_usage_above_the_warn_threshold_logs_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from necrocode.artifact_store.pipeline import quota as artifact_store_module

    config = ArtifactStoreConfig(
        base_path=tmp_path,
        compression_enabled=False,
        storage_quota={"max_size_gb": 10_000 / 2**30, "warn_threshold": 0.5},
    )
    with (
        ArtifactStore(config) as store,
        caplog.at_level(logging.WARNING, logger="necrocode.artifact_store"),
    ):
        store.upload("1", "s", "log", b"x" * 4_000)
        assert caplog.records == []
        store.upload("2", "s", "log", b"x" * 2_000)
        warnings = [r for r in caplog.records if "above 50% of the quota" in r.getMessage()]
        assert len(warnings) == 1
        message = warnings[0].getMessage()
        assert "5.9 KiB of 9.8 KiB (60.0%)" in message
        assert "cleanup --dry-run" in message and "largest specs: s 5.9 KiB" in message
        store.upload("3", "s", "log", b"x" * 1_000)  # within the minute: not repeated
        assert len([r for r in caplog.records if "above" in r.getMessage()]) == 1
        monkeypatch.setattr(artifact_store_module, "QUOTA_WARNING_INTERVAL", 0.0)
        store.upload("4", "s", "log", b"x" * 500)  # still above: said again
        assert len([r for r in caplog.records if "above" in r.getMessage()]) == 2


# -- export ---------------------------------------------------------------------------


def test_export_by_spec_round_trips(store: ArtifactStore, tmp_path: Path) -> None:
    uris = _populate(store)
    big = os.urandom(2 * 1024 * 1024)
    uris[("chat-app", "1.2", "log")] = store.upload("1.2", "chat-app", "log", big)
    seen: list[ExportProgress] = []
    path = store.export_by_spec("chat-app", tmp_path / "out" / "chat.zip", progress=seen.append)
    assert path == tmp_path / "out" / "chat.zip"
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        names = sorted(archive.namelist())
        assert names == sorted(
            [
                f"chat-app/{t}/{f}"
                for t in ("1.1", "1.2")
                for f in ("diff.txt", "log.txt", "test-result.json")
            ]
            + ["manifest.json"]
        )
        for (spec, task, kind), uri in uris.items():
            if spec == "chat-app":
                name = f"{spec}/{task}/{ArtifactType(kind).filename}"
                assert archive.read(name) == store.download(uri)
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["artifact_count"] == 6 and manifest["query"] == {"spec_name": "chat-app"}
    for entry in manifest["artifacts"]:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(entry["path"])
        assert entry["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert read_manifest(path) == manifest
    assert seen[-1].items_done == seen[-1].items_total == 6
    assert (
        seen[-1].bytes_done
        == seen[-1].bytes_total
        == sum(m.original_size for m in store.search(spec_name="chat-app"))
    )
    assert [p.bytes_done for p in seen] == sorted(p.bytes_done for p in seen)


def test_export_by_task(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _populate(store)
    monkeypatch.chdir(tmp_path)
    path = store.export_by_task("1.1")
    assert path.parent == tmp_path and path.name.startswith("1.1-") and path.suffix == ".zip"
    with zipfile.ZipFile(path) as archive:
        assert len(archive.namelist()) == 7
    only = store.export_by_task("1.1", spec_name="iot-dashboard", output_path=tmp_path)
    with zipfile.ZipFile(only) as archive:
        assert sorted(archive.namelist())[0].startswith("iot-dashboard/1.1/")
        assert len(archive.namelist()) == 4


def test_export_interrupted_by_corruption_leaves_nothing(
    store: ArtifactStore, tmp_path: Path
) -> None:
    uris = _populate(store)
    store.upload("1.2", "chat-app", "log", os.urandom(100_000))
    _flip_byte(object_path(store, uris[("chat-app", "1.2", "log")]), 30)
    out = tmp_path / "exports"
    out.mkdir()
    with pytest.raises(IntegrityError):
        store.export_by_spec("chat-app", out / "chat.zip")
    assert list(out.iterdir()) == []


def test_default_store_discovers_its_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NECROCODE_ARTIFACT_STORE_BASE_PATH", str(tmp_path / "from-env"))
    monkeypatch.setenv("NECROCODE_ARTIFACT_STORE_VERSIONING_ENABLED", "true")
    with ArtifactStore() as store:
        assert store.root_uri == (tmp_path / "from-env").as_uri()
        assert store.config.versioning_enabled
