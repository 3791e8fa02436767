"""The Helm chart (helm/scip-jupyter) and the hub config it loads (hub_config/k8s.py).

Rendering and linting use the real Helm v4 library through helm-python-sdk.
There is no network to chart repositories here, so the released z2jh chart
(../shared/charts/jupyterhub-4.4.0.tgz) is put where `helm dependency build`
would, in a temporary copy of the chart (tests/fixtures/chart.py; the chart
ships none). The chart's own templates also render alone (the dependency has a
condition), which the contract tests use.
"""

from __future__ import annotations

import doctest
import json
import runpy
import shutil
import sys
import types
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from traitlets.config import Config

from scip_jupyter.catalog import load_catalog
from scip_jupyter.checks import check_dir
from tests.fixtures.chart import K8S_VERSIONS as SUPPORTED_K8S, Z2JH_VERSION, chart_with_z2jh, manifests
from tests.fixtures.common import ROOT

CHART = ROOT / "helm" / "scip-jupyter"
HUB_CONFIG = ROOT / "hub_config" / "k8s.py"
EVERYTHING_ON = yaml.safe_load((CHART / "ci" / "everything-on-values.yaml").read_text())
K8S_VERSIONS = (*SUPPORTED_K8S, kubernetes_validate.utils.latest_version())
helm.disable_logging()


@pytest.fixture(scope="module")
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render(chart: helm.Chart, values: dict) -> list[dict]:
    manifests = chart.render(values, name="scip", namespace="jhub")
    docs = [d for text in manifests.values() for d in yaml.safe_load_all(text) if d]
    return docs


def by_name(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


# --- values.schema.yaml: the contract ---------------------------------------------------------


def test_values_schema_json_is_generated_from_the_yaml_contract():
    assert json.loads((CHART / "values.schema.json").read_text()) == yaml.safe_load(
        (CHART / "values.schema.yaml").read_text()
    ), "values.schema.json is stale: run .venv/bin/python helm/gen_schema.py"


def _walk(schema: dict, path: str = ""):
    yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{key}")
    for key, sub in (schema.get("definitions") or {}).items():
        yield from _walk(sub, f"#{key}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}.*")


def test_every_schema_key_has_a_description_and_owned_objects_are_closed():
    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text())
    missing = [path for path, sub in _walk(schema) if not sub.get("description")]
    assert missing == []
    open_objects = [
        path
        for path, sub in _walk(schema)
        if sub.get("type") == "object" and "properties" in sub and sub.get("additionalProperties") is not False
    ]
    # Only z2jh's own sections stay open (z2jh's schema validates them).
    assert open_objects == [".jupyterhub", ".jupyterhub.custom"]


def test_default_values_satisfy_the_schema(chart):
    chart.validate_schema(yaml.safe_load((CHART / "values.yaml").read_text()))
    chart.validate_schema(EVERYTHING_ON)


@pytest.mark.parametrize(
    "values, where",
    [
        ({"workerCidrs": ["10.0.0.0/8"]}, "workerCidrs"),  # belongs under daskNetworkPolicy
        ({"jupyterhub": {"custom": {"catalogPath": "/x.yaml"}}}, "/jupyterhub/custom/catalogPath"),
        ({"jupyterhub": {"custom": {"scip": {"slurmConfigMap": "x"}}}}, "slurmConfigMap"),
        ({"daskNetworkPolicy": {"workerCIDRs": []}}, "workerCIDRs"),
        ({"daskNetworkPolicy": {"schedulerPorts": [8786]}}, "/daskNetworkPolicy/schedulerPorts"),
        ({"config": {"catalog": "profiles: []"}}, "/config/catalog"),
        (  # an inline secret instead of a reference
            {"jupyterhub": {"custom": {"scip": {"slurm": {"mungeKeySecret": {"name": "m", "key": "k", "data": "c2VjcmV0"}}}}}},
            "/jupyterhub/custom/scip/slurm/mungeKeySecret",
        ),
        ({"daskNetworkPolicy": {"workerCidrs": ["not-a-cidr"]}}, "/daskNetworkPolicy/workerCidrs/0"),
        (  # an inline database password
            {"jupyterhub": {"custom": {"scip": {"ledgerUrl": "postgresql+psycopg://scip:hunter2@db/scip"}}}},
            "/jupyterhub/custom/scip/ledgerUrl",
        ),
        ({"jupyterhub": {"custom": {"allocationsPath": "/x.yaml"}}}, "/jupyterhub/custom/allocationsPath"),
        ({"config": {"allocations": ["groups"]}}, "/config/allocations"),
    ],
)
def test_misplaced_or_unknown_key_is_refused_by_the_schema(chart, values, where):
    with pytest.raises(helm.HelmValuesError) as err:
        chart.render(values, name="scip", namespace="jhub")
    assert where in str(err.value)


# --- lint and render ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def umbrella(tmp_path_factory) -> Path:
    """A copy of the chart with the real z2jh 4.4.0 chart in charts/ (tests only)."""
    return chart_with_z2jh(tmp_path_factory.mktemp("chart"))


def z2jh_on(values: dict) -> dict:
    return {**values, "jupyterhub": {**values.get("jupyterhub", {}), "enabled": True}}


@pytest.mark.parametrize("values_name", ["values.yaml", "ci/everything-on-values.yaml"])
def test_chart_lints_clean_with_the_real_z2jh_dependency(umbrella, values_name):
    values = yaml.safe_load((CHART / values_name).read_text())
    report = helm.lint(umbrella, values, strict=True, kube_version=f"v{SUPPORTED_K8S[0]}.0", with_subcharts=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_dependency_is_pinned_to_the_z2jh_version_the_tests_use():
    [dependency] = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]
    assert dependency["name"] == "jupyterhub" and dependency["version"] == Z2JH_VERSION
    assert not (CHART / "charts").exists()  # the project ships no copy of z2jh


