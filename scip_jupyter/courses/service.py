"""The `scip-courses` hub service: instructor view, CSV export, course groups kept in step.

Started by JupyterHub (a managed service, see hub.py `configure`) as
`python -m scip_jupyter.courses.service`, reachable at `/services/scip-courses/`:

    /services/scip-courses/                  courses the signed-in instructor teaches
    /services/scip-courses/course/<id>       per student: server, last activity, material version,
                                             update available, edited files, notebooks opened/executed,
                                             and the launch links
    /services/scip-courses/course/<id>.csv   the same as CSV
    POST /services/scip-courses/api/report   a student's own server reports its course folder

Sign-in is the hub's OAuth; only the course's instructors (and hub admins)
see a course. Every `SCIP_COURSE_GROUP_SYNC` seconds (default 30) the service
brings the course groups in line with the registry through the hub's REST
API, so a registry edit takes effect without a hub restart.

Progress comes from the students' own servers (reports.py), the same way on
the embedded hub and on Kubernetes, where the students' home volumes are not
mounted in the hub pod: the service never reads a student's files. It keeps
each student's last report with its time ($SCIP_COURSE_REPORTS, a SQLite file),
so a stopped server shows its last known progress.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from urllib.parse import quote, urlencode, urlparse

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.ioloop import IOLoop, PeriodicCallback

from ..config import ConfigError
from ..i18n import LANGUAGE_COOKIE, negotiate, set_locale
from ..i18n import _
from ..signals import stop_on_signals
from .cli import launch_url
from .ops import current_snapshot, today
from .registry import COURSES_ENV, Course, Registry, cached_registry
from .reports import DEFAULT_STORE_NAME, REPORT_PATH, REPORTS_ENV, ReportError, ReportStore, parse_report, status_from_report
from .view import group_changes, make_rows, render_course, render_csv, render_index

log = logging.getLogger("scip.courses.service")
SYNC_ENV = "SCIP_COURSE_GROUP_SYNC"


class HubAPI:
    """The few hub REST calls the service makes, with its own token."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url.rstrip("/"), token
        self.client = AsyncHTTPClient()

    async def call(self, method: str, path: str, body=None):
        req = HTTPRequest(
            self.url + path, method=method,
            headers={"Authorization": f"token {self.token}", "Accept": "application/jupyterhub-pagination+json"},
            body=None if body is None else json.dumps(body), allow_nonstandard_methods=True, request_timeout=30,
        )
        resp = await self.client.fetch(req)
        return json.loads(resp.body) if resp.body else None

    async def users(self) -> dict[str, dict]:
        out, offset = {}, 0
        while True:
            page = await self.call("GET", f"/users?offset={offset}&limit=200")
            items = page["items"] if isinstance(page, dict) else page
            for u in items:
                out[u["name"]] = u
            if isinstance(page, dict) and page.get("_pagination", {}).get("next"):
                offset += len(items)
                continue
            return out

    async def user_exists(self, name: str) -> bool:
        """Whether the hub knows `name`, without listing everyone (and without a 404 in the hub's log).

        `name_filter` matches a substring (SQL LIKE), so the pages are searched for the exact name.
        """
        offset = 0
        while True:
            page = await self.call("GET", f"/users?{urlencode({'name_filter': name, 'offset': offset, 'limit': 200})}")
            items = page["items"] if isinstance(page, dict) else page
            if any(u["name"] == name for u in items):
                return True
            if not (isinstance(page, dict) and page.get("_pagination", {}).get("next")):
                return False
            offset += len(items)

    async def groups(self) -> dict[str, list[str]]:
        out, offset = {}, 0
        while True:
            page = await self.call("GET", f"/groups?offset={offset}&limit=200")
            items = page["items"] if isinstance(page, dict) else page
            for g in items:
                out[g["name"]] = list(g.get("users", []))
            if isinstance(page, dict) and page.get("_pagination", {}).get("next"):
                offset += len(items)
                continue
            return out


#: At most this many names are looked up one by one in a pass; more, and the pass lists every user once.
LOOKUP_LIMIT = 50


