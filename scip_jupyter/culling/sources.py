"""Where GPU utilisation comes from: Prometheus (DCGM exporter), NVML, or a static table.

Every source answers one question for a batch of servers: over the last
`window` seconds, what was each one's peak GPU utilisation, its latest value and
its memory (`policy.Reading`)? One call serves a whole cull round, so 1,000
servers cost a handful of PromQL queries, not 1,000.

* `PrometheusSource`: the DCGM exporter's metrics, scraped by Prometheus, read
  through its HTTP API (`/api/v1/query`, `/api/v1/query_range`). A full GPU has
  `DCGM_FI_DEV_GPU_UTIL` (percent); a MIG slice has no such field (DCGM does not
  report it per instance) and is read from `DCGM_FI_PROF_GR_ENGINE_ACTIVE`
  (a ratio, times 100). Memory: `DCGM_FI_DEV_FB_USED` and `DCGM_FI_DEV_FB_FREE`
  (MiB). Series are matched to servers by their `namespace` and `pod` labels
  (the exporter's Kubernetes pod mapping).
* `NvmlSource`: this host's NVIDIA GPUs through `nvidia-ml-py` (module
  `pynvml`, injectable for tests). A server's GPUs are those running a process
  of its process tree (its spawner state's `pid`); utilisation is sampled into
  a short history per device, since NVML only knows the present. NVML does not
  report utilisation per MIG instance: such servers get no reading (activity rule).
* `StaticSource`: readings given by the caller (tests, the benchmark).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .policy import Reading

UTIL = "DCGM_FI_DEV_GPU_UTIL"
MIG_ACTIVE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"


class SourceError(RuntimeError):
    """A metrics source did not answer (the arbiter falls back to the activity rule)."""


@dataclass(frozen=True)
class Target:
    """How a source finds one server's GPU: its pod (Prometheus) or its process (NVML)."""

    key: str  # "user/server"
    pod: str = ""
    namespace: str = ""
    pid: int | None = None
    mig_profile: str | None = None


_SAFE = re.compile(r"[^a-z0-9-]")


def pod_name(template: str, user: str, server: str) -> str:
    """A server's pod name from a KubeSpawner-style template (safe characters only).

    >>> pod_name("jupyter-{user_server}", "ana", ""), pod_name("jupyter-{user_server}", "Ana.B", "gpu")
    ('jupyter-ana', 'jupyter-ana-b--gpu')
    """
    u, s = _SAFE.sub("-", user.lower()), _SAFE.sub("-", server.lower())
    return template.format(username=u, servername=s, user_server=f"{u}--{s}" if s else u)


def target_for(server_model: Mapping[str, Any], template: str, namespace: str, mig_profile: str | None) -> Target:
    """The target of one server from its hub API model (state when the hub gives it)."""
    user, _, name = str(server_model.get("full_name", "/")).partition("/")
    state = server_model.get("state") or {}
    pod = state.get("pod_name") or pod_name(template, user, name)
    return Target(
        key=f"{user}/{name}", pod=pod, namespace=state.get("namespace") or namespace,
        pid=state.get("pid"), mig_profile=mig_profile,
    )


class Snapshot:
    """What a source saw in one read: `get(target)` -> its Reading, or None when it has none."""

    def __init__(self, get: Callable[[Target], Reading | None], size: int = 0):
        self.get = get
        self.size = size

    def many(self, targets: Iterable[Target]) -> dict[str, Reading]:
        return {t.key: r for t in targets if (r := self.get(t)) is not None}


class StaticSource:
    """Readings by server key, set by the caller (tests, benchmarks)."""

    name = "static"

    def __init__(self, readings: Mapping[str, Reading] | None = None):
        self.table: dict[str, Reading] = dict(readings or {})
        self.calls = 0

    async def snapshot(self, window: float) -> "Snapshot":
        self.calls += 1
        table = dict(self.table)
        return Snapshot(lambda t: table.get(t.key))

    async def readings(self, targets: Iterable[Target], window: float) -> dict[str, Reading]:
        return (await self.snapshot(window)).many(targets)

    async def history(self, target: Target, seconds: float, step: float) -> list[float]:
        r = self.table.get(target.key)
        return [r.now if r.now is not None else r.peak] if r else []


# --- Prometheus ---------------------------------------------------------------------------------------


def _selector(namespace: str) -> str:
    return "{" + (f'namespace="{namespace}"' if namespace else 'pod!=""') + "}"


