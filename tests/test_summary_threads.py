"""Summaries parsed on a worker thread beside the upload (``pipeline.summarising``).

The threaded path must give the summaries the inline path gives, never fail an
upload, and leave no worker busy once an upload is over, however it ended.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.content import logs, summariser
from necrocode.artifact_store.content.summariser import summarise
from necrocode.artifact_store.pipeline import summarising
from necrocode.artifact_store.pipeline.summarising import POOL, SummaryTap
from necrocode.artifact_store.pipeline.summary_processes import PROCESSES

from .content_inputs import git, make_repo, run_tiny_suite

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _threads_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are of the worker threads: no worker process takes a summary over
    (``test_summary_processes.py`` tests those)."""
    monkeypatch.setattr(PROCESSES, "_limit", 0)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, bytes]]:
    """Real content of every summarised kind: git diffs, pytest's reports and output."""
    repo = make_repo(tmp_path_factory.mktemp("repo"))
    reports = run_tiny_suite(tmp_path_factory.mktemp("suite"))
    history = git(ROOT, "log", "-p", "-25", "--format=From %H%nSubject: %s%n")
    return {
        "diff": ("diff", git(repo, "diff", "--cached", "-M", "--binary").encode()),
        "history": ("diff", history.encode("utf-8", "surrogateescape")),
        "junit": ("test", reports["junit"]),
        "pytest-json": ("test", reports["pytest-json"]),
        "ctrf": ("test", reports["ctrf"]),
        "stdout": ("log", reports["stdout"]),
        "long-log": ("log", reports["stdout"] * 400),
        "not-a-report": ("test", b"this is not a report"),
    }


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _threaded(kind: str, data: bytes, size: int, thread_bytes: int) -> tuple[Any, bool]:
    with SummaryTap(kind, thread_bytes=thread_bytes) as tap:
        passed = b"".join(tap.tap(_pieces(data, size)))
        assert passed == data  # the tap hands every chunk on unchanged
        return tap.finish(), tap.threaded


@pytest.mark.parametrize("name", ["diff", "history", "junit", "pytest-json", "ctrf", "stdout"])
@pytest.mark.parametrize(("size", "thread_bytes"), [(7, 0), (4096, 0), (1000, 3000), (1 << 20, 1)])
def test_the_threaded_summary_is_the_inline_one(
    inputs: dict[str, tuple[str, bytes]], name: str, size: int, thread_bytes: int
) -> None:
    kind, data = inputs[name]
    expected = summarise(kind, data)
    assert expected[0] is not None, expected
    outcome, threaded = _threaded(kind, data, size, thread_bytes)
    assert threaded == (len(data) >= max(thread_bytes, 1))
    assert outcome == expected
    assert POOL.running == 0


def test_reasons_are_the_inline_ones(inputs: dict[str, tuple[str, bytes]]) -> None:
    kind, data = inputs["not-a-report"]
    outcome, threaded = _threaded(kind, data, 5, 0)
    assert threaded and outcome == summarise(kind, data) and outcome[0] is None
    assert _threaded("log", b"\x00binary", 3, 0)[0] == (None, "binary content")


def test_uploads_past_the_threshold_are_summarised_on_a_worker(
    tmp_path: Path, inputs: dict[str, tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    taps: list[SummaryTap] = []
    real = summarising.SummaryTap

    def recording(*args: Any, **kwargs: Any) -> SummaryTap:
        taps.append(real(*args, **kwargs))
        return taps[-1]

    monkeypatch.setattr("necrocode.artifact_store.pipeline.upload.SummaryTap", recording)
    # Small uploads are stored in combined batches (pipeline/combining.py).
    monkeypatch.setattr("necrocode.artifact_store.pipeline.upload_many.SummaryTap", recording)
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "s")) as store:
        for name in ("history", "long-log", "diff"):
            kind, data = inputs[name]
            meta = store.get_metadata(store.upload(name, "spec", kind, data))
            assert (meta.summary, meta.summary_reason) == summarise(kind, data)
            assert taps[-1].threaded == (len(data) >= summarising.SUMMARY_THREAD_BYTES)
            assert store.download(meta.uri) == data
    assert [tap.threaded for tap in taps] == [True, True, False]
    assert POOL.running == 0