@pytest.fixture(scope="module")
def rendered_with_z2jh(umbrella) -> list[dict]:
    with helm.Chart.load(umbrella) as umbrella_chart:
        assert [(d["name"], d["version"]) for d in umbrella_chart.dependencies] == [("jupyterhub", Z2JH_VERSION)]
        return manifests(umbrella_chart.render(z2jh_on(EVERYTHING_ON), name="scip", namespace="jhub"))


def test_umbrella_chart_renders_only_valid_kubernetes_objects_with_z2jh(rendered_with_z2jh):
    kinds = {d["kind"] for d in rendered_with_z2jh}
    assert {"Deployment", "Secret", "ConfigMap", "NetworkPolicy", "Service", "PersistentVolumeClaim"} <= kinds
    assert len(rendered_with_z2jh) > 30
    for doc in rendered_with_z2jh:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_rendered_hub_runs_k8s_py_from_the_scip_config_map(rendered_with_z2jh):
    objects = by_name(rendered_with_z2jh)
    hub = objects[("Deployment", "hub")]["spec"]["template"]["spec"]
    [container] = [c for c in hub["containers"] if c["name"] == "hub"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/usr/local/etc/scip"] == "scip-config"
    volumes = {v["name"]: v for v in hub["volumes"]}
    assert volumes["scip-config"]["configMap"]["name"] == "scip-jupyter-config"
    env = {e["name"]: e for e in container["env"]}
    assert env["SCIP_POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    secret_values = yaml.safe_load(
        __import__("base64").b64decode(objects[("Secret", "hub")]["data"]["values.yaml"]).decode()
    )
    assert 'runpy.run_path("/usr/local/etc/scip/k8s.py", init_globals={"c": c})' in secret_values["hub"]["extraConfig"]["00-scip"]
    assert secret_values["custom"]["scip"]["catalogPath"] == "/usr/local/etc/scip/catalog.yaml"


def test_user_pods_get_no_privileged_init_container(rendered_with_z2jh):
    secret_values = yaml.safe_load(
        __import__("base64").b64decode(by_name(rendered_with_z2jh)[("Secret", "hub")]["data"]["values.yaml"]).decode()
    )
    singleuser = secret_values["singleuser"]
    assert singleuser["cloudMetadata"]["blockWithIptables"] is False  # its init container runs privileged
    assert singleuser["allowPrivilegeEscalation"] is False and singleuser["uid"] == 1000
    assert singleuser["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False


def test_rendered_hub_network_policy_lets_the_proxy_reach_the_courses_service(rendered_with_z2jh):
    policy = by_name(rendered_with_z2jh)[("NetworkPolicy", "hub")]["spec"]
    ports = [p.get("port") for rule in policy["ingress"] for p in rule.get("ports", [])]
    assert 10101 in ports


def test_rendered_singleuser_network_policy_lets_servers_report_to_the_courses_service(rendered_with_z2jh):
    policy = by_name(rendered_with_z2jh)[("NetworkPolicy", "singleuser")]["spec"]
    rules = [r for r in policy["egress"] if 10101 in [p.get("port") for p in r.get("ports", [])]]
    assert [r["to"] for r in rules] == [[{"podSelector": {"matchLabels": {"app": "jupyterhub", "component": "hub"}}}]]


def test_no_shared_credential_in_any_rendered_object(rendered_with_z2jh):
    objects = by_name(rendered_with_z2jh)
    secret_values = yaml.safe_load(
        __import__("base64").b64decode(objects[("Secret", "hub")]["data"]["values.yaml"]).decode()
    )
    assert set(secret_values["custom"]["scip"]["slurm"]) == {"configMap"}
    singleuser = secret_values["singleuser"]
    assert "secret" not in json.dumps(singleuser.get("storage", {}).get("extraVolumes", []))
    # Only z2jh's own Secrets (hub tokens, proxy token) and the hub's signing keys are mounted anywhere,
    mounted = {secret for secrets in pod_secrets(rendered_with_z2jh).values() for secret in secrets}
    assert mounted <= {"hub", "proxy-public-tls-acme", "proxy-manual-tls", "ledger-db", *SIGNING_KEYS}, mounted
    # and the signing keys only in the hub pod.
    holders = {pod for pod, secrets in pod_secrets(rendered_with_z2jh).items() if secrets & set(SIGNING_KEYS)}
    assert holders == {("Deployment", "hub")}


#: The Secrets holding the hub's signing keys (Slurm JWT HS256 key, SSH user CA), in the chart's default values.
SIGNING_KEYS = ("scip-slurm-jwt", "scip-ssh-ca")


def pod_secrets(docs: list[dict]) -> dict[tuple[str, str], set[str]]:
    """Every pod template of a render -> the Secrets it mounts or takes environment variables from."""
    out = {}
    for d in docs:
        spec = (d.get("spec", {}).get("template") or {}).get("spec")
        if spec is None:
            continue
        names = {v["secret"]["secretName"] for v in spec.get("volumes") or [] if "secret" in v}
        names |= {s["secret"]["name"] for v in spec.get("volumes") or [] for s in (v.get("projected") or {}).get("sources", []) if "secret" in s}
        for c in (*spec.get("containers", []), *(spec.get("initContainers") or [])):
            names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env") or [] if "secretKeyRef" in (e.get("valueFrom") or {})}
            names |= {e["secretRef"]["name"] for e in c.get("envFrom") or [] if "secretRef" in e}
        out[(d["kind"], d["metadata"]["name"])] = names
    return out


def test_signing_key_secrets_are_mounted_read_only_0400_in_the_hub_pod_only(rendered_with_z2jh):
    pods = pod_secrets(rendered_with_z2jh)
    assert len(pods) >= 4  # hub, proxy, user-scheduler, image pullers: every pod template is looked at
    for pod, secrets in pods.items():
        if pod == ("Deployment", "hub"):
            assert set(SIGNING_KEYS) <= secrets
        else:
            assert not secrets & set(SIGNING_KEYS), f"{pod} gets a signing key: {secrets}"
    hub = by_name(rendered_with_z2jh)[("Deployment", "hub")]["spec"]["template"]["spec"]
    volumes = {v["secret"]["secretName"]: v for v in hub["volumes"] if "secret" in v}
    [container] = [c for c in hub["containers"] if c["name"] == "hub"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    for name in SIGNING_KEYS:
        assert volumes[name]["secret"]["defaultMode"] == 0o400 and volumes[name]["secret"]["optional"] is True
        assert mounts[volumes[name]["name"]]["readOnly"] is True
    # The singleuser configuration the hub hands KubeSpawner names none of them either.
    values = yaml.safe_load(
        __import__("base64").b64decode(by_name(rendered_with_z2jh)[("Secret", "hub")]["data"]["values.yaml"]).decode()
    )
    assert not any(name in json.dumps(values["singleuser"]) for name in SIGNING_KEYS)
    # The everything-on values reference them; the render holds no key material of ours.
    assert values["custom"]["scip"]["credentials"]["slurmJwtKeySecret"] == {"name": "scip-slurm-jwt", "key": "jwt_hs256.key"}
    assert not [d for d in rendered_with_z2jh if d["kind"] == "Secret" and d["metadata"]["name"] in SIGNING_KEYS]


def test_gpu_network_policies_open_the_scip_gpu_port_and_prometheus(rendered_with_z2jh):
    objects = by_name(rendered_with_z2jh)
    scip = EVERYTHING_ON["jupyterhub"]["custom"]["scip"]["gpuCulling"]
    hub = objects[("NetworkPolicy", "scip-gpu")]["spec"]
    assert hub["podSelector"]["matchLabels"] == {"app": "jupyterhub", "component": "hub", "release": "scip"}
    [ingress] = hub["ingress"]
    assert ingress["from"] == [{"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-hub": "true"}}}]
    assert [p["port"] for p in ingress["ports"]] == [scip["port"]]
    [egress] = hub["egress"]
    prometheus = EVERYTHING_ON["gpuNetworkPolicy"]["prometheus"]
    assert egress["to"][0] == {
        "podSelector": {"matchLabels": prometheus["podLabels"]},
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": prometheus["namespace"]}},
    }
    assert [p["port"] for p in egress["ports"]] == [prometheus["port"]]
    servers = objects[("NetworkPolicy", "scip-gpu-servers")]["spec"]
    assert servers["podSelector"]["matchLabels"]["component"] == "singleuser-server"
    assert servers["policyTypes"] == ["Egress"]
    assert [p["port"] for p in servers["egress"][0]["ports"]] == [scip["port"]]
    # z2jh's activity-only culler is off: scip-gpu culls (k8s.py refuses both).
    assert ("Deployment", "hub") in objects
    values = yaml.safe_load(__import__("base64").b64decode(objects[("Secret", "hub")]["data"]["values.yaml"]).decode())
    assert values["cull"]["enabled"] is False
    assert "jupyterhub-idle-culler" not in json.dumps(values.get("hub", {}).get("services", {}))


@pytest.mark.parametrize(
    "values, names",
    [
        ({}, {"scip-gpu", "scip-gpu-servers"}),
        ({"jupyterhub": {"custom": {"scip": {"gpuCulling": {"enabled": False}}}}}, set()),
        ({"gpuNetworkPolicy": {"enabled": False}}, set()),
        ({"jupyterhub": {"hub": {"networkPolicy": {"enabled": False}}}}, {"scip-gpu-servers"}),  # never isolate an open hub
        ({"jupyterhub": {"singleuser": {"networkPolicy": {"enabled": False}}}}, {"scip-gpu"}),
    ],
    ids=["defaults", "culling-off", "policy-off", "z2jh-hub-policy-off", "z2jh-singleuser-policy-off"],
)
def test_gpu_network_policies_follow_culling_and_z2jh_policies(umbrella, values, names):
    with helm.Chart.load(umbrella) as umbrella_chart:
        docs = manifests(umbrella_chart.render(z2jh_on(values), name="scip", namespace="jhub"))
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].startswith("scip-gpu")} == names
    for doc in docs:
        if doc["kind"] == "NetworkPolicy":
            kubernetes_validate.validate(doc, SUPPORTED_K8S[0], strict=True)


