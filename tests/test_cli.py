"""The ``necrocode-artifacts`` command line: in-process (CliRunner) and as the installed script."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig, __version__
from necrocode.artifact_store.cli import app
from necrocode.artifact_store.settings import resolve_config

from .conftest import subprocess_env

DIFF = b"--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-old\n+new\n"
BINARY = bytes(range(256)) * 41 + b"\xff\xfe\x00"

Invoke = Callable[..., Result]


def write_config(path: Path, base: Path, **settings: Any) -> Path:
    path.write_text(
        yaml.safe_dump({"artifact_store": {"base_path": str(base), **settings}}), encoding="utf-8"
    )
    return path


#: Variables that make rich treat any stream as a terminal.
TERMINAL_OVERRIDES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


@pytest.fixture(autouse=True)
def no_forced_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Captured output is not a terminal, whatever the environment says."""
    for name in TERMINAL_OVERRIDES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def config_file(tmp_path: Path, base: Path) -> Path:
    # Uncompressed, so a flipped byte in a stored object is a checksum mismatch.
    return write_config(tmp_path / "store.yaml", base, compression_enabled=False)


@pytest.fixture
def cli(config_file: Path) -> Invoke:
    """Run the app in-process against ``config_file`` (its store created by ``init``)."""
    runner = CliRunner()

    def invoke(*args: str, input: bytes | str | None = None, config: Path | None = None) -> Result:
        return runner.invoke(app, ["--config", str(config or config_file), *args], input=input)

    assert invoke("init").exit_code == 0
    return invoke


def open_store(config_file: Path) -> ArtifactStore:
    return ArtifactStore(resolve_config(config_file).config)


def upload(cli: Invoke, spec: str, task: str, kind: str, data: bytes, *extra: str) -> str:
    result = cli("upload", "-", "--spec", spec, "--task", task, "--type", kind, *extra, input=data)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


# -- upload / download / info ------------------------------------------------------------


def test_upload_from_stdin_and_download_to_stdout_are_byte_exact(
    cli: Invoke, config_file: Path
) -> None:
    uri = upload(cli, "chat-app", "1.1", "log", BINARY)
    assert uri.endswith("/chat-app/1.1/log.txt")
    assert uri.startswith("file://")
    result = cli("download", uri)
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == BINARY
    with open_store(config_file) as store:
        assert store.download(uri) == BINARY


