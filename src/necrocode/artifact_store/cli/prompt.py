"""One rule for every destructive command: say what goes, ask, or refuse clearly.

``rm``, ``prune-versions``, ``cleanup`` and ``repair`` all take ``--dry-run``
(list what would go, change nothing; JSON key ``would_delete``) and ``--yes``
(do not ask). Without ``--yes`` they print what will go on stderr and ask
``... [y/N]`` on stderr, reading the answer from stdin. No answer (a script,
cron, an empty pipe) or anything but yes deletes nothing and exits 1 with the
error on one line and, on the next, how to proceed.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Annotated

import typer

from .output import Output, plural

__all__ = ["DryRun", "Yes", "confirm", "per_spec_summary"]

DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Only list what would be deleted; change nothing.")
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
#: Items named in a prompt before the rest are only counted.
MAX_LISTED = 10
REFUSAL_HINT = "hint: add --yes to delete without asking, or --dry-run to list what would go"


def per_spec_summary(specs: Iterable[str], noun: str = "artifact") -> list[str]:
    """``["chat-app: 2 artifacts", "iot: 1 artifact"]`` from the spec of each item."""
    counts = Counter(specs)
    return [f"  {spec}: {plural(count, noun)}" for spec, count in sorted(counts.items())]


def listed(items: Sequence[str]) -> list[str]:
    """Up to :data:`MAX_LISTED` items, one per line, then how many more."""
    lines = [f"  {item}" for item in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        lines.append(f"  ... and {len(items) - MAX_LISTED} more")
    return lines


def confirm(out: Output, question: str, details: Sequence[str], *, yes: bool) -> None:
    """Return if the user agrees (or ``yes``); otherwise refuse with exit code 1."""
    if yes:
        return
    for line in details:
        sys.stderr.write(line + "\n")
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        sys.stderr.write("\n")  # no answer at all: end the prompt's line first
    if answer.strip().lower() in ("y", "yes"):
        return
    out.error("not confirmed; nothing deleted")
    sys.stderr.write(REFUSAL_HINT + "\n")
    raise typer.Exit(1)
