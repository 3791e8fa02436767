"""GPU-aware culling: pure decisions, settings, sources (fake Prometheus answers, fake NVML), the arbiter."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest

from scip_jupyter.culling.arbiter import GpuArbiter, ProfileInfo
from scip_jupyter.culling.policy import Action, Reading, Server, decide
from scip_jupyter.culling.records import Records
from scip_jupyter.culling.settings import GPUCulling, Rule, from_json, to_json, BudgetWatcher
from scip_jupyter.culling.sources import NvmlSource, PrometheusSource, SourceError, StaticSource, Target, parse_vector, promql

NOW = dt.datetime(2026, 12, 1, 10)
RULE = Rule(threshold=5, idle_time=600, warning_time=300)
GPU = Server("ana", "", "h100-full", 1.0, NOW - dt.timedelta(hours=2))
MIG = Server("bo", "", "mig-1g-10gb", 1 / 7, NOW - dt.timedelta(hours=2))
CPU = Server("cy", "", "cpu-small", 0.0, NOW - dt.timedelta(hours=2))
WARNED = NOW - dt.timedelta(seconds=300)


@pytest.mark.parametrize(
    "name, server, reading, warned, inactive, action, rule",
    [
        ("idle GPU, active tab: warned first", GPU, Reading(peak=1), None, 0, Action.warn, "gpu"),
        ("idle GPU, warned long enough, active tab: culled", GPU, Reading(peak=1), WARNED, 0, Action.cull, "gpu"),
        ("idle GPU, warned just now: kept", GPU, Reading(peak=1), NOW - dt.timedelta(seconds=10), 0, Action.keep, "gpu"),
        ("warned person resumed work: kept", GPU, Reading(peak=60), WARNED, 0, Action.keep, "gpu"),
        ("busy GPU, no web activity for days: kept", GPU, Reading(peak=90), None, 10**6, Action.keep, "gpu"),
        ("MIG slice idle: warned", MIG, Reading(peak=0), None, 0, Action.warn, "gpu"),
        ("at the threshold counts as busy", GPU, Reading(peak=5), None, 0, Action.keep, "gpu"),
        ("no GPU metrics, active: activity rule keeps", GPU, None, None, 10, Action.keep, "activity"),
        ("no GPU metrics, inactive: activity rule culls", GPU, None, None, 7200, Action.cull, "activity"),
        ("CPU server, active: kept", CPU, Reading(peak=0), None, 10, Action.keep, "activity"),
        ("CPU server, inactive: culled by activity", CPU, None, None, 3600, Action.cull, "activity"),
    ],
)
def test_cull_decisions(name, server, reading, warned, inactive, action, rule):
    v = decide(server, reading, RULE, warned, NOW, inactive, 3600)
    assert (v.action, v.rule) == (action, rule), f"{name}: {v}"


def test_young_gpu_server_is_not_judged():
    young = Server("ana", "", "h100-full", 1.0, NOW - dt.timedelta(seconds=30))
    assert decide(young, Reading(peak=0), RULE, None, NOW, 0, 3600).action is Action.keep


def test_culled_server_reports_idle_time_from_window_and_warning():
    v = decide(GPU, Reading(peak=0), RULE, NOW - dt.timedelta(seconds=400), NOW, 0, 3600)
    assert v.cull and v.idle_seconds == 1000


def test_profile_off_keeps_activity_rule():
    s = GPUCulling(profiles={"h100-full": {"enabled": False}})
    assert decide(GPU, Reading(peak=0), s.rule_for("h100-full"), None, NOW, 0, 3600).action is Action.keep


def test_per_profile_rules_override_defaults():
    s = GPUCulling(threshold=10, idle_time=900, profiles={"mig-1g-10gb": {"idle_time": 60, "warning_time": 30}})
    assert s.rule_for("mig-1g-10gb") == Rule(10, 60, 30)
    assert s.rule_for("h100-full") == Rule(10, 900, 600)


@pytest.mark.parametrize("bad, problem", [
    ({"h100-full": {"idle": 5}}, "unknown key 'idle'"),
    ({"h100-full": 5}, "must be a dict"),
])
def test_bad_profile_settings_name_the_field(bad, problem):
    with pytest.raises(Exception, match=problem):
        GPUCulling(profiles=bad)


def test_settings_round_trip_to_the_service():
    c, b = from_json(to_json(GPUCulling(idle_time=42, source="prometheus"), BudgetWatcher(clock_speed=3600)))
    assert (c.idle_time, c.source, b.clock_speed) == (42, "prometheus", 3600)


# --- sources ---------------------------------------------------------------------------------------


def _vector(*series):
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"namespace": ns, "pod": pod}, "value": [0, str(v)]} for ns, pod, v in series]}})


async def test_prometheus_source_reads_every_server_in_five_queries():
    urls = []

    async def fetch(url):
        urls.append(url)
        q = url.split("query=", 1)[1]
        if "FB_USED" in q:
            return _vector(*(("jhub", f"jupyter-u{i}", 100) for i in range(1000)))
        if "FB_FREE" in q:
            return _vector(*(("jhub", f"jupyter-u{i}", 900) for i in range(1000)))
        return _vector(*(("jhub", f"jupyter-u{i}", i % 100) for i in range(1000)))

    src = PrometheusSource("http://prom", "jhub", fetch=fetch)
    got = await src.readings([Target(f"u{i}/", f"jupyter-u{i}", "jhub") for i in range(1000)], 600)
    assert len(urls) == 5 and len(got) == 1000
    assert got["u42/"] == Reading(peak=42, now=42, samples=42, memory_used=100, memory_total=1000)


async def test_prometheus_error_answer_is_a_source_error():
    async def fetch(url):
        return json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"})

    with pytest.raises(SourceError, match="bad_data"):
        await PrometheusSource("http://prom", fetch=fetch).readings([Target("a/", "p")], 60)


def test_promql_reads_mig_slices_from_engine_activity():
    q = promql(300)
    assert "DCGM_FI_DEV_GPU_UTIL{pod!=\"\"}[300s]" in q["peak"] and "DCGM_FI_PROF_GR_ENGINE_ACTIVE" in q["peak"]


def test_odd_series_do_not_stop_the_round():
    body = json.dumps({"status": "success", "data": {"result": [
        {"metric": {"pod": "a"}, "value": [0, "NaN?"]}, {"metric": {"pod": "b"}, "value": [0, "3"]}, {"metric": {}}]}})
    assert parse_vector(body) == {("", "b"): 3.0}


class FakeNvml:
    """pynvml's calls the source makes, over a table of devices."""

    def __init__(self, devices):
        self.devices = devices  # index -> {"util": %, "pids": [...]}

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=self.devices[h]["util"])

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=2 * 2**30, total=80 * 2**30)

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=p) for p in self.devices[h]["pids"]]


