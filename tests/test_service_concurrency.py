"""8 clients x 50 uploads of 2 KB through HTTP, 2 readers alongside: 0 lost, 0 torn.

Clients share ten artifacts, so versions of one artifact race each other:
every returned URI must name a version whose bytes are exactly what that
client sent, and every artifact ends with one version per upload (unique,
gap-free numbers).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig

from .conftest import ServiceFactory

CLIENTS = 8
UPLOADS = 50
KEYS = 10
SIZE = 2048


def content_of(client: int, number: int) -> bytes:
    """2 KB that say who wrote them (a torn read cannot pass as another upload)."""
    stamp = f"client {client} upload {number}\n".encode()
    return (stamp * (SIZE // len(stamp) + 1))[:SIZE]


@pytest.fixture
def fast_store(tmp_path: Path) -> Iterator[ArtifactStore]:
    # No fsyncs: this is about concurrency, not durability (and a shared test machine).
    config = ArtifactStoreConfig(
        base_path=tmp_path / "store", versioning_enabled=True, durable_writes=False
    )
    with ArtifactStore(config) as store:
        yield store


def test_concurrent_uploads_and_reads(
    service_factory: ServiceFactory, fast_store: ArtifactStore
) -> None:
    server = service_factory(fast_store)
    returned: dict[str, bytes] = {}
    lock = threading.Lock()
    failures: list[str] = []
    done = threading.Event()

    def uploader(client: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for number in range(UPLOADS):
                data = content_of(client, number)
                response = http.post(
                    "/artifacts",
                    files={"file": ("f", data)},
                    data={
                        "type": "log",
                        "metadata": f'{{"spec_name": "conc", "task_id": "k{number % KEYS}",'
                        f' "client": {client}}}',
                    },
                )
                if response.status_code != 201:
                    failures.append(f"upload {client}/{number}: {response.status_code}")
                    continue
                with lock:
                    returned[response.json()["uri"]] = data

    def reader() -> None:
        rng = random.Random()
        with httpx.Client(timeout=60) as http:
            while not done.is_set():
                with lock:
                    known = list(returned.items())
                if not known:
                    done.wait(0.01)
                    continue
                uri, expected = rng.choice(known)
                got = http.get(uri)
                if got.status_code != 200 or got.content != expected:
                    failures.append(f"read {uri}: {got.status_code}, {len(got.content)} bytes")

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=uploader, args=(c,)) for c in range(CLIENTS)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()

    assert failures == []
    assert len(returned) == CLIENTS * UPLOADS  # every URI distinct: 0 lost to a race
    with httpx.Client(timeout=60) as http:
        for uri, expected in returned.items():
            assert http.get(uri).content == expected
    found = fast_store.search(spec_name="conc")
    assert sorted(m.task_id for m in found) == sorted(f"k{n}" for n in range(KEYS))
    for meta in found:
        versions = [m.version for m in fast_store.get_all_versions(meta.uri)]
        assert versions == list(range(1, CLIENTS * UPLOADS // KEYS + 1))