def add_candidates(desired: dict[str, list[str]], groups: dict[str, list[str]]) -> set[str]:
    """Names a pass would add to a course group, if the hub knows them (members of any group it does).

    >>> sorted(add_candidates({"g": ["a", "b", "c"]}, {"g": ["a"], "h": ["b"]}))
    ['c']
    """
    wanted = set()
    for group, users in desired.items():
        wanted |= set(users) - set(groups.get(group, ()))
    return wanted - {u for users in groups.values() for u in users}


async def known_users(api: HubAPI, desired: dict[str, list[str]], groups: dict[str, list[str]]) -> set[str]:
    """The users `group_changes` needs to know exist: group members, plus the add candidates the hub knows.

    A pass in step (nothing to add) makes no user request; a few candidates are
    looked up by name; only many make it list every user (the hub builds each
    person's whole model for that, which at thousands of people every 30 s is
    hub CPU spent for nothing).
    """
    members = {u for users in groups.values() for u in users}
    candidates = add_candidates(desired, groups)
    if len(candidates) > LOOKUP_LIMIT:
        return members | set(await api.users())
    return members | {name for name in sorted(candidates) if await api.user_exists(name)}


async def sync_groups(api: HubAPI, registry: Registry) -> list:
    """One pass: make every course group hold exactly the registry's members. Returns the changes made."""
    from .hub import desired_members

    groups = await api.groups()
    desired = desired_members(registry, groups)
    changes = group_changes(desired, groups, await known_users(api, desired, groups))
    for ch in changes:
        path = f"/groups/{quote(ch.group)}"
        if ch.action == "create":
            await api.call("POST", path, {})
        elif ch.action == "add":
            await api.call("POST", path + "/users", {"users": list(ch.users)})
        else:
            await api.call("DELETE", path + "/users", {"users": list(ch.users)})
        log.info("course groups: %s %s %s", ch.action, ch.group, ", ".join(ch.users))
    return changes


class _Base(HubOAuthenticated, web.RequestHandler):
    def prepare(self):
        # Each request in the person's language: their choice (the hub's scip-lang cookie) or Accept-Language.
        set_locale(negotiate(self.request.headers.get("Accept-Language"), self.get_cookie(LANGUAGE_COOKIE)))

    def page(self) -> dict:
        """What the hub-styled layout needs: the hub's prefix, the language switcher, who is signed in."""
        from ..home.handlers import language_links

        hub_prefix = os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/"
        return {"hub_prefix": hub_prefix, "language_links": language_links(self.request.uri or "/", hub_prefix)}

    @property
    def registry(self) -> Registry:
        try:
            return cached_registry(self.settings["registry_file"])
        except (ConfigError, OSError) as exc:
            log.error("course registry unavailable: %s", exc)
            raise web.HTTPError(503, _("course registry: unavailable now; try again later")) from None

    def who(self) -> dict:
        return self.get_current_user() or {}

    def taught(self) -> list[Course]:
        user = self.who()
        return [c for c in self.registry.courses if user.get("admin") or c.is_instructor(user.get("name", ""))]

    def course_for_instructor(self, course_id: str) -> Course:
        course = self.registry.get(course_id)
        if course is None:
            raise web.HTTPError(404, f"course: no course {course_id!r}")
        if course not in self.taught():
            raise web.HTTPError(403, f"course: {self.who().get('name')} does not teach {course.id}")
        return course

    async def table(self, course: Course):
        api: HubAPI = self.settings["hub_api"]
        users = await api.users()
        groups = await api.groups()
        names = course.student_names(groups)
        snap = await asyncio.to_thread(current_snapshot, self.registry, course)
        store: ReportStore = self.settings["store"]
        reports = await asyncio.to_thread(store.for_course, course.id)
        statuses = [status_from_report(n, course.id, *reports.get(n, (None, "")), snap.files, snap.version) for n in names]
        notebooks = sorted(p for p in snap.files if p.endswith(".ipynb"))
        return snap, notebooks, make_rows(statuses, users)


class IndexHandler(_Base):
    @web.authenticated
    def get(self):
        courses = [
            {"id": c.id, "title": c.title, "state": c.state(today()), "start": c.start, "end": c.end,
             "students": ", ".join([*c.students.users, *(f"group {g}" for g in c.students.groups)])}
            for c in self.taught()
        ]
        self.finish(render_index(courses, self.who().get("name", ""), self.settings["prefix"], **self.page()))


