"""Whether the configured store exists, and ``necrocode-artifacts init`` to create one.

A mistyped ``base_path`` must not look like an empty store that passes every
check: commands that read or change a store refuse one that does not exist with
:data:`EXIT_NO_STORE` and one line. ``init`` and ``upload`` create it. The
default location (``~/.necrocode/artifacts``) cannot be mistyped, so it is
created on first use, which keeps a fresh machine's first command working.

Only filesystem stores are checked: a cloud bucket that does not exist is
already an error of the backend, and an empty prefix is a valid empty store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import ArtifactStoreConfig

__all__ = ["EXIT_NO_STORE", "StoreMissing", "is_default_location", "store_exists"]

#: Exit code of a command run against a store that does not exist (restic uses 10 too).
EXIT_NO_STORE = 10


class StoreMissing(Exception):
    """The configuration names a filesystem store that does not exist."""

    def __init__(self, base_path: Path) -> None:
        super().__init__(
            f"no artifact store at {base_path} (create it with 'necrocode-artifacts init', "
            "or check --config and base_path)"
        )
        self.base_path = base_path


def is_default_location(config: ArtifactStoreConfig) -> bool:
    """Whether ``config`` uses the built-in filesystem location (created on first use)."""
    from ..config import DEFAULT_BASE_PATH  # noqa: PLC0415 - kept off the start-up path

    return config.base_path == DEFAULT_BASE_PATH.expanduser()


def store_exists(config: ArtifactStoreConfig) -> bool:
    """Whether the store ``config`` names has been created.

    A filesystem store exists once its folder holds the state folder every
    opened store makes (``.necrocode``), its index, or any metadata record.
    Cloud stores always "exist" here (see the module docstring).
    """
    if config.backend_type != "filesystem":
        return True
    base = config.base_path
    for path in (base, config.state_dir):
        if path is not None and path.exists() and not path.is_dir():
            return True  # not a folder: opening the store reports it as a ConfigError
    if not base.is_dir():
        return False
    from ..config import STATE_DIRNAME  # noqa: PLC0415 - kept off the start-up path

    if (base / STATE_DIRNAME).is_dir() or (config.effective_state_dir / "index.sqlite3").exists():
        return True
    return next(base.glob("*/*/*.meta.json"), None) is not None
