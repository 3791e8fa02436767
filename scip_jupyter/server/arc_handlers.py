"""`/scip/api/arc/jobs`: this notebook server's Slurm jobs, with state and cancel.

    GET    /scip/api/arc/jobs             -> {"jobs": [...], "errors": [...], "polled_at": ...}
    DELETE /scip/api/arc/jobs/<job_id>    -> 200 {"cancelled": "<job_id>"}
    POST   /scip/api/arc/jobs/<job_id>    body {"action": "cancel"} -> same as DELETE

Only this server's jobs are listed or cancelled (recorded in the registry, or
tagged for this user and server); any other id is a 404. States come from the
shared poller, so many readers cost one `squeue` per cluster per interval.

`shutdown(serverapp)` cancels every job of this server when the server stops.
"""

from __future__ import annotations

import json
import logging

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from traitlets import List, Unicode
from traitlets.config import Configurable

from scip_jupyter.arc.registry import JobRegistry
from scip_jupyter.arc.server_jobs import JOB_ID_HELP, NotThisServersJob, ServerJobs, check_job_id, preset_transport, summary
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.i18n import LANGUAGE_COOKIE, _, negotiate, set_locale

log = logging.getLogger(__name__)
SETTINGS_KEY = "scip_arc_jobs"
#: Jupyter's authorization resource: cancelling compute a kernel started is kernel control.
AUTH_RESOURCE = "kernels"


class ARCServerSettings(Configurable):
    """Settings of the ARC part of the server extension."""

    presets = List(
        Unicode(),
        config=True,
        help="""Presets whose clusters are searched for this server's jobs by tag, even when
        the registry records none there (the registry's own presets are always searched).
        Only list clusters this server can reach cheaply: the shutdown hook asks each one.
        Example: c.ARCServerSettings.presets = ["local-slurm"]""",
    )


def server_jobs(serverapp) -> ServerJobs:
    """The one ServerJobs of this server (created on first use)."""
    settings = serverapp.web_app.settings
    if SETTINGS_KEY not in settings:
        settings[SETTINGS_KEY] = ServerJobs(
            tags=JobTags.from_environment(),
            registry=JobRegistry.default(),
            transport_for=preset_transport,
            presets=ARCServerSettings(config=serverapp.config).presets,
            config=serverapp.config,
        )
    return settings[SETTINGS_KEY]


class _ARCHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    async def prepare(self):
        # Errors and Slurm's failures in the person's language, as the hub's pages choose it.
        set_locale(negotiate(self.request.headers.get("Accept-Language"), self.get_cookie(LANGUAGE_COOKIE)))
        return await super().prepare()

    @property
    def jobs(self) -> ServerJobs:
        return server_jobs(self.serverapp)


class JobsHandler(_ARCHandler):
    @web.authenticated
    @authorized
    async def get(self):
        views = await self.jobs.list()
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(summary(views)))


class JobHandler(_ARCHandler):
    @web.authenticated
    @authorized
    async def delete(self, job_id: str):
        await self._cancel(job_id)

    @web.authenticated
    @authorized
    async def post(self, job_id: str):
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError):
            raise web.HTTPError(400, _("body: not JSON; send {example}").format(example='{"action": "cancel"}')) from None
        action = body.get("action") if isinstance(body, dict) else None
        if action != "cancel":
            raise web.HTTPError(400, _("action: {action} is not allowed; allowed: {allowed}").format(
                action=repr(action), allowed="'cancel'"))
        await self._cancel(job_id)

    async def _cancel(self, job_id: str):
        try:
            job_id = check_job_id(job_id)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        try:
            await self.jobs.cancel(job_id)
        except NotThisServersJob as exc:
            raise web.HTTPError(404, str(exc)) from None
        except Exception as exc:  # Slurm unreachable: the message names the cluster and what to check
            raise web.HTTPError(503, str(exc)) from None
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"cancelled": job_id}))


def handlers(serverapp):
    return [
        ("arc/jobs", JobsHandler, {}),
        # any path segment reaches the handler, so a malformed id gets a 400 naming the field
        (r"arc/jobs/([^/]+)", JobHandler, {}),
    ]


async def shutdown(serverapp):
    """Cancel every Slurm job this notebook server started (registry + tags)."""
    jobs = server_jobs(serverapp)
    done = await jobs.cancel_all()
    count = sum(len(v) for v in done.values())
    serverapp.log.info("scip_jupyter.server: cancelled %d Slurm job(s) of %s/%s: %s", count, jobs.tags.user, jobs.tags.server, done)


__all__ = ["handlers", "shutdown", "JOB_ID_HELP"]