@pytest.mark.parametrize(
    "values, objects",
    [
        ({}, [("ConfigMap", "scip-jupyter-config")]),
        (EVERYTHING_ON, [("ConfigMap", "scip-jupyter-config"), ("ConfigMap", "scip-slurm-client"), ("NetworkPolicy", "scip-dask")]),
    ],
    ids=["defaults", "everything-on"],
)
def test_chart_renders_only_valid_kubernetes_objects(chart, values, objects):
    docs = render(chart, values)
    assert sorted(by_name(docs)) == objects
    for doc in docs:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_defaults_render_config_without_optional_objects(chart):
    docs = by_name(render(chart, {}))
    assert list(docs) == [("ConfigMap", "scip-jupyter-config")]
    data = docs[("ConfigMap", "scip-jupyter-config")]["data"]
    # courses.yaml is per deployment (config.courses); hub_config's demo registry points at local folders.
    assert set(data) == {"k8s.py", "catalog.yaml", "allocations.yaml", "arc.yaml"}


def test_config_map_carries_quotas_from_values_or_the_shipped_file(chart, tmp_path):
    shipped = by_name(render(chart, {}))[("ConfigMap", "scip-jupyter-config")]["data"]
    assert shipped["allocations.yaml"].strip() == (ROOT / "hub_config" / "allocations.yaml").read_text().strip()
    data = by_name(render(chart, EVERYTHING_ON))[("ConfigMap", "scip-jupyter-config")]["data"]
    assert yaml.safe_load(data["allocations.yaml"]) == EVERYTHING_ON["config"]["allocations"]


