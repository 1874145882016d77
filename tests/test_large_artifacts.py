"""Large artifacts stream: memory stays flat whatever the size (SPEC 2.4)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import subprocess_env

MiB = 1024 * 1024

# Runs in a fresh interpreter so that ru_maxrss measures only this transfer.
PROBE = textwrap.dedent(
    """
    import hashlib, json, os, resource, sys
    from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig

    base, size_mib, codec = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    config = ArtifactStoreConfig(
        base_path=base,
        compression_enabled=codec != "none",
        compression_codec="zstd" if codec == "zstd" else "gzip",
    )
    store = ArtifactStore(config)
    store.upload("warm-up", "big", "log", b"x" * 1024)  # import and touch everything once

    def rss_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def chunks():
        # Half random (incompressible), half text: both codec paths do real work.
        digest = hashlib.sha256()
        for i in range(size_mib):
            block = os.urandom(512 * 1024) + (b"line %08d of a long log\\n" % i) * 21845
            block = block[: 1024 * 1024]
            digest.update(block)
            yield block
        chunks.digest = digest.hexdigest()

    baseline = rss_mib()
    uri = store.upload("1", "big", "log", chunks())
    after_upload = rss_mib()
    digest = hashlib.sha256()
    total = 0
    with store.open(uri) as reader:
        for piece in reader:
            digest.update(piece)
            total += len(piece)
    after_download = rss_mib()
    print(json.dumps({
        "baseline": baseline, "after_upload": after_upload, "after_download": after_download,
        "size": total, "match": digest.hexdigest() == chunks.digest,
        "stored": store.get_metadata(uri).stored_size,
    }))
    """
)


@pytest.mark.parametrize("codec", ["gzip", "none", "zstd"])
def test_64_mib_round_trip_in_flat_memory(tmp_path: Path, codec: str) -> None:
    size_mib = 64
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "store"), str(size_mib), codec],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["match"] and report["size"] == size_mib * MiB
    growth = report["after_download"] - report["baseline"]
    assert growth < 50, report
    if codec != "none":
        assert report["stored"] < size_mib * MiB
