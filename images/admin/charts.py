"""Charts drawn on the server as SVG: no script, no CDN, nothing to load.

Each chart is an <svg role="img"> named by its title and summarised by a <desc>;
every bar or segment carries a <title> (the browser's tooltip, read by screen
readers too), and the same numbers follow in a data table for anyone who cannot
see the picture. Colours of text, axes and grid are the admin's CSS variables, so
the charts follow its dark and light themes; the series colours are the status
badges' (see _charts_style.html).
"""

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify
from django.utils.timesince import timesince

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 30

Format = Callable[[int], str]


def number(value: int) -> str:
    return f"{value:,}"


def size(value: int) -> str:
    return str(filesizeformat(value)).replace("\xa0", " ")


@dataclass
class Chart:
    title: str
    labels: Sequence[str]  # one per slot (day, owner)
    series: dict[str, Sequence[int]]  # name -> one value per slot
    fmt: Format = number
    stacked: bool = True
    # True when each slot is a state (images at the end of a day): the summary then
    # tells the last slot; otherwise the values are events, and it tells their sums.
    states: bool = False
    axis: str = "Day"  # what the labels are, the data table's first column

    @property
    def slug(self) -> str:
        return "chart-" + slugify(self.title)

    def top(self) -> int:
        columns = zip(*self.series.values(), strict=True) if self.series else []
        totals = [sum(c) if self.stacked else max(c) for c in columns]
        return nice(max(totals, default=0))