async def test_nvml_source_matches_a_server_by_its_process_tree():
    nv = FakeNvml({0: {"util": 0, "pids": [1001]}, 1: {"util": 70, "pids": [2002]}})
    t = [0.0]
    src = NvmlSource(nvml=nv, clock=lambda: t[0], tree=lambda pid: {pid, pid + 1})
    idle, busy = Target("ana/", pid=1000), Target("bo/", pid=2001)
    got = await src.readings([idle, busy, Target("cy/", pid=5)], 60)
    assert got["ana/"].peak == 0 and got["bo/"].peak == 70 and "cy/" not in got
    assert got["ana/"].memory_total == 80 * 1024
    nv.devices[0]["util"] = 50
    t[0] = 30
    assert (await src.readings([idle], 60))["ana/"].peak == 50
    nv.devices[0]["util"] = 0
    t[0] = 120  # the busy sample has left the window
    assert (await src.readings([idle], 60))["ana/"].peak == 0


async def test_nvml_has_no_reading_for_a_mig_slice():
    src = NvmlSource(nvml=FakeNvml({0: {"util": 0, "pids": [7]}}), tree=lambda pid: {pid})
    assert await src.readings([Target("a/", pid=7, mig_profile="1g.10gb")], 60) == {}


# --- the arbiter -----------------------------------------------------------------------------------

PROFILES = ProfileInfo({"cpu-small": 0.0, "h100-full": 1.0, "mig-1g-10gb": 1 / 7},
                       {"mig-1g-10gb": "1g.10gb"}, default="cpu-small")


def model(user, profile=None, started=NOW - dt.timedelta(hours=1)):
    return {"full_name": f"{user}/", "started": started.isoformat() + "Z",
            "user_options": {"profile": profile} if profile else {}}


