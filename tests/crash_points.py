"""A child process that runs one store operation and SIGKILLs itself at a chosen step.

``python -m tests.crash_points <base> <versioning> <operation> <uri> <kill_at>``:
the ``kill_at``-th mutating step (a backend write or delete, an index write)
kills the process just before it runs, so a parent can check every crash point
of an operation in turn. Exit code 0 means the operation finished before that
step came.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
from necrocode.artifact_store.backends.filesystem import FilesystemBackend
from necrocode.artifact_store.index.intents import IntentLog
from necrocode.artifact_store.index.sqlite import SQLiteIndex
from necrocode.artifact_store.models import utc_now

STEPS: list[tuple[type[Any], str]] = [
    (FilesystemBackend, "upload"),
    (FilesystemBackend, "upload_after"),
    (FilesystemBackend, "stage"),
    (FilesystemBackend, "delete"),
    (FilesystemBackend, "delete_many"),
    (SQLiteIndex, "put"),
    # ``remove`` is ``remove_many`` of one artifact.
    (SQLiteIndex, "remove_many"),
    (SQLiteIndex, "replace_all"),
    (IntentLog, "begin_batch"),
    (IntentLog, "end_batch"),
]


def arm(kill_at: int) -> None:
    """Make the ``kill_at``-th mutating step SIGKILL this process."""
    count = [0]

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return method(*args, **kwargs)

        return counted

    for owner, name in STEPS:
        setattr(owner, name, wrap(getattr(owner, name)))


def run(base: str, versioning: bool, operation: str, uri: str) -> None:
    """Run ``operation`` on ``uri`` in the store at ``base``."""
    config = ArtifactStoreConfig(base_path=Path(base), versioning_enabled=versioning)
    with ArtifactStore(config) as store:
        if operation == "delete":
            store.delete(uri)
        elif operation == "delete_version":
            store.delete(store.get_all_versions(uri)[0].version_uri)
        elif operation == "prune":
            store.delete_old_versions(uri, keep=1)
        elif operation == "cleanup":
            store.cleanup_expired(now=utc_now() + timedelta(days=3650))
        elif operation == "replace":
            key_parts = uri.removeprefix(store.root_uri + "/").split("/")
            store.upload(key_parts[1], key_parts[0], "diff", b"replacement")
        elif operation == "repair":
            store.repair(older_than=timedelta(0))
        else:
            raise SystemExit(f"unknown operation {operation}")


if __name__ == "__main__":
    base_arg, versioning_arg, operation_arg, uri_arg, kill_arg = sys.argv[1:6]
    arm(int(kill_arg))
    run(base_arg, versioning_arg == "1", operation_arg, uri_arg)
