"""How long one GPU-aware cull round takes for 1,000 running servers, against the plain activity rule.

1,000 hub server models (as GET /hub/api/users gives them to jupyterhub-idle-culler): 700 GPU servers
(full H100s and MIG slices, half of them idle) and 300 CPU servers. The DCGM test exporter serves a
series for each GPU pod; the project's real Prometheus (scripts/prometheus-local) scrapes it. One
round is every server through `GpuArbiter` (one source snapshot: five PromQL queries over 1,000
series, then a decision per server; the round's warnings committed to a SQLite ledger in one
transaction, as the service does), timed from the first call to the commit. The anchor is the same 1,000 models through jupyterhub-idle-culler's own
`default_cull_arbiter` (web activity only), in the same run. The hub's user listing and the stops
are the same for both and not timed.

    round 1: the idle GPU servers are warned (350 notices written)
    rounds 2..N: steady state (warned, waiting)

Run: .venv/bin/python benchmarks/gpu_cull.py [rounds] [--static]
(`--static`: a StaticSource instead of Prometheus, to see the decision cost alone.)
Ends with one line: gpu_round_ms=<median> activity_round_ms=<median> ratio=<gpu/activity>
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jupyterhub_idle_culler import default_cull_arbiter  # noqa: E402

from scip_jupyter.culling.arbiter import GpuArbiter  # noqa: E402
from scip_jupyter.culling.policy import Reading  # noqa: E402
from scip_jupyter.culling.records import Records  # noqa: E402
from scip_jupyter.allocations.ledger import Ledger  # noqa: E402
from scip_jupyter.allocations.policy import Account, Request  # noqa: E402
from scip_jupyter.culling.service import account_lookup, profiles_loader  # noqa: E402
from scip_jupyter.culling.settings import GPUCulling  # noqa: E402
from scip_jupyter.culling.sources import PrometheusSource, StaticSource  # noqa: E402
from tests.dcgm_exporter import DcgmExporter  # noqa: E402

N = 1000
#: the demo catalog, read as the service reads it (reloaded when the file changes)
PROFILES = profiles_loader(str(ROOT / "hub_config" / "catalog.yaml"))
MIG = {"mig-1g-10gb": "1g.10gb", "mig-3g-40gb": "3g.40gb"}
LAB = Account("group:bench", "group bench", "allocations.yaml",
              (dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1)), "ever")


def fleet() -> list[tuple[dict, str, float]]:
    """(server model, profile, GPU utilisation) for N servers."""
    started = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    active = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    out = []
    for i in range(N):
        profile = "cpu-small" if i % 10 >= 7 else ("h100-full", "mig-1g-10gb", "mig-3g-40gb")[i % 3]
        util = 0.0 if i % 2 else 80.0
        model = {"name": "", "full_name": f"user{i:04d}/", "started": started, "last_activity": active,
                 "ready": True, "pending": None, "user_options": {"profile": profile}, "state": {}}
        out.append((model, profile, util))
    return out


async def one_round(arbiter, servers) -> float:
    """Every server through the arbiter, and the round's writes committed (as the service does)."""
    t0 = time.perf_counter()
    for model, _profile, _util in servers:
        await arbiter(inactive=dt.timedelta(seconds=30), inactive_limit=3600, server=model)
    arbiter.flush()
    return time.perf_counter() - t0


async def activity_round(servers) -> float:
    t0 = time.perf_counter()
    for model, _profile, _util in servers:
        default_cull_arbiter(inactive=dt.timedelta(seconds=30), inactive_limit=3600, server=model)
    return time.perf_counter() - t0


