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

The extension also listens to the contents service's `get` events, to record
which course notebooks the student opened (the instructor view shows them).
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
from scip_jupyter.courses.student import CourseRequestError, StudentSide

log = logging.getLogger(__name__)
AUTH_RESOURCE = "contents"
SETTINGS_KEY = "scip_course_side"
CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"
#: one sync at a time per course in this server
_locks: dict[str, asyncio.Lock] = {}


def student_side(serverapp) -> StudentSide:
    settings = serverapp.web_app.settings
    if SETTINGS_KEY not in settings:
        settings[SETTINGS_KEY] = StudentSide.from_environment(root=serverapp.root_dir)
    return settings[SETTINGS_KEY]


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
        self.redirect(url_path_join(self.base_url, "lab", "tree", quote(target)))


def _listener(serverapp):
    async def on_contents_event(logger, schema_id, data):
        if data.get("action") != "get":
            return
        try:
            await asyncio.to_thread(student_side(serverapp).note_opened, str(data.get("path", "")))
        except Exception:  # progress is best effort: never break the contents service
            log.debug("course progress not recorded for %s", data.get("path"), exc_info=True)

    return on_contents_event


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
