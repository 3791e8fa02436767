"""JobMonitorView: a table of Slurm jobs (state, reason, estimated start, elapsed)
with a Cancel button per job, refreshed by a periodic callback.

The model is a `scip_jupyter.arc.monitor.JobMonitor`; the view only observes
its traits and calls ``refresh()`` / ``cancel(job_id)``.
"""

from __future__ import annotations

import html
from typing import Any

from scip_jupyter.arc.monitor import JobMonitor, JobRow

from scip_jupyter.i18n import N_, _

from ._base import Parts, Periodic, View, render, run_soon, set_if_changed

#: Columns: (JobRow attribute, header). The job id column comes first.
COLUMNS = (
    ("job_id", N_("Job")),
    ("state", N_("State")),
    ("reason", N_("Reason")),
    ("estimated_start", N_("Est. start")),
    ("elapsed", N_("Elapsed")),
    ("time_limit", N_("Walltime")),
)
_WIDTHS = {"job_id": "7em", "state": "6em", "reason": "22em", "estimated_start": "9em", "elapsed": "6em", "time_limit": "6em"}


class JobMonitorView(View):
    """Shows a JobMonitor. ``parts.rows[job_id]`` holds each row's named widgets
    (``state``, ``reason``, ... and ``cancel``); ``parts.error`` the last error.
    Each row carries CSS classes ``scip-job-row`` and ``scip-job-<state>``.
    """

    def __init__(self, model: JobMonitor, auto_refresh: bool = True):
        if not isinstance(model, JobMonitor):
            raise TypeError(f"model: expected JobMonitor, not {type(model).__name__}")
        self.model = model
        self.auto_refresh = auto_refresh
        self.parts = Parts(rows={})
        self._periodic: Periodic | None = None

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for j in self.model.jobs:
            counts[j.phase.value] = counts.get(j.phase.value, 0) + 1
        return f"JobMonitorView({', '.join(f'{k}={v}' for k, v in sorted(counts.items())) or 'no jobs'})"

    def _repr_html_(self) -> str:
        return render("job_table.html", headers=[_(h) for _a, h in COLUMNS], rows=self.model.rows(), error=self.model.error)

    def _build(self):
        import ipywidgets as w

        self._w = w
        p = self.parts
        p.summary = w.Label()
        p.summary.add_class("scip-jobs-summary")
        p.refresh = w.Button(description=_("Refresh"), icon="refresh", layout=w.Layout(width="8em"))
        p.refresh.on_click(lambda _b: run_soon(self.model.refresh()))
        p.header = w.HBox([w.HTML(f"<b>{html.escape(_(h))}</b>", layout=w.Layout(width=_WIDTHS[a])) for a, h in COLUMNS])
        p.table = w.VBox([])
        p.error = w.Label()
        p.error.add_class("scip-jobs-error")
        box = w.VBox([w.HBox([p.summary, p.refresh]), p.header, p.table, p.error])
        box.add_class("scip-job-monitor")
        self.model.observe(self._on_change, names=["jobs", "error", "refreshed_at"])
        self._update()
        if self.auto_refresh:
            # Each tick refreshes the model (its source caches squeue) and re-renders elapsed times.
            self._periodic = Periodic(self._tick, lambda: self.model.interval)
            self._periodic.start()
        return box

    async def _tick(self) -> None:
        await self.model.refresh()
        self._update()

    def _on_change(self, change: Any) -> None:
        self._update()

    def _row(self, job_id: str) -> Parts:
        w = self._w
        row = Parts(job_id=job_id)
        cells = []
        for attr, _header in COLUMNS:
            label = w.Label(layout=w.Layout(width=_WIDTHS[attr]))
            label.add_class(f"scip-job-{attr.replace('_', '-')}")
            setattr(row, attr, label)
            cells.append(label)
        row.cancel = w.Button(description=_("Cancel"), button_style="warning", layout=w.Layout(width="7em"))
        row.cancel.add_class("scip-job-cancel")
        row.cancel.on_click(lambda _b, job_id=job_id: run_soon(self.model.cancel(job_id)))
        row.box = w.HBox([*cells, row.cancel])
        row.box.add_class("scip-job-row")
        row.shown_state = ""
        return row

    def _update(self) -> None:
        p = self.parts
        if not hasattr(p, "table"):  # not built yet
            return
        rows = self.model.rows()
        wanted = [r.job_id for r in rows]
        for job_id in [j for j in p.rows if j not in wanted]:
            p.rows.pop(job_id).box.close()
        for r in rows:
            if r.job_id not in p.rows:
                p.rows[r.job_id] = self._row(r.job_id)
            self._fill(p.rows[r.job_id], r)
        children = tuple(p.rows[j].box for j in wanted)
        if tuple(p.table.children) != children:
            p.table.children = children
        set_if_changed(p.summary, "value", _summary(rows))
        set_if_changed(p.error, "value", self.model.error)

    def _fill(self, row: Parts, r: JobRow) -> None:
        for attr, _header in COLUMNS:
            set_if_changed(getattr(row, attr), "value", str(getattr(r, attr)))
        set_if_changed(row.cancel, "disabled", not r.cancellable)
        if row.shown_state != r.state:
            if row.shown_state:
                row.box.remove_class(f"scip-job-{row.shown_state}")
            row.box.add_class(f"scip-job-{r.state}")
            row.shown_state = r.state

    def close(self) -> None:
        if self._periodic is not None:
            self._periodic.stop()
        if hasattr(self.parts, "table"):
            self.model.unobserve(self._on_change, names=["jobs", "error", "refreshed_at"])
        super().close()


def _summary(rows: list[JobRow]) -> str:
    """'2 running, 1 pending' (or 'No jobs.').

    >>> _summary([JobRow("1", "running"), JobRow("2", "pending"), JobRow("3", "running")])
    '2 running, 1 pending'
    """
    if not rows:
        return _("No jobs.")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    order = ["running", "pending", "suspended", "completed", "failed", "timeout", "cancelled", "unknown"]
    return ", ".join(f"{counts[s]} {s}" for s in order if s in counts)
