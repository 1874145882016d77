"""Configuration discovery: file order, environment overrides, sources, and clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from necrocode.artifact_store import ArtifactStoreConfig, ConfigError
from necrocode.artifact_store.settings import (
    CONFIG_PATH_ENV,
    env_var_for,
    find_config_file,
    load_config,
    resolve_config,
    setting_defaults,
)


def write_yaml(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def test_no_file_gives_the_built_in_defaults_under_home(home: Path) -> None:
    resolved = resolve_config(environ={"HOME": str(home)})
    assert resolved.config_file is None
    assert resolved.config_file_origin == "none"
    assert resolved.config == ArtifactStoreConfig()
    assert {s.source for s in resolved.settings} == {"default"}
    assert set(setting_defaults()) == {s.key for s in resolved.settings}


def test_the_default_location_is_used_when_it_exists(home: Path) -> None:
    default = write_yaml(
        home / ".necrocode/config/artifact-store.yaml", {"artifact_store": {"compression_level": 3}}
    )
    resolved = resolve_config(environ={"HOME": str(home)})
    assert resolved.config_file == default
    assert resolved.config_file_origin == "default-location"
    assert resolved.config.compression_level == 3


def test_discovery_order_option_then_env_then_default_location(home: Path, tmp_path: Path) -> None:
    write_yaml(home / ".necrocode/config/artifact-store.yaml", {"compression_level": 1})
    from_env = write_yaml(tmp_path / "env.yaml", {"compression_level": 2})
    from_option = write_yaml(tmp_path / "option.yaml", {"compression_level": 3})
    env = {"HOME": str(home), CONFIG_PATH_ENV: str(from_env)}

    assert load_config(environ=env).compression_level == 2
    assert find_config_file(environ=env) == (from_env, "env")
    assert load_config(from_option, environ=env).compression_level == 3
    assert find_config_file(from_option, environ=env) == (from_option, "option")


def test_tilde_is_expanded_in_the_config_path_and_in_paths(home: Path) -> None:
    write_yaml(home / "cfg.yaml", {"base_path": "~/store", "state_dir": "~/state"})
    env = {"HOME": str(home), CONFIG_PATH_ENV: "~/cfg.yaml"}
    resolved = resolve_config(environ=env)
    assert resolved.config_file == home / "cfg.yaml"
    assert resolved.config.base_path == Path("~/store").expanduser()
    assert resolved.config.state_dir == Path("~/state").expanduser()


@pytest.mark.parametrize("origin", ["option", "env"])
def test_an_explicitly_named_file_must_exist(home: Path, origin: str) -> None:
    missing = home / "nope.yaml"
    env = {"HOME": str(home)}
    if origin == "env":
        env[CONFIG_PATH_ENV] = str(missing)
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read") as caught:
        resolve_config(missing if origin == "option" else None, environ=env)
    assert caught.value.source == str(missing)


def test_environment_overrides_each_setting_and_records_its_source(
    home: Path, tmp_path: Path
) -> None:
    file = write_yaml(
        tmp_path / "c.yaml",
        {"artifact_store": {"retention_policy": {"diff": 5, "log": 6}, "compression_level": 4}},
    )
    env = {
        "HOME": str(home),
        "NECROCODE_ARTIFACT_STORE_RETENTION_POLICY__DIFF": "10",
        "NECROCODE_ARTIFACT_STORE_STORAGE_QUOTA__MAX_SIZE_GB": "null",
        "NECROCODE_ARTIFACT_STORE_VERSIONING_ENABLED": "true",
        "NECROCODE_ARTIFACT_STORE_LOCK_TIMEOUT": "2.5",
        "NECROCODE_ARTIFACT_STORE_BASE_PATH": "~/elsewhere",
    }
    resolved = resolve_config(file, environ=env)
    config = resolved.config
    assert config.retention_policy.diff == 10  # env beats the file
    assert config.retention_policy.log == 6  # the file's sibling key stays
    assert config.storage_quota.max_size_gb is None
    assert config.versioning_enabled is True
    assert config.lock_timeout == 2.5
    assert config.base_path == Path("~/elsewhere").expanduser()
    sources = {s.key: (s.source, s.origin) for s in resolved.settings}
    assert sources["retention_policy.diff"] == (
        "env",
        "NECROCODE_ARTIFACT_STORE_RETENTION_POLICY__DIFF",
    )
    assert sources["retention_policy.log"] == ("file", str(file))
    assert sources["compression_level"] == ("file", str(file))
    assert sources["retention_policy.test"] == ("default", None)
    assert resolved.to_dict()["config_file_origin"] == "option"


def test_text_settings_keep_the_text_as_written(home: Path) -> None:
    env = {
        "HOME": str(home),
        "NECROCODE_ARTIFACT_STORE_BACKEND_TYPE": "s3",
        "NECROCODE_ARTIFACT_STORE_BACKEND__BUCKET": "1234",  # YAML would read an integer
        "NECROCODE_ARTIFACT_STORE_BACKEND__PREFIX": "2026",
    }
    config = load_config(environ=env)
    assert (config.backend.bucket, config.backend.prefix) == ("1234", "2026")


def test_every_setting_has_a_working_environment_variable(home: Path) -> None:
    defaults = setting_defaults()
    env = {"HOME": str(home)}
    for key, value in defaults.items():
        env[env_var_for(key)] = (
            "''" if value == "" else yaml.safe_dump(value).removesuffix("\n...\n").strip()
        )
    resolved = resolve_config(environ=env)
    assert {s.key: s.value for s in resolved.settings} == defaults
    assert {s.source for s in resolved.settings} == {"env"}
    assert env_var_for("storage_quota.max_size_gb") == (
        "NECROCODE_ARTIFACT_STORE_STORAGE_QUOTA__MAX_SIZE_GB"
    )


@pytest.mark.parametrize(
    ("content", "key", "reason"),
    [
        ({"artifact_store": {"bogus_key": 1}}, "bogus_key", "unknown key"),
        ({"retention_policy": {"diff": "soon"}}, "retention_policy.diff", "valid integer"),
        ({"retention_policy": {"weekly": 3}}, "retention_policy.weekly", "unknown key"),
        ({"compression_level": 0}, "compression_level", "greater than or equal to 1"),
        ({"backend_type": "ftp"}, "backend_type", "'filesystem', 's3', 'gcs' or 'memory'"),
        ({"backend_type": "s3"}, "backend.bucket", "required when backend_type is 's3'"),
        ({"verify_checksum": "maybe"}, "verify_checksum", "valid boolean"),
    ],
)
def test_a_bad_file_names_the_file_the_key_and_the_reason(
    home: Path, tmp_path: Path, content: object, key: str, reason: str
) -> None:
    file = write_yaml(tmp_path / "bad.yaml", content)
    with pytest.raises(ConfigError) as caught:
        resolve_config(file, environ={"HOME": str(home)})
    message = str(caught.value)
    assert message.startswith(f"{file}: invalid configuration: ")
    assert f"{key}: " in message
    assert reason in message
    assert caught.value.key == key
    assert caught.value.source == str(file)


def test_a_file_that_is_not_a_mapping_or_not_yaml_is_refused(home: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"list.yaml: expected a mapping of settings, got list"):
        resolve_config(listing, environ={"HOME": str(home)})
    broken = tmp_path / "broken.yaml"
    broken.write_text("artifact_store: {base_path: [\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML"):
        resolve_config(broken, environ={"HOME": str(home)})


def test_a_bad_environment_value_names_the_variable(home: Path, tmp_path: Path) -> None:
    file = write_yaml(tmp_path / "c.yaml", {"compression_level": 4})
    name = "NECROCODE_ARTIFACT_STORE_RETENTION_POLICY__LOG"
    with pytest.raises(ConfigError) as caught:
        resolve_config(file, environ={"HOME": str(home), name: "-3"})
    assert str(caught.value).startswith(f"environment variable {name}: invalid configuration: ")
    assert "retention_policy.log: Input should be greater than or equal to 0" in str(caught.value)
    assert caught.value.source == f"environment variable {name}"


def test_problems_from_file_and_environment_are_each_attributed(home: Path, tmp_path: Path) -> None:
    file = write_yaml(tmp_path / "c.yaml", {"bogus": 1})
    name = "NECROCODE_ARTIFACT_STORE_COMPRESSION_LEVEL"
    with pytest.raises(ConfigError) as caught:
        resolve_config(file, environ={"HOME": str(home), name: "99"})
    assert str(caught.value) == (
        f"environment variable {name}: invalid configuration: compression_level: "
        f"Input should be less than or equal to 22; bogus (from {file}): unknown key"
    )


def test_unknown_environment_variables_are_refused_with_a_suggestion(home: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean NECROCODE_ARTIFACT_STORE_BACKEND_TYPE"):
        resolve_config(environ={"HOME": str(home), "NECROCODE_ARTIFACT_STORE_BACKEND_TYP": "s3"})
    with pytest.raises(ConfigError, match="RETENTION_POLICY__DIFF"):
        resolve_config(
            environ={"HOME": str(home), "NECROCODE_ARTIFACT_STORE_RETENTION_POLICY": "1"}
        )


def test_the_cli_reference_documents_every_setting_and_command() -> None:
    from typer.main import get_command

    from necrocode.artifact_store.cli import app

    docs = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    for key in setting_defaults():
        assert f"| `{key}` |" in docs, key
        assert env_var_for(key) in docs, key
    group: Any = get_command(app)
    for name, command in group.commands.items():
        assert f"`{name}" in docs or f"(alias `{name}`)" in docs, name
        for sub in getattr(command, "commands", {}):
            assert f"`{name} {sub}" in docs, f"{name} {sub}"