def test_ledger_password_comes_from_a_secret_reference_never_from_values():
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["jupyterhub"]
    env = defaults["hub"]["extraEnv"]["SCIP_LEDGER_PASSWORD"]
    assert env == {"valueFrom": {"secretKeyRef": {"name": "scip-ledger", "key": "password", "optional": True}}}
    assert defaults["custom"]["scip"]["ledgerUrl"] == "sqlite:////srv/jupyterhub/scip-allocations.sqlite"  # the hub PVC
    on = EVERYTHING_ON["jupyterhub"]
    assert set(on["hub"]["extraEnv"]["SCIP_LEDGER_PASSWORD"]["valueFrom"]) == {"secretKeyRef"}
    assert on["custom"]["scip"]["ledgerUrl"].startswith("postgresql+psycopg://scip@")


@pytest.mark.parametrize("values_name", ["values.yaml", "ci/everything-on-values.yaml"])
def test_rendered_config_files_pass_scip_jupyter_check(chart, tmp_path, values_name):
    values = yaml.safe_load((CHART / values_name).read_text())
    data = by_name(render(chart, values))[("ConfigMap", "scip-jupyter-config")]["data"]
    assert data["k8s.py"].strip() == HUB_CONFIG.read_text().strip()
    for name in ("catalog.yaml", "allocations.yaml", "courses.yaml", "arc.yaml"):
        if name in data:
            (tmp_path / name).write_text(data[name])
    checked, problems = check_dir(tmp_path)
    assert len(checked) == len(data) - 1 and problems == []


def test_catalog_from_values_replaces_the_shipped_file(chart, tmp_path):
    data = by_name(render(chart, EVERYTHING_ON))[("ConfigMap", "scip-jupyter-config")]["data"]
    (tmp_path / "catalog.yaml").write_text(data["catalog.yaml"])
    assert load_catalog(tmp_path / "catalog.yaml").slugs == ["cpu-small", "mig-1g-10gb"]
    defaults = by_name(render(chart, {}))[("ConfigMap", "scip-jupyter-config")]["data"]
    assert defaults["catalog.yaml"].strip() == (ROOT / "hub_config" / "catalog.yaml").read_text().strip()


def test_dask_network_policy_opens_exactly_the_scheduler_ports_the_presets_fix(chart):
    policy = by_name(render(chart, EVERYTHING_ON))[("NetworkPolicy", "scip-dask")]["spec"]
    assert policy["podSelector"]["matchLabels"]["component"] == "singleuser-server"
    [ingress] = policy["ingress"]
    assert [b["ipBlock"]["cidr"] for b in ingress["from"]] == ["10.20.0.0/16", "2001:db8::/48"]
    fixed = [c["network"]["port"] for c in EVERYTHING_ON["config"]["arc"]["clusters"] if c["network"]["mode"] == "connect-back"]
    assert [p["port"] for p in ingress["ports"]] == fixed == [8786]
    worker_egress, slurm_egress = policy["egress"]
    assert "ports" not in worker_egress  # workers listen where Dask puts them on the compute nodes
    assert [p["port"] for p in slurm_egress["ports"]] == [22, 6817, 6818, 6819]


def test_a_random_scheduler_port_stops_the_render_when_the_policy_is_on(chart):
    values = {"daskNetworkPolicy": {"enabled": True, "workerCidrs": ["10.20.0.0/16"]}}  # shipped arc.yaml: port 0
    with pytest.raises(helm.HelmRenderError, match="has network.port 0 .* give it a fixed port in config.arc"):
        chart.render(values, name="scip", namespace="jhub")


def test_enabled_network_policy_without_networks_fails_to_render(chart):
    with pytest.raises(helm.HelmRenderError, match="needs workerCidrs or slurmCidrs"):
        chart.render({"daskNetworkPolicy": {"enabled": True}}, name="scip", namespace="jhub")


def test_chart_never_renders_a_secret_of_its_own(chart):
    # (z2jh's own hub Secret holds its generated tokens and the values; see the z2jh tests above.)
    assert [d for d in render(chart, EVERYTHING_ON) if d["kind"] == "Secret"] == []


# --- hub_config/k8s.py: chart keys -> traitlets ----------------------------------------------


def load_hub_config(values: dict, monkeypatch) -> Config:
    """Run hub_config/k8s.py as z2jh's hub would, with a fake z2jh.get_config over `values`."""

    def get_config(key, default=None):
        node = values
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    monkeypatch.setitem(sys.modules, "z2jh", types.SimpleNamespace(get_config=get_config))
    c = Config()
    runpy.run_path(str(HUB_CONFIG), init_globals={"c": c, "get_config": lambda: c, "load_subconfig": None})
    return c


