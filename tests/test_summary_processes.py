"""Summaries parsed by worker processes (``pipeline.summary_processes``, ``content.worker``).

A worker process must give the summaries the inline path gives, never fail or
slow down an upload when it dies, hangs or is not there yet, stay in step with
its parent after an upload that ended early, and never be shared with a forked
child.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import resource
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.content import worker as wire
from necrocode.artifact_store.content.summariser import MAX_SUMMARY_BYTES, summarise
from necrocode.artifact_store.content.summary import ChangedFile, DiffSummary, Summary
from necrocode.artifact_store.exceptions import ArtifactExistsError
from necrocode.artifact_store.pipeline import summarising, summary_processes
from necrocode.artifact_store.pipeline.summarising import EARLY_BYTES, POOL, SummaryTap
from necrocode.artifact_store.pipeline.summary_processes import (
    PROCESSES,
    WorkerBroken,
    WorkerProcess,
)

from .content_inputs import git, make_repo, run_tiny_suite

ROOT = Path(__file__).resolve().parents[1]
BIG = 200 * 1024  # past the 64 KiB from which a worker takes a summary over


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, bytes]]:
    """Real content of every summarised kind, each past the hand-over threshold."""
    repo = make_repo(tmp_path_factory.mktemp("repo"))
    reports = run_tiny_suite(tmp_path_factory.mktemp("suite"))
    history = git(ROOT, "log", "-p", "-40", "--format=From %H%nSubject: %s%n")
    junit = reports["junit"]
    return {
        "diff": ("diff", git(repo, "diff", "--cached", "-M", "--binary").encode() * 40),
        "history": ("diff", history.encode("utf-8", "surrogateescape")),
        "junit": ("test", junit + b" " * BIG),
        "pytest-json": ("test", reports["pytest-json"] + b" " * BIG),
        "long-log": ("log", reports["stdout"] * 400),
        "not-a-report": ("test", b"this is not a report" * 10_000),
    }


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Up to two worker processes, started afresh and ready; stopped afterwards."""
    PROCESSES.shutdown()
    monkeypatch.setattr(PROCESSES, "_limit", 2)
    monkeypatch.setattr(PROCESSES, "_failures", 0)
    _wait_ready()
    yield
    PROCESSES.shutdown()


def _wait_ready(timeout: float = 30.0) -> None:
    """Until an idle worker is ready (the first acquire only starts one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker = PROCESSES.acquire()
        if worker is not None:
            PROCESSES.release(worker)
            return
        time.sleep(0.01)
    raise AssertionError("no summary worker process became ready")


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _summarised(kind: str, data: bytes, size: int) -> tuple[Any, SummaryTap]:
    with SummaryTap(kind) as tap:
        passed = b"".join(tap.tap(_pieces(data, size)))
        assert passed == data  # the tap hands every chunk on unchanged
        return tap.finish(), tap


@pytest.mark.parametrize("name", ["diff", "history", "junit", "pytest-json", "long-log"])
@pytest.mark.parametrize("size", [4096, 100_000, 1 << 20])
def test_the_process_summary_is_the_inline_one(
    workers: None, inputs: dict[str, tuple[str, bytes]], name: str, size: int
) -> None:
    kind, data = inputs[name]
    expected = summarise(kind, data)
    assert expected[0] is not None, expected
    outcome, tap = _summarised(kind, data, size)
    assert tap.in_process and not tap.threaded
    assert outcome == expected


def _frames(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The kinds of the frames workers are sent from now on."""
    sent: list[int] = []
    send_frame = WorkerProcess._send_frame

    def recording(self: WorkerProcess, header: bytes, payload: bytes = b"") -> None:
        sent.append(wire.parse_header(header[: wire.HEADER_SIZE])[0])
        send_frame(self, header, payload)

    monkeypatch.setattr(WorkerProcess, "_send_frame", recording)
    return sent


