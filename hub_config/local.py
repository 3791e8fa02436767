"""JupyterHub configuration of the embedded platform (`scip-jupyter up`, `make run`).

Read by JupyterHub with `-f`; `scip-jupyter up` passes its settings through
SCIP_HUB_* environment variables (see scip_jupyter/embedded.py, HubSettings).
Bound to 127.0.0.1 by default; all state lives in the state folder.

Thin on purpose: what both hubs share is wired by `scip_jupyter.hub_setup.configure`
(also called by hub_config/k8s.py); this file says only what the embedded hub does
differently (network, proxy, demo accounts, local servers).
"""

# ruff: noqa: F821  (get_config is provided by traitlets when JupyterHub loads this file)
import os
import secrets
from pathlib import Path

from scip_jupyter.embedded import ADMIN_SERVICE, DEMO_ACCOUNTS, HubSettings, read_or_create_secret
from scip_jupyter.hub_setup import HubSetup, configure

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
demo_groups: dict[str, dict] = {}  # name -> {"users": [...]}
for _user, _group in DEMO_ACCOUNTS.items():
    demo_groups.setdefault(_group, {"users": []})["users"].append(_user)

# --- 4. Everything both hubs share: scip_jupyter.hub_setup.configure --------------------------------
# Spawner and its files, courses (groups, roles, launch links, instructor service),
# ARC clean-up (post-stop hook, reconcile service), allocations. $SCIP_COURSES_FILE and
# $SCIP_ALLOCATIONS_FILE override the example files.
_slurm_conf = Path(os.environ.get("SCIP_SLURM_STATE") or hub.root / ".state" / "slurm") / "slurm.conf"
wiring = configure(
    c,
    HubSetup(
        backend="local",
        catalog_path=str(hub.catalog),
        courses_path=str(Path(os.environ.get("SCIP_COURSES_FILE") or hub.root / "hub_config" / "courses.yaml").resolve()),
        allocations_path=str(os.environ.get("SCIP_ALLOCATIONS_FILE") or hub.root / "hub_config" / "allocations.yaml"),
        # $SCIP_HUB_LEDGER_URL: another ledger database (e.g. PostgreSQL) instead of the state folder's SQLite
        ledger_url=os.environ.get("SCIP_HUB_LEDGER_URL") or f"sqlite:///{hub.private / 'allocations.sqlite'}",
        homes=str(hub.homes),
        public_url=hub.public_url,
        arc_cleanup_presets=["local-slurm"],
        courses_service_token=read_or_create_secret(hub.private / "courses-service-token", lambda: secrets.token_hex(32))[0],
        groups=demo_groups,
    ),
)

# --- 5. What only the embedded hub says --------------------------------------------------------------
# Local servers as unprivileged accounts (never root; see docs/hub.md), JupyterLab from this venv.
c.SCIPLocalSpawner.account_prefix = "jupyter-"  # hub user NAME runs as jupyter-NAME when the hub is root (docs/security.md)
c.SCIPLocalSpawner.slurm_association = "def-demo"  # so jupyter-NAME may submit to the local Slurm (accounting enforced)
c.SCIPLocalSpawner.workdir_root = str(hub.homes)
c.SCIPLocalSpawner.seed_dir = str(hub.root / "notebooks")  # demo course material, copied at first spawn
c.Spawner.cmd = [str(hub.venv_bin / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    **(c.Spawner.environment if "environment" in c.Spawner else {}),
    "PATH": f"{hub.venv_bin}:/usr/local/bin:/usr/bin:/bin",
    "VIRTUAL_ENV": str(hub.venv_bin.parent),
}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# The spawn form's free counts come from the local Slurm when one answers.
c.SCIPLocalSpawner.slurm_conf = os.environ.get("SLURM_CONF") or (str(_slurm_conf) if _slurm_conf.exists() else "")

# --- 6. Automation: SCIP_ADMIN_TOKEN registers an admin service ----------------------------------
if hub.admin_token:
    wiring.services.append({"name": ADMIN_SERVICE, "api_token": hub.admin_token, "display": False})
    wiring.roles.append({"name": "admin", "services": [ADMIN_SERVICE]})
