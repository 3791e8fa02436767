"""Spawners: one mixin holds everything the Kubernetes and local spawners share.

`SCIPSpawnerMixin` loads the catalog, computes the profiles a user may choose,
and validates `user_options` (form or REST) before anything is started. Then,
in `start`, it reserves the allocation that pays for the profile, atomically in
the ledger (`allocations/`): a refusal is an HTTP 403 naming `profile`, the
exhausted field and what is left, and nothing starts. The reservation is
released when the server stops, dies, or fails to start. The spawn form shows
each profile's cost, what is free on the cluster and what is left in the
allocation. The backends are small: `kube.SCIPKubeSpawner` (KubeSpawner) and
`local.SCIPLocalSpawner` (embedded default).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import time
from dataclasses import fields
from typing import Any, Sequence

from tornado import web
from traitlets import Float, Unicode
from traitlets.config import LoggingConfigurable

from .. import LABEL_PREFIX
from ..arc.tags import JobTags
from ..allocations.ledger import DEFAULT_URL, Ledger, ledger_for, unavailable_reason, utcnow
from ..allocations.policy import Account, Request, accounts_for, paying_course, standing
from ..allocations.quotas import Allocations, cached_allocations
from ..catalog import Catalog, Profile, ProfileKind, load_catalog
from ..config import cached_load
from ..i18n import _
from .ledger_file import check_ledger_file
from ..options import (
    OptionsError,
    ProfileStatus,
    allowed_profiles,
    options_from_form,
    render_spawn_form,
    validate_spawn_options,
)

#: The label vocabulary pods, processes and Slurm jobs share (arc.tags.JobTags).
LABEL_FIELDS = tuple(f.name for f in fields(JobTags))
#: Seconds the spawn form waits at most for the ledger's allocation figures.
LEDGER_FORM_TIMEOUT = 10.0


def cached_catalog(path: str) -> Catalog:
    """Load a catalog, reloading when the file changes (mtime)."""
    return cached_load(load_catalog, path)


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
        from ..courses.hub import extra_profiles

        return extra_profiles(self.courses_path, self.user.name, self.scip_user_groups())

    def scip_allowed_profiles(self) -> list[Profile]:
        return allowed_profiles(self.catalog, self.scip_user_groups(), self.scip_extra_profiles())

    def scip_validate(self, options: Any) -> tuple[Profile, dict]:
        """Validate options or raise a 4xx HTTPError naming the field and allowed values."""
        try:
            profile, normalised = validate_spawn_options(options, self.catalog, self.scip_user_groups(), self.scip_extra_profiles())
            if self.courses_path and "course" in normalised:
                from ..courses.hub import check_course_option

                check_course_option(self.courses_path, self.user.name, self.scip_user_groups(), normalised["course"])
            return profile, normalised
        except OptionsError as exc:
            self.log.warning("Refused spawn options for %s: %s", self.user.name, exc)
            raise web.HTTPError(exc.status, str(exc), reason="Invalid user_options") from None

    #: The choice validated at start (profile, normalised options); None before the first start.
    scip_choice: tuple[Profile, dict] | None = None
    #: Who pays for the running server (ledger account key, e.g. "group:researchers"), once reserved.
    _scip_payer: str = ""

    def scip_label_values(self, profile: Profile) -> dict[str, str]:
        """One vocabulary for pods, processes and Slurm jobs: the fields of `arc.tags.JobTags`
        (user, server, project, course, site, jurisdiction), plus the profile.

        project is the allocation group paying for the server, course the course it was
        started for (or the course paying for it)."""
        options = self.scip_choice[1] if self.scip_choice else {}
        payer = self._scip_payer
        project = payer.split(":", 1)[1] if payer.startswith("group:") else ""
        course = options.get("course") or (payer.split(":", 1)[1] if payer.startswith("course:") else "")
        values = {
            "user": self.user.name,
            "server": self.name or "default",
            "project": project,
            "course": course,
            "site": profile.site,
            "jurisdiction": profile.jurisdiction,
        }
        return {**values, "profile": profile.slug}

    def scip_labels(self, profile: Profile) -> dict[str, str]:
        """Labels for who/what/where, under one prefix (pods, processes, Slurm jobs)."""
        return {f"{LABEL_PREFIX}/{key}": value for key, value in self.scip_label_values(profile).items()}

    def options_from_form(self, formdata):
        """Parse the form, nothing more (also for `GET /hub/spawn?profile=...`, options_from_query).

        A choice is validated once, where every path meets: `start` (form, REST API and
        launch links alike); a refused choice ends the spawn with a 4xx naming the field.
        """
        return options_from_form(formdata)

    # --- allocations: reserve at start, release at stop ------------------------------------------

    allocations_path = Unicode(
        "",
        config=True,
        help="""Path to the quota file (allocations.yaml, see docs/allocations.md); empty: no allocation accounting.

        When set, every start reserves the allocation that pays for the profile in the
        ledger (a project's quota from this file, or a course's allocation from
        courses.yaml) and is refused with HTTP 403 when it is used up. The file is
        re-read when it changes.

        c.SCIPSpawnerMixin.allocations_path = "/etc/scip/allocations.yaml"
        """,
    )
    ledger_url = Unicode(
        DEFAULT_URL,
        config=True,
        help="""SQLAlchemy URL of the allocation ledger (reservations and audit events).

        SQLite by default (a file in the hub's working directory); PostgreSQL in
        production, shared by every hub replica:

        c.SCIPSpawnerMixin.ledger_url = "postgresql+psycopg://scip@db.example/scip"

        Used only when allocations_path is set.
        """,
    )
    availability_ttl = Float(
        30.0,
        config=True,
        help="""Seconds the spawn form reuses what the cluster said is free (one read per TTL for all users).""",
    )
    availability_timeout = Float(
        2.0,
        config=True,
        help="""Seconds the spawn form waits for the cluster's free counts before showing "unknown";
        a slow read goes on in the background and fills the cache for the next form. (Allocation
        figures come from the ledger, which the form waits for up to 10 seconds.)""",
    )
    reconcile_interval = Float(
        300.0,
        config=True,
        help="""Seconds between sweeps that release reservations of servers the hub does not run
        (left behind when a hub dies without stopping its servers). 0 turns the sweep off.""",
    )

    _scip_last_sweep: dict[str, float] = {}
    #: True once this spawner released its server's holding and reserved nothing since: a stop
    #: then writes the ledger once, not twice (`stop()` and then `run_post_stop_hook()`). A fresh
    #: spawner (a restarted hub) does not know, and releases.
    _scip_released = False

    @property
    def scip_ledger(self) -> Ledger | None:
        """The ledger, or None when allocation accounting is off (no allocations_path)."""
        return ledger_for(self.ledger_url) if self.allocations_path else None

    def scip_allocations(self) -> Allocations:
        return cached_allocations(self.allocations_path)

    def scip_courses(self) -> list:
        if not self.courses_path:
            return []
        from ..courses.registry import cached_registry

        try:
            return list(cached_registry(self.courses_path).courses)
        except FileNotFoundError:
            return []

    def scip_request(self, profile: Profile, options: dict, now: dt.datetime) -> tuple[Request, list[Account]]:
        """What this spawn asks for, and the accounts that may pay for it (in order)."""
        groups = self.scip_user_groups()
        request = Request.for_profile(profile, self.user.name, self.name or "")
        course = paying_course(
            self.scip_courses(), profile.slug, self.user.name, groups, options.get("course"),
            profile.allows(groups), now.date(),
        )
        return request, accounts_for(request, groups, self.scip_allocations(), course, now)

    async def scip_reserve(self, profile: Profile, options: dict) -> None:
        """Reserve the allocation for this start, or raise HTTP 403 naming `profile` (nothing reserved)."""
        if not self.allocations_path:
            return
        try:  # opening the ledger connects (and migrates, the first time): off the hub's event loop
            ledger = await asyncio.to_thread(lambda: self.scip_ledger)
        except Exception as exc:  # e.g. the hub started while the database was down
            raise self._scip_ledger_unavailable(exc) from None
        await self._scip_sweep(ledger)
        request, accounts = self.scip_request(profile, options, utcnow())
        try:
            await asyncio.to_thread(check_ledger_file, ledger)  # a removed SQLite file: refuse, not a ghost write
            decision = await asyncio.to_thread(ledger.reserve, request, accounts, self.scip_allocations().unlisted)
        except Exception as exc:  # the ledger is down: fail closed, without leaking its URL
            raise self._scip_ledger_unavailable(exc) from None
        if not decision.allowed:
            self.log.warning("Refused %s for %s: %s", profile.slug, self._log_name, decision.message)
            raise web.HTTPError(403, decision.message, reason="Allocation exhausted")
        self._scip_payer = decision.account_key or ""
        self._scip_released = False
        payer = decision.account_key or "(not metered)"
        self.log.info("Reserved %s for %s from %s", profile.slug, self._log_name, payer)

    def _scip_ledger_unavailable(self, exc: BaseException) -> web.HTTPError:
        """The 503 of a spawn the ledger cannot take now: why in words, never the database's URL."""
        self.log.error("Allocation ledger failed for %s: %r", self._log_name, exc)
        return web.HTTPError(503, _(
            "allocations: the ledger is not available ({reason}); nothing was reserved and no server "
            "was started; try again in a few minutes"
        ).format(reason=unavailable_reason(exc)))

    async def scip_release(self, reason: str) -> None:
        """Release what this server holds (idempotent; a failure is logged, never raised)."""
        if not self.allocations_path or self._scip_released:
            return
        try:
            ledger = await asyncio.to_thread(lambda: self.scip_ledger)
            released = await asyncio.to_thread(ledger.release, self.user.name, self.name or "", reason)
        except Exception:
            self.log.exception("Could not release the allocation of %s", self._log_name)
            return
        self._scip_released = True
        if released:
            self.log.info("Released the allocation of %s (%s)", self._log_name, reason)

    def scip_running_servers(self) -> set[tuple[str, str]] | None:
        """(user, server name) of every server the hub runs or is starting; None outside a hub."""
        db = getattr(self.user, "db", None)
        if db is None:
            return None
        from jupyterhub import orm

        spawners = db.query(orm.Spawner).filter(orm.Spawner.server_id.isnot(None))
        return {(s.user.name, s.name or "") for s in spawners}

    async def _scip_sweep(self, ledger: Ledger) -> None:
        if self.reconcile_interval <= 0:
            return
        last = self._scip_last_sweep.get(ledger.url)
        if last is not None and time.monotonic() - last < self.reconcile_interval:
            return
        snapshot_time = ledger.clock()
        running = self.scip_running_servers()
        if running is None:
            return
        self._scip_last_sweep[ledger.url] = time.monotonic()
        try:
            stale = await asyncio.to_thread(
                ledger.release_stale, running, snapshot_time, "the hub does not run this server"
            )
        except Exception:
            self.log.exception("Could not sweep stale allocations")
            return
        if stale:
            self.log.warning("Released %d allocation(s) of servers the hub does not run", len(stale))

    async def start(self):
        # Validation first (never trusts user_options), then the atomic reservation, then the backend.
        profile, options = self.scip_validate(self.user_options)
        self.user_options = options
        self.scip_choice = (profile, options)
        self._scip_payer = ""
        self.scip_check_data(profile, options)
        await self.scip_reserve(profile, options)
        try:
            return await super().start()
        except BaseException:
            await self.scip_release("start failed")
            raise

    def scip_check_data(self, profile: Profile, options: dict) -> None:
        """Refuse (HTTP 403 naming `project`) a spawn that would take data outside its jurisdiction.

        Backends that mount project data override this; nothing is reserved or started before it."""

    async def stop(self, now=False):
        await super().stop(now=now)
        await self.scip_release("server stopped")

    async def run_post_stop_hook(self):
        # JupyterHub calls this after every stop, also when the server had already died
        # (then stop() is not called): the reservation ends here at the latest.
        await self.scip_release("server stopped")
        result = super().run_post_stop_hook()
        if inspect.isawaitable(result):
            await result

    # --- the spawn form: profiles with cost, availability and allocation ---------------------------

    def scip_host_note(self, allowed: Sequence[Profile]) -> str:
        """A line above the choices (backends override: e.g. "this host has no GPU")."""
        return ""

    async def scip_cluster_availability(self, profiles: Sequence[Profile]) -> dict[str, int | None] | None:
        """Servers of each profile that fit on the cluster now; None when unknown (backends override)."""
        return None

    async def scip_allocation_standing(self, profiles: Sequence[Profile]) -> dict[str, tuple[bool, str]]:
        """Per profile: (account has room, what is left in words, why not); empty when accounting is off."""
        ledger = self.scip_ledger
        if ledger is None:
            return {}
        now = utcnow()
        allocations = self.scip_allocations()
        saved = getattr(self.orm_spawner, "user_options", None)
        course = saved.get("course") if isinstance(saved, dict) else None
        asks = {p.slug: self.scip_request(p, {"course": course} if course else {}, now) for p in profiles}
        keys = {a.key for _, accounts in asks.values() for a in accounts}
        since = min((a.window[0] for _, accounts in asks.values() for a in accounts), default=now)
        holdings = await asyncio.to_thread(ledger.holdings, keys, since)
        out = {}
        for slug, (request, accounts) in asks.items():
            st = standing(request, accounts, holdings, now, allocations.unlisted)
            out[slug] = (st.ok, st.text, st.reason)
        return out

    async def _scip_within(self, coro, what: str, timeout: float):
        """Await `coro` for at most `timeout` seconds; None (logged) when slower or failing.

        The work is shielded: a slow read finishes in the background (and fills its cache).
        """
        task = asyncio.ensure_future(coro)
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except asyncio.TimeoutError:
            self.log.warning("Spawn form: %s took longer than %ss; shown as unknown", what, timeout)
        except Exception as exc:
            self.log.warning("Spawn form: %s failed: %r", what, exc)
        return None

    async def scip_profile_status(self, profiles: Sequence[Profile]) -> dict[str, ProfileStatus]:
        free, standing_ = await asyncio.gather(
            self._scip_within(
                self.scip_cluster_availability(profiles), "cluster availability", self.availability_timeout
            ),
            # The ledger is the hub's own database: wait longer for it than for the cluster.
            self._scip_within(
                self.scip_allocation_standing(profiles), "allocation figures",
                max(self.availability_timeout, LEDGER_FORM_TIMEOUT),
            ),
        )
        free = free or {}
        standing_ = standing_ or {}
        out = {}
        for p in profiles:
            ok, text, why = standing_.get(p.slug, (True, "", ""))
            count = free.get(p.slug)
            reasons = [why] if not ok and why else []  # e.g. allocation exhausted
            if p.kind is not ProfileKind.cpu and count is not None and count <= 0:
                reasons.append(_("none free on the cluster now"))
            out[p.slug] = ProfileStatus(free=count, allocation=text, allocation_ok=ok, unavailable="; ".join(reasons))
        return out

    async def scip_options_form(self) -> str:
        """The spawn form: the allowed profiles with cost, free count and allocation left."""
        allowed = self.scip_allowed_profiles()
        saved = getattr(self.orm_spawner, "user_options", None)
        previous = saved.get("profile") if isinstance(saved, dict) else None
        status = await self.scip_profile_status(allowed)
        return render_spawn_form(
            allowed,
            selected=previous if isinstance(previous, str) else None,
            host_note=self.scip_host_note(allowed),
            status=status,
        )
