"""Parallel upkeep: ordered, streaming results on a bounded pool; progress and
cancellation as in a single-threaded pass; one failing item does not lose the others."""

from __future__ import annotations

import json
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from necrocode.artifact_store import (
    ArtifactStore,
    ArtifactStoreConfig,
    ConfigError,
    IntegrityError,
    StorageError,
)
from necrocode.artifact_store.backends.filesystem import FilesystemBackend
from necrocode.artifact_store.maintenance.parallel import AHEAD, maintenance_workers, ordered_map
from necrocode.artifact_store.models import utc_now


def test_ordered_map_yields_in_input_order_whatever_finishes_first() -> None:
    def work(n: int) -> int:
        time.sleep((n % 4) * 0.002)  # later items often finish first
        return n * n

    outcomes = list(ordered_map(work, range(40), workers=4))
    assert [o.item for o in outcomes] == list(range(40))
    assert [o.value for o in outcomes] == [n * n for n in range(40)]
    assert all(o.error is None for o in outcomes)


def test_ordered_map_streams_with_a_bounded_window() -> None:
    pulled: list[int] = []

    def source() -> Iterator[int]:
        for n in range(1000):
            pulled.append(n)
            yield n

    outcomes = ordered_map(lambda n: n, source(), workers=2)
    first = next(outcomes)
    assert first.value == 0
    # The listing is consumed only a window ahead, never read to the end first.
    assert len(pulled) <= 2 * (AHEAD + 1) + 1
    outcomes.close()


def test_ordered_map_reports_a_failing_item_and_keeps_the_others() -> None:
    def work(n: int) -> int:
        if n == 5:
            raise StorageError("disk said no")
        return n

    outcomes = list(ordered_map(work, range(10), workers=3))
    assert [o.item for o in outcomes] == list(range(10))
    assert isinstance(outcomes[5].error, StorageError) and outcomes[5].value is None
    assert [o.value for o in outcomes if o.error is None] == [0, 1, 2, 3, 4, 6, 7, 8, 9]


def test_ordered_map_stopped_early_starts_nothing_more() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> int:
        with lock:
            started.append(n)
        time.sleep(0.005)
        return n

    outcomes = ordered_map(work, range(500), workers=2)
    for outcome in outcomes:
        if outcome.item == 3:
            break
    outcomes.close()  # what a raising progress callback does to the generator
    count = len(started)
    time.sleep(0.05)
    assert len(started) == count  # the pool is shut down: no item runs after close
    assert count < 20


def test_ordered_map_with_one_worker_runs_in_the_callers_thread() -> None:
    threads = [o.value for o in ordered_map(lambda _: threading.get_ident(), range(3), 1)]
    assert set(threads) == {threading.get_ident()}


def _filled(root: Path, count: int, workers: int | None = None) -> ArtifactStore:
    # Not durable: fsyncs would only make the test slow, nothing here is about crashes.
    config = ArtifactStoreConfig(base_path=root, maintenance_workers=workers, durable_writes=False)
    store = ArtifactStore(config)
    for i in range(count):
        store.upload(f"t{i // 3}", f"spec{i % 3}", "log", f"line {i}\n".encode() * 20)
    return store


def test_verify_all_on_threads_matches_the_single_threaded_pass(tmp_path: Path) -> None:
    with _filled(tmp_path / "s", 30, workers=1) as store:
        calls: list[tuple[int, int]] = []
        single = store.verify_all(progress=lambda d, t: calls.append((d, t)))
    config = ArtifactStoreConfig(base_path=tmp_path / "s", maintenance_workers=4)
    with ArtifactStore(config) as s:
        threaded_calls: list[tuple[int, int]] = []
        threaded = s.verify_all(progress=lambda d, t: threaded_calls.append((d, t)))
    assert threaded.to_dict() == single.to_dict()
    assert threaded.checked == 30 and threaded.healthy
    assert [d for d, _ in threaded_calls] == list(range(1, 31)) == [d for d, _ in calls]


def test_verify_all_walks_the_store_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with _filled(tmp_path / "s", 6) as store:
        (tmp_path / "s" / "spec0" / "t0" / ".log.tmp-leftover").write_bytes(b"half")
        walks: list[str] = []
        real_walk = FilesystemBackend._walk

        def counting(self: FilesystemBackend, prefix: str) -> Iterator[object]:
            walks.append(prefix)
            return real_walk(self, prefix)

        monkeypatch.setattr(FilesystemBackend, "_walk", counting)
        report = store.verify_all()
    assert walks == [""]
    assert report.checked == 6
    assert report.incomplete == ["spec0/t0/.log.tmp-leftover"]