def nice(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above value (at least 1)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= value:
                return step * m
        step *= 10


def bar_chart(chart: Chart) -> SafeString:
    """Vertical bars per slot: stacked series, or side by side."""
    top = chart.top()
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(chart.labels), 1)
    y = lambda v: TOP + plot_h - plot_h * v / top  # noqa: E731
    parts = [_axis_y(top, chart.fmt, y)]
    every = max(1, len(chart.labels) // 6)
    for i, label in enumerate(chart.labels):
        x = LEFT + i * slot
        if i % every == 0 or i == len(chart.labels) - 1:
            parts.append(
                format_html(
                    '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _n(x + slot / 2),
                    HEIGHT - BOTTOM + 16,
                    label[5:] if len(label) == 10 else label,  # 2026-12-03 → 12-03
                )
            )
        parts.append(_slot_bars(chart, i, x, slot, y))
    return _figure(chart, mark_safe("".join(parts)), _summary(chart))


def _slot_bars(chart: Chart, i: int, x: float, slot: float, y) -> SafeString:
    bars, base = [], 0
    width = slot * 0.8 if chart.stacked else slot * 0.8 / max(len(chart.series), 1)
    for k, name in enumerate(chart.series):
        value = chart.series[name][i]
        if not value:
            continue
        left = x + slot * 0.1 + (0 if chart.stacked else k * width)
        low = base if chart.stacked else 0
        bars.append(
            format_html(
                '<rect class="bar s-{}" x="{}" y="{}" width="{}" height="{}">'
                "<title>{} · {}: {}</title></rect>",
                name,
                _n(left),
                _n(y(low + value)),
                _n(width),
                _n(y(low) - y(low + value)),
                chart.labels[i],
                name,
                chart.fmt(value),
            )
        )
        base += value if chart.stacked else 0
    return mark_safe("".join(bars))


def _axis_y(top: int, fmt: Format, y) -> SafeString:
    lines = [
        format_html(
            '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
            '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
            LEFT,
            WIDTH - RIGHT,
            _n(y(v)),
            _n(y(v)),
            LEFT - 6,
            _n(y(v) + 4),
            fmt(v),
        )
        for v in (0, top // 2, top)
    ]
    return mark_safe("".join(lines))


def hbar_chart(chart: Chart) -> SafeString:
    """One horizontal bar per label (e.g. owners), longest first as given."""
    values = next(iter(chart.series.values()), [])
    top = max(values, default=0) or 1
    row, label_w = 22, 180
    height = TOP + row * max(len(chart.labels), 1) + 4
    parts = []
    for i, (label, value) in enumerate(zip(chart.labels, values, strict=True)):
        top_y = TOP + i * row
        parts.append(
            format_html(
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>'
                '<rect class="bar s-owner" x="{}" y="{}" width="{}" height="{}">'
                "<title>{}: {}</title></rect>"
                '<text class="value" x="{}" y="{}">{}</text>',
                label_w - 6,
                top_y + 15,
                label if len(label) <= 26 else label[:25] + "…",
                label_w,
                top_y + 3,
                _n((WIDTH - label_w - 90) * value / top),
                row - 6,
                label,
                chart.fmt(value),
                _n(label_w + (WIDTH - label_w - 90) * value / top + 6),
                top_y + 15,
                chart.fmt(value),
            )
        )
    return _figure(chart, mark_safe("".join(parts)), _summary(chart), height=height)


def _summary(chart: Chart) -> str:
    if not chart.labels or not any(any(v) for v in chart.series.values()):
        return f"{chart.title}: nothing to show."
    span = f"{chart.labels[0]} to {chart.labels[-1]}"
    if chart.states:
        values = ", ".join(
            f"{name} {chart.fmt(v[-1])}" for name, v in chart.series.items() if v[-1]
        )
        return f"{chart.title}, {span}; on {chart.labels[-1]}: {values or 'none'}."
    if len(chart.series) == 1:  # one series: name each slot that has a value
        values = ", ".join(
            f"{label} {chart.fmt(v)}"
            for label, v in zip(chart.labels, next(iter(chart.series.values())), strict=True)
            if v
        )
        return f"{chart.title}: {values}."
    values = ", ".join(f"{name} {chart.fmt(sum(v))}" for name, v in chart.series.items() if any(v))
    return f"{chart.title}, {span}; in all: {values}."


def _figure(chart: Chart, body: SafeString, summary: str, *, height: int = HEIGHT) -> SafeString:
    rows = format_html_join(
        "",
        "<tr><th scope='row'>{}</th>{}</tr>",
        (
            (
                label,
                format_html_join(
                    "",
                    '<td class="num" data-series="{}" data-value="{}">{}</td>',
                    ((name, v[i], chart.fmt(v[i])) for name, v in chart.series.items()),
                ),
            )
            for i, label in enumerate(chart.labels)
        ),
    )
    head = format_html_join("", '<th scope="col">{}</th>', ((n,) for n in chart.series))
    legend = format_html_join(
        "",
        '<span class="key"><span class="swatch s-{}"></span>{}</span>',
        ((n, n) for n in chart.series),
    )
    return format_html(
        '<figure class="image-chart" id="{slug}">'
        "<figcaption>{title}</figcaption>"
        '<svg role="img" aria-labelledby="{slug}-t {slug}-d" viewBox="0 0 {w} {h}" width="100%">'
        '<title id="{slug}-t">{title}</title><desc id="{slug}-d">{summary}</desc>{body}</svg>'
        '<div class="legend" aria-hidden="true">{legend}</div>'
        "<details><summary>Data table</summary>"
        '<table class="chart-data" data-chart="{slug}">'
        '<thead><tr><th scope="col">{first}</th>{head}</tr></thead>'
        "<tbody>{rows}</tbody></table></details></figure>",
        slug=chart.slug,
        title=chart.title,
        summary=summary,
        w=WIDTH,
        h=height,
        body=body,
        legend=legend,
        first=chart.axis,
        head=head,
        rows=rows,
    )


def status_timeline(moves: Sequence, now: datetime | None = None) -> SafeString:
    """One image's life as a band: a segment per status it held, from its first
    history row to now, a tick at each move. `moves` are ImageTransition rows."""
    now = now or timezone.now()
    moves = list(moves)
    if not moves:
        return format_html('<p class="image-chart">{}</p>', "No status changes recorded.")
    start, end = moves[0].created_at, max(now, moves[-1].created_at)
    span = (end - start).total_seconds() or 1
    plot_w = WIDTH - 2 * RIGHT
    x = lambda t: RIGHT + plot_w * (t - start).total_seconds() / span  # noqa: E731
    parts = []
    for move, following in itertools.zip_longest(moves, moves[1:]):
        until = following.created_at if following else end
        parts.append(
            format_html(
                '<rect class="bar s-{}" x="{}" y="14" width="{}" height="26">'
                "<title>{} from {} for {}</title></rect>",
                move.target,
                _n(x(move.created_at)),
                _n(max(x(until) - x(move.created_at), 1)),
                move.target,
                _when(move.created_at),
                timesince(move.created_at, until),
            )
        )
        if x(until) - x(move.created_at) > 8 * len(move.target):  # room for its name
            parts.append(
                format_html(
                    '<text class="segment" x="{}" y="31" text-anchor="middle">{}</text>',
                    _n((x(move.created_at) + x(until)) / 2),
                    move.target,
                )
            )
    for move in moves:
        parts.append(
            format_html(
                '<line class="move" x1="{x}" x2="{x}" y1="8" y2="46">'
                "<title>{when}: {source} → {target} ({operation} by {actor})</title></line>",
                x=_n(x(move.created_at)),
                when=_when(move.created_at),
                source=move.source or "∅",
                target=move.target,
                operation=move.operation,
                actor=move.actor,
            )
        )
    parts.append(
        format_html(
            '<text class="tick" x="{}" y="62">{}</text>'
            '<text class="tick" x="{}" y="62" text-anchor="end">{}</text>',
            RIGHT,
            _when(start),
            WIDTH - RIGHT,
            _when(end),
        )
    )
    chart = Chart("Timeline", [_when(m.created_at) for m in moves], {})
    statuses = " → ".join(m.target for m in moves)
    summary = f"{len(moves)} status changes from {_when(start)} to {_when(end)}: {statuses}."
    return format_html(
        '<figure class="image-chart" id="image-timeline">'
        '<svg role="img" aria-labelledby="image-timeline-t image-timeline-d"'
        ' viewBox="0 0 {} 70" width="100%">'
        '<title id="image-timeline-t">{}</title><desc id="image-timeline-d">{}</desc>{}'
        "</svg></figure>",
        WIDTH,
        chart.title,
        summary,
        mark_safe("".join(parts)),
    )


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def _n(value: float) -> str:
    return f"{value:.1f}"
