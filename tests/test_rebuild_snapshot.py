"""A rebuild from S3 reads each record once: the next rebuild takes the records whose
ETag has not changed from the snapshot the previous one left in the bucket."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from necrocode.artifact_store import ArtifactStore
from necrocode.artifact_store.index.snapshot import SNAPSHOT_KEY

from .cloud_servers import MotoS3


@pytest.fixture
def store(s3_bucket: str, moto_server: MotoS3, tmp_path: Path) -> Iterator[ArtifactStore]:
    config = {
        "backend_type": "s3",
        "backend": {"bucket": s3_bucket, "endpoint_url": moto_server.url},
        "state_dir": str(tmp_path / "state"),
        "compression_enabled": False,
    }
    with ArtifactStore(config) as opened:
        yield opened


def record_reads(store: ArtifactStore) -> list[str]:
    """Record the keys of every record GET the store makes from now on."""
    reads: list[str] = []
    backend: Any = store.metadata.backend
    real = backend.download

    def counting(key: str) -> bytes:
        if key.endswith(".meta.json"):
            reads.append(key)
        data: bytes = real(key)
        return data

    backend.download = counting
    return reads


def test_the_next_rebuild_reads_only_changed_records(store: ArtifactStore) -> None:
    uris = [store.upload(f"t{n}", "snap", "log", f"log {n}\n".encode()) for n in range(12)]
    assert store.rebuild_index() == 12  # the first rebuild reads every record...
    reads = record_reads(store)
    assert store.rebuild_index() == 12  # ...the next one none
    assert reads == []
    store.add_tags(uris[3], ["changed"])  # a rewritten record has a new ETag
    store.upload("t99", "snap", "log", b"new\n")
    reads.clear()
    assert store.rebuild_index() == 13
    assert sorted(reads) == [
        "snap/t3/log.txt.v000001.meta.json",
        "snap/t99/log.txt.v000001.meta.json",
    ]
    assert [m.uri for m in store.search(tags=["changed"])] == [uris[3]]
    # The snapshot is hidden from listings: verify sees artifacts only.
    report = store.verify_all()
    assert report.orphaned == [] and len(report.ok) == 13


def test_a_damaged_snapshot_is_ignored(store: ArtifactStore) -> None:
    for n in range(5):
        store.upload(f"t{n}", "snap", "diff", b"+x\n")
    store.rebuild_index()
    store.metadata.backend.upload(SNAPSHOT_KEY, b"not gzip")
    reads = record_reads(store)
    assert store.rebuild_index() == 5
    assert len(reads) == 5
    # An entry that does not describe its record is not trusted either.
    entries = gzip.decompress(store.metadata.backend.download(SNAPSHOT_KEY)).splitlines()
    entry = json.loads(entries[1])
    assert entry["k"] == "snap/t1/diff.txt.v000001.meta.json"
    entry["r"] = json.loads(entries[0])["r"]  # the record of t0, under t1's key and ETag
    forged = json.dumps(entry).encode()
    store.metadata.backend.upload(SNAPSHOT_KEY, gzip.compress(b"\n".join([entries[0], forged])))
    reads.clear()
    assert store.rebuild_index() == 5
    assert sorted(reads) == [f"snap/t{n}/diff.txt.v000001.meta.json" for n in range(1, 5)]
    assert {m.task_id for m in store.search(spec_name="snap")} == {f"t{n}" for n in range(5)}
