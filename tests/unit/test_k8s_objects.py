"""Snapshot tests of the pure Kubernetes builders, and every pod they lead to
validated against the Kubernetes OpenAPI schema (kubernetes-validate, strict).

Snapshots live in tests/unit/snapshots/k8s/<profile>.json, one per profile of
hub_config/catalog.yaml. After an intended change, regenerate them with
`SCIP_UPDATE_SNAPSHOTS=1 pytest tests/unit/test_k8s_objects.py` and review the diff.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
from kubernetes_asyncio.client import ApiClient
from kubespawner.objects import make_pod

from scip_jupyter.catalog import Profile, load_catalog
from scip_jupyter.spawners.k8s_objects import (
    Extend,
    Placement,
    expand_overrides,
    label_value,
    profile_list_for,
    profile_overrides,
    slurm_client_mounts,
)
from tests.fixtures.common import ROOT, assert_matches_snapshot
from tests.pss import violations as pss_violations

CATALOG = load_catalog(ROOT / "hub_config" / "catalog.yaml")
PROFILES = {p.slug: p for p in CATALOG.profiles}
SNAPSHOTS = Path(__file__).parent / "snapshots" / "k8s"
#: Oldest Kubernetes we support, and the newest schema kubernetes-validate ships.
K8S_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
#: ApiClient's JSON serialisation is pure; skipping __init__ avoids opening an HTTP session.
_SERIALIZER = object.__new__(ApiClient)
#: What a z2jh deployment already configures for user pods: overrides must add to it.
Z2JH_BASE = {
    "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}}],
    "volume_mounts": [{"name": "home", "mountPath": "/home/jovyan"}],
    "tolerations": [
        {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}
    ],
}


def labels_for(profile: Profile, user: str = "alice@example.org", server: str = "default") -> dict[str, str]:
    return {
        "scip.ca/user": user,
        "scip.ca/server": server,
        "scip.ca/profile": profile.slug,
        "scip.ca/site": profile.site,
        "scip.ca/jurisdiction": profile.jurisdiction,
    }


def build_pod(overrides: dict, base: dict | None = None, env: dict | None = None) -> dict:
    """The pod KubeSpawner would build: kubespawner.objects.make_pod with the overrides applied."""
    o = expand_overrides(overrides, base if base is not None else Z2JH_BASE)
    pod = make_pod(
        name="jupyter-alice",
        cmd=["jupyterhub-singleuser"],
        port=8888,
        image=o["image"],
        image_pull_policy="IfNotPresent",
        node_selector=o["node_selector"],
        env={**(env or {}), **o.get("environment", {})},
        volumes=o["volumes"],
        volume_mounts=o["volume_mounts"],
        labels={"component": "singleuser-server", **o["extra_labels"]},
        annotations=o["extra_annotations"],
        cpu_limit=o["cpu_limit"],
        cpu_guarantee=o["cpu_guarantee"],
        mem_limit=o["mem_limit"],
        mem_guarantee=o["mem_guarantee"],
        extra_resource_limits=o.get("extra_resource_limits"),
        extra_resource_guarantees=o.get("extra_resource_guarantees"),
        tolerations=o["tolerations"],
        uid=1000,
        gid=100,
        fs_gid=100,
        allow_privilege_escalation=False,
        pod_security_context=o.get("pod_security_context"),
        container_security_context=o.get("container_security_context"),
    )
    return _SERIALIZER.sanitize_for_serialization(pod)


def validate(manifest: dict) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)


def _jsonable(overrides: dict) -> dict:
    return json.loads(json.dumps(expand_overrides(overrides, {})))


@pytest.mark.parametrize("slug", sorted(PROFILES))
def test_profile_overrides_match_snapshot(slug):
    got = _jsonable(profile_overrides(PROFILES[slug], labels_for(PROFILES[slug])))
    assert_matches_snapshot(json.dumps(got, indent=2, sort_keys=True) + "\n", SNAPSHOTS / f"{slug}.json", load=json.loads)


@pytest.mark.parametrize("slug", sorted(PROFILES))
def test_every_profile_pod_is_valid_kubernetes(slug):
    profile = PROFILES[slug]
    validate(build_pod(profile_overrides(profile, labels_for(profile))))


@pytest.mark.parametrize("slug", sorted(PROFILES))
def test_every_profile_pod_passes_pod_security_standard_restricted(slug):
    profile = PROFILES[slug]
    volumes, mounts, env = slurm_client_mounts("slurm-conf", "scip-jupyter-config")
    pod = build_pod(profile_overrides(profile, labels_for(profile), None, volumes, mounts, env))
    assert pss_violations(pod) == []
    container = pod["spec"]["containers"][0]["securityContext"]
    assert container["capabilities"] == {"drop": ["ALL"]} and container["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["runAsUser"] == 1000


@pytest.mark.parametrize(
    "breakage, problem",
    [
        (lambda p: p["spec"]["containers"][0]["securityContext"].update(privileged=True), "privileged"),
        (lambda p: p["spec"]["containers"][0]["securityContext"].pop("capabilities"), "drop ALL"),
        (lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
        (lambda p: p["spec"]["containers"][0]["securityContext"].update(runAsUser=0), "runAsUser is 0"),
        (lambda p: p["spec"].update(hostNetwork=True), "hostNetwork"),
    ],
)
def test_pod_security_check_catches_what_restricted_forbids(breakage, problem):
    profile = PROFILES["cpu-small"]
    pod = build_pod(profile_overrides(profile, labels_for(profile)))
    breakage(pod)
    assert any(problem in v for v in pss_violations(pod))


@pytest.mark.parametrize(
    "slug, resource",
    [("h100-full", "nvidia.com/gpu"), ("mig-1g-10gb", "nvidia.com/mig-1g.10gb"), ("mig-3g-40gb", "nvidia.com/mig-3g.40gb")],
)
def test_gpu_profiles_request_their_extended_resource(slug, resource):
    pod = build_pod(profile_overrides(PROFILES[slug], labels_for(PROFILES[slug])))
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["limits"][resource] == "1"
    assert resources["requests"][resource] == "1"
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]


def test_cpu_profile_gets_no_gpu_and_hides_node_gpus():
    pod = build_pod(profile_overrides(PROFILES["cpu-small"], labels_for(PROFILES["cpu-small"])))
    container = pod["spec"]["containers"][0]
    assert not [k for k in container["resources"]["limits"] if k.startswith("nvidia.com/")]
    assert "nodeSelector" not in pod["spec"]
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"} in container["env"]
    assert [t["key"] for t in pod["spec"]["tolerations"]] == ["hub.jupyter.org/dedicated"]


@pytest.mark.parametrize("slug", sorted(PROFILES))
def test_dev_shm_is_memory_backed_with_profile_size(slug):
    pod = build_pod(profile_overrides(PROFILES[slug], labels_for(PROFILES[slug])))
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["scip-shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": PROFILES[slug].shm_size}
    mounts = {m["mountPath"]: m["name"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/dev/shm"] == "scip-shm"


def test_overrides_add_to_configured_volumes_and_tolerations():
    pod = build_pod(profile_overrides(PROFILES["h100-full"], labels_for(PROFILES["h100-full"])))
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["home", "scip-shm"]
    assert [t["key"] for t in pod["spec"]["tolerations"]] == ["hub.jupyter.org/dedicated", "nvidia.com/gpu"]


def test_reapplying_a_profile_replaces_its_own_volume():
    """Switching profiles on the same spawner must not keep the old /dev/shm size."""
    first = expand_overrides(profile_overrides(PROFILES["h100-full"], labels_for(PROFILES["h100-full"])), Z2JH_BASE)
    second = expand_overrides(profile_overrides(PROFILES["cpu-small"], labels_for(PROFILES["cpu-small"])), first)
    shm = [v for v in second["volumes"] if v["name"] == "scip-shm"]
    assert shm == [{"name": "scip-shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1G"}}]


@pytest.mark.parametrize(
    "user, server",
    [
        ("alice", ""),
        ("alice@example.org", "gpu"),
        ("Émile.Ñúñez", "my server"),
        ("<script>alert(1)</script>", "x" * 80),
        ("{username}-{servername}", "{0}"),
        ("a" * 200, "-leading-and-trailing-"),
    ],
)
def test_label_values_are_valid_for_any_user_and_server(user, server):
    profile = PROFILES["mig-1g-10gb"]
    overrides = profile_overrides(profile, labels_for(profile, user, server))
    for value in overrides["extra_labels"].values():
        assert len(value) <= 63 and LABEL_VALUE_RE.match(value), value
    # Annotations keep the raw name; braces are doubled because KubeSpawner str.format()s them.
    assert overrides["extra_annotations"]["scip.ca/user"].replace("{{", "{").replace("}}", "}") == user
    validate(build_pod(overrides))


def test_distinct_users_get_distinct_label_values():
    assert label_value("alice@example.org") != label_value("alice-example-org")


def test_site_node_label_selects_the_profile_site():
    placement = Placement(site_node_label="scip.ca/site")
    overrides = profile_overrides(PROFILES["cpu-small"], labels_for(PROFILES["cpu-small"]), placement)
    assert overrides["node_selector"] == {"scip.ca/site": "scip-east"}


def test_gpu_model_without_product_label_gets_no_product_selector_and_taint_can_be_off():
    placement = Placement(gpu_products={}, tolerate_gpu_taint=False)
    overrides = expand_overrides(profile_overrides(PROFILES["h100-full"], labels_for(PROFILES["h100-full"]), placement))
    assert overrides["node_selector"] == {}
    assert overrides["tolerations"] == []


def test_profile_list_entries_follow_kubespawner_and_escape_html():
    evil = PROFILES["cpu-small"].model_copy(
        update={"display_name": "<script>alert('x')</script>", "description": "a & <b>b</b>"}
    )
    [entry] = profile_list_for([evil], labels_for)
    assert entry["slug"] == "cpu-small" and entry["default"] is True
    assert entry["display_name"] == "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    assert entry["description"] == "a &amp; &lt;b&gt;b&lt;/b&gt;"
    assert isinstance(entry["kubespawner_override"]["volumes"], Extend)


def test_profile_list_keeps_catalog_order():
    entries = profile_list_for(CATALOG.profiles, labels_for)
    assert [e["slug"] for e in entries] == CATALOG.slugs


def test_client_mounts_carry_config_never_a_shared_secret():
    volumes, mounts, env = slurm_client_mounts("slurm-conf", "scip-jupyter-config")
    assert [v["name"] for v in volumes] == ["scip-slurm-conf", "scip-config"]
    assert not [v for v in volumes if "secret" in v]
    assert {m["mountPath"] for m in mounts} == {"/etc/slurm", "/usr/local/etc/scip"}
    assert all(m["readOnly"] for m in mounts)
    assert env == {
        "SLURM_CONF": "/etc/slurm/slurm.conf",
        "SCIP_COURSES_FILE": "/usr/local/etc/scip/courses.yaml",
        "SCIP_ARC_PRESETS": "/usr/local/etc/scip/arc.yaml",
    }
    profile = PROFILES["h100-full"]
    pod = build_pod(profile_overrides(profile, labels_for(profile), None, volumes, mounts, env))
    validate(pod)
    text = json.dumps(pod).lower()
    assert "munge" not in text and "ssh" not in text


def test_config_env_names_only_the_files_the_config_map_carries():
    _, _, env = slurm_client_mounts("", "scip-jupyter-config", config_files=("arc.yaml",))
    assert env == {"SCIP_ARC_PRESETS": "/usr/local/etc/scip/arc.yaml"}


def test_no_slurm_settings_means_no_mounts():
    assert slurm_client_mounts() == ([], [], {})


@pytest.mark.parametrize("module", ["scip_jupyter.spawners.k8s_objects", "scip_jupyter.spawners.k8s_events", "scip_jupyter.availability", "scip_jupyter.data", "scip_jupyter.storage", "scip_jupyter.catalog"])
def test_doctests_hold(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0

