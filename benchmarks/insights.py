"""B8 content summaries: upload throughput with summaries against the same store without.

Two stores, identical but for ``content_summaries``, upload the same realistic
artifacts — a ``git diff`` (three hunks of 36 lines per file, ~5 KB a file), a
JUnit XML report with failures, a coloured log with tracebacks — in rotation,
at the size agents upload (tens of KB) and at a few MiB, where parsing weighs
most against the fixed cost of an upload. The target is at least 0.9 x the rate without summaries.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig

from .harness import MiB, Report, Result, Scale, median, rate_result, time_in_rotation

B8_TARGET = 0.9


def diff_payload(files: int) -> bytes:
    """A git diff of ``files`` files, three hunks each (context, removals, additions)."""
    parts = []
    for f in range(files):
        path = f"src/pkg{f % 13}/module_{f}.py"
        parts.append(
            f"diff --git a/{path} b/{path}\nindex 3b18e51..a9c4f2d 100644\n"
            f"--- a/{path}\n+++ b/{path}\n"
        )
        for h in range(3):
            start = 10 + h * 60
            parts.append(f"@@ -{start},22 +{start},26 @@ def handler_{f}_{h}(request):\n")
            for i in range(6):
                parts.append(f"     value_{i} = compute(request, {i})  # unchanged context\n")
            for i in range(10):
                parts.append(f"-    result_{i} = old_call(value_{i}, retries=3)\n")
            for i in range(14):
                parts.append(f"+    result_{i} = new_call(value_{i}, retries=5, timeout=2.0)\n")
            for i in range(6):
                parts.append(f"     log.debug('step {i} of {f}')\n")
    return "".join(parts).encode()


def junit_payload(cases: int) -> bytes:
    """A JUnit XML report of ``cases`` tests, one in twenty failing with a traceback."""
    rows = []
    for i in range(cases):
        name = f'classname="tests.test_mod{i % 17}" name="test_case_{i}" time="0.0{i % 9}"'
        if i % 20 == 0:
            rows.append(
                f'<testcase {name}><failure message="AssertionError: {i} != {i + 1}">'
                f"def test_case_{i}():\n&gt;       assert {i} == {i + 1}\n"
                f"E       AssertionError\n\ntests/test_mod.py:{i}: AssertionError"
                "</failure></testcase>"
            )
        else:
            rows.append(f"<testcase {name}/>")
    body = "".join(rows)
    return (
        f'<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" tests="{cases}" time="12.5">{body}</testsuite></testsuites>'
    ).encode()


def log_payload(lines: int) -> bytes:
    """A CI log of ``lines`` lines with colours, warnings and one traceback per 500 lines."""
    out = []
    for i in range(lines):
        if i % 500 == 250:
            out.append(
                "Traceback (most recent call last):\n"
                '  File "worker.py", line 12, in run\n'
                "KeyError: 'missing'\n"
            )
        elif i % 97 == 0:
            out.append(f"\x1b[33mWARNING\x1b[0m slow step {i} took 2.5s\n")
        else:
            out.append(f"\x1b[32mINFO\x1b[0m 2026-03-01T12:00:{i % 60:02d}Z step {i} done ok\n")
    return "".join(out).encode()


def payloads(large: bool) -> list[tuple[str, bytes]]:
    """One artifact of each type: tens of KB, or about 2 MiB each with ``large``."""
    if large:
        return [
            ("diff", diff_payload(400)),
            ("test", junit_payload(18_000)),
            ("log", log_payload(36_000)),
        ]
    return [("diff", diff_payload(6)), ("test", junit_payload(200)), ("log", log_payload(400))]


class _Uploads:
    """``rounds`` uploads of every body, each round into a new task."""

    def __init__(self, bodies: list[tuple[str, bytes]], rounds: int) -> None:
        self.bodies = bodies
        self.rounds = rounds
        self.count = 0
        #: CPU seconds of each run, per store: a loaded machine stretches them less
        #: than wall time, so they show the summaries' own cost.
        self.cpu: dict[bool, list[float]] = {True: [], False: []}

    def run(self, store: ArtifactStore) -> None:
        started = time.process_time()
        for _ in range(self.rounds):
            self.count += 1
            for kind, body in self.bodies:
                store.upload(f"task{self.count}", "bench", kind, body)
        self.cpu[store.config.content_summaries].append(time.process_time() - started)


def b7_summaries(report: Report, work: Path, scale: Scale) -> None:
    """B8 rows: small and large uploads/s with summaries against without.

    The two stores take turns in many short interleaved runs (the order flipping
    every run) and each side's figure is its median run, so a burst of load on a
    shared machine hits both sides alike and moves the ratio little.
    """
    runs = max(5, 3 * scale.repetitions)
    for large in (False, True):
        bodies = payloads(large)
        size = sum(len(body) for _, body in bodies) / len(bodies)
        rounds = max(1, scale.uploads_per_rep // (60 if large else 6))
        configs = {
            flag: ArtifactStoreConfig(base_path=work / f"{large}-{flag}", content_summaries=flag)
            for flag in (True, False)
        }
        seconds: dict[bool, list[float]] = {True: [], False: []}
        with ArtifactStore(configs[True]) as on, ArtifactStore(configs[False]) as off:
            uploads = _Uploads(bodies, rounds)
            for rep in range(runs + 1):
                sides = [
                    (lambda: uploads.run(on), seconds[True]),  # noqa: B023 - run at once
                    (lambda: uploads.run(off), seconds[False]),  # noqa: B023
                ]
                time_in_rotation(rep, sides)
        for flag in (True, False):
            seconds[flag].pop(0)  # the first round warms caches and creates folders
            uploads.cpu[flag].pop(0)
        label = f"{size / MiB:.1f} MiB" if large else f"{size / 1024:.0f} KiB"
        report.add(
            rate_result(
                "B8",
                f"uploads/s with content summaries, {label} diff/test/log",
                seconds[True],
                seconds[False],
                rounds * len(bodies),
                unit="uploads/s",
                baseline_label="the same store, content_summaries off",
                target_ratio=B8_TARGET,
            )
        )
        per_upload = rounds * len(bodies) / 1000  # seconds per run -> ms per upload
        cpu_on, cpu_off = (median(uploads.cpu[flag]) / per_upload for flag in (True, False))
        report.add(
            Result(
                "B8",
                f"CPU time per upload with content summaries, {label} diff/test/log",
                cpu_on,
                "ms",
                cpu_off,
                "content_summaries off",
                cpu_off / cpu_on,
                "",
                None,
                len(uploads.cpu[True]),
            )
        )
    shutil.rmtree(work, ignore_errors=True)
