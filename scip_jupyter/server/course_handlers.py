"""`/scip/api/course/...`: course material in this notebook server.

    GET  /scip/api/course                          -> {"courses": [...]} taken or taught by this user
    GET  /scip/api/course/status?course=ID         -> version delivered/current, update available,
                                                      pending changes, edits, notebooks opened/executed
    POST /scip/api/course/sync    {"course": ID}   -> what the sync did (student edits are never lost)
    POST /scip/api/course/reset   {"course": ID}   -> folder moved to a backup, material delivered afresh
    GET  /scip/api/course/launch?course=ID&notebook=PATH
                                                   -> sync, then redirect to JupyterLab on the notebook

All are authenticated (the hub's OAuth or token) and authorized on the
`contents` resource. Sync and reset may be done by the server's owner or by an
instructor of the course (JupyterHub only lets an instructor reach a student's
server through the course role's `access:servers!group=...` scope). The registry
is `$SCIP_COURSES_FILE`; the material lands in `<root>/courses/<id>/`.

The extension also listens to the contents service's events: a `get` of a
course notebook records that the student opened it, and any change under
`courses/<id>/` (as after a sync, reset or launch, and when the server starts
and stops) sends this server's progress report to the `scip-courses` service
(course_reports.py), where the course's instructors see it on both hubs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from scip_jupyter.config import ConfigError
from scip_jupyter.i18n import _
from scip_jupyter.courses.student import CourseRequestError, StudentSide, course_path
from scip_jupyter.server.course_reports import CourseReporter

log = logging.getLogger(__name__)
AUTH_RESOURCE = "contents"
SETTINGS_KEY = "scip_course_side"
REPORTER_KEY = "scip_course_reporter"
CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"
#: one sync at a time per course in this server
_locks: dict[str, asyncio.Lock] = {}


def student_side(serverapp) -> StudentSide:
    settings = serverapp.web_app.settings
    if SETTINGS_KEY not in settings:
        settings[SETTINGS_KEY] = StudentSide.from_environment(root=serverapp.root_dir)
    return settings[SETTINGS_KEY]


def reporter(serverapp) -> CourseReporter | None:
    """This server's progress reporter (None when there is no courses service to report to)."""
    settings = serverapp.web_app.settings
    if REPORTER_KEY not in settings:
        settings[REPORTER_KEY] = CourseReporter.from_environment(lambda course: student_side(serverapp).report(course),
                                                                 logger=serverapp.log)
    return settings[REPORTER_KEY]


def _report(serverapp, course_id: str) -> None:
    found = reporter(serverapp)
    if found is not None:
        found.mark(course_id)


def _who(handler) -> str:
    user = handler.current_user
    return getattr(user, "username", "") or getattr(user, "name", "") or ""


def _groups(handler) -> list[str]:
    hub_user = getattr(handler.current_user, "hub_user", None) or {}
    groups = hub_user.get("groups") or []
    return [g for g in groups if isinstance(g, str)]


class _CourseMixin:
    auth_resource = AUTH_RESOURCE

    @property
    def side(self) -> StudentSide:
        try:
            return student_side(self.serverapp)
        except (ConfigError, OSError) as exc:  # the operator's problem, not the request's
            log.error("course registry unavailable: %s", exc)
            raise web.HTTPError(503, _("course registry: unavailable now; ask the course's instructors")) from None

    async def _run(self, fn, *args):
        try:
            return await asyncio.to_thread(fn, *args)
        except CourseRequestError as exc:
            raise web.HTTPError(exc.status, str(exc), reason="Bad course request") from None
        except ConfigError as exc:
            log.error("course registry unavailable: %s", exc)
            raise web.HTTPError(503, _("course registry: unavailable now; ask the course's instructors")) from None
        except (OSError, RuntimeError) as exc:
            log.error("course material unavailable: %s", exc)
            raise web.HTTPError(503, _("course material: unavailable now ({problem})").format(problem=str(exc)[:200])) from None

    def _course_id(self, value) -> str:
        if not isinstance(value, str) or not value:
            raise web.HTTPError(400, "course: required (a course id)")
        return value

    async def _managed(self, course_id: str, fn) -> dict:
        course = await self._run(self.side.course, course_id)
        who = _who(self)
        if not self.side.may_manage(who, course):
            raise web.HTTPError(403, f"course: {who} is neither the owner of this server nor an instructor of {course.id}")
        lock = _locks.setdefault(course.id, asyncio.Lock())
        async with lock:
            result = await self._run(fn, course.id)
        _report(self.serverapp, course.id)
        log.info("course %s: %s for %s by %s: %s", course.id, fn.__name__, self.side.username, who, result.get("summary"))
        return result

    def _body_course(self) -> str:
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError):  # RecursionError: a body nested thousands deep
            raise web.HTTPError(400, "body: must be JSON like {\"course\": \"<id>\"}") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "body: must be a JSON object like {\"course\": \"<id>\"}")
        unknown = sorted(set(body) - {"course"})
        if unknown:
            raise web.HTTPError(400, f"{unknown[0]}: unknown field; allowed: course")
        return self._course_id(body.get("course"))


