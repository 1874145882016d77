"""Summarise a py-spy ``--format raw`` profile: the top frames under one root, self and total %.

A flame graph is the best view of a profile but cannot be committed as text; the
table this prints can. Every sample whose stack passes through ``root`` (a frame
name such as ``ArtifactStore.download``) counts; a frame's *total* share is the
fraction of those samples in which it appears at or below the root (once per
sample, so recursion is not counted twice), its *self* share the fraction in
which it is the innermost frame. ``python -m benchmarks.flame FILE ROOT [--top N]``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

#: ``name (file)`` or ``name (file:line)`` as py-spy writes a frame.
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class FrameShare:
    """One frame's share of the samples under the root."""

    frame: str
    self_share: float
    total_share: float


def _short(frame: str) -> str:
    """``Class.method (module.py)``: the line number dropped, the path cut to its file."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    return f"{match['name']} ({match['file'].rsplit('/', 1)[-1]})"


def summarise(raw: str, root: str) -> tuple[int, list[FrameShare]]:
    """The samples under ``root`` and every frame's share of them, by total share."""
    totals: Counter[str] = Counter()
    selfs: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_short(frame) for frame in stack.split(";")]
        names = [frame.split(" (", 1)[0] for frame in frames]
        if root not in names:
            continue
        below = frames[names.index(root) :]
        count = int(count_text)
        samples += count
        for frame in set(below):
            totals[frame] += count
        selfs[below[-1]] += count
    if samples == 0:
        return 0, []
    shares = [
        FrameShare(frame, selfs[frame] / samples, total / samples)
        for frame, total in totals.items()
    ]
    shares.sort(key=lambda share: (-share.total_share, -share.self_share, share.frame))
    return samples, shares


def table(raw: str, root: str, top: int = 20, min_share: float = 0.01) -> str:
    """Markdown: the ``top`` frames by total share (those of at least ``min_share``)."""
    samples, shares = summarise(raw, root)
    lines = [
        f"{samples:,} samples under `{root}`",
        "",
        "| frame | self % | total % |",
        "|---|---|---|",
    ]
    shown = [share for share in shares if share.total_share >= min_share][:top]
    for share in shown:
        lines.append(f"| `{share.frame}` | {share.self_share:.0%} | {share.total_share:.0%} |")
    by_self = sorted(shares, key=lambda share: -share.self_share)[:8]
    lines.append("")
    lines.append(
        "Most self time: "
        + ", ".join(f"`{share.frame}` {share.self_share:.0%}" for share in by_self)
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the summary of one raw profile."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flame", description=__doc__)
    parser.add_argument("raw", type=Path, help="py-spy record --format raw output")
    parser.add_argument("root", help="frame name, e.g. ArtifactStore.download")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    print(table(args.raw.read_text(), args.root, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