class CourseHandler(_Base):
    @web.authenticated
    async def get(self, course_id: str):
        course = self.course_for_instructor(course_id)
        snap, notebooks, rows = await self.table(course)
        public = self.settings["public_url"]
        links = [("course", launch_url(public, course.id))] + [(nb, launch_url(public, course.id, nb)) for nb in notebooks]
        self.finish(render_course(course, course.state(today()), snap.version, notebooks, rows, links,
                                  self.settings["prefix"], user=self.who().get("name", ""), **self.page()))


class CSVHandler(_Base):
    @web.authenticated
    async def get(self, course_id: str):
        course = self.course_for_instructor(course_id)
        snap, notebooks, rows = await self.table(course)
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{course.id}-progress.csv"')
        self.finish(render_csv(snap.version, notebooks, rows))


class ReportHandler(_Base):
    """A student's own server reports its course folder; kept as that student's last report.

    Who reports is the token's owner (the server's own token), never a field of
    the body; only a user enrolled as a student of the course may report for it.
    Refusals are JSON {"status", "field", "problem", "allowed", "message"}.
    """

    def refuse(self, exc: ReportError) -> None:
        self.set_status(exc.status)
        self.finish({"status": exc.status, "field": exc.field, "problem": exc.problem, "allowed": exc.allowed,
                     "message": str(exc)})

    @web.authenticated
    async def post(self):
        who = self.who()
        name = who.get("name", "")
        try:
            if who.get("kind", "user") != "user":
                raise ReportError("token", _("belongs to {kind} {name}: only a student's own server reports progress").format(
                    kind=who.get("kind"), name=name), status=403)
            report = parse_report(self.request.body)
            course = self.registry.get(report.course)
            if course is None:
                raise ReportError("course", _("no course {course} in the registry").format(course=repr(report.course)),
                                  status=404)
            model = await self.settings["hub_api"].call("GET", f"/users/{quote(name, safe='')}")
            groups = [g for g in (model or {}).get("groups", []) if isinstance(g, str)]
            if not course.is_student(name, groups) or course.is_instructor(name):
                raise ReportError("course", _("{name} is not a student of {course}").format(name=name, course=course.id),
                                  status=403)
        except ReportError as exc:
            return self.refuse(exc)
        stamp = await asyncio.to_thread(self.settings["store"].put, name, report)
        self.finish({"course": report.course, "username": name, "reported_at": stamp})


def make_app(registry_file: str, store: ReportStore, public_url: str) -> web.Application:
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/scip-courses/")
    api = HubAPI(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    return web.Application(
        [
            (prefix, IndexHandler),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
            (url_path_join(prefix, REPORT_PATH), ReportHandler),
            (url_path_join(prefix, r"course/([a-z0-9-]+)\.csv"), CSVHandler),
            (url_path_join(prefix, r"course/([a-z0-9-]+)"), CourseHandler),
        ],
        cookie_secret=os.urandom(32),
        hub_auth=HubOAuth(),
        hub_api=api,
        registry_file=registry_file,
        store=store,
        public_url=public_url or "",
        prefix=prefix,
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s scip-courses] %(message)s")
    registry_file = os.environ[COURSES_ENV]
    store = ReportStore(Path(os.environ.get(REPORTS_ENV) or DEFAULT_STORE_NAME).resolve())
    public = os.environ.get("SCIP_PUBLIC_URL") or os.environ.get("JUPYTERHUB_PUBLIC_URL", "")
    app = make_app(registry_file, store, public)
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    app.listen(url.port, url.hostname or "127.0.0.1")
    log.info("listening on %s:%s, registry %s, progress reports in %s", url.hostname, url.port, registry_file, store.path)

    async def group_pass():
        try:
            await sync_groups(app.settings["hub_api"], cached_registry(registry_file))
        except (ConfigError, HTTPClientError, OSError) as exc:  # keep serving; try again next pass
            log.warning("course groups not synced: %s", exc)

    interval = float(os.environ.get(SYNC_ENV, "30"))
    IOLoop.current().add_callback(group_pass)
    PeriodicCallback(group_pass, interval * 1000).start()
    stop_on_signals()  # the hub stops its services with SIGINT, then SIGTERM
    try:
        IOLoop.current().start()
    except KeyboardInterrupt:
        log.info("stopping")


if __name__ == "__main__":
    main()
