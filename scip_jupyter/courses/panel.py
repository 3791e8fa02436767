"""The student's course panel model: material version, update available, sync.

The view is `scip_widgets.course_panel.CoursePanel`; this model does the work
through a backend:

- `ServerBackend` calls this notebook server's `/scip/api/course/...` endpoints
  with the server's own token (what a kernel under JupyterHub uses);
- `LocalBackend` calls the same `StudentSide` the endpoints call, in process
  (a kernel outside JupyterHub, scripts, headless tests).

`CoursePanelModel.for_this_server()` picks the right one from the environment.
Observers (the view) are called after every change; a failed call sets `error`
and leaves the last good status in place.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable

from .student import CourseRequestError, StudentSide


class CourseBackendError(RuntimeError):
    pass


class LocalBackend:
    def __init__(self, side: StudentSide):
        self.side = side

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except (CourseRequestError, OSError, RuntimeError, ValueError) as exc:
            raise CourseBackendError(str(exc)) from None

    def courses(self) -> list[dict]:
        return self._call(self.side.courses)

    def status(self, course: str) -> dict:
        return self._call(self.side.status, course)

    def sync(self, course: str) -> dict:
        return self._call(self.side.sync, course)


class ServerBackend:
    """HTTP to this notebook server's course endpoints (JUPYTERHUB_SERVICE_URL, JUPYTERHUB_API_TOKEN)."""

    def __init__(self, base_url: str, token: str, timeout: float = 120):
        self.base_url, self.token, self.timeout = base_url.rstrip("/") + "/", token, timeout

    @classmethod
    def from_environment(cls) -> "ServerBackend | None":
        url, token = os.environ.get("JUPYTERHUB_SERVICE_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
        return cls(url, token) if url and token else None

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + "scip/api/" + path, data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - our own server
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("message") or exc.reason
            except ValueError:
                message = exc.reason
            raise CourseBackendError(f"HTTP {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise CourseBackendError(f"notebook server unreachable: {exc}") from None

    def courses(self) -> list[dict]:
        return self._request("GET", "course")["courses"]

    def status(self, course: str) -> dict:
        return self._request("GET", "course/status?" + urllib.parse.urlencode({"course": course}))

    def sync(self, course: str) -> dict:
        return self._request("POST", "course/sync", {"course": course})


def summarize(result: dict) -> str:
    """One line about a sync result for the panel.

    >>> summarize({"summary": {"update": 2, "rename": 1, "uptodate": 4}, "version": "abc"})
    'Synced to version abc: update 2, rename 1 (your edited files were kept).'
    >>> summarize({"summary": {"uptodate": 3}, "version": "abc"})
    'Already up to date (version abc).'
    """
    counts = {k: v for k, v in (result.get("summary") or {}).items() if k not in ("uptodate",)}
    if not counts:
        return f"Already up to date (version {result.get('version', '?')})."
    parts = ", ".join(f"{k} {v}" for k, v in counts.items())
    kept = " (your edited files were kept)" if counts.get("rename") or counts.get("keep") else ""
    return f"Synced to version {result.get('version', '?')}: {parts}{kept}."


class CoursePanelModel:
    def __init__(self, course: str, backend):
        self.course = course
        self.backend = backend
        self.status: dict = {}
        self.message = ""
        self.error = ""
        self.busy = False
        self._observers: list[Callable[["CoursePanelModel"], None]] = []

    @classmethod
    def for_this_server(cls, course: str | None = None) -> "CoursePanelModel":
        backend = ServerBackend.from_environment() or LocalBackend(StudentSide.from_environment())
        if course is None:
            course = os.environ.get("SCIP_COURSE") or next((c["id"] for c in backend.courses()), "")
        if not course:
            raise CourseBackendError("course: you take no course here; pass CoursePanelModel.for_this_server(course=...)")
        model = cls(course, backend)
        model.refresh()
        return model

    # -- what the view shows --------------------------------------------
    @property
    def title(self) -> str:
        return self.status.get("title") or self.course

    @property
    def version(self) -> str:
        return self.status.get("delivered_version") or "not synced yet"

    @property
    def current_version(self) -> str:
        return self.status.get("current_version", "")

    @property
    def update_available(self) -> bool:
        return bool(self.status.get("update_available") or self.status.get("pending"))

    @property
    def pending_text(self) -> str:
        pending = self.status.get("pending") or {}
        return ", ".join(f"{k} {v}" for k, v in sorted(pending.items())) or "nothing"

    @property
    def edited(self) -> list[str]:
        return list(self.status.get("changed") or [])

    # -- observers -------------------------------------------------------
    def observe(self, callback: Callable[["CoursePanelModel"], None]) -> None:
        self._observers.append(callback)

    def _notify(self) -> None:
        for callback in list(self._observers):
            callback(self)

    # -- actions ---------------------------------------------------------
    def refresh(self) -> dict:
        try:
            self.status = self.backend.status(self.course)
            self.error = ""
        except CourseBackendError as exc:
            self.error = str(exc)
        self._notify()
        return self.status

    def sync(self) -> dict:
        self.busy, self.error = True, ""
        self._notify()
        result: dict = {}
        try:
            result = self.backend.sync(self.course)
            self.message = summarize(result)
        except CourseBackendError as exc:
            self.error = str(exc)
        finally:
            self.busy = False
        self.refresh()
        return result

    async def sync_async(self) -> dict:
        """`sync` for widget callbacks: the calls run in a thread, observers on the caller's loop."""
        self.busy, self.error = True, ""
        self._notify()
        result: dict = {}
        try:
            result = await asyncio.to_thread(self.backend.sync, self.course)
            self.message = summarize(result)
            self.status = await asyncio.to_thread(self.backend.status, self.course)
        except CourseBackendError as exc:
            self.error = str(exc)
        finally:
            self.busy = False
        self._notify()
        return result
