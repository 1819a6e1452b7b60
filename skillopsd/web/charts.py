"""Charts drawn on the server as inline SVG: no script library, nothing fetched, readable with
scripts off, and each mark carries a ``<title>`` with its exact numbers. Colours come from the
stylesheet (classes), so the page's Content-Security-Policy needs no inline styles."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from markupsafe import Markup, escape

WIDTH = 720
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 44, 12, 10, 28


class Series(msgspec.Struct, frozen=True):
    """One stack of bars: a name, the CSS class that colours it, a value per category."""

    name: str
    css: str
    values: list[int]


class Interval(msgspec.Struct, frozen=True):
    """A share with its 95 % interval, for one row or one point."""

    label: str
    k: int
    n: int
    share: float | None
    low: float | None
    high: float | None
    css: str = "s-version"


class Line(msgspec.Struct, frozen=True):
    """Points of one series over categories (None: no data at that category)."""

    name: str
    css: str
    points: list[Interval | None]


def _svg(width: int, height: int, label: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img"'
        f' aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


def _nice_max(value: float) -> float:
    """A round axis top at or above ``value``."""
    if value <= 0:
        return 1
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for m in (1, 2, 2.5, 5, 10):
        if m * step >= value:
            return m * step
    return 10 * step


def _count(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _x_labels(categories: Sequence[str], x: list[float], height: int) -> list[str]:
    """At most ~10 category labels under the axis, evenly spread."""
    out = []
    step = max(1, -(-len(categories) // 10))
    for i in range(0, len(categories), step):
        out.append(
            f'<text class="axis" x="{x[i]:.1f}" y="{height - 8}" text-anchor="middle">'
            f"{escape(categories[i])}</text>"
        )
    return out


def stacked_bars(
    categories: Sequence[str], series: Sequence[Series], label: str, unit: str = ""
) -> Markup:
    """Bars per category, stacked by series (each with a tooltip naming its exact count)."""
    height = 180
    plot_h = height - _PAD_TOP - _PAD_BOTTOM
    plot_w = WIDTH - _PAD_LEFT - _PAD_RIGHT
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    top = _nice_max(max(totals, default=0))
    n = max(1, len(categories))
    slot = plot_w / n
    bar = max(1.0, slot * 0.8)
    body = [
        f'<line class="grid" x1="{_PAD_LEFT}" x2="{WIDTH - _PAD_RIGHT}" y1="{_PAD_TOP + plot_h}"'
        f' y2="{_PAD_TOP + plot_h}"/>',
        f'<line class="grid" x1="{_PAD_LEFT}" x2="{WIDTH - _PAD_RIGHT}" y1="{_PAD_TOP}"'
        f' y2="{_PAD_TOP}"/>',
        f'<text class="axis" x="{_PAD_LEFT - 4}" y="{_PAD_TOP + 4}" text-anchor="end">'
        f"{_count(top)}</text>",
        f'<text class="axis" x="{_PAD_LEFT - 4}" y="{_PAD_TOP + plot_h}"'
        ' text-anchor="end">0</text>',
    ]
    centres = []
    for i, category in enumerate(categories):
        x = _PAD_LEFT + i * slot + (slot - bar) / 2
        centres.append(x + bar / 2)
        y = float(_PAD_TOP + plot_h)
        for s in series:
            value = s.values[i]
            if not value:
                continue
            h = plot_h * value / top
            y -= h
            body.append(
                f'<rect class="{s.css}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}"'
                f' height="{h:.1f}"><title>{escape(category)} {escape(s.name)}: {value:,}'
                f"{escape(unit)}</title></rect>"
            )
    body += _x_labels(categories, centres, height)
    return _svg(WIDTH, height, label, body)


def legend(series: Sequence[Series]) -> Markup:
    """The series' names beside a swatch of their colour."""
    items = "".join(
        f'<span class="key"><svg width="10" height="10"><rect class="{s.css}" width="10"'
        f' height="10"/></svg> {escape(s.name)}</span>'
        for s in series
    )
    return Markup(f'<div class="legend">{items}</div>')


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def intervals(rows: Sequence[Interval], label: str) -> Markup:
    """Each row's share as a dot on 0–100 % with its 95 % interval as a bar."""
    row_h = 26
    height = _PAD_TOP + row_h * max(1, len(rows)) + _PAD_BOTTOM
    left = 120
    text_w = 170  # the exact numbers, right of the plot
    plot_w = WIDTH - left - _PAD_RIGHT - text_w

    def at(v: float) -> float:
        return left + plot_w * v

    body = []
    for tick in (0, 0.25, 0.5, 0.75, 1):
        body.append(
            f'<line class="grid" x1="{at(tick):.1f}" x2="{at(tick):.1f}" y1="{_PAD_TOP}"'
            f' y2="{height - _PAD_BOTTOM}"/><text class="axis" x="{at(tick):.1f}"'
            f' y="{height - 10}" text-anchor="middle">{_pct(tick)}</text>'
        )
    for i, r in enumerate(rows):
        y = _PAD_TOP + row_h * i + row_h / 2
        body.append(
            f'<text class="axis label" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(r.label)}</text>"
        )
        if r.share is None or r.low is None or r.high is None:
            body.append(
                f'<text class="axis" x="{at(0) + 4:.1f}" y="{y + 4:.1f}">no sessions</text>'
            )
            continue
        tip = (
            f"{escape(r.label)}: {r.k}/{r.n} = {_pct(r.share)}, 95% interval"
            f" {_pct(r.low)}–{_pct(r.high)}"
        )
        body.append(
            f'<g class="{r.css}"><title>{tip}</title>'
            f'<rect class="ci" x="{at(r.low):.1f}" y="{y - 4:.1f}"'
            f' width="{max(1.0, at(r.high) - at(r.low)):.1f}" height="8" rx="3"/>'
            f'<circle class="dot" cx="{at(r.share):.1f}" cy="{y:.1f}" r="5"/></g>'
            f'<text class="axis" x="{at(1) + 16:.1f}" y="{y + 4:.1f}">'
            f"{r.k}/{r.n} {_pct(r.share)} [{_pct(r.low)}–{_pct(r.high)}]</text>"
        )
    return _svg(WIDTH, height, label, body)


