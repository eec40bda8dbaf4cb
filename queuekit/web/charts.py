"""Charts drawn on the server as SVG from history buckets: no JavaScript chart library.

Each chart is a small inline SVG the templates embed; every number in it
comes from :class:`queuekit.web.history_chart.Bucket` values, every text is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from queuekit.web.history_chart import Bucket

WIDTH = 600
HEIGHT = 120
MARGIN = 24


@dataclass(frozen=True)
class Series:
    """One bar series: its name, CSS class and the value of each bucket."""

    name: str
    css: str
    value: Callable[[Bucket], float]


THROUGHPUT = (
    Series("completed", "ok", lambda b: b.completed),
    Series("failed", "bad", lambda b: b.failed),
)
QUEUE_TIME = (Series("mean wait (ms)", "wait", lambda b: b.mean_queue_ms or 0.0),)
RUN_TIME = (Series("mean run (ms)", "run", lambda b: b.mean_run_ms or 0.0),)


def stacked_bars(title: str, buckets: Sequence[Bucket], series: Sequence[Series]) -> str:
    """An SVG of one stacked bar per bucket, with the peak value and the time span labelled."""
    totals = [sum(s.value(b) for s in series) for b in buckets]
    peak = max(totals, default=0) or 1
    plot_h = HEIGHT - 2 * MARGIN
    bar_w = (WIDTH - 2 * MARGIN) / max(len(buckets), 1)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<text x="{MARGIN}" y="14" class="label">{escape(title)}</text>',
        f'<text x="{WIDTH - MARGIN}" y="14" class="label" text-anchor="end">'
        f"peak {peak:,.0f}</text>",
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" '
        f'y2="{HEIGHT - MARGIN}" class="axis"/>',
    ]
    for index, bucket in enumerate(buckets):
        x = MARGIN + index * bar_w
        y = float(HEIGHT - MARGIN)
        for s in series:
            value = s.value(bucket)
            if value <= 0:
                continue
            h = value / peak * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                f'height="{h:.1f}" class="{s.css}"><title>{escape(s.name)} '
                f"{bucket.start:%H:%M}: {value:,.0f}</title></rect>"
            )
    if buckets:
        first, last = buckets[0].start, buckets[-1].start
        parts.append(
            f'<text x="{MARGIN}" y="{HEIGHT - 6}" class="label">{first:%Y-%m-%d %H:%M}</text>'
            f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - 6}" class="label" text-anchor="end">'
            f"{last:%H:%M} UTC</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
