"""Server-rendered SVG plots: no JavaScript, nothing fetched at run time.

Plain string building (every label escaped), so a plot costs microseconds and needs no library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 36
COLOURS = {"to_cc": "#1f77b4", "to_member_db": "#ff7f0e", "link": "#2ca02c", "decision": "#9467bd"}


def _frame(title: str, y_max: float, body: list[str], x_labels: Sequence[tuple[float, str]]) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="plot" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}"><title>{escape(title)}</title>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#444"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#444"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - frac)
        label = int(y_max * frac)
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{label}</text>')
    for x, label in x_labels:
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="10" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    parts.extend(body)
    parts.append("</svg>")
    return "".join(parts)


def calls_per_day(days: Sequence[str], calls: Sequence[int], budget: int, reserve: int) -> str:
    """Bars of API calls per UTC day, with the daily budget and the reserve as lines."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    y_max = max([*calls, budget, 1]) * 1.05
    step = plot_w / max(len(days), 1)
    body = []
    for i, (day, n) in enumerate(zip(days, calls, strict=True)):
        h = plot_h * n / y_max
        x = LEFT + i * step
        body.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{TOP + plot_h - h:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="#1f77b4"><title>{escape(day)}: {n} calls</title></rect>'
        )
    for value, colour, label in ((budget, "#d62728", "budget"), (budget - reserve, "#bcbd22", "reserve")):
        if value <= 0:
            continue
        y = TOP + plot_h * (1 - value / y_max)
        body.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-dasharray="4 3"/><text x="{WIDTH - RIGHT}" y="{y - 3:.1f}" font-size="10" '
            f'text-anchor="end" fill="{colour}">{label} {value}</text>'
        )
    labels = [(LEFT + (i + 0.5) * step, day[5:]) for i, day in enumerate(days) if i % 5 == 0]
    return _frame("API calls per day against the budget", y_max, body, labels)


def changes_per_run(runs: Sequence[str], counts: Sequence[Mapping[str, int]]) -> str:
    """Stacked bars: change-log rows per run, by direction."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    totals = [sum(c.values()) for c in counts]
    y_max = max([*totals, 1]) * 1.05
    step = plot_w / max(len(runs), 1)
    body = []
    for i, (run, by_direction) in enumerate(zip(runs, counts, strict=True)):
        y = TOP + plot_h
        x = LEFT + i * step
        for direction, colour in COLOURS.items():
            n = by_direction.get(direction, 0)
            if not n:
                continue
            h = plot_h * n / y_max
            y -= h
            body.append(
                f'<rect class="bar" x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(run)}: {n} {direction}</title></rect>'
            )
    legend_x = LEFT + 8
    for direction, colour in COLOURS.items():
        body.append(
            f'<rect x="{legend_x}" y="{TOP}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{TOP + 9}" font-size="10">{direction}</text>'
        )
        legend_x += 100
    return _frame("Changes per run by direction", y_max, body, [])
