"""GpuMonitorView: per-server GPU utilisation and memory with a sparkline, refreshed periodically.

The model is a `scip_jupyter.culling.monitor.GpuMonitor` (the same sources the
GPU culler reads); the view observes its traits and calls ``refresh()``. A MIG
slice is shown as a slice; a CPU server, or a hub without a metrics source,
is said so in words rather than as an empty chart.

    from scip_widgets import GpuMonitorView
    from scip_jupyter.culling.monitor import GpuMonitor
    GpuMonitorView(GpuMonitor.from_service())   # in JupyterLab: readings and notices from the scip-gpu service
"""

from __future__ import annotations

from typing import Any

from jinja2 import DictLoader

from scip_jupyter.culling.monitor import GpuMonitor, GpuRow
from scip_jupyter.i18n import N_, _
from scip_jupyter.templating import environment

from ._base import Parts, Periodic, View, run_soon, set_if_changed

COLUMNS = (("key", N_("Server")), ("holds", N_("GPU")), ("utilisation_text", N_("Utilisation")),
           ("spark", N_("Last minutes")), ("memory_text", N_("Memory")))

#: Autoescaped: every value is model data, never marked safe.
GPU_TABLE = """
{% for n in notices %}<p class="scip-gpu-notice" style="color: #a15c00">{{ n }}</p>{% endfor %}
<table class="scip-gpu-monitor" style="font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px;">
<thead><tr>{% for h in headers %}<th style="text-align:left; padding-right:1em">{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for r in rows %}
<tr data-server="{{ r.key }}"><td>{{ r.key }} <small>{{ r.profile }}</small></td><td>{{ r.holds }}</td>
{% if r.note %}<td colspan="3" class="scip-gpu-note">{{ r.note }}</td>
{% else %}<td>{{ r.utilisation_text }}</td><td class="scip-gpu-spark" style="font-family: monospace">{{ r.spark }}</td><td>{{ r.memory_text }}</td>
{% endif %}</tr>
{% else %}
<tr><td colspan="{{ headers|length }}">{{ _("No servers.") }}</td></tr>
{% endfor %}
</tbody>
</table>
{% if error %}<p class="scip-error">{{ error }}</p>{% endif %}
"""
_ENV = environment(DictLoader({"gpu_table.html": GPU_TABLE}), strict=False)


def render_table(rows: list[GpuRow], error: str = "", notices: list[str] = ()) -> str:
    return _ENV.get_template("gpu_table.html").render(headers=[_(h) for _a, h in COLUMNS], rows=rows, error=error,
                                                      notices=list(notices))


class GpuMonitorView(View):
    """Shows a GpuMonitor. ``parts.rows[key]`` holds each row's named labels (``holds``,
    ``utilisation_text``, ``spark``, ``memory_text``, ``note``); ``parts.error`` the last error."""

    def __init__(self, model: GpuMonitor, auto_refresh: bool = True):
        if not isinstance(model, GpuMonitor):
            raise TypeError(f"model: expected GpuMonitor, not {type(model).__name__}")
        self.model = model
        self.auto_refresh = auto_refresh
        self.parts = Parts(rows={})
        self._periodic: Periodic | None = None

    def __repr__(self) -> str:
        parts = [f"{r.key}: {r.note or r.utilisation_text}" for r in self.model.rows]
        return f"GpuMonitorView({'; '.join(parts) or 'no servers'})"

    def _repr_html_(self) -> str:
        return render_table(self.model.rows, self.model.error, self.model.notices)

    def _build(self):
        import ipywidgets as w

        self._w = w
        p = self.parts
        p.refresh = w.Button(description=_("Refresh"), icon="refresh", layout=w.Layout(width="8em"))
        p.refresh.on_click(lambda _b: run_soon(self.model.refresh()))
        p.table = w.VBox([])
        p.error = w.Label()
        p.error.add_class("scip-gpu-error")
        p.notices = w.VBox([])  # the person's open notices (idle warning, budget)
        p.notices.add_class("scip-gpu-notices")
        box = w.VBox([p.notices, p.refresh, p.table, p.error])
        box.add_class("scip-gpu-monitor")
        self.model.observe(self._on_change, names=["rows", "error", "refreshed_at", "notices"])
        self._update()
        if self.auto_refresh:
            self._periodic = Periodic(self._tick, lambda: self.model.interval)
            self._periodic.start()
        return box

    async def _tick(self) -> None:
        await self.model.refresh()

    def _on_change(self, change: Any) -> None:
        self._update()

    def _row(self, key: str) -> Parts:
        w = self._w
        row = Parts(key=w.Label(key, layout=w.Layout(width="14em")))
        for attr, width in (("holds", "18em"), ("utilisation_text", "6em"), ("spark", "16em"), ("memory_text", "10em"),
                            ("note", "32em")):
            label = w.Label(layout=w.Layout(width=width))
            label.add_class(f"scip-gpu-{attr.replace('_', '-')}")
            setattr(row, attr, label)
        row.box = w.HBox([row.key, row.holds, row.utilisation_text, row.spark, row.memory_text, row.note])
        row.box.add_class("scip-gpu-row")
        return row

    def _update(self) -> None:
        p = self.parts
        if not hasattr(p, "table"):
            return
        wanted = [r.key for r in self.model.rows]
        for key in [k for k in p.rows if k not in wanted]:
            p.rows.pop(key).box.close()
        for r in self.model.rows:
            row = p.rows.get(r.key) or p.rows.setdefault(r.key, self._row(r.key))
            for attr in ("holds", "utilisation_text", "spark", "memory_text", "note"):
                set_if_changed(getattr(row, attr), "value", getattr(r, attr) if not (r.note and attr in (
                    "utilisation_text", "spark", "memory_text")) else "")
        children = tuple(p.rows[k].box for k in wanted)
        if tuple(p.table.children) != children:
            p.table.children = children
        set_if_changed(p.error, "value", self.model.error)
        if [c.value for c in p.notices.children] != list(self.model.notices):
            labels = []
            for text in self.model.notices:
                label = self._w.Label(text)
                label.add_class("scip-gpu-notice")
                labels.append(label)
            p.notices.children = tuple(labels)

    def close(self) -> None:
        if self._periodic is not None:
            self._periodic.stop()
        if hasattr(self.parts, "table"):
            self.model.unobserve(self._on_change, names=["rows", "error", "refreshed_at", "notices"])
        super().close()
