"""Charts as inline SVG, drawn on the server: no JavaScript library, no internet."""
from __future__ import annotations

import math
from datetime import date

from markupsafe import Markup, escape

WEEKDAYS = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")


def nice_max(value: float) -> tuple[float, float]:
    """(axis top, tick step) for counts: a round step ≥ 1, at most 5 ticks above zero."""
    if value <= 0:
        return 1.0, 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for mult in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10):
        step = magnitude * mult
        if step < 1:
            continue
        ticks = math.ceil(value / step)
        if ticks <= 5:
            return ticks * step, step
    return value, value


def _fmt(v: float) -> str:
    return f"{v:g}".replace(".", ",")


def bar_chart(points: list[tuple[date, int]], title: str, width: int = 760, height: int = 240) -> Markup:
    """A bar per day; every bar has a <title> (tooltip) with its date and value."""
    left, right, top, bottom = 40, 10, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(points), 1)
    y_top, step = nice_max(max((v for _, v in points), default=0))
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.72)
    label_every = max(1, math.ceil(n / 14))  # at most ~14 date labels
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    ticks = int(round(y_top / step))
    for i in range(ticks + 1):
        value = step * i
        y = top + plot_h - plot_h * value / y_top
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value)}</text>')
    for i, (day, value) in enumerate(points):
        x = left + slot * i + (slot - bar_w) / 2
        h = plot_h * value / y_top if y_top else 0
        y = top + plot_h - h
        label = f"{day:%d.%m.%Y} ({WEEKDAYS[day.weekday()]}): {value}"
        cls = "bar weekend" if day.weekday() >= 5 else "bar"
        parts.append(f'<rect class="{cls}" data-day="{day.isoformat()}" data-value="{value}" x="{x:.1f}" y="{y:.1f}" '
                     f'width="{bar_w:.1f}" height="{max(h, 0):.1f}"><title>{escape(label)}</title></rect>')
        if value and n <= 31:
            parts.append(f'<text class="value" x="{x + bar_w / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle">{value}</text>')
        if i % label_every == 0:
            parts.append(f'<text class="tick" x="{x + bar_w / 2:.1f}" y="{height - bottom + 16}" '
                         f'text-anchor="middle">{day:%d.%m}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