def promql(window: float, namespace: str = "") -> dict[str, str]:
    """The PromQL of one round: peak, latest, sample count and memory per (namespace, pod).

    >>> promql(600, "jhub")["peak"]
    'max by (namespace, pod) (max_over_time(DCGM_FI_DEV_GPU_UTIL{namespace="jhub"}[600s])) or max by (namespace, pod) (max_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE{namespace="jhub"}[600s]) * 100)'
    """
    sel, w = _selector(namespace), f"[{int(window)}s]"
    by = "max by (namespace, pod)"
    return {
        "peak": f"{by} (max_over_time({UTIL}{sel}{w})) or {by} (max_over_time({MIG_ACTIVE}{sel}{w}) * 100)",
        "now": f"{by} ({UTIL}{sel}) or {by} ({MIG_ACTIVE}{sel} * 100)",
        "samples": f"{by} (count_over_time({UTIL}{sel}{w})) or {by} (count_over_time({MIG_ACTIVE}{sel}{w}))",
        "used": f"sum by (namespace, pod) ({FB_USED}{sel})",
        "free": f"sum by (namespace, pod) ({FB_FREE}{sel})",
    }


def parse_vector(body: bytes | str) -> dict[tuple[str, str], float]:
    """An instant-query answer -> {(namespace, pod): value}; raises SourceError on an error answer.

    >>> parse_vector('{"status":"success","data":{"resultType":"vector","result":['
    ...              '{"metric":{"namespace":"j","pod":"p"},"value":[1,"42"]}]}}')
    {('j', 'p'): 42.0}
    """
    data = json.loads(body)
    if data.get("status") != "success":
        raise SourceError(f"Prometheus: {data.get('errorType', 'error')}: {data.get('error', '')}")
    out = {}
    for item in data["data"]["result"]:
        labels = item.get("metric", {})
        try:
            out[(labels.get("namespace", ""), labels.get("pod", ""))] = float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # one odd series never stops the round
    return out


class PrometheusSource:
    """DCGM metrics through the Prometheus HTTP API (see the module docstring)."""

    name = "prometheus"

    def __init__(self, url: str, namespace: str = "", timeout: float = 10.0, fetch: Callable | None = None):
        if not url:
            raise ValueError("PrometheusSource: no url (set GPUCulling.prometheus_url)")
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.timeout = timeout
        self._fetch = fetch
        self.queries = 0

    async def _get(self, path: str, params: dict) -> bytes:
        self.queries += 1
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        if self._fetch is not None:
            return await self._fetch(url)
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError

        try:
            resp = await AsyncHTTPClient().fetch(url, request_timeout=self.timeout, connect_timeout=self.timeout)
        except HTTPClientError as exc:  # Prometheus answers 400/422 with a JSON error
            if exc.response is not None and exc.response.body:
                return exc.response.body
            raise SourceError(f"Prometheus at {self.url}: {exc}") from exc
        except OSError as exc:
            raise SourceError(f"Prometheus at {self.url} did not answer: {exc}") from exc
        return resp.body

    async def query(self, expr: str) -> dict[tuple[str, str], float]:
        return parse_vector(await self._get("/api/v1/query", {"query": expr}))

    async def snapshot(self, window: float) -> "Snapshot":
        """Every server's reading over the last `window` s: five PromQL queries, whatever the count."""
        queries = promql(window, self.namespace)
        names = list(queries)
        answers = await asyncio.gather(*(self.query(queries[n]) for n in names))
        # index by pod alone too: a target without a namespace matches any namespace
        by_pod: dict[str, dict[str, float]] = {}
        for n, vector in zip(names, answers, strict=True):
            for (ns, pod), v in vector.items():
                by_pod.setdefault(f"{ns}/{pod}", {})[n] = v
                by_pod.setdefault(f"*/{pod}", {}).setdefault(n, v)

        def get(t: Target) -> Reading | None:
            values = by_pod.get(f"{t.namespace or '*'}/{t.pod}")
            if not values or "peak" not in values:
                return None
            used, free = values.get("used"), values.get("free")
            return Reading(
                peak=values["peak"], now=values.get("now"), samples=int(values.get("samples", 1)),
                memory_used=used, memory_total=(used + free) if used is not None and free is not None else None,
            )

        return Snapshot(get, size=len(answers[0]))

    async def readings(self, targets: Iterable[Target], window: float) -> dict[str, Reading]:
        return (await self.snapshot(window)).many(targets)

    async def history(self, target: Target, seconds: float, step: float) -> list[float]:
        """Utilisation samples of one server over the last `seconds` (for the monitor's sparkline)."""
        sel = "{" + f'pod="{target.pod}"' + (f',namespace="{target.namespace}"' if target.namespace else "") + "}"
        expr = f"max({UTIL}{sel}) or max({MIG_ACTIVE}{sel} * 100)"
        end = time.time()
        body = await self._get(
            "/api/v1/query_range", {"query": expr, "start": end - seconds, "end": end, "step": max(step, 1)}
        )
        data = json.loads(body)
        if data.get("status") != "success":
            raise SourceError(f"Prometheus: {data.get('error', '')}")
        result = data["data"]["result"]
        return [float(v) for _t, v in result[0]["values"]] if result else []


