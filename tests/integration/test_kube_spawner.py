"""SCIPKubeSpawner against a Kubernetes API (kmock emulator + fake kubelet).

The spawner is the real class; only the cluster is in memory. Each test uses
its own namespace and counts what reached the API.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import kubernetes_validate
import pytest
from tornado import web
from traitlets import TraitError

from scip_jupyter.availability import KubeAvailability, profile_availability
from scip_jupyter.spawners.kube import SCIPKubeSpawner
from tests.fixtures.k8s import make_spawner, make_user
from tests.pss import violations as pss_violations

pytestmark = [pytest.mark.k8s, pytest.mark.asyncio(loop_scope="session")]

STUDENT = ("sam", "students")
RESEARCHER = ("rita@uni.example", "researchers")


def namespace_requests(api, namespace: str) -> list:
    return [r for r in api.emulator.spawner_requests() if f"/namespaces/{namespace}/" in r.url.path]


def pod_creations(api, namespace: str) -> list:
    return [r for r in namespace_requests(api, namespace) if r.method == "POST" and r.url.path.endswith("/pods")]


async def start(spawner) -> str:
    return await asyncio.wait_for(spawner.start(), 60)


def only_pod(api, namespace: str) -> dict:
    pods = api.emulator.live_pods(namespace)
    assert len(pods) == 1, pods
    return pods[0]


@pytest.mark.parametrize(
    "who, profile, resource",
    [(RESEARCHER, "h100-full", "nvidia.com/gpu"), (STUDENT, "mig-1g-10gb", "nvidia.com/mig-1g.10gb")],
)
async def test_allowed_gpu_profile_creates_pod_with_resource_labels_and_shm(
    kube_api, kube_namespace, who, profile, resource
):
    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user(*who), kube_namespace, {"profile": profile})
    url = await start(spawner)
    assert url.startswith("http://127.0.") and url.endswith(":8888")

    pod = only_pod(kube_api, kube_namespace)
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"][resource] == "1"
    assert container["resources"]["requests"][resource] == "1"
    labels = pod["metadata"]["labels"]
    assert labels["scip.ca/profile"] == profile
    assert labels["scip.ca/site"] == "scip-east" and labels["scip.ca/jurisdiction"] == "CA"
    assert labels["scip.ca/server"] == "default"
    assert pod["metadata"]["annotations"]["scip.ca/user"] == who[0]
    assert labels["component"] == "singleuser-server"  # KubeSpawner's own labels are kept
    shm = [v for v in pod["spec"]["volumes"] if v["name"] == "scip-shm"]
    assert shm[0]["emptyDir"]["medium"] == "Memory"
    assert {"name": "scip-shm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert pod["spec"]["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"

    # What KubeSpawner sent is a valid pod for the Kubernetes we support.
    [create] = pod_creations(kube_api, kube_namespace)
    kubernetes_validate.validate(create.data, "1.32", strict=True)
    assert pss_violations(create.data) == []  # Pod Security Standard "restricted"
    await spawner.stop()


async def test_student_cannot_request_full_h100(kube_api, kube_namespace):
    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user(*STUDENT), kube_namespace, {"profile": "h100-full"})
    with pytest.raises(web.HTTPError) as err:
        await start(spawner)
    assert err.value.status_code == 403
    message = err.value.log_message
    assert message.startswith("profile:") and "h100-full" in message
    assert "cpu-small, mig-1g-10gb" in message  # the allowed values for a student
    assert pod_creations(kube_api, kube_namespace) == []
    assert namespace_requests(kube_api, kube_namespace) == []  # refused before any API call
    assert kube_api.emulator.live_pods(kube_namespace) == []


@pytest.mark.parametrize(
    "options, status, field",
    [
        ({"profile": "a100-huge"}, 400, "profile"),
        ({"profile": ["h100-full"]}, 400, "profile"),
        ({"profile": "cpu-small", "image": "evil/image:latest"}, 400, "image"),
        ({"profile": "cpu-small", "profile-option-cpu-small--image": "x"}, 400, "profile-option-cpu-small--image"),
    ],
)
async def test_invalid_options_are_refused_naming_the_field(kube_api, kube_namespace, options, status, field):
    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user(*RESEARCHER), kube_namespace, options)
    with pytest.raises(web.HTTPError) as err:
        await start(spawner)
    assert err.value.status_code == status
    assert err.value.log_message.startswith(f"{field}:")
    assert "allowed values" in err.value.log_message
    assert namespace_requests(kube_api, kube_namespace) == []


async def test_stop_deletes_the_pod(kube_api, kube_namespace):
    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user(*STUDENT), kube_namespace, {"profile": "cpu-small"})
    await start(spawner)
    assert len(kube_api.emulator.live_pods(kube_namespace)) == 1
    assert await spawner.poll() is None
    await spawner.stop()
    assert kube_api.emulator.live_pods(kube_namespace) == []
    deletes = [r for r in namespace_requests(kube_api, kube_namespace) if r.method == "DELETE"]
    assert len(deletes) == 1
    assert await spawner.poll() is not None


async def test_switching_to_cpu_profile_drops_the_previous_gpu(kube_api, kube_namespace):
    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user(*RESEARCHER), kube_namespace, {"profile": "h100-full"})
    await start(spawner)
    await spawner.stop()
    spawner.user_options = {"profile": "cpu-small"}
    await start(spawner)
    pod = only_pod(kube_api, kube_namespace)
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert not [k for k in limits if k.startswith("nvidia.com/")]
    assert "nodeSelector" not in pod["spec"]
    assert [v["emptyDir"]["sizeLimit"] for v in pod["spec"]["volumes"] if v["name"] == "scip-shm"] == ["1G"]
    assert [t for t in pod["spec"].get("tolerations", []) if t["key"] == "nvidia.com/gpu"] == []
    await spawner.stop()


async def test_empty_options_start_the_default_profile(kube_api, kube_namespace):
    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user(*STUDENT), kube_namespace, {})
    await start(spawner)
    assert only_pod(kube_api, kube_namespace)["metadata"]["labels"]["scip.ca/profile"] == "cpu-small"
    await spawner.stop()


@pytest.mark.parametrize(
    "who, slugs",
    [(STUDENT, ["cpu-small", "mig-1g-10gb"]), (RESEARCHER, ["cpu-small", "mig-1g-10gb", "mig-3g-40gb", "h100-full"])],
)
async def test_profile_list_and_form_offer_only_what_groups_allow(kube_api, kube_namespace, who, slugs):
    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user(*who), kube_namespace)
    assert [p["slug"] for p in spawner.profile_list(spawner)] == slugs
    form = await spawner.options_form(spawner)
    offered = [s for s in ["cpu-small", "mig-1g-10gb", "mig-3g-40gb", "h100-full"] if f'value="{s}"' in form]
    assert offered == slugs


async def test_availability_counts_a_started_mig_slice(kube_api, kube_namespace):
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": kube_api.kubelet.node_name},
        "status": {
            "allocatable": {"cpu": "64", "memory": "512Gi", "nvidia.com/mig-1g.10gb": "7", "nvidia.com/gpu": "1"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{kube_api.url}/api/v1/nodes", json=node) as resp:
            assert resp.status in (200, 201, 409), await resp.text()
    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user(*STUDENT), kube_namespace, {"profile": "mig-1g-10gb"})
    before = (await KubeAvailability(spawner.api, ttl=0).flavours())["nvidia.com/mig-1g.10gb"]
    await start(spawner)
    after = await KubeAvailability(spawner.api, ttl=0).flavours()
    assert after["nvidia.com/mig-1g.10gb"].free == before.free - 1
    assert profile_availability(spawner.catalog.profiles, after)["mig-1g-10gb"] == before.free - 1
    await spawner.stop()
    assert (await KubeAvailability(spawner.api, ttl=0).flavours())["nvidia.com/mig-1g.10gb"].free == before.free


@pytest.mark.parametrize("trait", ["slurm_munge_key_secret", "slurm_ssh_key_secret"])
async def test_spawner_has_no_shared_credential_settings(trait):
    assert trait not in SCIPKubeSpawner.class_traits(config=True)


async def test_config_maps_are_mounted_and_no_secret_is(kube_api, kube_namespace):
    spawner = make_spawner(
        SCIPKubeSpawner, kube_api, make_user(*RESEARCHER), kube_namespace, {"profile": "cpu-small"},
        slurm_config_map="scip-slurm-client", scip_config_map="scip-jupyter-config",
    )
    await start(spawner)
    pod = only_pod(kube_api, kube_namespace)
    assert [v for v in pod["spec"]["volumes"] if "secret" in v] == []
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["SLURM_CONF"] == "/etc/slurm/slurm.conf"
    assert env["SCIP_ARC_PRESETS"] == "/usr/local/etc/scip/arc.yaml"
    assert "SCIP_COURSES_FILE" not in env  # this hub has no courses
    assert "SCIP_SSH_KEY" not in env and "SCIP_CONFIG_DIR" not in env
    [create] = pod_creations(kube_api, kube_namespace)
    kubernetes_validate.validate(create.data, "1.30", strict=True)
    await spawner.stop()


STORAGE = {
    "projects": {
        "researchers": {"claim": "scip-projects", "jurisdiction": "CA"},
        "lab-bc": {"claim": "scip-projects", "jurisdiction": "CA-BC"},
    },
    "scratch": {"claim": "scip-scratch"},
    "course_data": {"claim": "scip-course-data"},
}


async def test_project_scratch_and_course_data_are_mounted_at_the_cluster_paths(kube_api, kube_namespace):
    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user(*RESEARCHER), kube_namespace, {"profile": "cpu-small"},
                           storage=STORAGE)
    await start(spawner)
    pod = only_pod(kube_api, kube_namespace)
    container = pod["spec"]["containers"][0]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/project/researchers"]["subPath"] == "researchers"
    assert mounts[f"/scratch/{RESEARCHER[0]}"]["subPath"] == RESEARCHER[0]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert claims[mounts["/project/researchers"]["name"]] == "scip-projects"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SCIP_PROJECT_DIRS"] == "/project/researchers" and env["SCIP_SCRATCH"] == f"/scratch/{RESEARCHER[0]}"
    # the table the spawn check used reaches the notebook, for ARC scale-ups (docs/arc.md)
    assert env["SCIP_DATA_JURISDICTIONS"] == "researchers=" + STORAGE["projects"]["researchers"]["jurisdiction"]
    assert pss_violations(pod) == []
    [create] = pod_creations(kube_api, kube_namespace)
    kubernetes_validate.validate(create.data, "1.32", strict=True)
    await spawner.stop()


async def test_spawn_that_would_take_project_data_out_of_its_jurisdiction_is_refused(kube_api, kube_namespace):
    user = make_user("bea", "researchers", "lab-bc")  # lab-bc's data must stay in CA-BC; the catalog's sites are CA
    spawner = make_spawner(SCIPKubeSpawner, kube_api, user, kube_namespace, {"profile": "cpu-small"}, storage=STORAGE)
    with pytest.raises(web.HTTPError) as err:
        await start(spawner)
    assert err.value.status_code == 403
    message = err.value.log_message
    assert message.startswith("project: the data of lab-bc must stay in CA-BC;")
    assert "runs in CA" in message and "ask your project lead" in message
    assert namespace_requests(kube_api, kube_namespace) == []  # refused before any API call


@pytest.mark.parametrize(
    "storage, words",
    [
        ({"projects": {"lab": {"claim": "p"}}}, "storage.projects.lab.jurisdiction"),
        ({"paths": {"home": "/home/{user}"}}, "unknown area(s) home; allowed: project, scratch, course"),
        ({"scratch": {"claim": "s", "size": "1Ti"}}, "storage.scratch.size"),
    ],
)
async def test_storage_settings_are_checked_naming_the_field(kube_api, kube_namespace, storage, words):
    with pytest.raises(TraitError, match=re.escape(words)):
        make_spawner(SCIPKubeSpawner, kube_api, make_user(*RESEARCHER), kube_namespace, storage=storage)


async def test_pod_labels_use_the_slurm_job_tag_vocabulary(kube_api, kube_namespace):
    from dataclasses import fields

    from scip_jupyter.arc.tags import JobTags

    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user(*STUDENT), kube_namespace, {"profile": "cpu-small"})
    await start(spawner)
    labels = only_pod(kube_api, kube_namespace)["metadata"]["labels"]
    keys = {k.split("/", 1)[1] for k in labels if k.startswith("scip.ca/")}
    assert keys == {f.name for f in fields(JobTags)} | {"profile"}
    assert labels["scip.ca/project"] == "" and labels["scip.ca/course"] == ""  # no allocation, no course
    await spawner.stop()