@pytest.fixture
def records(tmp_path):
    r = Records(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield r
    r.dispose()


async def test_arbiter_warns_then_culls_and_records_reclaimed_hours(records):
    clock = [NOW]
    src = StaticSource({"ana/": Reading(peak=0), "bo/": Reading(peak=80)})
    arb = GpuArbiter(GPUCulling(idle_time=600, warning_time=300), PROFILES, src, records,
                     account_of=lambda u, s: "group:lab", clock=lambda: clock[0], cache_seconds=1000)
    call = dict(inactive=dt.timedelta(0), inactive_limit=3600)
    assert await arb(server=model("ana", "h100-full"), **call) is False  # warned
    assert [n.kind for n in records.notices(user="ana", open_only=True)] == ["idle-warning"]
    assert await arb(server=model("bo", "h100-full"), **call) is False  # busy
    assert await arb(server=model("cy"), **call) is False  # CPU, default profile
    clock[0] = NOW + dt.timedelta(seconds=301)
    assert await arb(server=model("ana", "h100-full"), **call) is True
    assert src.calls == 1  # one source read served the whole round
    (cull,) = records.culls()
    assert (cull.user, cull.profile, cull.account, cull.idle_seconds, cull.gpu_hours_idle) == (
        "ana", "h100-full", "group:lab", 901, round(901 / 3600, 6))
    assert records.notices(user="ana", open_only=True) == []
    assert [(r.account, r.culls) for r in records.reclaimed()] == [("group:lab", 1)]


async def test_arbiter_withdraws_the_warning_when_work_resumes(records):
    clock = [NOW]
    src = StaticSource({"ana/": Reading(peak=0)})
    arb = GpuArbiter(GPUCulling(), PROFILES, src, records, clock=lambda: clock[0], cache_seconds=0)
    call = dict(inactive=dt.timedelta(0), inactive_limit=3600, server=model("ana", "mig-1g-10gb"))
    assert await arb(**call) is False and "ana/" in arb.warned
    src.table["ana/"] = Reading(peak=40)
    clock[0] = NOW + dt.timedelta(hours=1)
    assert await arb(**call) is False and "ana/" not in arb.warned
    assert records.notices(user="ana", open_only=True) == [] and records.culls() == []


async def test_a_failing_source_falls_back_to_the_activity_rule(records):
    class Broken:
        name = "prometheus"

        async def snapshot(self, window):
            raise SourceError("down")

    arb = GpuArbiter(GPUCulling(), PROFILES, Broken(), records, cache_seconds=0)
    active = dict(inactive=dt.timedelta(seconds=5), inactive_limit=3600, server=model("ana", "h100-full"))
    assert await arb(**active) is False and arb.source_errors == 1
    stale = dict(active, inactive=dt.timedelta(hours=2))
    assert await arb(**stale) is True
    assert records.culls()[0].idle_seconds == 0  # culled for web inactivity, no GPU idle time claimed


async def test_restarted_arbiter_remembers_whom_it_warned(records):
    records.post("idle-warning", "ana", "", at=NOW)
    arb = GpuArbiter(GPUCulling(), PROFILES, StaticSource({"ana/": Reading(peak=0)}), records,
                     clock=lambda: NOW + dt.timedelta(hours=1))
    assert await arb(inactive=dt.timedelta(0), inactive_limit=3600, server=model("ana", "h100-full")) is True


@pytest.mark.parametrize("name", ["settings", "policy", "sources", "budget", "notices"])
def test_culling_doctests_pass(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"scip_jupyter.culling.{name}"))
    assert result.attempted > 0 and result.failed == 0


async def test_batched_writes_wait_for_one_flush(records):
    src = StaticSource({f"u{i}/": Reading(peak=0) for i in range(50)})
    arb = GpuArbiter(GPUCulling(), PROFILES, src, records, batch=True, cache_seconds=1000, clock=lambda: NOW)
    for i in range(50):
        await arb(inactive=dt.timedelta(0), inactive_limit=3600, server=model(f"u{i}", "h100-full"))
    assert records.notices() == [] and len(arb.warned) == 50  # decided, not yet written
    arb.flush()
    assert len(records.notices(kinds=["idle-warning"], open_only=True)) == 50