def test_upload_a_file_with_tags_and_metadata(cli: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "change.diff"
    source.write_bytes(DIFF)
    result = cli(
        "upload", str(source), "-s", "chat-app", "-t", "1.2", "--type", "diff",
        "--tag", "reviewed", "--tag", "bot", "--meta", "commit=0123abc", "--meta", "pr=42",
        "--json",
    )  # fmt: skip
    meta = as_json(result)
    assert meta["spec_name"] == "chat-app"
    assert meta["task_id"] == "1.2"
    assert meta["type"] == "diff"
    assert meta["tags"] == ["bot", "reviewed"]
    assert meta["metadata"] == {"commit": "0123abc", "pr": "42"}
    assert meta["original_size"] == len(DIFF)
    assert meta["mime_type"] == "text/x-diff"
    assert meta["checksum"].startswith("sha256:")


def test_upload_usage_errors_exit_2(cli: Invoke, tmp_path: Path) -> None:
    bad_meta = cli("upload", "-", "-s", "a", "-t", "1", "--type", "log", "--meta", "novalue")
    assert bad_meta.exit_code == 2
    assert "KEY=VALUE" in one_error_line(bad_meta)
    bad_name = cli("upload", "-", "-s", "../etc", "-t", "1", "--type", "log", input=b"x")
    assert bad_name.exit_code == 2
    assert "invalid spec_name" in one_error_line(bad_name)
    missing = cli("upload", str(tmp_path / "nope"), "-s", "a", "-t", "1", "--type", "log")
    assert missing.exit_code == 2
    assert "nope" in one_error_line(missing)
    bad_type = cli("upload", "-", "-s", "a", "-t", "1", "--type", "video", input=b"x")
    assert bad_type.exit_code == 2
    one_error_line(bad_type)


def test_download_to_a_file_or_folder(cli: Invoke, tmp_path: Path) -> None:
    upload(cli, "chat-app", "1.1", "diff", DIFF)
    target = tmp_path / "out.diff"
    result = cli("download", "chat-app/1.1/diff", "-o", str(target), "--json")
    report = as_json(result)
    assert target.read_bytes() == DIFF
    assert report["path"] == str(target)
    assert (
        report["artifact"]["checksum"] == f"sha256:{__import__('hashlib').sha256(DIFF).hexdigest()}"
    )
    folder = tmp_path / "folder"
    folder.mkdir()
    assert cli("download", "chat-app/1.1/diff.txt", "-o", str(folder)).exit_code == 0
    assert (folder / "diff.txt").read_bytes() == DIFF
    # --json cannot share stdout with the bytes
    assert cli("download", "chat-app/1.1/diff", "--json").exit_code == 2


def test_info_shows_metadata_as_json_and_as_fields(cli: Invoke) -> None:
    uri = upload(cli, "chat-app", "1.1", "test", b'{"passed": 3}', "--tag", "ci")
    meta = as_json(cli("info", uri, "--json"))
    assert meta == as_json(cli("--json", "info", "chat-app/1.1/test"))
    assert meta["schema"] == 2
    assert meta["uri"] == uri
    assert set(meta) >= {
        "uri", "task_id", "spec_name", "type", "size", "stored_size", "checksum", "created_at",
        "compressed", "original_size", "mime_type", "tags", "version", "metadata", "pinned",
    }  # fmt: skip
    plain = cli("info", uri)
    assert plain.exit_code == 0
    fields = dict(line.split("\t", 1) for line in plain.stdout.splitlines())
    assert fields["uri"] == uri
    assert fields["tags"] == "ci"
    assert fields["type"] == "test"


def test_a_missing_artifact_exits_1_with_one_line(cli: Invoke) -> None:
    for args in (
        ("info", "chat-app/9.9/diff"),
        ("download", "chat-app/9.9/diff"),
        ("versions", "chat-app/9.9/diff"),
        ("tag", "add", "chat-app/9.9/diff", "x"),
        ("verify", "chat-app/9.9/diff"),
    ):
        result = cli(*args)
        assert result.exit_code == 1, args
        assert "no artifact at" in one_error_line(result)
        assert result.stdout == ""


def test_a_bad_reference_is_a_usage_error(cli: Invoke) -> None:
    result = cli("info", "chat-app/diff")
    assert result.exit_code == 2
    assert "<spec>/<task>/<type>" in one_error_line(result)
    foreign = cli("info", "s3://other-bucket/a/b/diff.txt")
    assert foreign.exit_code == 2
    assert "not inside this store" in one_error_line(foreign)


def test_debug_adds_the_traceback(cli: Invoke) -> None:
    result = cli("--debug", "info", "chat-app/9.9/diff")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: no artifact at")


# -- listing and searching ---------------------------------------------------------------


@pytest.fixture
def populated(cli: Invoke) -> dict[str, str]:
    return {
        "d11": upload(cli, "chat-app", "1.1", "diff", DIFF, "--tag", "ok"),
        "l11": upload(cli, "chat-app", "1.1", "log", b"log", "--tag", "ok", "--tag", "slow"),
        "d12": upload(cli, "chat-app", "1.2", "diff", DIFF),
        "t21": upload(cli, "iot", "2.1", "test", b"{}", "--tag", "slow"),
    }


def uris_of(result: Result) -> list[str]:
    return [item["uri"] for item in as_json(result)]


def test_ls_filters(cli: Invoke, populated: dict[str, str]) -> None:
    p = populated
    assert uris_of(cli("ls", "--reverse", "--json")) == [p["d11"], p["l11"], p["d12"], p["t21"]]
    assert uris_of(cli("ls", "--json")) == [p["t21"], p["d12"], p["l11"], p["d11"]]
    assert uris_of(cli("ls", "--spec", "iot", "--json")) == [p["t21"]]
    assert uris_of(cli("ls", "-r", "--task", "1.1", "--json")) == [p["d11"], p["l11"]]
    assert uris_of(cli("ls", "-r", "--type", "diff", "--json")) == [p["d11"], p["d12"]]
    assert uris_of(cli("ls", "--tag", "ok", "--tag", "slow", "--json")) == [p["l11"]]
    assert uris_of(cli("ls", "-r", "--tag", "ok", "--tag", "slow", "--match", "any", "--json")) == [
        p["d11"],
        p["l11"],
        p["t21"],
    ]
    assert uris_of(cli("ls", "--limit", "2", "--json")) == [p["t21"], p["d12"]]
    assert uris_of(cli("ls", "-r", "--since", "1h", "--json")) == list(p.values())
    assert uris_of(cli("ls", "--until", "1h", "--json")) == []
    assert uris_of(cli("ls", "-r", "--since", "2000-01-01", "--until", "2999-01-01T00:00:00+00:00",
                       "--json")) == list(p.values())  # fmt: skip
    assert uris_of(cli("search", "--spec", "chat-app", "--type", "log", "--json")) == [p["l11"]]


def test_ls_without_a_terminal_prints_tab_separated_lines(
    cli: Invoke, populated: dict[str, str]
) -> None:
    result = cli("ls", "--spec", "chat-app", "--reverse")
    assert result.exit_code == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[0] for row in rows] == [populated["d11"], populated["l11"], populated["d12"]]
    assert rows[1][1:5] == ["chat-app", "1.1", "log", "1"]
    assert rows[1][5] == "3"
    assert rows[1][8] == "ok,slow"