# --- NVML ---------------------------------------------------------------------------------------------


def descendants(pid: int, proc: Path = Path("/proc")) -> set[int]:
    """`pid` and every process below it (from /proc/*/stat parent ids)."""
    children: dict[int, list[int]] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            ppid = int(text.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(children.get(p, []))
    return out


@dataclass
class _Device:
    history: deque = field(default_factory=lambda: deque(maxlen=4096))  # (monotonic time, percent)
    used: float | None = None
    total: float | None = None
    pids: set[int] = field(default_factory=set)


class NvmlSource:
    """This host's GPUs through NVML (see the module docstring); `nvml` is the pynvml module."""

    name = "nvml"

    def __init__(self, nvml: Any = None, clock: Callable[[], float] = time.monotonic,
                 tree: Callable[[int], set[int]] = descendants):
        if nvml is None:
            import pynvml as nvml  # nvidia-ml-py
        self.nvml = nvml
        self.clock = clock
        self.tree = tree
        nvml.nvmlInit()
        self.count = nvml.nvmlDeviceGetCount()
        self.devices = {i: _Device() for i in range(self.count)}

    @classmethod
    def available(cls) -> bool:
        """True when NVML loads and sees at least one GPU."""
        try:
            return cls().count > 0
        except Exception:  # noqa: BLE001 (no driver, no library, no GPU: all mean "no")
            return False

    def sample(self) -> None:
        """Read every device once (the service calls this every few seconds)."""
        nv, now = self.nvml, self.clock()
        for i, dev in self.devices.items():
            h = nv.nvmlDeviceGetHandleByIndex(i)
            dev.history.append((now, float(nv.nvmlDeviceGetUtilizationRates(h).gpu)))
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            dev.used, dev.total = mem.used / 2**20, mem.total / 2**20
            dev.pids = {p.pid for p in nv.nvmlDeviceGetComputeRunningProcesses(h)}

    async def snapshot(self, window: float) -> "Snapshot":
        self.sample()
        since = self.clock() - window
        devices = list(self.devices.values())

        def get(t: Target) -> Reading | None:
            if t.pid is None or t.mig_profile:
                return None  # no process to match, or a MIG slice (NVML has no per-instance utilisation)
            tree = self.tree(t.pid)
            mine = [d for d in devices if d.pids & tree]
            values = [v for d in mine for at, v in d.history if at >= since]
            if not values:
                return None
            return Reading(
                peak=max(values), now=max(d.history[-1][1] for d in mine), samples=len(values),
                memory_used=sum(d.used or 0 for d in mine), memory_total=sum(d.total or 0 for d in mine),
            )

        return Snapshot(get, size=len(devices))

    async def readings(self, targets: Iterable[Target], window: float) -> dict[str, Reading]:
        return (await self.snapshot(window)).many(targets)

    async def history(self, target: Target, seconds: float, step: float) -> list[float]:
        if target.pid is None:
            return []
        tree = self.tree(target.pid)
        since = self.clock() - seconds
        mine = [d for d in self.devices.values() if d.pids & tree]
        return [v for d in mine[:1] for at, v in d.history if at >= since]


def make_source(kind: str, prometheus_url: str = "", namespace: str = ""):
    """The source the settings name ("auto" picks as `GPUCulling.source` says); None for "none"."""
    if kind == "prometheus" or (kind == "auto" and prometheus_url):
        return PrometheusSource(prometheus_url, namespace)
    if kind == "nvml":
        return NvmlSource()
    if kind == "auto" and NvmlSource.available():
        return NvmlSource()
    return None