def prometheus_source(servers) -> tuple[PrometheusSource, DcgmExporter]:
    script = ROOT / "scripts" / "prometheus-local"
    proc = subprocess.run([str(script), "start"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"gpu_cull: scripts/prometheus-local start failed:\n{proc.stdout}{proc.stderr}")
    url = subprocess.run([str(script), "url"], capture_output=True, text=True).stdout.strip()
    exporter = DcgmExporter(namespace="bench").start()
    for model, profile, util in servers:
        if profile != "cpu-small":
            exporter.set(f"jupyter-{model['full_name'][:-1]}", util=util, mig=MIG.get(profile))
    subprocess.run([str(script), "add-target", "gpu-cull-bench", exporter.target], check=True, capture_output=True)
    src = PrometheusSource(url, "bench")
    want = sum(1 for _m, p, _u in servers if p != "cpu-small")
    for _ in range(200):  # until one scrape of every pod is in
        snap = asyncio.run(src.snapshot(60))
        if snap.size >= want:
            break
        time.sleep(0.3)
    else:
        raise SystemExit(f"gpu_cull: Prometheus at {url} never had all {want} GPU series")
    return src, exporter


def main(argv: list[str]) -> int:
    rounds = int(next((a for a in argv if a.isdigit()), "5"))
    static = "--static" in argv
    servers = fleet()
    exporter = None
    if static:
        source = StaticSource({m["full_name"]: Reading(peak=u, now=u) for m, p, u in servers if p != "cpu-small"})
    else:
        source, exporter = prometheus_source(servers)
    with tempfile.TemporaryDirectory() as tmp:
        records = Records(f"sqlite:///{Path(tmp) / 'ledger.sqlite'}")
        settings = GPUCulling(idle_time=600, warning_time=600, cull_every=60)
        ledger = Ledger(f"sqlite:///{Path(tmp) / 'ledger.sqlite'}")  # who pays: the 700 GPU servers' holdings
        for model, profile, _util in servers:
            if profile != "cpu-small":
                user = model["full_name"][:-1]
                ledger.reserve(Request(user, "", profile, "h100", 1, 1.0), [LAB])
        arbiter = GpuArbiter(settings, PROFILES, source, records, account_lookup(ledger), cache_seconds=0.5,
                             batch=True)
        try:
            first = asyncio.run(one_round(arbiter, servers))
            gpu, act = [], []
            for _ in range(rounds):
                time.sleep(0.6)  # past the snapshot cache: each round reads the source again
                gpu.append(asyncio.run(one_round(arbiter, servers)))
                act.append(asyncio.run(activity_round(servers)))
        finally:
            records.dispose()
            ledger.dispose()
            if exporter is not None:
                subprocess.run([str(ROOT / "scripts" / "prometheus-local"), "remove-target", "gpu-cull-bench"],
                               capture_output=True)
                exporter.stop()
    reads = []
    for _ in range(rounds):  # the source read alone (the round's I/O)
        t0 = time.perf_counter()
        asyncio.run(source.snapshot(600))
        reads.append(time.perf_counter() - t0)
    counts: dict[str, int] = {}
    for v in arbiter.verdicts.values():
        counts[v.action.value] = counts.get(v.action.value, 0) + 1
    g, a = statistics.median(gpu) * 1000, statistics.median(act) * 1000
    print(f"source: {source.name}; {N} servers ({sum(1 for _m, p, _u in servers if p != 'cpu-small')} GPU); "
          f"source reads: {arbiter.source_reads}; last round: {counts}")
    print(f"round 1 (warns {len(arbiter.warned)} idle GPU servers): {first * 1000:.1f} ms")
    print("steady rounds: " + " ".join(f"{t * 1000:.1f}" for t in gpu) + f" ms; activity rule: "
          + " ".join(f"{t * 1000:.2f}" for t in act) + " ms")
    print(f"per server: {g / N:.3f} ms (GPU-aware) vs {a / N:.4f} ms (activity rule); "
          f"of a round, the source read alone: {statistics.median(reads) * 1000:.1f} ms")
    print(f"gpu_round_ms={g:.1f} activity_round_ms={a:.2f} ratio={g / a:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