def test_ls_rejects_bad_filters(cli: Invoke) -> None:
    for args in (("--since", "yesterday"), ("--limit", "0"), ("--type", "x"), ("--tag", "a b")):
        result = cli("ls", *args)
        assert result.exit_code == 2, args
        one_error_line(result)


# -- deleting ----------------------------------------------------------------------------


def test_rm_asks_for_confirmation(cli: Invoke, populated: dict[str, str]) -> None:
    declined = cli("rm", populated["d11"], input="n\n")
    assert declined.exit_code == 1
    assert "nothing deleted" in declined.stderr
    assert cli("info", populated["d11"]).exit_code == 0
    no_answer = cli("rm", populated["d11"], input="")
    assert no_answer.exit_code == 1
    assert cli("info", populated["d11"]).exit_code == 0
    confirmed = cli("rm", populated["d11"], input="y\n")
    assert confirmed.exit_code == 0
    assert "deleted 1 artifact" in confirmed.stderr
    assert cli("info", populated["d11"]).exit_code == 1


def test_rm_by_task_and_by_spec(cli: Invoke, populated: dict[str, str]) -> None:
    assert as_json(cli("rm", "--task", "1.1", "--spec", "chat-app", "--yes", "--json")) == {
        "deleted": 2
    }
    assert as_json(cli("rm", "--spec", "chat-app", "-y", "--json")) == {"deleted": 1}
    assert as_json(cli("rm", "--spec", "chat-app", "-y", "--json")) == {"deleted": 0}
    assert uris_of(cli("ls", "--json")) == [populated["t21"]]


def test_rm_refuses_everything_if_one_artifact_is_missing(
    cli: Invoke, populated: dict[str, str]
) -> None:
    result = cli("rm", populated["d11"], "chat-app/7.7/diff", "--yes")
    assert result.exit_code == 1
    assert "chat-app/7.7/diff.txt" in one_error_line(result)
    assert cli("info", populated["d11"]).exit_code == 0


def test_rm_usage_errors(cli: Invoke, populated: dict[str, str]) -> None:
    assert cli("rm", "--yes").exit_code == 2
    both = cli("rm", populated["d11"], "--spec", "chat-app", "--yes")
    assert both.exit_code == 2
    assert "not both" in one_error_line(both)


# -- tags, pins, versions ----------------------------------------------------------------


def test_tag_add_set_rm(cli: Invoke, populated: dict[str, str]) -> None:
    ref = "chat-app/1.2/diff"
    assert as_json(cli("tag", "add", ref, "b", "a", "--json"))["tags"] == ["a", "b"]
    assert as_json(cli("tag", "rm", ref, "a", "--json"))["tags"] == ["b"]
    assert as_json(cli("tag", "set", ref, "x", "y", "--json"))["tags"] == ["x", "y"]
    assert as_json(cli("tag", "set", ref, "--json"))["tags"] == []
    assert cli("tag", "add", ref, "not valid").exit_code == 2


