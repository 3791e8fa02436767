"""LauncherView: the ARC launcher form (preset, account, partition, GPU type and
count, walltime, workers; Launch / Scale / Adapt / Shutdown), linked both ways
to a `scip_jupyter.arc.launcher.LauncherModel`, with the cluster status and the
job monitor below it once a cluster runs.

Widget -> model goes through ``model.set``: a value the preset's validator
refuses leaves the model unchanged, puts the widget back to the model's value,
and shows the validator's message (field + allowed values) next to the field.

When the cluster's worker submission fails (phase "failed") or a launch fails
(phase "error"), the model's message (which cluster, Slurm's words, what to
check) is shown in red, escaped, in ``parts.alert`` instead of the plain message.

A preset this server cannot use (``model.unavailable``: in-job, no account, or
outside a held project's jurisdiction) stays in the list, greyed the way the
spawn form greys a profile: marked "(cannot be used here)", listed with its
reason in ``parts.preset_notes``, refused when chosen (the reason appears next
to the field and the choice goes back), and Launch is disabled on it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from scip_jupyter.arc.launcher import FIELDS, LIVE, LauncherModel
from scip_jupyter.options import OptionsError

from scip_jupyter.i18n import N_, _

from ._base import Parts, View, render, run_soon, set_if_changed
from .monitor import JobMonitorView
from .status import ClusterStatusView

#: Field labels (English message ids, translated where shown).
LABELS = {
    "preset": N_("Cluster"),
    "account": N_("Account"),
    "partition": N_("Partition"),
    "gpu_type": N_("GPU type"),
    "gpus": N_("GPUs per job"),
    "walltime": N_("Walltime"),
    "workers": N_("Workers"),
}
#: Buttons and the phases in which each is enabled ("failed": Scale submits again).
ACTIONS = {
    "launch": (N_("Launch"), "success", ("idle", "closed", "error")),
    "scale": (N_("Scale"), "", LIVE),
    "adapt": (N_("Adapt"), "", LIVE),
    "shutdown": (N_("Shutdown"), "danger", (*LIVE, "error")),
}
#: Phases whose message is an error, shown in ``parts.alert``.
ALERT_PHASES = ("failed", "error")
#: Model traits besides the fields that the view follows.
OBSERVED = ("phase", "message", "monitor", "unavailable")
#: Set by the hub (`scip-jupyter up`) when the clusters cannot be used here, with the reason.
ARC_UNAVAILABLE_ENV = "SCIP_ARC_UNAVAILABLE"


def arc_unavailable() -> str:
    """Why ARC cannot be used from this server ("" when it can): shown instead of waiting for workers."""
    import os

    why = os.environ.get(ARC_UNAVAILABLE_ENV, "").strip()
    return _("ARC is unavailable here: %(why)s") % {"why": why} if why else ""


class LauncherView(View):
    """Form + actions for a LauncherModel. Named parts: ``parts.fields[name]``,
    ``parts.errors[name]``, ``parts.buttons[action]``, ``parts.message``, ``parts.alert``,
    ``parts.status_view`` / ``parts.jobs_view`` (after Launch).
    """

    def __init__(self, model: LauncherModel):
        if not isinstance(model, LauncherModel):
            raise TypeError(f"model: expected LauncherModel, not {type(model).__name__}")
        self.model = model
        self.parts = Parts(fields={}, errors={}, buttons={})
        self._syncing = False

    def __repr__(self) -> str:
        m = self.model
        return f"LauncherView(preset={m.preset!r}, workers={m.workers}, phase={m.phase!r})"

    def _repr_html_(self) -> str:
        m = self.model
        return render("launcher.html", phase=m.phase, message=arc_unavailable() or m.message,
                      fields=[(_(LABELS[f]), getattr(m, f)) for f in FIELDS], unavailable=self._greyed())

    def _preset_label(self, name: str) -> str:
        return self.model.presets.get(name).display_name or name

    def _greyed(self) -> list[dict[str, str]]:
        """The presets shown greyed, with their reasons (plain data for the template)."""
        m = self.model
        return [{"name": n, "label": self._preset_label(n), "reason": m.unavailable[n]}
                for n in m.presets.names() if n in m.unavailable]

    # ------------------------------------------------------------ building

    def _build(self):
        import ipywidgets as w

        p, m = self.parts, self.model
        label_layout = w.Layout(width="8em")
        make = {
            "preset": lambda: w.Dropdown(),
            "account": lambda: w.Dropdown(),
            "partition": lambda: w.Dropdown(),
            "gpu_type": lambda: w.Dropdown(),
            "gpus": lambda: w.IntText(),
            "walltime": lambda: w.Combobox(ensure_option=False, continuous_update=False, placeholder="e.g. 03:00:00"),
            "workers": lambda: w.IntText(),
        }
        rows = []
        for name in FIELDS:
            field = make[name]()
            field.add_class(f"scip-launcher-{name.replace('_', '-')}")
            error = w.HTML()
            error.add_class("scip-launcher-error")
            p.fields[name], p.errors[name] = field, error
            field.observe(lambda change, name=name: self._on_widget(name, change), names=["value"])
            rows.append(w.HBox([w.Label(_(LABELS[name]), layout=label_layout), field, error]))
            if name == "preset":  # the presets greyed out, each with its reason
                p.preset_notes = w.HTML()
                p.preset_notes.add_class("scip-launcher-preset-notes")
                rows.append(p.preset_notes)
        for action, (text, style, _phases) in ACTIONS.items():
            button = w.Button(description=_(text), button_style=style)
            button.add_class(f"scip-launcher-{action}")
            button.on_click(lambda _b, action=action: self._on_action(action))
            p.buttons[action] = button
        p.phase = w.Label(layout=w.Layout(min_width="6em"))
        p.phase.add_class("scip-launcher-phase")
        p.message = w.Label()
        p.message.add_class("scip-launcher-message")
        p.alert = w.HTML()
        p.alert.add_class("scip-launcher-alert")
        p.monitor_box = w.VBox([])
        box = w.VBox([
            w.HTML(render("message.html", c="scip-launcher-title", t=_("ARC launcher"))),
            *rows,
            w.HBox(list(p.buttons.values())),
            w.HBox([w.Label(_("Cluster state"), layout=label_layout), p.phase, p.message]),
            p.alert,
            p.monitor_box,
        ])
        box.add_class("scip-launcher")
        m.observe(self._on_model, names=[*FIELDS, *OBSERVED])
        self._sync_all()
        return box

    # ------------------------------------------------------------ model -> widgets

    @contextmanager
    def _sync(self):
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    def _options(self, name: str) -> list:
        m = self.model
        if name == "preset":  # greyed presets stay listed, marked (a Dropdown cannot disable one option)
            return [(_("%(name)s (cannot be used here)") % {"name": self._preset_label(n)} if n in m.unavailable
                     else self._preset_label(n), n) for n in m.choices("preset")]
        if name == "account":
            return _with_current(m.choices("account"), m.account)
        if name == "partition":
            return [(_("(preset default)"), ""), *[(x, x) for x in _with_current(m.choices("partition"), m.partition) if x]]
        if name == "gpu_type":
            return [(_("none"), ""), *[(x, x) for x in m.choices("gpu_type")]]
        if name == "walltime":
            return m.choices("walltime")
        return []

    def _sync_all(self) -> None:
        p, m = self.parts, self.model
        with self._sync():
            for name in FIELDS:
                field = p.fields[name]
                if hasattr(field, "options"):
                    options = self._options(name)
                    if tuple(field.options) != tuple(options):
                        field.options = options
                set_if_changed(field, "value", getattr(m, name))
            set_if_changed(p.preset_notes, "value", render("launcher_presets.html", unavailable=self._greyed()))
            self._sync_actions()

    def _sync_actions(self) -> None:
        p, m = self.parts, self.model
        unavailable = arc_unavailable()
        greyed = m.preset in m.unavailable  # Launch would only get the refusal the notes show
        for action, (_text, _style, phases) in ACTIONS.items():
            blocked = (bool(unavailable) and action in ("launch", "scale", "adapt")) or (greyed and action == "launch")
            set_if_changed(p.buttons[action], "disabled", blocked or m.phase not in phases)
        set_if_changed(p.phase, "value", m.phase)
        failing = m.phase in ALERT_PHASES or bool(unavailable)
        message = unavailable or m.message
        set_if_changed(p.message, "value", "" if failing else message)
        set_if_changed(p.alert, "value", render("error.html", message=message) if failing and message else "")

    def _on_model(self, change: Any) -> None:
        name = change["name"]
        if name == "monitor":
            self._show_monitor(change["new"])
        elif name in ("phase", "message"):
            with self._sync():
                self._sync_actions()
        else:
            self._sync_all()

    def _on_refresh(self, _change: Any) -> None:
        """Each monitor refresh also checks the cluster's last submission (for clusters without listeners)."""
        self.model.sync_cluster()

    def _show_monitor(self, monitor) -> None:
        p = self.parts
        old_monitor = getattr(p, "monitor", None)
        if old_monitor is not None:
            old_monitor.unobserve(self._on_refresh, names=["refreshed_at", "error"])
        p.monitor = monitor
        if monitor is not None:
            monitor.observe(self._on_refresh, names=["refreshed_at", "error"])
        for old in ("status_view", "jobs_view"):
            view = getattr(p, old, None)
            if view is not None:
                view.close()
        if monitor is None:
            p.monitor_box.children = ()
            return
        # The jobs view's periodic callback refreshes the monitor; the status view follows it.
        p.status_view = ClusterStatusView(monitor, auto_refresh=False)
        p.jobs_view = JobMonitorView(monitor)
        p.monitor_box.children = (p.status_view.widget(), p.jobs_view.widget())
        run_soon(monitor.refresh())

    # ------------------------------------------------------------ widgets -> model

    def _on_widget(self, name: str, change: Any) -> None:
        if self._syncing:
            return
        p = self.parts
        try:
            self.model.set(name, change["new"])
        except OptionsError as exc:
            p.errors[name].value = render("error.html", message=str(exc))
            with self._sync():
                p.fields[name].value = getattr(self.model, name)  # back to what the model holds
            return
        p.errors[name].value = ""

    def _on_action(self, action: str) -> None:
        p, m = self.parts, self.model
        for error in p.errors.values():
            error.value = ""
        before = m.message
        try:
            getattr(m, action)()
        except OptionsError as exc:
            target = p.errors.get(exc.field)
            if target is not None:
                target.value = render("error.html", message=str(exc))
            else:
                m.message = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown in the page; never raised into the comm
            if m.message == before:  # the model did not say why: say it here
                m.message = _("%(action)s failed: %(error)s") % {"action": _(ACTIONS[action][0]), "error": exc}

    def close(self) -> None:
        if self._widget_cache is not None:
            self.model.unobserve(self._on_model, names=[*FIELDS, *OBSERVED])
            if getattr(self.parts, "monitor", None) is not None:
                self.parts.monitor.unobserve(self._on_refresh, names=["refreshed_at", "error"])
            for view in (getattr(self.parts, "status_view", None), getattr(self.parts, "jobs_view", None)):
                if view is not None:
                    view.close()
        super().close()


def _with_current(options: list[str], current: str) -> list[str]:
    """Dropdown options always include the model's value (a Dropdown cannot show anything else)."""
    return options if (not current or current in options) else [*options, current]
