"""JupyterHub configuration for SCIP on Kubernetes (the Helm chart's hub).

The chart mounts this file with the catalog in the hub pod and z2jh's
`hub.extraConfig` runs it on the hub's own config object `c` (runpy with
`init_globals={"c": c}`; `load_subconfig` would hand it a fresh config whose
lists would replace z2jh's services and roles). Like
hub_config/local.py it is thin: everything both hubs share (spawner files,
courses with groups, roles, launch links and the instructor service, ARC
clean-up, allocations, later FEATURES) is wired by
`scip_jupyter.hub_setup.configure`. What this file adds is what only the chart
hub has: the chart's `custom.scip` values, mapped through ONE table,
`SETTINGS`, either to a `HubSetup` field or to a SCIPKubeSpawner traitlet. An
unknown or misplaced key, or a value of the wrong type, stops the hub with a
message naming the key and what is allowed, rather than being ignored. The
catalog, quota and course files are loaded at start, so a broken one stops the
hub with `file:line` at once.

Allocation accounting is on when `allocationsPath` names a quota file (the
chart ships allocations.yaml in its ConfigMap). The ledger URL never carries a
password: for PostgreSQL the hub takes it from $SCIP_LEDGER_PASSWORD, which the
chart's default values fill from a Secret (`jupyterhub.hub.extraEnv`).

The hub's signing keys (the Slurm JWT HS256 key, the SSH user CA) are Secrets the
chart mounts in the hub pod only (hub.extraVolumes, read-only, 0400); values hold
references `{name, key}` (`credentials.*Secret`), which `secret_file` turns into the
mounted file's path for `SCIPCredentials`. An inline key, a Secret the hub pod does
not mount (or mounts writable, or wider than 0400) or a missing Secret stops the hub.

GPU culling (`gpuCulling.*`, `budgets.*`) goes to the `GPUCulling` / `BudgetWatcher`
traits, set before `configure` so its `scip-gpu` feature reads them; the service
listens at the pod's IP on the fixed `gpuCulling.port`, which the chart's scip-gpu
NetworkPolicy opens. z2jh's own activity-only culler (`cull.enabled`) alongside it
is refused (`CONFLICTS`).

The courses service runs in the hub pod; the proxy reaches it at the pod's IP
($SCIP_POD_IP, from the downward API in the chart's values) on the fixed port
`coursesService.port`, which the chart's hub NetworkPolicy opens to the proxy.
The students' homes are PVCs the hub pod does not mount: each student's own
server reports its course progress to that same address
($SCIP_COURSES_SERVICE_URL; the chart's singleuser NetworkPolicy egress opens
it), and the service keeps the last report on the hub's PVC (docs/courses.md).

Tests load this file with a fake `z2jh.get_config` (tests/unit/test_helm_chart.py)
and boot a real hub with it from the rendered chart (tests/integration/test_kube_chart_hub.py).
"""

from __future__ import annotations

import difflib
import os
from typing import Any, Mapping

from scip_jupyter.i18n import _

#: Where the chart mounts the `scip-jupyter-config` ConfigMap in the hub pod.
CONFIG_DIR = "/usr/local/etc/scip"
#: Default ledger: SQLite on the hub's PVC (z2jh mounts it at /srv/jupyterhub).
DEFAULT_LEDGER_URL = "sqlite:////srv/jupyterhub/scip-allocations.sqlite"
#: The hub's environment variable holding the ledger database password (from a Secret).
LEDGER_PASSWORD_ENV = "SCIP_LEDGER_PASSWORD"

