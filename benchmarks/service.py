"""B7 the HTTP service: small uploads and a large download through ``necrocode-artifacts serve``.

The server runs as its own process (``python -m necrocode.artifact_store serve
--port 0``) over a fresh store with the default configuration (durable writes).

- **2 KB uploads/s**: 16 client threads, each with its own keep-alive
  connection, upload through the Agent Runner's ``POST /artifacts`` multipart
  form. The clients are lean (``http.client``, the form encoded by hand): on a
  2-core machine an httpx or requests client costs as much CPU as the server,
  and the figure is meant to be the server's. Baseline: 16 threads calling
  ``ArtifactStore.upload`` in this process on a store of the same
  configuration. Target >= 0.5x.
- **Large GET MB/s**: one artifact of ``scale.large_bytes`` (log-like text,
  gzip) is fetched with a streamed ``GET``; baseline: ``iter_chunks`` of the same
  artifact in this process. Target >= 0.8x.
- **Server RSS**: the server's peak resident set (``VmHWM``) after each part,
  against the 150 MiB the service promises.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig

from .harness import MiB, Report, Result, Scale, median, rate_result, time_in_rotation
from .large import make_source

CLIENTS = 16
UPLOAD_BYTES = 2048
UPLOAD_TARGET = 0.5
DOWNLOAD_TARGET = 0.8
RSS_LIMIT_MIB = 150
_SERVING = re.compile(r"serving (?P<url>http://\S+)")


@contextlib.contextmanager
def serving(base: Path) -> Iterator[tuple[str, int]]:
    """Run ``serve`` over the store at ``base``; yield its URL and process id."""
    root = Path(__file__).resolve().parents[1]
    env = {"NECROCODE_ARTIFACT_STORE_BASE_PATH": str(base), "PATH": "/usr/bin:/bin"}
    env["PYTHONPATH"] = str(root / "src")
    process = subprocess.Popen(
        [sys.executable, "-m", "necrocode.artifact_store", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    url = ""
    for line in process.stderr:
        match = _SERVING.search(line)
        if match:
            url = match["url"]
            break
    if not url:
        process.kill()
        raise RuntimeError("serve did not start")
    # Keep reading its log (the access log is one line per request) so it never blocks.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/health", timeout=5)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


def peak_rss_mib(pid: int) -> float:
    """The peak resident set size of ``pid`` so far, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def _payload(client: int, number: int, rep: int) -> bytes:
    stamp = f"rep {rep} client {client} upload {number} ".encode()
    return (stamp * (UPLOAD_BYTES // len(stamp) + 1))[:UPLOAD_BYTES]


def _in_threads(work: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=work, args=(client,)) for client in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


_BOUNDARY = "necrocode-b7-form-boundary"
_FORM_TYPE = f"multipart/form-data; boundary={_BOUNDARY}"


def runner_form(metadata: str, data: bytes) -> bytes:
    """The Agent Runner's upload form (fields first, then the file), encoded by hand."""
    head = (
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="type"\r\n\r\nlog\r\n'
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{metadata}\r\n'
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return head.encode() + data + f"\r\n--{_BOUNDARY}--\r\n".encode()


def _http_uploads(
    connections: list[http.client.HTTPConnection], per_client: int, rep: int
) -> Callable[[], None]:
    def run() -> None:
        def work(number: int) -> None:
            connection = connections[number]
            for j in range(per_client):
                metadata = f'{{"spec_name": "b7", "task_id": "h{rep}-{number}-{j}"}}'
                body = runner_form(metadata, _payload(number, j, rep))
                connection.request("POST", "/artifacts", body, {"Content-Type": _FORM_TYPE})
                response = connection.getresponse()
                response.read()
                if response.status != 201:
                    raise RuntimeError(f"upload answered {response.status}")

        _in_threads(work)

    return run


def _local_uploads(store: ArtifactStore, per_client: int, rep: int) -> Callable[[], None]:
    def run() -> None:
        def work(number: int) -> None:
            for j in range(per_client):
                store.upload(f"l{rep}-{number}-{j}", "b7", "log", _payload(number, j, rep))

        _in_threads(work)

    return run


def _rss_row(report: Report, figure: str, mib: float) -> None:
    report.add(
        Result(
            "B7",
            figure,
            mib,
            "MiB",
            target=f"<= {RSS_LIMIT_MIB} MiB",
            met=mib <= RSS_LIMIT_MIB,
        )
    )


def b7_service(report: Report, work: Path, scale: Scale) -> None:
    """Measure the service against the library in the same run."""
    work.mkdir(parents=True, exist_ok=True)
    served_base = work / "served"
    per_client = max(1, scale.uploads_per_rep * 2 // CLIENTS)
    count = per_client * CLIENTS
    with (
        serving(served_base) as (url, pid),
        ArtifactStore(ArtifactStoreConfig(base_path=work / "local")) as local,
    ):
        http_seconds: list[float] = []
        local_seconds: list[float] = []
        host, port = url.removeprefix("http://").rsplit(":", 1)
        connections = [
            http.client.HTTPConnection(host, int(port), timeout=60) for _ in range(CLIENTS)
        ]
        try:
            for connection in connections:  # every keep-alive connection is open before timing
                connection.request("GET", "/health")
                connection.getresponse().read()
            for rep in range(scale.repetitions):
                time_in_rotation(
                    rep,
                    [
                        (_http_uploads(connections, per_client, rep), http_seconds),
                        (_local_uploads(local, per_client, rep), local_seconds),
                    ],
                )
        finally:
            for connection in connections:
                connection.close()
        report.add(
            rate_result(
                "B7",
                f"2 KB uploads over HTTP, {CLIENTS} keep-alive clients",
                http_seconds,
                local_seconds,
                count,
                unit="uploads/s",
                baseline_label=f"ArtifactStore.upload, {CLIENTS} threads",
                target_ratio=UPLOAD_TARGET,
            )
        )
        _rss_row(report, "server peak RSS after the uploads", peak_rss_mib(pid))

        source = work / "large.log"
        make_source(source, scale.large_bytes)
        with httpx.Client(base_url=url, timeout=httpx.Timeout(600.0)) as client:
            with open(source, "rb") as handle:
                client.put(
                    "/v1/artifacts/b7/large/log", content=iter(lambda: handle.read(MiB), b"")
                )
            with open(source, "rb") as handle:
                expected = hashlib.file_digest(handle, "sha256").hexdigest()
            source.unlink()

            def http_get() -> None:
                digest = hashlib.sha256()
                with client.stream("GET", "/v1/artifacts/b7/large/log") as response:
                    response.raise_for_status()
                    for chunk in response.iter_raw(MiB):
                        digest.update(chunk)
                if digest.hexdigest() != expected:
                    raise RuntimeError("the large artifact came back different")

            with ArtifactStore(ArtifactStoreConfig(base_path=served_base)) as same:
                uri = same.search(spec_name="b7", task_id="large")[0].uri

                def local_get() -> None:
                    digest = hashlib.sha256()
                    for chunk in same.iter_chunks(uri):
                        digest.update(chunk)
                    if digest.hexdigest() != expected:
                        raise RuntimeError("iter_chunks returned different bytes")

                get_seconds: list[float] = []
                iter_seconds: list[float] = []
                for rep in range(max(2, scale.large_repetitions)):
                    time_in_rotation(rep, [(http_get, get_seconds), (local_get, iter_seconds)])
        size_mb = scale.large_bytes / 1e6
        value, base = size_mb / median(get_seconds), size_mb / median(iter_seconds)
        report.add(
            Result(
                "B7",
                f"GET of a {scale.large_bytes / MiB:.0f} MiB artifact, streamed",
                value,
                "MB/s",
                base,
                "iter_chunks in-process",
                value / base,
                f">= {DOWNLOAD_TARGET} x baseline",
                value / base >= DOWNLOAD_TARGET,
                len(get_seconds),
            )
        )
        _rss_row(report, "server peak RSS after the large GETs", peak_rss_mib(pid))
    report.notes.append(
        f"B7: {count} uploads per run ({CLIENTS} clients x {per_client}); median of "
        f"{len(http_seconds)} runs; the client threads share the machine with the server."
    )
