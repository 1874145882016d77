"""Several artifacts in one command: which files ``upload`` takes, where ``download`` writes.

``upload a.diff run.log report.xml -s S -t T`` (or ``upload DIR``) stores each
file as the artifact its name says: the stored names (``diff.txt``,
``log.txt``, ``test-result.json``) and the usual extensions (``.diff``,
``.patch``; ``.log``; ``.xml``, ``.json``) are understood. ``--type`` names the
type of a single file whose name says nothing. Everything is checked before
the first byte is stored, so a bad argument uploads nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..models import ArtifactType

__all__ = ["collect_uploads", "infer_type"]

_BY_SUFFIX = {
    ".diff": ArtifactType.DIFF,
    ".patch": ArtifactType.DIFF,
    ".log": ArtifactType.LOG,
    ".xml": ArtifactType.TEST_RESULT,
    ".json": ArtifactType.TEST_RESULT,
}


def infer_type(path: Path) -> ArtifactType | None:
    """The artifact type a file name implies, or ``None``."""
    try:
        return ArtifactType.from_filename(path.name)
    except ValueError:
        return _BY_SUFFIX.get(path.suffix.lower())


def collect_uploads(
    sources: list[str], artifact_type: ArtifactType | None
) -> list[tuple[str, ArtifactType]]:
    """``(source, type)`` for every artifact to store; ``typer.BadParameter`` if unclear.

    A source is a file, a folder (its files, not hidden, not recursive) or
    ``-`` (stdin, alone, with ``--type``).
    """
    if "-" in sources:
        if len(sources) > 1:
            raise typer.BadParameter("- (stdin) cannot be mixed with files", param_hint="FILE")
        if artifact_type is None:
            raise typer.BadParameter("stdin needs --type diff|log|test", param_hint="'--type'")
        return [("-", artifact_type)]
    files: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not inside:
                raise typer.BadParameter(f"{source}: folder has no files", param_hint="FILE")
            files += inside
        else:
            files.append(path)
    if len(files) > 1:  # nothing is stored unless every file can be read
        for path in files:
            if not path.is_file() or not os.access(path, os.R_OK):
                raise typer.BadParameter(f"{path}: not a readable file", param_hint="FILE")
    if len(files) == 1:
        kind = artifact_type or infer_type(files[0])
        if kind is None:
            raise typer.BadParameter(
                f"{files[0].name}: cannot tell its type from the name; give --type diff|log|test",
                param_hint="'--type'",
            )
        return [(str(files[0]), kind)]
    if artifact_type is not None:
        raise typer.BadParameter(
            "--type goes with one file; several files are typed by their names",
            param_hint="'--type'",
        )
    chosen: dict[ArtifactType, Path] = {}
    for path in files:
        kind = infer_type(path)
        if kind is None:
            raise typer.BadParameter(
                f"{path}: cannot tell its type from the name (.diff/.patch, .log, .xml/.json)",
                param_hint="FILE",
            )
        if kind in chosen:
            raise typer.BadParameter(
                f"{chosen[kind]} and {path} would both be the task's {kind.value}",
                param_hint="FILE",
            )
        chosen[kind] = path
    return [(str(path), kind) for kind, path in chosen.items()]
