"""GPU monitor: model rows from a source (full GPU, MIG slice, CPU, no source), sparkline, escaped HTML, widgets."""

from __future__ import annotations

import asyncio

import pytest

from scip_jupyter.culling.monitor import GpuMonitor, ServerSpec, sparkline
from scip_jupyter.culling.policy import Reading
from scip_jupyter.culling.sources import StaticSource, Target
from scip_jupyter.i18n import use_locale
from scip_widgets.gpu_monitor import GpuMonitorView

FULL = ServerSpec("ana/", "h100-full", "h100", None, Target("ana/", "jupyter-ana"))
MIG = ServerSpec("bo/", "mig-1g-10gb", "h100", "1g.10gb", Target("bo/", "jupyter-bo"))
CPU = ServerSpec("cy/", "cpu-small")
SCRIPT = "<script>alert(1)</script>"


def monitor(source):
    return GpuMonitor([FULL, MIG, CPU], source)


def test_rows_show_use_memory_and_a_mig_slice_as_a_slice():
    src = StaticSource({"ana/": Reading(peak=90, now=85, memory_used=40960, memory_total=81559),
                        "bo/": Reading(peak=3, now=2, memory_used=1024, memory_total=9984)})
    m = monitor(src)
    asyncio.run(m.refresh())
    asyncio.run(m.refresh())
    full, mig, cpu = m.rows
    assert (full.holds, full.utilisation_text, full.memory_text) == ("Full GPU: H100", "85 %", "40.0 / 79.6 GiB")
    assert mig.holds == "MIG slice 1g.10gb: 1/7 of an H100" and mig.memory_text == "1.0 / 9.8 GiB"
    assert full.spark == "▇▇▇" and mig.spark == "▁▁▁"  # primed from the source's history, then one per refresh
    assert cpu.note == "No GPU on this server." and cpu.utilisation is None


def test_without_a_source_the_rows_say_so():
    m = monitor(None)
    asyncio.run(m.refresh())
    assert [r.note for r in m.rows] == ["No GPU metrics source: utilisation is not measured here."] * 2 + [
        "No GPU on this server."]
    with use_locale("fr"):
        asyncio.run(m.refresh())
        assert m.rows[2].note == "Ce serveur n’a pas de GPU." and m.rows[1].holds.startswith("Tranche MIG 1g.10gb")


def test_a_source_that_fails_is_an_error_not_a_crash():
    class Broken:
        name = "prometheus"

        async def snapshot(self, window):
            raise OSError("connection refused")

    m = monitor(Broken())
    asyncio.run(m.refresh())
    assert "connection refused" in m.error and m.rows[0].note == "No GPU metrics for this server yet."


def test_sparkline_scale():
    assert sparkline([]) == "" and sparkline([-5, 0, 100, 250]) == "▁▁██"


def test_html_fallback_escapes_everything():
    spec = ServerSpec(f"{SCRIPT}/", SCRIPT, "h100", None, Target("x", "p"))
    m = GpuMonitor([spec], None)
    html = GpuMonitorView(m, auto_refresh=False)._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "No GPU metrics source" in html


def test_widget_has_named_rows_that_follow_the_model():
    import ipywidgets  # noqa: F401  (a dependency: missing means a broken install, which must fail)
    src = StaticSource({"ana/": Reading(peak=50, now=50)})
    m = monitor(src)
    view = GpuMonitorView(m, auto_refresh=False)
    view.widget()
    assert set(view.parts.rows) == {"ana/", "bo/", "cy/"}
    asyncio.run(m.refresh())
    assert view.parts.rows["ana/"].utilisation_text.value == "50 %"
    assert view.parts.rows["cy/"].note.value == "No GPU on this server." and view.parts.rows["cy/"].spark.value == ""
    m.servers = [FULL]
    asyncio.run(m.refresh())
    assert set(view.parts.rows) == {"ana/"}
    view.close()


def test_for_this_server_reads_the_environment():
    env = {"JUPYTERHUB_USER": "ana", "JUPYTERHUB_SERVER_NAME": "", "SCIP_PROFILE": "mig-1g-10gb",
           "SCIP_GPU_MODEL": "h100", "SCIP_MIG_PROFILE": "1g.10gb", "SCIP_GPU_PROMETHEUS_URL": "http://127.0.0.1:1"}
    m = GpuMonitor.for_this_server(env)
    assert m.source_name == "prometheus" and m.servers[0].target.pod == "jupyter-ana"
    cpu = GpuMonitor.for_this_server({"JUPYTERHUB_USER": "ana"})
    assert cpu.source is None and cpu.rows[0].note == "No GPU on this server."


class FakeService:
    def __init__(self, gpu, notices=()):
        self.answers = {"api/gpu": gpu, "api/notices": {"notices": [{"text": t} for t in notices]}}

    async def get(self, path):
        return self.answers[path]


def test_from_service_shows_this_server_and_the_persons_notices():
    gpu = {"source": "prometheus", "servers": {"ana/": {
        "profile": "mig-3g-40gb", "gpu_share": 3 / 7, "gpu_model": "h100", "mig_profile": "3g.40gb",
        "utilisation": 2.0, "peak": 3.0, "memory_used": 2048, "memory_total": 40192, "history": [90, 40, 2]}}}
    env = {"JUPYTERHUB_USER": "ana", "JUPYTERHUB_SERVER_NAME": ""}
    m = GpuMonitor.from_service(env, client=FakeService(gpu, ["The GPU of your server default has been idle"]))
    asyncio.run(m.refresh())
    (row,) = m.rows
    assert (row.holds, row.utilisation_text, row.spark) == ("MIG slice 3g.40gb: 3/7 of an H100", "2 %", "▇▄▁")
    assert m.notices == ["The GPU of your server default has been idle"] and m.source_name == "prometheus"
    html = GpuMonitorView(m, auto_refresh=False)._repr_html_()
    assert "has been idle" in html


@pytest.mark.parametrize("gpu, note", [
    ({"source": "none", "servers": {"ana/": {"profile": "h100-full", "gpu_share": 1.0, "gpu_model": "h100"}}},
     "No GPU metrics source: utilisation is not measured here."),
    ({"source": "prometheus", "servers": {"ana/": {"profile": "cpu-small", "gpu_share": 0.0}}}, "No GPU on this server."),
    ({"source": "prometheus", "servers": {}}, "No GPU metrics for this server yet."),
])
def test_from_service_says_plainly_what_is_missing(gpu, note):
    m = GpuMonitor.from_service({"JUPYTERHUB_USER": "ana"}, client=FakeService(gpu))
    asyncio.run(m.refresh())
    assert m.rows[0].note == note
