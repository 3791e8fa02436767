"""The GPU monitor's model: per-server GPU utilisation and memory, with a short history.

Reads the same sources as the culler (`sources.py`: Prometheus/DCGM, NVML), so
what a person sees is what the culler judges. The view (`scip_widgets.gpu_monitor`)
only observes `rows`, `error` and `refreshed_at` and calls `refresh()`.

    monitor = GpuMonitor.from_service()       # in JupyterLab: this server through the scip-gpu service
    monitor = GpuMonitor.for_this_server()    # or straight from a source (Prometheus URL, NVML)
    await monitor.refresh()
    monitor.rows[0].utilisation, monitor.rows[0].spark

A CPU server's row says "No GPU on this server."; without a metrics source every
GPU row says so plainly; a MIG slice is shown as a slice ("MIG slice 1g.10gb:
1/7 of an H100"), its memory that of the slice.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from traitlets import Float, HasTraits, Instance, List, Unicode

from ..i18n import _
from .sources import SourceError, Target, make_source, pod_name

BARS = "▁▂▃▄▅▆▇█"
#: Samples kept per server (one per refresh).
HISTORY = 60


def sparkline(values: list[float], top: float = 100.0) -> str:
    """Utilisation samples (0..top) as a row of block characters.

    >>> sparkline([0, 50, 100, 12.5])
    '▁▅█▂'
    """
    out = []
    for v in values:
        v = min(max(v, 0.0), top)
        out.append(BARS[min(int(v / top * (len(BARS) - 1) + 0.5), len(BARS) - 1)])
    return "".join(out)


@dataclass
class ServerSpec:
    """One server the monitor shows: its key, profile, what it holds, and how a source finds it."""

    key: str
    profile: str
    gpu_model: str | None = None  # None: a CPU server
    mig_profile: str | None = None
    target: Target | None = None

    @property
    def has_gpu(self) -> bool:
        return self.gpu_model is not None


def slice_label(gpu_model: str | None, mig_profile: str | None, gpu_count: int = 1) -> str:
    """What the server holds, in words: a MIG slice as a slice.

    >>> slice_label("h100", "3g.40gb"), slice_label("h100", None)
    ('MIG slice 3g.40gb: 3/7 of an H100', 'Full GPU: H100')
    """
    if gpu_model is None:
        return _("No GPU")
    model = gpu_model.upper()
    if mig_profile:
        share = Fraction(min(int(mig_profile.split("g.", 1)[0]), 7), 7)
        return _("MIG slice {slice}: {share} of an {model}").format(slice=mig_profile, share=share, model=model)
    if gpu_count > 1:
        return _("{count} full GPUs: {model}").format(count=gpu_count, model=model)
    return _("Full GPU: {model}").format(model=model)


@dataclass
class GpuRow:
    key: str
    profile: str
    holds: str  # slice_label
    utilisation: float | None = None
    memory_used: float | None = None  # MiB
    memory_total: float | None = None
    history: list[float] = field(default_factory=list)
    note: str = ""  # says plainly why there is no figure

    @property
    def spark(self) -> str:
        return sparkline(self.history)

    @property
    def utilisation_text(self) -> str:
        return "—" if self.utilisation is None else f"{self.utilisation:.0f} %"

    @property
    def memory_text(self) -> str:
        if self.memory_used is None:
            return "—"
        total = f" / {self.memory_total / 1024:.1f}" if self.memory_total else ""
        return f"{self.memory_used / 1024:.1f}{total} GiB"


class ServiceClient:
    """The `scip-gpu` service as a server sees it: `$SCIP_GPU_SERVICE_URL` with the server's own token."""

    def __init__(self, url: str, token: str, timeout: float = 10.0):
        self.url, self.token, self.timeout = url.rstrip("/") + "/", token, timeout

    async def get(self, path: str) -> dict:
        import json

        from tornado.httpclient import AsyncHTTPClient, HTTPClientError

        try:
            resp = await AsyncHTTPClient().fetch(self.url + path, headers={"Authorization": f"token {self.token}"},
                                                 request_timeout=self.timeout)
        except HTTPClientError as exc:
            raise SourceError(f"scip-gpu service: HTTP {exc.code}") from exc
        return json.loads(resp.body)


