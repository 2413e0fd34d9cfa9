"""A server-rendered SVG chart: two bars per measure (today's rules, proposed ones).

No script and no inline style (the CSP allows neither): colours are SVG
presentation attributes, text is escaped. The numbers are also in the SVG's
``data-*`` attributes and its <title>s, which the browser tests and screen
readers read.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

COLOURS = ("#546e7a", "#ef6c00")
ROW = 34
BAR = 12
LABEL_WIDTH = 250
CHART_WIDTH = 520
TOP = 30


def _bar(*, x: int, y: float, width: float, colour: str, value: int, series: str, key: str) -> str:
    return (
        f'<rect x="{x}" y="{y:.1f}" width="{width:.1f}" height="{BAR}" fill="{colour}" '
        f'data-series="{escape(series)}" data-key="{escape(key)}" data-value="{value}">'
        f"<title>{escape(series)}: {value}</title></rect>"
        f'<text x="{x + width + 4:.1f}" y="{y + BAR - 2:.1f}" font-size="11" '
        f'fill="#1f2933">{value}</text>'
    )


def comparison_chart(
    rows: Sequence[tuple[str, str, int, int]], *, series: tuple[str, str]
) -> SafeString:
    """``rows``: (key, label, today's value, proposed value), one pair of bars each."""
    peak = max([1, *(max(a, b) for _, _, a, b in rows)])
    scale = (CHART_WIDTH - 60) / peak
    height = TOP + ROW * len(rows) + 10
    width = LABEL_WIDTH + CHART_WIDTH
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="whatif-chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-label="What-if comparison: {escape(series[0])} and {escape(series[1])}">'
    ]
    for index, (name, colour) in enumerate(zip(series, COLOURS, strict=True)):
        x = LABEL_WIDTH + index * 170
        parts.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{colour}"/>')
        parts.append(
            f'<text x="{x + 16}" y="16" font-size="12" fill="#1f2933">{escape(name)}</text>'
        )
    for index, (key, text, today, proposed) in enumerate(rows):
        y = TOP + index * ROW
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR + 3}" font-size="12" text-anchor="end" '
            f'fill="#1f2933">{escape(text)}</text>'
        )
        for offset, (value, colour, name) in enumerate(
            zip((today, proposed), COLOURS, series, strict=True)
        ):
            parts.append(
                _bar(
                    x=LABEL_WIDTH,
                    y=y + offset * (BAR + 2),
                    width=max(value * scale, 1 if value else 0),
                    colour=colour,
                    value=value,
                    series=name,
                    key=key,
                )
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 — every text above is escaped
