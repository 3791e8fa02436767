"""Settings of GPU culling and budgets, as traitlets (documented where declared).

Set them in a hub config (`c.GPUCulling.idle_time = 1800`) before
`hub_setup.configure(c, ...)` runs, or in the JSON file named by
`$SCIP_GPU_CONFIG` (`{"GPUCulling": {...}, "BudgetWatcher": {...}}`), which
`culling.hub.configure_gpu` merges last. The resolved values travel to the
`scip-gpu` hub service as JSON (`to_json` / `from_json`), so the service and the
hub read one set of values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from traitlets import Bool, Dict, Float, Int, Unicode, Union, validate
from traitlets.config import Configurable

#: Keys allowed in one `GPUCulling.profiles` entry.
RULE_KEYS = ("threshold", "idle_time", "warning_time", "enabled")
SOURCES = ("auto", "prometheus", "nvml", "none")


@dataclass(frozen=True)
class Rule:
    """How one GPU profile is culled: below `threshold` % for `idle_time` s, warned `warning_time` s before."""

    threshold: float
    idle_time: float
    warning_time: float
    enabled: bool = True


class GPUCulling(Configurable):
    """GPU-aware culling of idle servers (jupyterhub-idle-culler with a GPU arbiter)."""

    enabled = Bool(
        True, config=True,
        help="""Run the `scip-gpu` culler service. Example: c.GPUCulling.enabled = False""",
    )
    source = Unicode(
        "auto", config=True,
        help="""Where GPU utilisation comes from: "prometheus" (DCGM exporter metrics through the
        Prometheus HTTP API at `prometheus_url`), "nvml" (this host's NVIDIA GPUs through nvidia-ml-py),
        "none" (GPU servers keep the activity rule), or "auto" (prometheus when `prometheus_url` is set,
        else nvml when a GPU answers, else none). Example: c.GPUCulling.source = "prometheus" """,
    )
    prometheus_url = Unicode(
        "", config=True,
        help="""Base URL of the Prometheus that scrapes the DCGM exporter.
        Example: c.GPUCulling.prometheus_url = "http://prometheus-server.monitoring:80" """,
    )
    namespace = Unicode(
        "", config=True,
        help="""Kubernetes namespace of the servers' pods in the DCGM metrics (label `namespace`);
        empty matches any namespace. Example: c.GPUCulling.namespace = "jhub" """,
    )
    pod_name_template = Unicode(
        "jupyter-{user_server}", config=True,
        help="""Pod name of a server when its spawner state does not say (KubeSpawner's state has
        `pod_name`): `{username}`, `{servername}`, `{user_server}` (username, or username--servername).
        Example: c.GPUCulling.pod_name_template = "jupyter-{user_server}" """,
    )
    threshold = Float(
        5.0, min=0, max=100, config=True,
        help="""GPU utilisation in percent below which a GPU counts as idle (every profile unless
        `profiles` says otherwise). Example: c.GPUCulling.threshold = 5""",
    )
    idle_time = Float(
        1800.0, min=1, config=True,
        help="""Seconds a GPU must stay below `threshold` before its person is warned.
        Example: c.GPUCulling.idle_time = 1800  # 30 minutes""",
    )
    warning_time = Float(
        600.0, min=0, config=True,
        help="""Seconds between the warning and the cull; work on the GPU in between cancels both.
        Example: c.GPUCulling.warning_time = 600""",
    )
    profiles = Dict(
        {}, config=True,
        help="""Per-profile overrides of threshold, idle_time, warning_time and enabled (False: never
        GPU-culled, the activity rule only), by profile slug.
        Example: c.GPUCulling.profiles = {"h100-full": {"threshold": 10, "idle_time": 900},
                                          "mig-1g-10gb": {"idle_time": 3600, "warning_time": 900}}""",
    )
    activity_timeout = Int(
        3600, min=1, config=True,
        help="""Seconds without web activity after which a server is culled by the plain activity rule
        (CPU servers, and GPU servers without metrics): jupyterhub-idle-culler's --timeout.
        Example: c.GPUCulling.activity_timeout = 3600""",
    )
    cull_every = Int(
        60, min=1, config=True,
        help="""Seconds between cull rounds (jupyterhub-idle-culler's --cull-every).
        Example: c.GPUCulling.cull_every = 60""",
    )
    port = Int(
        0, config=True,
        help="""Port of the `scip-gpu` service on 127.0.0.1 (notices and status); 0 picks a free one.
        Example: c.GPUCulling.port = 10105""",
    )

    @validate("source")
    def _source(self, proposal):
        if proposal.value not in SOURCES:
            raise ValueError(f"GPUCulling.source: {proposal.value!r} is not one of {', '.join(SOURCES)}")
        return proposal.value

    @validate("profiles")
    def _profiles(self, proposal):
        for slug, entry in proposal.value.items():
            if not isinstance(entry, dict):
                raise ValueError(f"GPUCulling.profiles.{slug}: must be a dict of {', '.join(RULE_KEYS)}")
            unknown = sorted(set(entry) - set(RULE_KEYS))
            if unknown:
                raise ValueError(
                    f"GPUCulling.profiles.{slug}: unknown key {unknown[0]!r}; allowed: {', '.join(RULE_KEYS)}"
                )
        return proposal.value

    def rule_for(self, profile: str) -> Rule:
        """The rule of one profile: its overrides over the defaults.

        >>> GPUCulling(profiles={"h100-full": {"idle_time": 60}}).rule_for("h100-full")
        Rule(threshold=5.0, idle_time=60.0, warning_time=600.0, enabled=True)
        """
        entry = self.profiles.get(profile, {})
        return Rule(
            threshold=float(entry.get("threshold", self.threshold)),
            idle_time=float(entry.get("idle_time", self.idle_time)),
            warning_time=float(entry.get("warning_time", self.warning_time)),
            enabled=bool(entry.get("enabled", True)),
        )


