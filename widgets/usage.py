"""AllocationUsageView: an allocation's slots in use, GPU-hours left, and a small daily chart.

The model is a `scip_jupyter.allocations.usage_model.AllocationUsage` (a snapshot),
or a callable returning one (the view calls it on `refresh()`). The view never reads
the ledger itself.

    from scip_widgets import AllocationUsageView
    AllocationUsageView(group_usage(ledger, allocations, "researchers", utcnow()))
"""

from __future__ import annotations

from typing import Callable

from jinja2 import DictLoader

from scip_jupyter.allocations.usage_model import AllocationUsage
from scip_jupyter.i18n import _
from scip_jupyter.templating import environment

from ._base import Parts, View, set_if_changed

_STYLE = "font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; border-collapse: collapse;"

USAGE = """
<div class="scip-usage">
<strong>{{ _("Allocation of %(label)s", label=u.label) }}</strong>
<table style="STYLE">
<tr><th style="text-align:left; padding-right:1em">{{ _("GPU type") }}</th><th style="text-align:right">{{ _("in use") }}</th><th style="text-align:right">{{ _("limit") }}</th></tr>
{% for s in u.slots %}<tr class="scip-usage-slot" data-flavour="{{ s.flavour }}"><td>{{ s.flavour }}</td><td style="text-align:right">{{ s.in_use }}</td><td style="text-align:right">{{ s.limit }}</td></tr>
{% else %}<tr><td colspan="3">{{ _("no GPU slots") }}</td></tr>{% endfor %}
</table>
<p class="scip-usage-hours">{{ hours }}</p>
{{ chart }}
</div>
""".replace("STYLE", _STYLE)

CHART = """<svg class="scip-usage-chart" width="{{ width }}" height="{{ height + 14 }}" role="img" aria-label="{{ label }}">
{% for b in bars %}<rect x="{{ b.x }}" y="{{ b.y }}" width="{{ b.w }}" height="{{ b.h }}" fill="#1976d2"><title>{{ b.title }}</title></rect>
{% endfor %}<text x="0" y="{{ height + 12 }}" font-size="10">{{ first }}</text><text x="{{ width }}" y="{{ height + 12 }}" font-size="10" text-anchor="end">{{ last }}</text>
</svg>"""

_ENV = environment(DictLoader({"usage.html": USAGE, "chart.html": CHART}), strict=False)


def hours_text(u: AllocationUsage) -> str:
    if u.gpu_hours_limit is None:
        return _("{used} GPU-hours used {window} (no limit)").format(used=f"{u.gpu_hours_used:.2f}", window=u.window_label)
    return _("{left} of {limit} GPU-hours left {window} ({used} used)").format(
        left=f"{u.gpu_hours_left:.2f}", limit=f"{u.gpu_hours_limit:g}", window=u.window_label,
        used=f"{u.gpu_hours_used:.2f}")


def chart_svg(u: AllocationUsage, width: int = 280, height: int = 60) -> str:
    """Bars of GPU-hours per day (autoescaped SVG; numbers and dates only)."""
    days = list(u.daily)
    if not days:
        return ""
    top = max((h for _d, h in days), default=0.0) or 1.0
    step = width / len(days)
    bars = []
    for i, (day, hours) in enumerate(days):
        h = round(hours / top * height, 1)
        bars.append({"x": round(i * step + 1, 1), "y": round(height - h, 1), "w": round(max(step - 2, 1), 1), "h": h,
                     "title": f"{day.isoformat()}: {hours:.2f}"})
    return _ENV.get_template("chart.html").render(
        width=width, height=height, bars=bars, first=days[0][0].isoformat(), last=days[-1][0].isoformat(),
        label=_("GPU-hours per day"),
    )


class AllocationUsageView(View):
    """Shows one allocation. Sub-widgets are named: ``parts.title``, ``parts.hours`` (FloatProgress of
    GPU-hours used), ``parts.hours_text``, ``parts.slots[flavour]`` (IntProgress), ``parts.chart``."""

    def __init__(self, model: AllocationUsage | Callable[[], AllocationUsage]):
        if not isinstance(model, AllocationUsage) and not callable(model):
            raise TypeError(f"model: expected AllocationUsage or a callable returning one, not {type(model).__name__}")
        self._load = None if isinstance(model, AllocationUsage) else model
        self.usage = model if isinstance(model, AllocationUsage) else model()
        self.parts = Parts()

    def __repr__(self) -> str:
        u = self.usage
        return f"AllocationUsageView({u.key!r}, used={u.gpu_hours_used:.2f}, limit={u.gpu_hours_limit})"

    def _repr_html_(self) -> str:
        from markupsafe import Markup

        # the chart is our own autoescaped render: safe to insert as markup
        return _ENV.get_template("usage.html").render(u=self.usage, hours=hours_text(self.usage),
                                                      chart=Markup(chart_svg(self.usage)))

    def _build(self):
        import ipywidgets as w

        p = self.parts
        p.title = w.HTML()
        p.hours = w.FloatProgress(min=0.0, max=1.0)
        p.hours.add_class("scip-usage-hours")
        p.hours_text = w.Label()
        p.slots = {}
        rows = []
        for s in self.usage.slots:
            bar = w.IntProgress(min=0, max=max(s.limit, 1), description=s.flavour)
            bar.add_class("scip-usage-slot")
            p.slots[s.flavour] = bar
            rows.append(bar)
        p.chart = w.HTML()
        box = w.VBox([p.title, *rows, p.hours, p.hours_text, p.chart])
        box.add_class("scip-usage")
        self._update()
        return box

    def refresh(self) -> AllocationUsage:
        """Reload from the model callable (a snapshot view keeps its figures)."""
        if self._load is not None:
            self.usage = self._load()
            self._update()
        return self.usage

    def _update(self) -> None:
        if not hasattr(self.parts, "title"):
            return
        from html import escape

        u, p = self.usage, self.parts
        set_if_changed(p.title, "value", f"<b>{escape(_('Allocation of %(label)s') % {'label': u.label})}</b>")
        for s in u.slots:
            bar = p.slots.get(s.flavour)
            if bar is not None:
                set_if_changed(bar, "max", max(s.limit, 1))
                set_if_changed(bar, "value", min(s.in_use, max(s.limit, 1)))
        limit = u.gpu_hours_limit or max(u.gpu_hours_used, 1.0)
        set_if_changed(p.hours, "max", float(limit))
        set_if_changed(p.hours, "value", float(min(u.gpu_hours_used, limit)))
        set_if_changed(p.hours_text, "value", hours_text(u))
        set_if_changed(p.chart, "value", chart_svg(u))

