"""The home page and the language switcher, served by the hub (extra handlers, hub/ templates).

    /hub/scip/home                         the person's home: courses, server, allocation, Slurm jobs
    /hub/scip/language/<en|fr>?next=<path> remember a language choice (cookie), go back
    /hub/scip/jobs/<preset>/<id>/cancel    POST (xsrf): cancel one of the person's Slurm jobs

The page extends the hub's own `page.html` (our translated copy in
templates/hub/), so it looks and navigates like the hub. Each section is
gathered with a time bound: a slow or absent part (Slurm not running, a git
course being fetched) shows as unavailable with its reason, the page still
answers. The models are the hub's own (course registry, allocation ledger,
ARC job states); model.py turns them into plain data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web

from ..i18n import LANGUAGE_COOKIE, LANGUAGES, _, current
from . import model

log = logging.getLogger("scip.home")

#: Seconds each section may take before it shows as unavailable.
SECTION_TIMEOUT = 5.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def safe_next(value: str | None, default: str) -> str:
    """A local path to go back to (never another site).

    >>> safe_next("/hub/scip/home", "/"), safe_next("https://evil.example/", "/"), safe_next("//evil", "/")
    ('/hub/scip/home', '/', '/')
    """
    if not value:
        return default
    parsed = urlparse(value)
    if parsed.scheme or parsed.netloc or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


async def _bounded(coro, what: str):
    """(value, "") or (None, why) when `coro` fails or is slower than SECTION_TIMEOUT."""
    try:
        return await asyncio.wait_for(coro, SECTION_TIMEOUT), ""
    except asyncio.TimeoutError:
        return None, _("%(what)s did not answer within %(s)s s") % {"what": what, "s": f"{SECTION_TIMEOUT:g}"}
    except Exception as exc:  # shown to the person (escaped); the log has the detail
        log.warning("home page: %s failed: %r", what, exc)
        return None, str(exc) or type(exc).__name__


class _ScipPage(BaseHandler):
    def initialize(self, **settings):
        self.scip = settings

    def slurm_account(self, user) -> str:
        """The account Slurm runs this person's jobs as: their spawner's (`jupyter-NAME` on the
        embedded hub, identity.py), else SCIPCredentials' account mapping. Ownership is decided by it."""
        from ..identity_hub import SCIPCredentials

        try:
            return SCIPCredentials(config=self.settings.get("config")).account_of(user) or ""
        except Exception as exc:  # no account: no jobs are listed as theirs (never tags alone)
            log.warning("home page: no Slurm account for %s: %r", user.name, exc)
            return ""


