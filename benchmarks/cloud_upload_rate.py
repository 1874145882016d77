"""Small-upload rate and large-artifact throughput on S3 (moto) and GCS (fake-gcs-server).

    python benchmarks/cloud_upload_rate.py                 # 300 x 2 KB, one 256 MiB artifact
    python benchmarks/cloud_upload_rate.py --count 100 --large-mib 0

Starts both servers on 127.0.0.1 exactly as the test suite does and, for each
backend, measures: raw backend uploads of 2 KB objects per second; whole-store
uploads of 2 KB artifacts per second (object + metadata record + index,
versioning off); and, unless ``--large-mib 0``, the upload and verified
download throughput of one large artifact (incompressible bytes). Numbers
against local emulators measure the client and the emulator, not the cloud.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.cloud_servers import GCS_PROJECT, S3_ENV, FakeGCS, MotoS3  # noqa: E402

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig  # noqa: E402
from necrocode.artifact_store.backends.base import MiB  # noqa: E402

SMALL = 2 * 1024


def rate(count: int, action: Callable[[int], object]) -> float:
    """Operations per second of ``action(i)`` for ``i`` in ``range(count)``."""
    start = time.perf_counter()
    for i in range(count):
        action(i)
    return count / (time.perf_counter() - start)


def chunks(total: int) -> Iterator[bytes]:
    """``total`` incompressible bytes in 1 MiB pieces, generated as they are consumed."""
    block = os.urandom(MiB)
    for _ in range(total // MiB):
        yield block


def measure(name: str, settings: dict[str, object], count: int, large_mib: int) -> None:
    payload = os.urandom(SMALL)
    with tempfile.TemporaryDirectory(prefix="necrocode-bench-") as state:
        config = ArtifactStoreConfig(
            **settings,
            state_dir=Path(state),
            compression_enabled=False,
            storage_quota={"max_size_gb": None},
        )
        with ArtifactStore(config) as store:
            raw = rate(count, lambda i: store.backend.upload(f"raw/{i}/blob", payload))
            facade = rate(count, lambda i: store.upload(f"t{i}", "bench", "log", payload))
            print(f"{name}: 2 KB uploads/s: backend {raw:.0f}, store {facade:.0f} (n={count})")
            if large_mib:
                start = time.perf_counter()
                uri = store.upload("large", "bench", "diff", chunks(large_mib * MiB))
                up = large_mib / (time.perf_counter() - start)
                start = time.perf_counter()
                got = sum(len(chunk) for chunk in store.iter_chunks(uri))
                down = large_mib / (time.perf_counter() - start)
                assert got == large_mib * MiB
                print(
                    f"{name}: {large_mib} MiB artifact: "
                    f"upload {up:.1f} MiB/s, download {down:.1f} MiB/s"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--large-mib", type=int, default=256)
    args = parser.parse_args()
    os.environ.update(S3_ENV)  # dummy credentials for moto
    with contextlib.ExitStack() as stack:
        s3 = stack.enter_context(MotoS3.running())
        gcs = stack.enter_context(FakeGCS.running())
        s3_settings = {
            "backend_type": "s3",
            "backend": {"bucket": s3.new_bucket(), "region": "us-east-1", "endpoint_url": s3.url},
        }
        gcs_settings = {
            "backend_type": "gcs",
            "backend": {
                "bucket": gcs.new_bucket(),
                "project": GCS_PROJECT,
                "endpoint_url": gcs.url,
            },
        }
        measure("s3 (moto)", s3_settings, args.count, args.large_mib)
        measure("gcs (fake-gcs-server)", gcs_settings, args.count, args.large_mib)


if __name__ == "__main__":
    main()
