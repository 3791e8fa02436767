"""Fail fast, in words: a pod that cannot run ends its spawn at once (kmock API + fake kubelet).

The fake kubelet reports trouble as a cluster does (a Warning event and the
pod's status). The spawn must end with a message a person understands, long
before `start_timeout` (set far out of reach here), the pod must be deleted and
the allocation reservation released.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import yaml
from tornado import web

from scip_jupyter.allocations.ledger import ledger_for
from scip_jupyter.i18n import use_locale
from scip_jupyter.spawners.kube import SCIPKubeSpawner
from tests.fixtures.k8s import make_spawner, make_user
from tests.k8s_fake_kubelet import CRASH, IMAGE_PULL, UNSCHEDULABLE

pytestmark = [pytest.mark.k8s, pytest.mark.asyncio(loop_scope="session")]

#: Far beyond any spawn here: reaching it would mean the spawn did not fail fast.
START_TIMEOUT = 3600


@pytest.fixture
def troubled(kube_api, kube_namespace):
    """Make the fake kubelet report `kind` for this test's pods only."""
    kinds: dict[str, str] = {}

    def trouble(pod):
        return kinds.get("kind") if pod["metadata"]["namespace"] == kube_namespace else None

    kube_api.kubelet.trouble = trouble
    yield kinds
    kube_api.kubelet.trouble = lambda pod: None


@pytest.fixture
def ledger_traits(tmp_path):
    quotas = tmp_path / "allocations.yaml"
    quotas.write_text(yaml.safe_dump({"groups": {"researchers": {"max_gpus": {"h100_3g.40gb": 1, "h100": 1}}}}))
    return {"allocations_path": str(quotas), "ledger_url": f"sqlite:///{tmp_path / 'ledger.sqlite'}"}


async def add_node(api, name: str, allocatable: dict) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"allocatable": allocatable, "conditions": [{"type": "Ready", "status": "True"}]}}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api.url}/api/v1/nodes", json=node) as resp:
            assert resp.status in (200, 201, 409), await resp.text()


async def spawn_failure(spawner) -> web.HTTPError:
    spawner.start_timeout = START_TIMEOUT
    with pytest.raises(web.HTTPError) as err:
        await asyncio.wait_for(spawner.start(), 120)
    return err.value


@pytest.mark.parametrize(
    "kind, profile, status, words",
    [
        (UNSCHEDULABLE, "mig-3g-40gb", 503, "no node has a free GPU slice 3g.40gb (MIG)"),
        (IMAGE_PULL, "h100-full", 500, "its software image quay.io/jupyter/pytorch-notebook:cuda12-2026-11-01 could not be downloaded"),
        (CRASH, "cpu-small", 500, "stops right after it starts"),
    ],
)
async def test_pod_that_cannot_run_ends_the_spawn_in_words_and_releases_everything(
    kube_api, kube_namespace, troubled, ledger_traits, kind, profile, status, words
):
    await add_node(kube_api, "fail-fast-mig-node", {"cpu": "64", "memory": "256Gi", "nvidia.com/mig-1g.10gb": "7"})
    troubled["kind"] = kind
    spawner = make_spawner(
        SCIPKubeSpawner, kube_api, make_user("rita", "researchers"), kube_namespace, {"profile": profile},
        availability_ttl=0, **ledger_traits,
    )
    error = await spawn_failure(spawner)
    assert error.status_code == status
    message = error.jupyterhub_message
    display = spawner.catalog.get(profile).display_name
    assert message.startswith(f"Your server “{display}” cannot start: ") and words in message
    assert "Insufficient" not in message and "rpc error" not in message  # words, not raw events
    if kind == UNSCHEDULABLE:
        assert "choose a profile with free units now: H100 slice 1g.10gb" in message  # the node has 1g slices
    else:
        assert "please tell support" in message
    assert "<" not in error.jupyterhub_html_message.replace("&lt;", "")
    assert kube_api.emulator.live_pods(kube_namespace) == []  # the pod is deleted
    assert [t for _, t in kube_api.kubelet.troubles_reported if t == kind]
    ledger = ledger_for(ledger_traits["ledger_url"])
    assert [e.kind for e in ledger.events()] == ["reserve", "release"]  # nothing held


async def test_french_message_for_an_unschedulable_pod(kube_api, kube_namespace, troubled):
    troubled["kind"] = UNSCHEDULABLE
    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user("rita", "researchers"), kube_namespace,
                           {"profile": "mig-3g-40gb"}, availability_ttl=0)
    with use_locale("fr"):
        error = await spawn_failure(spawner)
    assert "ne peut pas démarrer" in error.jupyterhub_message
    assert "tranche de GPU 3g.40gb (MIG)" in error.jupyterhub_message


async def test_progress_shows_the_pending_reason_in_words(kube_api, kube_namespace, troubled):
    troubled["kind"] = UNSCHEDULABLE
    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user("rita", "researchers"), kube_namespace,
                           {"profile": "mig-3g-40gb"}, availability_ttl=0)
    spawner.start_timeout = START_TIMEOUT
    spawner.trouble_poll_interval = 5  # leave progress() time to see the event first
    started = asyncio.ensure_future(spawner.start())
    messages = []
    async for event in spawner.progress():
        messages.append(event)
    with pytest.raises(web.HTTPError):
        await started
    texts = [e["message"] for e in messages]
    assert "Waiting for room on the cluster: no node has a free GPU slice 3g.40gb (MIG)" in texts
    assert not [e for e in messages if "raw_event" in e]
    assert not [t for t in texts if "Insufficient" in t]
