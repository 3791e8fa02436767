"""`SCIPKubeSpawner`: KubeSpawner with the catalog deciding what a user may start.

Thin on purpose. The mixin holds catalog loading and validation; the pure
builders in `k8s_objects` turn profiles into KubeSpawner overrides; KubeSpawner
does the rest (pod manifest, API calls, reflectors). What this class adds:

* `profile_list` is computed per user from the catalog and the user's groups
  (a callable, which KubeSpawner supports, also for the spawn form);
* `load_user_options` validates `user_options` with `scip_validate` first, so an
  unknown or forbidden profile is refused with a 4xx before any API call;
* overrides from a previous spawn of the same Spawner object are undone before
  the next profile is applied (KubeSpawner merges dict overrides into the live
  settings, so a GPU limit would otherwise survive a switch to a CPU profile);
* the spawn form is the mixin's (autoescaped, the same as the local spawner's),
  with free GPUs per profile from `availability.KubeAvailability` (node and pod
  lists, cached for `availability_ttl`, shared by every spawner of the hub).
"""

from __future__ import annotations

import copy
from typing import Any

from kubespawner import KubeSpawner
from traitlets import Bool, Dict, Unicode, default

from ..availability import KubeAvailability, profile_availability
from .k8s_objects import DEFAULT_GPU_PRODUCTS, Placement, profile_list_for, slurm_client_mounts
from .base import SCIPSpawnerMixin

#: Settings a profile override may change; restored to the configured values before each spawn.
OVERRIDDEN_TRAITS = (
    "image",
    "cpu_guarantee",
    "cpu_limit",
    "mem_guarantee",
    "mem_limit",
    "extra_labels",
    "extra_annotations",
    "node_selector",
    "tolerations",
    "volumes",
    "volume_mounts",
    "extra_resource_limits",
    "extra_resource_guarantees",
    "environment",
)


class SCIPKubeSpawner(SCIPSpawnerMixin, KubeSpawner):
    """KubeSpawner whose profiles come from the SCIP catalog and the user's groups."""

    gpu_products = Dict(
        dict(DEFAULT_GPU_PRODUCTS),
        config=True,
        help="""GPU model (catalog `gpu_model`) -> value of the `nvidia.com/gpu.product` node label.

        GPU and MIG pods get a node selector on that label; a model missing here gets none.

        c.SCIPKubeSpawner.gpu_products = {"h100": "NVIDIA-H100-80GB-HBM3"}
        """,
    )
    site_node_label = Unicode(
        "",
        config=True,
        help="""Node label key whose value must equal the profile's `site` (multi-site clusters).

        c.SCIPKubeSpawner.site_node_label = "scip.ca/site"
        """,
    )
    tolerate_gpu_taint = Bool(
        True,
        config=True,
        help="""Let GPU and MIG pods tolerate the `nvidia.com/gpu` NoSchedule taint of GPU nodes.""",
    )
    slurm_config_map = Unicode(
        "",
        config=True,
        help="""ConfigMap with the cluster's slurm.conf, mounted at /etc/slurm (sets SLURM_CONF).""",
    )
    scip_config_map = Unicode(
        "",
        config=True,
        help="""ConfigMap with courses.yaml and arc.yaml, mounted at /etc/scip/config in notebook
        pods (sets SCIP_COURSES_FILE and SCIP_ARC_PRESETS). The Helm chart creates `scip-jupyter-config`.""",
    )

    _scip_kube_availability: dict[tuple, KubeAvailability] = {}

    @default("options_form")
    def _scip_options_form_default(self):
        # A callable, evaluated per spawner when the form is shown (see scip_options_form).
        return type(self).scip_options_form

    async def scip_cluster_availability(self, profiles):
        key = (id(self.api), self.availability_ttl)
        reader = self._scip_kube_availability.get(key)
        if reader is None:
            reader = self._scip_kube_availability[key] = KubeAvailability(self.api, ttl=self.availability_ttl)
        return profile_availability(profiles, await reader.flavours())

    @default("profile_list")
    def _scip_profile_list_default(self):
        # A callable: KubeSpawner evaluates it per spawner, for the form and at start.
        return type(self)._scip_profile_list

    def _scip_profile_list(self) -> list[dict[str, Any]]:
        volumes, mounts, env = slurm_client_mounts(self.slurm_config_map, self.scip_config_map)
        placement = Placement(
            gpu_products=dict(self.gpu_products),
            site_node_label=self.site_node_label,
            tolerate_gpu_taint=self.tolerate_gpu_taint,
        )
        return profile_list_for(self.scip_allowed_profiles(), self.scip_labels, placement, volumes, mounts, env)

    async def load_user_options(self):
        # Validate first (raw REST input included): a refused choice never reaches the API.
        profile, options = self.scip_validate(self.user_options)
        self.user_options = options
        self.log.info("Spawning %s with profile %s", self._log_name, profile.slug)
        self._scip_restore_configured()
        await super().load_user_options()

    def _scip_restore_configured(self) -> None:
        configured = getattr(self, "_scip_configured", None)
        if configured is None:
            self._scip_configured = {t: copy.deepcopy(getattr(self, t)) for t in OVERRIDDEN_TRAITS}
            return
        for trait, value in configured.items():
            setattr(self, trait, copy.deepcopy(value))