class BudgetWatcher(Configurable):
    """GPU-hour budgets enforced while servers run (the `scip-gpu` service's second task)."""

    enabled = Bool(
        True, config=True,
        help="""Watch GPU-hour budgets of running servers (needs an allocations file).
        Example: c.BudgetWatcher.enabled = False""",
    )
    every = Float(
        60.0, min=0.1, config=True,
        help="""Seconds between budget checks. Example: c.BudgetWatcher.every = 60""",
    )
    warn_fraction = Float(
        0.9, min=0, max=1, config=True,
        help="""Share of an allocation's GPU-hours at which its people are warned.
        Example: c.BudgetWatcher.warn_fraction = 0.9""",
    )
    grace = Float(
        900.0, min=0, config=True,
        help="""Seconds (on the watcher's clock) between "exhausted" and stopping the GPU servers the
        allocation pays for (which cancels their Slurm jobs). Example: c.BudgetWatcher.grace = 900""",
    )
    clock_speed = Union(
        [Float(), Int()], default_value=1.0, config=True,
        help="""How many seconds of budget time pass per real second, from the watcher's start (1: real
        time). Tests compress the clock: c.BudgetWatcher.clock_speed = 3600  # one hour per second""",
    )


def to_json(culling: GPUCulling, budget: BudgetWatcher) -> str:
    """The resolved settings, for the service's environment."""

    def traits(obj: Configurable) -> dict:
        return {name: getattr(obj, name) for name in obj.trait_names(config=True)}

    return json.dumps({"GPUCulling": traits(culling), "BudgetWatcher": traits(budget)}, sort_keys=True)


def from_json(text: str) -> tuple[GPUCulling, BudgetWatcher]:
    data = json.loads(text or "{}")
    return GPUCulling(**data.get("GPUCulling", {})), BudgetWatcher(**data.get("BudgetWatcher", {}))


def settings_table() -> str:
    """The markdown table of every setting, from the traits' own help (docs/culling.md embeds it)."""
    lines = ["| trait | default | what it does |", "|---|---|---|"]
    for cls in (GPUCulling, BudgetWatcher):
        for name in sorted(cls.class_trait_names(config=True)):
            trait = cls.class_traits()[name]
            text = " ".join((trait.help or "").split()).replace("|", "\\|")
            lines.append(f"| `{cls.__name__}.{name}` | `{trait.default_value!r}` | {text} |")
    return "\n".join(lines)
