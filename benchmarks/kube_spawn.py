"""Spawn cost: stock KubeSpawner (anchor) vs SCIPKubeSpawner, same API, same run.

Both spawn the same H100 profile for N users against the in-memory Kubernetes
API (kmock emulator + fake kubelet from tests/k8s_fake_kubelet.py). Stock
KubeSpawner gets a static `profile_list` with the same overrides as plain data;
SCIPKubeSpawner computes it per user from the catalog and validates the
options first. Spawns alternate between the two so drift hits both.

Counted per spawn (start + stop): Kubernetes API requests sent by the spawner.
Timed per spawn: start() until the URL is returned, and stop(); and, on a fresh
spawner, load_user_options() alone (the only code path that differs; start()
time is dominated by KubeSpawner's backoff polling and is noisy on a shared machine).

    .venv/bin/python benchmarks/kube_spawn.py [--spawns 30]

The last line is a key=value summary: requests_ratio, start_ratio and
options_ratio are ours/stock (1.0 = same cost).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes_asyncio.config import kube_config  # noqa: E402
from kubespawner import KubeSpawner  # noqa: E402

from scip_jupyter.catalog import load_catalog  # noqa: E402
from scip_jupyter.spawners.k8s_objects import expand_overrides, profile_list_for  # noqa: E402
from scip_jupyter.spawners.kube import SCIPKubeSpawner  # noqa: E402
from tests.fixtures.k8s import KubeAPI, make_spawner, make_user  # noqa: E402
from tests.k8s_fake_kubelet import kube_api, write_kubeconfig  # noqa: E402

PROFILE = "h100-full"
CATALOG = ROOT / "hub_config" / "catalog.yaml"


def stock_profile_list(user: str) -> list[dict]:
    """The same profile as plain KubeSpawner config: static data, no callables."""
    catalog = load_catalog(CATALOG)
    profile = catalog.get(PROFILE)

    def labels(p):
        return {"scip.ca/user": user, "scip.ca/server": "default", "scip.ca/profile": p.slug,
                "scip.ca/site": p.site, "scip.ca/jurisdiction": p.jurisdiction}

    [entry] = profile_list_for([profile], labels)
    entry["kubespawner_override"] = expand_overrides(entry["kubespawner_override"])
    return [entry]


def new_spawner(cls, api: KubeAPI, namespace: str, user: str):
    if cls is KubeSpawner:
        return make_spawner(cls, api, make_user(user, "researchers"), namespace, {"profile": PROFILE},
                            profile_list=stock_profile_list(user))
    return make_spawner(cls, api, make_user(user, "researchers"), namespace, {"profile": PROFILE})


async def options_cost(cls, api: KubeAPI, namespace: str, user: str) -> float:
    """Seconds in load_user_options alone (validation + profile overrides; no API calls)."""
    spawner = new_spawner(cls, api, namespace, user)
    t0 = time.perf_counter()
    await spawner.load_user_options()
    return time.perf_counter() - t0


async def one_spawn(cls, api: KubeAPI, namespace: str, user: str) -> tuple[int, float, float]:
    spawner = new_spawner(cls, api, namespace, user)
    before = len(list(api.emulator))
    t0 = time.perf_counter()
    await asyncio.wait_for(spawner.start(), 60)
    t1 = time.perf_counter()
    await spawner.stop()
    t2 = time.perf_counter()
    requests = [r for r in api.emulator.spawner_requests(before) if f"/namespaces/{namespace}/" in r.url.path]
    return len(requests), t1 - t0, t2 - t1


async def run(spawns: int) -> int:
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    async with kube_api() as (emulator, kubelet, url):
        config = write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig", url)
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(config)
        api = KubeAPI(emulator, kubelet, url, config)
        classes = {"stock": KubeSpawner, "ours": SCIPKubeSpawner}
        results: dict[str, list[tuple[int, float, float]]] = {name: [] for name in classes}
        options: dict[str, list[float]] = {name: [] for name in classes}
        try:
            for name, cls in classes.items():  # warm-up: reflectors list + watch once per namespace
                await one_spawn(cls, api, f"bench-{name}", "warmup")
            for i in range(spawns):
                for name, cls in classes.items():
                    results[name].append(await one_spawn(cls, api, f"bench-{name}", f"user{i}"))
                    options[name].append(await options_cost(cls, api, f"bench-{name}", f"user{i}"))
        finally:
            await KubeSpawner._stop_all_reflectors()

    summary = {}
    print(f"{spawns} spawns each of profile {PROFILE} (start + stop), after one warm-up spawn")
    print(f"{'spawner':8} {'requests/spawn':>15} {'start ms (median)':>18} {'start ms (mean)':>16} "
          f"{'stop ms (median)':>17} {'load_user_options ms (median)':>30}")
    for name, rows in results.items():
        reqs = [r[0] for r in rows]
        starts = [r[1] * 1000 for r in rows]
        stops = [r[2] * 1000 for r in rows]
        opts = [o * 1000 for o in options[name]]
        summary[name] = (statistics.mean(reqs), statistics.median(starts), statistics.median(opts))
        print(f"{name:8} {statistics.mean(reqs):15.2f} {statistics.median(starts):18.2f} "
              f"{statistics.mean(starts):16.2f} {statistics.median(stops):17.2f} {statistics.median(opts):30.3f}")
    requests_ratio = summary["ours"][0] / summary["stock"][0]
    start_ratio = summary["ours"][1] / summary["stock"][1]
    options_ratio = summary["ours"][2] / summary["stock"][2]
    print(f"requests_ratio={requests_ratio:.2f} start_ratio={start_ratio:.2f} options_ratio={options_ratio:.2f} "
          f"requests_ours={summary['ours'][0]:.1f} requests_stock={summary['stock'][0]:.1f} spawns={spawns}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spawns", type=int, default=30, help="spawns per spawner class (default 30)")
    args = parser.parse_args()
    if not 1 <= args.spawns <= 500:
        parser.error("--spawns must be between 1 and 500")
    return asyncio.run(run(args.spawns))


if __name__ == "__main__":
    sys.exit(main())
