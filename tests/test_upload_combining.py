"""Combined uploads (issue 14): small ``upload`` calls of several threads at once are
stored as one batch, and each still behaves as an ``upload`` of its own.

Each test makes the batches it needs deterministic (:class:`_Gate`): a first
upload, alone, is held in the ordinary pipeline; a second one then leads a
batch of its own and waits inside the store until the others are queued
behind it, so they are all stored by the next batch. The kill campaign of
``test_group_commit.py`` (threads calling ``upload_version`` with content of
2 and 24 KB) covers the combined path's durability.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from necrocode.artifact_store import (
    ArtifactStore,
    ArtifactStoreConfig,
    InvalidInputError,
    StorageFullError,
)
from necrocode.artifact_store.naming import ArtifactKey
from necrocode.artifact_store.pipeline import combining
from necrocode.artifact_store.pipeline.upload import Uploader

WAIT_S = 20.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ArtifactStore]:
    config = ArtifactStoreConfig(base_path=tmp_path / "store", versioning_enabled=True)
    with ArtifactStore(config) as opened:
        yield opened


def _combiner(store: ArtifactStore) -> combining.UploadCombiner:
    combiner = store._uploads
    assert isinstance(combiner, combining.UploadCombiner)
    return combiner


class _Gate:
    """Order a test's uploads: ``calls[0]`` is held inside the ordinary pipeline (an
    upload alone takes it), so ``calls[1]`` queues and leads a batch of its own, whose
    staging waits until ``queued`` more uploads are queued behind it; those are then
    stored as the next batch."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store: ArtifactStore, queued: int):
        self.alone, self.leading, self.opened = (threading.Event() for _ in range(3))
        combiner = _combiner(store)
        upload, stage = Uploader.upload, combining.stage_combined

        def held(uploader: Uploader, *args: Any) -> Any:
            if not self.alone.is_set():
                self.alone.set()
                assert self.opened.wait(WAIT_S)
            return upload(uploader, *args)

        def gated(*args: Any) -> Any:
            if not self.leading.is_set():
                self.leading.set()
                deadline = time.monotonic() + WAIT_S
                while combiner.waiting < queued:
                    assert time.monotonic() < deadline, "the other uploads never queued up"
                    time.sleep(0.005)
                self.opened.set()
            return stage(*args)

        monkeypatch.setattr(Uploader, "upload", held)
        monkeypatch.setattr(combining, "stage_combined", gated)

    def run(self, calls: list[Callable[[], object]]) -> list[object]:
        """Run ``calls`` in that order (see the class docstring); their outcomes."""
        outcomes: list[object] = [None] * len(calls)

        def run(index: int) -> None:
            try:
                outcomes[index] = calls[index]()
            except Exception as exc:
                outcomes[index] = exc

        threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
        threads[0].start()
        assert self.alone.wait(WAIT_S)
        threads[1].start()
        assert self.leading.wait(WAIT_S)
        for thread in threads[2:]:
            thread.start()
        for thread in threads:
            thread.join(WAIT_S)
            assert not thread.is_alive()
        return outcomes


