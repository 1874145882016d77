"""Configuration discovery: which file applies, which environment overrides, and why.

The configuration file is the first of:

1. the path given explicitly (the command line's ``--config PATH``);
2. the path in the environment variable ``NECROCODE_ARTIFACT_STORE_CONFIG``;
3. ``~/.necrocode/config/artifact-store.yaml``, if it exists;
4. none: the built-in defaults (a filesystem store under ``~/.necrocode/artifacts``).

An explicitly named file (1 or 2) must exist. Then every single setting can be
overridden by an environment variable ``NECROCODE_ARTIFACT_STORE_<KEY>``, nested
keys joined by a double underscore (``NECROCODE_ARTIFACT_STORE_RETENTION_POLICY__DIFF=10``).
Values are read as YAML scalars (``true``, ``12``, ``0.5``, ``null``); a text
setting keeps the text as written. The result is validated like a file, and a
problem is reported with the file or variable it came from, the key and the
reason. :class:`ResolvedConfig` remembers where each effective value came from.
"""

from __future__ import annotations

import difflib
import os
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from .config import (
    DEFAULT_CONFIG_PATH,
    FLAT_BACKEND_KEYS,
    ArtifactStoreConfig,
    read_yaml_file,
    unwrap_settings,
    validation_problems,
)
from .exceptions import ConfigError

__all__ = [
    "CONFIG_PATH_ENV",
    "ENV_PREFIX",
    "ConfigOrigin",
    "ResolvedConfig",
    "Setting",
    "SourceKind",
    "env_var_for",
    "find_config_file",
    "load_config",
    "resolve_config",
    "setting_defaults",
]

ENV_PREFIX = "NECROCODE_ARTIFACT_STORE_"
#: Names the configuration file; not a setting itself.
CONFIG_PATH_ENV = f"{ENV_PREFIX}CONFIG"
#: Variables of the command line's remote mode (``--server``, ``--token``): not settings.
CLIENT_ENV = frozenset({f"{ENV_PREFIX}SERVER", f"{ENV_PREFIX}TOKEN"})
#: Joins a section and its key in an environment variable name.
NESTED_SEPARATOR = "__"

SourceKind = Literal["default", "file", "env"]
ConfigOrigin = Literal["option", "env", "default-location", "none"]