def lines(categories: Sequence[str], series: Sequence[Line], label: str) -> Markup:
    """Shares over categories (weeks), one line per series, each point with its interval."""
    height = 200
    plot_h = height - _PAD_TOP - _PAD_BOTTOM
    plot_w = WIDTH - _PAD_LEFT - _PAD_RIGHT
    n = max(1, len(categories))
    slot = plot_w / n
    xs = [_PAD_LEFT + slot * (i + 0.5) for i in range(len(categories))]

    def y_of(v: float) -> float:
        return _PAD_TOP + plot_h * (1 - v)

    body = []
    for tick in (0, 0.5, 1):
        body.append(
            f'<line class="grid" x1="{_PAD_LEFT}" x2="{WIDTH - _PAD_RIGHT}" y1="{y_of(tick):.1f}"'
            f' y2="{y_of(tick):.1f}"/><text class="axis" x="{_PAD_LEFT - 4}"'
            f' y="{y_of(tick) + 4:.1f}" text-anchor="end">{_pct(tick)}</text>'
        )
    for j, s in enumerate(series):
        path: list[str] = []
        marks: list[str] = []
        # Series side by side within a category, so equal shares do not hide each other.
        shift = (j - (len(series) - 1) / 2) * min(10.0, slot / (len(series) + 1))
        for i, p in enumerate(s.points):
            if p is None or p.share is None or p.low is None or p.high is None:
                continue
            x = xs[i] + shift
            path.append(f"{'M' if not path else 'L'}{x:.1f},{y_of(p.share):.1f}")
            marks.append(
                f"<g><title>{escape(s.name)} {escape(categories[i])}: {p.k}/{p.n} ="
                f" {_pct(p.share)} [{_pct(p.low)}–{_pct(p.high)}]</title>"
                f'<line class="whisker" x1="{x:.1f}" x2="{x:.1f}"'
                f' y1="{y_of(p.low):.1f}" y2="{y_of(p.high):.1f}"/>'
                f'<circle class="dot" cx="{x:.1f}" cy="{y_of(p.share):.1f}" r="4"/></g>'
            )
        body.append(f'<g class="{s.css}"><path class="line" d="{" ".join(path)}"/>')
        body += marks
        body.append("</g>")
    body += _x_labels(categories, xs, height)
    return _svg(WIDTH, height, label, body)


def probability(
    points: Sequence[tuple[int, float]], promote_bar: float, retire_bar: float, label: str
) -> Markup:
    """P(challenger better) after each execution, with the promote and retire bars."""
    height = 180
    plot_h = height - _PAD_TOP - _PAD_BOTTOM
    plot_w = WIDTH - _PAD_LEFT - _PAD_RIGHT
    last = max((n for n, _ in points), default=1)

    def x_of(n: int) -> float:
        return _PAD_LEFT + plot_w * (n / max(1, last))

    def y_of(v: float) -> float:
        return _PAD_TOP + plot_h * (1 - v)

    body = []
    for tick in (0, 0.5, 1):
        body.append(
            f'<line class="grid" x1="{_PAD_LEFT}" x2="{WIDTH - _PAD_RIGHT}" y1="{y_of(tick):.1f}"'
            f' y2="{y_of(tick):.1f}"/><text class="axis" x="{_PAD_LEFT - 4}"'
            f' y="{y_of(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>'
        )
    for value, css, name in (
        (promote_bar, "bar-promote", f"promote at {promote_bar:g}"),
        (1 - retire_bar, "bar-retire", f"retire at {1 - retire_bar:.3g}"),
    ):
        body.append(
            f'<line class="{css}" x1="{_PAD_LEFT}" x2="{WIDTH - _PAD_RIGHT}"'
            f' y1="{y_of(value):.1f}" y2="{y_of(value):.1f}"><title>{name}</title></line>'
        )
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{x_of(n):.1f},{y_of(p):.1f}" for i, (n, p) in enumerate(points)
    )
    body.append(f'<path class="line s-challenger" d="{path}"/>')
    for n, p in points:
        body.append(
            f'<circle class="dot s-challenger" cx="{x_of(n):.1f}" cy="{y_of(p):.1f}" r="2.5">'
            f"<title>after {n} executions: P(challenger better) = {p:.4f}</title></circle>"
        )
    body.append(
        f'<text class="axis" x="{WIDTH - _PAD_RIGHT}" y="{height - 8}" text-anchor="end">'
        f"{last} executions</text>"
    )
    return _svg(WIDTH, height, label, body)
