"""ClusterStatusView: the ARC cluster status (preset, workers, scheduler, dashboard).

The model is a `scip_jupyter.arc.monitor.ClusterStatus` (a snapshot) or a live
`JobMonitor` whose `status` trait the view follows (and refreshes periodically).
"""

from __future__ import annotations

from typing import Any

from scip_jupyter.arc.monitor import ClusterStatus, JobMonitor

from scip_jupyter.i18n import N_, _

from ._base import Parts, Periodic, View, render, run_soon, set_if_changed

#: Rows of the status grid: (sub-widget name, label, ClusterStatus attribute).
ROWS = (
    ("state", N_("State"), "state"),
    ("workers_requested", N_("Workers requested"), "workers_requested"),
    ("workers_pending", N_("Pending in Slurm"), "workers_pending"),
    ("workers_running", N_("Running in Slurm"), "workers_running"),
    ("workers_connected", N_("Connected to Dask"), "workers_connected"),
    ("scheduler_address", N_("Scheduler"), "scheduler_address"),
)


def safe_href(link: str) -> str:
    """Only http(s) or server-relative links become clickable (no ``javascript:``).

    >>> safe_href("http://127.0.0.1:8787/status"), safe_href("javascript:alert(1)"), safe_href("/user/a/proxy/8787/status")
    ('http://127.0.0.1:8787/status', '', '/user/a/proxy/8787/status')
    """
    link = (link or "").strip()
    # Browsers drop tabs and newlines and read "\\" as "/" ("/\\host", "/\n/host" reach another
    # host), so a link holding any of them, a space, a control character or a quote is refused.
    if any(ch <= " " or ch in "\\\"'<>`\x7f" for ch in link):
        return ""
    if link.startswith(("http://", "https://")) or (link.startswith("/") and not link.startswith("//")):
        return link
    return ""


class ClusterStatusView(View):
    """Shows one cluster's status. ``ClusterStatusView(status_or_monitor)``; display it in a cell.

    Sub-widgets are named (``view.parts.workers_running`` ...) and carry the CSS
    class ``scip-status-<name with '-'>`` (``scip-status-workers-running``) for tests and styling.
    """

    def __init__(self, model: ClusterStatus | JobMonitor, auto_refresh: bool = True):
        if not isinstance(model, (ClusterStatus, JobMonitor)):
            raise TypeError(f"model: expected ClusterStatus or JobMonitor, not {type(model).__name__}")
        self.model = model
        self.auto_refresh = auto_refresh
        self.parts = Parts()
        self._periodic: Periodic | None = None

    @property
    def status(self) -> ClusterStatus:
        return self.model.status if isinstance(self.model, JobMonitor) else self.model

    def __repr__(self) -> str:
        s = self.status
        return (
            f"ClusterStatusView(preset={s.preset!r}, state={s.state!r}, requested={s.workers_requested}, "
            f"pending={s.workers_pending}, running={s.workers_running}, connected={s.workers_connected})"
        )

    def _repr_html_(self) -> str:
        s = self.status
        return render("cluster_status.html", s=s, dashboard_href=safe_href(s.dashboard_link))

    def _build(self):
        import ipywidgets as w

        p = self.parts
        p.title = w.HTML()
        p.title.add_class("scip-status-title")
        rows = []
        for name, label, _attr in ROWS:
            value = w.Label()
            value.add_class(f"scip-status-{name.replace('_', '-')}")
            setattr(p, name, value)
            rows.append(w.HBox([w.Label(_(label), layout=w.Layout(width="11em")), value]))
        p.dashboard = w.HTML()
        p.dashboard.add_class("scip-status-dashboard")
        rows.append(w.HBox([w.Label(_("Dashboard"), layout=w.Layout(width="11em")), p.dashboard]))
        p.message = w.Label()
        p.message.add_class("scip-status-message")
        box = w.VBox([p.title, *rows, p.message])
        box.add_class("scip-cluster-status")
        self._update()
        if isinstance(self.model, JobMonitor):
            self.model.observe(self._on_status, names=["status"])
            if self.auto_refresh:
                self._periodic = Periodic(self.model.refresh, lambda: self.model.interval)
                self._periodic.start()
        return box

    def _on_status(self, change: Any) -> None:
        self._update()

    def update(self, status: ClusterStatus) -> None:
        """Show a new snapshot (for a view built on a ClusterStatus)."""
        if isinstance(self.model, JobMonitor):
            raise TypeError("this view follows a JobMonitor: refresh the monitor instead")
        self.model = status
        self._update()

    def refresh(self) -> Any:
        """Refresh the live model now (no-op for a snapshot)."""
        if isinstance(self.model, JobMonitor):
            return run_soon(self.model.refresh())
        return None

    def _update(self) -> None:
        if not hasattr(self.parts, "title"):  # not built yet: nothing to update
            return
        s, p = self.status, self.parts
        set_if_changed(p.title, "value", render("status_title.html", s=s))
        for name, _label, attr in ROWS:
            value = getattr(s, attr)
            set_if_changed(getattr(p, name), "value", str(value) if value not in ("", None) else "(none)")
        href = safe_href(s.dashboard_link)
        set_if_changed(p.dashboard, "value", render("link.html", href=href, text=s.dashboard_link))
        set_if_changed(p.message, "value", s.message)

    def close(self) -> None:
        if self._periodic is not None:
            self._periodic.stop()
        if isinstance(self.model, JobMonitor):
            self.model.unobserve(self._on_status, names=["status"])
        super().close()

