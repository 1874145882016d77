"""The command line over a shared PostgreSQL index: it names the index in use, and an
unreachable database is one typed error line while downloads by URI keep working."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from necrocode.artifact_store.cli import app

from .cloud_servers import free_port


def _config(path: Path, base: Path, index_url: str) -> Path:
    settings = {"base_path": str(base), "index_url": index_url, "index_connect_timeout": 1}
    path.write_text(yaml.safe_dump({"artifact_store": settings}), encoding="utf-8")
    return path


def test_config_show_and_usage_name_the_index_without_its_password(
    pg_url: str, tmp_path: Path
) -> None:
    secret = pg_url.replace("necro@", "necro:hunter2@")
    config = _config(tmp_path / "store.yaml", tmp_path / "store", secret)
    runner = CliRunner()
    shown = runner.invoke(app, ["--config", str(config), "config", "show"])
    assert shown.exit_code == 0, shown.stderr
    assert "necro:***@" in shown.stdout and "hunter2" not in shown.stdout
    assert "index" in shown.stdout
    data = json.loads(
        runner.invoke(app, ["--config", str(config), "config", "show", "--json"]).stdout
    )
    assert data["index"].startswith("postgresql://necro:***@127.0.0.1")
    assert "hunter2" not in json.dumps(data)
    # The throwaway server trusts local connections, so the password is not checked.
    assert runner.invoke(app, ["--config", str(config), "init"]).exit_code == 0  # else exit 10
    usage = runner.invoke(app, ["--config", str(config), "usage", "--json"])
    assert usage.exit_code == 0, usage.stderr
    assert json.loads(usage.stdout)["index"] == data["index"]
    default = _config(tmp_path / "local.yaml", tmp_path / "local", "sqlite")
    assert runner.invoke(app, ["--config", str(default), "init"]).exit_code == 0
    local = json.loads(runner.invoke(app, ["--config", str(default), "usage", "--json"]).stdout)
    assert local["index"].startswith("sqlite ") and local["index"].endswith("index.sqlite3")


def test_an_unreachable_database_is_one_error_line_and_downloads_still_work(
    pg_url: str, tmp_path: Path
) -> None:
    base = tmp_path / "store"
    up = _config(tmp_path / "up.yaml", base, pg_url)
    runner = CliRunner()
    uploaded = runner.invoke(
        app,
        ["--config", str(up), "upload", "-", "--spec", "s", "--task", "t", "--type", "log"],
        input=b"hello\n",
    )
    assert uploaded.exit_code == 0, uploaded.stderr
    uri = uploaded.stdout.strip()
    down = _config(tmp_path / "down.yaml", base, f"postgresql://necro@127.0.0.1:{free_port()}/x")
    search = runner.invoke(app, ["--config", str(down), "search", "--spec", "s"])
    assert search.exit_code == 1
    lines = search.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in search.stderr, search.stderr
    assert lines[0].startswith("error: index database postgresql://necro@127.0.0.1:")
    assert "unreachable" in lines[0]
    fetched = runner.invoke(app, ["--config", str(down), "download", uri, "-o", "-"])
    assert fetched.exit_code == 0, fetched.stderr
    assert fetched.stdout_bytes == b"hello\n"