def test_a_parser_error_on_the_worker_never_fails_the_upload(
    tmp_path: Path, inputs: dict[str, tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: Any, chunk: bytes) -> None:
        raise RuntimeError("scanner bug")

    monkeypatch.setattr(logs.LogScanner, "feed", explode)
    _, data = inputs["long-log"]
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "s")) as store:
        meta = store.get_metadata(store.upload("t", "s", "log", data))
        assert meta.summary is None
        assert meta.summary_reason == "summariser failed: RuntimeError: scanner bug"
        assert store.download(meta.uri) == data

        def bad_report(data: bytes, **_: Any) -> Any:
            raise RuntimeError("parser bug")

        monkeypatch.setattr(summariser, "parse_test_report", bad_report)
        report = b'{"test_results": []}' + b" " * (summarising.SUMMARY_THREAD_BYTES + 1)
        meta = store.get_metadata(store.upload("t", "s", "test", report))
        assert (meta.summary, meta.summary_reason) == (
            None,
            "summariser failed: RuntimeError: parser bug",
        )
    assert POOL.running == 0


def test_a_failing_worker_never_fails_the_upload(
    tmp_path: Path, inputs: dict[str, tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = summarising._work

    def broken(summariser_: Any, inbox: Any) -> Any:
        real(summariser_, inbox)  # drains the queue as the real one does
        raise MemoryError("no room")

    monkeypatch.setattr(summarising, "_work", broken)
    _, data = inputs["long-log"]
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "s")) as store:
        meta = store.get_metadata(store.upload("t", "s", "log", data))
        assert (meta.summary, meta.summary_reason) == (
            None,
            "summariser failed: MemoryError: no room",
        )
        assert store.download(meta.uri) == data
    assert POOL.running == 0


class _ContentFailed(Exception):
    pass


def _failing_content(data: bytes, error: BaseException) -> Iterator[bytes]:
    """Three quarters of ``data`` in 64 KiB pieces, then ``error``."""
    yield from _pieces(data[: len(data) * 3 // 4], 64 * 1024)
    raise error


@pytest.mark.parametrize("error", [_ContentFailed("source broke"), KeyboardInterrupt()])
def test_an_upload_failing_midway_leaves_no_worker_busy(
    tmp_path: Path,
    inputs: dict[str, tuple[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
) -> None:
    fed: list[int] = []
    real_feed = summariser.Summariser.feed

    def counting(self: Any, chunk: bytes) -> None:
        fed.append(len(chunk))
        real_feed(self, chunk)

    monkeypatch.setattr(summariser.Summariser, "feed", counting)
    _, data = inputs["long-log"]
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "s")) as store:
        with pytest.raises(type(error)):
            store.upload("t", "s", "log", _failing_content(data, error))
        # The worker was stopped and waited for before the upload raised.
        assert POOL.running == 0
        assert fed and sum(fed) < len(data)
        assert store.search(task_id="t") == []
        # The store goes on: the next upload is summarised on a worker again.
        meta = store.get_metadata(store.upload("t", "s", "log", data))
        assert (meta.summary, meta.summary_reason) == summarise("log", data)
    assert POOL.running == 0


def test_a_failure_after_streaming_leaves_no_worker_busy(
    tmp_path: Path, inputs: dict[str, tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compressor side fails midway: the tap is left suspended and closed."""
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "s")) as store:
        engine = store._parts.compression
        real = engine.compress_stream

        def failing(chunks: Any) -> Iterator[bytes]:
            for number, piece in enumerate(real(chunks)):
                if number == 1:
                    raise OSError("device full")
                yield piece

        monkeypatch.setattr(engine, "compress_stream", failing)
        _, data = inputs["long-log"]
        with pytest.raises(Exception, match="device full"):
            store.upload("t", "s", "log", list(_pieces(data, 64 * 1024)))
        assert POOL.running == 0
        assert store.search(task_id="t") == []


def test_with_every_worker_busy_an_upload_summarises_inline(
    inputs: dict[str, tuple[str, bytes]],
) -> None:
    kind, data = inputs["stdout"]
    busy = [SummaryTap("log", thread_bytes=0) for _ in range(POOL.WORKERS)]
    feeds = [busy_tap.tap([b"INFO x\n", b"ERROR y\n"]) for busy_tap in busy]
    try:
        for feed in feeds:
            next(iter(feed))  # past the threshold: each holds a worker
        assert all(tap.threaded for tap in busy) and POOL.running == POOL.WORKERS
        outcome, threaded = _threaded(kind, data, 1000, 0)
        assert not threaded and outcome == summarise(kind, data)
    finally:
        for tap in busy:
            tap.close()
    assert POOL.running == 0
    assert all(tap.finish() == (None, summarising.ABANDONED) for tap in busy)


def test_no_summary_when_summaries_are_off() -> None:
    chunks = [b"a", b"b"]
    with SummaryTap(None) as tap:
        assert tap.tap(chunks) is chunks
        assert tap.finish() == (None, None) and not tap.threaded