def chart_defaults() -> dict:
    """The jupyterhub values of the chart defaults, as z2jh hands them to the hub."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())["jupyterhub"]
    values["custom"]["scip"]["catalogPath"] = str(ROOT / "hub_config" / "catalog.yaml")
    values["custom"]["scip"]["allocationsPath"] = str(ROOT / "hub_config" / "allocations.yaml")
    return values


def test_hub_config_maps_chart_keys_to_traitlets(monkeypatch):
    values = chart_defaults()
    values["custom"]["scip"].update(
        siteNodeLabel="scip.ca/site",
        tolerateGpuTaint=False,
        slurm={"configMap": "sc"},
    )
    c = load_hub_config(values, monkeypatch)
    assert c.JupyterHub.spawner_class == "scip-kube"
    spawner = c.SCIPKubeSpawner
    assert spawner.catalog_path == str(ROOT / "hub_config" / "catalog.yaml")
    assert spawner.site_node_label == "scip.ca/site"
    assert spawner.tolerate_gpu_taint is False
    assert spawner.gpu_products["h100"] == "NVIDIA-H100-80GB-HBM3"
    assert spawner.scip_config_map == "scip-jupyter-config"
    assert spawner.slurm_config_map == "sc"
    mixin = c.SCIPSpawnerMixin  # shared settings come through hub_setup.configure, as on the embedded hub
    assert mixin.allocations_path == str(ROOT / "hub_config" / "allocations.yaml")
    assert mixin.ledger_url == "sqlite:////srv/jupyterhub/scip-allocations.sqlite"


def test_chart_hub_is_wired_by_the_same_configure_as_the_embedded_hub(monkeypatch, tmp_path):
    """Courses (groups, roles, launch links, service), ARC clean-up and allocations on the chart hub."""
    from scip_jupyter.arc.hub_hooks import SERVICE_NAME as RECONCILE
    from scip_jupyter.courses.hub import LAUNCH_PATTERN, SERVICE_NAME as COURSES

    courses = tmp_path / "courses.yaml"
    courses.write_text(yaml.safe_dump(EVERYTHING_ON["config"]["courses"]))
    values = chart_defaults()
    values["custom"]["scip"].update(coursesPath=str(courses), arc={"cleanupPresets": ["local-slurm"]})
    monkeypatch.setenv("SCIP_POD_IP", "10.1.2.3")
    c = load_hub_config(values, monkeypatch)
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert {COURSES, RECONCILE} <= set(services)  # (features may add their own)
    assert services[COURSES]["url"] == "http://10.1.2.3:10101"  # the proxy reaches the hub pod's IP
    assert "course-intro-gpu-students" in c.JupyterHub.load_groups
    assert any(r["name"].startswith("course-intro-gpu") for r in c.JupyterHub.load_roles)
    assert LAUNCH_PATTERN in [h[0] for h in c.JupyterHub.extra_handlers]
    assert callable(c.Spawner.post_stop_hook)
    assert c.ARCCleanup.presets == ["local-slurm"]
    assert c.SCIPSpawnerMixin.courses_path == str(courses)


def test_chart_pods_get_the_shared_environment_beside_z2jh_extra_env(monkeypatch, tmp_path):
    """z2jh's KubeSpawner.environment (singleuser.extraEnv) would shadow Spawner.environment: both reach the pods."""
    courses = tmp_path / "courses.yaml"
    courses.write_text(yaml.safe_dump(EVERYTHING_ON["config"]["courses"]))
    values = chart_defaults()
    values["custom"]["scip"].update(coursesPath=str(courses))
    k8s = hub_module()
    c = Config()
    c.KubeSpawner.environment = {"SITE_NOTE": "from extraEnv", "SCIP_COURSES_FILE": "/site/courses.yaml"}  # as z2jh sets it
    k8s["apply"](c, lambda key, default=None: values.get(key, default), environ={"SCIP_POD_IP": "10.1.2.3"},
                 config_dir="/nonexistent")
    env = c.KubeSpawner.environment
    assert env["SITE_NOTE"] == "from extraEnv" and env["SCIP_COURSES_FILE"] == "/site/courses.yaml"  # extraEnv wins
    assert env["SCIP_COURSES_SERVICE_URL"] == "http://10.1.2.3:10101/services/scip-courses/"


def test_chart_hub_keeps_the_services_and_roles_z2jh_configured(monkeypatch):
    from traitlets.config import Config as _Config

    values = chart_defaults()
    k8s = hub_module()
    c = _Config()
    culler = {"name": "jupyterhub-idle-culler", "command": ["python3", "-m", "jupyterhub_idle_culler"]}
    c.JupyterHub.services = [culler]
    c.JupyterHub.load_roles = [{"name": "jupyterhub-idle-culler", "services": ["jupyterhub-idle-culler"]}]
    k8s["apply"](c, lambda key, default=None: values.get(key, default), environ={}, config_dir="/nonexistent")
    assert culler in c.JupyterHub.services
    assert "jupyterhub-idle-culler" in [r["name"] for r in c.JupyterHub.load_roles]


def test_chart_hub_cleans_up_no_slurm_cluster_unless_told(monkeypatch):
    from scip_jupyter.arc.hub_hooks import SERVICE_NAME as RECONCILE

    c = load_hub_config(chart_defaults(), monkeypatch)
    assert RECONCILE not in {s["name"] for s in c.JupyterHub.services}
    assert "post_stop_hook" not in c.Spawner


def hub_module() -> dict:
    """hub_config/k8s.py's functions, without configuring anything."""
    return runpy.run_path(str(HUB_CONFIG))


def test_rendered_config_map_turns_allocation_accounting_on_in_the_hub(chart, tmp_path):
    """The ConfigMap the chart renders, mounted where the hub reads it, with the everything-on values."""
    data = by_name(render(chart, EVERYTHING_ON))[("ConfigMap", "scip-jupyter-config")]["data"]
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    merged = yaml.safe_load((CHART / "values.yaml").read_text())["jupyterhub"]["custom"]
    merged["scip"].update({k: v for k, v in EVERYTHING_ON["jupyterhub"]["custom"]["scip"].items()})
    k8s = hub_module()
    for key in ("catalogPath", "allocationsPath"):  # the chart's paths, moved to this test's mount point
        merged["scip"][key] = merged["scip"][key].replace(k8s["CONFIG_DIR"], str(tmp_path))
    hub = hub_volumes_under(tmp_path)
    c = Config()
    settings = k8s["apply"](c, lambda key, default=None: {"custom": merged, **hub}.get(key, default),
                            environ={"SCIP_LEDGER_PASSWORD": "from-the-secret"}, config_dir=str(tmp_path))
    spawner = c.SCIPSpawnerMixin
    assert spawner.allocations_path == str(tmp_path / "allocations.yaml")
    assert spawner.courses_path == str(tmp_path / "courses.yaml")  # the ConfigMap carries courses: used
    assert spawner.ledger_url == "postgresql+psycopg://scip:from-the-secret@postgres.jhub.svc:5432/scip"
    assert "from-the-secret" not in repr(settings)  # what apply reports never holds the password
    # The hub's signing keys: the files of the Secrets the chart mounts in the hub pod.
    assert c.SCIPCredentials.slurm_jwt_key_file == str(tmp_path / "scip-keys" / "slurm-jwt" / "jwt_hs256.key")
    assert c.SCIPCredentials.ssh_ca_key_file == str(tmp_path / "scip-keys" / "ssh-ca" / "user_ca")
    assert c.GPUCulling.prometheus_url == "http://prometheus-server.monitoring" and c.GPUCulling.port == 10102
    assert c.GPUCulling.profiles == {"mig-1g-10gb": {"idle_time": 3600, "warning_time": 900}}
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert services["scip-gpu"]["url"].endswith(":10102")


