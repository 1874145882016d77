"""Regression tests of the reliability fault list (issue 12): each failed before its fix.

Every test goes through the public API or the command line and checks the
common expectation: nothing lost, a typed error from the store's hierarchy,
and a store that keeps working afterwards.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.naming import ArtifactKey


def _record_path(store: ArtifactStore, uri: str, version: int = 1) -> Path:
    key, _ = ArtifactKey.from_uri(uri, store.root_uri)
    return Path(store.config.base_path) / key.record_key(version)


def test_repair_keeps_the_object_of_an_unreadable_record(tmp_path: Path) -> None:
    """#1: a truncated record does not make its object an orphan for repair to delete."""
    config = ArtifactStoreConfig(base_path=tmp_path / "store")
    with ArtifactStore(config) as store:
        uri = store.upload("1.1", "spec", "diff", b"precious bytes")
        meta = store.get_metadata(uri)
        record = _record_path(store, uri)
        text = record.read_bytes()
        record.write_bytes(text[: len(text) // 2])
        report = store.repair(older_than=timedelta(0))
        assert report.removed_orphans == []
        assert report.unreadable_records == [str(record.relative_to(config.base_path))]
        assert (Path(config.base_path) / meta.object_key).read_bytes()
        # Restoring the record brings the artifact back intact.
        record.write_bytes(text)
        store.rebuild_index()
        assert store.download(uri) == b"precious bytes"
