"""Bar charts drawn on the server as inline SVG: no script, no library, nothing fetched."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 180
AXIS = 24  # room for the labels under the bars
TOP = 14  # room for the value over the highest bar


def bar_chart(values: Sequence[int], labels: Sequence[str], *, title: str, colour: str = "#2b6cb0") -> Markup:
    """An SVG bar chart of counts, each bar labelled, its value shown on hover and above non-zero bars."""
    if len(values) != len(labels) or not values:
        raise ValueError("a bar chart needs one label per value, and at least one value")
    step = WIDTH / len(values)
    top = max(max(values), 1)
    bars = [
        _bar(i * step, step, v, top, label, colour)
        for i, (v, label) in enumerate(zip(values, labels, strict=True))
    ]
    return Markup(
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"'
        f' xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{"".join(bars)}'
        f'<line x1="0" y1="{HEIGHT - AXIS}" x2="{WIDTH}" y2="{HEIGHT - AXIS}" stroke="#888"/></svg>'
    )


def _bar(x: float, step: float, value: int, top: int, label: str, colour: str) -> str:
    usable = HEIGHT - AXIS - TOP
    height = usable * value / top
    y = HEIGHT - AXIS - height
    middle = x + step / 2
    text = (
        f'<text x="{middle:.1f}" y="{y - 3:.1f}" font-size="10" text-anchor="middle">{value}</text>'
        if value
        else ""
    )
    return (
        f"<g><title>{escape(label)}: {value}</title>"
        f'<rect x="{x + step * 0.1:.1f}" y="{y:.1f}" width="{step * 0.8:.1f}" height="{height:.1f}"'
        f' fill="{colour}"/>'
        f"{text}"
        f'<text x="{middle:.1f}" y="{HEIGHT - 8}" font-size="10" text-anchor="middle">'
        f"{escape(label)}</text></g>"
    )
