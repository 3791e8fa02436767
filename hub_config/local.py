"""JupyterHub configuration of the embedded platform (`scip-jupyter up`, `make run`).

Read by JupyterHub with `-f`; `scip-jupyter up` passes its settings through
SCIP_HUB_* environment variables (see scip_jupyter/embedded.py, HubSettings).
Bound to 127.0.0.1 by default; all state lives in the state folder.

The file is a sequence of numbered blocks. Features add their own block at the
end (courses: groups, roles and the launch-link handler; ARC: the post_stop_hook)
using the names defined here: `c`, `hub` (HubSettings), `groups` (c.JupyterHub.load_groups),
`roles` (c.JupyterHub.load_roles) and `services` (c.JupyterHub.services).
"""

# ruff: noqa: F821  (get_config is provided by traitlets when JupyterHub loads this file)
import secrets

from scip_jupyter.embedded import ADMIN_SERVICE, DEMO_ACCOUNTS, HubSettings, read_or_create_secret

c = get_config()  # noqa: F821
hub = HubSettings.from_env()

# --- 1. Network and state -------------------------------------------------------------------------
c.JupyterHub.ip = hub.ip
c.JupyterHub.port = hub.port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = hub.hub_port
c.JupyterHub.db_url = f"sqlite:///{hub.private / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(hub.private / "jupyterhub_cookie_secret")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every server it started

# --- 2. Proxy: configurable-http-proxy from the project's node_modules ----------------------------
c.ConfigurableHTTPProxy.command = [str(hub.proxy_command)]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{hub.proxy_api_port}"
c.ConfigurableHTTPProxy.auth_token = read_or_create_secret(hub.private / "proxy-token", lambda: secrets.token_hex(32))[0]
c.ConfigurableHTTPProxy.pid_file = str(hub.private / "proxy.pid")

# --- 3. Authentication and demo accounts ----------------------------------------------------------
# One generated password for the demo accounts (printed once by `scip-jupyter up`).
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = read_or_create_secret(hub.password_file)[0]
c.Authenticator.allowed_users = set(DEMO_ACCOUNTS)
groups: dict[str, dict] = {}  # c.JupyterHub.load_groups: name -> {"users": [...]}
for _user, _group in DEMO_ACCOUNTS.items():
    groups.setdefault(_group, {"users": []})["users"].append(_user)
c.JupyterHub.load_groups = groups
roles: list[dict] = []
services: list[dict] = []
c.JupyterHub.load_roles = roles
c.JupyterHub.services = services

# --- 4. Spawner: catalog-driven local servers as scip-user, JupyterLab --------------------------------
c.JupyterHub.spawner_class = "scip_jupyter.spawners.SCIPLocalSpawner"
c.SCIPLocalSpawner.catalog_path = str(hub.catalog)
c.SCIPLocalSpawner.run_as = "scip-user"  # used only when the hub runs as root; see docs/hub.md
c.SCIPLocalSpawner.workdir_root = str(hub.homes)
c.SCIPLocalSpawner.seed_dir = str(hub.root / "notebooks")  # demo course material, copied at first spawn
c.Spawner.cmd = [str(hub.venv_bin / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    "PATH": f"{hub.venv_bin}:/usr/local/bin:/usr/bin:/bin",
    "VIRTUAL_ENV": str(hub.venv_bin.parent),
}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

# --- 5. Automation: SCIP_ADMIN_TOKEN registers an admin service ----------------------------------
if hub.admin_token:
    services.append({"name": ADMIN_SERVICE, "api_token": hub.admin_token, "display": False})
    roles.append({"name": "admin", "services": [ADMIN_SERVICE]})

# --- 6. Courses (groups, roles, launch links) ------------------------------------------------------
# >>> courses block (owned by scip_jupyter/courses; see docs/courses.md) >>>
# Course groups and instructor roles at start, the launch link /hub/scip/course/<id>/launch,
# the `scip-courses` service (instructor view, keeps course groups in step with the registry),
# course-granted profiles for the spawner, and SCIP_COURSES_FILE for the servers.
# $SCIP_COURSES_FILE overrides the registry file.
import os as _os  # noqa: E402

from scip_jupyter.courses.hub import configure as _configure_courses  # noqa: E402
from scip_jupyter.embedded import free_port as _free_port  # noqa: E402

_configure_courses(
    c,
    _os.environ.get("SCIP_COURSES_FILE") or hub.root / "hub_config" / "courses.yaml",
    groups=groups,
    roles=roles,
    services=services,
    homes=hub.homes,
    service_port=_free_port(),
    service_token=read_or_create_secret(hub.private / "courses-service-token", lambda: secrets.token_hex(32))[0],
    public_url=hub.public_url,
)
# <<< courses block <<<

# --- 7. ARC bridge (post_stop_hook cancelling a stopped server's Slurm jobs) -----------------------
# >>> ARC jobs block (owned by scip_jupyter/arc/hub_hooks.py; see docs/arc-jobs.md) >>>
# When a server stops, dies or is culled, cancel the Slurm jobs tagged for it; the
# `scip-arc-reconcile` service cancels, at hub start-up and every 5 minutes, jobs
# tagged for this hub's users whose server is not running.
from scip_jupyter.arc.hub_hooks import configure_hub as _configure_arc_jobs  # noqa: E402

_configure_arc_jobs(c, presets=["local-slurm"], every=300)
# <<< ARC jobs block <<<

# --- 8. Allocations and availability --------------------------------------------------------------
# >>> allocations block (owned by scip_jupyter/allocations; see docs/allocations.md) >>>
# Quotas from allocations.yaml ($SCIP_ALLOCATIONS_FILE overrides it) and the courses' allocations;
# reservations and the audit trail in the private state folder. The spawn form shows free GPUs per
# flavour from the local Slurm when one answers ($SLURM_CONF, else the project's scripts/slurm-local).
import os as _os  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

c.SCIPSpawnerMixin.allocations_path = str(
    _os.environ.get("SCIP_ALLOCATIONS_FILE") or hub.root / "hub_config" / "allocations.yaml"
)
c.SCIPSpawnerMixin.ledger_url = f"sqlite:///{hub.private / 'allocations.sqlite'}"
_slurm_conf = _Path(_os.environ.get("SCIP_SLURM_STATE") or hub.root / ".state" / "slurm") / "slurm.conf"
c.SCIPLocalSpawner.slurm_conf = _os.environ.get("SLURM_CONF") or (str(_slurm_conf) if _slurm_conf.exists() else "")
# <<< allocations block <<<
