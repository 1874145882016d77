"""``python -m necrocode.artifact_store``: the same as the ``necrocode-artifacts`` command."""

from __future__ import annotations

import sys

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def main() -> None:
    """Entry point of the console script: the command line, Ctrl-C included.

    The command line is imported here, not at the top, so that a Ctrl-C while
    it loads ends the process with status 130 and no traceback.
    """
    try:
        from .cli.commands import main as cli_main  # noqa: PLC0415 - see the docstring

        cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("\nerror: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