class CoursesHandler(_CourseMixin, APIHandler):
    @web.authenticated
    @authorized
    async def get(self):
        courses = await self._run(self.side.courses, _groups(self))
        self.finish({"courses": courses})


class StatusHandler(_CourseMixin, APIHandler):
    @web.authenticated
    @authorized
    async def get(self):
        course_id = self._course_id(self.get_argument("course", ""))
        self.finish(await self._run(self.side.status, course_id))


class SyncHandler(_CourseMixin, APIHandler):
    @web.authenticated
    @authorized
    async def post(self):
        self.finish(await self._managed(self._body_course(), self.side.sync))


class ResetHandler(_CourseMixin, APIHandler):
    @web.authenticated
    @authorized
    async def post(self):
        self.finish(await self._managed(self._body_course(), self.side.reset))


class LaunchHandler(_CourseMixin, JupyterHandler):
    """Where the hub's launch link lands once the server runs: sync, then open the notebook."""

    @web.authenticated
    @authorized(action="write")
    async def get(self):
        course_id = self._course_id(self.get_argument("course", ""))
        notebook = self.get_argument("notebook", "")
        course = await self._run(self.side.course, course_id)
        if self.side.username and _who(self) != self.side.username:
            raise web.HTTPError(403, "course: launch links open only in your own server")
        lock = _locks.setdefault(course.id, asyncio.Lock())
        async with lock:
            _, target = await self._run(self.side.launch, course.id, notebook)
        _report(self.serverapp, course.id)
        self.redirect(url_path_join(self.base_url, "lab", "tree", quote(target)))


def _listener(serverapp):
    async def on_contents_event(logger, schema_id, data):
        paths = [str(data.get(key) or "") for key in ("path", "source_path")]
        courses = {where[0] for where in map(course_path, paths) if where is not None}
        if not courses:
            return
        try:
            if data.get("action") == "get" and not await asyncio.to_thread(student_side(serverapp).note_opened, paths[0]):
                return  # a read that changed nothing (not a course notebook)
            for course_id in sorted(courses):
                _report(serverapp, course_id)
        except Exception:  # progress is best effort: never break the contents service
            log.debug("course progress not recorded for %s", data.get("path"), exc_info=True)

    return on_contents_event


async def start(serverapp):
    """Report every course delivered here: the service learns this server's state at each start."""
    if reporter(serverapp) is None:
        return
    try:
        present = await asyncio.to_thread(student_side(serverapp).present)
    except (ConfigError, OSError) as exc:
        log.warning("course progress not reported at start: %s", exc)
        return
    for course_id in present:
        _report(serverapp, course_id)


async def shutdown(serverapp):
    found = serverapp.web_app.settings.get(REPORTER_KEY)
    if found is not None:
        await found.close()


def handlers(serverapp):
    event_logger = getattr(serverapp, "event_logger", None)
    if event_logger is not None:
        event_logger.add_listener(schema_id=CONTENTS_EVENTS, listener=_listener(serverapp))
    return [
        ("course", CoursesHandler, {}),
        ("course/status", StatusHandler, {}),
        ("course/sync", SyncHandler, {}),
        ("course/reset", ResetHandler, {}),
        ("course/launch", LaunchHandler, {}),
    ]
