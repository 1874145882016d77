"""What the command line prints, and where: data on stdout, everything else on stderr.

- ``--json``: one JSON document on stdout per command (the schemas are in docs/cli.md).
- A terminal: rich tables and key/value grids.
- Not a terminal (a pipe, a file): tab-separated lines without a header, so
  ``cut -f1`` gives URIs; no colours, no truncation.
- Notes ("deleted 3 artifacts") and progress bars go to stderr; ``--quiet``
  silences both, and progress is only drawn when stderr is a terminal.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..backends.base import MiB
from ..units import format_size

if TYPE_CHECKING:  # rich loads when something is printed through it, not at start-up
    from rich.console import Console

    from ..models import ArtifactMetadata

__all__ = [
    "TRANSFER_PROGRESS_MIN_BYTES",
    "Output",
    "ProgressUpdate",
    "format_size",
    "format_time",
    "plural",
    "print_artifacts",
]

#: Uploads and downloads smaller than this finish too fast for a progress bar to help.
TRANSFER_PROGRESS_MIN_BYTES = 4 * MiB

#: ``update(done, total)``: the callback shape of the store's progress parameters.
ProgressUpdate = Callable[[int, int], None]


def format_time(moment: datetime | None) -> str:
    """A timestamp in the local timezone, to the second, for tables."""
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


class Output:
    """Printing for one command invocation (see the module docstring)."""

    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet

    # No file given: rich writes to whatever sys.stdout/sys.stderr is at print
    # time, which is what test runners that swap the streams expect.
    @cached_property
    def out(self) -> Console:
        """The rich console on stdout (made on first use)."""
        from rich.console import Console  # noqa: PLC0415 - off the start-up path

        return Console(highlight=False, soft_wrap=True)

    @cached_property
    def err(self) -> Console:
        """The rich console on stderr (made on first use)."""
        from rich.console import Console  # noqa: PLC0415 - off the start-up path

        return Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def is_terminal(self) -> bool:
        """Whether stdout is a terminal (tables) or not (tab-separated lines)."""
        return _maybe_terminal(sys.stdout) and self.out.is_terminal

    @property
    def progress_enabled(self) -> bool:
        """Progress bars are drawn on stderr, only on a terminal and without ``--quiet``."""
        return not self.quiet and _maybe_terminal(sys.stderr) and self.err.is_terminal

    # -- data on stdout ---------------------------------------------------------------

    def json(self, data: Any) -> None:
        """Write ``data`` as one indented JSON document."""
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def line(self, text: str) -> None:
        """One plain line of data."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A table on a terminal; tab-separated rows (no header) otherwise."""
        if not self.is_terminal:
            for row in rows:
                self.line("\t".join(row))
            return
        from rich.markup import escape  # noqa: PLC0415 - off the start-up path
        from rich.table import Table  # noqa: PLC0415

        table = Table(show_edge=False, header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        self.out.print(table)

    def fields(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Key/value pairs: aligned on a terminal, ``key<TAB>value`` lines otherwise."""
        if not self.is_terminal:
            for key, value in pairs:
                self.line(f"{key}\t{value}")
            return
        from rich.markup import escape  # noqa: PLC0415 - off the start-up path
        from rich.table import Table  # noqa: PLC0415

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column(overflow="fold")
        for key, value in pairs:
            grid.add_row(escape(key), escape(value))
        self.out.print(grid)

    # -- messages on stderr -----------------------------------------------------------

    def note(self, text: str) -> None:
        """A short confirmation for people ("deleted 2 artifacts"); silent with ``--quiet``."""
        if not self.quiet:
            self._to_stderr(text)

    def warn(self, text: str) -> None:
        """One line ``warning: <text>`` on stderr (shown even with ``--quiet``)."""
        sys.stderr.write(f"warning: {' '.join(text.split())}\n")
        sys.stderr.flush()

    def error(self, text: str) -> None:
        """One line ``error: <text>`` (newlines folded so it stays one line)."""
        self._to_stderr(f"error: {' '.join(text.split())}", style="red")

    def _to_stderr(self, text: str, style: str | None = None) -> None:
        if not _maybe_terminal(sys.stderr):
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
            return
        from rich.markup import escape  # noqa: PLC0415 - off the start-up path

        self.err.print(escape(text), style=style, soft_wrap=True)

    # -- progress on stderr -----------------------------------------------------------

    @contextlib.contextmanager
    def progress(
        self, description: str, *, total: int | None = None, transfer: bool = False
    ) -> Iterator[ProgressUpdate | None]:
        """A progress bar, or ``None`` when progress is not shown.

        ``transfer`` shows bytes and speed instead of a count of items.
        """
        if not self.progress_enabled:
            yield None
            return
        from rich.progress import (  # noqa: PLC0415 - off the start-up path
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
        if transfer:
            columns += [DownloadColumn(), TransferSpeedColumn()]
        else:
            columns += [MofNCompleteColumn(), TaskProgressColumn()]
        columns.append(TimeRemainingColumn())
        with Progress(*columns, console=self.err, transient=True) as bar:
            task = bar.add_task(description, total=total)

            def update(done: int, new_total: int) -> None:
                bar.update(task, completed=done, total=new_total)

            yield update

    @contextlib.contextmanager
    def transfer(self, description: str, size: int) -> Iterator[ProgressUpdate | None]:
        """A bytes progress bar for transfers of at least ``TRANSFER_PROGRESS_MIN_BYTES``."""
        if size < TRANSFER_PROGRESS_MIN_BYTES:
            yield None
            return
        with self.progress(description, total=size, transfer=True) as update:
            yield update

    @contextlib.contextmanager
    def spinner(self, description: str) -> Iterator[None]:
        """A spinner for work whose length is unknown up front."""
        if not self.progress_enabled:
            yield
            return
        from rich.progress import Progress, SpinnerColumn, TextColumn  # noqa: PLC0415

        columns = (SpinnerColumn(), TextColumn("{task.description}"))
        with Progress(*columns, console=self.err, transient=True) as bar:
            bar.add_task(description, total=None)
            yield


#: Variables with which rich treats any stream as a terminal (see its Console.is_terminal).
_TERMINAL_OVERRIDES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def _maybe_terminal(stream: Any) -> bool:
    """False when ``stream`` surely is no terminal: then rich need not even be imported.

    Scripts and pipes, the common case for data, skip rich's import this way.
    """
    if any(name in os.environ for name in _TERMINAL_OVERRIDES):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False


def plural(count: int, noun: str) -> str:
    """``plural(1, "artifact")`` -> ``"1 artifact"``; 2 -> ``"2 artifacts"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


#: Columns of artifact lists on a terminal.
LIST_COLUMNS = ("ARTIFACT", "VER", "SIZE", "STORED", "CREATED", "TAGS")


def print_artifacts(
    out: Output,
    found: Sequence[ArtifactMetadata],
    *,
    show_versions: bool = True,
    per_version: bool = False,
) -> None:
    """The list shape shared by ls, versions and others (see docs/cli.md).

    JSON: an array of metadata objects. Terminal: a table, sizes in binary
    units (SIZE = bytes uploaded, STORED = bytes on disk); without versioning
    the VER column is left out, since the number only counts replacements.
    Otherwise one tab-separated line per artifact: uri (``per_version``: the
    URI of that version), spec, task, type, version, size, stored size,
    created (ISO 8601), tags (comma-separated).
    """
    if out.json_mode:
        out.json([meta.to_dict() for meta in found])
    elif out.is_terminal:
        rows = []
        for m in found:
            name = f"{m.spec_name}/{m.task_id}/{m.type.value}"
            row = [
                f"{name} --ver {m.version}" if per_version else name,
                str(m.version),
                format_size(m.size),
                format_size(m.stored_size),
                format_time(m.created_at),
                ", ".join(m.tags) + (" [pinned]" if m.pinned else ""),
            ]
            rows.append(row if show_versions else [row[0], *row[2:]])
        columns = LIST_COLUMNS if show_versions else tuple(c for c in LIST_COLUMNS if c != "VER")
        out.table(columns, rows)
    else:
        out.table(
            LIST_COLUMNS,
            [
                [
                    m.version_uri if per_version else m.uri,
                    m.spec_name,
                    m.task_id,
                    m.type.value,
                    str(m.version),
                    str(m.size),
                    str(m.stored_size),
                    m.created_at.isoformat(),
                    ",".join(m.tags),
                ]
                for m in found
            ],
        )
