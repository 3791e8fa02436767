"""GPU-aware culling end to end: a real hub, its `scip-gpu` service (jupyterhub-idle-culler with the GPU
arbiter), a real Prometheus scraping the DCGM test exporter for the servers' pods.

Four servers at once, each with its pod's GPU as the exporter says:

* researcher1, full H100, GPU idle, browser tab active (activity posted every second): warned, then culled;
  the cull is in the ledger with its account, idle time and GPU-hours held idle;
* student1, MIG 1g.10gb, GPU busy: survives every round;
* instructor1, MIG 3g.40gb, GPU idle: warned (the notice is served, in French too), then works on the GPU
  again: the warning is withdrawn and the server survives past its deadline;
* a CPU server (a test account in `students`), whose pod even shows an idle GPU series: untouched, judged
  by the activity rule only.

Nothing measures time: the test waits (bounded) for the service's counted decisions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time

import pytest

from scip_jupyter.culling.monitor import GpuMonitor
from scip_jupyter.culling.records import Records

pytestmark = [pytest.mark.hub, pytest.mark.prometheus]

CPU_USER = "gpucull-cpu1"
SETTINGS = {
    "GPUCulling": {
        "source": "prometheus", "namespace": "scip", "cull_every": 2, "threshold": 5,
        "idle_time": 6, "warning_time": 4, "activity_timeout": 3600,
        # per profile: the instructor's slice gets a longer warning (time to resume)
        "profiles": {"mig-3g-40gb": {"warning_time": 24}},
    },
    "BudgetWatcher": {"enabled": False},
}
WAIT = 180


@pytest.fixture(scope="module")
def gpu_hub(hub_factory, prometheus, dcgm_exporter):
    state = hub_factory.state_dir()
    config = state / "gpu.json"
    settings = json.loads(json.dumps(SETTINGS))
    settings["GPUCulling"]["prometheus_url"] = prometheus.url
    config.write_text(json.dumps(settings))
    # every GPU busy while the servers start; the test idles some of them once all run
    for pod, util, mig in [("jupyter-researcher1", 90, None), ("jupyter-student1", 85, "1g.10gb"),
                           ("jupyter-instructor1", 90, "3g.40gb"), (f"jupyter-{CPU_USER}", 0, None)]:
        dcgm_exporter.set(pod, util=util, mig=mig)
    hub = hub_factory.start(state, env={"SCIP_GPU_CONFIG": str(config)}, name="gpu-cull-hub")
    yield hub
    hub.api("DELETE", f"/users/{CPU_USER}")
    hub_factory.stop(hub)


def status(hub) -> dict:
    r = hub.get("/services/scip-gpu/api/status")
    assert r.status_code == 200, f"status: HTTP {r.status_code} {r.text[:200]}\n{hub.log_tail()}"
    return r.json()["culler"]


def wait_for(hub, what: str, predicate, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = status(hub)
        except AssertionError:
            last = None
        if last is not None and predicate(last):
            return last
        time.sleep(0.3)
    pytest.fail(f"never saw {what}; last status: {json.dumps(last)[:1500]}\n{hub.log_tail(80)}", pytrace=False)


def decisions(st: dict, key: str, action: str) -> int:
    return st["servers"].get(key, {}).get("decisions", {}).get(action, 0)


def wait_for_notices(hub, user: str, lang: str = "en", timeout: float = 30) -> list[dict]:
    """The person's open idle warnings as the service serves them (written within a second of the decision)."""
    deadline = time.monotonic() + timeout
    while True:
        r = hub.get("/services/scip-gpu/api/notices", params={"user": user, "lang": lang})
        assert r.status_code == 200, r.text
        found = [n for n in r.json()["notices"] if n["kind"] == "idle-warning"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def monitor_of(hub, user: str) -> GpuMonitor:
    """The GPU monitor widget's model as the person's JupyterLab builds it: their own token, the service URL."""
    r = hub.api("POST", f"/users/{user}/tokens", json={"scopes": ["access:services!service=scip-gpu"], "note": "test"})
    assert r.status_code == 201, r.text
    env = {"SCIP_GPU_SERVICE_URL": hub.url + "/services/scip-gpu/", "JUPYTERHUB_API_TOKEN": r.json()["token"],
           "JUPYTERHUB_USER": user, "JUPYTERHUB_SERVER_NAME": ""}
    monitor = GpuMonitor.from_service(env)
    asyncio.run(monitor.refresh())
    assert not monitor.error, monitor.error
    return monitor


@pytest.mark.timeout(900)  # four real servers on a shared 2-core machine
def test_gpu_culler_culls_idle_keeps_busy_and_cpu_and_spares_who_resumes(gpu_hub, dcgm_exporter):
    hub = gpu_hub
    assert hub.api("POST", f"/users/{CPU_USER}").status_code == 201
    assert hub.api("POST", "/groups/students/users", json={"users": [CPU_USER]}).status_code == 200
    spawns = {"researcher1": "h100-full", "student1": "mig-1g-10gb", "instructor1": "mig-3g-40gb",
              CPU_USER: "cpu-small"}
    for user, profile in spawns.items():
        r = hub.api("POST", f"/users/{user}/server", json={"profile": profile})
        assert r.status_code in (201, 202), f"{user}: {r.status_code} {r.text}"
    for user in spawns:
        hub.wait_for_server(user)

    # researcher1's browser tab stays active: web activity every second, all along
    stop = threading.Event()

    def active_tab():
        while not stop.is_set():
            now = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
            hub.api("POST", "/users/researcher1/activity", json={"last_activity": now, "servers": {"": {"last_activity": now}}})
            stop.wait(1)

    tab = threading.Thread(target=active_tab, daemon=True)
    tab.start()
    dcgm_exporter.set("jupyter-researcher1", util=0)  # idle from now on, tab active
    dcgm_exporter.set("jupyter-instructor1", util=1, mig="3g.40gb")  # idle (below 5 %) until they resume
    try:
        # instructor1 is warned (idle slice); the notice is served to the person, in their language
        wait_for(hub, "instructor1 warned", lambda s: "instructor1/" in s["warned"])
        (notice,) = wait_for_notices(hub, "instructor1", "fr")
        assert notice["text"].startswith("Le GPU de votre serveur") and notice["deadline"]
        # ... and in the GPU monitor widget (JupyterLab), with their own token: a slice, idle, warned
        (row,) = monitor_of(hub, "instructor1").rows
        assert row.holds == "MIG slice 3g.40gb: 3/7 of an H100" and row.utilisation is not None and row.utilisation < 5
        assert any("has been idle" in n for n in monitor_of(hub, "instructor1").notices)
        # ... and resumes work on the GPU
        dcgm_exporter.set("jupyter-instructor1", util=70, mig="3g.40gb")

        # researcher1: idle GPU, active tab: warned, then culled by the culler service
        wait_for(hub, "researcher1 culled", lambda s: decisions(s, "researcher1/", "cull") >= 1)
        deadline = time.monotonic() + WAIT
        while "" in hub.user("researcher1").get("servers", {}) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "" not in hub.user("researcher1").get("servers", {}), hub.log_tail()

        # let instructor1's warning deadline pass, then count two more rounds
        records = Records(hub.ledger_url)
        warning = next(n for n in records.notices(user="instructor1") if n.kind == "idle-warning")
        while dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) < warning.deadline:
            time.sleep(0.5)
        seen = decisions(status(hub), "instructor1/", "keep")
        final = wait_for(hub, "two rounds after instructor1's deadline",
                         lambda s: decisions(s, "instructor1/", "keep") >= seen + 2
                         and decisions(s, "student1/", "keep") >= 4)
    finally:
        stop.set()
        tab.join(timeout=5)

    running = {u: "" in hub.user(u).get("servers", {}) for u in spawns}
    assert running == {"researcher1": False, "student1": True, "instructor1": True, CPU_USER: True}, hub.log_tail()

    # busy GPU survived every round; the warned person who resumed was never culled, warning withdrawn
    for key in ("student1/", "instructor1/", f"{CPU_USER}/"):
        assert decisions(final, key, "cull") == 0, final["servers"][key]
    assert decisions(final, "student1/", "warn") == 0
    assert final["servers"]["instructor1/"]["reason"].startswith("GPU busy")
    assert "instructor1/" not in final["warned"]
    assert not [n for n in records.notices(user="instructor1", open_only=True)]
    # the busy slice in the monitor widget: utilisation, memory of the slice, a sparkline
    (row,) = monitor_of(hub, "student1").rows
    assert row.holds.startswith("MIG slice 1g.10gb") and row.utilisation == 85 and row.memory_total == 9984
    assert row.spark and not row.note
    (row,) = monitor_of(hub, CPU_USER).rows
    assert row.note == "No GPU on this server."
    # the CPU server is judged by the web-activity rule only, never warned
    assert final["servers"][f"{CPU_USER}/"]["rule"] == "activity"
    assert records.notices(user=CPU_USER) == []

    # the cull is in the ledger: who, profile, account, idle time, GPU-hours held idle
    (cull,) = records.culls()
    assert (cull.user, cull.profile, cull.account) == ("researcher1", "h100-full", "group:researchers")
    assert cull.idle_seconds >= 6 + 4 and cull.gpu_hours_idle == pytest.approx(cull.idle_seconds / 3600, rel=1e-3)
    assert [n.kind for n in records.notices(user="researcher1")] == ["idle-warning"]
    (reclaimed,) = records.reclaimed()
    assert (reclaimed.account, reclaimed.culls) == ("group:researchers", 1)
    records.dispose()
    print(f"\nGPU culling: culled researcher1 after {cull.idle_seconds:.0f} s idle ({cull.gpu_hours_idle:.4f} GPU-h); "
          f"student1 kept {decisions(final, 'student1/', 'keep')} rounds; instructor1 warned, resumed, kept; "
          f"CPU server kept by the activity rule")
