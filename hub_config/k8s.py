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

The courses service runs in the hub pod; the proxy reaches it at the pod's IP
($SCIP_POD_IP, from the downward API in the chart's values) on the fixed port
`coursesService.port`, which the chart's hub NetworkPolicy opens to the proxy.

Tests load this file with a fake `z2jh.get_config` (tests/unit/test_helm_chart.py)
and boot a real hub with it from the rendered chart (tests/integration/test_kube_chart_hub.py).
"""

from __future__ import annotations

import difflib
import os
from typing import Any, Mapping

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
}
#: Keys that once mounted a shared credential in every notebook pod; refused with why.
REFUSED = {
    "slurm.mungeKeySecret": "no shared munge key is mounted in notebook pods; each server gets its own person's short-lived credentials",
    "slurm.sshKeySecret": "no shared robot SSH key is mounted in notebook pods; each server gets its own person's short-lived credentials",
}
#: z2jh keys that would fight with this configuration.
CONFLICTS = {
    "singleuser.profileList": "profiles come from the SCIP catalog (custom.scip.catalogPath); remove singleuser.profileList",
}


_LEAVES = {key.rsplit(".", 1)[-1] for key in (*SETTINGS, *REFUSED)}


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
    if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        return f"custom.scip.{key}: must be a {names}, not {type(value).__name__}"
    if key == "gpuProducts" and not all(isinstance(v, str) for v in value.values()):
        return f"custom.scip.{key}: values must be strings (node label values)"
    if key == "arc.cleanupPresets" and not all(isinstance(v, str) and v for v in value):
        return f"custom.scip.{key}: must be a list of ARC preset names (strings), e.g. [local-slurm]"
    if key == "coursesService.port" and not 1024 <= value <= 65535:
        return f"custom.scip.{key}: must be a port between 1024 and 65535, not {value}"
    if key == "storage":
        from scip_jupyter.storage import parse_storage

        try:
            parse_storage(value)
        except ValueError as exc:
            return f"custom.scip.{exc}"
    if key == "ledgerUrl":
        return _check_ledger_url(value)
    return None


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
        raise ChartValuesError([f"custom: must be a mapping, not {type(custom).__name__}"])
    leaf_names = {key.rsplit(".", 1)[-1]: key for key in SETTINGS}
    for key in custom:
        if key != "scip" and key in leaf_names:
            problems.append(f"custom.{key}: misplaced; it belongs at custom.scip.{leaf_names[key]}")
    scip = custom.get("scip") or {}
    if not isinstance(scip, dict):
        raise ChartValuesError([f"custom.scip: must be a mapping, not {type(scip).__name__}"])
    settings: dict[tuple[str, str], Any] = {}
    for key, value in _flatten(scip).items():
        if key in REFUSED:
            problems.append(f"custom.scip.{key}: refused: {REFUSED[key]}; remove it")
            continue
        if key not in SETTINGS:
            hint = difflib.get_close_matches(key, SETTINGS, n=1)
            leaf = key.rsplit(".", 1)[-1]
            if leaf in leaf_names and leaf_names[leaf] != key:
                why = f"misplaced; it belongs at custom.scip.{leaf_names[leaf]}"
            else:
                why = f"unknown key{f' (did you mean {hint[0]}?)' if hint else ''}"
            problems.append(f"custom.scip.{key}: {why}; known keys: {', '.join(SETTINGS)}")
            continue
        cls, trait, expected, _ = SETTINGS[key]
        problem = _check_value(key, value, expected)
        if problem:
            problems.append(problem)
        else:
            settings[(cls, trait)] = value
    for key, why in CONFLICTS.items():
        if (z2jh_values or {}).get(key):
            problems.append(f"{key}: {why}")
    if problems:
        raise ChartValuesError(problems)
    return settings


def defaults(config_dir: str = CONFIG_DIR) -> dict[tuple[str, str], Any]:
    """What the hub uses for keys the values leave out: the files of the mounted
    ConfigMap (courses.yaml, allocations.yaml and arc.yaml only when it carries
    them), the SQLite ledger on the hub's PVC and the fixed courses service port.
    No ARC clean-up presets: a chart hub reaches no Slurm cluster unless told."""
    out: dict[tuple[str, str], Any] = {
        ("HubSetup", "catalog_path"): f"{config_dir}/catalog.yaml",
        ("HubSetup", "ledger_url"): DEFAULT_LEDGER_URL,
        ("HubSetup", "courses_service_port"): DEFAULT_COURSES_SERVICE_PORT,
        ("HubSetup", "arc_cleanup_presets"): [],
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
        module, _, function = spec.partition(":")
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

    settings = defaults(config_dir)
    settings.update(
        scip_settings(get_config("custom", {}), {key: get_config(key, None) for key in CONFLICTS})
    )
    _load_files(settings)
    setup = {field: value for (where, field), value in settings.items() if where == "HubSetup"}
    setup["ledger_url"] = ledger_url(setup["ledger_url"], environ)
    configure(
        c,
        HubSetup(
            backend="kube",
            courses_service_ip=environ.get(POD_IP_ENV) or "127.0.0.1",
            **setup,
        ),
    )
    for (where, trait), value in settings.items():
        if where != "HubSetup":
            setattr(c[where], trait, value)
    # z2jh sets KubeSpawner.profile_list from singleuser.profileList ([] by default):
    # profiles come from the catalog (CONFLICTS refuses a non-empty profileList).
    from scip_jupyter.spawners.kube import catalog_profile_list

    c.SCIPKubeSpawner.profile_list = catalog_profile_list
    return settings


if "c" in globals():
    # Run as a JupyterHub config file (traitlets provides `c`): configure the hub.
    from z2jh import get_config as _z2jh_get_config  # on sys.path in z2jh's hub image

    apply(c, _z2jh_get_config)  # noqa: F821 - `c` is injected by traitlets
