"""B5 concurrency: 1, 2 and 4 writer processes uploading into one store at once.

Each writer is a fresh process (``python -m benchmarks.concurrency WRITER ...``)
that opens the store, says it is ready, waits for the common start signal,
uploads its artifacts and prints its start and end times. The aggregate rate is
all uploads over the span from the first start to the last end. The baseline
is the same number of processes doing raw temp+fsync+rename writes. Afterwards
every upload is checked: downloaded, compared, and found by search.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig

from .harness import Report, Result, Scale, median
from .population import payload, raw_write

SEED_STRIDE = 1_000_000


def _seed(writer: int, rep: int, j: int) -> int:
    return rep * SEED_STRIDE + writer * (SEED_STRIDE // 100) + j


def writer_main(argv: list[str]) -> None:
    """Child: ``MODE BASE WRITER REP COUNT`` with MODE ``store`` or ``raw``."""
    mode, base, writer_s, rep_s, count_s = argv
    writer, rep, count = int(writer_s), int(rep_s), int(count_s)
    store = ArtifactStore(ArtifactStoreConfig(base_path=Path(base))) if mode == "store" else None
    folder = Path(base) / f"raw-{rep}-{writer}"
    if store is None:
        folder.mkdir(parents=True, exist_ok=True)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.time()
    uris = []
    for j in range(count):
        body = payload(_seed(writer, rep, j))
        if store is None:
            raw_write(folder, f"a{j}.gz", body)
        else:
            task = f"w{writer}-r{rep}-t{j // 3}"
            kind = ("diff", "log", "test")[j % 3]
            uris.append(store.upload(task, f"b5-w{writer}", kind, body, tags=[f"b5-{rep}"]))
    ended = time.time()
    if store is not None:
        store.close()
    print(json.dumps({"start": started, "end": ended, "uris": uris}), flush=True)


def _run_writers(mode: str, base: Path, writers: int, rep: int, count: int) -> list[dict[str, Any]]:
    root = Path(__file__).resolve().parents[1]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.concurrency",
                mode,
                str(base),
                str(w),
                str(rep),
                str(count),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
        )
        for w in range(writers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"B5 writer failed with exit code {proc.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _rate(results: list[dict[str, Any]], total: int) -> float:
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    return total / span


def _lost(base: Path, results: list[dict[str, Any]], rep: int, count: int) -> int:
    """Uploads that do not download intact or are not found by search."""
    with ArtifactStore(ArtifactStoreConfig(base_path=base)) as store:
        found = {m.uri for m in store.search_by_tags([f"b5-{rep}"])}
        lost = 0
        for writer, result in enumerate(results):
            assert len(result["uris"]) == count
            for j, uri in enumerate(result["uris"]):
                intact = store.download(uri) == payload(_seed(writer, rep, j))
                lost += 0 if intact and uri in found else 1
    return lost


def b5_concurrency(report: Report, work: Path, scale: Scale) -> None:
    """Aggregate upload rate per writer count, beside raw writers; lost uploads."""
    for writers in scale.writers:
        base = work / f"store-{writers}"
        raw_base = work / f"raw-{writers}"
        store_rates: list[float] = []
        raw_rates: list[float] = []
        lost = 0
        total = writers * scale.uploads_per_writer
        reps = scale.writer_repetitions
        for rep in range(scale.writer_repetitions):
            order = ("store", "raw") if rep % 2 == 0 else ("raw", "store")
            for mode in order:
                folder = base if mode == "store" else raw_base
                results = _run_writers(mode, folder, writers, rep, scale.uploads_per_writer)
                (store_rates if mode == "store" else raw_rates).append(_rate(results, total))
                if mode == "store":
                    lost += _lost(base, results, rep, scale.uploads_per_writer)
        value, base_rate = median(store_rates), median(raw_rates)
        report.add(
            Result(
                "B5",
                f"aggregate uploads/s, {writers} writer process(es)",
                value,
                "uploads/s",
                base_rate,
                f"{writers} raw writer process(es)",
                value / base_rate,
                "",
                None,
                len(store_rates),
            )
        )
        report.add(
            Result(
                "B5",
                f"lost artifacts, {writers} writer(s), {total * reps:,} uploads",
                lost,
                "",
                None,
                "",
                None,
                "0",
                lost == 0,
                scale.writer_repetitions,
            )
        )


if __name__ == "__main__":
    writer_main(sys.argv[1:])
