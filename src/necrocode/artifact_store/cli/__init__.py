"""The command line, ``necrocode-artifacts``: a typer app over :class:`~..ArtifactStore`.

:mod:`.commands` holds the app and the per-artifact commands, :mod:`.admin` the
store-wide ones, :mod:`.serve` the HTTP service's; :mod:`.runtime` opens the store
and maps errors to exit codes, :mod:`.output` prints tables and JSON.
"""

from __future__ import annotations

from .commands import app, main

__all__ = ["app", "main"]
