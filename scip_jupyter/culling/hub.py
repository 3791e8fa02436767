"""Hub wiring of the `scip-gpu` service: `configure_gpu(c, setup, wiring)` (a `hub_setup.FEATURES` entry).

Adds, for both hubs:

* the managed service `scip-gpu` (culling/service.py) with the settings of
  `GPUCulling` and `BudgetWatcher` resolved from `c` (and from the JSON file
  named by `$SCIP_GPU_CONFIG`, merged last: a deployment's or a test's overrides)
  and the files it reads (catalog, allocations, courses, ledger);
* its role: list servers with their state and activity, stop servers
  (jupyterhub-idle-culler's scopes plus `admin:server_state` for pod names);
* `access:services!service=scip-gpu` for every user (the `user` role) and in
  each server's own token (`Spawner.server_token_scopes`), and the service's URL
  in each server's environment (`$SCIP_GPU_SERVICE_URL`), so the home page,
  JupyterLab and the monitor widget may read the person's own notices and GPUs.
"""

from __future__ import annotations

import json
import os
import sys

from traitlets.config import Config

from .service import ENV_ALLOCATIONS, ENV_CATALOG, ENV_COURSES, ENV_LEDGER, ENV_SETTINGS, SERVICE_NAME
from .settings import BudgetWatcher, GPUCulling, to_json

ENV_CONFIG = "SCIP_GPU_CONFIG"
#: In each server's environment: the service's own URL (with its prefix), for the monitor widget.
ENV_SERVICE_URL = "SCIP_GPU_SERVICE_URL"
SERVICE_SCOPES = [
    "list:users", "read:users:name", "read:users:activity", "read:servers", "delete:servers",
    "admin:server_state", "read:users",
]
#: JupyterHub's default `server` role (what a server's token holds unless configured).
SERVER_SCOPES = ["users:activity!user", "access:servers!server"]
ACCESS = f"access:services!service={SERVICE_NAME}"


def load_overrides(c, path: str | None) -> None:
    """Merge a JSON traitlets file (`{"GPUCulling": {...}, "BudgetWatcher": {...}}`) into `c`."""
    if not path:
        return
    try:
        data = json.loads(open(path, encoding="utf-8").read())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: {ENV_CONFIG}: cannot read it as JSON: {exc}") from exc
    unknown = sorted(set(data) - {"GPUCulling", "BudgetWatcher"})
    if unknown:
        raise SystemExit(f"{path}: {unknown[0]}: unknown section; allowed: GPUCulling, BudgetWatcher")
    c.merge(Config(data))


def service_spec(culling: GPUCulling, budget: BudgetWatcher, setup, python: str | None = None) -> tuple[dict, dict]:
    """The managed service and its role (pure: tests snapshot it)."""
    from ..allocations.ledger import DEFAULT_URL
    from ..embedded import free_port

    port = culling.port or free_port()
    env = {
        ENV_SETTINGS: to_json(culling, budget),
        ENV_CATALOG: setup.catalog_path,
        ENV_ALLOCATIONS: setup.allocations_path,
        ENV_COURSES: setup.courses_path if setup.courses_path and os.path.exists(setup.courses_path) else "",
        ENV_LEDGER: setup.ledger_url or DEFAULT_URL,
    }
    for key in ("PATH", "SLURM_CONF", "SCIP_LANG"):
        if key in os.environ:
            env[key] = os.environ[key]
    service = {
        "name": SERVICE_NAME,
        "command": [python or sys.executable, "-m", "scip_jupyter.culling.service"],
        # where it listens and the proxy reaches it: the hub pod's IP on Kubernetes (as for the courses service)
        "url": f"http://{getattr(setup, 'courses_service_ip', '') or '127.0.0.1'}:{port}",
        "environment": env,
        "display": False,
        "oauth_no_confirm": True,
    }
    role = {"name": f"{SERVICE_NAME}-service", "description": "SCIP GPU culler and budget watcher",
            "scopes": SERVICE_SCOPES, "services": [SERVICE_NAME]}
    return service, role


def configure_gpu(c, setup, wiring) -> None:
    """The `hub_setup.FEATURES` entry (see the module docstring)."""
    load_overrides(c, os.environ.get(ENV_CONFIG))
    culling, budget = GPUCulling(config=c), BudgetWatcher(config=c)
    if not culling.enabled and not budget.enabled:
        return
    service, role = service_spec(culling, budget, setup)
    wiring.services.append(service)
    wiring.roles.append(role)
    user_role = next((r for r in wiring.roles if r.get("name") == "user"), None)
    if user_role is None:
        wiring.roles.append({"name": "user", "scopes": ["self", ACCESS]})
    elif ACCESS not in user_role.setdefault("scopes", ["self"]):
        user_role["scopes"].append(ACCESS)
    # where a server (JupyterLab, the monitor widget) finds the service: notices and its GPU readings
    env = dict(c.Spawner.environment) if "environment" in c.Spawner else {}
    env[ENV_SERVICE_URL] = service["url"] + f"/services/{SERVICE_NAME}/"
    c.Spawner.environment = env
    current = list(c.Spawner.server_token_scopes) if "server_token_scopes" in c.Spawner else list(SERVER_SCOPES)
    if ACCESS not in current:
        c.Spawner.server_token_scopes = current + [ACCESS]
