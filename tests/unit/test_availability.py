"""Free GPUs per flavour from Node and Pod objects (pure), and the TTL cache."""

from __future__ import annotations

import pytest

from scip_jupyter.availability import Flavour, KubeAvailability, gpu_availability, profile_availability
from scip_jupyter.catalog import load_catalog
from tests.fixtures.common import ROOT

CATALOG = load_catalog(ROOT / "hub_config" / "catalog.yaml")


def node(name, ready="True", unschedulable=False, **allocatable):
    return {
        "metadata": {"name": name},
        "spec": {"unschedulable": unschedulable},
        "status": {"allocatable": allocatable, "conditions": [{"type": "Ready", "status": ready}]},
    }


def pod(node_name, phase="Running", requests=None, limits=None):
    return {
        "spec": {"nodeName": node_name, "containers": [{"resources": {"requests": requests or {}, "limits": limits or {}}}]},
        "status": {"phase": phase},
    }


MIG = "nvidia.com/mig-1g.10gb"
GPU = "nvidia.com/gpu"
NODES = [
    node("h100-a", **{GPU: "4", MIG: "0", "cpu": "64"}),
    node("h100-b", **{MIG: "7"}),
    node("cordoned", unschedulable=True, **{GPU: "8"}),
    node("broken", ready="False", **{GPU: "8"}),
]


@pytest.mark.parametrize(
    "pods, expected",
    [
        ([], {GPU: Flavour(GPU, 4, 0), MIG: Flavour(MIG, 7, 0)}),
        ([pod("h100-a", limits={GPU: "1"}), pod("h100-b", requests={MIG: "1"})], {GPU: Flavour(GPU, 4, 1), MIG: Flavour(MIG, 7, 1)}),
        ([pod("h100-a", phase="Succeeded", limits={GPU: "4"}), pod("h100-b", phase="Failed", limits={MIG: "7"})],
         {GPU: Flavour(GPU, 4, 0), MIG: Flavour(MIG, 7, 0)}),
        ([pod(None, phase="Pending", limits={GPU: "2"})], {GPU: Flavour(GPU, 4, 0, pending=2), MIG: Flavour(MIG, 7, 0)}),
        ([pod("cordoned", limits={GPU: "8"})], {GPU: Flavour(GPU, 4, 0), MIG: Flavour(MIG, 7, 0)}),
    ],
    ids=["idle", "one-each", "finished-pods-free-nothing", "unbound-pod-is-pending", "cordoned-node-not-counted"],
)
def test_gpu_availability(pods, expected):
    assert gpu_availability(NODES, pods) == expected


def test_over_requested_flavour_reports_zero_free():
    assert gpu_availability([node("n", **{GPU: "1"})], [pod("n", limits={GPU: "2"})])[GPU].free == 0


def test_profile_availability_per_catalog_profile():
    flavours = gpu_availability(NODES, [pod("h100-b", limits={MIG: "2"})])
    assert profile_availability(CATALOG.profiles, flavours) == {
        "cpu-small": None,
        "mig-1g-10gb": 5,
        "mig-3g-40gb": 0,  # no node offers that slice
        "h100-full": 4,
    }


class CountingApi:
    def __init__(self):
        self.calls = 0

    async def list_node(self, _preload_content=False):
        self.calls += 1
        return Response({"items": NODES})

    async def list_pod_for_all_namespaces(self, _preload_content=False, field_selector=None):
        assert field_selector == "status.phase!=Succeeded,status.phase!=Failed"
        self.calls += 1
        return Response({"items": []})


class Response:
    def __init__(self, body):
        self.body = body

    async def json(self):
        return self.body

    def release(self):
        pass


async def test_reads_are_cached_for_the_ttl():
    now = [0.0]
    api = CountingApi()
    cache = KubeAvailability(api, ttl=30, clock=lambda: now[0])
    first = await cache.flavours()
    now[0] = 29
    assert await cache.flavours() is first
    assert api.calls == 2  # one node list + one pod list
    now[0] = 31
    await cache.flavours()
    assert api.calls == 4
