"""One B4 operation in a fresh process, reporting its time and peak RSS as JSON.

``python -m benchmarks.large_worker MODE ...`` where MODE is one of:

- ``upload BASE LEVEL SOURCE``: ``store.upload`` of the file SOURCE (LEVEL 0 = no compression)
- ``download BASE LEVEL URI``: stream the artifact through ``iter_chunks`` and drop it
- ``raw-upload LEVEL SOURCE TARGET``: read, hash, compress at LEVEL, write, fsync
- ``raw-download LEVEL STORED``: read, inflate, hash

Running each in its own process makes ``ru_maxrss`` the peak of that operation alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import time
import zlib
from pathlib import Path

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig

CHUNK = 1024 * 1024
GZIP_WBITS = 31


def _config(base: str, level: int) -> ArtifactStoreConfig:
    return ArtifactStoreConfig(
        base_path=Path(base),
        compression_enabled=level > 0,
        compression_level=max(level, 1),
        storage_quota={"max_size_gb": None},
    )


def store_upload(base: str, level: int, source: str) -> str:
    """Upload SOURCE; return the URI."""
    with ArtifactStore(_config(base, level)) as store:
        return store.upload("large-task", "large", "log", Path(source))


def store_download(base: str, level: int, uri: str) -> int:
    """Stream the artifact and count its bytes."""
    total = 0
    with ArtifactStore(_config(base, level)) as store:
        for chunk in store.iter_chunks(uri):
            total += len(chunk)
    return total


def raw_upload(level: int, source: str, target: str) -> int:
    """What an upload must do at least: hash, compress, write, fsync.

    Written beside the previous run's file and renamed over it, as an upload that
    replaces a version must (the old bytes stay until the new ones are durable).
    Truncating the old file first would hand the write the page-cache pages just
    freed, which on this VM are still backed by the host; fresh pages, which the
    store's write gets, first cost a fault in the host (free page reporting):
    an identical write then took 1.2-1.5 s or 2.7-4.9 s.
    """
    digest = hashlib.sha256()
    compressor = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS) if level else None
    written = 0
    fresh = target + ".new"
    with open(source, "rb") as src, open(fresh, "wb") as out:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            body = compressor.compress(chunk) if compressor else chunk
            out.write(body)
            written += len(body)
        if compressor:
            written += out.write(compressor.flush())
        out.flush()
        os.fsync(out.fileno())
    os.replace(fresh, target)
    return written


def raw_download(level: int, stored: str) -> int:
    """What a verified download must do at least: read, inflate, hash."""
    digest = hashlib.sha256()
    inflater = zlib.decompressobj(GZIP_WBITS) if level else None
    total = 0
    with open(stored, "rb") as src:
        while chunk := src.read(CHUNK):
            body = inflater.decompress(chunk) if inflater else chunk
            digest.update(body)
            total += len(body)
    return total


def main(argv: list[str]) -> None:
    """Run one operation and print ``{"seconds", "max_rss_kib", "result"}``."""
    mode, *args = argv
    started = time.perf_counter()
    result: object
    if mode == "upload":
        result = store_upload(args[0], int(args[1]), args[2])
    elif mode == "download":
        result = store_download(args[0], int(args[1]), args[2])
    elif mode == "raw-upload":
        result = raw_upload(int(args[0]), args[1], args[2])
    elif mode == "raw-download":
        result = raw_download(int(args[0]), args[1])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "max_rss_kib": peak, "result": result}))


if __name__ == "__main__":
    main(sys.argv[1:])
