"""Widgets in French, and the ARC launcher saying why ARC is unavailable instead of waiting for workers."""

from __future__ import annotations

from scip_jupyter.arc.launcher import LauncherModel
from scip_jupyter.arc.presets import load_presets
from scip_jupyter.i18n import use_locale
from scip_widgets.launcher import ARC_UNAVAILABLE_ENV, LauncherView
from tests.fixtures.common import ROOT


class NoCluster:
    def __init__(self, *args, **kwargs):
        raise AssertionError("no cluster may start when ARC is unavailable")


def launcher() -> LauncherView:
    presets = load_presets(ROOT / "hub_config" / "arc.yaml")
    return LauncherView(LauncherModel(presets, cluster_factory=NoCluster, user="alice"))


def test_launcher_says_why_arc_is_unavailable_and_offers_no_launch(monkeypatch):
    monkeypatch.setenv(ARC_UNAVAILABLE_ENV, "the local Slurm is not running")
    view = launcher()
    with use_locale("fr"):
        html = view._repr_html_()
        widget = view.widget()
    assert "ARC n’est pas disponible ici : the local Slurm is not running" in html
    assert "Lanceur ARC" in html
    assert view.parts.buttons["launch"].disabled and view.parts.buttons["scale"].disabled
    assert "the local Slurm is not running" in view.parts.alert.value
    assert widget is not None


def test_launcher_in_english_without_the_variable(monkeypatch):
    monkeypatch.delenv(ARC_UNAVAILABLE_ENV, raising=False)
    html = launcher()._repr_html_()
    assert "ARC launcher" in html and "unavailable" not in html
