"""Every example in examples/ runs end to end, as written, in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import subprocess_env

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: Generous: an example takes about a second, but CI machines can be busy.
EXAMPLE_TIMEOUT = 120


def run_example(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``examples/<name>`` with this checkout's sources; return its stdout."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env=env if env is not None else subprocess_env(),
        timeout=EXAMPLE_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_basic_usage_example() -> None:
    out = run_example("basic_artifact_store_usage.py")
    assert "streamed the log: 1000 lines" in out
    assert "artifacts of chat-app from the last hour: ['diff', 'log', 'test']" in out
    assert "verify_all: 3 checked, healthy=True" in out
    assert "chat-app/1.1/test-result.json', 'manifest.json']" in out
    assert "deleted 3 artifacts of 1.1" in out
    assert out.rstrip().endswith("done")


def test_basic_usage_example_on_a_folder_of_your_own(tmp_path: Path) -> None:
    base = tmp_path / "mine"
    out = run_example("basic_artifact_store_usage.py", "--base-path", str(base))
    assert base.as_uri() in out
    assert (tmp_path / "chat-app.zip").is_file()


def test_service_example() -> None:
    out = run_example("service_and_remote_client.py")
    assert re.search(
        r"runner got 201 http://127\.0\.0\.1:\d+/artifacts/chat-app/1\.1/diff\?version=1", out
    )
    assert "retried upload: 200 same uri: True" in out
    assert "link returns --- a/app.py" in out
    assert "metadata: chat-app 1.1 diff {'title': 'Fix login'}" in out
    assert "reader may not upload: token 'reviewers' has scope read; this needs write" in out
    assert "server exit code 0" in out


def test_retention_policy_example() -> None:
    out = run_example("retention_policy_setup.py")
    assert "policy (days): {'diff': 90, 'log': 3, 'test': 14}" in out
    assert "pruned 2 old versions of the 2.1 diff" in out
    assert "cleanup deleted 1: ['chat-app/1.1/log.txt?version=1']" in out
    assert "kept: ['1.1/diff', '1.1/test', '1.2/log', '1.3/log', '2.1/diff']" in out
    assert "cleanup.log records 2 runs; dry runs: [True, False]" in out


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port), stopped after the test."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_s3_setup_example_against_a_local_s3_server(s3_endpoint: str) -> None:
    env = subprocess_env()
    # Dummy credentials for the local server; never real ones.
    env.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    env["NECROCODE_ARTIFACT_STORE_BACKEND__ENDPOINT_URL"] = s3_endpoint
    out = run_example(
        "s3_backend_setup.py", "--bucket", "team-artifacts", "--create-bucket", env=env
    )
    assert "store root: s3://team-artifacts/necrocode" in out
    assert "downloaded and verified 56 bytes" in out
    assert "removed 1 test artifact" in out
    assert f"endpoint_url: {s3_endpoint}" in out
    assert out.rstrip().endswith("ok")
    # Run again on the now existing bucket: creating it is skipped.
    again = run_example("s3_backend_setup.py", "--bucket", "team-artifacts", "--create-bucket",
                        env=env)  # fmt: skip
    assert "created bucket" not in again
    assert os.environ.get("AWS_ACCESS_KEY_ID") is None  # the test process stays clean
