"""Allocations with SCIPKubeSpawner (kmock API): the same mixin reserves before any API call.

Quota: the group `researchers` may hold one full H100 at a time. Each test has
its own namespace and ledger, and counts the pods that reached the API.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
import yaml
from tornado import web

from scip_jupyter.allocations.ledger import ledger_for
from scip_jupyter.spawners.kube import SCIPKubeSpawner
from tests.fixtures.k8s import make_spawner, make_user

pytestmark = [pytest.mark.k8s, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
def allocation_traits(tmp_path):
    quotas = tmp_path / "allocations.yaml"
    quotas.write_text(yaml.safe_dump({"groups": {"researchers": {"max_gpus": {"h100": 1}}}}))
    return {"allocations_path": str(quotas), "ledger_url": f"sqlite:///{tmp_path / 'ledger.sqlite'}"}


def researcher(api, namespace, name, traits, options=None):
    return make_spawner(
        SCIPKubeSpawner, api, make_user(name, "researchers"), namespace,
        {"profile": "h100-full"} if options is None else options, **traits,
    )


def pod_posts(api, namespace):
    return [
        r for r in api.emulator.spawner_requests()
        if f"/namespaces/{namespace}/" in r.url.path and r.method == "POST" and r.url.path.endswith("/pods")
    ]


async def test_second_full_h100_is_refused_before_any_pod(kube_api, kube_namespace, allocation_traits):
    first = researcher(kube_api, kube_namespace, "rita", allocation_traits)
    second = researcher(kube_api, kube_namespace, "ravi", allocation_traits)
    await asyncio.wait_for(first.start(), 60)
    with pytest.raises(web.HTTPError) as err:
        await asyncio.wait_for(second.start(), 60)
    assert err.value.status_code == 403
    assert err.value.log_message.startswith("profile: allocation exhausted for 'h100-full'")
    assert "max_gpus.h100 is 1" in err.value.log_message
    assert len(pod_posts(kube_api, kube_namespace)) == 1  # only the first researcher's pod
    [pod] = kube_api.emulator.live_pods(kube_namespace)
    assert pod["metadata"]["labels"]["scip.ca/project"] == "researchers"  # the allocation group paying

    await first.stop()
    await asyncio.wait_for(second.start(), 60)
    assert len(pod_posts(kube_api, kube_namespace)) == 2
    await second.stop()
    ledger = ledger_for(allocation_traits["ledger_url"])
    assert [(e.kind, e.user) for e in ledger.events()] == [
        ("reserve", "rita"), ("deny", "ravi"), ("release", "rita"), ("reserve", "ravi"), ("release", "ravi"),
    ]


async def test_kube_form_shows_free_gpus_from_nodes_and_allocation(kube_api, kube_namespace, allocation_traits):
    node = {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "scip-form-gpu-node"},
        "status": {
            "allocatable": {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "2"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{kube_api.url}/api/v1/nodes", json=node) as resp:
            assert resp.status in (200, 201, 409), await resp.text()
    spawner = researcher(kube_api, kube_namespace, "rita", {**allocation_traits, "availability_ttl": 0})
    form = await spawner.options_form(spawner)
    h100 = re.search(r'value="h100-full".*?</div>', form, re.S).group(0)
    assert re.search(r"Free on the cluster now: [1-9]\d*<", h100), h100  # counted from the node list
    assert "None free on the cluster now" in re.search(r'value="mig-3g-40gb".*?</div>', form, re.S).group(0)
    assert "Your allocation: group researchers: 1 of 1 × h100 free" in form
    assert "Cost: 1 GPU-hour per hour" in form
