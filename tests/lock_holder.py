"""A separate process that holds an artifact's lock until told to let go (or killed)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from necrocode.artifact_store import ArtifactStoreConfig

from .conftest import subprocess_env

_HOLD = """
import sys
from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig
store = ArtifactStore(ArtifactStoreConfig.model_validate_json(sys.argv[1]))
with store.locks.hold(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextmanager
def lock_held_elsewhere(config: ArtifactStoreConfig, name: str) -> Iterator[subprocess.Popen[str]]:
    """Hold the lock of ``name`` (an artifact's ``key.path``) in another process.

    Returns once the lock is held; leaving the block releases it (and ends the
    process) unless the test killed the process already.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, config.model_dump_json(), name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line == "held", f"lock holder failed to start (exit {process.poll()})"
        yield process
    finally:
        if process.stdin is not None:
            with suppress(BrokenPipeError):
                process.stdin.close()  # end of input: the holder lets go and exits
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