def test_verify_all_reports_an_unreadable_artifact_and_checks_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _filled(tmp_path / "s", 12, workers=3) as store:
        bad = store.upload("broken", "spec1", "diff", b"unreadable")
        real_open = FilesystemBackend.open_read

        def failing(self: FilesystemBackend, key: str) -> object:
            if key.startswith("spec1/broken/"):
                raise StorageError("I/O error reading the disk")
            return real_open(self, key)

        monkeypatch.setattr(FilesystemBackend, "open_read", failing)
        report = store.verify_all()
    assert not report.healthy
    assert [p.uri for p in report.corrupted] == [bad]
    assert "could not be read" in report.corrupted[0].reason
    assert "I/O error" in report.corrupted[0].reason
    assert len(report.ok) == 12


def test_verify_all_stops_when_progress_raises(tmp_path: Path) -> None:
    with _filled(tmp_path / "s", 40, workers=2) as store:
        seen: list[int] = []

        def stop_at_five(done: int, total: int) -> None:
            seen.append(done)
            if done == 5:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            store.verify_all(progress=stop_at_five)
        assert seen == [1, 2, 3, 4, 5]
        assert not [t for t in threading.enumerate() if t.name.startswith("necrocode-upkeep")]
        assert store.verify_all().checked == 40  # the store is untouched and usable


def test_cleanup_on_threads_keeps_order_progress_and_other_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _filled(tmp_path / "s", 21, workers=3) as store:
        later = utc_now() + timedelta(days=8)  # logs are kept 7 days
        expected = [m.uri for m in store.find_expired(later)]
        real_delete_many = FilesystemBackend.delete_many

        def failing(self: FilesystemBackend, keys: list[str]) -> list[bool]:
            if any(key.startswith("spec2/t3/") for key in keys):
                raise StorageError("spec2/t3 is on a failing disk")
            return real_delete_many(self, keys)

        monkeypatch.setattr(FilesystemBackend, "delete_many", failing)
        calls: list[tuple[int, int]] = []
        report = store.cleanup_expired(now=later, progress=lambda d, t: calls.append((d, t)))
        assert calls == [(n, 21) for n in range(1, 22)]
        failed = [e for e in report.errors if "failing disk" in e]
        assert len(failed) == len([u for u in expected if "/spec2/t3/" in u]) > 0
        assert len(report.uris) + len(failed) == 21
        # Deleted in the order a single-threaded pass would report them.
        assert report.uris == [u for u in expected if u in report.uris]
        for uri in report.uris:
            assert not store.exists(uri)


def test_maintenance_workers_setting(tmp_path: Path) -> None:
    backend = FilesystemBackend(tmp_path)
    assert maintenance_workers(backend, 3) == 3
    assert maintenance_workers(backend) == 1  # Python-bound on a local disk
    assert 2 <= maintenance_workers(backend, waits_on_disk=True) <= 4
    with pytest.raises(ConfigError, match="maintenance_workers"):
        ArtifactStoreConfig.from_dict({"maintenance_workers": 0})


def test_export_on_threads_writes_the_same_archive_and_progress(tmp_path: Path) -> None:
    with _filled(tmp_path / "s", 24, workers=1) as store:
        store.upload("big", "spec1", "diff", bytes(range(256)) * 5000)  # > read-ahead size
    archives: list[tuple[list[str], list[dict[str, object]], list[tuple[int, int, str | None]]]]
    archives = []
    for workers in (1, 4):
        config = ArtifactStoreConfig(base_path=tmp_path / "s", maintenance_workers=workers)
        with ArtifactStore(config) as store:
            calls: list[tuple[int, int, str | None]] = []
            path = store.export_by_spec(
                "spec1",
                tmp_path / f"out-{workers}.zip",
                progress=lambda p, c=calls: c.append((p.items_done, p.bytes_done, p.current)),
            )
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            manifest = json.loads(archive.read("manifest.json"))
            for name in names[:-1]:
                assert archive.read(name)  # every entry inflates and passes its CRC
        archives.append((names, manifest["artifacts"], calls))
    assert archives[0] == archives[1]
    assert len(archives[1][0]) == 8 + 1 + 1  # 8 small, the big one, the manifest


def test_export_on_threads_fails_whole_on_a_corrupted_artifact(tmp_path: Path) -> None:
    with _filled(tmp_path / "s", 24, workers=4) as store:
        victim = store.search(spec_name="spec2")[3]
        object_path = tmp_path / "s" / victim.object_key
        object_path.write_bytes(object_path.read_bytes()[:-3] + b"xyz")
        with pytest.raises(IntegrityError):
            store.export_by_spec("spec2", tmp_path / "out.zip")
    assert list(tmp_path.glob("*.zip")) == [] and list(tmp_path.glob(".out.zip*")) == []


def test_ordered_map_in_batches_keeps_order_and_per_item_errors() -> None:
    def work(n: int) -> int:
        if n % 10 == 7:
            raise StorageError(f"item {n} failed")
        time.sleep((n % 3) * 0.001)
        return n

    outcomes = list(ordered_map(work, range(95), workers=3, batch=8))
    assert [o.item for o in outcomes] == list(range(95))
    assert [o.item for o in outcomes if o.error is not None] == list(range(7, 95, 10))
    assert all(o.value == o.item for o in outcomes if o.error is None)
