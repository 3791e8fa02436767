"""Spawn overhead under load: 100 concurrent spawns, SCIPKubeSpawner vs stock KubeSpawner (anchor).

The Kubernetes API emulator (kmock + the fake kubelet of tests/k8s_fake_kubelet.py)
runs in a child process, fresh for each round, so this process is the hub alone:
its CPU time (time.process_time) is the hub's. Each round starts N spawners at once
(asyncio.gather of start()), waits until every server is up, then stops them all.
Stock KubeSpawner gets an equivalent static profile list (the same overrides as plain
data, labels by KubeSpawner's {username} template); SCIPKubeSpawner computes its list
from the catalog and the user's groups, validates once, labels, and watches each pod
for trouble (fail fast). Rounds go stock, ours, ours, stock (ABBA) so drift hits both.

Counted: Kubernetes API requests per spawn (start + stop), on the client side.

    .venv/bin/python benchmarks/spawn_overhead.py [--spawns 100] [--rounds 2]

The last line is the summary: spawn_ratio (ours/stock wall time) and cpu_ratio
(ours/stock hub CPU time), aim <= 1.10 for both.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes_asyncio.client import rest  # noqa: E402
from kubernetes_asyncio.config import kube_config  # noqa: E402
from kubespawner import KubeSpawner, clients  # noqa: E402

from scip_jupyter.catalog import load_catalog  # noqa: E402
from scip_jupyter.spawners.k8s_objects import expand_overrides, profile_list_for  # noqa: E402
from scip_jupyter.spawners.kube import SCIPKubeSpawner  # noqa: E402
from tests.fixtures.k8s import KubeAPI, make_spawner, make_user  # noqa: E402
from tests.k8s_fake_kubelet import write_kubeconfig  # noqa: E402

PROFILE = "h100-full"
CATALOG = ROOT / "hub_config" / "catalog.yaml"
#: The emulator process: prints its URL, serves until stdin closes.
EMULATOR = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from tests.k8s_fake_kubelet import kube_api

async def main():
    async with kube_api() as (emulator, kubelet, url):
        print(url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


class RequestCounter:
    """Counts requests kubernetes_asyncio sends (every API call and watch)."""

    def __init__(self) -> None:
        self.count = 0
        original = rest.RESTClientObject.request
        counter = self

        async def request(self, *args, **kwargs):
            counter.count += 1
            return await original(self, *args, **kwargs)

        rest.RESTClientObject.request = request


def stock_profile_list() -> list[dict]:
    """The same profile as static KubeSpawner config: plain data, per-user labels by template."""
    profile = load_catalog(CATALOG).get(PROFILE)

    def labels(p):
        return {"scip.ca/user": "{username}", "scip.ca/server": "default", "scip.ca/project": "", "scip.ca/course": "",
                "scip.ca/site": p.site, "scip.ca/jurisdiction": p.jurisdiction, "scip.ca/profile": p.slug}

    [entry] = profile_list_for([profile], labels)
    entry["kubespawner_override"] = expand_overrides(entry["kubespawner_override"])
    return [entry]


def new_spawner(cls, api: KubeAPI, namespace: str, user: str, static: list[dict]):
    traits = {"profile_list": static} if cls is KubeSpawner else {}
    spawner = make_spawner(cls, api, make_user(user, "researchers"), namespace, {"profile": PROFILE}, **traits)
    spawner.start_timeout = 600
    # 100 requests at once to an emulator on a shared machine: give each the time it needs (both classes).
    spawner.k8s_api_request_timeout = 60
    spawner.k8s_api_request_retry_timeout = 300
    return spawner


async def one_round(cls, api: KubeAPI, namespace: str, spawns: int, tag: str, static, counter) -> tuple[float, float, int]:
    spawners = [new_spawner(cls, api, namespace, f"{tag}-u{i}", static) for i in range(spawns)]
    requests0, cpu0, wall0 = counter.count, time.process_time(), time.perf_counter()
    urls = await asyncio.gather(*(asyncio.wait_for(s.start(), 600) for s in spawners))
    assert len(urls) == spawns and all(u.startswith("http://") for u in urls)
    await asyncio.gather(*(s.stop(now=True) for s in spawners))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall, cpu, counter.count - requests0


class Emulator:
    """The API emulator in a child process, fresh for each round (kmock keeps what it served,
    so a long-lived one gets slower round after round and would bias whichever class runs later)."""

    async def __aenter__(self) -> KubeAPI:
        self.child = subprocess.Popen([sys.executable, "-c", EMULATOR, str(ROOT)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
        url = await asyncio.to_thread(self.child.stdout.readline)
        if not url.startswith("http://"):
            raise RuntimeError("the API emulator did not start")
        config = write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig", url.strip())
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(config)
        return KubeAPI(None, None, url.strip(), config)

    async def __aexit__(self, *exc) -> None:
        await KubeSpawner._stop_all_reflectors()
        for cls in (KubeSpawner, SCIPKubeSpawner):
            cls.reflectors.clear()
        clients._client_cache.clear()  # KubeSpawner caches its API client per loop, not per API server
        self.child.stdin.close()
        await asyncio.to_thread(self.child.wait, 30)


async def run(spawns: int, rounds: int) -> int:
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    logging.getLogger("kubespawner").setLevel(logging.ERROR)
    counter = RequestCounter()
    static = stock_profile_list()
    classes = {"stock": KubeSpawner, "ours": SCIPKubeSpawner}
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in classes}
    async with Emulator() as api:  # warm-up: imports, catalog cache (not measured)
        for name, cls in classes.items():
            await one_round(cls, api, f"warm-{name}", 2, "warm", static, counter)
    order = []
    for _ in range(rounds):
        order += ["stock", "ours", "ours", "stock"]
    for n, name in enumerate(order):
        async with Emulator() as api:
            results[name].append(await one_round(classes[name], api, f"bench-{name}-{n}", spawns, f"r{n}", static, counter))
        wall, cpu, requests = results[name][-1]
        print(f"round {n + 1}: {name:5} wall {wall:6.2f} s, hub CPU {cpu:5.2f} s, {requests} API requests", flush=True)

    print(f"{spawns} concurrent spawns of {PROFILE} (start + stop) per round, {len(results['stock'])} rounds each (ABBA),"
          " a fresh API emulator per round")
    print(f"{'spawner':8} {'wall s (median)':>16} {'hub CPU s (median)':>19} {'API requests/spawn':>19}")
    summary = {}
    for name, rows in results.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        per_spawn = statistics.mean(r[2] for r in rows) / spawns
        summary[name] = (wall, cpu, per_spawn)
        print(f"{name:8} {wall:16.2f} {cpu:19.2f} {per_spawn:19.2f}")
    spawn_ratio = summary["ours"][0] / summary["stock"][0]
    cpu_ratio = summary["ours"][1] / summary["stock"][1]
    print(f"spawn_ratio={spawn_ratio:.2f} cpu_ratio={cpu_ratio:.2f} requests_per_spawn_ours={summary['ours'][2]:.1f} "
          f"requests_per_spawn_stock={summary['stock'][2]:.1f} spawns={spawns} rounds={len(results['stock'])}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spawns", type=int, default=100, help="concurrent spawns per round (default 100)")
    parser.add_argument("--rounds", type=int, default=1, help="ABBA blocks (each: 2 rounds per spawner; default 1)")
    args = parser.parse_args()
    if not 1 <= args.spawns <= 500:
        parser.error("--spawns must be between 1 and 500")
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be between 1 and 10")
    return asyncio.run(run(args.spawns, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