def test_chunks_go_through_shared_memory_and_past_it_through_the_pipe(
    monkeypatch: pytest.MonkeyPatch, inputs: dict[str, tuple[str, bytes]]
) -> None:
    PROCESSES.shutdown()
    monkeypatch.setattr(PROCESSES, "_limit", 1)
    monkeypatch.setattr(PROCESSES, "_failures", 0)
    monkeypatch.setattr(summary_processes, "SHARED_BYTES", 50_000)  # for the new worker
    try:
        _wait_ready()
        assert _only_worker()._shared is not None
        frames = _frames(monkeypatch)
        for name in ("diff", "junit", "long-log"):
            kind, data = inputs[name]
            frames.clear()
            outcome, tap = _summarised(kind, data, 20_000)
            assert tap.in_process and outcome == summarise(kind, data)
            expected, used = [wire.START], 0
            for size in (len(chunk) for chunk in _pieces(data, 20_000)):
                fits = used + size <= 50_000
                used += size if fits else 0
                expected.append(wire.SHARED if fits else wire.CHUNK)
            assert frames == [*expected, wire.FINISH]
            assert wire.SHARED in frames and wire.CHUNK in frames
        # A job after a big one starts at the beginning of the memory again.
        kind, data = inputs["diff"]
        frames.clear()
        outcome, tap = _summarised(kind, data[:70_000], 35_000)
        assert tap.in_process and outcome == summarise(kind, data[:70_000])
        assert frames == [wire.START, wire.SHARED, wire.CHUNK, wire.FINISH]
    finally:
        PROCESSES.shutdown()


def test_workers_keep_the_memory_they_free_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    PROCESSES.shutdown()
    monkeypatch.setattr(PROCESSES, "_limit", 1)
    monkeypatch.setattr(PROCESSES, "_failures", 0)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")  # the user's own setting wins
    try:
        _wait_ready()
        worker = _only_worker()
        environ = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
        assert b"MALLOC_TRIM_THRESHOLD_=12345" in environ
        assert b"MALLOC_MMAP_THRESHOLD_=%d" % (8 * 1024 * 1024) in environ
    finally:
        PROCESSES.shutdown()


def test_without_shared_memory_the_pipe_carries_the_chunks(
    monkeypatch: pytest.MonkeyPatch, inputs: dict[str, tuple[str, bytes]]
) -> None:
    PROCESSES.shutdown()
    monkeypatch.setattr(PROCESSES, "_limit", 1)
    monkeypatch.setattr(PROCESSES, "_failures", 0)
    monkeypatch.delattr(os, "memfd_create", raising=False)  # as on macOS
    try:
        _wait_ready()
        assert _only_worker()._shared is None
        frames = _frames(monkeypatch)
        kind, data = inputs["long-log"]
        outcome, tap = _summarised(kind, data, 1 << 20)
        assert tap.in_process and outcome == summarise(kind, data)
        assert wire.SHARED not in frames and wire.CHUNK in frames
    finally:
        PROCESSES.shutdown()


@pytest.mark.parametrize("reference", [(0, 0xFFFFFFFF), (1 << 31, 10), None])
def test_a_shared_frame_outside_the_memory_stops_the_worker(
    workers: None, reference: tuple[int, int] | None
) -> None:
    worker = PROCESSES.acquire()
    assert worker is not None
    try:
        worker.send(wire.START, b"log")
        if reference is None:  # a reference of the wrong size
            worker._send_frame(wire.frame_header(wire.SHARED, 3), b"abc")
        else:
            worker._send_frame(wire.pack_shared(*reference))
        worker.send(wire.FINISH)
        with pytest.raises(WorkerBroken):
            worker.result(timeout=10)
    finally:
        worker.broken = True
        PROCESSES.release(worker)
    assert worker.popen.poll() is not None


def test_a_worker_process_is_sent_the_content_before_it_is_compressed(
    workers: None, inputs: dict[str, tuple[str, bytes]]
) -> None:
    """It is read ahead (up to READ_AHEAD_BYTES), so the worker can parse it all, a
    test report whole, while the upload compresses it."""
    kind, data = inputs["junit"]
    chunks = list(_pieces(data, 80_000))
    assert len(chunks) > 2
    with SummaryTap(kind) as tap:
        passed = tap.tap(iter(chunks))
        first = next(passed)
        assert tap.in_process and tap._finish_sent  # all of it sent at the first chunk
        assert first + b"".join(passed) == data
        assert tap.finish() == summarise(kind, data)


def test_reasons_are_the_inline_ones(workers: None, inputs: dict[str, tuple[str, bytes]]) -> None:
    kind, data = inputs["not-a-report"]
    outcome, tap = _summarised(kind, data, 70_000)
    assert tap.in_process and outcome == summarise(kind, data) and outcome[0] is None
    binary = b"\x00binary" + b"x" * BIG
    assert _summarised("log", binary, 1 << 20)[0] == (None, "binary content")


