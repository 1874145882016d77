"""Tokens and scopes (401/403), Basic with the token as password, SIGHUP reload, bind refusal."""

from __future__ import annotations

import hashlib
import logging
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import requests

from necrocode.artifact_store import ConfigError
from necrocode.artifact_store.service.auth import TokenStore, parse_tokens
from necrocode.artifact_store.service.settings import ServiceSettings

from .conftest import ServiceFactory, subprocess_env
from .service_server import ServeProcess, serve_command

READER = "reader-token-0123456789"
WRITER = "writer-token-0123456789"
ADMIN = "admin-token-0123456789ab"


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    admin_hash = hashlib.sha256(ADMIN.encode()).hexdigest()
    path.write_text(
        "# scope token [name]\n"
        f"read {READER} dashboards\n"
        f"write {WRITER} runner-fleet   # the agent runners\n"
        f"admin sha256:{admin_hash} ops\n"
    )
    return path


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_scopes_nest(service_factory: ServiceFactory, tokens_file: Path) -> None:
    server = service_factory(tokens_file=tokens_file)
    path = f"{server.url}/v1/artifacts/s/t/diff"
    with httpx.Client(timeout=30) as client:
        assert client.get(f"{server.url}/health").status_code == 200  # open
        assert client.get(f"{server.url}/metrics").status_code == 200  # open
        missing = client.get(path)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Basic")
        assert missing.json()["error"]["code"] == "unauthorized"
        wrong = client.get(path, headers=_bearer("not-a-token-at-all-xx"))
        assert wrong.status_code == 401

        refused = client.put(path, content=b"x", headers=_bearer(READER))
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        assert client.put(path, content=b"x", headers=_bearer(WRITER)).status_code == 201
        assert client.get(path, headers=_bearer(READER)).content == b"x"
        assert client.delete(path, headers=_bearer(WRITER)).status_code == 403
        assert client.post(f"{server.url}/v1/verify", headers=_bearer(WRITER)).status_code == 403
        assert client.post(f"{server.url}/v1/verify", headers=_bearer(ADMIN)).status_code == 200
        assert client.delete(path, headers=_bearer(ADMIN)).json() == {"deleted": 1}
        assert client.get(f"{server.url}/openapi.json").status_code == 200


def test_basic_auth_with_the_token_as_password(
    service_factory: ServiceFactory, tokens_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = service_factory(tokens_file=tokens_file)
    caplog.set_level(logging.INFO, logger="necrocode.artifact_store.access")
    with requests.Session() as session:
        session.auth = ("anyone", WRITER)  # what ~/.netrc gives requests
        response = session.post(
            f"{server.url}/artifacts",
            files={"file": ("f", b"bytes")},
            data={"type": "log", "metadata": '{"spec_name": "s", "task_id": "t"}'},
            timeout=30,
        )
        assert response.status_code == 201
        session.auth = ("anyone", "wrong-password-xxxxxxxx")
        assert session.get(response.json()["uri"], timeout=30).status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name.endswith(".access")]
    assert any('"token":"runner-fleet"' in line for line in lines)
    assert not any(WRITER in line or "wrong-password" in line for line in lines)


def test_tokens_file_mistakes_are_config_errors(tmp_path: Path) -> None:
    for text, reason in (
        ("root abcdefghijklmnopqrstuvwxyz", "unknown scope"),
        ("read short", "at least 16"),
        ("read sha256:1234", "64 hex digits"),
        ("read", "expected"),
    ):
        with pytest.raises(ConfigError, match=reason) as caught:
            parse_tokens(text, "tokens")
        assert "tokens:1" in str(caught.value)
        assert "abcdefghij" not in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read"):
        TokenStore(tmp_path / "absent")


def test_reload_keeps_old_tokens_on_a_bad_file(tokens_file: Path) -> None:
    tokens = TokenStore(tokens_file)
    assert tokens.identify(READER) is not None
    tokens_file.write_text("read new-token-0123456789abc\n")
    assert tokens.reload()
    assert tokens.identify(READER) is None
    assert tokens.identify("new-token-0123456789abc") is not None
    tokens_file.write_text("bogus line here at all\n")
    assert not tokens.reload()
    assert tokens.identify("new-token-0123456789abc") is not None


def test_sighup_reloads_the_tokens_file(tmp_path: Path, tokens_file: Path) -> None:
    with ServeProcess(tmp_path / "store", ["--tokens-file", str(tokens_file)]) as server:
        with httpx.Client(timeout=30) as client:
            url = f"{server.url}/v1/usage"
            assert client.get(url, headers=_bearer(READER)).status_code == 200
            tokens_file.write_text("read fresh-token-0123456789\n")
            server.send(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while client.get(url, headers=_bearer(READER)).status_code != 401:
                assert time.monotonic() < deadline, "the tokens were not reloaded"
                time.sleep(0.1)
            assert client.get(url, headers=_bearer("fresh-token-0123456789")).status_code == 200
        server.send(signal.SIGTERM)
        assert server.wait() == 0


def test_non_loopback_host_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    env = subprocess_env() | {"NECROCODE_ARTIFACT_STORE_BASE_PATH": str(tmp_path / "s")}
    result = subprocess.run(
        serve_command("--host", "0.0.0.0", "--port", "0"),
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "refusing to listen on 0.0.0.0 without --tokens-file" in lines[0]
    assert "--allow-anonymous" in lines[0]


def test_exposure_rules() -> None:
    ServiceSettings(host="127.0.0.1").check_exposure()
    ServiceSettings(host="::1").check_exposure()
    ServiceSettings(host="localhost").check_exposure()
    ServiceSettings(host="0.0.0.0", allow_anonymous=True).check_exposure()
    ServiceSettings(host="0.0.0.0", tokens_file=Path("t")).check_exposure()
    with pytest.raises(ConfigError):
        ServiceSettings(host="10.1.2.3").check_exposure()
    with pytest.raises(ConfigError, match="public-url"):
        ServiceSettings(public_url="ftp://x")


def test_anonymous_non_loopback_serves(tmp_path: Path) -> None:
    """``--allow-anonymous`` lets it bind every interface (reached here via loopback)."""
    with ServeProcess(tmp_path / "store", ["--host", "0.0.0.0", "--allow-anonymous"]) as server:
        assert server.url.startswith("http://127.0.0.1:")
        port = server.url.rsplit(":", 1)[1]
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 200
