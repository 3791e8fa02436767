"""One hub wiring for both hubs: `configure(c, settings)`.

`hub_config/local.py` (the embedded hub) and `hub_config/k8s.py` (the Helm
chart's hub) build a `HubSetup` with what differs between them (the spawner,
where files live, service ports and tokens, where homes are) and call
`configure`. Everything else is wired here, once:

1. the spawner and its config files (catalog, courses, allocations, ledger);
2. courses: groups, instructor roles, launch links, the `scip-courses` service;
3. ARC clean-up: the post-stop hook and the `scip-arc-reconcile` service;
4. allocations: the ledger and the quota file;
5. every function in `FEATURES`, in order (later features add themselves there:
   each is `feature(c, setup, wiring)` and may append to `wiring`'s groups, roles,
   services and extra handlers).

`configure` returns the `Wiring` so a hub config may add what only it needs
(the embedded hub's demo accounts and admin service, say).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

#: Spawner entry points (pyproject `jupyterhub.spawners`).
SPAWNERS = {"local": "scip-local", "kube": "scip-kube"}
#: The spawner config section of each backend.
SPAWNER_SECTIONS = {"local": "SCIPLocalSpawner", "kube": "SCIPKubeSpawner"}


@dataclass
class HubSetup:
    """What a hub config says about itself; everything has a safe default."""

    backend: str  # "local" or "kube"
    catalog_path: str
    courses_path: str = ""
    allocations_path: str = ""
    ledger_url: str = ""
    #: Where each person's notebook root is (a folder, or a `{username}` template).
    homes: str = ""
    public_url: str = ""
    #: ARC presets the hub cleans up after (post-stop hook and reconcile service).
    arc_cleanup_presets: list[str] = field(default_factory=lambda: ["local-slurm"])
    #: The ARC presets file the hub reads ($SCIP_ARC_PRESETS); empty: the one shipped in the package.
    arc_presets_path: str = ""
    arc_reconcile_every: float = 300.0
    #: The courses service: its port, the address it listens on and the proxy reaches
    #: (the hub pod's IP on Kubernetes), and its API token (a fresh token when empty).
    courses_service_port: int = 0
    courses_service_ip: str = "127.0.0.1"
    courses_service_token: str = ""
    #: Groups from the authenticator or the deployment (name -> {"users": [...]}).
    groups: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in SPAWNERS:
            raise ValueError(f"backend: {self.backend!r} is not one of {', '.join(SPAWNERS)}")


@dataclass
class Wiring:
    """The lists `configure` hands to JupyterHub; features append to them."""

    groups: dict
    roles: list = field(default_factory=list)
    services: list = field(default_factory=list)


#: JupyterHub's default `server` role: what a server's own token holds unless configured.
DEFAULT_SERVER_TOKEN_SCOPES = ("users:activity!user", "access:servers!server")


def add_server_token_scopes(c, *scopes: str) -> None:
    """Add `scopes` to every server's own token ($JUPYTERHUB_API_TOKEN), keeping what is configured.

    JupyterHub leaves out of a server's token any scope its owner does not hold,
    so a scope granted by a role to some people reaches only their servers.
    """
    current = list(c.Spawner.server_token_scopes) if "server_token_scopes" in c.Spawner else list(DEFAULT_SERVER_TOKEN_SCOPES)
    c.Spawner.server_token_scopes = current + [s for s in scopes if s not in current]


#: Features wired after the core ones: `feature(c, setup, wiring) -> None`.
FEATURES: list[Callable[[object, HubSetup, Wiring], None]] = []
FEATURES.append(lambda c, s, w: __import__("scip_jupyter.home.hub", fromlist=["_"]).configure_home(c, s, w))  # home page, hub pages in en/fr
FEATURES.append(lambda c, s, w: __import__("scip_jupyter.culling.hub", fromlist=["_"]).configure_gpu(c, s, w))  # GPU culling, budgets (scip-gpu service)


def configure(c, setup: HubSetup) -> Wiring:
    """Wire the SCIP hub into the JupyterHub config `c`; returns the shared lists."""
    # Keep what the hub config set before (z2jh's hub.services, hub.loadRoles, the idle culler).
    hub = c.JupyterHub
    wiring = Wiring(
        groups={**(hub.load_groups if "load_groups" in hub else {}), **setup.groups},
        roles=list(hub.load_roles if "load_roles" in hub else []),
        services=list(hub.services if "services" in hub else []),
    )
    c.JupyterHub.load_groups = wiring.groups
    c.JupyterHub.load_roles = wiring.roles
    c.JupyterHub.services = wiring.services
    section = c[SPAWNER_SECTIONS[setup.backend]]

    # 1. the spawner and its config files
    c.JupyterHub.spawner_class = SPAWNERS[setup.backend]
    section.catalog_path = setup.catalog_path

    # 2. courses
    if setup.courses_path and Path(setup.courses_path).exists():
        from .courses.hub import configure as configure_courses
        from .embedded import free_port

        port = setup.courses_service_port or free_port()
        configure_courses(
            c,
            setup.courses_path,
            groups=wiring.groups,
            roles=wiring.roles,
            services=wiring.services,
            service_port=port,
            service_token=setup.courses_service_token or secrets.token_hex(32),
            public_url=setup.public_url,
            service_ip=setup.courses_service_ip,  # where it listens, the proxy and the servers reach it
        )

    # 3. ARC clean-up: post-stop hook and the reconcile service
    from .arc.hub_hooks import configure_hub as configure_arc

    if setup.arc_presets_path:
        # The hub's hooks and services find presets through $SCIP_ARC_PRESETS (arc.presets).
        os.environ["SCIP_ARC_PRESETS"] = setup.arc_presets_path

    # none: the hub reaches no cluster, only servers cancel their jobs (configure_arc wires nothing)
    configure_arc(c, presets=list(setup.arc_cleanup_presets), every=setup.arc_reconcile_every)

    # 4. allocations
    c.SCIPSpawnerMixin.allocations_path = setup.allocations_path  # "" = no accounting
    if setup.ledger_url:
        c.SCIPSpawnerMixin.ledger_url = setup.ledger_url

    # 5. later features
    for feature in FEATURES:
        feature(c, setup, wiring)
    if setup.allocations_path:  # after the features: the hub id ($SCIP_HUB_ID) is known by now
        _open_ledger(setup.ledger_url)
    return wiring


def _open_ledger(url: str) -> None:
    """Open (and migrate) the ledger while the hub starts, not at its first spawn.

    Opening it runs the migrations; at a first spawn that ran on the hub's event
    loop, so a locked or slow database froze the hub for everyone (up to the busy
    timeout). A ledger that cannot be opened now is logged and tried again at
    the first spawn (which then fails with its own 503 message).
    """
    import logging

    from .allocations.ledger import DEFAULT_URL, ledger_for

    try:
        ledger_for(url or DEFAULT_URL)
    except Exception as exc:  # noqa: BLE001 - the spawn path reports it to the person
        logging.getLogger("scip.hub_setup").error("allocation ledger not available at hub start: %r", exc)


def _identity(c, setup: HubSetup, wiring: Wiring) -> None:
    """Per-person credentials (Slurm JWT, SSH certificates) minted by the hub (identity_hub.py)."""
    from .identity_hub import configure_identity

    configure_identity(c, setup, wiring)


FEATURES.append(_identity)
FEATURES.append(lambda c, s, w: __import__("scip_jupyter.allocations.hub", fromlist=["_"]).configure_usage(c, s, w))  # hub id, sacct -> ledger (scip-usage)
FEATURES.append(lambda c, s, w: __import__("scip_jupyter.allocations.hub_api", fromlist=["_"]).configure_burst(c, s, w))  # pre-sbatch GPU-hours check for servers