def test_a_huge_log_is_capped_as_inline_and_not_sent_past_the_cap(workers: None) -> None:
    line = b"\x1b[31mERROR\x1b[0m step failed\n" + b"INFO all is well here\n" * 20
    data = line * (MAX_SUMMARY_BYTES // len(line) + 2000)
    with SummaryTap("log") as tap:
        for _ in tap.tap(_pieces(data, 1 << 20)):
            pass
        outcome = tap.finish()
        sent = tap._sent
    assert outcome == summarise("log", data)
    assert outcome[0] is not None and outcome[0].capped
    assert MAX_SUMMARY_BYTES <= sent < MAX_SUMMARY_BYTES + (1 << 20)


def test_uploads_past_the_threshold_go_to_a_process_and_match_inline(
    workers: None,
    tmp_path: Path,
    inputs: dict[str, tuple[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taps = _recording_taps(monkeypatch)
    config = ArtifactStoreConfig(base_path=tmp_path / "store")
    with ArtifactStore(config) as store:
        for name in ("diff", "junit", "long-log"):
            kind, data = inputs[name]
            meta = store.get_metadata(store.upload("task-1", "spec", kind, data))
            assert taps[-1].in_process
            assert (meta.summary, meta.summary_reason) == summarise(kind, data)
            assert store.download(meta.uri) == data


def test_the_first_large_upload_does_not_wait_for_a_worker_to_start(
    monkeypatch: pytest.MonkeyPatch, inputs: dict[str, tuple[str, bytes]]
) -> None:
    PROCESSES.shutdown()
    monkeypatch.setattr(PROCESSES, "_limit", 1)
    kind, data = inputs["long-log"]
    try:
        outcome, tap = _summarised(kind, data, 1 << 20)
        assert not tap.in_process and tap.threaded  # started one, used a thread
        assert outcome == summarise(kind, data)
        _wait_ready()
        outcome, tap = _summarised(kind, data, 1 << 20)
        assert tap.in_process and outcome == summarise(kind, data)
    finally:
        PROCESSES.shutdown()


def _only_worker() -> WorkerProcess:
    worker = PROCESSES.acquire()
    assert worker is not None
    PROCESSES.release(worker)
    return worker


def test_a_worker_killed_mid_upload_gives_no_summary_and_the_upload_succeeds(
    workers: None, tmp_path: Path, inputs: dict[str, tuple[str, bytes]]
) -> None:
    kind, data = inputs["long-log"]
    victim = _only_worker()

    def content() -> Iterator[bytes]:
        chunks = _pieces(data, 128 * 1024)
        yield next(chunks)
        yield next(chunks)  # the tap has handed the summary to the worker by now
        os.kill(victim.pid, signal.SIGKILL)
        victim.popen.wait()
        yield from chunks

    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        meta = store.get_metadata(store.upload("task-1", "spec", kind, content()))
        assert store.download(meta.uri) == data
        assert meta.summary is None
        assert meta.summary_reason is not None and "worker process" in meta.summary_reason
        # The dead worker was dropped; the next worker summarises as usual.
        _wait_ready()
        again = store.get_metadata(store.upload("task-2", "spec", kind, data))
        assert (again.summary, again.summary_reason) == summarise(kind, data)
    assert victim not in PROCESSES._idle


def test_a_worker_that_died_while_idle_is_replaced(
    workers: None, inputs: dict[str, tuple[str, bytes]]
) -> None:
    victim = _only_worker()
    os.kill(victim.pid, signal.SIGKILL)
    victim.popen.wait()
    kind, data = inputs["diff"]
    outcome, _ = _summarised(kind, data, 1 << 20)  # on a thread or a new worker
    assert outcome == summarise(kind, data)
    _wait_ready()
    outcome, tap = _summarised(kind, data, 1 << 20)
    assert tap.in_process and outcome == summarise(kind, data)
    assert victim not in PROCESSES._idle


def test_a_hung_worker_is_given_up_after_the_timeout(
    workers: None, monkeypatch: pytest.MonkeyPatch, inputs: dict[str, tuple[str, bytes]]
) -> None:
    victim = _only_worker()
    real_result = WorkerProcess.result
    monkeypatch.setattr(WorkerProcess, "result", lambda self: real_result(self, timeout=0.5))
    kind, data = inputs["junit"]
    os.kill(victim.pid, signal.SIGSTOP)  # stopped: it takes the content, never answers
    try:
        outcome, tap = _summarised(kind, data, 100_000)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGCONT)
    assert tap.in_process
    assert outcome[0] is None and outcome[1] is not None and "too long" in outcome[1]
    assert victim.popen.wait(10) is not None  # killed and reaped, not left behind
    assert victim not in PROCESSES._idle


def test_an_upload_failing_midway_keeps_the_worker_in_step(
    workers: None, tmp_path: Path, inputs: dict[str, tuple[str, bytes]]
) -> None:
    kind, data = inputs["long-log"]
    worker = _only_worker()

    def failing() -> Iterator[bytes]:
        chunks = _pieces(data, 128 * 1024)
        yield next(chunks)
        yield next(chunks)
        raise ConnectionResetError("the client went away")

    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        with pytest.raises(ConnectionResetError):
            store.upload("task-1", "spec", kind, failing())
        assert worker in PROCESSES._idle  # abandoned, not broken
        # The same worker answers the next job with that job's summary.
        other_kind, other = inputs["diff"]
        outcome, tap = _summarised(other_kind, other, 1 << 20)
        assert tap.in_process and outcome == summarise(other_kind, other)
    assert PROCESSES._idle == [worker] and not PROCESSES._busy
    assert POOL.running == 0


def test_in_memory_content_goes_to_a_worker_whole_when_its_upload_starts(
    workers: None,
    tmp_path: Path,
    inputs: dict[str, tuple[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taps = _recording_taps(monkeypatch)
    frames = _frames(monkeypatch)
    config = ArtifactStoreConfig(base_path=tmp_path / "store")
    with ArtifactStore(config) as store:
        for name in ("diff", "junit", "long-log"):
            kind, data = inputs[name]
            for content in (data[: EARLY_BYTES + 100], data):
                frames.clear()
                meta = store.get_metadata(store.upload("task-1", "spec", kind, content))
                assert taps[-1]._early and taps[-1].in_process
                assert (meta.summary, meta.summary_reason) == summarise(kind, content)
                assert store.download(meta.uri) == content
                # The whole job in one write: START, the content's place in the
                # shared memory, FINISH.
                assert frames == [wire.START]
        # Text goes too, as its UTF-8.
        kind, data = inputs["long-log"]
        meta = store.get_metadata(store.upload("task-4", "spec", kind, data.decode()))
        assert taps[-1]._early and (meta.summary, meta.summary_reason) == summarise(kind, data)
        # Smaller content is parsed inline; a path or a stream as it is read.
        store.upload("task-2", "spec", kind, data[: EARLY_BYTES - 1])
        assert not taps[-1]._early and not taps[-1].in_process
        path = tmp_path / "log.txt"
        path.write_bytes(data)
        meta = store.get_metadata(store.upload("task-3", "spec", kind, path))
        assert not taps[-1]._early and taps[-1].in_process
        assert (meta.summary, meta.summary_reason) == summarise(kind, data)


def test_content_past_the_shared_memory_is_not_sent_whole(
    workers: None, inputs: dict[str, tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, data = inputs["long-log"]
    monkeypatch.setattr(summarising, "SHARED_BYTES", len(data) - 1)
    with SummaryTap(kind) as tap:
        assert not tap.start_early(data)
        assert b"".join(tap.tap(_pieces(data, 1 << 20))) == data
        assert tap.finish() == summarise(kind, data) and tap.in_process and not tap._early


def test_an_upload_refused_after_its_content_was_sent_keeps_the_worker_in_step(
    workers: None, tmp_path: Path, inputs: dict[str, tuple[str, bytes]]
) -> None:
    kind, data = inputs["diff"]
    worker = _only_worker()
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "store")) as store:
        store.upload("task-1", "spec", kind, b"x" * 10)
        with pytest.raises(ArtifactExistsError):  # refused under the lock, after the send
            store.upload("task-1", "spec", kind, data, if_absent=True)
        assert worker in PROCESSES._idle and not worker.broken
        other_kind, other = inputs["junit"]
        meta = store.get_metadata(store.upload("task-2", "spec", other_kind, other))
        assert (meta.summary, meta.summary_reason) == summarise(other_kind, other)
    assert not PROCESSES._busy


def test_a_worker_that_breaks_as_the_content_is_sent_leaves_it_to_the_tap(
    workers: None, inputs: dict[str, tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: WorkerProcess, kind: bytes, content: bytes) -> None:
        raise WorkerBroken("the pipe is gone")

    monkeypatch.setattr(WorkerProcess, "send_job", broken)
    kind, data = inputs["long-log"]
    with SummaryTap(kind) as tap:
        assert not tap.start_early(data)
        assert b"".join(tap.tap(_pieces(data, 1 << 20))) == data
        assert tap.finish() == summarise(kind, data)


def test_a_failure_after_the_content_was_sent_reads_the_answer(
    workers: None, inputs: dict[str, tuple[str, bytes]]
) -> None:
    kind, data = inputs["junit"]
    with pytest.raises(RuntimeError), SummaryTap(kind) as tap:
        b"".join(tap.tap(_pieces(data, 1 << 20)))  # FINISH is sent with the last chunk
        raise RuntimeError("the commit failed")
    assert not PROCESSES._busy
    other_kind, other = inputs["long-log"]
    outcome, tap = _summarised(other_kind, other, 1 << 20)
    assert tap.in_process and outcome == summarise(other_kind, other)


def test_with_every_worker_busy_an_upload_uses_a_thread(
    workers: None, inputs: dict[str, tuple[str, bytes]]
) -> None:
    _wait_ready()
    kind, data = inputs["long-log"]
    held = [tap for tap in (SummaryTap(kind), SummaryTap(kind), SummaryTap(kind))]
    streams = [iter(tap.tap(_pieces(data, 1 << 20))) for tap in held]
    firsts = [next(stream) for stream in streams]
    assert firsts == [data[: 1 << 20]] * 3
    in_process = [tap.in_process for tap in held]
    assert sum(in_process) >= 1 and not all(in_process)
    for tap in held:
        tap.close()
    assert not PROCESSES._busy


def test_a_forked_child_does_not_use_its_parents_workers(
    workers: None, inputs: dict[str, tuple[str, bytes]]
) -> None:
    kind, data = inputs["diff"]
    parent_worker = _only_worker()
    expected = summarise(kind, data)
    pid = os.fork()
    if pid == 0:  # the child: its own summaries, none through the parent's pipes
        code = 1
        try:
            ok = not PROCESSES._idle and not PROCESSES._busy
            outcome, tap = _summarised(kind, data, 1 << 20)
            code = 0 if ok and not tap.in_process and outcome == expected else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    outcome, tap = _summarised(kind, data, 1 << 20)
    assert tap.in_process and outcome == expected
    assert PROCESSES._idle == [parent_worker]


def _recording_taps(monkeypatch: pytest.MonkeyPatch) -> list[SummaryTap]:
    taps: list[SummaryTap] = []

    def recording(*args: Any, **kwargs: Any) -> SummaryTap:
        taps.append(SummaryTap(*args, **kwargs))
        return taps[-1]

    monkeypatch.setattr("necrocode.artifact_store.pipeline.upload.SummaryTap", recording)
    return taps


def test_summary_processes_0_in_the_configuration_uses_a_thread(
    workers: None,
    tmp_path: Path,
    inputs: dict[str, tuple[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taps = _recording_taps(monkeypatch)
    kind, data = inputs["long-log"]
    config = ArtifactStoreConfig(base_path=tmp_path / "off", summary_processes=0)
    with ArtifactStore(config) as store:
        meta = store.get_metadata(store.upload("task-1", "spec", kind, data))
    assert taps[-1].threaded and not taps[-1].in_process
    assert (meta.summary, meta.summary_reason) == summarise(kind, data)
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "on")) as store:
        store.upload("task-1", "spec", kind, data)
    assert taps[-1].in_process


def test_a_store_limit_caps_the_workers_started_for_it(workers: None) -> None:
    first = PROCESSES.acquire(limit=1)
    assert first is not None  # the ready one
    try:
        assert PROCESSES.acquire(limit=1) is None
        assert not PROCESSES._idle  # the limit is reached: none was started
    finally:
        PROCESSES.release(first)


def test_one_core_means_no_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary_processes, "_available_cores", lambda: 1)
    assert summary_processes._machine_limit() == 0
    monkeypatch.setattr(summary_processes, "_available_cores", lambda: 16)
    assert summary_processes._machine_limit() == summary_processes.MAX_PROCESSES


def test_bad_summary_processes_settings_are_refused(tmp_path: Path) -> None:
    for bad in (-1, 5, "many"):
        with pytest.raises(ValueError, match="summary_processes"):
            ArtifactStoreConfig(base_path=tmp_path, summary_processes=bad)


def test_a_worker_that_cannot_start_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    PROCESSES.shutdown()
    monkeypatch.setattr(PROCESSES, "_limit", 1)
    monkeypatch.setattr(PROCESSES, "_failures", 0)
    monkeypatch.setattr(summary_processes, "_COMMAND", "raise SystemExit(1)")
    deadline = time.monotonic() + 30
    while PROCESSES._failures < summary_processes.MAX_START_FAILURES:
        assert PROCESSES.acquire() is None
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert PROCESSES.acquire() is None and not PROCESSES._idle  # no more attempts
    with SummaryTap("log") as tap:
        b"".join(tap.tap([b"ERROR x\n" * 20_000]))
        assert tap.finish() == summarise("log", b"ERROR x\n" * 20_000)


def test_outcomes_cross_the_wire_unchanged() -> None:
    files = (
        ChangedFile("a.py", "modified", 3, 1),
        ChangedFile("b.py", "renamed", 0, 0, old_path="old/b.py"),
        ChangedFile("c.png", "added", 0, 0, binary=True),
    )
    diff = Summary("diff", 2, diff=DiffSummary(3, 3, 1, 1, files), capped=True)
    for outcome in (
        (diff, None),
        summarise("log", b"Traceback (most recent call last):\nKeyError: 1\n"),
        summarise("test", b'{"success": false, "test_results": [{"name": "t", "passed": false}]}'),
        (None, "binary content"),
    ):
        assert wire.unpack_outcome(wire.pack_outcome(outcome)) == outcome


GARBAGE = [
    b"",
    b"\x00\x01",
    b"\xe9" * 3,
    wire.pack_outcome((None, "x"))[:-1],
    marshal.dumps(5),
    marshal.dumps((1, 2, 3)),
    marshal.dumps((None, 7)),
    marshal.dumps((("diff", 2, None, (1, 2), None, False), None)),
    marshal.dumps(compile("print(1)", "x", "exec")),
    msgspec.msgpack.encode((5, "x")),
    msgspec.msgpack.encode((None, 7)),
    msgspec.msgpack.encode(({"kind": "nope", "parser_version": 1}, None)),
    msgspec.msgpack.encode(({"kind": "diff", "parser_version": "1"}, None)),
    msgspec.msgpack.encode(
        ({"kind": "diff", "parser_version": 1, "diff": {"files_changed": [], "added": 1}}, None)
    ),
    msgspec.msgpack.encode((None, "x", "extra")),
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_a_garbled_answer_is_a_typed_error(garbage: bytes) -> None:
    with pytest.raises((ValueError, TypeError, EOFError, IndexError)):
        wire.unpack_outcome(garbage)


def test_a_worker_answering_garbage_is_broken(workers: None) -> None:
    worker = PROCESSES.acquire()
    assert worker is not None
    try:
        worker.send(99)  # not a frame kind: the worker stops reading
        with pytest.raises(WorkerBroken):
            worker.result(timeout=10)
    finally:
        worker.broken = True
        PROCESSES.release(worker)
    assert worker.popen.poll() is not None


def test_workers_serve_a_process_with_more_than_1024_descriptors(
    monkeypatch: pytest.MonkeyPatch, inputs: dict[str, tuple[str, bytes]]
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1400:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1400), hard))
    filler: list[int] = []
    PROCESSES.shutdown()
    monkeypatch.setattr(PROCESSES, "_limit", 1)
    monkeypatch.setattr(PROCESSES, "_failures", 0)
    try:
        while len(filler) < 1100:
            filler.append(os.open(os.devnull, os.O_RDONLY))
        _wait_ready()  # its pipes are past descriptor 1024, where select() fails
        kind, data = inputs["long-log"]
        outcome, tap = _summarised(kind, data, 1 << 20)
        assert tap.in_process and outcome == summarise(kind, data)
    finally:
        PROCESSES.shutdown()
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
