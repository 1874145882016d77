"""One "host" of a multi-host test: a separate process with its own state folder,
sharing the test's S3 bucket and PostgreSQL database.

Run as ``python -m tests.shared_host ACTION CONFIG_JSON [ARGS...]``; prints one
JSON document on stdout. Actions:

* ``upload SPEC COUNT SIZE``: upload COUNT distinct artifacts; report URIs and refusals.
* ``versions LABEL TASK COUNT``: upload COUNT versions of one artifact of spec ``shared``.
* ``hold SPEC TASK``: start an upload whose content never ends (holds the lock and a
  reservation) and print ``holding`` once its first bytes are reserved.
* ``loop SPEC SECONDS``: upload small artifacts for SECONDS; report URIs and errors.
* ``cleanup NOW_ISO``: run ``cleanup_expired(now=...)``; report what it deleted.
* ``cleanup-crash NOW_ISO``: the same, dying (exit 137) after the first folder's
  records are deleted and before its objects are.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from necrocode.artifact_store import ArtifactStore, ArtifactStoreError, StorageFullError


def _upload(store: ArtifactStore, spec: str, count: int, size: int) -> dict[str, Any]:
    uris, refused = [], 0
    for n in range(count):
        try:
            uris.append(store.upload(f"t{n}", spec, "log", bytes([n % 251]) * size))
        except StorageFullError:
            refused += 1
    return {"uris": uris, "refused": refused}


def _versions(store: ArtifactStore, spec: str, task: str, count: int) -> dict[str, Any]:
    """Upload COUNT versions; their content names the host (``spec`` here is its label)."""
    for n in range(count):
        store.upload(task, "shared", "diff", f"{spec} {n}\n".encode())
    return {"uploaded": count}


def _hold(store: ArtifactStore, spec: str, task: str) -> None:
    def endless() -> Iterator[bytes]:
        yield b"x" * 4096
        print("holding", flush=True)
        while True:
            time.sleep(1)
            yield b""

    store.upload(task, spec, "log", endless())


def _loop(store: ArtifactStore, spec: str, seconds: float) -> dict[str, Any]:
    uris, errors = [], []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        try:
            uris.append(store.upload(f"loop{n}", spec, "log", f"line {n}\n".encode()))
        except ArtifactStoreError as exc:
            errors.append(type(exc).__name__)
            time.sleep(0.05)
        n += 1
    return {"uris": uris, "errors": errors}


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.WARNING, format="host: %(name)s: %(message)s")
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    action, config, *args = argv
    with ArtifactStore(json.loads(config)) as store:
        if action == "upload":
            result = _upload(store, args[0], int(args[1]), int(args[2]))
        elif action == "versions":
            result = _versions(store, args[0], args[1], int(args[2]))
        elif action == "hold":
            _hold(store, args[0], args[1])
            return
        elif action == "loop":
            result = _loop(store, args[0], float(args[1]))
        elif action == "cleanup-crash":
            # Die like a SIGKILLed host between deleting records and deleting objects.
            real = store.backend.delete_many
            calls = []

            def dying(keys: Any) -> list[bool]:
                calls.append(keys)
                if len(calls) == 2:
                    os._exit(137)
                return real(keys)

            store.backend.delete_many = dying  # type: ignore[method-assign]
            store.cleanup_expired(now=datetime.fromisoformat(args[0]))
            result = {"survived": True}
        elif action == "cleanup":
            report = store.cleanup_expired(now=datetime.fromisoformat(args[0]))
            result = {"deleted": report.uris, "errors": report.errors}
        else:
            raise SystemExit(f"unknown action {action!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
