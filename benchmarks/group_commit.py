"""B10 group commit and B11 ``upload_many``: small durable uploads that share commits.

B10: ``GROUP_THREADS`` threads of one process upload new 2 KB artifacts into one
durable store at once (what the HTTP service does with concurrent requests).
Their aggregate rate is set beside two single-writer baselines measured in the
same run, in rotation: the floor (:class:`~benchmarks.population.FloorWriter`,
the store's write protocol in plain code, one upload after the other) and the
raw durable write (:func:`~benchmarks.population.raw_write`). A second row
shows one store writer alone against the same floor, so a group commit that
slowed a single writer would show there.

B11: a task's diff, log and test result stored by one ``upload_many`` call
against the same three artifacts stored by three ``upload`` calls, same store,
same run.

``python -m benchmarks.group_commit [--quick]`` prints the rows alone.
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.backends.filesystem import sync_counts
from necrocode.artifact_store.index.sqlite import SQLiteIndex

from .harness import FULL, QUICK, Report, Result, Scale, median, time_in_rotation
from .population import TYPES, FloorWriter, payload, raw_write

HERE = Path(__file__).resolve().parent
#: Uploads in flight at once in B10 (the service's request threads).
GROUP_THREADS = 16
B10_TARGET = 1.0
#: Artifacts per ``upload_many`` call in B11 (diff, log, test result).
BATCH = 3


def _uploads_per_rep(scale: Scale) -> int:
    """Uploads per timed side: two per thread in a quick run, 300 in a full one."""
    return max(GROUP_THREADS * 2, scale.uploads_per_rep * 2)


def _run_threads(jobs: list[Callable[[], object]], threads: int) -> None:
    """Run ``jobs`` on ``threads`` threads that start together; re-raise the first failure."""
    start = threading.Barrier(threads)
    failures: list[BaseException] = []
    lock = threading.Lock()
    cursor = iter(jobs)

    def work() -> None:
        start.wait()
        while True:
            with lock:
                job = next(cursor, None)
            if job is None:
                return
            try:
                job()
            except BaseException as exc:
                failures.append(exc)
                return

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]


class _Names:
    """New artifact names for every measured upload, so none replaces another."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.count = 0

    def next(self) -> tuple[str, str, str]:
        n = self.count
        self.count += 1
        task = n // 3
        return f"{self.prefix}{task // 20:05d}", f"{self.prefix}{task:06d}", TYPES[n % 3].value


