"""``python -m necrocode.artifact_store``: the same as the ``necrocode-artifacts`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
