"""Spawners: one mixin holds everything the Kubernetes and local spawners share.

`SCIPSpawnerMixin` loads the catalog, computes the profiles a user may choose,
and validates `user_options` (form or REST) before anything is started. The
backends are small: `SCIPKubeSpawner` (KubeSpawner) and `SCIPLocalSpawner`
(embedded default). They are imported lazily so that the local spawner does not
import the Kubernetes client.
"""

from __future__ import annotations

import os
from typing import Any

from tornado import web
from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from . import LABEL_PREFIX
from .catalog import Catalog, Profile, load_catalog
from .options import OptionsError, allowed_profiles, options_from_form, validate_spawn_options

_catalog_cache: dict[str, tuple[float, Catalog]] = {}


def cached_catalog(path: str) -> Catalog:
    """Load a catalog, reloading when the file changes (mtime)."""
    mtime = os.stat(path).st_mtime
    hit = _catalog_cache.get(path)
    if hit and hit[0] == mtime:
        return hit[1]
    catalog = load_catalog(path)
    _catalog_cache[path] = (mtime, catalog)
    return catalog


class SCIPSpawnerMixin(LoggingConfigurable):
    """Catalog-driven profile choice and validation shared by SCIP spawners."""

    catalog_path = Unicode(
        "",
        config=True,
        help="""Path to the resource catalog YAML (see hub_config/catalog.yaml).

        c.SCIPKubeSpawner.catalog_path = "/etc/scip/catalog.yaml"
        """,
    )

    @property
    def catalog(self) -> Catalog:
        if not self.catalog_path:
            raise RuntimeError("catalog_path is not set: set c.<Spawner>.catalog_path to your catalog.yaml")
        return cached_catalog(self.catalog_path)

    def scip_user_groups(self) -> set[str]:
        return {g.name for g in getattr(self.user, "groups", [])}

    courses_path = Unicode(
        "",
        config=True,
        help="""Path to the course registry YAML (see hub_config/courses.yaml); empty: no courses.

        An active course grants its profiles to its students and instructors; an
        ended one grants nothing (the file is re-read when it changes).

        c.SCIPSpawnerMixin.courses_path = "/etc/scip/courses.yaml"
        """,
    )

    def scip_extra_profiles(self) -> set[str]:
        """Profile slugs granted by something other than groups: the user's active courses."""
        if not self.courses_path:
            return set()
        from .courses.hub import extra_profiles

        return extra_profiles(self.courses_path, self.user.name, self.scip_user_groups())

    def scip_allowed_profiles(self) -> list[Profile]:
        return allowed_profiles(self.catalog, self.scip_user_groups(), self.scip_extra_profiles())

    def scip_validate(self, options: Any) -> tuple[Profile, dict]:
        """Validate options or raise a 4xx HTTPError naming the field and allowed values."""
        try:
            return validate_spawn_options(options, self.catalog, self.scip_user_groups(), self.scip_extra_profiles())
        except OptionsError as exc:
            self.log.warning("Refused spawn options for %s: %s", self.user.name, exc)
            raise web.HTTPError(exc.status, str(exc), reason="Invalid user_options") from None

    def scip_labels(self, profile: Profile) -> dict[str, str]:
        """Labels for who/what/where, under one prefix (pods, processes, Slurm jobs)."""
        return {
            f"{LABEL_PREFIX}/user": self.user.name,
            f"{LABEL_PREFIX}/server": self.name or "default",
            f"{LABEL_PREFIX}/profile": profile.slug,
            f"{LABEL_PREFIX}/site": profile.site,
            f"{LABEL_PREFIX}/jurisdiction": profile.jurisdiction,
        }

    def options_from_form(self, formdata):
        """Parse the form, then validate it at once (a refused choice re-renders the form with a 4xx).

        JupyterHub also calls this for `GET /hub/spawn?profile=...` (options_from_query).
        Options that arrive raw through the REST API never pass here: each backend
        validates again before it starts anything.
        """
        return self.scip_validate(options_from_form(formdata))[1]


def __getattr__(name: str):
    # Lazy backends: importing the local spawner must not import kubernetes.
    if name == "SCIPKubeSpawner":
        from .kube_spawner import SCIPKubeSpawner

        return SCIPKubeSpawner
    if name == "SCIPLocalSpawner":
        from .local_spawner import SCIPLocalSpawner

        return SCIPLocalSpawner
    raise AttributeError(name)
