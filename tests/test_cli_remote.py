"""The command line against a server: ``--server URL`` / ``--token`` (and their variables)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from necrocode.artifact_store.cli import app

from .conftest import ServiceFactory, subprocess_env
from .service_server import ThreadServer


def run(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env, input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_commands_work_against_a_server(service: ThreadServer, tmp_path: Path) -> None:
    server = ["--server", service.url]
    source = tmp_path / "change.diff"
    source.write_bytes(b"--- a\n+++ b\n")
    code, out, err = run(
        *server, "upload", str(source), "-s", "chat", "-t", "1.1", "--type", "diff", "--tag", "r"
    )
    assert code == 0, err
    uri = out.strip()
    assert uri == f"{service.url}/artifacts/chat/1.1/diff"
    assert service.store.download(service.store.search()[0].uri) == source.read_bytes()

    code, out, err = run(*server, "--json", "info", "chat/1.1/diff")
    assert code == 0, err
    assert json.loads(out)["spec_name"] == "chat"
    target = tmp_path / "back.diff"
    assert run(*server, "download", uri, "-o", str(target))[0] == 0
    assert target.read_bytes() == source.read_bytes()
    code, out, _ = run(*server, "--json", "ls", "--spec", "chat")
    assert [item["task_id"] for item in json.loads(out)] == ["1.1"]
    assert run(*server, "tag", "add", "chat/1.1/diff", "approved")[0] == 0
    assert service.store.search()[0].tags == ("approved", "r")
    code, out, _ = run(*server, "--json", "usage")
    assert code == 0
    assert json.loads(out)["total"]["artifact_count"] == 1
    zip_path = tmp_path / "chat.zip"
    assert run(*server, "export", "--spec", "chat", "-o", str(zip_path))[0] == 0
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.read("chat/1.1/diff.txt") == source.read_bytes()
    assert run(*server, "verify")[0] == 0
    code, out, err = run(*server, "--json", "repair", "--older-than", "0s", "--yes")
    assert code == 0, err
    assert json.loads(out)["indexed"] == 1
    code, _, err = run(*server, "rm", "chat/1.1/diff", "--yes")
    assert code == 0, err
    assert service.store.search() == []
    code, _, err = run(*server, "info", "chat/1.1/diff")
    assert code == 1
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_server_and_token_from_the_environment(
    service_factory: ServiceFactory, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("write writer-token-0123456789\n")
    server = service_factory(tokens_file=tokens)
    env = {"NECROCODE_ARTIFACT_STORE_SERVER": server.url}
    code, _, err = run("upload", "-", "-s", "s", "-t", "t", "--type", "log", env=env, stdin=b"x")
    assert code == 1
    assert "token" in err
    env["NECROCODE_ARTIFACT_STORE_TOKEN"] = "writer-token-0123456789"
    code, out, err = run("upload", "-", "-s", "s", "-t", "t", "--type", "log", env=env, stdin=b"x")
    assert code == 0, err
    assert out.strip() == f"{server.url}/artifacts/s/t/log"
    assert "writer-token" not in err


def test_library_imports_and_serve_hints_without_the_service_extra(tmp_path: Path) -> None:
    """With FastAPI/uvicorn/httpx missing, the library works and ``serve`` says what to install."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "for name in ('fastapi', 'uvicorn', 'httpx', 'starlette', 'prometheus_client'):\n"
        "    sys.modules[name] = None\n"
    )
    env = subprocess_env()
    env["PYTHONPATH"] = f"{blocker}:{env['PYTHONPATH']}"
    env["NECROCODE_ARTIFACT_STORE_BASE_PATH"] = str(tmp_path / "store")
    library = subprocess.run(
        [
            sys.executable,
            "-c",
            "import necrocode.artifact_store as a, necrocode.artifact_store.cli;"
            "s = a.ArtifactStore(); print(s.download(s.upload('1', 's', 'log', b'ok')))",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert library.returncode == 0, library.stderr
    assert library.stdout.strip() == "b'ok'"
    serve = subprocess.run(
        [sys.executable, "-m", "necrocode.artifact_store", "serve"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert serve.returncode == 2
    assert serve.stderr.strip().splitlines() == [serve.stderr.strip()]  # one line
    assert "pip install 'necrocode-artifact-store[service]'" in serve.stderr


@pytest.mark.parametrize("bad", ["ftp://x", "not a url"])
def test_bad_public_url_is_a_usage_error(bad: str) -> None:
    code, _, err = run("serve", "--public-url", bad)
    assert code == 2
    assert "--public-url" in err
