"""This server reports its own course progress to the `scip-courses` service (courses/reports.py).

`CourseReporter.mark(course)` asks for a report; reports go out a moment later
(`delay`), so a burst of events (JupyterLab opening a notebook reads it several
times) makes one request per course. Each is `POST $SCIP_COURSES_SERVICE_URL/api/report`
with this server's own token ($JUPYTERHUB_API_TOKEN, which the hub gives
`access:services!service=scip-courses` for a course's students): the service
learns who reports from the token, never from the body. A report that fails
because the service is away (connection error, 5xx, 429) is tried again with a
growing pause (at most `max_backoff`); one the service refuses (4xx, e.g. a
course this person no longer takes) is dropped.

The reporter holds no credential of anyone else and reads only this server's
root, as this server's account.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Callable

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from scip_jupyter.courses.reports import REPORT_PATH, SERVICE_URL_ENV

log = logging.getLogger(__name__)
#: Statuses after which a report is tried again later.
RETRY_STATUSES = frozenset({429, 502, 503, 504, 599})


class CourseReporter:
    def __init__(self, url: str, token: str, report: Callable[[str], dict], delay: float = 1.0, max_backoff: float = 300.0,
                 logger: logging.Logger | None = None):
        self.url = url.rstrip("/") + "/" + REPORT_PATH
        self.log = logger or log  # the server's own log, where it has one
        self.token, self.report = token, report
        self.delay, self.max_backoff = delay, max_backoff
        self.pending: set[str] = set()
        self.sent: dict[str, int] = {}  # course -> reports the service accepted (tests count them)
        self._task: asyncio.Task | None = None

    @classmethod
    def from_environment(cls, report: Callable[[str], dict], environ=os.environ, logger=None) -> "CourseReporter | None":
        """None outside JupyterHub or without a courses service: nothing to report to."""
        url, token = environ.get(SERVICE_URL_ENV, ""), environ.get("JUPYTERHUB_API_TOKEN", "")
        return cls(url, token, report, logger=logger) if url and token else None

    def mark(self, course_id: str) -> None:
        """Report `course_id` soon (call from the server's event loop)."""
        self.pending.add(course_id)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        pause = self.delay
        while self.pending:
            await asyncio.sleep(pause)
            failed = await self.flush()
            pause = min(pause * 2, self.max_backoff) if failed else self.delay

    async def flush(self) -> bool:
        """Send every pending report now; returns True when one must be tried again."""
        failed = False
        for course_id in sorted(self.pending):
            self.pending.discard(course_id)
            if not await self._send(course_id):
                self.pending.add(course_id)
                failed = True
        return failed

    async def _send(self, course_id: str) -> bool:
        """True when done with this report (accepted, or refused for good)."""
        try:
            body = await asyncio.to_thread(self.report, course_id)
        except Exception as exc:  # the folder is unreadable now: nothing to say
            self.log.warning("course %s: no progress report: %s", course_id, exc)
            return True
        req = HTTPRequest(self.url, method="POST", body=json.dumps(body), request_timeout=30,
                          headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        try:
            await AsyncHTTPClient().fetch(req)
        except HTTPClientError as exc:
            if exc.code in RETRY_STATUSES:
                self.log.info("course %s: progress report not delivered (HTTP %s); trying again later", course_id, exc.code)
                return False
            text = exc.response.body.decode("utf-8", "replace")[:300] if exc.response is not None else ""
            self.log.warning("course %s: progress report refused (HTTP %s): %s", course_id, exc.code, text)
            return True
        except OSError as exc:  # the service is away (restarting, unreachable)
            self.log.info("course %s: progress report not delivered (%s); trying again later", course_id, exc)
            return False
        self.sent[course_id] = self.sent.get(course_id, 0) + 1
        return True

    async def close(self) -> None:
        """At shutdown: one last try for what is pending (the server's final state)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.pending:
            await self.flush()
