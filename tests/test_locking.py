"""Per-artifact locks (SPEC 11, DESIGN invariant 3), each against a lock held by
another process: timeouts name the artifact and the wait, a killed holder never
blocks a later writer, writers of different artifacts never wait for each other,
and reads take no lock at all.
"""

from __future__ import annotations

import os
import pickle
import signal
from pathlib import Path

import pytest

from necrocode.artifact_store import (
    ArtifactStore,
    ArtifactStoreConfig,
    LockTimeoutError,
)
from necrocode.artifact_store.naming import ArtifactKey

from .lock_holder import lock_held_elsewhere

A = ArtifactKey.of("spec", "1.1", "diff")
B = ArtifactKey.of("spec", "1.2", "diff")


def _config(tmp_path: Path, timeout: float, interval: float = 0.01) -> ArtifactStoreConfig:
    return ArtifactStoreConfig(
        base_path=tmp_path / "store", lock_timeout=timeout, lock_retry_interval=interval
    )


def _upload(store: ArtifactStore, key: ArtifactKey, content: bytes) -> str:
    return store.upload(key.task_id, key.spec_name, key.type, content)


def test_lock_timeout_names_the_artifact_and_the_wait(tmp_path: Path) -> None:
    config = _config(tmp_path, timeout=0.3, interval=0.02)
    with ArtifactStore(config) as store, lock_held_elsewhere(config, A.path):
        uri = A.uri(store.root_uri)
        with pytest.raises(TimeoutError) as caught:  # catchable as the built-in
            _upload(store, A, b"new")
    error = caught.value
    assert isinstance(error, LockTimeoutError)
    assert error.uri == uri
    assert error.waited is not None and error.waited >= config.lock_timeout
    assert error.lock_path is not None and Path(error.lock_path).exists()
    message = str(error)
    assert uri in message
    assert f"{error.waited:.2f}s" in message
    assert "lock_timeout=0.3s" in message
    assert "retried every 0.02s" in message
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.uri, copy.waited, copy.lock_path) == (error.uri, error.waited, error.lock_path)


def test_timed_out_upload_changes_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path, timeout=0)
    with ArtifactStore(config) as store:
        uri = _upload(store, A, b"old")
        with lock_held_elsewhere(config, A.path), pytest.raises(LockTimeoutError):
            _upload(store, A, b"new")
        assert store.download(uri) == b"old"
        assert store.get_metadata(uri).version == 1


def test_lock_of_a_killed_holder_never_blocks(tmp_path: Path) -> None:
    # lock_timeout=0: a single attempt. It succeeds only if nothing holds the lock.
    config = _config(tmp_path, timeout=0)
    with ArtifactStore(config) as store:
        with lock_held_elsewhere(config, A.path) as holder:
            os.kill(holder.pid, signal.SIGKILL)
            assert holder.wait() == -signal.SIGKILL
        assert store.locks.path_for(A.path).exists()  # the file stays; the flock died with it
        uri = _upload(store, A, b"after the crash")
        assert store.download(uri) == b"after the crash"


def test_writers_of_different_artifacts_never_wait(tmp_path: Path) -> None:
    config = _config(tmp_path, timeout=0)
    with ArtifactStore(config) as store, lock_held_elsewhere(config, A.path):
        uri = _upload(store, B, b"b")
        assert store.download(uri) == b"b"
        assert store.delete(uri) == 1
        with pytest.raises(LockTimeoutError):  # the lock of A really is held
            _upload(store, A, b"a")


def test_reads_take_no_lock(tmp_path: Path) -> None:
    config = _config(tmp_path, timeout=0)
    with ArtifactStore(config) as store:
        uri = _upload(store, A, b"readable")
        with lock_held_elsewhere(config, A.path):
            assert store.download(uri) == b"readable"
            assert b"".join(store.iter_chunks(uri)) == b"readable"
            assert store.get_metadata(uri).original_size == len(b"readable")
            assert store.exists(uri)
            assert [m.uri for m in store.search(task_id="1.1")] == [uri]
            assert store.verify_checksum(uri)
            # The index lost the row: the reader falls back to the records, still lock-free.
            store.metadata.index.remove(A)
            assert store.download(f"{uri}?version=1") == b"readable"
            assert store.get_metadata(uri).version == 1


def test_threads_of_one_process_exclude_each_other(tmp_path: Path) -> None:
    with ArtifactStore(_config(tmp_path, timeout=0)) as store:
        with store.locks.hold(A.path), pytest.raises(LockTimeoutError):
            _upload(store, A, b"second writer")
        assert _upload(store, A, b"after release")
