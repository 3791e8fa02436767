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
  lists, cached for `availability_ttl`, shared by every spawner of the hub);
* fail fast, in words: while the pod starts, its status and events (from
  KubeSpawner's reflectors, no extra API calls) are checked with the pure
  `k8s_events.find_trouble`; an unschedulable pod, an image that cannot be
  pulled or a crash loop ends the spawn at once with a message naming what was
  asked, why it cannot run and the profiles with free units now. The pod is
  deleted and the allocation released (the mixin's start). Spawn progress shows
  events in words (`k8s_events.progress_words`), never raw.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

import aiohttp
from kubespawner import KubeSpawner
from tornado import web
from traitlets import Bool, Dict, Float, TraitError, Unicode, default, validate

from ..availability import KubeAvailability, profile_availability
from .k8s_objects import DEFAULT_GPU_PRODUCTS, Placement, merge_named, profile_list_for, slurm_client_mounts
from .. import storage as scip_storage
from ..i18n import _
from .base import SCIPSpawnerMixin
from .k8s_events import PodTrouble, find_trouble, progress_words, trouble_html, trouble_message

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
    "pod_security_context",
    "container_security_context",
)


def _as_list(value) -> list:
    """KubeSpawner list settings may be given as {key: item}."""
    return [value[k] for k in sorted(value)] if isinstance(value, dict) else list(value or [])


def catalog_profile_list(spawner: "SCIPKubeSpawner") -> list[dict[str, Any]]:
    """`profile_list` from the catalog and the user's groups (the default; a hub config that
    sets `KubeSpawner.profile_list`, as z2jh does from singleuser.profileList, uses this to restore it)."""
    return spawner._scip_profile_list()


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
        help="""ConfigMap with courses.yaml and arc.yaml, mounted at /usr/local/etc/scip in notebook
        pods (sets SCIP_COURSES_FILE and SCIP_ARC_PRESETS). The Helm chart creates `scip-jupyter-config`.""",
    )

    storage = Dict(
        {},
        config=True,
        help="""Project, scratch and course data mounted in notebook pods at the paths the ARC
        clusters use (see scip_jupyter/storage.py). Each project names the jurisdiction its
        data must stay in; a spawn whose profile runs elsewhere is refused.

        c.SCIPKubeSpawner.storage = {
            "projects": {"lab-bc": {"claim": "projects", "jurisdiction": "CA-BC"}},
            "scratch": {"claim": "scratch"},
            "course_data": {"claim": "course-data"},
        }
        """,
    )
    storage_paths_preset = Unicode(
        "",
        config=True,
        help="""ARC preset (arc.yaml) whose `storage` path templates notebook pods mirror, so a path
        in the notebook is the same in its Slurm jobs; empty: /project/{group}, /scratch/{user}.""",
    )

    @validate("storage")
    def _storage_valid(self, proposal):
        try:
            scip_storage.parse_storage(proposal["value"])
        except ValueError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"]

    def scip_storage_config(self) -> scip_storage.StorageConfig:
        config = scip_storage.parse_storage(self.storage)
        if self.storage_paths_preset:
            from ..arc.presets import load_default_presets

            preset = load_default_presets().get(self.storage_paths_preset)  # unknown: names the presets
            if preset.storage:
                config = config.model_copy(update={"paths": {**config.paths, **preset.storage}})
        return config

    def scip_check_data(self, profile, options) -> None:
        if not self.storage:
            return
        config = self.scip_storage_config()
        groups = self.scip_user_groups()
        mine = [config.projects[g] for g in sorted(groups & set(config.projects))]
        fitting = [
            p.display_name for p in self.scip_allowed_profiles()
            if all(scip_storage.within(p.jurisdiction, m.jurisdiction) for m in mine)
        ]
        try:
            scip_storage.storage_mounts(
                config, self.user.name, groups, options.get("course", ""),
                where=f"profile “{profile.display_name}” (site {profile.site})", jurisdiction=profile.jurisdiction,
                fitting=fitting,
            )
        except scip_storage.JurisdictionError as exc:
            self.log.warning("Refused %s for %s: %s", profile.slug, self._log_name, exc)
            raise web.HTTPError(403, str(exc), reason="Data jurisdiction") from None

    def _scip_apply_storage(self, profile, options) -> None:
        if not self.storage:
            return
        volumes, mounts, env = scip_storage.storage_mounts(
            self.scip_storage_config(), self.user.name, self.scip_user_groups(), options.get("course", ""),
            where=profile.display_name, jurisdiction=profile.jurisdiction,
        )
        self.volumes = merge_named(_as_list(self.volumes), volumes)
        self.volume_mounts = merge_named(_as_list(self.volume_mounts), mounts)
        self.environment = {**self.environment, **env}

    fail_fast = Bool(
        True,
        config=True,
        help="""End a spawn as soon as its pod cannot be scheduled, its image cannot be pulled or
        it crash-loops, with a message in words (instead of waiting for start_timeout).""",
    )
    trouble_poll_interval = Float(
        1.0,
        config=True,
        help="""Seconds between looks at the starting pod's status and events. Reads KubeSpawner's
        reflectors (no API request); the spawn ends within this much of the event arriving.""",
    )

    @default("uid")
    def _scip_uid_default(self):
        # Non-root (Pod Security Standard "restricted"); jovyan in the Jupyter images, as z2jh sets.
        return 1000

    @default("gid")
    def _scip_gid_default(self):
        return 100

    @default("fs_gid")
    def _scip_fs_gid_default(self):
        return 100

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
        return catalog_profile_list

    def _scip_profile_list(self) -> list[dict[str, Any]]:
        # SCIP_COURSES_FILE only when the hub has courses (the ConfigMap then carries courses.yaml).
        files = ("courses.yaml", "arc.yaml") if self.courses_path else ("arc.yaml",)
        volumes, mounts, env = slurm_client_mounts(self.slurm_config_map, self.scip_config_map, files)
        placement = Placement(
            gpu_products=dict(self.gpu_products),
            site_node_label=self.site_node_label,
            tolerate_gpu_taint=self.tolerate_gpu_taint,
        )
        return profile_list_for(self.scip_allowed_profiles(), self.scip_labels, placement, volumes, mounts, env)

    async def load_user_options(self):
        # Validated once, at the mixin's start (raw REST input included): a refused choice never
        # reaches the API. Called without start (tools, tests): validate here.
        profile, options = self.scip_choice or self.scip_validate(self.user_options)
        self.user_options = options
        self._scip_profile = profile
        self.log.info("Spawning %s with profile %s", self._log_name, profile.slug)
        self._scip_restore_configured()
        await super().load_user_options()
        self._scip_apply_storage(profile, options)

    def _scip_restore_configured(self) -> None:
        configured = getattr(self, "_scip_configured", None)
        if configured is None:
            self._scip_configured = {t: copy.deepcopy(getattr(self, t)) for t in OVERRIDDEN_TRAITS}
            return
        for trait, value in configured.items():
            setattr(self, trait, copy.deepcopy(value))

    # --- fail fast, in words ------------------------------------------------------------------------

    async def _start(self):
        try:
            return await self._scip_start_watched()
        except aiohttp.ClientConnectionError as exc:  # the API went away mid-spawn (disconnected, refused)
            raise self._scip_api_lost(exc) from exc

    def _scip_api_lost(self, exc: BaseException) -> web.HTTPError:
        """The person's words for a Kubernetes API that stopped answering (never the client's class name).

        The mixin's start releases the reservation when this propagates; the hub then stops the
        server, which deletes the pod (KubeSpawner retries until the API is back)."""
        self.log.warning("Kubernetes API lost while starting %s: %s: %s", self.pod_name, type(exc).__name__, exc)
        message = _(
            "Your server could not start: the platform's Kubernetes cluster stopped answering while your server "
            "was being set up. Nothing is kept running for it and its reservation on your allocation is released. "
            "Please try again in a few minutes; if it keeps happening, tell support."
        )
        error = web.HTTPError(503, message, reason="Cluster not answering")
        error.jupyterhub_message = message
        error.jupyterhub_html_message = trouble_html(message)
        return error

    async def _scip_start_watched(self):
        start = asyncio.ensure_future(super()._start())
        if not self.fail_fast:
            return await start
        watch = asyncio.ensure_future(self._scip_watch_trouble(start))
        try:
            await asyncio.wait({start, watch}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            start.cancel()
            watch.cancel()
            raise
        if start.done():
            watch.cancel()
            return start.result()
        trouble = watch.result()
        start.cancel()
        with contextlib.suppress(BaseException):
            await start
        raise await self._scip_fail(trouble)

    async def _scip_watch_trouble(self, start: asyncio.Future) -> PodTrouble | None:
        # The pod's status says all four troubles on a real cluster (PodScheduled=False, waiting
        # reasons): read it every poll. Events are the fallback, read every 5th poll: KubeSpawner's
        # `events` sorts every event of the namespace, and many pods start at once.
        polls = 0
        while not start.done():
            pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}") if self.pod_reflector else None
            if pod is not None:
                trouble = find_trouble(self.events if polls % 5 == 0 else (), pod)
                if trouble:
                    return trouble
                polls += 1
            await asyncio.sleep(self.trouble_poll_interval)
        return None

    async def _scip_fail(self, trouble: PodTrouble) -> web.HTTPError:
        """Delete the pod and say why it could not run (the mixin's start releases the allocation)."""
        self.log.warning("Pod %s cannot run (%s): %s", self.pod_name, trouble.reason, trouble.detail)
        profile = getattr(self, "_scip_profile", None)
        try:
            await self.stop(now=True)
        except Exception:
            self.log.exception("Could not delete pod %s after %s", self.pod_name, trouble.reason)
        alternatives: list[tuple[str, int]] = []
        allowed = [p for p in self.scip_allowed_profiles() if profile is None or p.slug != profile.slug]
        free = await self._scip_within(self.scip_cluster_availability(allowed), "cluster availability", self.availability_timeout)
        for other in allowed:
            count = (free or {}).get(other.slug)
            if count:
                alternatives.append((other.display_name, count))
        message = trouble_message(profile.display_name if profile else self.pod_name, trouble, self.image, alternatives)
        error = web.HTTPError(503 if trouble.kind == "unschedulable" else 500, message, reason="Server cannot run")
        error.jupyterhub_message = message
        error.jupyterhub_html_message = trouble_html(message)
        return error

    async def progress(self):
        # KubeSpawner's progress with every event in words (no raw events reach the person).
        async for event in super().progress():
            raw = event.get("raw_event")
            if raw is None:
                yield event
            else:
                yield {"progress": event.get("progress"), "message": progress_words(raw)}
