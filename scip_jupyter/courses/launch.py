"""The course launch link, served by the hub: `/hub/scip/course/<id>/launch?notebook=<path>`.

For a logged-in user enrolled in an active course it

1. makes sure the user is in the course's hub group (membership "at login");
2. starts their server with the course's profile, through the hub's own spawn
   page (`/hub/spawn/<user>?opt-profile=...&opt-course=<id>`), so the spawner
   validates the choice and the progress page shows; a running server is reused;
3. lands on the server extension's `/user/<name>/scip/api/course/launch`, which
   syncs the material and opens the notebook in JupyterLab.

Refusals name the reason: unknown course (404), not enrolled, course not active
(403), course allocation full (429), bad notebook path (400).

The link changes state (group membership, a server start), so only a navigation
made on the hub itself, typed or bookmarked (`Sec-Fetch-Site: same-origin` or
`none`) goes on at once; a link followed from another site shows a confirmation
page whose POST carries the hub's `_xsrf` token (cross-site request forgery).
"""

from __future__ import annotations

import datetime as dt

from jupyterhub import orm
from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httputil import url_concat

from ..config import ConfigError
from ..templating import render
from ..i18n import _
from .registry import Course, cached_registry
from .student import CourseRequestError, check_notebook


#: Sec-Fetch-Site values of a navigation the person made on the hub itself (or typed, or bookmarked).
SAME_SITE = frozenset({"same-origin", "none"})


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def running_for_course(db, course_id: str) -> int:
    """Servers running (or starting) now that were launched for this course."""
    count = 0
    for spawner in db.query(orm.Spawner).filter(orm.Spawner.server_id.isnot(None)):
        if (spawner.user_options or {}).get("course") == course_id:
            count += 1
    return count


class CourseLaunchHandler(BaseHandler):
    def initialize(self, registry_file: str):
        self.registry_file = registry_file

    def _course(self, course_id: str) -> Course:
        try:
            registry = cached_registry(self.registry_file)
        except (ConfigError, OSError) as exc:  # the operator's problem: say so, without a traceback
            self.log.error("course registry unavailable: %s", exc)
            raise web.HTTPError(503, _("course registry: unavailable now; try again later")) from None
        course = registry.get(course_id)
        if course is None:
            raise web.HTTPError(404, f"course: no course {course_id!r}")
        return course

    def _ensure_member(self, user, course: Course) -> None:
        name = course.instructors_group if course.is_instructor(user.name) else course.students_group
        group = orm.Group.find(self.db, name)
        if group is None:
            group = orm.Group(name=name, properties={"scip.course": course.id})
            self.db.add(group)
        if group not in user.orm_user.groups:
            user.orm_user.groups.append(group)
            self.log.info("course %s: added %s to group %s", course.id, user.name, name)
        self.db.commit()

    def _checked(self, course_id: str, notebook_value: str) -> tuple[Course, str]:
        """Every refusal, before anything changes: unknown course, bad notebook, not enrolled, not active."""
        user = self.current_user
        course = self._course(course_id)
        try:
            notebook = check_notebook(notebook_value)
        except CourseRequestError as exc:
            raise web.HTTPError(400, str(exc)) from None
        groups = [g.name for g in user.groups]
        if not (course.is_student(user.name, groups) or course.is_instructor(user.name)):
            raise web.HTTPError(403, f"course: you are not enrolled in {course.id}; ask its instructors")
        state = course.state(_today())
        if state != "active":
            when = f"ended on {course.end}" if state == "ended" else f"starts on {course.start}"
            raise web.HTTPError(403, f"course: {course.id} {when}; its launch link starts no server now")
        return course, notebook

    def _from_this_site(self) -> bool:
        """A navigation the person made here (the hub's own pages, the address bar, a bookmark).

        Browsers send Sec-Fetch-Site; a link on another site says `cross-site`, and
        a client that sends nothing is treated as another site too.
        """
        return self.request.headers.get("Sec-Fetch-Site", "").lower() in SAME_SITE

    @web.authenticated
    async def get(self, course_id: str):
        course, notebook = self._checked(course_id, self.get_argument("notebook", ""))
        if self._from_this_site():
            return self._launch(course, notebook)
        # The link came from elsewhere (a course website, a mail, or an attacker's page): changing
        # state on such a GET would let any site start servers, so the person confirms with a POST.
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", "frame-ancestors 'none'")
        self.set_header("X-Frame-Options", "DENY")
        self.finish(render(
            "course_launch.html", title=course.title, profile=course.default_profile, notebook=notebook,
            action=self.request.path, xsrf=self.xsrf_token.decode("ascii"),
            home=url_path_join(self.hub.base_url, "home"), css=url_path_join(self.hub.base_url, "static/css/style.min.css"),
        ))

    @web.authenticated
    async def post(self, course_id: str):
        # JupyterHub checked the _xsrf token of this cookie-authenticated POST before we run.
        course, notebook = self._checked(course_id, self.get_body_argument("notebook", ""))
        self._launch(course, notebook)

    def _launch(self, course: Course, notebook: str) -> None:
        user = self.current_user
        self._ensure_member(user, course)
        args = {"course": course.id}
        if notebook:
            args["notebook"] = notebook
        next_url = url_concat(url_path_join(user.url, "scip/api/course/launch"), args)
        spawner = user.spawner
        if spawner.ready:
            self.redirect(next_url)
            return
        if spawner.active:  # starting or stopping: the hub's pending page waits, then goes on
            self.redirect(url_concat(url_path_join(self.hub.base_url, "spawn-pending", user.escaped_name), {"next": next_url}))
            return
        limit = course.allocation.max_concurrent_servers
        if limit and running_for_course(self.db, course.id) >= limit:
            raise web.HTTPError(429, f"course: {course.id} already runs {limit} servers (allocation max_concurrent_servers); try again later")
        spawn = url_path_join(self.hub.base_url, "spawn", user.escaped_name)
        self.redirect(url_concat(spawn, {"opt-profile": course.default_profile, "opt-course": course.id, "next": next_url}))
