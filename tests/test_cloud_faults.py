"""Network faults between the SDKs and real servers (SPEC 15.1), through a loopback proxy.

Every test runs on S3 (moto) and GCS (fake-gcs-server). The backend under test
talks to the server through :class:`FaultProxy`; a second backend talks to the
server directly to check what really got stored. Backoff sleeps are recorded,
not taken; the only real waiting is the client's 1-second read timeout in the
``hang`` cases.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from necrocode.artifact_store import (
    ArtifactStoreConfig,
    RetryingBackend,
    RetryPolicy,
    StorageBackend,
    StorageError,
)
from necrocode.artifact_store.backends import create_backend
from necrocode.artifact_store.backends.base import MiB
from necrocode.artifact_store.backends.gcs import GCSBackend
from necrocode.artifact_store.backends.s3 import S3Backend

from .fault_proxy import FaultMode, FaultProxy, fault_proxy
from .test_storage_backend import payload

MODES: list[FaultMode] = ["reset", "close", "hang", "truncate"]
#: Short client timeouts so that ``hang`` costs a second, not a minute.
TIMEOUT = 1.0
#: Where a truncating proxy cuts answers: inside the status line ("HTTP/1.1 2").
CUT_IN_HEADERS = 10


@dataclass
class Cloud:
    """The proxy, a backend straight to the server, and fresh backends through the proxy.

    Faults hit new connections, so each step of a test takes a fresh client
    (with an empty connection pool) through the proxy.
    """

    kind: str
    proxy: FaultProxy
    direct: StorageBackend  # straight to the server
    make: Callable[[str], StorageBackend]
    waits: list[float] = field(default_factory=list)
    made: list[StorageBackend] = field(default_factory=list)

    def raw(self) -> StorageBackend:
        """A new backend through the proxy, without retries."""
        backend = self.make(self.proxy.url)
        self.made.append(backend)
        return backend

    def retrying(self) -> RetryingBackend:
        """A new backend through the proxy, with the retry policy (sleeps recorded)."""
        return RetryingBackend(self.raw(), RetryPolicy(3, 0.05, 1.0, sleep=self.waits.append))


@pytest.fixture(params=["s3", "gcs"])
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    make: Callable[[str], StorageBackend]
    if request.param == "s3":
        server_url = request.getfixturevalue("moto_server").url
        bucket = request.getfixturevalue("s3_bucket")

        def make(url: str) -> StorageBackend:
            return S3Backend(
                bucket, "p", endpoint_url=url, connect_timeout=TIMEOUT, read_timeout=TIMEOUT
            )
    else:
        server_url = request.getfixturevalue("gcs_server").url
        bucket = request.getfixturevalue("gcs_bucket")

        def make(url: str) -> StorageBackend:
            return GCSBackend(
                bucket, "p", endpoint_url=url, connect_timeout=TIMEOUT, read_timeout=TIMEOUT
            )

    with fault_proxy(server_url) as proxy:
        cloud = Cloud(request.param, proxy, make(server_url), make)
        yield cloud
        for backend in [cloud.direct, *cloud.made]:
            backend.close()


def arm(cloud: Cloud, mode: FaultMode, count: int) -> None:
    cloud.proxy.arm(mode, count, cut_after=CUT_IN_HEADERS)


@pytest.mark.parametrize("mode", MODES)
def test_transient_faults_are_retried_then_succeed(cloud: Cloud, mode: FaultMode) -> None:
    data = payload(20_000)
    arm(cloud, mode, 2)
    assert cloud.retrying().upload("f/t/up", data) == len(data)
    assert cloud.proxy.faulted == 2
    assert len(cloud.waits) == 2
    assert cloud.direct.download("f/t/up") == data

    arm(cloud, mode, 2)
    assert cloud.retrying().download("f/t/up") == data
    arm(cloud, mode, 2)
    assert [info.key for info in cloud.retrying().list("f/")] == ["f/t/up"]
    arm(cloud, mode, 2)
    existed = cloud.retrying().delete("f/t/up")
    # A cut answer may hide that the first try deleted it: the retry then finds nothing.
    assert existed is True or mode == "truncate"
    assert not cloud.direct.exists("f/t/up")
    assert len(cloud.waits) == 8


@pytest.mark.parametrize("mode", MODES)
def test_faults_beyond_the_limit_fail_with_the_cause(cloud: Cloud, mode: FaultMode) -> None:
    cloud.direct.upload("f/t/there", b"x")
    arm(cloud, mode, 100)
    with pytest.raises(StorageError) as caught:
        cloud.retrying().download("f/t/there")
    assert cloud.proxy.faulted == 3  # three attempts, each on a fresh connection
    assert caught.value.retryable is False
    last = caught.value.__cause__
    assert isinstance(last, StorageError) and last.retryable
    assert last.__cause__ is not None  # the SDK's own exception


@pytest.mark.parametrize("cut_after", [CUT_IN_HEADERS, len("HTTP/1.1 200"), 40, 300, 100_000])
def test_a_truncated_answer_is_never_accepted(cloud: Cloud, cut_after: int) -> None:
    data = payload(3 * MiB // 2)
    cloud.direct.upload("f/t/long", data)
    # Two connections: GCS looks the object up, then may read it on another one.
    cloud.proxy.arm("truncate", 2, cut_after=cut_after)
    with pytest.raises(StorageError) as caught:
        cloud.raw().download("f/t/long")
    assert caught.value.retryable
    cloud.proxy.arm("truncate", 2, cut_after=cut_after)
    assert cloud.retrying().download("f/t/long") == data


@pytest.mark.parametrize("cut_after", [len("HTTP/1.1 200"), 40])
def test_headers_cut_after_the_status_never_pass_as_empty(cloud: Cloud, cut_after: int) -> None:
    """A bare ``200`` with the headers and body lost is refused for lookups and listings."""
    cloud.direct.upload("f/t/obj", b"content")
    for call in (
        lambda: cloud.raw().exists("f/t/obj"),
        lambda: cloud.raw().get_size("f/t/obj"),
        lambda: list(cloud.raw().list("f/")),
    ):
        cloud.proxy.arm("truncate", 1, cut_after=cut_after)
        with pytest.raises(StorageError) as caught:
            call()
        assert caught.value.retryable


def test_create_if_absent_whose_answer_was_lost_is_not_a_conflict(cloud: Cloud) -> None:
    backend = cloud.retrying()
    backend.upload("f/t/first", b"probe runs here", if_absent=True)
    cloud.proxy.arm("truncate", 1, cut_after=CUT_IN_HEADERS)  # the write lands, the answer not
    assert backend.upload("f/t/record", b"my record", if_absent=True) == len(b"my record")
    assert cloud.direct.download("f/t/record") == b"my record"


@pytest.mark.parametrize("size", [1000, 20 * MiB])
def test_a_failed_upload_leaves_nothing_visible(cloud: Cloud, size: int) -> None:
    arm(cloud, "reset", 100)
    with pytest.raises(StorageError):
        cloud.retrying().upload("f/t/lost", payload(size))
    cloud.proxy.disarm()
    assert not cloud.direct.exists("f/t/lost")
    assert list(cloud.direct.list("f/")) == []


# S3 only: GCS resumable sessions go to the server's own URL, around the proxy.
@pytest.mark.parametrize("cloud", ["s3"], indirect=True)
def test_s3_multipart_cut_midway_leaves_no_object(cloud: Cloud) -> None:
    """The network fails after the first part went up: no object; the leftover is removable."""
    chunk = payload(MiB)

    def source() -> Iterator[bytes]:
        for n in range(24):
            if n == 12:  # part 1 (8 MiB) has been sent by now
                arm(cloud, "reset", 1000)
            yield chunk

    with pytest.raises(StorageError):
        cloud.raw().upload("f/t/multi", source())
    cloud.proxy.disarm()
    assert not cloud.direct.exists("f/t/multi")
    leftovers = list(cloud.direct.list_incomplete("f/"))
    for info in leftovers:  # the abort could not get through either
        assert cloud.direct.remove_incomplete(info.key)
    assert list(cloud.direct.list_incomplete("f/")) == []


@pytest.mark.parametrize("cloud", ["s3", "gcs"], indirect=True)
def test_a_hanging_server_costs_the_configured_timeouts_not_minutes(cloud: Cloud) -> None:
    """A connection that is accepted and then never answered (the 180 s hang of issue 12):
    the timeouts are settings, each try waits ``read_timeout`` seconds, and the retry
    policy either gets through on the next try or fails within seconds.
    """
    bucket = cloud.direct.bucket_name  # type: ignore[attr-defined]
    config = ArtifactStoreConfig.from_dict(
        {
            "backend_type": cloud.kind,
            "backend": {
                "bucket": bucket,
                "prefix": "p",
                "endpoint_url": cloud.proxy.url,
                "connect_timeout": TIMEOUT,
                "read_timeout": TIMEOUT,
            },
            "retry_attempts": 3,
            "retry_backoff_base": 0.01,
            "retry_backoff_max": 0.05,
        }
    )
    backend = create_backend(config)
    cloud.made.append(backend)
    cloud.direct.upload("f/t/hang", b"bytes")

    arm(cloud, "hang", 1)
    started = time.monotonic()
    assert backend.download("f/t/hang") == b"bytes"  # the second try gets through
    assert cloud.proxy.faulted == 1
    assert time.monotonic() - started < 3 * TIMEOUT + 5

    arm(cloud, "hang", 1)
    started = time.monotonic()
    assert backend.upload("f/t/hang-up", b"up") == 2  # a write is retried the same way
    assert time.monotonic() - started < 3 * TIMEOUT + 5
    assert cloud.direct.download("f/t/hang-up") == b"up"

    arm(cloud, "hang", 1000)
    started = time.monotonic()
    with pytest.raises(StorageError, match="failed after 3 attempts"):
        backend.download("f/t/hang")
    assert cloud.proxy.faulted >= 1
    assert time.monotonic() - started < 3 * (2 * TIMEOUT) + 5