#: The courses service's port in the hub pod (fixed: the chart's hub NetworkPolicy opens it).
DEFAULT_COURSES_SERVICE_PORT = 10101
#: The hub pod's IP, from the downward API (jupyterhub.hub.extraEnv in the chart's values).
POD_IP_ENV = "SCIP_POD_IP"
#: The hub pod's namespace (z2jh sets it from the downward API): the servers' pods in the DCGM metrics.
POD_NAMESPACE_ENV = "POD_NAMESPACE"
#: The `scip-gpu` service's port in the hub pod (fixed: the chart's scip-gpu NetworkPolicy opens it).
DEFAULT_GPU_SERVICE_PORT = 10102
#: Chart keys that reference a Secret key ({name, key}) mounted in the hub pod; the trait gets the file's path.
SECRET_REFS = ("credentials.slurmJwtKeySecret", "credentials.sshCaKeySecret")
#: The only file mode a hub signing key may be mounted with (the kubelet adds group read for the hub's fsGroup).
SECRET_MODE = 0o400

#: chart key under custom.scip -> (where, field or trait, expected type, description).
#: `where` is "HubSetup" (scip_jupyter.hub_setup, shared with the embedded hub) or a spawner class.
#: The chart's values.schema.yaml documents the same keys; test_helm_chart.py checks they agree.
SETTINGS: dict[str, tuple[str, str, type | tuple[type, ...], str]] = {
    "catalogPath": ("HubSetup", "catalog_path", str, "catalog.yaml inside the hub pod"),
    "allocationsPath": ("HubSetup", "allocations_path", str, "allocations.yaml (quotas) inside the hub pod; '' = no accounting"),
    "coursesPath": ("HubSetup", "courses_path", str, "courses.yaml inside the hub pod; '' = no courses"),
    "ledgerUrl": ("HubSetup", "ledger_url", str, "SQLAlchemy URL of the allocation ledger, without password"),
    "publicUrl": ("HubSetup", "public_url", str, "the hub's public URL, for course launch links"),
    "coursesService.port": ("HubSetup", "courses_service_port", int, "port of the courses service in the hub pod"),
    "arc.presetsPath": ("HubSetup", "arc_presets_path", str, "arc.yaml inside the hub pod (ARC clean-up)"),
    "arc.cleanupPresets": ("HubSetup", "arc_cleanup_presets", list, "presets whose Slurm jobs the hub cancels after a server stops"),
    "arc.reconcileEvery": ("HubSetup", "arc_reconcile_every", (int, float), "seconds between reconcile sweeps"),
    "gpuProducts": ("SCIPKubeSpawner", "gpu_products", dict, "GPU model -> nvidia.com/gpu.product node label value"),
    "siteNodeLabel": ("SCIPKubeSpawner", "site_node_label", str, "node label key matched against the profile's site"),
    "tolerateGpuTaint": ("SCIPKubeSpawner", "tolerate_gpu_taint", bool, "GPU pods tolerate the nvidia.com/gpu taint"),
    "configMap": ("SCIPKubeSpawner", "scip_config_map", str, "ConfigMap of courses/ARC presets mounted in notebook pods"),
    "slurm.configMap": ("SCIPKubeSpawner", "slurm_config_map", str, "ConfigMap holding slurm.conf"),
    "storage": ("SCIPKubeSpawner", "storage", dict, "project/scratch/course data claims and their jurisdictions"),
    "storagePathsPreset": ("SCIPKubeSpawner", "storage_paths_preset", str, "ARC preset whose storage paths pods mirror"),
    # Hub-held signing keys: references to Secrets mounted in the hub pod only (never the key itself).
    "credentials.slurmJwtKeySecret": ("SCIPCredentials", "slurm_jwt_key_file", dict, "Secret {name, key} with slurmctld's HS256 JWT key"),
    "credentials.sshCaKeySecret": ("SCIPCredentials", "ssh_ca_key_file", dict, "Secret {name, key} with the SSH user CA private key"),
    "credentials.accountTemplate": ("SCIPCredentials", "account_template", str, "a person's cluster account, e.g. {username}"),
    "credentials.slurmTokenLifespan": ("SCIPCredentials", "slurm_token_lifespan", (int, float), "seconds a Slurm JWT is valid"),
    "credentials.sshCertValidity": ("SCIPCredentials", "ssh_cert_validity", (int, float), "seconds an SSH certificate is valid"),
    "credentials.maxLifespan": ("SCIPCredentials", "max_lifespan", (int, float), "upper bound of every credential's lifetime, s"),
    # GPU-aware culling and budgets: the scip-gpu hub service (scip_jupyter/culling/settings.py).
    "gpuCulling.enabled": ("GPUCulling", "enabled", bool, "run the scip-gpu culler service"),
    "gpuCulling.source": ("GPUCulling", "source", str, "auto, prometheus, nvml or none"),
    "gpuCulling.prometheusUrl": ("GPUCulling", "prometheus_url", str, "Prometheus that scrapes the DCGM exporter"),
    "gpuCulling.namespace": ("GPUCulling", "namespace", str, "namespace of the servers' pods in the DCGM metrics"),
    "gpuCulling.port": ("GPUCulling", "port", int, "port of the scip-gpu service in the hub pod"),
    "gpuCulling.threshold": ("GPUCulling", "threshold", (int, float), "GPU utilisation (%) below which a GPU is idle"),
    "gpuCulling.idleTime": ("GPUCulling", "idle_time", (int, float), "seconds idle before the warning"),
    "gpuCulling.warningTime": ("GPUCulling", "warning_time", (int, float), "seconds between warning and cull"),
    "gpuCulling.profiles": ("GPUCulling", "profiles", dict, "per-profile threshold, idle_time, warning_time, enabled"),
    "gpuCulling.activityTimeout": ("GPUCulling", "activity_timeout", int, "seconds without web activity (CPU servers)"),
    "gpuCulling.cullEvery": ("GPUCulling", "cull_every", int, "seconds between cull rounds"),
    "budgets.enabled": ("BudgetWatcher", "enabled", bool, "enforce GPU-hour budgets while servers run"),
    "budgets.every": ("BudgetWatcher", "every", (int, float), "seconds between budget checks"),
    "budgets.warnFraction": ("BudgetWatcher", "warn_fraction", (int, float), "share of GPU-hours at which people are warned"),
    "budgets.grace": ("BudgetWatcher", "grace", (int, float), "seconds between exhausted and stopping GPU servers"),
}
#: Where the traits of each `where` live (the HubSetup fields are scip_jupyter.hub_setup's).
TRAIT_CLASSES = {
    "SCIPKubeSpawner": "scip_jupyter.spawners.kube:SCIPKubeSpawner",
    "SCIPCredentials": "scip_jupyter.identity_hub:SCIPCredentials",
    "GPUCulling": "scip_jupyter.culling.settings:GPUCulling",
    "BudgetWatcher": "scip_jupyter.culling.settings:BudgetWatcher",
}
#: Keys that once mounted a shared credential in every notebook pod; refused with why.
REFUSED = {
    "slurm.mungeKeySecret": "no shared munge key is mounted in notebook pods; each server gets its own person's short-lived credentials",
    "slurm.sshKeySecret": "no shared robot SSH key is mounted in notebook pods; each server gets its own person's short-lived credentials",
}
#: z2jh keys that would fight with this configuration: key -> (why, when); `when(settings)`
#: says whether the conflict holds for these settings (None: always, when the key is set).
CONFLICTS = {
    "singleuser.profileList": (
        "profiles come from the SCIP catalog (custom.scip.catalogPath); remove singleuser.profileList",
        None,
    ),
    "cull.enabled": (
        "z2jh's idle culler sees only web activity and would stop GPU servers that the scip-gpu service "
        "keeps while their GPU works; set jupyterhub.cull.enabled: false (scip-gpu culls CPU servers after "
        "custom.scip.gpuCulling.activityTimeout) or custom.scip.gpuCulling.enabled: false",
        lambda settings: settings.get(("GPUCulling", "enabled"), True),
    ),
}


