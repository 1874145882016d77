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
