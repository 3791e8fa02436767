"""CoursePanel: the student's course material panel (version, update available, sync button).

The model is `scip_jupyter.courses.panel.CoursePanelModel`; this view only
shows it and forwards the button. In a notebook::

    from scip_widgets.course_panel import CoursePanel
    CoursePanel.for_this_server()          # or CoursePanel(model)
"""

from __future__ import annotations

from scip_jupyter.courses.panel import CoursePanelModel

from scip_jupyter.i18n import _

from ._base import Parts, View, render, run_soon, set_if_changed


class CoursePanel(View):
    """Named parts (``view.parts.sync``, ``.version``, ``.update``, ``.message``), each with a
    CSS class ``scip-course-<name>`` for tests and styling."""

    def __init__(self, model: CoursePanelModel):
        if not isinstance(model, CoursePanelModel):
            raise TypeError(f"model: expected CoursePanelModel, not {type(model).__name__}")
        self.model = model
        self.parts = Parts()
        model.observe(lambda _m: self._update())

    @classmethod
    def for_this_server(cls, course: str | None = None) -> "CoursePanel":
        return cls(CoursePanelModel.for_this_server(course))

    def __repr__(self) -> str:
        m = self.model
        return f"CoursePanel(course={m.course!r}, version={m.version!r}, update_available={m.update_available})"

    def _repr_html_(self) -> str:
        return render("course_panel.html", m=self.model)

    def _build(self):
        import ipywidgets as w

        p = self.parts
        p.title = w.HTML()
        p.version = w.Label()
        p.update = w.Label()
        p.pending = w.Label()
        p.edited = w.Label()
        p.sync = w.Button(description=_("Sync material"), icon="refresh", tooltip=_("Get the instructor's latest material; your edits are kept"))
        p.refresh = w.Button(description=_("Check"), icon="search")
        p.message = w.HTML()
        for name in ("title", "version", "update", "pending", "edited", "sync", "refresh", "message"):
            getattr(p, name).add_class(f"scip-course-{name}")
        p.sync.on_click(lambda _b: run_soon(self.model.sync_async()))
        p.refresh.on_click(lambda _b: self.model.refresh())

        def row(label, value):
            return w.HBox([w.Label(label, layout=w.Layout(width="16em")), value])

        box = w.VBox([
            p.title,
            row(_("Your material version"), p.version),
            row(_("Update available"), p.update),
            row(_("A sync would"), p.pending),
            row(_("Files you edited (kept)"), p.edited),
            w.HBox([p.sync, p.refresh]),
            p.message,
        ])
        box.add_class("scip-course-panel")
        self._widget_cache = box
        self._update()
        return box

    def _update(self) -> None:
        if self._widget_cache is None:
            return
        m, p = self.model, self.parts
        set_if_changed(p.title, "value", render("course_title.html", t=m.title, c=m.course))
        set_if_changed(p.version, "value", m.version)
        set_if_changed(p.update, "value", _("yes (version %(version)s)") % {"version": m.current_version} if m.update_available else _("no"))
        set_if_changed(p.pending, "value", m.pending_text)
        set_if_changed(p.edited, "value", ", ".join(m.edited) or _("none"))
        set_if_changed(p.sync, "disabled", m.busy)
        set_if_changed(p.sync, "description", _("Syncing…") if m.busy else _("Sync material"))
        text = m.error or m.message
        cls = "scip-error" if m.error else "scip-message"
        set_if_changed(p.message, "value", render("message.html", c=cls, t=text) if text else "")