def test_pin_and_unpin(cli: Invoke, populated: dict[str, str]) -> None:
    assert as_json(cli("pin", "chat-app/1.2/diff", "--json"))["pinned"] is True
    assert as_json(cli("info", "chat-app/1.2/diff", "--json"))["pinned"] is True
    assert as_json(cli("unpin", "chat-app/1.2/diff", "--json"))["pinned"] is False


def test_versions_and_prune_versions(cli: Invoke, tmp_path: Path, base: Path) -> None:
    config = write_config(tmp_path / "versioned.yaml", base, versioning_enabled=True)
    for round_ in range(3):
        result = cli("upload", "-", "-s", "s", "-t", "1", "--type", "log", input=f"v{round_}",
                     config=config)  # fmt: skip
        assert result.exit_code == 0
    listed = as_json(cli("versions", "s/1/log", "--json", config=config))
    assert [v["version"] for v in listed] == [1, 2, 3]
    old = cli("download", "s/1/log?version=1", config=config)
    assert old.stdout_bytes == b"v0"
    pruned = as_json(cli("prune-versions", "s/1/log", "--keep", "1", "-y", "--json", config=config))
    assert pruned["deleted"] == 2
    assert pruned["kept"] == 1
    listed = as_json(cli("versions", "s/1/log", "--json", config=config))
    assert [v["version"] for v in listed] == [3]
    assert cli("prune-versions", "s/1/log", "--keep", "0", config=config).exit_code == 2


# -- whole-store commands ----------------------------------------------------------------


