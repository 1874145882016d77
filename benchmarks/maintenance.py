"""B6 maintenance at the largest store: verify_all, rebuild_index, cleanup_expired.

``verify_all`` and ``cleanup_expired`` each take one long pass, so their rate is
the median over ten equal windows of that pass (from the progress callback). B6 also
compares both on the worker pool against the same code on one thread (``b6_workers``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from datetime import datetime
from pathlib import Path

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.backends.filesystem import FilesystemBackend
from necrocode.artifact_store.maintenance.parallel import maintenance_workers
from necrocode.artifact_store.naming import ArtifactKey

from .harness import Report, Result, Scale, median, rate_result, time_in_rotation, timed
from .population import bulk_fill, fsync_folder, names, payload, raw_read

WINDOWS = 10
RECORD_SUFFIX = ".meta.json"


class ProgressWindows:
    """A progress callback that notes the time at every tenth of the work."""

    def __init__(self, total: int) -> None:
        self.step = max(1, total // WINDOWS)
        self.marks = [(0, time.perf_counter())]

    def __call__(self, done: int, total: int) -> None:
        if done % self.step == 0 or done == total:
            self.marks.append((done, time.perf_counter()))

    def rates(self) -> list[float]:
        """Operations per second in each window."""
        pairs = zip(self.marks, self.marks[1:], strict=False)
        return [(d2 - d1) / (t2 - t1) for (d1, t1), (d2, t2) in pairs if d2 > d1 and t2 > t1]


def _window_row(
    bench: str, figure: str, rates: list[float], unit: str, base: float, label: str
) -> Result:
    value = median(rates)
    return Result(bench, figure, value, unit, base, label, value / base, "", None, len(rates))


def _raw_verify(backend: FilesystemBackend, picks: list[int]) -> None:
    """Read + parse each record, then read + inflate + hash its object."""
    for i in picks:
        key = ArtifactKey(*names(i))
        record = json.loads(backend.path_of(key.record_key(1)).read_bytes())
        digest = raw_read(backend.path_of(record["object_key"]))
        assert record["checksum"] == f"sha256:{digest}"


def b6_verify(report: Report, store: ArtifactStore, population: int, scale: Scale) -> None:
    """verify_all over the whole store vs raw record+object reads of a sample."""
    backend = getattr(store.backend, "inner", store.backend)  # under the retry wrapper
    assert isinstance(backend, FilesystemBackend)
    rng = random.Random(6)
    picks = [rng.randrange(population) for _ in range(scale.baseline_sample)]
    _raw_verify(backend, picks)
    base_seconds = [timed(lambda: _raw_verify(backend, picks)) for _ in range(scale.repetitions)]
    base_rate = len(picks) / median(base_seconds)
    windows = ProgressWindows(store.get_storage_usage().artifact_count)
    started = time.perf_counter()
    result = store.verify_all(progress=windows)
    elapsed = time.perf_counter() - started
    assert result.healthy, "the benchmark store must verify clean"
    report.add(
        _window_row(
            "B6",
            f"verify_all artifacts/s at {result.checked:,} ({elapsed:.0f} s pass)",
            windows.rates(),
            "artifacts/s",
            base_rate,
            "raw read+parse record, read+inflate+sha256 object",
        )
    )
    stored_mb = result.bytes_checked / 1e6
    report.add(
        Result(
            "B6",
            f"verify_all stored MB/s at {result.checked:,} (whole pass)",
            stored_mb / elapsed,
            "MB/s",
            stored_mb / elapsed * base_rate / (result.checked / elapsed),
            "raw, same bytes per artifact",
            (result.checked / elapsed) / base_rate,
        )
    )


def _raw_record_scan(root: Path) -> int:
    """Walk the store and read + parse every record: the floor of a rebuild."""
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.endswith(RECORD_SUFFIX):
                json.loads(Path(folder, name).read_bytes())
                count += 1
    return count


def b6_rebuild(report: Report, store: ArtifactStore, scale: Scale) -> None:
    """rebuild_index of the whole store vs a raw walk + parse of every record."""
    backend = getattr(store.backend, "inner", store.backend)  # under the retry wrapper
    assert isinstance(backend, FilesystemBackend)
    store_seconds: list[float] = []
    base_seconds: list[float] = []
    counts: list[int] = []
    for _ in range(scale.rebuild_repetitions):
        base_seconds.append(timed(lambda: counts.append(_raw_record_scan(backend.root))))
        started = time.perf_counter()
        indexed = store.rebuild_index()
        store_seconds.append(time.perf_counter() - started)
        assert indexed == counts[-1], (indexed, counts[-1])
    report.add(
        rate_result(
            "B6",
            f"rebuild_index records/s at {counts[-1]:,}",
            store_seconds,
            base_seconds,
            counts[-1],
            unit="records/s",
            baseline_label="raw walk+read+json.loads of every record",
        )
    )


def _raw_deletes(folder: Path, count: int) -> float:
    """Create ``count`` record+object pairs, 3 per folder, then time deleting them durably."""
    pairs = []
    for i in range(count):
        task = folder / f"task{i // 3}"
        task.mkdir(parents=True, exist_ok=True)
        record, stored = task / f"a{i % 3}.meta.json", task / f"a{i % 3}.gz"
        record.write_bytes(b"{}" * 300)
        stored.write_bytes(payload(i))
        pairs.append((record, stored))
    os.sync()
    started = time.perf_counter()
    for record, stored in pairs:
        record.unlink()
        stored.unlink()
        fsync_folder(record.parent)
    elapsed = time.perf_counter() - started
    shutil.rmtree(folder)
    return elapsed


def b6_cleanup(
    report: Report, store: ArtifactStore, scratch: Path, now: datetime, scale: Scale
) -> None:
    """cleanup_expired deleting half the bulk population vs raw durable deletes."""
    count = scale.baseline_sample
    base_seconds = [
        _raw_deletes(scratch / f"raw-deletes-{rep}", count) for rep in range(scale.repetitions)
    ]
    base_rate = count / median(base_seconds)
    expired = len(store.find_expired(now))
    stored = store.get_storage_usage().version_count
    windows = ProgressWindows(expired)
    started = time.perf_counter()
    result = store.cleanup_expired(now=now, progress=windows)
    elapsed = time.perf_counter() - started
    assert result.count == expired and not result.errors, (result.count, result.errors[:3])
    report.add(
        _window_row(
            "B6",
            f"cleanup_expired deletions/s, {expired:,} of {stored:,} expired ({elapsed:.0f} s)",
            windows.rates(),
            "deletions/s",
            base_rate,
            "raw unlink record+object, fsync folder",
        )
    )


def _store_with_workers(root: Path, workers: int | None) -> ArtifactStore:
    return ArtifactStore(ArtifactStoreConfig(base_path=root, maintenance_workers=workers))


def b6_workers(report: Report, root: Path, scratch: Path, now: datetime, scale: Scale) -> None:
    """verify_all, rebuild_index, export and cleanup_expired with ``workers`` (the default
    count on this machine) vs the same code on one thread (``maintenance_workers: 1``).

    On a local disk verify_all and rebuild_index of a store this large run in worker
    processes (``index/processes.py``), cleanup on threads (it waits on fsyncs),
    export on one thread by default. Both sides run in this process, in rotation
    (verify, rebuild, export) or back to back on two identical stores (cleanup), so the
    ratio is what the workers add on this machine.
    """
    single_seconds: list[float] = []
    pool_seconds: list[float] = []
    workers = maintenance_workers(FilesystemBackend(root), waits_on_disk=True)
    with _store_with_workers(root, 1) as single, _store_with_workers(root, workers) as pooled:
        checked = single.verify_all().checked  # warm the page cache for both sides
        for rep in range(scale.repetitions):
            time_in_rotation(
                rep,
                [(single.verify_all, single_seconds), (pooled.verify_all, pool_seconds)],
            )
        single_rebuild: list[float] = []
        pool_rebuild: list[float] = []
        for rep in range(scale.rebuild_repetitions):
            time_in_rotation(
                rep,
                [(single.rebuild_index, single_rebuild), (pooled.rebuild_index, pool_rebuild)],
            )
        spec = names(0)[0]
        exported = len(single.search(spec_name=spec))
        single_export: list[float] = []
        pool_export: list[float] = []
        for rep in range(scale.repetitions):
            time_in_rotation(
                rep,
                [
                    (lambda: single.export_by_spec(spec, scratch / "x1.zip"), single_export),
                    (lambda: pooled.export_by_spec(spec, scratch / "xn.zip"), pool_export),
                ],
            )
    report.add(
        rate_result(
            "B6",
            f"export_by_spec artifacts/s, {exported:,} artifacts, {workers} workers",
            pool_export,
            single_export,
            exported,
            unit="artifacts/s",
            baseline_label="the same export on 1 thread (maintenance_workers: 1)",
        )
    )
    report.add(
        rate_result(
            "B6",
            f"verify_all artifacts/s at {checked:,}, {workers} worker processes",
            pool_seconds,
            single_seconds,
            checked,
            unit="artifacts/s",
            baseline_label="the same verify_all on 1 thread (maintenance_workers: 1)",
        )
    )
    report.add(
        rate_result(
            "B6",
            f"rebuild_index records/s at {checked:,}, {workers} worker processes",
            pool_rebuild,
            single_rebuild,
            checked,
            unit="records/s",
            baseline_label="the same rebuild_index on 1 thread (maintenance_workers: 1)",
        )
    )
    count = max(300, scale.baseline_sample)
    seconds: dict[int, float] = {}
    for workers_setting in (1, workers):
        folder = scratch / f"cleanup-workers-{workers_setting}"
        bulk_fill(folder, 0, count, now)
        os.sync()
        with _store_with_workers(folder, workers_setting) as store:
            store.rebuild_index()
            expired = len(store.find_expired(now))
            seconds[workers_setting] = timed(lambda s=store: s.cleanup_expired(now=now))
        shutil.rmtree(folder)
    report.add(
        rate_result(
            "B6",
            f"cleanup_expired deletions/s, {expired:,} expired, {workers} workers",
            [seconds[workers]],
            [seconds[1]],
            expired,
            unit="deletions/s",
            baseline_label="the same cleanup_expired on 1 thread (maintenance_workers: 1)",
        )
    )