_LEAVES = {key.rsplit(".", 1)[-1] for key in (*SETTINGS, *REFUSED)}
#: Leaf names too common to say where a misplaced key belongs (several sections have them).
_GENERIC = {"enabled", "port", "namespace", "source", "threshold", "profiles", "every", "grace", "configMap"}


class ChartValuesError(SystemExit):
    """Stops the hub (exit status 1) with every problem found, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("SCIP chart values are wrong:\n  " + "\n  ".join(problems))


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        # GPU product maps (and refused secret references) are values, not sections, also when misplaced.
        if isinstance(value, dict) and path not in SETTINGS and key not in _LEAVES:
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def _check_value(key: str, value: Any, expected: type | tuple[type, ...]) -> str | None:
    if key in SECRET_REFS:
        return _check_secret_ref(key, value)
    if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        return _("custom.scip.{key}: must be a {names}, not {actual}").format(key=key, names=names, actual=type(value).__name__)
    if key == "gpuProducts" and not all(isinstance(v, str) for v in value.values()):
        return _("custom.scip.{key}: values must be strings (node label values)").format(key=key)
    if key == "arc.cleanupPresets" and not all(isinstance(v, str) and v for v in value):
        return _("custom.scip.{key}: must be a list of ARC preset names (strings), e.g. [local-slurm]").format(key=key)
    if key in ("coursesService.port", "gpuCulling.port") and not 1024 <= value <= 65535:
        return _("custom.scip.{key}: must be a port between 1024 and 65535, not {value}").format(key=key, value=value)
    if key == "storage":
        from scip_jupyter.storage import parse_storage

        try:
            parse_storage(value)
        except ValueError as exc:
            return f"custom.scip.{exc}"
    if key == "ledgerUrl":
        return _check_ledger_url(value)
    if key == "gpuCulling.prometheusUrl" and value and not value.startswith(("http://", "https://")):
        return _("custom.scip.{key}: must be an http(s) URL, e.g. http://prometheus-server.monitoring, not '{value}'").format(
            key=key, value=value)
    return _check_trait(key, value)


def _check_trait(key: str, value: Any) -> str | None:
    """The trait's own validation (ranges, choices, per-profile rules), named by the chart key."""
    from importlib import import_module

    from traitlets import TraitError

    where, trait = SETTINGS[key][:2]
    if where not in TRAIT_CLASSES or where == "SCIPKubeSpawner":
        return None
    module, _sep, name = TRAIT_CLASSES[where].partition(":")
    try:
        getattr(import_module(module), name)(**{trait: value})
    except (TraitError, ValueError) as exc:
        return f"custom.scip.{key}: {exc}"
    return None


