"""The command line as users of aws s3, gh and restic expect it (issue 19).

Each section names the item of the issue it proves; everything runs through
``CliRunner`` in-process, or the installed script in a subprocess where a real
process matters (start-up, non-TTY pipes, completion).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from necrocode.artifact_store.cli import app
from necrocode.artifact_store.cli_init import EXIT_NO_STORE

from .conftest import subprocess_env

Invoke = Callable[..., Result]
DIFF = b"--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-old\n+new\n"


def write_config(path: Path, base: Path, **settings: Any) -> Path:
    path.write_text(
        yaml.safe_dump({"artifact_store": {"base_path": str(base), **settings}}), encoding="utf-8"
    )
    return path


@pytest.fixture(autouse=True)
def no_forced_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def config_file(tmp_path: Path, base: Path) -> Path:
    return write_config(tmp_path / "store.yaml", base, compression_enabled=False)


def make_invoke(config_file: Path) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str, input: bytes | str | None = None) -> Result:
        return runner.invoke(app, ["--config", str(config_file), *args], input=input)

    return invoke


@pytest.fixture
def bare(config_file: Path) -> Invoke:
    """The app against a configuration whose store does not exist yet."""
    return make_invoke(config_file)


@pytest.fixture
def cli(bare: Invoke) -> Invoke:
    """The app against a created, empty store."""
    assert bare("init").exit_code == 0
    return bare


def put(cli: Invoke, spec: str, task: str, kind: str, data: bytes, *extra: str) -> str:
    result = cli("upload", "-", "-s", spec, "-t", task, "--type", kind, *extra, input=data)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def script(
    *args: str, home: Path, stdin: bytes = b"", **env_extra: str
) -> subprocess.CompletedProcess[bytes]:
    """The installed entry point in a child process (no terminal anywhere)."""
    env = subprocess_env()
    env["HOME"] = str(home)
    env.pop("NECROCODE_ARTIFACT_STORE_CONFIG", None)
    for name in [n for n in env if n.startswith("NECROCODE_ARTIFACT_STORE_")]:
        del env[name]
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "necrocode.artifact_store", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


# -- 1. a store that does not exist ------------------------------------------------------


def test_read_commands_on_a_missing_store_exit_10_and_create_nothing(
    bare: Invoke, base: Path
) -> None:
    for args in (("ls",), ("verify",), ("usage",), ("info", "s/1/diff"), ("cleanup", "--dry-run")):
        result = bare(*args)
        assert result.exit_code == EXIT_NO_STORE, (args, result.stderr)
        line = error_line(result)
        assert f"no artifact store at {base}" in line
        assert "necrocode-artifacts init" in line
    assert not base.exists()


def test_init_creates_the_store_once(bare: Invoke, base: Path) -> None:
    first = as_json(bare("init", "--json"))
    assert first == {"root_uri": base.as_uri(), "created": True}
    assert as_json(bare("init", "--json"))["created"] is False
    result = bare("ls")
    assert result.exit_code == 0
    assert result.stdout == ""


def test_upload_creates_a_missing_store(bare: Invoke, base: Path) -> None:
    uri = put(bare, "chat-app", "1", "diff", DIFF)
    assert uri == f"{base.as_uri()}/chat-app/1/diff.txt"
    assert bare("verify").exit_code == 0


def test_a_store_made_before_init_existed_is_recognised(tmp_path: Path, base: Path) -> None:
    """An old store has records but maybe no state folder (state_dir elsewhere)."""
    state = tmp_path / "state"
    config = write_config(tmp_path / "c.yaml", base, state_dir=str(state))
    cli = make_invoke(config)
    put(cli, "s", "1", "log", b"x")
    state_copy = tmp_path / "elsewhere"
    state.rename(state_copy)  # a new host: no local state yet, records in the folder
    assert cli("ls").exit_code == 0


def test_the_readme_setup_command_works_in_an_empty_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = script("usage", home=home)
    assert done.returncode == 0, done.stderr
    assert (home / ".necrocode" / "artifacts").is_dir()
    assert script("ls", home=home).returncode == 0


# -- 4. global options anywhere ------------------------------------------------------


def test_global_options_work_after_the_command(config_file: Path, base: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--config", str(config_file)]).exit_code == 0
    data = b"line\n"
    done = runner.invoke(
        app,
        ["upload", "-", "-s", "s", "-t", "1", "--type", "log", "-c", str(config_file), "--json"],
        input=data,
    )
    assert as_json(done)["spec_name"] == "s"
    listed = runner.invoke(app, ["ls", f"--config={config_file}", "--json", "-q"])
    assert [m["task_id"] for m in as_json(listed)] == ["1"]
    missing = runner.invoke(app, ["info", "s/2/log", "-c", str(config_file), "--debug"])
    assert missing.exit_code == 1
    assert "Traceback" in missing.stderr
    verbose = runner.invoke(app, ["rm", "s/1/log", "-y", "-c", str(config_file), "-v"])
    assert verbose.exit_code == 0, verbose.stderr
    assert "info: deleted" in verbose.stderr
    quiet = runner.invoke(app, ["tag", "add", "-q", "s/9/log", "y", "-c", str(config_file)])
    assert quiet.exit_code == 1  # -q is hoisted; s/9/log is the (missing) reference
    assert "no artifact" in error_line(quiet)


def test_an_option_value_that_looks_like_a_global_flag_stays_put(cli: Invoke) -> None:
    put(cli, "s", "1", "log", b"x", "--meta", "note=-q")
    shown = as_json(cli("info", "s/1/log", "--json"))
    assert shown["metadata"] == {"note": "-q"}


# -- 5. shell completion -------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_printed(cli: Invoke, shell: str) -> None:
    result = cli("completion", shell)
    assert result.exit_code == 0, result.stderr
    assert "_NECROCODE_ARTIFACTS_COMPLETE" in result.stdout
    assert "necrocode-artifacts" in result.stdout


def test_the_shell_gets_commands_and_choices_completed(tmp_path: Path) -> None:
    words = script(
        home=tmp_path,
        _NECROCODE_ARTIFACTS_COMPLETE="complete_bash",
        COMP_WORDS="necrocode-artifacts up",
        COMP_CWORD="1",
    )
    assert words.stdout.decode().split() == ["upload"]
    choices = script(
        home=tmp_path,
        _NECROCODE_ARTIFACTS_COMPLETE="complete_bash",
        COMP_WORDS="necrocode-artifacts ls --type ",
        COMP_CWORD="3",
    )
    assert choices.stdout.decode().split() == ["diff", "log", "test"]
    assert "--install-completion" in CliRunner().invoke(app, ["--help"]).stdout


# -- 12. help text -------------------------------------------------------------------


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += _command_paths(sub, (*path, name))
    return found


def test_help_shows_conventional_metavars_and_no_python_types() -> None:
    import typer.main

    runner = CliRunner()
    paths = _command_paths(typer.main.get_command(app))
    assert ("ls",) in paths
    assert ("tag", "add") in paths
    for path in paths:
        text = runner.invoke(app, [*path, "--help"], terminal_width=200).stdout
        for leak in ("<str>", "<bool>", "<int", "<list", "<path>", "{"):
            assert leak not in text, (path, leak)
    upload_help = runner.invoke(app, ["upload", "--help"], terminal_width=200).stdout
    for metavar in ("SPEC", "TASK", "KEY=VALUE", "DAYS", "[diff|log|test]"):
        assert metavar in upload_help
    assert "Usage: necrocode-artifacts upload [OPTIONS] FILE..." in upload_help or (
        "Usage: necrocode-artifacts upload [OPTIONS] FILE" in upload_help
    )


def test_a_group_keeps_its_own_help(cli: Invoke) -> None:
    assert "Usage: necrocode-artifacts tag [OPTIONS] COMMAND" in cli("tag", "-h").stdout
    usage = "Usage: necrocode-artifacts tag add [OPTIONS] REF TAG..."
    assert usage in cli("tag", "add", "-h").stdout


# -- 6. start-up ---------------------------------------------------------------------

HEAVY = ("pydantic", "rich", "yaml", "sqlite3", "necrocode.artifact_store.artifact_store")


def _modules_loaded_by(args: list[str], home: Path) -> set[str]:
    code = (
        "import atexit, sys\n"
        f"heavy = {HEAVY!r}\n"
        "atexit.register(lambda: sys.stderr.write('LOADED ' + ' '.join("
        "m for m in heavy if m in sys.modules) + '\\n'))\n"
        f"sys.argv = ['necrocode-artifacts', *{args!r}]\n"
        "from necrocode.artifact_store.__main__ import main\n"
        "main()\n"
    )
    env = subprocess_env()
    env["HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED"))
    return set(line.split()[1:])


def test_version_and_help_load_neither_the_store_nor_pydantic_nor_rich(tmp_path: Path) -> None:
    assert _modules_loaded_by(["--version"], tmp_path) == set()
    assert _modules_loaded_by(["--help"], tmp_path) == set()
    # typer coerces every parsed parameter through pydantic, so a command's help loads it.
    assert _modules_loaded_by(["ls", "--help"], tmp_path) <= {"pydantic"}
    # A real command loads what it needs.
    assert "necrocode.artifact_store.artifact_store" in _modules_loaded_by(["ls"], tmp_path)


def test_ctrl_c_while_starting_up_exits_130_without_a_traceback(tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    # A Ctrl-C that arrives while the command line is being imported.
    (hook / "sitecustomize.py").write_text(
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'necrocode.artifact_store.cli':\n"
        "            raise KeyboardInterrupt\n"
        "        return None\n"
        "sys.meta_path.insert(0, Interrupt())\n",
        encoding="utf-8",
    )
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(hook), env["PYTHONPATH"]])
    env["HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "necrocode.artifact_store", "ls"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 130
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == "error: interrupted"