def hub_volumes_under(root: Path, keys=("jwt_hs256.key", "user_ca")) -> dict:
    """The chart's default hub.extraVolumes/extraVolumeMounts, mounted under `root`, with the key files
    the Secrets would hold (as the kubelet lays them out)."""
    hub = yaml.safe_load((CHART / "values.yaml").read_text())["jupyterhub"]["hub"]
    mounts = []
    for mount in hub["extraVolumeMounts"]:
        mount = {**mount, "mountPath": mount["mountPath"].replace("/usr/local/etc", str(root))}
        mounts.append(mount)
        if "scip-keys" in mount["mountPath"]:
            Path(mount["mountPath"]).mkdir(parents=True, exist_ok=True)
            for key in keys:
                (Path(mount["mountPath"]) / key).write_text("not a real key")
    return {"hub.extraVolumes": hub["extraVolumes"], "hub.extraVolumeMounts": mounts}


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"catalog.yaml", "allocations.yaml"}, {"allocations_path": "allocations.yaml", "courses_path": ""}),
        ({"catalog.yaml"}, {"allocations_path": "", "courses_path": ""}),
    ],
)
def test_hub_defaults_follow_the_files_the_config_map_carries(tmp_path, files, expected):
    for name in files:
        (tmp_path / name).write_text("")
    found = hub_module()["defaults"](str(tmp_path))
    for trait, name in expected.items():
        assert found[("HubSetup", trait)] == (str(tmp_path / name) if name else "")
    assert found[("HubSetup", "ledger_url")] == "sqlite:////srv/jupyterhub/scip-allocations.sqlite"


def test_empty_allocations_path_turns_accounting_off(monkeypatch):
    values = chart_defaults()
    values["custom"]["scip"]["allocationsPath"] = ""
    c = load_hub_config(values, monkeypatch)
    assert c.SCIPSpawnerMixin.allocations_path == ""


def test_sqlite_ledger_ignores_the_password_variable(monkeypatch):
    monkeypatch.setenv("SCIP_LEDGER_PASSWORD", "unused")
    c = load_hub_config(chart_defaults(), monkeypatch)
    assert c.SCIPSpawnerMixin.ledger_url == "sqlite:////srv/jupyterhub/scip-allocations.sqlite"


@pytest.mark.parametrize("name", ["ledger_url", "secret_file"])
def test_k8s_helper_doctests_pass(name):
    k8s = hub_module()
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(k8s[name], name, globs=k8s):
        runner.run(test)
    assert runner.summarize(verbose=False).attempted > 0 and runner.failures == 0


def test_every_table_key_is_in_the_chart_schema_and_maps_to_a_real_trait():
    from scip_jupyter.spawners.kube import SCIPKubeSpawner

    module = runpy.run_path(str(HUB_CONFIG))
    table, refused = module["SETTINGS"], module["REFUSED"]
    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text())
    scip = schema["properties"]["jupyterhub"]["properties"]["custom"]["properties"]["scip"]["properties"]
    leaves = set(table) | set(refused)  # a table key may be a mapping value (storage), not a section
    keys = {k for k, v in scip.items() if "properties" not in v or k in leaves} | {
        f"{k}.{sub}" for k, v in scip.items() if "properties" in v and k not in leaves for sub in v["properties"]
    }
    assert keys == set(table) | set(refused)
    from dataclasses import fields

    from scip_jupyter.hub_setup import HubSetup

    from scip_jupyter.culling.settings import BudgetWatcher, GPUCulling
    from scip_jupyter.identity_hub import SCIPCredentials

    classes = {c.__name__: c for c in (SCIPKubeSpawner, SCIPCredentials, GPUCulling, BudgetWatcher)}
    assert set(module["TRAIT_CLASSES"]) == set(classes)
    setup_fields = {f.name for f in fields(HubSetup)}
    for where, name, _type, _help in table.values():
        if where == "HubSetup":
            assert name in setup_fields, name
        else:
            assert classes[where].class_traits(config=True).get(name), f"{where}.{name}"


@pytest.mark.parametrize(
    "custom, message",
    [
        ({"scip": {"catalogPth": "/x"}}, "custom.scip.catalogPth: unknown key (did you mean catalogPath?)"),
        ({"catalogPath": "/x", "scip": {}}, "custom.catalogPath: misplaced; it belongs at custom.scip.catalogPath"),
        ({"scip": {"slurm": {"mungeKeySecret": {"name": "m", "key": "k"}}}}, "custom.scip.slurm.mungeKeySecret: refused: no shared munge key"),
        ({"scip": {"slurm": {"sshKeySecret": {"name": "k", "key": "id"}}}}, "custom.scip.slurm.sshKeySecret: refused: no shared robot SSH key"),
        ({"scip": {"tolerateGpuTaint": "yes"}}, "custom.scip.tolerateGpuTaint: must be a bool, not str"),
        ({"scip": "catalog.yaml"}, "custom.scip: must be a mapping, not str"),
        ({"scip": {"ledgerUrl": "postgresql://scip:hunter2@db/scip"}}, "custom.scip.ledgerUrl: holds a password; never put it in values"),
        ({"scip": {"ledgerUrl": "not a url"}}, "custom.scip.ledgerUrl: not a SQLAlchemy URL"),
        ({"scip": {"storage": {"projects": {"lab": {"claim": "p"}}}}}, "custom.scip.storage.projects.lab.jurisdiction: Field required"),
        ({"allocationsPath": "/x", "scip": {}}, "custom.allocationsPath: misplaced; it belongs at custom.scip.allocationsPath"),
        ({"scip": {"allocationPath": "/x"}}, "custom.scip.allocationPath: unknown key (did you mean allocationsPath?)"),
    ],
)
def test_unknown_misplaced_or_wrong_hub_keys_stop_the_hub(monkeypatch, custom, message):
    values = {"custom": custom}
    with pytest.raises(SystemExit) as stop:
        load_hub_config(values, monkeypatch)
    assert message in str(stop.value)
    assert stop.value.code != 0


