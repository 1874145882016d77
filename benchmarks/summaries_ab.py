"""B8 of two checkouts in one run: ``python -m benchmarks.summaries_ab BASE_SRC [--large]``.

B8 (``benchmarks/insights.py``) compares uploads with and without content
summaries within one checkout. To tell what a change to the summaries did on a
shared machine, whose load moves between two runs of B8 more than the change
does, this runs both checkouts at once: one worker process per checkout (this
one's ``src`` and ``BASE_SRC``, each importing its own package), each with a
store with summaries and one without, and takes turns among the five sides —
base on/off, this on/off, and this with the summary thread disabled (every
upload summarised inline) — one short run each, the order rotating. Medians of
the wall and CPU time per upload are printed, and each checkout's rate ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OWN_SRC = HERE.parent / "src"


def worker(large: bool) -> None:
    """Serve ``on``/``off``/``inline`` commands on stdin: one run each, timed."""
    from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig

    from .insights import payloads

    try:
        from necrocode.artifact_store.pipeline import summarising
    except ImportError:  # a checkout from before the summary thread
        summarising = None
    bodies = payloads(large)
    rounds = 2 if large else 25
    work = Path(tempfile.mkdtemp(prefix="b8ab-"))
    stores = {
        flag: ArtifactStore(ArtifactStoreConfig(base_path=work / str(flag), content_summaries=flag))
        for flag in (True, False)
    }
    default = summarising.SUMMARY_THREAD_BYTES if summarising is not None else 0
    # A checkout with whole in-memory content sent to a worker at the start of an upload.
    early = getattr(summarising, "EARLY_BYTES", None)
    count = 0
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if summarising is not None:
                summarising.SUMMARY_THREAD_BYTES = 1 << 62 if command == "inline" else default
                if early is not None:
                    summarising.EARLY_BYTES = 1 << 62 if command == "inline" else early
            store = stores[command != "off"]
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(rounds):
                count += 1
                for kind, body in bodies:
                    store.upload(f"task{count}", "bench", kind, body)
            uploads = rounds * len(bodies)
            wall_ms = (time.perf_counter() - wall) * 1000 / uploads
            cpu_ms = (time.process_time() - cpu) * 1000 / uploads
            print(f"{wall_ms} {cpu_ms}", flush=True)
    finally:
        for store in stores.values():
            store.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_src", nargs="?", help="the other checkout's src folder")
    parser.add_argument("--large", action="store_true", help="~1.8 MiB artifacts")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.large)
        return
    if args.base_src is None:
        parser.error("give the src folder of the checkout to compare with")
    processes = {}
    for name, src in (("base", Path(args.base_src).resolve()), ("this", OWN_SRC)):
        command = [sys.executable, "-m", "benchmarks.summaries_ab", "--worker"]
        if args.large:
            command.append("--large")
        env = dict(os.environ, PYTHONPATH=str(src))
        process = subprocess.Popen(
            command,
            cwd=HERE.parent,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        processes[name] = process
    sides = [("base", "on"), ("base", "off"), ("this", "on"), ("this", "off"), ("this", "inline")]
    times: dict[tuple[str, str], list[tuple[float, float]]] = {side: [] for side in sides}
    loads = []
    for run in range(args.runs + 1):  # the first run warms up and is dropped
        shift = run % len(sides)
        order = sides[shift:] + sides[:shift]
        for name, command in order[::-1] if run % 2 else order:
            process = processes[name]
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(command + "\n")
            process.stdin.flush()
            wall, cpu = map(float, process.stdout.readline().split())
            if run:
                times[(name, command)].append((wall, cpu))
        loads.append(os.getloadavg()[0])
    for process in processes.values():
        assert process.stdin is not None
        process.stdin.close()
        process.wait()
    median = {
        side: tuple(statistics.median(t[i] for t in found) for i in (0, 1))
        for side, found in times.items()
    }
    label = "1.8 MiB" if args.large else "23 KiB"
    print(f"B8 {label}, {args.runs} runs, load average {min(loads):.1f}-{max(loads):.1f}")
    for name, command in (("base", "on"), ("this", "on"), ("this", "inline")):
        on, off = median[(name, command)], median[(name, "off")]
        print(
            f"  {name} {command:6s} ms/upload {on[0]:.3f} (off {off[0]:.3f}): rate ratio"
            f" {off[0] / on[0]:.2f}; CPU ms/upload {on[1]:.3f}"
            f" (off {off[1]:.3f}, +{on[1] - off[1]:.3f})"
        )


if __name__ == "__main__":
    main()
