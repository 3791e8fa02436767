"""scip_widgets: notebook-side ipywidgets views over models from scip_jupyter.

Each view takes a model object from scip_jupyter, builds its ipywidgets lazily
(``view.widget()``; ipywidgets is imported there, not here), keeps named
references to its sub-widgets (``view.parts``), and has an autoescaped HTML
fallback (``_repr_html_``). Views never call Slurm or Kubernetes themselves.

    from scip_widgets import ClusterStatusView, CoursePanel, GpuMonitorView, JobMonitorView, LauncherView

See docs/widgets.md.
"""

from __future__ import annotations

from scip_jupyter.lazy import load

#: Public name -> module that defines it (imported on first use).
_EXPORTS = {
    "AllocationUsageView": "scip_widgets.usage",
    "ClusterStatusView": "scip_widgets.status",
    "CoursePanel": "scip_widgets.course_panel",
    "GpuMonitorView": "scip_widgets.gpu_monitor",
    "JobMonitorView": "scip_widgets.monitor",
    "LauncherView": "scip_widgets.launcher",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scip_widgets' has no attribute {name!r}")
    return load(f"{module}:{name}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
