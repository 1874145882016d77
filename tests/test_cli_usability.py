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
from necrocode.artifact_store.cli.init import EXIT_NO_STORE

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


# -- 2. rm --task needs a spec -------------------------------------------------------


@pytest.fixture
def two_specs(cli: Invoke) -> Invoke:
    put(cli, "chat-app", "3", "diff", DIFF)
    put(cli, "chat-app", "3", "log", b"log\n")
    put(cli, "iot", "3", "log", b"log\n")
    put(cli, "iot", "4", "log", b"log\n")
    return cli


def test_rm_task_without_spec_is_refused_and_deletes_nothing(two_specs: Invoke) -> None:
    result = two_specs("rm", "--task", "3", "--yes")
    assert result.exit_code == 2
    assert "--all-specs" in error_line(result)
    assert len(as_json(two_specs("ls", "--json"))) == 4


def test_rm_task_in_all_specs_lists_counts_per_spec(two_specs: Invoke) -> None:
    declined = two_specs("rm", "--task", "3", "--all-specs", input="n\n")
    assert declined.exit_code == 1
    assert "  chat-app: 2 artifacts\n  iot: 1 artifact\n" in declined.stderr
    assert "Delete 3 artifacts of task 3, every version? [y/N]" in declined.stderr
    assert as_json(two_specs("rm", "--task", "3", "--all-specs", "-y", "--json")) == {"deleted": 3}
    assert [m["task_id"] for m in as_json(two_specs("ls", "--json"))] == ["4"]
    assert two_specs("rm", "--spec", "iot", "--all-specs", "-y").exit_code == 2


# -- 3. one rule for destructive commands --------------------------------------------


def test_rm_dry_run_lists_and_deletes_nothing(two_specs: Invoke) -> None:
    dry = as_json(two_specs("rm", "--spec", "chat-app", "--task", "3", "--dry-run", "--json"))
    assert dry["dry_run"] is True
    assert dry["count"] == 2
    assert sorted(uri.rsplit("/", 1)[-1] for uri in dry["would_delete"]) == ["diff.txt", "log.txt"]
    plain = two_specs("rm", "--spec", "iot", "--dry-run")
    assert plain.exit_code == 0
    assert len(plain.stdout.splitlines()) == 2
    assert "would delete 2 artifacts" in plain.stderr
    assert len(as_json(two_specs("ls", "--json"))) == 4


def test_a_refusal_without_an_answer_ends_the_prompt_line_and_says_how_to_proceed(
    two_specs: Invoke,
) -> None:
    result = two_specs("rm", "iot/3/log", "--json", input="")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[-3].endswith("[y/N]: ")
    assert lines[-2] == "error: not confirmed; nothing deleted"
    assert lines[-1].startswith("hint: add --yes")
    assert result.stdout == ""


def test_prune_versions_asks_and_has_a_dry_run(tmp_path: Path) -> None:
    config = write_config(tmp_path / "v.yaml", tmp_path / "v", versioning_enabled=True)
    cli = make_invoke(config)
    for body in (b"1", b"2", b"3"):
        put(cli, "s", "1", "log", body)
    dry = as_json(cli("prune-versions", "s/1/log", "--keep", "1", "--dry-run", "--json"))
    assert [uri.rsplit("=", 1)[-1] for uri in dry["would_delete"]] == ["1", "2"]
    refused = cli("prune-versions", "s/1/log", input="")
    assert refused.exit_code == 1
    assert "?version=1" in refused.stderr
    assert "Delete 2 old versions" in refused.stderr
    assert len(as_json(cli("versions", "s/1/log", "--json"))) == 3
    done = as_json(cli("prune-versions", "s/1/log", "--json", input="y\n"))
    assert done["deleted"] == 2


