"""B8 by summary worker: ``python -m benchmarks.summary_workers [--runs N] [--rounds N] [--small]``.

B8 (``benchmarks/insights.py``) compares uploads with and without content
summaries. This tells apart what the worker that takes a large summary over
contributes: runs alternate between the **process** mode (worker processes,
the default where there are two cores) and the **thread** mode (no worker
process: the summary thread), and within a run the store with summaries and
the one without take turns per upload, the order flipping every round. Each
run prints the per-kind medians (with/without, ms), the median time an upload
waited for its summary, and the rate ratio; the last line gives each mode's
median ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.pipeline import summarising
from necrocode.artifact_store.pipeline.summary_processes import PROCESSES

from .insights import payloads

WARM_ROUNDS = 5


def _wait_for_worker(timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker = PROCESSES.acquire()
        if worker is not None:
            PROCESSES.release(worker)
            return True
        time.sleep(0.01)
    return False


def one_run(work: Path, large: bool, rounds: int) -> tuple[float, str]:
    """Interleaved uploads with and without summaries: ``(rate ratio, a line)``."""
    bodies = payloads(large)
    waits: dict[str, list[float]] = {kind: [] for kind, _ in bodies}
    seconds: dict[tuple[str, bool], list[float]] = {
        (kind, flag): [] for kind, _ in bodies for flag in (True, False)
    }
    real_finish = summarising.SummaryTap.finish

    def timed_finish(tap: summarising.SummaryTap) -> tuple[object, object]:
        started = time.perf_counter()
        outcome = real_finish(tap)
        if tap.summariser is not None:
            waits[tap.summariser.kind].append(time.perf_counter() - started)
        return outcome

    summarising.SummaryTap.finish = timed_finish  # type: ignore[assignment,method-assign]
    try:
        without = ArtifactStoreConfig(base_path=work / "off", content_summaries=False)
        with (
            ArtifactStore(ArtifactStoreConfig(base_path=work / "on")) as on,
            ArtifactStore(without) as off,
        ):
            for round_number in range(rounds + WARM_ROUNDS):
                for kind, body in bodies:
                    sides = [(on, True), (off, False)]
                    for store, flag in sides if round_number % 2 else reversed(sides):
                        started = time.perf_counter()
                        store.upload(f"task{round_number}", "bench", kind, body)
                        if round_number >= WARM_ROUNDS:
                            seconds[(kind, flag)].append(time.perf_counter() - started)
    finally:
        summarising.SummaryTap.finish = real_finish  # type: ignore[method-assign]
    medians = {key: statistics.median(values) for key, values in seconds.items()}
    ratio = sum(medians[(k, False)] for k, _ in bodies) / sum(medians[(k, True)] for k, _ in bodies)
    parts = [
        f"{kind} {medians[(kind, True)] * 1e3:.2f}/{medians[(kind, False)] * 1e3:.2f} ms"
        f" (wait {statistics.median(waits[kind][WARM_ROUNDS:]) * 1e3:.2f})"
        for kind, _ in bodies
    ]
    return ratio, "  ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each mode")
    parser.add_argument("--rounds", type=int, default=50, help="uploads of each kind per run")
    parser.add_argument("--small", action="store_true", help="the 23 KiB payloads")
    args = parser.parse_args()
    configured = PROCESSES.limit
    ratios: dict[str, list[float]] = {"process": [], "thread": []}
    root = Path(tempfile.mkdtemp(prefix="b8workers-"))
    try:
        for run in range(args.runs):
            for mode in ("process", "thread") if run % 2 == 0 else ("thread", "process"):
                PROCESSES.limit = configured if mode == "process" else 0
                if mode == "process" and not _wait_for_worker():
                    raise SystemExit("no summary worker process could be started")
                ratio, line = one_run(root / f"{run}-{mode}", not args.small, args.rounds)
                ratios[mode].append(ratio)
                print(f"{mode:7s} ratio {ratio:.3f}  {line}", flush=True)
                PROCESSES.shutdown()
    finally:
        PROCESSES.limit = configured
        shutil.rmtree(root, ignore_errors=True)
    summary = ", ".join(
        f"{mode} {statistics.median(values):.3f}" for mode, values in ratios.items() if values
    )
    print(f"median rate ratio with/without summaries: {summary}")


if __name__ == "__main__":
    main()
