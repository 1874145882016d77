"""The diff viewer: changed files with +/- counts, unified and side-by-side views.

Diffs are read by :func:`~necrocode.artifact_store.content.diff.parse_diff`
while streaming from the store, one file at a time. The page stays light: a file
with more than :data:`COLLAPSE_LINES` changed lines is collapsed (listed, with a
link to show it alone), and once :data:`PAGE_LINES` lines are on the page the
remaining files are collapsed too.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import Request

from ...content.diff import DiffLine, FileDiff, Hunk, parse_diff
from ...exceptions import InvalidInputError
from ...models import ArtifactMetadata
from .state import Viewer

__all__ = ["COLLAPSE_LINES", "PAGE_LINES", "diff_context", "files_context", "read_text_lines"]

#: A file with more diff lines than this is collapsed on the full page.
COLLAPSE_LINES = 1500
#: Most diff lines rendered on one page (the rest is collapsed).
PAGE_LINES = 12000
#: Most lines kept of one file when it is shown alone.
FILE_LINES = 50000
CHUNK = 1024 * 1024


def read_text_lines(viewer: Viewer, meta: ArtifactMetadata) -> Iterator[str]:
    """The artifact's lines, decoded leniently, streamed from the store."""
    with viewer.store.open(meta.version_uri) as reader:
        buffered = io.BufferedReader(reader, CHUNK)
        text = io.TextIOWrapper(buffered, encoding="utf-8", errors="replace", newline="")
        yield from text


def _line(line: DiffLine) -> dict[str, Any]:
    return {"kind": line.kind, "text": line.text, "old": line.old_no, "new": line.new_no}


def _split_rows(hunk: Hunk) -> list[dict[str, Any]]:
    """Side-by-side rows: removed lines on the left paired with the added ones after them."""
    rows: list[dict[str, Any]] = []
    dels: list[DiffLine] = []
    adds: list[DiffLine] = []

    def flush() -> None:
        for at in range(max(len(dels), len(adds))):
            left = dels[at] if at < len(dels) else None
            right = adds[at] if at < len(adds) else None
            rows.append(
                {
                    "left": _line(left) if left is not None else None,
                    "right": _line(right) if right is not None else None,
                }
            )
        dels.clear()
        adds.clear()

    for line in hunk.lines:
        if line.kind == "del":
            if adds:
                flush()
            dels.append(line)
        elif line.kind == "add":
            adds.append(line)
        else:
            flush()
            shown = _line(line)
            rows.append({"left": shown, "right": shown if line.kind == "context" else None})
    flush()
    return rows


def _file(index: int, diff: FileDiff, *, split: bool, rendered: bool) -> dict[str, Any]:
    lines = sum(len(h.lines) for h in diff.hunks)
    data: dict[str, Any] = {
        "index": index,
        "anchor": f"file-{index}",
        "path": diff.path,
        "old_path": diff.old_path,
        "new_path": diff.new_path,
        "status": diff.status,
        "binary": diff.binary,
        "added": diff.added,
        "removed": diff.removed,
        "similarity": diff.similarity,
        "old_mode": diff.old_mode,
        "new_mode": diff.new_mode,
        "hunk_count": diff.hunk_count,
        "lines": lines,
        "truncated": diff.truncated,
        "collapsed": not rendered,
        "hunks": [],
    }
    if rendered:
        for hunk in diff.hunks:
            entry: dict[str, Any] = {"header": hunk.header, "section": hunk.section}
            if split:
                entry["rows"] = _split_rows(hunk)
            else:
                entry["lines"] = [_line(line) for line in hunk.lines]
            data["hunks"].append(entry)
    return data


def files_context(
    diffs: Iterable[FileDiff], *, split: bool, only: int | None = None
) -> dict[str, Any]:
    """Files of a diff as page data, collapsing what would make the page heavy."""
    files = []
    budget = PAGE_LINES
    added = removed = 0
    for index, diff in enumerate(diffs):
        lines = sum(len(h.lines) for h in diff.hunks)
        if only is not None:
            rendered = index == only
        else:
            rendered = lines <= COLLAPSE_LINES and lines <= budget and not diff.truncated
        if rendered:
            budget -= lines
        added += diff.added
        removed += diff.removed
        if only is not None and index != only:
            # Keep the counts of the other files (for the list), not their lines.
            diff.hunks = []
        files.append(_file(index, diff, split=split, rendered=rendered))
    return {"files": files, "added": added, "removed": removed}


def diff_context(viewer: Viewer, request: Request, meta: ArtifactMetadata) -> dict[str, Any]:
    """The diff part of an artifact page: ``?layout=split`` and ``?file=N`` honoured."""
    layout = request.query_params.get("layout") or "unified"
    if layout not in ("unified", "split"):
        raise InvalidInputError(f"layout must be 'unified' or 'split', got {layout!r}")
    only_text = request.query_params.get("file")
    only: int | None = None
    if only_text:
        try:
            only = int(only_text)
        except ValueError:
            raise InvalidInputError(f"file must be a file number, got {only_text!r}") from None
        if only < 0:
            raise InvalidInputError(f"file must be a file number, got {only_text!r}")
    cap = FILE_LINES if only is not None else COLLAPSE_LINES + 1
    context = files_context(
        parse_diff(read_text_lines(viewer, meta), max_lines_per_file=cap),
        split=layout == "split",
        only=only,
    )
    if only is not None and only >= len(context["files"]):
        raise InvalidInputError(f"the diff has {len(context['files'])} files; no file {only}")
    context.update({"layout": layout, "only": only})
    return context