def b10_group_commit(report: Report, work: Path, scale: Scale) -> None:
    """16 concurrent in-process uploads and one writer, beside the single-writer floor."""
    count = _uploads_per_rep(scale)
    grouped: list[float] = []
    single: list[float] = []
    floor_seconds: list[float] = []
    raw_seconds: list[float] = []
    names = _Names("g")
    #: fsync calls and index transactions per side: [fsyncs, transactions, uploads].
    spent = {"group": [0, 0, 0], "single": [0, 0, 0]}
    with ArtifactStore(ArtifactStoreConfig(base_path=work / "store")) as store:
        index = store.metadata.index

        def counted(side: str, action: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                fsyncs, commits = sync_counts()[2], _commits(index)
                action()
                spent[side][0] += sync_counts()[2] - fsyncs
                spent[side][1] += _commits(index) - commits
                spent[side][2] += count

            return run

        for rep in range(scale.repetitions):
            floor = FloorWriter(work / f"floor-{rep}")
            raw_dir = work / f"raw-{rep}"
            raw_dir.mkdir(parents=True)
            bodies = [payload(rep * count + j) for j in range(count)]
            group_jobs = [(*names.next(), body) for body in bodies]
            single_jobs = [(*names.next(), body) for body in bodies]

            def run_group(jobs: list[tuple[str, str, str, bytes]] = group_jobs) -> None:
                calls: list[Callable[[], object]] = [
                    (lambda s=s, t=t, k=k, b=b: store.upload(t, s, k, b, tags=["b10"]))
                    for s, t, k, b in jobs
                ]
                _run_threads(calls, GROUP_THREADS)

            def run_single(jobs: list[tuple[str, str, str, bytes]] = single_jobs) -> None:
                for spec, task, kind, body in jobs:
                    store.upload(task, spec, kind, body, tags=["b10"])

            def run_floor(floor: FloorWriter = floor, bodies: list[bytes] = bodies) -> None:
                for body in bodies:
                    floor.write(body)

            def run_raw(raw_dir: Path = raw_dir, bodies: list[bytes] = bodies) -> None:
                for j, body in enumerate(bodies):
                    raw_write(raw_dir, f"artifact{j}.gz", body)

            time_in_rotation(
                rep,
                [
                    (counted("group", run_group), grouped),
                    (run_floor, floor_seconds),
                    (counted("single", run_single), single),
                    (run_raw, raw_seconds),
                ],
            )
            floor.close()
            shutil.rmtree(floor.folder)
            shutil.rmtree(raw_dir)
    reps = len(grouped)
    group_rate, single_rate = count / median(grouped), count / median(single)
    floor_rate, raw_rate = count / median(floor_seconds), count / median(raw_seconds)
    ratio = group_rate / floor_rate
    report.add(
        Result(
            "B10",
            f"{GROUP_THREADS} threads uploading 2 KB (durable, group commit), aggregate",
            group_rate,
            "uploads/s",
            floor_rate,
            "single-writer floor",
            ratio,
            f">= {B10_TARGET} x floor",
            ratio >= B10_TARGET,
            reps,
        )
    )
    report.add(
        Result(
            "B10",
            f"{GROUP_THREADS} threads vs the single-writer raw durable write",
            group_rate,
            "uploads/s",
            raw_rate,
            "single raw writer",
            group_rate / raw_rate,
            "informative",
            None,
            reps,
        )
    )
    report.add(
        Result(
            "B10",
            "1 writer (no one to share commits with) vs the single-writer floor",
            single_rate,
            "uploads/s",
            floor_rate,
            "single-writer floor",
            single_rate / floor_rate,
            "informative: compare with B1 'vs the floor'",
            None,
            reps,
        )
    )
    _sharing_rows(report, spent, reps)


def _commits(index: object) -> int:
    """Index transactions committed by puts so far (0 for an index without the count)."""
    return index.put_commits[0] if isinstance(index, SQLiteIndex) else 0


def _sharing_rows(report: Report, spent: dict[str, list[int]], reps: int) -> None:
    """fsync calls and index transactions per upload, alone and in the group."""
    for what, column in (("fsync calls", 0), ("index transactions", 1)):
        group = spent["group"][column] / max(1, spent["group"][2])
        alone = spent["single"][column] / max(1, spent["single"][2])
        report.add(
            Result(
                "B10",
                f"{what} per upload, {GROUP_THREADS} threads (1 writer alone as baseline)",
                group,
                "per upload",
                alone,
                "1 writer",
                alone / group if group else None,
                "informative: how much the group shares (higher is more)",
                None,
                reps,
            )
        )


def b11_upload_many(report: Report, work: Path, scale: Scale) -> None:
    """A task's three artifacts in one ``upload_many`` call vs three ``upload`` calls."""
    from necrocode.artifact_store import UploadItem

    tasks = max(6, scale.uploads_per_rep // 2)
    batched: list[float] = []
    separate: list[float] = []
    many, one = _Names("m"), _Names("u")
    with ArtifactStore(ArtifactStoreConfig(base_path=work / "store-b11")) as store:
        for rep in range(scale.repetitions):
            bodies = [payload(rep * tasks * BATCH + j) for j in range(tasks * BATCH)]
            many_jobs = [(*many.next(), body) for body in bodies]
            one_jobs = [(*one.next(), body) for body in bodies]

            def run_many(jobs: list[tuple[str, str, str, bytes]] = many_jobs) -> None:
                for start in range(0, len(jobs), BATCH):
                    items = [
                        UploadItem(task, spec, kind, body, tags=("b11",))
                        for spec, task, kind, body in jobs[start : start + BATCH]
                    ]
                    for result in store.upload_many(items):
                        if result.error is not None:
                            raise result.error

            def run_one(jobs: list[tuple[str, str, str, bytes]] = one_jobs) -> None:
                for spec, task, kind, body in jobs:
                    store.upload(task, spec, kind, body, tags=["b11"])

            time_in_rotation(rep, [(run_many, batched), (run_one, separate)])
    calls = tasks * BATCH
    many_rate, one_rate = calls / median(batched), calls / median(separate)
    report.add(
        Result(
            "B11",
            f"upload_many of {BATCH} 2 KB artifacts per call (durable), artifacts/s",
            many_rate,
            "uploads/s",
            one_rate,
            f"{BATCH} separate upload() calls",
            many_rate / one_rate,
            "informative: > 1 when the batch shares its commit",
            None,
            len(batched),
        )
    )


def main(argv: list[str] | None = None) -> int:
    """Run B10 and B11 alone and print their rows."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.group_commit", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="B10,B11")
    parser.add_argument("--work", type=Path, default=HERE / "_work" / "group_commit")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    only = {name.strip().upper() for name in args.only.split(",")}
    shutil.rmtree(args.work, ignore_errors=True)
    report = Report(scale)
    started = time.perf_counter()
    try:
        if "B10" in only:
            b10_group_commit(report, args.work / "b10", scale)
        if "B11" in only:
            b11_upload_many(report, args.work / "b11", scale)
    finally:
        shutil.rmtree(args.work, ignore_errors=True)
    for result in report.results:
        print(" | ".join(result.cells()))
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