class HomeHandler(_ScipPage):
    @web.authenticated
    async def get(self):
        user = self.current_user
        groups = [g.name for g in user.groups]
        now = _now()
        (courses, courses_error), (server, allocations, chart, allocation_error), (jobs, jobs_error), (
            gpu_notices, _why) = await asyncio.gather(
                _bounded(self._courses(user, groups), _("The course registry")),
                self._server_and_allocation(user, groups, now),
                _bounded(self._jobs(user, now), _("Slurm")),
                _bounded(self._gpu_notices(user), _("The GPU notices")),
            )
        if jobs is None:
            jobs = model.JobsSection(unavailable={p: jobs_error for p in self.scip["presets"]})
        html = await self.render_template(
            "scip_home.html",
            courses=courses or [],
            courses_error=courses_error,
            server=server,
            allocations=allocations,
            chart=chart,
            allocation_error=allocation_error,
            jobs=jobs,
            words=model.state_words(),
            spawn_url=url_path_join(self.hub.base_url, "spawn", user.escaped_name),
            cancel_base=url_path_join(self.hub.base_url, "scip", "jobs"),
            instructor_url=self._instructor_url(user),
            notice=self.get_argument("notice", "") == "cancelled",
            gpu_notices=gpu_notices or [],
        )
        self.finish(html)

    def _instructor_url(self, user) -> str:
        if not self.scip.get("registry_file"):
            return ""
        from ..courses.registry import cached_registry

        try:
            registry = cached_registry(self.scip["registry_file"])
        except Exception:
            return ""
        if any(c.is_instructor(user.name) for c in registry.courses) or user.admin:
            return url_path_join(self.base_url, "services", "scip-courses") + "/"
        return ""

    # --- courses ------------------------------------------------------------------------------------

    async def _courses(self, user, groups) -> list[model.CourseCard]:
        """The person's courses, each with the material version their own server last reported.

        One source on both hubs: the report store the `scip-courses` service keeps
        beside the hub's database (courses/reports.py), never the person's folder
        (the chart's hub pod mounts no home). A store that cannot be read in time
        leaves the cards with the reason; the page still answers.
        """
        registry_file = self.scip.get("registry_file")
        if not registry_file:
            return []
        from ..courses.ops import current_snapshot
        from ..courses.registry import cached_registry

        registry = cached_registry(registry_file)
        courses = registry.courses_for(user.name, groups)
        if not courses:
            return []
        reports, reports_error = await _bounded(asyncio.to_thread(self._own_reports, user.name),
                                                _("The course progress reports"))
        cards = []
        for course in courses:
            launch = url_path_join(self.hub.base_url, "scip", "course", course.id, "launch")
            snap, error = None, reports_error
            try:
                snap = await asyncio.to_thread(current_snapshot, registry, course)
            except Exception as exc:
                error = str(exc)
            report, reported_at = (reports or {}).get(course.id, (None, ""))
            cards.append(model.course_card(course, launch, snap.version if snap else "", report, reported_at, error))
        return cards

    def _report_store_path(self) -> str:
        """The store the courses service writes: its own $SCIP_COURSE_REPORTS (courses.hub.configure
        puts it beside the hub's database, in this process's reach on both hubs)."""
        from ..courses.hub import SERVICE_NAME
        from ..courses.reports import REPORTS_ENV

        service = self.services.get(SERVICE_NAME)
        return str((getattr(service, "environment", None) or {}).get(REPORTS_ENV, ""))

    def _own_reports(self, username: str) -> dict:
        """course -> (report, reported_at) of this person only, read-only; {} before any report."""
        import sqlite3

        from ..courses.reports import ReportStore

        path = self._report_store_path()
        if not path:
            return {}
        try:
            return ReportStore(Path(path), timeout=2.0).for_student(username)
        except sqlite3.Error as exc:  # the log has the detail (the store's path), the page the words
            log.warning("home page: the course report store %s failed: %r", path, exc)
            raise RuntimeError(_("the progress reports cannot be read now")) from None

    # --- server and allocation ----------------------------------------------------------------------

    def _ledger(self):
        if not (self.scip.get("allocations_path") and self.scip.get("ledger_url")):
            return None
        from ..allocations.ledger import ledger_for

        return ledger_for(self.scip["ledger_url"])

    async def _server_and_allocation(self, user, groups, now):
        spawner = user.spawner
        if spawner.ready:
            state = "running"
        elif spawner.pending == "spawn":
            state = "starting"
        elif spawner.pending == "stop":
            state = "stopping"
        else:
            state = "stopped"
        options = spawner.user_options or {}
        slug = options.get("profile", "") if isinstance(options, dict) else ""
        name = slug
        if slug and self.scip.get("catalog_path"):
            try:
                from ..spawners.base import cached_catalog

                profile = cached_catalog(self.scip["catalog_path"]).get(slug)
                name = profile.name_in(current()) if profile else slug
            except Exception:
                pass
        started = spawner.orm_spawner.started if spawner.orm_spawner is not None else None
        holding, allocations, chart, error = None, [], [], ""
        if self.scip.get("allocations_path") and self.scip.get("ledger_url"):
            result, error = await _bounded(asyncio.to_thread(self._allocation_data, user, groups, now),
                                           _("The allocation ledger"))
            if result is not None:
                holding, allocations, chart = result
        return model.server_card(state, name, slug, started, holding, now, user.url), allocations, chart, error

    def _allocation_data(self, user, groups, now):
        """What the page shows of the allocation; a ledger that cannot be read says why in words
        (its database's own error names its host and port: the log has it, the page does not)."""
        from ..allocations.ledger import unavailable_reason

        try:
            return self._allocation_figures(self._ledger(), user, groups, now)
        except Exception as exc:
            from sqlalchemy.exc import SQLAlchemyError

            if not isinstance(exc, SQLAlchemyError):
                raise
            log.warning("home page: the allocation ledger failed: %r", exc)
            raise RuntimeError(_("The allocation ledger is not available now ({reason})").format(
                reason=unavailable_reason(exc))) from None

    def _allocation_figures(self, ledger, user, groups, now):
        from ..allocations.policy import course_account, group_account
        from ..allocations.quotas import cached_allocations

        allocations = cached_allocations(self.scip["allocations_path"])
        accounts = [
            (group_account(name, quota, allocations.period, now), quota.description)
            for name, quota in allocations.groups.items() if name in groups
        ]
        if self.scip.get("registry_file"):
            from ..courses.registry import cached_registry

            for course in cached_registry(self.scip["registry_file"]).courses_for(user.name, groups):
                if course.is_active(now.date()):
                    accounts.append((course_account(course), course.title))
        since = min([a.window[0] for a, _d in accounts] + [now - dt.timedelta(days=model.CHART_DAYS)])
        holdings = ledger.holdings({a.key for a, _d in accounts}, since) if accounts else []
        active = [h for h in ledger.active() if h.user == user.name and h.server == ""]
        mine = [h for h in holdings if h.user == user.name] + [h for h in active if h not in holdings]
        cards = [model.allocation_card(a, holdings, user.name, now, d) for a, d in accounts]
        chart = model.chart_bars(model.daily_hours(mine, user.name, now))
        return (active[0] if active else None), cards, chart

    # --- GPU notices (scip-gpu: idle GPU about to be stopped, allocation at 90% or exhausted) ----------

    async def _gpu_notices(self, user) -> list[str]:
        """The person's open GPU notices, as sentences in the request's language (scip_jupyter/culling)."""
        if not self.scip.get("ledger_url"):
            return []
        from ..culling.notices import open_notice_texts

        # to_thread copies the context: the sentences are in the request's language
        return await asyncio.to_thread(open_notice_texts, self.scip["ledger_url"], user.name)

    # --- Slurm jobs ---------------------------------------------------------------------------------

    async def _jobs(self, user, now) -> model.JobsSection:
        section = model.JobsSection()
        account = self.slurm_account(user)
        why = self.scip.get("arc_unavailable", "")
        for preset in self.scip["presets"]:
            if why:
                section.unavailable[preset] = why
                continue
            try:
                jobs = await queue(preset)
            except Exception as exc:
                section.unavailable[preset] = str(exc) or type(exc).__name__
                continue
            section.rows += model.job_rows(preset, jobs, user.name, account, now)
        return section


