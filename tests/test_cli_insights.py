"""Content insights on the command line: ls filters, info, --json, reindex --summaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from necrocode.artifact_store.cli import app

from .content_inputs import run_tiny_suite

LOG = b"INFO start\nTraceback (most recent call last):\nKeyError: 'x'\n"
DIFF = b"--- a/src/auth/login.py\n+++ b/src/auth/login.py\n@@ -1 +1,2 @@\n-a\n+b\n+c\n"


@pytest.fixture(scope="module")
def junit(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return run_tiny_suite(tmp_path_factory.mktemp("suite"))["junit"]


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    def invoke(*args: str, input: bytes | None = None, **settings: Any) -> Result:
        config = tmp_path / "store.yaml"
        body = {"base_path": str(tmp_path / "artifacts"), "durable_writes": False, **settings}
        config.write_text(yaml.safe_dump({"artifact_store": body}))
        return CliRunner().invoke(app, ["--config", str(config), *args], input=input)

    return invoke


def _upload(cli: Any, task: str, kind: str, data: bytes, **settings: Any) -> str:
    result = cli(
        "upload", "-", "--spec", "chat", "--task", task, "--type", kind, input=data, **settings
    )
    assert result.exit_code == 0, result.stderr
    return str(result.stdout.strip())


def _uris(result: Result) -> list[str]:
    assert result.exit_code == 0, result.stderr
    return [item["uri"] for item in json.loads(result.stdout)]


def test_ls_filters_and_json(cli: Any, junit: bytes) -> None:
    failing = _upload(cli, "1", "test", junit)
    diff = _upload(cli, "1", "diff", DIFF)
    log = _upload(cli, "1", "log", LOG)
    assert _uris(cli("ls", "--failed", "--json")) == [failing]
    assert _uris(cli("ls", "--passed", "--json")) == []
    assert _uris(cli("ls", "--touches", "src/auth/**", "--json")) == [diff]
    assert _uris(cli("ls", "--touches", "docs", "--json")) == []
    assert _uris(cli("ls", "--has-errors", "--json")) == [log, failing]  # newest first
    assert _uris(cli("ls", "--test", "login_fails", "--json")) == [failing]
    found = json.loads(cli("ls", "--failed", "--json").stdout)
    assert found[0]["summary"]["test"]["failed"] == 2
    plain = cli("ls", "--touches", "src/auth/login.py")
    assert plain.exit_code == 0 and plain.stdout.split("\t")[0] == diff


def test_info_shows_the_summary(cli: Any, junit: bytes) -> None:
    _upload(cli, "1", "test", junit)
    _upload(cli, "1", "diff", DIFF)
    _upload(cli, "1", "log", LOG)
    _upload(cli, "2", "test", b"not a report")
    test = cli("info", "chat/1/test")
    assert test.exit_code == 0, test.stderr
    assert "failed (junit): 1 passed, 2 failed, 1 errors, 1 skipped" in test.stdout
    assert "test_tiny.test_login_fails" in test.stdout
    diff = cli("info", "chat/1/diff").stdout
    assert "1 file, +2 -1" in diff and "modified src/auth/login.py +2 -1" in diff
    log = cli("info", "chat/1/log").stdout
    assert "3 lines, 2 with errors, 0 with warnings, 1 traceback, first error at line 2" in log
    bad = cli("info", "chat/2/test").stdout
    assert "none: not a test report" in bad
    data = json.loads(cli("info", "chat/1/log", "--json").stdout)
    assert data["summary"]["log"]["first_error_line"] == 2
    assert data["summary_reason"] is None


def test_reindex_summaries_backfills(cli: Any, junit: bytes) -> None:
    _upload(cli, "1", "test", junit, content_summaries=False)
    _upload(cli, "1", "log", LOG, content_summaries=False)
    assert _uris(cli("ls", "--failed", "--json")) == []
    result = cli("reindex", "--summaries", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["indexed"] == 2
    assert data["summaries"]["summarised"] == 2
    assert len(_uris(cli("ls", "--failed", "--json"))) == 1
    again = cli("reindex", "--summaries")
    assert again.exit_code == 0
    assert "summarised 0 artifact versions, 0 did not parse, 2 skipped" in again.stderr


def test_bad_content_filter_is_a_usage_error(cli: Any) -> None:
    assert cli("init").exit_code == 0  # a store that does not exist is exit 10 first
    result = cli("ls", "--touches", " ")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "touches must be a non-empty string" in lines[0]
