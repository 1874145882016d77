"""The retry policy and the retrying backend, against a fault-injecting backend.

Sleeps are recorded, never taken, so these tests do not wait.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from necrocode.artifact_store import (
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactStoreConfig,
    FilesystemBackend,
    IntegrityError,
    LockTimeoutError,
    ReadStream,
    RetryingBackend,
    RetryPolicy,
    StorageError,
    StorageFullError,
    StoragePermissionError,
)
from necrocode.artifact_store.backends import create_backend
from necrocode.artifact_store.backends.base import (
    ObjectExistsError,
    StorageBackend,
    WriteSource,
    iter_source,
)

RETRY_LOGGER = "necrocode.artifact_store.backends.retry"


def transient(message: str = "connection reset") -> StorageError:
    return StorageError(message, retryable=True)


class FaultyBackend(FilesystemBackend):
    """A real filesystem backend whose calls fail as scripted.

    ``faults[operation]`` is a list of errors raised by the next calls of that
    operation, one per call; ``cut_reads`` makes the next read streams fail
    after that many bytes. ``calls`` counts every call per operation.
    """

    # Stands for a network backend here.
    capabilities = dataclasses.replace(FilesystemBackend.capabilities, transient_failures=True)
    # Like a cloud backend, every write goes through upload(), where the faults are.
    stage = StorageBackend.stage
    upload_after = StorageBackend.upload_after

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.faults: dict[str, list[BaseException]] = {}
        self.calls: dict[str, int] = {}
        self.cut_reads: list[int] = []
        self.upload_consumes_before_fault = 0

    def _hit(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        pending = self.faults.get(operation)
        if pending:
            raise pending.pop(0)

    def upload(self, key: str, data: WriteSource, *, if_absent: bool = False) -> int:
        if self.faults.get("upload"):
            # Consume part of the source first, as a real upload dies half-way.
            chunks = iter_source(data)
            for _ in range(self.upload_consumes_before_fault):
                next(chunks, None)
            self._hit("upload")
        self.calls["upload"] = self.calls.get("upload", 0) + 1
        return super().upload(key, data, if_absent=if_absent)

    def open_read(self, key: str) -> ReadStream:
        self._hit("open_read")
        stream = super().open_read(key)
        if not self.cut_reads:
            return stream
        limit = self.cut_reads.pop(0)
        sent = 0

        def read(count: int) -> bytes:
            nonlocal sent
            if sent >= limit:
                raise transient("connection reset while reading")
            data = stream.read(min(count, limit - sent))
            sent += len(data)
            return data

        return ReadStream(read, stream.close, size=stream.size, key=key)

    def delete(self, key: str) -> bool:
        self._hit("delete")
        return super().delete(key)

    def delete_many(self, keys: Sequence[str]) -> list[bool]:
        self._hit("delete_many")
        return super().delete_many(keys)

    def exists(self, key: str) -> bool:
        self._hit("exists")
        return super().exists(key)

    def list(self, prefix: str = "") -> Iterator[object]:  # type: ignore[override]
        self._hit("list")
        return super().list(prefix)


class SleepRecorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def faulty(tmp_path: Path) -> FaultyBackend:
    return FaultyBackend(tmp_path / "root")


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def retrying(faulty: FaultyBackend, sleeps: SleepRecorder) -> RetryingBackend:
    return RetryingBackend(faulty, RetryPolicy(3, 0.1, 5.0, sleep=sleeps))


def test_transient_error_retried_then_success(
    faulty: FaultyBackend, retrying: RetryingBackend, sleeps: SleepRecorder
) -> None:
    faulty.upload("s/t/x", b"data")
    faulty.faults["exists"] = [transient(), transient()]
    assert retrying.exists("s/t/x") is True
    assert faulty.calls["exists"] == 3
    assert len(sleeps.waits) == 2


def test_gives_up_after_the_limit_with_cause_chained(
    faulty: FaultyBackend, retrying: RetryingBackend, caplog: pytest.LogCaptureFixture
) -> None:
    last = transient("third reset")
    faulty.faults["delete"] = [transient(), transient(), last, transient()]
    with (
        caplog.at_level(logging.WARNING, logger=RETRY_LOGGER),
        pytest.raises(StorageError) as caught,
    ):
        retrying.delete("s/t/x")
    assert faulty.calls["delete"] == 3
    assert caught.value.__cause__ is last
    assert caught.value.retryable is False  # this layer already retried
    assert caught.value.key == "s/t/x"
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    finals = [r for r in caplog.records if "giving up" in r.getMessage()]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert [r.getMessage().split(":")[1].strip() for r in retries] == [
        "attempt 1 of 3 failed (StorageError",
        "attempt 2 of 3 failed (StorageError",
    ]
    assert all(r.getMessage().startswith("delete s/t/x:") for r in retries + finals)
    assert len(finals) == 1
    assert "giving up after attempt 3 of 3" in finals[0].getMessage()


@pytest.mark.parametrize(
    "error",
    [
        ArtifactNotFoundError("gone"),
        StoragePermissionError("denied"),
        StorageFullError("full"),
        IntegrityError("bad bytes"),
        StorageError("bad request"),
        ObjectExistsError("taken"),
        LockTimeoutError("lock busy"),
        ValueError("bad input"),
    ],
)
def test_permanent_errors_are_not_retried(
    faulty: FaultyBackend,
    retrying: RetryingBackend,
    sleeps: SleepRecorder,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
) -> None:
    faulty.faults["exists"] = [error]
    with caplog.at_level(logging.WARNING, logger=RETRY_LOGGER), pytest.raises(type(error)) as got:
        retrying.exists("s/t/x")
    assert got.value is error
    assert faulty.calls["exists"] == 1
    assert sleeps.waits == []
    assert caplog.records == []


def test_unmapped_connection_errors_are_retried_and_wrapped(
    faulty: FaultyBackend, retrying: RetryingBackend
) -> None:
    faulty.faults["exists"] = [ConnectionResetError(104, "reset"), TimeoutError("slow")] * 2
    with pytest.raises(StorageError) as caught:
        retrying.exists("s/t/x")
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    assert faulty.calls["exists"] == 3


def test_backoff_grows_exponentially_up_to_the_cap(faulty: FaultyBackend) -> None:
    sleeps = SleepRecorder()
    policy = RetryPolicy(6, 0.5, 3.0, jitter=False, sleep=sleeps)
    faulty.faults["exists"] = [transient() for _ in range(6)]
    with pytest.raises(StorageError):
        RetryingBackend(faulty, policy).exists("k")
    assert sleeps.waits == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_with_jitter_stays_in_its_window(faulty: FaultyBackend) -> None:
    sleeps = SleepRecorder()
    policy = RetryPolicy(5, 0.2, 10.0, sleep=sleeps)
    faulty.faults["exists"] = [transient() for _ in range(5)]
    with pytest.raises(StorageError):
        RetryingBackend(faulty, policy).exists("k")
    assert len(sleeps.waits) == 4
    for n, wait in enumerate(sleeps.waits):
        assert 0.2 * 2**n <= wait <= 0.2 * 2**n + 0.2


@pytest.mark.parametrize("kind", ["bytes", "file", "iterator"])
def test_retried_upload_sends_the_whole_source_again(
    faulty: FaultyBackend, retrying: RetryingBackend, kind: str
) -> None:
    data = bytes(range(256)) * 20_000  # several chunks
    source: WriteSource = {
        "bytes": data,
        "file": io.BytesIO(data),
        "iterator": iter([data[i : i + 100_000] for i in range(0, len(data), 100_000)]),
    }[kind]
    faulty.upload_consumes_before_fault = 2
    faulty.faults["upload"] = [transient(), transient()]
    assert retrying.upload("s/t/big", source) == len(data)
    assert faulty.download("s/t/big") == data


def test_retried_create_if_absent_recognises_its_own_earlier_write(
    faulty: FaultyBackend, retrying: RetryingBackend
) -> None:
    """The first try stored the object but its answer was lost: the retry is a success."""

    class LostAnswer(FaultyBackend):
        def upload(self, key: str, data: WriteSource, *, if_absent: bool = False) -> int:
            written = super().upload(key, data, if_absent=if_absent)
            if self.calls["upload"] == 1:
                raise transient("connection reset after the request was sent")
            return written

    backend = LostAnswer(faulty.root)
    wrapped = RetryingBackend(backend, retrying.policy)
    assert wrapped.upload("s/t/rec", b"my record", if_absent=True) == len(b"my record")
    faulty.upload("s/t/other", b"someone else", if_absent=True)
    backend.calls.clear()
    with pytest.raises(ObjectExistsError):
        wrapped.upload("s/t/other", b"mine", if_absent=True)


def test_read_resumes_where_the_connection_broke(
    faulty: FaultyBackend, retrying: RetryingBackend, caplog: pytest.LogCaptureFixture
) -> None:
    data = bytes(range(256)) * 10_000
    faulty.upload("s/t/r", data)
    faulty.cut_reads = [1000, 300_000]
    with caplog.at_level(logging.WARNING, logger=RETRY_LOGGER):
        assert retrying.download("s/t/r") == data
    assert faulty.calls["open_read"] == 3
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["read s/t/r"] * 2


def test_read_that_keeps_failing_is_never_silently_short(
    faulty: FaultyBackend, retrying: RetryingBackend
) -> None:
    faulty.upload("s/t/r", b"x" * 5000)
    faulty.cut_reads = [100, 0, 0, 0]
    with pytest.raises(StorageError) as caught:
        retrying.download("s/t/r")
    assert caught.value.__cause__ is not None


def test_stream_ending_early_counts_as_a_cut(faulty: FaultyBackend, sleeps: SleepRecorder) -> None:
    """A stream that says it is done before the announced size is retried, not accepted."""

    class ShortOnce(FaultyBackend):
        def open_read(self, key: str) -> ReadStream:
            stream = super().open_read(key)
            if self.calls["open_read"] > 1:
                return stream
            head = stream.read(10)
            parts = [head]
            return ReadStream(lambda n: parts.pop() if parts else b"", stream.close, size=50)

    backend = ShortOnce(faulty.root)
    backend.upload("s/t/short", bytes(range(50)))
    wrapped = RetryingBackend(backend, RetryPolicy(3, 0, 0, sleep=sleeps))
    assert wrapped.download("s/t/short") == bytes(range(50))


def test_listing_resumes_after_the_last_key(
    faulty: FaultyBackend, retrying: RetryingBackend
) -> None:
    keys = [f"l/k/{i:03d}" for i in range(20)]
    for key in keys:
        faulty.upload(key, b"")

    class BreaksMidway(FaultyBackend):
        def list(self, prefix: str = "") -> Iterator[object]:  # type: ignore[override]
            self.calls["list"] = self.calls.get("list", 0) + 1
            for n, info in enumerate(super().list(prefix)):
                if self.calls["list"] == 1 and n == 7:
                    raise transient("page request failed")
                yield info

    wrapped = RetryingBackend(BreaksMidway(faulty.root), retrying.policy)
    assert [info.key for info in wrapped.list("l/")] == keys


def test_create_backend_wraps_configured_backends(tmp_path: Path) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path / "a", retry_attempts=5)
    backend = create_backend(config)
    assert isinstance(backend, RetryingBackend)
    assert isinstance(backend.inner, FilesystemBackend)
    assert backend.policy.attempts == 5


def test_injected_backend_is_used_as_given(tmp_path: Path, faulty: FaultyBackend) -> None:
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "s"), backend=faulty) as store:
        assert store.backend is faulty


def test_store_upload_and_download_survive_transient_faults(
    tmp_path: Path, faulty: FaultyBackend, sleeps: SleepRecorder
) -> None:
    config = ArtifactStoreConfig(base_path=faulty.root, versioning_enabled=True)
    backend = RetryingBackend(faulty, RetryPolicy(3, 0.1, 1.0, sleep=sleeps))
    with ArtifactStore(config, backend=backend) as store:
        faulty.faults["upload"] = [transient()]
        uri = store.upload("1", "spec", "log", b"hello " * 1000)
        faulty.cut_reads = [5]
        assert store.download(uri) == b"hello " * 1000


class LosesRecordAnswers(FilesystemBackend):
    """Stores metadata records, then fails as if the connection broke before the answer."""

    # Every write goes through upload(), where the failure is.
    stage = StorageBackend.stage
    upload_after = StorageBackend.upload_after
    upload_after_many = StorageBackend.upload_after_many

    def __init__(self, root: Path, *, store_it: bool) -> None:
        super().__init__(root)
        self.store_it = store_it

    def upload(self, key: str, data: WriteSource, *, if_absent: bool = False) -> int:
        if not key.endswith(".meta.json"):
            return super().upload(key, data, if_absent=if_absent)
        if self.store_it:
            super().upload(key, data, if_absent=if_absent)
        raise transient("connection reset before the answer")


def test_store_keeps_an_upload_whose_commit_landed_despite_the_error(tmp_path: Path) -> None:
    backend = LosesRecordAnswers(tmp_path / "s", store_it=True)
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "s"), backend=backend) as store:
        uri = store.upload("1", "spec", "diff", b"landed")
        assert store.download(uri) == b"landed"
        report = store.verify_all()
        assert report.orphaned == [] and report.missing == []


def test_store_never_deletes_an_object_whose_commit_may_have_landed(tmp_path: Path) -> None:
    backend = LosesRecordAnswers(tmp_path / "s", store_it=False)
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "s"), backend=backend) as store:
        with pytest.raises(StorageError):
            store.upload("1", "spec", "diff", b"lost")
        assert not store.exists(store.root_uri + "/spec/1/diff.txt")
        # The object stays for repair: deleting it could break a record that did land.
        assert len(store.verify_all().orphaned) == 1


@pytest.mark.parametrize("landed", [True, False], ids=["landed", "lost"])
def test_upload_many_keeps_an_object_whose_commit_may_have_landed(
    tmp_path: Path, landed: bool
) -> None:
    """The batched commit of ``upload_many`` (and of combined uploads) treats a lost
    answer as the single upload does."""
    from necrocode.artifact_store import UploadItem

    backend = LosesRecordAnswers(tmp_path / "s", store_it=landed)
    with ArtifactStore(ArtifactStoreConfig(base_path=tmp_path / "s"), backend=backend) as store:
        results = store.upload_many(
            [UploadItem("1", "spec", "diff", b"one"), UploadItem("2", "spec", "log", b"two")]
        )
        report = store.verify_all()
        if landed:
            assert [r.error for r in results] == [None, None]
            assert [store.download(r.uri or "") for r in results] == [b"one", b"two"]
            assert report.orphaned == [] and report.missing == []
        else:
            assert all(isinstance(r.error, StorageError) for r in results)
            assert not store.exists(store.root_uri + "/spec/1/diff.txt")
            assert len(report.orphaned) == 2  # kept for repair, never deleted


def test_batch_delete_is_retried(faulty: FaultyBackend, retrying: RetryingBackend) -> None:
    for key in ("s/t/a", "s/t/b"):
        faulty.upload(key, b"x")
    faulty.faults["delete_many"] = [transient()]
    assert retrying.delete_many(["s/t/a", "s/t/b", "s/t/none"]) == [True, True, False]
    assert faulty.calls["delete_many"] == 2
    assert not faulty.exists("s/t/a") and not faulty.exists("s/t/b")
    assert retrying.delete_many([]) == []


def test_one_shot_sources_are_spooled_only_for_backends_with_transient_failures(
    faulty: FaultyBackend, retrying: RetryingBackend
) -> None:
    """The filesystem never fails transiently: its uploads are not copied aside."""
    assert FilesystemBackend.capabilities.transient_failures is False
    faulty.capabilities = FilesystemBackend.capabilities
    faulty.upload_consumes_before_fault = 1
    faulty.faults["upload"] = [transient()]
    with pytest.raises(StorageError, match="cannot be sent a second time"):
        retrying.upload("s/t/once", iter([b"a" * 10, b"b" * 10]))
    assert not faulty.exists("s/t/once")