#: preset -> (monotonic time, jobs): one squeue of every account per cluster, shared by all pages.
_queues: dict[str, tuple[float, list]] = {}
QUEUE_MAX_AGE = 10.0


async def queue(preset: str, fresh: bool = False) -> list:
    """Every account's jobs on the preset's cluster (cached QUEUE_MAX_AGE s), through the ARC transport."""
    import time

    from ..arc.server_jobs import preset_transport
    from ..arc.states import parse_squeue, squeue_argv

    cached = _queues.get(preset)
    if cached and not fresh and time.monotonic() - cached[0] < QUEUE_MAX_AGE:
        return cached[1]
    text = await preset_transport(preset).run(squeue_argv(), timeout=SECTION_TIMEOUT)
    jobs = parse_squeue(text)
    _queues[preset] = (time.monotonic(), jobs)
    return jobs


class CancelJobHandler(_ScipPage):
    """Cancel one of the person's jobs (a POST from the home page; the xsrf check is the hub's)."""

    @web.authenticated
    async def post(self, preset: str, job_id: str):
        from ..arc.server_jobs import check_job_id, preset_transport
        from ..arc.states import scancel_argv

        user = self.current_user
        if preset not in self.scip["presets"]:
            raise web.HTTPError(404, _("cluster: no cluster %(name)s") % {"name": repr(preset[:60])})
        try:
            job_id = check_job_id(job_id)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        rows = model.job_rows(preset, await queue(preset, fresh=True), user.name, self.slurm_account(user), _now())
        if job_id not in {r.cancel_id for r in rows} | {r.job_id for r in rows}:
            raise web.HTTPError(403, _("job_id: %(id)s is not one of your jobs on %(preset)s") % {
                "id": job_id, "preset": preset})
        await preset_transport(preset).run(scancel_argv([job_id]), timeout=30)
        _queues.pop(preset, None)
        self.log.info("home page: %s cancelled job %s on %s", user.name, job_id, preset)
        self.redirect(url_path_join(self.hub.base_url, "scip", "home") + "?notice=cancelled")


class LanguageHandler(BaseHandler):
    """Remember the person's language (a cookie for a year) and go back where they were."""

    def get(self, language: str):
        if language not in LANGUAGES:
            raise web.HTTPError(404)
        self.set_cookie(LANGUAGE_COOKIE, language, expires_days=365, path=self.base_url, samesite="Lax")
        self.redirect(safe_next(self.get_argument("next", ""), url_path_join(self.hub.base_url, "scip", "home")))


def language_links(request_uri: str, base_url: str) -> list[dict]:
    """The switcher's links: each language, in its own name, back to this page."""
    names = {"en": "English", "fr": "Français"}
    here = current()
    return [
        {"lang": lang, "name": names[lang], "current": lang == here,
         "href": url_path_join(base_url, "scip", "language", lang) + "?next=" + _quote(request_uri)}
        for lang in LANGUAGES
    ]


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="/")
