"""A test exporter that serves DCGM-format GPU metrics for emulated pods (prometheus_client).

It speaks what NVIDIA's dcgm-exporter serves with its Kubernetes pod mapping on:
one series per GPU (or MIG instance) with `gpu`, `UUID`, `modelName`,
`Hostname`, `namespace`, `pod`, `container` labels, and for a MIG slice
`GPU_I_PROFILE` / `GPU_I_ID`. A full GPU reports `DCGM_FI_DEV_GPU_UTIL`
(percent); a MIG instance reports `DCGM_FI_PROF_GR_ENGINE_ACTIVE` (ratio) as the
real exporter does (GPU_UTIL is not supported per instance). Both report
`DCGM_FI_DEV_FB_USED` / `DCGM_FI_DEV_FB_FREE` (MiB).

    exporter = DcgmExporter().start()          # 127.0.0.1, a free port
    exporter.set("jupyter-ana", util=80)        # full H100, 80 %
    exporter.set("jupyter-bo", util=0, mig="1g.10gb")
    exporter.remove("jupyter-bo")
    exporter.stop()

`python tests/dcgm_exporter.py PORT pod=util ...` serves a fixed table (by hand).
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily

MODEL = "NVIDIA H100 80GB HBM3"
LABELS = ["gpu", "UUID", "device", "modelName", "Hostname", "container", "namespace", "pod"]
MIG_LABELS = LABELS + ["GPU_I_PROFILE", "GPU_I_ID"]
#: framebuffer of a full H100 and of each MIG slice, MiB
MEMORY = {None: 81559, "1g.10gb": 9984, "2g.20gb": 19968, "3g.40gb": 40192, "7g.80gb": 81559}


@dataclass
class Device:
    pod: str
    namespace: str
    util: float
    memory_used: float
    mig: str | None
    index: int


class _Collector:
    def __init__(self, exporter: "DcgmExporter"):
        self.exporter = exporter

    def collect(self):
        util = GaugeMetricFamily("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", labels=LABELS)
        active = GaugeMetricFamily("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "Ratio of time the graphics engine is active.",
                                   labels=MIG_LABELS)
        used = GaugeMetricFamily("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", labels=MIG_LABELS)
        free = GaugeMetricFamily("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", labels=MIG_LABELS)
        with self.exporter.lock:
            devices = list(self.exporter.devices.values())
            self.exporter.scrapes += 1
        for d in devices:
            gpu = str(d.index // 7 if d.mig else d.index)
            base = [gpu, f"GPU-{d.index:08d}-emulated", f"nvidia{gpu}", MODEL, "emulated-node", "notebook",
                    d.namespace, d.pod]
            mig = [d.mig or "", str(d.index % 7) if d.mig else ""]
            total = MEMORY.get(d.mig, MEMORY[None])
            if d.mig:
                active.add_metric(base + mig, d.util / 100)
            else:
                util.add_metric(base, d.util)
            used.add_metric(base + mig, d.memory_used)
            free.add_metric(base + mig, max(total - d.memory_used, 0))
        yield from (util, active, used, free)


class DcgmExporter:
    """Emulated pods' GPUs over real HTTP (see the module docstring)."""

    def __init__(self, namespace: str = "scip"):
        self.namespace = namespace
        self.devices: dict[str, Device] = {}
        self.lock = threading.Lock()
        self.scrapes = 0
        self.port = 0
        self._server = None
        self._next = 0

    def set(self, pod: str, util: float, memory_used: float = 1024, mig: str | None = None,
            namespace: str | None = None) -> None:
        with self.lock:
            old = self.devices.get(pod)
            index = old.index if old else self._next
            self._next += 0 if old else 1
            self.devices[pod] = Device(pod, namespace or self.namespace, util, memory_used, mig, index)

    def remove(self, pod: str) -> None:
        with self.lock:
            self.devices.pop(pod, None)

    def start(self, port: int = 0) -> "DcgmExporter":
        registry = CollectorRegistry()
        registry.register(_Collector(self))
        self._server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
        self.port = self._server.server_address[1]
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


if __name__ == "__main__":
    exporter = DcgmExporter()
    for arg in sys.argv[2:]:
        pod, _, value = arg.partition("=")
        exporter.set(pod, float(value or 0))
    exporter.start(int(sys.argv[1]) if len(sys.argv) > 1 else 9400)
    print(f"serving DCGM metrics on http://{exporter.target}/metrics")
    threading.Event().wait()
