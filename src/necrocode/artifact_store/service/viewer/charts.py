"""Server-rendered bar charts: geometry computed here, drawn as SVG by the templates.

Widths are SVG attributes, not inline styles, so the page's
``Content-Security-Policy`` needs no ``'unsafe-inline'``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BAR_HEIGHT", "CHART_WIDTH", "bar_chart"]

CHART_WIDTH = 520
LABEL_WIDTH = 150
VALUE_WIDTH = 90
BAR_HEIGHT = 18
ROW_GAP = 8


def bar_chart(items: list[tuple[str, int, str]], *, limit: int | None = None) -> dict[str, Any]:
    """Horizontal bars for ``(label, value, shown value)``, largest first.

    Past ``limit`` bars the rest are summed into one "others" bar.
    """
    ordered = sorted(items, key=lambda item: item[1], reverse=True)
    if limit is not None and len(ordered) > limit:
        rest = ordered[limit - 1 :]
        total = sum(value for _, value, _ in rest)
        ordered = [*ordered[: limit - 1], (f"{len(rest)} others", total, "")]
    top = max((value for _, value, _ in ordered), default=0)
    track = CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH
    bars = []
    for row, (label, value, shown) in enumerate(ordered):
        width = 0.0 if top == 0 else max(2.0, track * value / top) if value else 0.0
        bars.append(
            {
                "label": label if len(label) <= 22 else f"{label[:21]}…",
                "full_label": label,
                "value": value,
                "shown": shown,
                "y": row * (BAR_HEIGHT + ROW_GAP),
                "width": round(width, 1),
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": max(BAR_HEIGHT, len(bars) * (BAR_HEIGHT + ROW_GAP) - ROW_GAP),
        "label_width": LABEL_WIDTH,
        "track": track,
        "bar_height": BAR_HEIGHT,
        "bars": bars,
    }