def test_export_by_spec_and_by_task(cli: Invoke, populated: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "exports" / "chat.zip"
    report = as_json(cli("export", "--spec", "chat-app", "-o", str(target), "--json"))
    assert report["path"] == str(target)
    assert report["artifact_count"] == 3
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        assert archive.read("chat-app/1.1/diff.txt") == DIFF
    assert {"chat-app/1.1/diff.txt", "chat-app/1.1/log.txt", "chat-app/1.2/diff.txt"} <= names
    plain = cli("export", "--task", "2.1", "-o", str(tmp_path / "task.zip"))
    assert plain.exit_code == 0
    assert plain.stdout.strip() == str(tmp_path / "task.zip")
    with zipfile.ZipFile(tmp_path / "task.zip") as archive:
        assert "iot/2.1/test-result.json" in archive.namelist()
    assert cli("export").exit_code == 2


def test_usage_matches_the_api(cli: Invoke, populated: dict[str, str], config_file: Path) -> None:
    report = as_json(cli("usage", "--json"))
    with open_store(config_file) as store:
        assert report["total"] == store.get_storage_usage().to_dict()
        assert report["by_spec"] == {k: v.to_dict() for k, v in store.get_usage_by_spec().items()}
        assert report["by_type"] == {k: v.to_dict() for k, v in store.get_usage_by_type().items()}
    assert report["total"]["artifact_count"] == 4
    assert set(report["by_spec"]) == {"chat-app", "iot"}
    assert report["quota"]["max_bytes"] == 100 * 2**30
    assert report["quota"]["warn_threshold"] == 0.8
    plain = cli("usage")
    assert plain.stdout.splitlines()[0].startswith("total\t-\t4\t4\t")


def corrupt(config_file: Path, uri: str) -> Path:
    """Flip one byte of the stored object behind ``uri``."""
    with open_store(config_file) as store:
        key = store.get_metadata(uri).object_key
    path = resolve_config(config_file).config.base_path / key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def test_verify_reports_a_corrupted_artifact_and_exits_1(
    cli: Invoke, populated: dict[str, str], config_file: Path, tmp_path: Path
) -> None:
    healthy = as_json(cli("verify", "--json"))
    assert healthy["healthy"] is True
    assert healthy["checked"] == 4
    corrupt(config_file, populated["l11"])

    result = cli("verify")
    assert result.exit_code == 1
    assert populated["l11"] in one_error_line(result)
    assert any(
        line.startswith(f"corrupted\t{populated['l11']}\t") for line in result.stdout.splitlines()
    )

    report = json.loads(cli("verify", "--json").stdout)
    assert report["healthy"] is False
    assert [p["uri"] for p in report["corrupted"]] == [populated["l11"]]
    assert "checksum mismatch" in report["corrupted"][0]["reason"]

    one = cli("verify", "chat-app/1.1/log", "--json")
    assert one.exit_code == 1
    assert json.loads(one.stdout)["corrupted"][0]["uri"] == populated["l11"]
    assert cli("verify", "chat-app/1.1/diff").exit_code == 0
    target = tmp_path / "never-written"
    refused = cli("download", populated["l11"], "-o", str(target))
    assert refused.exit_code == 1
    assert "checksum mismatch" in one_error_line(refused)
    assert not target.exists()
    assert list(tmp_path.glob(".never-written*")) == []  # no partial file either


def test_verify_reports_a_missing_object(
    cli: Invoke, populated: dict[str, str], config_file: Path
) -> None:
    corrupt(config_file, populated["d12"]).unlink()
    result = cli("verify", "--json")
    assert result.exit_code == 1
    assert [p["uri"] for p in json.loads(result.stdout)["missing"]] == [populated["d12"]]
    one = cli("verify", populated["d12"], "--json")
    assert one.exit_code == 1
    assert json.loads(one.stdout)["missing"][0]["uri"] == populated["d12"]
    assert populated["d12"] in one_error_line(one)


def test_cleanup_dry_run_then_for_real(cli: Invoke, tmp_path: Path, base: Path) -> None:
    config = write_config(tmp_path / "short.yaml", base, retention_policy={"log": 0})
    run = {"config": config}
    for task in ("1", "2"):
        assert (
            cli("upload", "-", "-s", "s", "-t", task, "--type", "log", input="x", **run).exit_code
            == 0
        )
    assert (
        cli("upload", "-", "-s", "s", "-t", "1", "--type", "diff", input="d", **run).exit_code == 0
    )
    assert cli("pin", "s/2/log", **run).exit_code == 0

    dry = as_json(cli("cleanup", "--dry-run", "--json", **run))
    assert dry["dry_run"] is True
    assert dry["count"] == 1
    assert dry["would_delete"][0].endswith("/s/1/log.txt")
    assert len(as_json(cli("ls", "--json", **run))) == 3

    real = cli("cleanup", "--yes", **run)
    assert real.exit_code == 0
    assert real.stdout.strip().endswith("/s/1/log.txt")
    assert "deleted 1 expired artifact version" in real.stderr
    remaining = {item["uri"].rsplit("/", 2)[-2] + "/" + item["type"] for item in
                 as_json(cli("ls", "--json", **run))}  # fmt: skip
    assert remaining == {"1/diff", "2/log"}


def test_reindex_and_repair(cli: Invoke, populated: dict[str, str], base: Path) -> None:
    (base / ".necrocode").joinpath("index.sqlite3").unlink(missing_ok=True)
    assert as_json(cli("reindex", "--json")) == {"indexed": 4}
    orphan = base / "chat-app" / "1.1" / "diff.txt.v000009.0123456789abcdef.raw"
    orphan.write_bytes(b"left behind")
    os.utime(orphan, (1_000_000_000, 1_000_000_000))
    report = as_json(cli("repair", "--yes", "--json"))
    assert report["removed_orphans"] == ["chat-app/1.1/diff.txt.v000009.0123456789abcdef.raw"]
    assert report["indexed"] == 4
    assert not orphan.exists()
    assert cli("repair", "--older-than", "soon").exit_code == 2


# -- configuration -----------------------------------------------------------------------


def test_config_show_names_every_source(
    cli: Invoke, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NECROCODE_ARTIFACT_STORE_RETENTION_POLICY__LOG", "3")
    shown = as_json(cli("config", "show", "--json"))
    assert shown["config_file"] == str(config_file)
    assert shown["config_file_origin"] == "option"
    settings = {item["key"]: item for item in shown["settings"]}
    assert settings["compression_enabled"]["value"] is False
    assert settings["compression_enabled"]["source"] == "file"
    assert settings["compression_enabled"]["origin"] == str(config_file)
    assert settings["retention_policy.log"] == {
        "key": "retention_policy.log",
        "value": 3,
        "source": "env",
        "origin": "NECROCODE_ARTIFACT_STORE_RETENTION_POLICY__LOG",
        "env_var": "NECROCODE_ARTIFACT_STORE_RETENTION_POLICY__LOG",
    }
    assert settings["retention_policy.diff"]["source"] == "default"
    plain = cli("config", "show")
    assert plain.exit_code == 0
    assert f"config file\t{config_file} (from --config)" in plain.stdout
    assert "retention_policy.log\t3\t$NECROCODE_ARTIFACT_STORE_RETENTION_POLICY__LOG\t" in (
        plain.stdout
    )


def test_without_any_config_the_default_store_under_home_is_used(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["upload", "-", "-s", "s", "-t", "1", "--type", "log"], input="x")
    assert result.exit_code == 0, result.stderr
    home = Path(os.environ["HOME"])
    assert result.stdout.strip() == (home / ".necrocode/artifacts/s/1/log.txt").as_uri()
    shown = json.loads(runner.invoke(app, ["config", "show", "--json"]).stdout)
    assert shown["config_file"] is None
    assert shown["config_file_origin"] == "none"


def test_the_config_file_is_found_through_the_environment(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NECROCODE_ARTIFACT_STORE_CONFIG", str(config_file))
    shown = json.loads(CliRunner().invoke(app, ["config", "show", "--json"]).stdout)
    assert shown["config_file"] == str(config_file)
    assert shown["config_file_origin"] == "env"


def test_a_bad_config_file_exits_2_naming_file_key_and_reason(cli: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("artifact_store:\n  retention_policy: {diff: -1}\n", encoding="utf-8")
    for args in (("ls",), ("config", "show")):
        result = cli(*args, config=bad)
        assert result.exit_code == 2
        line = one_error_line(result)
        assert str(bad) in line
        assert "retention_policy.diff" in line
        assert "greater than or equal to 0" in line
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("artifact_store:\n  colour: blue\n", encoding="utf-8")
    assert "colour: unknown key" in one_error_line(cli("ls", config=unknown))
    missing = cli("ls", config=tmp_path / "missing.yaml")
    assert missing.exit_code == 2
    assert "missing.yaml: cannot read" in one_error_line(missing)


def test_a_bad_environment_override_exits_2(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NECROCODE_ARTIFACT_STORE_LOCK_TIMEOUT", "forever")
    result = cli("ls")
    assert result.exit_code == 2
    assert "NECROCODE_ARTIFACT_STORE_LOCK_TIMEOUT" in one_error_line(result)


# -- global behaviour --------------------------------------------------------------------


def test_global_json_applies_to_every_read_command(cli: Invoke, populated: dict[str, str]) -> None:
    for args in (("ls",), ("info", "chat-app/1.1/diff"), ("versions", "chat-app/1.1/diff"),
                 ("usage",), ("verify",), ("config", "show")):  # fmt: skip
        result = cli("--json", *args)
        assert result.exit_code == 0, (args, result.stderr)
        json.loads(result.stdout)


def test_quiet_silences_confirmations(cli: Invoke, populated: dict[str, str]) -> None:
    loud = cli("tag", "add", "chat-app/1.1/diff", "x")
    assert "tags: ok, x" in loud.stderr
    quiet = cli("--quiet", "tag", "add", "chat-app/1.1/diff", "y")
    assert quiet.exit_code == 0
    assert quiet.stderr == ""
    assert quiet.stdout == ""


def test_usage_errors_exit_2_with_one_line(cli: Invoke) -> None:
    result = cli("ls", "--colour")
    assert result.exit_code == 2
    assert "No such option" in one_error_line(result)
    assert cli("frobnicate").exit_code == 2


def test_store_warnings_reach_stderr_and_a_full_quota_exits_1(
    cli: Invoke, tmp_path: Path, base: Path
) -> None:
    # A quota of 4 KiB with a warning at half of it.
    config = write_config(
        tmp_path / "quota.yaml",
        base,
        compression_enabled=False,
        storage_quota={"max_size_gb": 4096 / 2**30, "warn_threshold": 0.5},
    )
    run = {"config": config}
    first = cli("upload", "-", "-s", "s", "-t", "1", "--type", "log", input=b"x" * 3000, **run)
    assert first.exit_code == 0
    assert first.stderr.startswith("warning: storage usage is above 50% of the quota: 2.9 KiB")
    full = cli("upload", "-", "-s", "s", "-t", "2", "--type", "log", input=b"x" * 3000, **run)
    assert full.exit_code == 1
    assert "storage quota exceeded" in one_error_line(full)


def test_tables_and_progress_bars_only_on_a_terminal(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.log"
    big.write_bytes(b"line of a long log\n" * (5 * 2**20 // 19 + 1))  # over 4 MiB
    upload_big = ("upload", str(big), "-s", "s", "-t", "1", "--type", "log")
    plain = cli(*upload_big)
    assert plain.exit_code == 0
    assert plain.stderr == ""  # not a terminal: no progress bar

    monkeypatch.setenv("FORCE_COLOR", "1")  # rich now treats the captured streams as terminals
    drawn = cli(*upload_big)
    assert drawn.exit_code == 0
    assert "uploading big.log" in drawn.stderr
    assert cli("--quiet", *upload_big).stderr == ""
    table = cli("ls")
    header = re.sub(r"\x1b\[[0-9;]*m", "", table.stdout.splitlines()[0])
    assert [cell.strip() for cell in header.split("┃")] == [
        "ARTIFACT", "SIZE", "STORED", "CREATED", "TAGS"  # no VER: versioning is off
    ]  # fmt: skip
    assert "s/1/log" in table.stdout
    downloaded = cli("download", "s/1/log", "-o", str(tmp_path / "copy.log"))
    assert "downloading s/1/log" in downloaded.stderr
    assert (tmp_path / "copy.log").read_bytes() == big.read_bytes()


def test_an_unexpected_error_is_one_line_unless_debugging(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something unforeseen")

    monkeypatch.setattr(ArtifactStore, "search_page", broken)
    result = cli("ls")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "internal error: RuntimeError('something unforeseen')" in line
    assert "--debug" in line
    debug = cli("--debug", "ls")
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr


def test_version_and_help(cli: Invoke) -> None:
    assert cli("--version").stdout.strip() == f"necrocode-artifacts {__version__}"
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("upload", "download", "ls", "verify", "cleanup", "export", "config"):
        assert command in result.stdout


# -- the installed console script, as a real subprocess ---------------------------------


def console_script() -> Path:
    """``necrocode-artifacts`` as installed next to this interpreter."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "necrocode-artifacts"
        if candidate.exists():
            return candidate
    found = shutil.which("necrocode-artifacts")
    assert found, "the console script is not installed: run pip install -e ."
    return Path(found)


def test_the_installed_console_script_end_to_end(tmp_path: Path, base: Path) -> None:
    config = write_config(tmp_path / "sub.yaml", base, compression_enabled=False)
    env = subprocess_env()
    env["NECROCODE_ARTIFACT_STORE_CONFIG"] = str(config)
    script = str(console_script())

    def run(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [script, *args], input=data, capture_output=True, env=env, timeout=60, check=False
        )

    uploaded = run("upload", "-", "-s", "chat-app", "-t", "1.1", "--type", "log", data=BINARY)
    assert uploaded.returncode == 0, uploaded.stderr
    uri = uploaded.stdout.decode().strip()
    assert uri == (base / "chat-app/1.1/log.txt").resolve().as_uri()

    downloaded = run("download", uri)
    assert downloaded.returncode == 0
    assert downloaded.stdout == BINARY

    listed = json.loads(run("ls", "--json").stdout)
    assert [item["uri"] for item in listed] == [uri]
    assert json.loads(run("info", "chat-app/1.1/log", "--json").stdout)["original_size"] == len(
        BINARY
    )

    missing = run("info", "chat-app/0/log")
    assert missing.returncode == 1
    assert missing.stderr.decode().strip().startswith("error: no artifact at")
    assert len(missing.stderr.decode().strip().splitlines()) == 1

    assert run("verify").returncode == 0
    corrupt(config, uri)
    broken = run("verify")
    assert broken.returncode == 1
    assert uri in broken.stderr.decode()

    bad = tmp_path / "bad.yaml"
    bad.write_text("artifact_store:\n  compression_level: high\n", encoding="utf-8")
    refused = run("--config", str(bad), "ls")
    assert refused.returncode == 2
    message = refused.stderr.decode().strip()
    assert message.startswith(f"error: {bad}: invalid configuration: compression_level: ")
    assert "Traceback" not in message


def test_python_dash_m_runs_the_same_tool(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "necrocode.artifact_store", "--version"],
        capture_output=True,
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"necrocode-artifacts {__version__}"


def test_artifact_store_config_is_what_the_cli_opens(config_file: Path, base: Path) -> None:
    config = resolve_config(config_file).config
    assert config == ArtifactStoreConfig(base_path=base, compression_enabled=False)
