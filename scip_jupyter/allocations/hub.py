"""Hub wiring of allocation accounting beyond the spawner: `configure_usage(c, setup, wiring)`.

A `hub_setup.FEATURES` entry, so both hubs (embedded and Kubernetes) get it:

* the hub's id among replicas sharing one ledger (`$SCIP_HUB_ID`): set from
  `$SCIP_HUB_ID`, else the Helm release (`$HELM_RELEASE_NAME`), else a digest of
  the hub's own database URL, stable across restarts of the same hub. Holdings are
  recorded with it and a hub's stale-holding sweep releases only its own;
* the managed service `scip-usage` (`scip-jupyter usage --watch`), which every `every`
  seconds, and at once when the hub (re)starts, releases this hub's holdings of servers
  the hub does not run (servers that died while the hub was down) and reads Slurm's
  accounting (`sacct`) into the ledger, for the ARC presets the hub cleans up after
  that it reaches locally (automation nodes do not allow sacct).
  Being in the ledger, Slurm jobs' GPU-hours count against the allocations and
  appear in the reports. After a hub is killed and restarted the service starts
  again and re-reads the window: rows are keyed by (cluster, job id), nothing is
  counted twice, and jobs that ended meanwhile get their end.
"""

from __future__ import annotations

import hashlib
import os
import sys

from .ledger import DEFAULT_URL, HUB_ID_ENV

SERVICE_NAME = "scip-usage"
#: Seconds between two reads of sacct.
DEFAULT_EVERY = 300.0


def hub_id(c) -> str:
    """This hub's stable id (see the module docstring)."""
    explicit = os.environ.get(HUB_ID_ENV) or os.environ.get("HELM_RELEASE_NAME")
    if explicit:
        return explicit
    db_url = str(c.JupyterHub.db_url) if "db_url" in c.JupyterHub else "sqlite:///jupyterhub.sqlite"
    return "hub-" + hashlib.sha256(db_url.encode()).hexdigest()[:12]


def usage_service(setup, presets: list[str], every: float = DEFAULT_EVERY, python: str | None = None) -> dict:
    command = [python or sys.executable, "-m", "scip_jupyter.cli", "usage", "--watch", f"{every:g}"]
    for name in presets:
        command += ["--cluster", name]
    if not presets:
        command.append("--no-sacct")
    env = {"SCIP_LEDGER_URL": setup.ledger_url or DEFAULT_URL, "SCIP_ALLOCATIONS_FILE": setup.allocations_path}
    for key in ("PATH", "SLURM_CONF", "SCIP_ARC_PRESETS", "SCIP_LANG", "SCIP_LEDGER_PASSWORD", HUB_ID_ENV):
        if key in os.environ:
            env[key] = os.environ[key]
    return {"name": SERVICE_NAME, "command": command, "display": False, "environment": env}


def local_presets(names: list[str]) -> list[str]:
    """The presets among `names` whose transport is local (sacct runs only there)."""
    try:
        from ..arc.presets import load_default_presets

        presets = load_default_presets()
    except Exception:  # noqa: BLE001 - no presets file: nothing to read
        return []
    out = []
    for name in names:
        try:
            if presets.get(name).transport.kind == "local":
                out.append(name)
        except Exception:  # noqa: BLE001 - an unknown preset is reported by the ARC wiring
            continue
    return out


def configure_usage(c, setup, wiring) -> None:
    """The `hub_setup.FEATURES` entry (see the module docstring)."""
    os.environ.setdefault(HUB_ID_ENV, hub_id(c))
    if not setup.allocations_path:
        return
    # The instructor pages (the courses service) show each course's GPU-hours from the ledger.
    for service in wiring.services:
        if service.get("name") == "scip-courses":
            service.setdefault("environment", {})["SCIP_LEDGER_URL"] = setup.ledger_url or DEFAULT_URL
    wiring.services.append(usage_service(setup, local_presets(list(setup.arc_cleanup_presets))))
    # it reads which servers run (to release holdings of servers that died while the hub was down)
    wiring.roles.append({"name": SERVICE_NAME, "scopes": ["list:users", "read:users:name", "read:servers"],
                         "services": [SERVICE_NAME]})
