"""Records written by release 0.1.0 still load, read and re-serialise unchanged.

``tests/fixtures/store-0.1.0`` is a filesystem store written by that release's
code (gzip, zstd and uncompressed objects; versions, tags, custom metadata,
per-artifact retention, a pinned version). Whatever the record schema becomes,
these must keep working.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from necrocode.artifact_store import ArtifactMetadata, ArtifactStore, ArtifactStoreConfig

FIXTURE = Path(__file__).parent / "fixtures" / "store-0.1.0"
RECORDS = sorted(FIXTURE.rglob("*.meta.json"))

CONTENT = {
    "chat-app/1.1/diff.txt": b"--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n",
    "chat-app/1.1/log.txt": b"plain log line\n" * 3,
    "chat-app/1.1/test-result.json": b'{"passed": 4}',
    "other-spec/2.0/log.txt": b"uncompressed\n",
    "other-spec/2.0/diff.txt": b"zstd diff\n" * 50,
}


def test_the_fixture_is_there() -> None:
    assert len(RECORDS) == 6


@pytest.mark.parametrize("record", RECORDS, ids=lambda path: path.name)
def test_each_record_loads_and_writes_back_the_same_bytes(record: Path) -> None:
    text = record.read_bytes()
    meta = ArtifactMetadata.from_json(text)
    assert ArtifactMetadata.from_trusted_json(text) == meta
    assert meta.to_json().encode() == text
    assert ArtifactMetadata.from_dict(meta.to_dict()) == meta


def test_a_store_of_that_release_reads_whole(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(FIXTURE, root)
    with ArtifactStore(ArtifactStoreConfig(base_path=root)) as store:
        assert store.rebuild_index() == 6
        found = {m.uri.removeprefix(store.root_uri + "/"): m for m in store.search()}
        assert {path: store.download(m.uri) for path, m in found.items()} == CONTENT
        assert {m.codec for m in found.values()} == {"gzip", "zstd", "none"}
        assert found["chat-app/1.1/log.txt"].tags == ("env:ci", "run-7")
        versions = store.get_all_versions(found["chat-app/1.1/test-result.json"].uri)
        first, second = versions
        assert (first.version, first.pinned, first.retention_days) == (1, True, 90)
        assert first.metadata == {"runner": "pytest", "n\u00e9": [1, {"x": None}]}
        assert (second.version, second.pinned, second.tags) == (2, False, ("second",))
        assert store.download(first.version_uri) == b'{"passed": 3, "failed": 0}'
        assert store.verify_all().healthy
