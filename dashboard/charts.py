"""Server-side SVG charts: inline, no JavaScript, no CDN (the CSP allows none).

Each chart is an ``<svg role="img">`` with a <title> and a <desc> that says in words what the
bars show, and each bar carries its own <title> (a tooltip and a screen-reader label) and a
printed value, so the picture reads without hovering and without colour.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from programs.portfolio import UnitFlow
from programs.stages import Stage

# Tableau 10: distinguishable, and distinct in lightness for the common colour blindnesses.
STAGE_COLOURS: dict[str, str] = {
    Stage.PROPOSED: "#bab0ac",
    Stage.PILOT: "#4e79a7",
    Stage.INTEGRATION: "#76b7b2",
    Stage.HARDENING: "#f28e2b",
    Stage.OPERATIONS: "#59a14f",
    Stage.RETIRED: "#9c755f",
    Stage.ON_HOLD: "#edc948",
    Stage.CANCELLED: "#e15759",
}
_BAR = "#417690"  # the admin's own blue
_TEXT = "#333"
_ids = itertools.count(1)


def _frame(width: int, height: int, title: str, desc: str, body: SafeString) -> SafeString:
    uid = f"chart{next(_ids)}"
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" class="dashboard-chart" '
        'width="{w}" height="{h}" viewBox="0 0 {w} {h}" aria-labelledby="{u}-t {u}-d">'
        '<title id="{u}-t">{t}</title><desc id="{u}-d">{d}</desc>{b}</svg>',
        w=width,
        h=height,
        u=uid,
        t=title,
        d=desc,
        b=body,
    )


def _bars(
    items: Sequence[tuple[str, float, str, str]], *, maximum: float, title: str, desc: str
) -> SafeString:
    """Horizontal bars: (label, value, printed value, colour)."""
    label_w, bar_w, row_h = 130, 330, 26
    width, height = label_w + bar_w + 110, row_h * len(items) + 8
    parts = []
    for n, (label, value, printed, colour) in enumerate(items):
        y = 4 + n * row_h
        w = bar_w * value / maximum if maximum else 0
        parts.append(
            format_html(
                "<g><title>{l}: {p}</title>"
                '<text x="{lx}" y="{ty}" text-anchor="end" font-size="12" fill="{c}">{l}</text>'
                '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{f}" rx="2"/>'
                '<text x="{vx}" y="{ty}" font-size="12" fill="{c}">{p}</text></g>',
                l=label,
                p=printed,
                lx=label_w - 8,
                ty=y + 15,
                c=_TEXT,
                x=label_w,
                y=y,
                w=f"{w:.1f}",
                h=row_h - 8,
                f=colour,
                vx=f"{label_w + w + 6:.1f}",
            )
        )
    return _frame(width, height, title, desc, SafeString("".join(parts)))


def funnel_chart(funnel: Mapping[str, int], stages: Iterable[str]) -> SafeString:
    stages = list(stages)
    items = [(Stage(s).label, funnel[s], str(funnel[s]), STAGE_COLOURS[s]) for s in stages]
    desc = ", ".join(f"{label}: {count}" for label, _, count, _ in items)
    return _bars(
        items,
        maximum=max([funnel[s] for s in stages] + [1]),
        title="Initiatives per stage, in lifecycle order",
        desc=desc,
    )


def unit_stage_chart(matrix: Mapping[str, Mapping[str, int]], stages: list[str]) -> SafeString:
    """One stacked bar per business unit, a segment per stage, with a legend."""
    label_w, bar_w, row_h = 130, 380, 26
    legend_h = 24
    width, height = label_w + bar_w + 50, legend_h + row_h * max(len(matrix), 1) + 8
    biggest = max([sum(cells.values()) for cells in matrix.values()] + [1])
    legend = format_html_join(
        "",
        '<rect x="{}" y="4" width="10" height="10" fill="{}"/>'
        '<text x="{}" y="13" font-size="11" fill="' + _TEXT + '">{}</text>',
        (
            (label_w + i * 85, STAGE_COLOURS[s], label_w + i * 85 + 14, Stage(s).label)
            for i, s in enumerate(stages)
        ),
    )
    rows = []
    descs = []
    for n, (unit, cells) in enumerate(matrix.items()):
        y = legend_h + n * row_h
        x = float(label_w)
        segments = []
        for stage in stages:
            count = cells.get(stage, 0)
            if not count:
                continue
            w = bar_w * count / biggest
            segments.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" '
                    'stroke="#fff"><title>{}, {}: {}</title></rect>',
                    f"{x:.1f}",
                    y,
                    f"{w:.1f}",
                    row_h - 8,
                    STAGE_COLOURS[stage],
                    unit,
                    Stage(stage).label,
                    count,
                )
            )
            x += w
        total = sum(cells.get(s, 0) for s in stages)
        descs.append(
            f"{unit}: " + ", ".join(f"{Stage(s).label} {cells[s]}" for s in stages if cells.get(s))
        )
        rows.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="end" font-size="12" fill="{}">{}</text>{}'
                '<text x="{}" y="{}" font-size="12" fill="{}">{}</text>',
                label_w - 8,
                y + 15,
                _TEXT,
                unit,
                SafeString("".join(segments)),
                f"{x + 6:.1f}",
                y + 15,
                _TEXT,
                total,
            )
        )
    return _frame(
        width,
        height,
        "Initiatives by business unit and stage",
        "; ".join(descs) or "No initiatives",
        SafeString(legend + "".join(rows)),
    )


def conversion_chart(flows: list[UnitFlow]) -> SafeString:
    items = []
    for flow in flows:
        label = flow.business_unit or "All units"
        rate = flow.conversion
        if rate is None:
            items.append((label, 0.0, "no pilot yet", _BAR))
        else:
            printed = f"{rate:.0%} ({flow.reached_operations} of {flow.reached_pilot})"
            items.append((label, rate, printed, _BAR))
    desc = "; ".join(f"{label}: {printed}" for label, _, printed, _ in items)
    return _bars(
        items,
        maximum=1.0,
        title="Pilot to operations conversion by business unit",
        desc=desc or "No initiative has reached pilot",
    )


def budget_bar(used: float | None) -> SafeString:
    """A small bar of time in stage against the stall budget; the tick marks 100%."""
    if used is None:
        return SafeString("")
    width, full = 120, 80  # 100% of the budget at 80px leaves room to show overruns
    shown = min(used, width / full)
    colour = "#59a14f" if used < 0.75 else "#edc948" if used < 1 else "#e15759"
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{w}" height="14" '
        'aria-label="{p} of the expected time used">'
        '<rect x="0" y="2" width="{b}" height="10" fill="{c}"/>'
        '<line x1="{f}" x2="{f}" y1="0" y2="14" stroke="#333" stroke-width="1"/></svg>',
        w=width,
        p=f"{used:.0%}",
        b=f"{shown * full:.1f}",
        c=colour,
        f=full,
    )