def test_z2jh_profile_list_conflicts_with_the_catalog(monkeypatch):
    values = chart_defaults()
    values["singleuser"] = {"profileList": [{"display_name": "x"}]}
    with pytest.raises(SystemExit, match="singleuser.profileList: profiles come from the SCIP catalog"):
        load_hub_config(values, monkeypatch)


def test_broken_catalog_stops_the_hub_with_file_and_line(monkeypatch, tmp_path):
    bad = tmp_path / "catalog.yaml"
    bad.write_text("profiles:\n  - slug: Bad Slug\n")
    values = chart_defaults()
    values["custom"]["scip"]["catalogPath"] = str(bad)
    with pytest.raises(SystemExit) as stop:
        load_hub_config(values, monkeypatch)
    assert f"custom.scip.catalogPath: {bad}" in str(stop.value)
    assert f"{bad}:2" in str(stop.value)


@pytest.mark.parametrize(
    "key, text, line, problem",
    [
        ("allocationsPath", "groups:\n  lab:\n    max_gpus: {h200: 1}\n", 3, "unknown flavour 'h200'"),
        ("coursesPath", "courses:\n  - id: Bad Id\n", 2, "courses[0].id: 'Bad Id' must be"),
    ],
)
def test_broken_quota_or_course_file_stops_the_hub_with_file_and_line(monkeypatch, tmp_path, key, text, line, problem):
    bad = tmp_path / "broken.yaml"
    bad.write_text(text)
    values = chart_defaults()
    values["custom"]["scip"][key] = str(bad)
    with pytest.raises(SystemExit) as stop:
        load_hub_config(values, monkeypatch)
    assert f"custom.scip.{key}: {bad}" in str(stop.value)
    assert f"{bad}:{line}" in str(stop.value) and problem in str(stop.value)


# --- hub signing keys and GPU culling on Kubernetes --------------------------------------------


@pytest.mark.parametrize(
    "values, where",
    [
        ({"jupyterhub": {"custom": {"scip": {"credentials": {"slurmJwtKeySecret": "c2VjcmV0LWtleQ=="}}}}},
         "/jupyterhub/custom/scip/credentials/slurmJwtKeySecret"),
        ({"jupyterhub": {"custom": {"scip": {"credentials": {"sshCaKeySecret": {"name": "ca", "key": "k", "data": "LS0t"}}}}}},
         "/jupyterhub/custom/scip/credentials/sshCaKeySecret"),
        ({"jupyterhub": {"custom": {"scip": {"gpuCulling": {"source": "dcgm"}}}}}, "/jupyterhub/custom/scip/gpuCulling/source"),
        ({"jupyterhub": {"custom": {"scip": {"gpuCulling": {"profiles": {"h100-full": {"idleTime": 60}}}}}}},
         "/jupyterhub/custom/scip/gpuCulling/profiles/h100-full"),
        ({"jupyterhub": {"custom": {"gpuCulling": {"enabled": True}}}}, "/jupyterhub/custom/gpuCulling"),
        ({"gpuNetworkPolicy": {"prometheus": {"url": "http://p"}}}, "/gpuNetworkPolicy/prometheus"),
    ],
    ids=["inline-jwt-key", "inline-ca-data", "unknown-source", "profile-rule-key", "misplaced-section", "unknown-policy-key"],
)
def test_inline_keys_and_wrong_gpu_keys_are_refused_by_the_schema(chart, values, where):
    with pytest.raises(helm.HelmValuesError) as err:
        chart.render(values, name="scip", namespace="jhub")
    assert where in str(err.value)


def with_keys(tmp_path, **credentials) -> dict:
    values = chart_defaults()
    values["custom"]["scip"]["credentials"] = credentials
    values["hub"].update({k.split(".")[1]: v for k, v in hub_volumes_under(tmp_path).items()})
    return values