def test_concurrent_small_uploads_are_stored_in_one_batch(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [(f"task{n}", f"body of {n}\n".encode() * 50) for n in range(12)]
    # Three more versions of task0's log, from three other threads at once.
    jobs += [("task0", f"version from thread {n}\n".encode()) for n in range(3)]
    gate = _Gate(monkeypatch, store, len(jobs) - 2)
    before = _combiner(store).batches
    calls: list[Callable[[], object]] = [
        (lambda t=task, b=body: store.upload_version(t, "spec", "log", b, tags=["c"]))
        for task, body in jobs
    ]
    outcomes = gate.run(calls)
    batches, items = (a - b for a, b in zip(_combiner(store).batches, before, strict=True))
    # The first alone (the ordinary pipeline), the second alone, then all the others.
    assert (batches, items) == (2, len(jobs) - 1)
    versions: dict[str, list[int]] = {}
    for (task, body), meta in zip(jobs, outcomes, strict=True):
        assert not isinstance(meta, Exception), meta
        assert store.download(f"{meta.uri}?version={meta.version}") == body  # type: ignore[union-attr]
        versions.setdefault(task, []).append(meta.version)  # type: ignore[union-attr]
    assert sorted(versions["task0"]) == [1, 2, 3, 4]
    assert all(v == [1] for task, v in versions.items() if task != "task0")
    assert {m.task_id for m in store.search(tags=["c"])} == {task for task, _ in jobs}
    assert store.verify_all().healthy


def test_an_upload_whose_artifact_is_held_does_not_hold_up_the_others(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = ArtifactKey.of("spec", "busy", "log")
    gate = _Gate(monkeypatch, store, 3)
    finished: dict[str, float] = {}

    def upload(task: str) -> Callable[[], object]:
        def call() -> object:
            uri = store.upload(task, "spec", "log", f"{task}\n".encode())
            finished[task] = time.monotonic()
            return uri

        return call

    with store.locks.hold(held.path):
        results: list[object] = []
        runner = threading.Thread(
            target=lambda: results.extend(
                gate.run([upload(t) for t in ("alone", "lead", "busy", "free1", "free2")])
            )
        )
        runner.start()
        deadline = time.monotonic() + WAIT_S
        while not {"free1", "free2"} <= finished.keys():
            assert time.monotonic() < deadline, "uploads of free artifacts waited for a held one"
            time.sleep(0.01)
        assert "busy" not in finished  # it waits for its own lock, on its own thread
        released = time.monotonic()
    runner.join(WAIT_S)
    assert not runner.is_alive()
    assert finished["busy"] >= released
    assert all(isinstance(uri, str) for uri in results), results
    assert store.download(store.get_metadata(results[2]).uri) == b"busy\n"  # type: ignore[arg-type]


def test_each_upload_of_a_batch_gets_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quota = {"max_size_gb": 3000 / 2**30}  # 3,000 bytes
    config = ArtifactStoreConfig(base_path=tmp_path / "store", storage_quota=quota)
    with ArtifactStore(config) as store:
        gate = _Gate(monkeypatch, store, 2)  # the stream goes alone
        calls: list[Callable[[], object]] = [
            lambda: store.upload("alone", "spec", "log", b"first\n"),
            lambda: store.upload("ok1", "spec", "log", b"fine\n"),
            lambda: store.upload("bad", "spec", "log", b"x", tags=["not a tag!"]),
            lambda: store.upload("big", "spec", "log", io.BytesIO(b"")),  # streamed: not combined
            lambda: store.upload("ok2", "spec", "log", b"also fine\n"),
        ]
        outcomes = gate.run(calls)[1:]
        assert isinstance(outcomes[0], str) and isinstance(outcomes[3], str)
        assert isinstance(outcomes[1], InvalidInputError)
        assert isinstance(outcomes[2], str)
        tasks = {m.task_id for m in store.search(spec_name="spec")}
        assert tasks == {"alone", "ok1", "big", "ok2"}

        # Over the quota in the middle of a batch: that upload alone is refused.
        gate = _Gate(monkeypatch, store, 2)
        random_bytes = os.urandom(4096)  # gzip cannot shrink it under the quota
        calls = [
            lambda: store.upload("q0", "spec", "log", b"first\n"),
            lambda: store.upload("q1", "spec", "log", b"small\n"),
            lambda: store.upload("q2", "spec", "log", random_bytes),
            lambda: store.upload("q3", "spec", "log", b"small too\n"),
        ]
        outcomes = gate.run(calls)[1:]
        assert isinstance(outcomes[1], StorageFullError)
        assert isinstance(outcomes[0], str) and isinstance(outcomes[2], str)
        assert store.verify_all().healthy


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda path: io.BytesIO(b"a stream\n"), id="binary-file"),
        pytest.param(lambda path: iter([b"chunk one\n", b"chunk two\n"]), id="iterator"),
        pytest.param(lambda path: path, id="path"),
        pytest.param(lambda path: b"x" * combining.COMBINED_BYTES, id="large-bytes"),
        pytest.param(lambda path: "\u00e9" * (combining.COMBINED_BYTES // 3), id="large-text"),
    ],
)
def test_streamed_or_large_content_takes_the_ordinary_path(
    store: ArtifactStore, tmp_path: Path, content: Callable[[Path], Any]
) -> None:
    source = tmp_path / "source.txt"
    source.write_bytes(b"from a file\n")
    before = _combiner(store).batches
    uri = store.upload("t", "spec", "log", content(source))
    assert _combiner(store).batches == before
    assert store.download(uri)


def test_an_upload_with_a_progress_callback_takes_the_ordinary_path(store: ArtifactStore) -> None:
    seen: list[int] = []
    before = _combiner(store).batches
    store.upload(
        "t", "spec", "log", b"with progress\n", progress=lambda done, total: seen.append(done)
    )
    assert _combiner(store).batches == before
    assert seen and seen[-1] == len(b"with progress\n")


def test_an_upload_alone_skips_the_queue(store: ArtifactStore) -> None:
    before = _combiner(store).batches
    for n in range(3):
        store.upload(f"t{n}", "spec", "diff", b"--- a\n+++ b\n")
    assert _combiner(store).batches == before


def test_upload_many_waits_for_an_artifact_another_writer_holds(store: ArtifactStore) -> None:
    """``upload_many`` (unlike the combined ``upload`` batches) waits for its locks."""
    from necrocode.artifact_store import UploadItem

    held = ArtifactKey.of("spec", "busy", "log")
    results: list[object] = []
    with store.locks.hold(held.path):
        worker = threading.Thread(
            target=lambda: results.extend(
                store.upload_many(
                    [
                        UploadItem("busy", "spec", "log", b"waited\n"),
                        UploadItem("free", "spec", "log", b"free\n"),
                    ]
                )
            )
        )
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive()  # still waiting for the held lock
    worker.join(WAIT_S)
    assert not worker.is_alive()
    assert [r.error for r in results] == [None, None]  # type: ignore[attr-defined]
    assert store.download(results[0].uri) == b"waited\n"  # type: ignore[attr-defined]


def test_text_that_is_not_utf8_is_refused_alone_and_in_a_batch(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidInputError, match="cannot be stored as UTF-8"):
        store.upload("alone", "spec", "log", "a lone surrogate: \ud800")
    gate = _Gate(monkeypatch, store, 2)
    outcomes = gate.run(
        [
            lambda: store.upload("first", "spec", "log", "fine\n"),
            lambda: store.upload("lead", "spec", "log", "fine too\n"),
            lambda: store.upload("bad", "spec", "log", "\udcff in a batch"),
            lambda: store.upload("ok", "spec", "log", "also fine\n"),
        ]
    )
    assert isinstance(outcomes[2], InvalidInputError)
    assert all(isinstance(outcome, str) for i, outcome in enumerate(outcomes) if i != 2)
    assert {m.task_id for m in store.search(spec_name="spec")} == {"first", "lead", "ok"}
    assert store.verify_all().healthy