def _check_secret_ref(key: str, value: Any) -> str | None:
    """A Secret reference is {name, key} and nothing else: never the key itself."""
    example = "{name: scip-slurm-jwt, key: jwt_hs256.key}" if "Jwt" in key else "{name: scip-ssh-ca, key: user_ca}"
    if isinstance(value, dict) and set(value) == {"name", "key"} and all(isinstance(v, str) and v for v in value.values()):
        return None
    if isinstance(value, str) or (isinstance(value, dict) and set(value) - {"name", "key"}):
        return _("custom.scip.{key}: refused: a signing key never goes in values; reference the Secret that "
                 "holds it, e.g. {example}").format(key=key, example=example)
    return _("custom.scip.{key}: must reference one key of a Secret, e.g. {example}").format(key=key, example=example)


def _check_ledger_url(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "custom.scip.ledgerUrl: not a SQLAlchemy URL; e.g. postgresql+psycopg://scip@db.example/scip or " + DEFAULT_LEDGER_URL
    if parsed.password:
        return (f"custom.scip.ledgerUrl: holds a password; never put it in values: store it in a Secret that "
                f"jupyterhub.hub.extraEnv.{LEDGER_PASSWORD_ENV} references (see docs/kubernetes.md)")
    return None


def ledger_url(url: str, environ: Mapping[str, str]) -> str:
    """The URL the hub's ledger uses: `url` from values, plus the password from the
    environment (a Secret) for a database server. SQLite needs none.

    >>> ledger_url("postgresql+psycopg://scip@db/scip", {"SCIP_LEDGER_PASSWORD": "s3cret"})
    'postgresql+psycopg://scip:s3cret@db/scip'
    >>> ledger_url("sqlite:////srv/jupyterhub/a.sqlite", {"SCIP_LEDGER_PASSWORD": "s3cret"})
    'sqlite:////srv/jupyterhub/a.sqlite'
    """
    from sqlalchemy.engine import make_url

    password = environ.get(LEDGER_PASSWORD_ENV)
    parsed = make_url(url)
    if not password or parsed.get_backend_name() == "sqlite":
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


def scip_settings(custom: dict[str, Any] | None, z2jh_values: dict[str, Any] | None = None) -> dict[tuple[str, str], Any]:
    """Map the chart's `custom` values to {(class, trait): value}; raise ChartValuesError on any problem.

    `z2jh_values` holds other z2jh keys to check for conflicts (dotted key -> value).
    """
    problems: list[str] = []
    custom = custom or {}
    if not isinstance(custom, dict):
        raise ChartValuesError([_("custom: must be a mapping, not {actual}").format(actual=type(custom).__name__)])
    leaves = [key.rsplit(".", 1)[-1] for key in SETTINGS]
    leaf_names = {leaf: key for leaf, key in zip(leaves, SETTINGS) if leaves.count(leaf) == 1 and leaf not in _GENERIC}
    for key in custom:
        if key != "scip" and key in leaf_names:
            problems.append(_("custom.{key}: misplaced; it belongs at custom.scip.{place}").format(key=key, place=leaf_names[key]))
    scip = custom.get("scip") or {}
    if not isinstance(scip, dict):
        raise ChartValuesError([_("custom.scip: must be a mapping, not {actual}").format(actual=type(scip).__name__)])
    settings: dict[tuple[str, str], Any] = {}
    for key, value in _flatten(scip).items():
        if key in SECRET_REFS and value is None:
            continue  # no key: the trait keeps its default (scontrol token; no SSH certificates)
        if key in REFUSED:
            problems.append(_("custom.scip.{key}: refused: {why}; remove it").format(key=key, why=REFUSED[key]))
            continue
        if key not in SETTINGS:
            hint = difflib.get_close_matches(key, SETTINGS, n=1)
            leaf = key.rsplit(".", 1)[-1]
            if leaf in leaf_names and leaf_names[leaf] != key:
                why = _("misplaced; it belongs at custom.scip.{place}").format(place=leaf_names[leaf])
            else:
                why = _("unknown key (did you mean {hint}?)").format(hint=hint[0]) if hint else _("unknown key")
            problems.append(_("custom.scip.{key}: {why}; known keys: {known}").format(key=key, why=why, known=", ".join(SETTINGS)))
            continue
        cls, trait, expected, _help = SETTINGS[key]
        problem = _check_value(key, value, expected)
        if problem:
            problems.append(problem)
        else:
            settings[(cls, trait)] = value
    for key, (why, when) in CONFLICTS.items():
        if (z2jh_values or {}).get(key) and (when is None or when(settings)):
            problems.append(f"{key}: {_(why)}")
    if problems:
        raise ChartValuesError(problems)
    return settings


def secret_file(key: str, ref: dict[str, str], volumes: list | None, mounts: list | None) -> tuple[str, str | None]:
    """Where the hub pod sees the Secret key `ref` ({name, key}), from z2jh's hub.extraVolumes and
    hub.extraVolumeMounts; returns (path, problem). The volume must be a read-only mount of that
    Secret with mode 0400, so that the key is the hub's alone.

    >>> volumes = [{"name": "jwt", "secret": {"secretName": "scip-slurm-jwt", "defaultMode": 0o400}}]
    >>> mounts = [{"name": "jwt", "mountPath": "/keys/jwt", "readOnly": True}]
    >>> secret_file("credentials.slurmJwtKeySecret", {"name": "scip-slurm-jwt", "key": "jwt_hs256.key"}, volumes, mounts)
    ('/keys/jwt/jwt_hs256.key', None)
    """
    name, item = ref["name"], ref["key"]
    where = f"custom.scip.{key}"
    for volume in volumes or []:
        secret = (volume or {}).get("secret") or {}
        if secret.get("secretName") != name:
            continue
        items = {i.get("key"): i for i in secret.get("items") or []}
        if items and item not in items:
            return "", _("{where}: the hub's volume {volume} of Secret {name} does not list key {key} in its items").format(
                where=where, volume=volume.get("name"), name=name, key=item)
        mode = items.get(item, {}).get("mode", secret.get("defaultMode"))
        if mode != SECRET_MODE:
            return "", _("{where}: the hub's volume {volume} of Secret {name} has mode {mode}; a signing key is "
                         "mounted with mode 0400 (defaultMode: 256)").format(
                where=where, volume=volume.get("name"), name=name, mode=oct(mode) if isinstance(mode, int) else "0644")
        for mount in mounts or []:
            if mount.get("name") == volume.get("name") and not mount.get("subPath"):
                if not mount.get("readOnly"):
                    return "", _("{where}: the hub mounts Secret {name} at {path} writable; mount it readOnly: true").format(
                        where=where, name=name, path=mount.get("mountPath"))
                return f"{mount['mountPath'].rstrip('/')}/{items.get(item, {}).get('path', item)}", None
    return "", _("{where}: Secret {name} is not mounted in the hub pod; keep the chart's jupyterhub.hub.extraVolumes "
                 "and extraVolumeMounts entry for it (a secret volume with defaultMode: 256, read-only), or "
                 "reference the Secret those entries mount").format(where=where, name=name)


def _resolve_secrets(settings: dict[tuple[str, str], Any], get_config, exists=os.path.exists) -> None:
    """Turn each Secret reference into the path of its file in the hub pod; a reference the hub pod
    does not see (not mounted, wrong mode, Secret or key missing) stops the hub now, not at the
    first credential a person asks for."""
    problems = []
    volumes, mounts = get_config("hub.extraVolumes", None), get_config("hub.extraVolumeMounts", None)
    for key in SECRET_REFS:
        cls, trait, _type, _help = SETTINGS[key]
        ref = settings.get((cls, trait))
        if not isinstance(ref, dict):
            continue
        path, problem = secret_file(key, ref, volumes, mounts)
        if problem is None and not exists(path):
            problem = _("custom.scip.{key}: {path} is not in the hub pod: create the Secret, e.g. kubectl create "
                        "secret generic {name} --from-file={item}=<file> in the hub's namespace").format(
                key=key, path=path, name=ref["name"], item=ref["key"])
        if problem:
            problems.append(problem)
        else:
            settings[(cls, trait)] = path
    if problems:
        raise ChartValuesError(problems)


def defaults(config_dir: str = CONFIG_DIR, environ: Mapping[str, str] = os.environ) -> dict[tuple[str, str], Any]:
    """What the hub uses for keys the values leave out: the files of the mounted
    ConfigMap (courses.yaml, allocations.yaml and arc.yaml only when it carries
    them), the SQLite ledger on the hub's PVC, the fixed courses and scip-gpu
    service ports, and the hub's own namespace for the servers' GPU metrics.
    No ARC clean-up presets: a chart hub reaches no Slurm cluster unless told."""
    out: dict[tuple[str, str], Any] = {
        ("HubSetup", "catalog_path"): f"{config_dir}/catalog.yaml",
        ("HubSetup", "ledger_url"): DEFAULT_LEDGER_URL,
        ("HubSetup", "courses_service_port"): DEFAULT_COURSES_SERVICE_PORT,
        ("HubSetup", "arc_cleanup_presets"): [],
        ("GPUCulling", "port"): DEFAULT_GPU_SERVICE_PORT,
        ("GPUCulling", "namespace"): environ.get(POD_NAMESPACE_ENV, ""),
    }
    for name, field in (("allocations.yaml", "allocations_path"), ("courses.yaml", "courses_path"), ("arc.yaml", "arc_presets_path")):
        path = os.path.join(config_dir, name)
        out[("HubSetup", field)] = path if os.path.exists(path) else ""
    return out


#: Files loaded at start (key, trait, loader "module:function"); each is checked against the catalog.
_FILES = (
    ("allocationsPath", "allocations_path", "scip_jupyter.allocations.quotas:load_allocations"),
    ("coursesPath", "courses_path", "scip_jupyter.courses.registry:load_courses"),
)


def _load_files(settings: dict[tuple[str, str], Any]) -> None:
    """Load the catalog and the files that name it now: a broken file stops the hub, not the first spawn."""
    from importlib import import_module

    from scip_jupyter.catalog import load_catalog
    from scip_jupyter.config import ConfigError

    catalog_path = settings[("HubSetup", "catalog_path")]
    try:
        catalog = load_catalog(catalog_path)
    except (ConfigError, OSError) as exc:
        raise ChartValuesError([f"custom.scip.catalogPath: {catalog_path}: {exc}"]) from None
    problems = []
    for key, trait, spec in _FILES:
        path = settings.get(("HubSetup", trait))
        if not path:
            continue
        module, _sep, function = spec.partition(":")
        try:
            getattr(import_module(module), function)(path, catalog)
        except (ConfigError, OSError) as exc:
            problems.append(f"custom.scip.{key}: {path}: {exc}")
    if problems:
        raise ChartValuesError(problems)


def apply(c, get_config, environ: Mapping[str, str] = os.environ, config_dir: str = CONFIG_DIR) -> dict[tuple[str, str], Any]:
    """Configure the hub `c` from z2jh's `get_config` through `hub_setup.configure`;
    returns what was set (the ledger URL without password)."""
    from scip_jupyter.hub_setup import HubSetup, configure

    settings = defaults(config_dir, environ)
    settings.update(
        scip_settings(get_config("custom", {}), {key: get_config(key, None) for key in CONFLICTS})
    )
    if settings[("GPUCulling", "port")] == settings[("HubSetup", "courses_service_port")]:
        raise ChartValuesError([_("custom.scip.gpuCulling.port: {port} is the courses service's port too; "
                                  "give scip-gpu its own port").format(port=settings[("GPUCulling", "port")])])
    _resolve_secrets(settings, get_config)
    _load_files(settings)
    setup = {field: value for (where, field), value in settings.items() if where == "HubSetup"}
    setup["ledger_url"] = ledger_url(setup["ledger_url"], environ)
    # Traits before `configure`: its features read them (GPUCulling, BudgetWatcher, SCIPCredentials).
    for (where, trait), value in settings.items():
        if where != "HubSetup":
            setattr(c[where], trait, value)
    configure(
        c,
        HubSetup(
            backend="kube",
            courses_service_ip=environ.get(POD_IP_ENV) or "127.0.0.1",
            **setup,
        ),
    )
    # z2jh sets KubeSpawner.environment from singleuser.extraEnv ({} by default), which shadows the
    # Spawner.environment the shared wiring fills (SCIP_COURSES_SERVICE_URL, SCIP_GPU_SERVICE_URL, ...):
    # the pods get both, the deployment's extraEnv winning a name both set.
    shared = c.Spawner.environment if "environment" in c.Spawner else {}
    c.KubeSpawner.environment = {**shared, **(c.KubeSpawner.environment if "environment" in c.KubeSpawner else {})}
    # z2jh sets KubeSpawner.profile_list from singleuser.profileList ([] by default):
    # profiles come from the catalog (CONFLICTS refuses a non-empty profileList).
    from scip_jupyter.spawners.kube import catalog_profile_list

    c.SCIPKubeSpawner.profile_list = catalog_profile_list
    return settings


if "c" in globals():
    # Run as a JupyterHub config file (traitlets provides `c`): configure the hub.
    from z2jh import get_config as _z2jh_get_config  # on sys.path in z2jh's hub image

    apply(c, _z2jh_get_config)  # noqa: F821 - `c` is injected by traitlets