def test_cleanup_asks_unless_yes(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", tmp_path / "c", retention_policy={"log": 0})
    cli = make_invoke(config)
    put(cli, "s", "1", "log", b"old")
    refused = cli("cleanup", input="")
    assert refused.exit_code == 1
    assert "  s: 1 version" in refused.stderr
    assert "Delete 1 expired artifact version" in refused.stderr
    assert len(as_json(cli("ls", "--json"))) == 1
    assert as_json(cli("cleanup", "--yes", "--json"))["count"] == 1


def test_repair_dry_run_and_prompt(cli: Invoke, base: Path) -> None:
    put(cli, "s", "1", "log", b"x")
    orphan = base / "s" / "1" / "log.txt.v000009.0123456789abcdef.raw"
    orphan.write_bytes(b"left behind")
    os.utime(orphan, (1_000_000_000, 1_000_000_000))
    dry = as_json(cli("repair", "--dry-run", "--json"))
    assert dry["would_delete"] == ["s/1/log.txt.v000009.0123456789abcdef.raw"]
    assert dry["indexed"] == 0
    assert orphan.exists()
    refused = cli("repair", input="n\n")
    assert refused.exit_code == 1
    assert "s/1/log.txt.v000009.0123456789abcdef.raw" in refused.stderr
    assert orphan.exists()
    assert cli("repair", input="y\n").exit_code == 0
    assert not orphan.exists()


# -- 11. repair and verify name what they cannot fix ---------------------------------


def test_repair_reports_missing_and_unreadable_artifacts_with_the_fix(
    cli: Invoke, base: Path
) -> None:
    put(cli, "s", "1", "log", b"x")
    put(cli, "s", "2", "log", b"y")
    for stored in (base / "s" / "1").glob("log.txt.v*.raw"):
        stored.unlink()
    record = next((base / "s" / "2").glob("*.meta.json"))
    record.write_text("{not json", encoding="utf-8")
    objects_of_2 = sorted(p.name for p in (base / "s" / "2").iterdir())
    result = cli("repair", "--yes", "--older-than", "0s")
    assert result.exit_code == 1
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2
    assert "s/1/log.txt: stored object is missing" in warnings[0]
    assert f"necrocode-artifacts rm '{base.as_uri()}/s/1/log.txt'" in warnings[0]
    assert "s/2/log.txt: record cannot be read" in warnings[1]
    assert "need attention" in result.stderr.splitlines()[-1]
    # The bytes of the unreadable record are never taken for an orphan.
    assert sorted(p.name for p in (base / "s" / "2").iterdir()) == objects_of_2


def test_verify_reasons_do_not_repeat_the_uri(cli: Invoke, base: Path) -> None:
    uri = put(cli, "s", "1", "log", b"hello")
    stored = next((base / "s" / "1").glob("log.txt.v*.raw"))
    stored.write_bytes(b"HELLO")
    result = cli("verify")
    assert result.exit_code == 1
    row = next(line for line in result.stdout.splitlines() if line.startswith("corrupted"))
    _status, shown_uri, reason = row.split("\t")
    assert shown_uri == uri
    assert uri not in reason
    assert "checksum mismatch" in reason


# -- 7. newest first, sorting, paging ------------------------------------------------


@pytest.fixture
def five(cli: Invoke) -> tuple[Invoke, list[str]]:
    """Five artifacts, uploaded in this order, with growing sizes."""
    uris = [put(cli, "s", str(n), "log", b"x" * (10 * n + 1)) for n in range(1, 6)]
    return cli, uris


def uris_of(result: Result) -> list[str]:
    assert result.exit_code == 0, result.stderr
    return [line.split("\t")[0] for line in result.stdout.splitlines()]


def test_ls_lists_newest_first_and_reverse_gives_oldest_first(
    five: tuple[Invoke, list[str]],
) -> None:
    cli, uris = five
    assert uris_of(cli("ls")) == uris[::-1]
    assert uris_of(cli("ls", "--reverse")) == uris
    assert uris_of(cli("ls", "--limit", "2")) == uris[:-3:-1]  # the newest two
    assert uris_of(cli("ls", "--sort", "size", "--limit", "1")) == [uris[-1]]  # the largest
    assert uris_of(cli("ls", "--sort", "name", "-r")) == uris[::-1]


def test_ls_pages_with_a_cursor(five: tuple[Invoke, list[str]]) -> None:
    cli, uris = five
    seen: list[str] = []
    args = ["ls", "--limit", "2"]
    for _ in range(5):
        result = cli(*args)
        seen += uris_of(result)
        hint = [line for line in result.stderr.splitlines() if line.startswith("next page: ")]
        if not hint:
            break
        args = ["ls", "--limit", "2", "--cursor", hint[0].split()[-1]]
    assert seen == uris[::-1]
    assert cli("ls", "--cursor", "nonsense").exit_code == 2
    cursor = next(
        line.split()[-1]
        for line in cli("ls", "--limit", "1").stderr.splitlines()
        if line.startswith("next page: ")
    )
    wrong_order = cli("ls", "--limit", "1", "--reverse", "--cursor", cursor)
    assert wrong_order.exit_code == 2
    assert "cursor belongs to" in error_line(wrong_order)


def test_the_library_pages_and_iterates_lazily(tmp_path: Path) -> None:
    from necrocode.artifact_store import ArtifactStore, InvalidInputError

    with ArtifactStore({"base_path": str(tmp_path / "lib"), "durable_writes": False}) as store:
        uris = [store.upload(str(n), "s", "log", b"x" * n) for n in range(1, 8)]
        assert [m.uri for m in store.search()] == uris
        assert [m.uri for m in store.search(reverse=True, limit=3)] == uris[:-4:-1]
        page = store.search_page(limit=3)
        assert [m.uri for m in page.items] == uris[:3] and page.next_cursor
        rest = store.search_page(limit=10, cursor=page.next_cursor)
        assert [m.uri for m in rest.items] == uris[3:] and rest.next_cursor is None
        lazy = store.iter_search(sort="size", reverse=True, page_size=2)
        assert next(lazy).uri == uris[-1]
        assert [m.uri for m in lazy] == uris[-2::-1]
        with pytest.raises(InvalidInputError):
            store.search(sort="colour")  # type: ignore[arg-type]


# -- 8. one vocabulary for sizes -----------------------------------------------------


def test_size_means_original_bytes_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = make_invoke(write_config(tmp_path / "gz.yaml", tmp_path / "gz"))  # gzip on
    text = b"all work and no play " * 500
    put(cli, "s", "1", "log", text)
    meta = as_json(cli("info", "s/1/log", "--json"))
    assert meta["size"] == meta["original_size"] == len(text)
    assert 0 < meta["stored_size"] < len(text) // 10
    fields = dict(line.split("\t", 1) for line in cli("info", "s/1/log").stdout.splitlines())
    assert fields["size"] == f"10.3 KiB ({len(text)} bytes)"
    assert fields["stored size"].endswith(f"({meta['stored_size']} bytes, gzip)")
    row = cli("ls").stdout.rstrip("\n").split("\t")
    assert row[5:7] == [str(len(text)), str(meta["stored_size"])]
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    table = cli("ls").stdout
    assert "SIZE" in table and "STORED" in table and "10.3 KiB" in table
    assert "VER" not in table  # versioning is off: no version numbers to see


# -- 10. versions without shell quoting ----------------------------------------------


def test_ver_selects_a_version_and_versions_names_each(tmp_path: Path) -> None:
    cli = make_invoke(write_config(tmp_path / "v.yaml", tmp_path / "v", versioning_enabled=True))
    for body in (b"one\n", b"two\n", b"three\n"):
        uri = put(cli, "s", "1", "log", body)
    assert cli("download", "s/1/log", "--ver", "2").stdout_bytes == b"two\n"
    assert as_json(cli("info", "s/1/log", "--ver", "1", "--json"))["version"] == 1
    assert cli("download", "s/1/log?version=2", "--ver", "3").exit_code == 2
    piped = cli("versions", "s/1/log").stdout.splitlines()
    assert [line.split("\t")[0] for line in piped] == [f"{uri}?version={n}" for n in (1, 2, 3)]
    first = piped[0].split("\t")[0]
    assert cli("download", first).stdout_bytes == b"one\n"
    tagged = as_json(cli("tag", "add", "s/1/log", "old", "--ver", "1", "--json"))
    assert (tagged["version"], tagged["tags"]) == (1, ["old"])
    fields = dict(line.split("\t", 1) for line in cli("info", "s/1/log").stdout.splitlines())
    assert fields["version"] == "3"


def test_without_versioning_no_changing_version_number_is_shown(cli: Invoke) -> None:
    for body in (b"a", b"b"):
        put(cli, "s", "1", "log", body)
    fields = dict(line.split("\t", 1) for line in cli("info", "s/1/log").stdout.splitlines())
    assert "version" not in fields


# -- 9. quota messages ---------------------------------------------------------------


def test_every_upload_above_the_threshold_warns_and_a_full_store_says_what_to_do(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path / "q.yaml",
        tmp_path / "q",
        compression_enabled=False,
        storage_quota={"max_size_gb": 10_000 / 2**30, "warn_threshold": 0.8},
    )
    args = ("-c", str(config), "upload", "-", "--type", "log", "-s", "big")
    assert script(*args, "-t", "1", stdin=b"x" * 8_200, home=tmp_path).stderr.startswith(
        b"warning: storage usage is above 80% of the quota: 8.0 KiB of 9.8 KiB (82.0%)"
    )
    # The next run (its own process) at 86 % warns again.
    again = script(*args, "-t", "2", stdin=b"y" * 400, home=tmp_path)
    assert again.returncode == 0
    line = again.stderr.decode().strip()
    assert line.startswith("warning: storage usage is above 80% of the quota: 8.4 KiB")
    assert "'necrocode-artifacts cleanup --dry-run'" in line
    assert "largest specs: big 8.4 KiB" in line
    full = script(*args, "-t", "3", stdin=b"z" * 4_000, home=tmp_path)
    assert full.returncode == 1
    error = full.stderr.decode().strip().splitlines()[-1]
    assert error.startswith("error: storage quota exceeded: storing ")
    assert "(3.9 KiB) would use 12.3 KiB of 9.8 KiB" in error
    assert "cleanup --dry-run" in error and "raise storage_quota.max_size_gb" in error


# -- 13. several artifacts in one command --------------------------------------------


def test_upload_several_files_or_a_folder_and_download_a_whole_task(
    cli: Invoke, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "change.patch").write_bytes(DIFF)
    (out / "run.log").write_bytes(b"log line\n")
    (out / "junit.xml").write_bytes(b"<testsuite tests='1'/>")
    (out / ".hidden").write_bytes(b"not this")
    uploaded = as_json(cli("upload", str(out), "-s", "chat-app", "-t", "1.1", "--json"))
    assert sorted(m["type"] for m in uploaded) == ["diff", "log", "test"]
    single = cli("upload", str(out / "run.log"), "-s", "chat-app", "-t", "1.2", "--json")
    assert as_json(single)["type"] == "log"  # one file: one object, as before
    pair = cli("upload", str(out / "change.patch"), str(out / "run.log"), "-s", "iot", "-t", "2")
    assert len(uris_of(pair)) == 2
    review = tmp_path / "review"
    got = cli("download", "--spec", "chat-app", "--task", "1.1", "-o", str(review))
    assert got.exit_code == 0, got.stderr
    assert sorted(p.name for p in review.iterdir()) == ["diff.txt", "log.txt", "test-result.json"]
    assert (review / "diff.txt").read_bytes() == DIFF
    assert "wrote 3 artifacts" in got.stderr
    nothing = cli("download", "--spec", "chat-app", "--task", "9", "-o", str(tmp_path / "x"))
    assert nothing.exit_code == 1
    assert not (tmp_path / "x").exists()
    assert cli("download", "--spec", "chat-app", "--task", "1.1").exit_code == 2


def test_bulk_upload_refuses_unclear_arguments_before_storing_anything(
    cli: Invoke, tmp_path: Path
) -> None:
    (tmp_path / "a.log").write_bytes(b"a")
    (tmp_path / "b.log").write_bytes(b"b")
    (tmp_path / "notes.txt").write_bytes(b"?")
    for args, needle in (
        ((str(tmp_path / "a.log"), str(tmp_path / "b.log")), "would both be the task's log"),
        ((str(tmp_path / "notes.txt"),), "give --type"),
        ((str(tmp_path / "a.log"), str(tmp_path / "notes.txt")), "cannot tell its type"),
        ((str(tmp_path / "a.log"), "--type", "log", str(tmp_path / "b.log")), "one file"),
        (("-", str(tmp_path / "a.log")), "stdin"),
        ((str(tmp_path / "a.log"), str(tmp_path / "gone.diff")), "not a readable file"),
    ):
        result = cli("upload", *args, "-s", "s", "-t", "1")
        assert result.exit_code == 2, args
        assert needle in error_line(result)
    assert cli("ls").stdout == ""
    typed = cli("upload", str(tmp_path / "notes.txt"), "-s", "s", "-t", "1", "--type", "log")
    assert typed.exit_code == 0


# -- 14. smaller things --------------------------------------------------------------


def test_empty_stdin_is_refused_unless_allowed(cli: Invoke) -> None:
    refused = cli("upload", "-", "-s", "s", "-t", "1", "--type", "log", input=b"")
    assert refused.exit_code == 2
    assert "stdin is empty" in error_line(refused)
    assert cli("ls").stdout == ""
    allowed = cli("upload", "-", "-s", "s", "-t", "1", "--type", "log", "--allow-empty", input=b"")
    assert allowed.exit_code == 0
    assert as_json(cli("info", "s/1/log", "--json"))["size"] == 0


def test_export_of_nothing_fails_and_writes_no_zip(cli: Invoke, tmp_path: Path) -> None:
    target = tmp_path / "x.zip"
    result = cli("export", "--spec", "nosuch", "-o", str(target))
    assert result.exit_code == 1
    assert "no artifacts match --spec nosuch; nothing exported" in error_line(result)
    assert not target.exists()


def test_every_command_shows_an_example() -> None:
    import typer.main

    runner = CliRunner()
    group = typer.main.get_command(app)
    leaves = [p for p in _command_paths(group) if p and not _is_group(group, p)]
    assert len(leaves) >= 20
    for path in leaves:
        text = runner.invoke(app, [*path, "--help"]).stdout
        assert "Example" in text, path
        assert "  necrocode-artifacts " in text.split("Example", 1)[1], path


def _is_group(group: Any, path: tuple[str, ...]) -> bool:
    command = group
    for name in path:
        command = command.commands[name]
    return bool(getattr(command, "commands", None))


# -- non-TTY behaviour, through the installed entry point --------------------------


def test_a_script_session_through_pipes(tmp_path: Path) -> None:
    config = write_config(tmp_path / "p.yaml", tmp_path / "p")
    run = ("-c", str(config))
    assert script(*run, "init", home=tmp_path).returncode == 0
    up = script(
        *run, "upload", "-", "-s", "s", "-t", "1", "--type", "log", stdin=b"x\n", home=tmp_path
    )
    assert up.returncode == 0 and up.stderr == b""
    listed = script(*run, "ls", home=tmp_path)
    assert listed.stdout.decode().split("\t")[0] == up.stdout.decode().strip()
    assert b"\x1b[" not in listed.stdout + listed.stderr  # no colours, no table borders
    refused = script(*run, "rm", "s/1/log", home=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.decode().splitlines()[-2:] == [
        "error: not confirmed; nothing deleted",
        "hint: add --yes to delete without asking, or --dry-run to list what would go",
    ]
    gone = script(*run, "rm", "s/1/log", "--yes", home=tmp_path)
    assert gone.returncode == 0 and gone.stderr == b"deleted 1 artifact\n"


def test_ctrl_c_during_a_command_exits_130_in_one_line(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from necrocode.artifact_store import ArtifactStore

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ArtifactStore, "search_page", interrupted)
    result = cli("ls")
    assert result.exit_code == 130
    assert result.stderr.strip() == "error: interrupted"