def test_signing_key_references_become_the_files_mounted_in_the_hub_pod(monkeypatch, tmp_path):
    values = with_keys(tmp_path, slurmJwtKeySecret={"name": "scip-slurm-jwt", "key": "jwt_hs256.key"},
                       sshCaKeySecret={"name": "scip-ssh-ca", "key": "user_ca"}, slurmTokenLifespan=1800)
    c = load_hub_config(values, monkeypatch)
    assert c.SCIPCredentials.slurm_jwt_key_file == str(tmp_path / "scip-keys" / "slurm-jwt" / "jwt_hs256.key")
    assert c.SCIPCredentials.ssh_ca_key_file == str(tmp_path / "scip-keys" / "ssh-ca" / "user_ca")
    assert c.SCIPCredentials.slurm_token_lifespan == 1800
    # null references (the defaults): the hub mints with `scontrol token` and signs no SSH certificate.
    c = load_hub_config(chart_defaults(), monkeypatch)
    assert "slurm_jwt_key_file" not in c.SCIPCredentials and "ssh_ca_key_file" not in c.SCIPCredentials


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda v: v["custom"]["scip"]["credentials"].update(slurmJwtKeySecret="-----BEGIN KEY-----"),
         "custom.scip.credentials.slurmJwtKeySecret: refused: a signing key never goes in values"),
        (lambda v: v["custom"]["scip"]["credentials"].update(slurmJwtKeySecret={"name": "s", "key": "k", "stringData": "x"}),
         "custom.scip.credentials.slurmJwtKeySecret: refused: a signing key never goes in values"),
        (lambda v: v["custom"]["scip"]["credentials"].update(slurmJwtKeySecret={"name": "other", "key": "k"}),
         "custom.scip.credentials.slurmJwtKeySecret: Secret other is not mounted in the hub pod"),
        (lambda v: v["hub"]["extraVolumes"][1]["secret"].update(defaultMode=0o644),
         "the hub's volume scip-slurm-jwt of Secret scip-slurm-jwt has mode 0o644; a signing key is mounted with mode 0400"),
        (lambda v: v["hub"]["extraVolumeMounts"][1].update(readOnly=False),
         "the hub mounts Secret scip-slurm-jwt at"),
        (lambda v: v["custom"]["scip"]["credentials"].update(slurmJwtKeySecret={"name": "scip-slurm-jwt", "key": "absent.key"}),
         "slurm-jwt/absent.key is not in the hub pod: create the Secret, e.g. kubectl create secret generic scip-slurm-jwt"),
    ],
    ids=["inline-string", "inline-data", "not-mounted", "mode", "writable", "secret-missing"],
)
def test_a_signing_key_the_hub_pod_cannot_hold_safely_stops_the_hub(monkeypatch, tmp_path, change, message):
    values = with_keys(tmp_path, slurmJwtKeySecret={"name": "scip-slurm-jwt", "key": "jwt_hs256.key"})
    change(values)
    with pytest.raises(SystemExit) as stop:
        load_hub_config(values, monkeypatch)
    assert message in str(stop.value)


def test_gpu_culling_keys_reach_the_scip_gpu_service(monkeypatch):
    from scip_jupyter.culling.settings import from_json

    values = chart_defaults()
    values["custom"]["scip"]["gpuCulling"].update(
        prometheusUrl="http://prometheus-server.monitoring", idleTime=900, profiles={"mig-1g-10gb": {"idle_time": 3600}})
    values["custom"]["scip"]["budgets"] = {"grace": 60}
    monkeypatch.setenv("POD_NAMESPACE", "jhub")
    monkeypatch.setenv("SCIP_POD_IP", "10.1.2.3")
    c = load_hub_config(values, monkeypatch)
    [service] = [s for s in c.JupyterHub.services if s["name"] == "scip-gpu"]
    assert service["url"] == "http://10.1.2.3:10102"  # the fixed port the chart's NetworkPolicy opens, at the pod IP
    culling, budget = from_json(service["environment"]["SCIP_GPU_SETTINGS"])
    assert culling.prometheus_url == "http://prometheus-server.monitoring" and culling.namespace == "jhub"
    assert culling.rule_for("mig-1g-10gb").idle_time == 3600 and culling.rule_for("h100-full").idle_time == 900
    assert budget.grace == 60
    assert c.Spawner.environment["SCIP_GPU_SERVICE_URL"] == "http://10.1.2.3:10102/services/scip-gpu/"


def test_gpu_culling_off_configures_no_scip_gpu_service(monkeypatch):
    values = chart_defaults()
    values["custom"]["scip"]["gpuCulling"]["enabled"] = False
    values["custom"]["scip"]["budgets"] = {"enabled": False}
    c = load_hub_config(values, monkeypatch)
    assert "scip-gpu" not in {s["name"] for s in c.JupyterHub.services}


def test_z2jh_culler_conflicts_with_scip_gpu_culling(monkeypatch):
    values = chart_defaults()
    values["cull"] = {"enabled": True}
    with pytest.raises(SystemExit, match="cull.enabled: z2jh's idle culler sees only web activity .* set jupyterhub.cull.enabled: false"):
        load_hub_config(values, monkeypatch)
    values["custom"]["scip"]["gpuCulling"]["enabled"] = False  # its own culler alone: allowed
    load_hub_config(values, monkeypatch)


@pytest.mark.parametrize(
    "gpu, message",
    [
        ({"source": "dcgm"}, "custom.scip.gpuCulling.source: GPUCulling.source: 'dcgm' is not one of"),
        ({"profiles": {"h100-full": {"idleTime": 60}}}, "custom.scip.gpuCulling.profiles: GPUCulling.profiles.h100-full: unknown key 'idleTime'"),
        ({"threshold": 150}, "custom.scip.gpuCulling.threshold:"),
        ({"prometheusUrl": "prometheus:9090"}, "custom.scip.gpuCulling.prometheusUrl: must be an http(s) URL"),
        ({"port": 10101}, "custom.scip.gpuCulling.port: 10101 is the courses service's port too"),
        ({"port": 80}, "custom.scip.gpuCulling.port: must be a port between 1024 and 65535"),
        ({"enable": True}, "custom.scip.gpuCulling.enable: unknown key (did you mean gpuCulling.enabled?)"),
    ],
)
def test_wrong_gpu_culling_keys_stop_the_hub(monkeypatch, gpu, message):
    values = chart_defaults()
    values["custom"]["scip"]["gpuCulling"].update(gpu)
    with pytest.raises(SystemExit) as stop:
        load_hub_config(values, monkeypatch)
    assert message in str(stop.value)


def test_default_values_keep_z2jh_culler_off_and_the_gpu_port_fixed():
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert defaults["jupyterhub"]["cull"]["enabled"] is False
    assert defaults["jupyterhub"]["custom"]["scip"]["gpuCulling"]["port"] == hub_module()["DEFAULT_GPU_SERVICE_PORT"]
