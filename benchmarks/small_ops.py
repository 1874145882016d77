"""B1 small uploads and B2 small downloads, each beside its raw baseline."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

from necrocode.artifact_store import ArtifactStore
from necrocode.artifact_store.naming import ArtifactKey

from .harness import Report, Result, Scale, median, rate_result, time_in_rotation
from .population import (
    TYPES,
    FloorWriter,
    floor_download,
    names,
    payload,
    raw_read,
    raw_write,
)

#: Measured uploads are new artifacts of tasks named ``live<n>``, 20 tasks per spec.
LIVE_TASKS_PER_SPEC = 20
B1_TARGET = 0.4
B1_FLAT_TARGET = 0.8
B2_TARGET = 0.5


class LiveUploads:
    """Numbers the artifacts that measured uploads create, so none is a replacement."""

    def __init__(self) -> None:
        self.count = 0

    def next_names(self) -> tuple[str, str, str]:
        """``(spec, task, type)`` of the next new artifact."""
        n = self.count
        self.count += 1
        task = n // 3
        return f"live{task // LIVE_TASKS_PER_SPEC:05d}", f"live{task:06d}", TYPES[n % 3].value


def measure_uploads(
    store: ArtifactStore, scratch: Path, scale: Scale, live: LiveUploads, stored: int
) -> tuple[float, float, float]:
    """Time batches of store uploads, raw writes and floor writes; return their median rates."""
    store_seconds: list[float] = []
    raw_seconds: list[float] = []
    floor_seconds: list[float] = []
    count = scale.uploads_per_rep
    for rep in range(scale.repetitions):
        raw_dir = scratch / f"raw-uploads-{stored}-{rep}"
        raw_dir.mkdir(parents=True)
        floor = FloorWriter(scratch / f"floor-uploads-{stored}-{rep}")
        bodies = [payload(live.count + j) for j in range(count)]
        jobs = [(*live.next_names(), body) for body in bodies]

        def run_raw(raw_dir: Path = raw_dir, bodies: list[bytes] = bodies) -> None:
            for j, body in enumerate(bodies):
                raw_write(raw_dir, f"artifact{j}.gz", body)

        def run_store(jobs: list[tuple[str, str, str, bytes]] = jobs) -> None:
            for spec, task, kind, body in jobs:
                store.upload(task, spec, kind, body, tags=["bench"])

        def run_floor(floor: FloorWriter = floor, bodies: list[bytes] = bodies) -> None:
            for body in bodies:
                floor.write(body)

        sides = [(run_raw, raw_seconds), (run_store, store_seconds), (run_floor, floor_seconds)]
        time_in_rotation(rep, sides)
        floor.close()
        shutil.rmtree(raw_dir)
        shutil.rmtree(floor.folder)
    return (
        count / median(store_seconds),
        count / median(raw_seconds),
        count / median(floor_seconds),
    )


def b1_row(report: Report, stored: int, rates: tuple[float, float, float], reps: int) -> None:
    """B1 at one store size: store and floor against raw, then store against floor."""
    store_rate, raw_rate, floor_rate = rates
    ratio = store_rate / raw_rate
    report.add(
        Result(
            "B1",
            f"small uploads/s, {stored:,} stored",
            store_rate,
            "uploads/s",
            raw_rate,
            "raw gzip+hash+tmp+fsync+rename+fsync",
            ratio,
            f">= {B1_TARGET} x raw",
            ratio >= B1_TARGET,
            reps,
        )
    )
    report.add(
        Result(
            "B1",
            f"floor: the store's write protocol in plain code, {stored:,} stored",
            floor_rate,
            "uploads/s",
            raw_rate,
            "raw",
            floor_rate / raw_rate,
            "informative: the best ratio the protocol allows here",
            None,
            reps,
        )
    )
    report.add(
        Result(
            "B1",
            f"small uploads/s vs the floor, {stored:,} stored",
            store_rate,
            "uploads/s",
            floor_rate,
            "floor",
            store_rate / floor_rate,
            "informative",
            None,
            reps,
        )
    )


def b1_flat_rows(
    report: Report, first: tuple[int, float, float], last: tuple[int, float, float], reps: int
) -> None:
    """B1's second target: the rate at the largest store against the smallest."""
    small_n, small_rate, small_raw = first
    big_n, big_rate, big_raw = last
    plain = big_rate / small_rate
    report.add(
        Result(
            "B1",
            f"upload rate at {big_n:,} vs at {small_n:,} (plain)",
            big_rate,
            "uploads/s",
            small_rate,
            f"rate at {small_n:,}",
            plain,
            "informative (machine load drifts between phases)",
            None,
            reps,
        )
    )
    normalised = (big_rate / big_raw) / (small_rate / small_raw)
    report.add(
        Result(
            "B1",
            f"upload rate at {big_n:,} vs at {small_n:,} (each / its raw baseline)",
            big_rate / big_raw,
            "x raw",
            small_rate / small_raw,
            f"at {small_n:,}",
            normalised,
            f">= {B1_FLAT_TARGET}",
            normalised >= B1_FLAT_TARGET,
            reps,
        )
    )


def b2_downloads(report: Report, store: ArtifactStore, population: int, scale: Scale) -> None:
    """Verified downloads of random bulk artifacts vs raw read + inflate + hash.

    Beside them runs the floor (:func:`floor_download`): what any verified
    download of an indexed artifact costs in plain code. Its own ratio to the
    raw baseline is the best the store could reach here.
    """
    rng = random.Random(2)
    store_seconds: list[float] = []
    raw_seconds: list[float] = []
    floor_seconds: list[float] = []
    count = scale.downloads_per_rep
    root = str(store.backend.path_of("x").parent)  # type: ignore[attr-defined]
    index = sqlite3.connect(store.config.effective_state_dir / "index.sqlite3")
    try:
        for rep in range(scale.repetitions):
            picks = [names(rng.randrange(population)) for _ in range(count)]
            uris = [ArtifactKey(*pick).uri(store.root_uri) for pick in picks]
            keys = [(spec, task, kind.value) for spec, task, kind in picks]
            paths = [store.backend.path_of(store.get_metadata(uri).object_key) for uri in uris]  # type: ignore[attr-defined]

            def run_store(uris: list[str] = uris) -> None:
                for uri in uris:
                    store.download(uri)

            def run_raw(paths: list[Path] = paths) -> None:
                for path in paths:
                    raw_read(path)

            def run_floor(keys: list[tuple[str, str, str]] = keys) -> None:
                for key in keys:
                    floor_download(index, root, key)

            # Warm the page cache alike, then time the three in a rotating order.
            run_raw()
            sides = [(run_raw, raw_seconds), (run_store, store_seconds), (run_floor, floor_seconds)]
            time_in_rotation(rep, sides)
    finally:
        index.close()
    report.add(
        rate_result(
            "B2",
            f"verified small downloads/s, {population:,} stored",
            store_seconds,
            raw_seconds,
            count,
            unit="downloads/s",
            baseline_label="raw read+inflate+sha256",
            target_ratio=B2_TARGET,
        )
    )
    report.add(
        rate_result(
            "B2",
            "floor: plain index lookup + record decode + read + inflate + sha256",
            floor_seconds,
            raw_seconds,
            count,
            unit="downloads/s",
            baseline_label="raw read+inflate+sha256",
        )
    )
    report.add(
        rate_result(
            "B2",
            "verified small downloads/s vs the floor",
            store_seconds,
            floor_seconds,
            count,
            unit="downloads/s",
            baseline_label="floor",
        )
    )