@dataclass(frozen=True, slots=True)
class Setting:
    """One effective setting: dotted key, value (plain data), and where it came from.

    ``source`` is ``"default"``, ``"file"`` or ``"env"``; ``origin`` is the file
    path or the environment variable name (``None`` for a default).
    """

    key: str
    value: Any
    source: SourceKind
    origin: str | None
    env_var: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "key": self.key,
            "value": self.value,
            "source": self.source,
            "origin": self.origin,
            "env_var": self.env_var,
        }


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """The validated configuration plus the story of how it was put together."""

    config: ArtifactStoreConfig
    config_file: Path | None
    config_file_origin: ConfigOrigin
    settings: tuple[Setting, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output (``config show --json``)."""
        return {
            "config_file": None if self.config_file is None else str(self.config_file),
            "config_file_origin": self.config_file_origin,
            "effective_state_dir": str(self.config.effective_state_dir),
            "settings": [setting.to_dict() for setting in self.settings],
        }


def env_var_for(key: str) -> str:
    """The environment variable that overrides the dotted ``key``."""
    return ENV_PREFIX + key.replace(".", NESTED_SEPARATOR).upper()


def setting_defaults() -> dict[str, Any]:
    """Every dotted setting key with its built-in default, in declaration order."""
    return _flatten(ArtifactStoreConfig().to_dict())


def find_config_file(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Path | None, ConfigOrigin]:
    """The configuration file to read and how it was chosen (see the module docstring)."""
    env = os.environ if environ is None else environ
    if path is not None and str(path) != "":
        return _expand(Path(path), env), "option"
    named = env.get(CONFIG_PATH_ENV, "")
    if named:
        return _expand(Path(named), env), "env"
    default = _expand(DEFAULT_CONFIG_PATH, env)
    if default.exists():
        return default, "default-location"
    return None, "none"


def resolve_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> ResolvedConfig:
    """Find the file, apply environment overrides, validate; remember every value's source."""
    env = os.environ if environ is None else environ
    file, origin = find_config_file(path, env)
    data: dict[str, Any] = {}
    sources: dict[str, tuple[SourceKind, str]] = {}
    if file is not None:
        data = _copy_sections(unwrap_settings(read_yaml_file(file), source=str(file)))
        for key in _flatten(data):
            sources[key] = ("file", str(file))
    for name, key, value in _env_overrides(env):
        section, _, leaf = key.partition(".")
        if leaf:
            target = data.setdefault(section, {})
            if not isinstance(target, dict):
                continue  # the file's own value for the section is reported as invalid
            target[leaf] = value
        else:
            data[key] = value
        sources[key] = ("env", name)
    for flat, (_, leaf) in FLAT_BACKEND_KEYS.items():
        if flat in sources:  # an old key: its value is reported under the new one
            sources[f"backend.{leaf}"] = sources[flat]
    config = _validate(data, sources, file)
    settings = tuple(
        Setting(
            key=key,
            value=value,
            source=sources[key][0] if key in sources else "default",
            origin=sources[key][1] if key in sources else None,
            env_var=env_var_for(key),
        )
        for key, value in _flatten(config.to_dict()).items()
    )
    return ResolvedConfig(config, file, origin, settings)


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> ArtifactStoreConfig:
    """The effective configuration (see :func:`resolve_config`)."""
    return resolve_config(path, environ).config


# -- helpers -------------------------------------------------------------------------


def _expand(path: Path, env: Mapping[str, str]) -> Path:
    """``~`` expanded against ``env``'s HOME (so a given environment is honoured)."""
    text = str(path)
    home = env.get("HOME")
    if home and (text == "~" or text.startswith("~/")):
        return Path(home + text[1:])
    return path.expanduser()


def _copy_sections(data: dict[str, Any]) -> dict[str, Any]:
    """A copy whose nested sections may be changed without touching the original."""
    return {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"section.key": value}``, in their order."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _fields() -> dict[str, Any]:
    """Dotted setting key -> its type annotation, for every leaf setting.

    The ``backend`` section offers the keys of every backend's settings class
    (its ``backend_type`` is the top-level one); the old flat keys of the
    backends are still accepted (they warn when validated).
    """
    found: dict[str, Any] = {}
    for name, info in ArtifactStoreConfig.model_fields.items():
        annotation = info.annotation
        sections = [arg for arg in get_args(annotation) if _is_model(arg)]
        if _is_model(annotation):
            sections = [annotation]
        if not sections:
            found[name] = annotation
        for section in sections:
            for leaf, leaf_info in section.model_fields.items():
                if leaf != "backend_type":
                    found.setdefault(f"{name}.{leaf}", leaf_info.annotation)
    for flat, (_, leaf) in FLAT_BACKEND_KEYS.items():
        found[flat] = found[f"backend.{leaf}"]
    return found


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, str, Any]]:
    """``(variable, dotted key, parsed value)`` for every override variable, sorted."""
    fields = _fields()
    sections = {key.partition(".")[0] for key in fields if "." in key}
    overrides = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_PATH_ENV or name in CLIENT_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower().replace(NESTED_SEPARATOR, ".")
        where = f"environment variable {name}"
        if key in sections:
            keys = ", ".join(env_var_for(k) for k in fields if k.startswith(f"{key}."))
            raise ConfigError(
                f"{where}: set the keys of '{key}' one by one: {keys}", key=key, source=where
            )
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean {env_var_for(close[0])}?" if close else "see docs/cli.md"
            raise ConfigError(f"{where}: unknown setting '{key}'; {hint}", key=key, source=where)
        overrides.append((name, key, _parse_value(env[name], fields[key], key, where)))
    return overrides


def _parse_value(raw: str, annotation: Any, key: str, where: str) -> Any:
    """A YAML scalar; text settings keep ``raw`` (so a bucket named ``1234`` stays text)."""
    try:
        value = yaml.safe_load(raw)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError(
            f"{where}: {key}: not a valid YAML value: {exc}", key=key, source=where
        ) from None
    if value is not None and not isinstance(value, str) and _accepts_text(annotation):
        return raw
    return value


def _accepts_text(annotation: Any) -> bool:
    if annotation in (str, Path):
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return all(isinstance(arg, str) for arg in get_args(annotation))
    if origin in (Union, types.UnionType):
        return any(_accepts_text(arg) for arg in get_args(annotation))
    return False


def _validate(
    data: dict[str, Any], sources: dict[str, tuple[SourceKind, str]], file: Path | None
) -> ArtifactStoreConfig:
    """Validate ``data``; blame each problem on the file or variable its key came from."""
    try:
        return ArtifactStoreConfig.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc)
    default_where = str(file) if file is not None else "configuration"

    def where_of(key: str) -> str:
        kind, origin = sources.get(key, ("default", ""))
        if kind == "env":
            return f"environment variable {origin}"
        return origin if kind == "file" else default_where

    first_key = next((key for key, _ in problems if key), "")
    where = where_of(first_key)
    parts = []
    for key, message in problems:
        blamed = where_of(key)
        note = f" (from {blamed})" if blamed != where else ""
        parts.append(f"{key}{note}: {message}" if key else message)
    raise ConfigError(
        f"{where}: invalid configuration: {'; '.join(parts)}", key=first_key or None, source=where
    )
