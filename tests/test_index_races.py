"""A reader that repairs the index must not undo a writer's concurrent commit.

``MetadataManager.refresh`` (used by lock-free readers when the index misses or
points at an object that was just replaced) lists the records and corrects the
index from that listing. If a writer commits between the listing and the
correction, a stale listing must not un-index the writer's new version (search
would lose the artifact, and the next upload would reuse an old version
number and be shadowed by an older record) nor re-index a deleted one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig, FilesystemBackend
from necrocode.artifact_store.backends.base import ObjectInfo
from necrocode.artifact_store.naming import ArtifactKey

#: How long the reader's hook lets the writer run: long enough for an unhindered
#: upload to finish, and the writer must not need it when the index holds it off.
WRITER_GRACE_S = 1.0


class ListingHook(FilesystemBackend):
    """Runs ``hook`` once, right after taking a listing of ``prefix``."""

    def __init__(self, root: Path, prefix: str) -> None:
        super().__init__(root)
        self.prefix = prefix
        self.hook: Callable[[], None] | None = None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        listing = list(super().list(prefix))
        if prefix == self.prefix and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return iter(listing)


def test_refresh_racing_an_upload_keeps_the_new_version(tmp_path: Path) -> None:
    config = ArtifactStoreConfig(base_path=tmp_path / "store")
    key = ArtifactKey.of("spec", "1.1", "log")
    writer = ArtifactStore(config)
    reader_backend = ListingHook(config.base_path, key.prefix)
    reader = ArtifactStore(config, backend=reader_backend)
    uri = writer.upload("1.1", "spec", "log", b"first")

    finished = threading.Event()

    def upload_second() -> None:
        writer.upload("1.1", "spec", "log", b"second")
        finished.set()

    thread = threading.Thread(target=upload_second)

    def writer_commits_meanwhile() -> None:
        thread.start()
        # Without the fix the upload completes here; with it, it waits for the
        # reader's index transaction and completes once the reader is done.
        finished.wait(WRITER_GRACE_S)

    reader_backend.hook = writer_commits_meanwhile
    try:
        reader.metadata.refresh(key)
        thread.join()
        assert [m.uri for m in reader.search(spec_name="spec")] == [uri]
        assert reader.download(uri) == b"second"

        writer.upload("1.1", "spec", "log", b"third")
        assert sorted(writer.metadata.stored(key).records) == [3]
        writer.rebuild_index()
        assert writer.download(uri) == b"third"
    finally:
        thread.join()
        reader.close()
        writer.close()


def test_a_new_index_opens_while_another_process_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Switching a new index file to WAL needs an exclusive lock, which SQLite refuses
    at once (no busy wait) while another connection writes: the opener waits instead."""
    import sqlite3
    import time

    from necrocode.artifact_store.index import sqlite as sqlite_index

    retried = threading.Event()

    class Clock:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds: float) -> None:
            retried.set()
            time.sleep(seconds)

    monkeypatch.setattr(sqlite_index, "time", Clock())
    path = tmp_path / "index.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE creating (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO creating VALUES (1)")
    outcome: list[object] = []

    def open_index() -> None:
        try:
            index = sqlite_index.SQLiteIndex(path)
            outcome.append(index.is_built())
            index.close()
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=open_index)
    thread.start()
    try:
        while thread.is_alive() and not retried.wait(0.01):
            pass  # until the opener waits for the lock (or gave up)
        assert retried.is_set() and outcome == [], outcome
    finally:
        other.execute("COMMIT")
        thread.join()
        other.close()
    assert outcome == [False], outcome  # opened: an empty index, not yet built
