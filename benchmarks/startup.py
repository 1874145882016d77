"""B9 start-up time of the command line: ``--version``, ``--help`` and ``ls`` on a small store.

Each figure is the median wall time of a whole process (start, imports, the
command, exit), timed in rotation with the same interpreter running
``python -c pass``, so that machine load hits both alike. Bytecode is cached
(in the work folder) as for an installed package, after one untimed run each.

Issue 19 asks for ``--version`` and ``--help`` within 0.15 s and ``ls`` of a
small store within 0.3 s, where ``python -c pass`` takes about 10 ms on an idle
machine; as ratios against that baseline (baseline / command, higher is
better) the targets are 10/150 and 10/300.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig

from .harness import Report, Result, Scale, median, time_in_rotation

#: Artifacts in the "small store" ``ls`` lists.
SMALL_STORE = 30
#: Seconds allowed per command on an idle machine, and the baseline they assume.
TARGETS = {"--version": 0.15, "--help": 0.15, "ls": 0.3}
IDLE_BASELINE = 0.010


def _fill(root: Path) -> None:
    config = ArtifactStoreConfig(base_path=root, durable_writes=False)
    with ArtifactStore(config) as store:
        for i in range(SMALL_STORE):
            store.upload(f"{i // 3}", f"spec{i % 2}", ("diff", "log", "test")[i % 3], b"x" * 200)


def _runner(args: list[str], env: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args} failed: {done.stderr.decode()[-500:]}")

    return run


def b9_startup(report: Report, work: Path, scale: Scale) -> None:
    """Time the three commands beside ``python -c pass``."""
    root = work / "store"
    _fill(root)
    env = dict(os.environ)
    env["HOME"] = str(work)  # no configuration of the machine's user
    env["NECROCODE_ARTIFACT_STORE_BASE_PATH"] = str(root)
    env.pop("NECROCODE_ARTIFACT_STORE_CONFIG", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    tool = [sys.executable, "-m", "necrocode.artifact_store"]
    baseline: list[float] = []
    timings: dict[str, list[float]] = {name: [] for name in TARGETS}
    sides: list[tuple[Callable[[], object], list[float]]] = [
        (_runner([sys.executable, "-c", "pass"], env), baseline)
    ]
    sides += [(_runner([*tool, name], env), timings[name]) for name in TARGETS]
    for run, _ in sides:
        run()  # untimed: writes the bytecode cache
    repetitions = max(5, scale.repetitions * 4)
    for rep in range(repetitions):
        time_in_rotation(rep, sides)
    base = median(baseline)
    for name, seconds in timings.items():
        value = median(seconds)
        figure = f"`{name}`" + (f" of {SMALL_STORE} artifacts" if name == "ls" else "")
        target = IDLE_BASELINE / TARGETS[name]
        report.add(
            Result(
                "B9",
                f"start-up: {figure}",
                value * 1000,
                "ms",
                base * 1000,
                "python -c pass",
                base / value,
                f">= {target:.3f} ({TARGETS[name] * 1000:.0f} ms at a 10 ms baseline)",
                base / value >= target,
                len(seconds),
            )
        )