class GpuMonitor(HasTraits):
    """Per-server GPU rows, refreshed from a source or the `scip-gpu` service (see the module docstring)."""

    rows = List()
    #: The person's open notices (idle warning, budget), as sentences; from the service only.
    notices = List()
    error = Unicode("")
    refreshed_at = Instance(dt.datetime, allow_none=True)
    interval = Float(10.0, help="Seconds between refreshes of the view.")

    def __init__(self, servers: list[ServerSpec], source: Any = None, window: float = 60.0,
                 service: ServiceClient | None = None, **kwargs):
        super().__init__(**kwargs)
        self.servers = list(servers)
        self.source = source
        self.service = service
        self._service_source = ""
        self.window = window
        self._history: dict[str, deque] = {s.key: deque(maxlen=HISTORY) for s in self.servers}
        self._primed: set[str] = set()
        self.rows = [self._row(s, None) for s in self.servers]

    @property
    def source_name(self) -> str:
        if self.service is not None:
            return self._service_source
        return getattr(self.source, "name", "") if self.source is not None else ""

    @classmethod
    def from_service(cls, env=os.environ, client: ServiceClient | None = None) -> "GpuMonitor":
        """This person's servers as the `scip-gpu` service sees them (what JupyterLab shows): readings,
        history and open notices, through `$SCIP_GPU_SERVICE_URL` with `$JUPYTERHUB_API_TOKEN`."""
        client = client or ServiceClient(env.get("SCIP_GPU_SERVICE_URL", ""), env.get("JUPYTERHUB_API_TOKEN", ""))
        user, name = env.get("JUPYTERHUB_USER", ""), env.get("JUPYTERHUB_SERVER_NAME", "")
        return cls([ServerSpec(f"{user}/{name}", "")], service=client)

    @classmethod
    def for_this_server(cls, env=os.environ, source: Any = None) -> "GpuMonitor":
        """This notebook server, from its environment (JUPYTERHUB_USER, JUPYTERHUB_SERVER_NAME, SCIP_PROFILE,
        SCIP_GPU_MODEL, SCIP_MIG_PROFILE; the source from SCIP_GPU_PROMETHEUS_URL, else NVML when a GPU answers)."""
        user, name = env.get("JUPYTERHUB_USER", ""), env.get("JUPYTERHUB_SERVER_NAME", "")
        spec = ServerSpec(
            key=f"{user}/{name}", profile=env.get("SCIP_PROFILE", ""), gpu_model=env.get("SCIP_GPU_MODEL") or None,
            mig_profile=env.get("SCIP_MIG_PROFILE") or None,
            target=Target(f"{user}/{name}", pod=env.get("SCIP_POD_NAME") or pod_name("jupyter-{user_server}", user, name),
                          namespace=env.get("SCIP_POD_NAMESPACE", ""), pid=os.getppid(),
                          mig_profile=env.get("SCIP_MIG_PROFILE") or None),
        )
        if source is None and spec.has_gpu:
            try:
                source = make_source("auto", env.get("SCIP_GPU_PROMETHEUS_URL", ""), spec.target.namespace)
            except Exception:  # noqa: BLE001 - no source is a state the view says plainly
                source = None
        return cls([spec], source)

    def _row(self, s: ServerSpec, reading) -> GpuRow:
        row = GpuRow(s.key, s.profile, slice_label(s.gpu_model, s.mig_profile), history=list(self._history[s.key]))
        if not s.has_gpu:
            row.note = _("No GPU on this server.")
        elif self.source is None:
            row.note = _("No GPU metrics source: utilisation is not measured here.")
        elif reading is None:
            row.note = _("No GPU metrics for this server yet.")
        else:
            row.utilisation = reading.now if reading.now is not None else reading.peak
            row.memory_used, row.memory_total = reading.memory_used, reading.memory_total
        return row

    async def _refresh_from_service(self) -> None:
        try:
            gpu = await self.service.get("api/gpu")
            notices = await self.service.get("api/notices")
        except (SourceError, OSError, ValueError) as exc:
            self.error = _("GPU metrics unavailable: {error}").format(error=exc)
            return
        self.error = ""
        self._service_source = "" if gpu.get("source") in (None, "none") else gpu["source"]
        rows = []
        for spec in self.servers:
            info = gpu.get("servers", {}).get(spec.key)
            row = GpuRow(spec.key, (info or {}).get("profile", spec.profile), "")
            if info is None:
                row.note = _("No GPU metrics for this server yet.")
            elif not info.get("gpu_share"):
                row.holds, row.note = slice_label(None, None), _("No GPU on this server.")
            else:
                row.holds = slice_label(info.get("gpu_model") or "gpu", info.get("mig_profile"))
                if not self._service_source:
                    row.note = _("No GPU metrics source: utilisation is not measured here.")
                elif info.get("utilisation") is None and info.get("peak") is None:
                    row.note = _("No GPU metrics for this server yet.")
                else:
                    row.utilisation = info["utilisation"] if info.get("utilisation") is not None else info["peak"]
                    row.memory_used, row.memory_total = info.get("memory_used"), info.get("memory_total")
                    row.history = list(info.get("history") or [])
            rows.append(row)
        self.rows = rows
        self.notices = [n["text"] for n in notices.get("notices", [])]

    async def refresh(self) -> None:
        if self.service is not None:
            await self._refresh_from_service()
            self.refreshed_at = dt.datetime.now(dt.timezone.utc)
            return
        gpu = [s for s in self.servers if s.has_gpu and s.target is not None]
        readings: dict = {}
        self.error = ""
        if self.source is not None and gpu:
            try:
                snap = await self.source.snapshot(self.window)
                readings = {s.key: snap.get(s.target) for s in gpu}
                for s in gpu:
                    if s.key not in self._primed and hasattr(self.source, "history"):
                        self._primed.add(s.key)
                        self._history[s.key].extend((await self.source.history(s.target, 600, 15))[-HISTORY:])
                    r = readings.get(s.key)
                    if r is not None:
                        self._history[s.key].append(r.now if r.now is not None else r.peak)
            except (SourceError, OSError, ValueError) as exc:
                self.error = _("GPU metrics unavailable: {error}").format(error=exc)
        self.rows = [self._row(s, readings.get(s.key)) for s in self.servers]
        self.refreshed_at = dt.datetime.now(dt.timezone.utc)
