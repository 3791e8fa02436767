"""Course progress as each student's own server reports it, and the store that keeps the last report.

Progress comes from where the files are. A student's notebook server (the SCIP
server extension, running as the student) reports the course status of its own
home to the `scip-courses` service: after a sync, reset or launch, when a course
notebook is opened or a course file saved, when the server starts and when it
stops. The service keeps the last report per (course, student) with the time it
received it, so a stopped server still shows its last known progress. The same
path serves both hubs: the hub (or its service) never reads a student's files,
on the local disk or on a Kubernetes volume it does not mount.

A report is what the student's own account says of its own folder: the service
validates it at the boundary (`parse_report`: known fields, plain relative
paths, bounded sizes) and trusts the material (version, notebooks) only from its
own snapshot (`status_from_report`). A student could report false progress of
their own, as they could edit their own files; nobody can report for another.

`ReportStore` is a small SQLite file (stdlib `sqlite3`) the service alone writes;
the hub's home page and `scip-jupyter course status` read it read-only
(`for_student`, `read_course`). Everything else here is pure.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..catalog import SLUG_RE
from ..i18n import _
from .progress import StudentStatus
from .sync import safe_relpath

#: Where the service's store is (set by courses.hub.configure); the service's working directory otherwise.
REPORTS_ENV = "SCIP_COURSE_REPORTS"
#: In each server's environment: the service's URL (with its prefix), where the server reports.
SERVICE_URL_ENV = "SCIP_COURSES_SERVICE_URL"
#: The report endpoint, under the service's prefix.
REPORT_PATH = "api/report"
DEFAULT_STORE_NAME = "scip-course-reports.sqlite"

#: Fields of a report body, in the order the docs list them.
REPORT_FIELDS = ("course", "delivered_version", "synced_at", "changed", "opened", "executed")
_TEXT_FIELDS = ("delivered_version", "synced_at")
_LIST_FIELDS = ("changed", "opened", "executed")
MAX_TEXT = 100
MAX_PATH = 500
MAX_PATHS = 2000
#: Bytes a report body may have (2000 paths of 500 characters, three times, fit well below).
MAX_BODY = 4 * 1024 * 1024


class ReportError(ValueError):
    """A report the service refuses: `field`, what was wrong, what is allowed, and the HTTP status."""

    def __init__(self, field_name: str, problem: str, allowed: str = "", status: int = 400):
        self.field, self.problem, self.allowed, self.status = field_name, problem, allowed, status
        text = f"{field_name}: {problem}"
        super().__init__(text + (f"; {allowed}" if allowed else ""))


@dataclass(frozen=True)
class Report:
    """One validated report of one student's course folder."""

    course: str
    delivered_version: str = ""
    synced_at: str = ""
    changed: tuple[str, ...] = ()
    opened: tuple[str, ...] = ()
    executed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"course": self.course, "delivered_version": self.delivered_version, "synced_at": self.synced_at,
                "changed": list(self.changed), "opened": list(self.opened), "executed": list(self.executed)}


def parse_report(raw: bytes | str | None) -> Report:
    """A report body -> Report, or ReportError naming the field and what is allowed (pure).

    >>> parse_report(b'{"course": "intro", "opened": ["01.ipynb"]}').opened
    ('01.ipynb',)
    >>> parse_report(b'{"course": "intro", "who": "bob"}')
    Traceback (most recent call last):
    ...
    scip_jupyter.courses.reports.ReportError: who: unknown field; allowed: course, delivered_version, synced_at, changed, opened, executed
    """
    if raw is not None and len(raw) > MAX_BODY:
        raise ReportError("body", _("larger than {size} bytes").format(size=MAX_BODY), status=413)
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        raise ReportError("body", _("is not JSON"), _("a JSON object like {example}").format(
            example='{"course": "<id>", "opened": ["01.ipynb"]}')) from None
    if not isinstance(body, dict):
        raise ReportError("body", _("must be a JSON object"), _("allowed fields: {fields}").format(fields=", ".join(REPORT_FIELDS)))
    unknown = sorted(set(body) - set(REPORT_FIELDS))
    if unknown:
        raise ReportError(str(unknown[0])[:60], _("unknown field"), _("allowed: {fields}").format(fields=", ".join(REPORT_FIELDS)))
    course = body.get("course")
    if not isinstance(course, str) or not SLUG_RE.match(course):
        raise ReportError("course", _("required, a course id"), _("lowercase letters, digits and '-'"))
    values: dict[str, Any] = {"course": course}
    for name in _TEXT_FIELDS:
        value = body.get(name, "")
        if not isinstance(value, str) or len(value) > MAX_TEXT or any(ord(ch) < 32 for ch in value):
            raise ReportError(name, _("must be text of at most {n} characters").format(n=MAX_TEXT))
        values[name] = value
    for name in _LIST_FIELDS:
        value = body.get(name, [])
        if not isinstance(value, list) or len(value) > MAX_PATHS:
            raise ReportError(name, _("must be a list of at most {n} paths").format(n=MAX_PATHS))
        for path in value:
            if not isinstance(path, str) or len(path) > MAX_PATH or not safe_relpath(path):
                raise ReportError(name, _("{path} is not a relative path inside the course folder").format(
                    path=json.dumps(path)[:80]), _("plain relative paths, without '..' or hidden parts"))
        values[name] = tuple(sorted(set(value)))
    return Report(**values)


def status_from_report(
    username: str, course_id: str, report: Mapping[str, Any] | None, reported_at: str,
    material: Mapping[str, str], current_version: str,
) -> StudentStatus:
    """A student's status from their last report and the service's own snapshot of the material (pure).

    Notebooks are the material's; opened/executed only count the material's
    notebooks; `update_available` compares the delivered version with the
    current one the service computed, not one a server claims.

    >>> st = status_from_report("ana", "c", {"delivered_version": "v1", "opened": ["a.ipynb", "gone.ipynb"]},
    ...                         "2026-12-01T10:00:00+00:00", {"a.ipynb": "h", "b.ipynb": "h"}, "v2")
    >>> st.notebooks, st.opened, st.update_available, st.reported_at
    (['a.ipynb', 'b.ipynb'], ['a.ipynb'], True, '2026-12-01T10:00:00+00:00')
    """
    notebooks = sorted(p for p in material if p.endswith(".ipynb"))
    status = StudentStatus(username, course_id, current_version=current_version, notebooks=notebooks)
    if report is None:
        return status
    known = set(notebooks)
    executed = [p for p in report.get("executed", []) if p in known]
    status.delivered_version = str(report.get("delivered_version", ""))
    status.synced_at = str(report.get("synced_at", ""))
    status.changed = list(report.get("changed", []))
    status.executed = executed
    status.opened = sorted({p for p in report.get("opened", []) if p in known} | set(executed))
    status.reported_at = reported_at
    return status


def now_stamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")


@dataclass
class ReportStore:
    """The last report per (course, student), with the UTC time the service received it."""

    path: Path
    timeout: float = 30.0
    _ready: bool = field(default=False, repr=False)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=self.timeout)
        if not self._ready:
            with conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS reports (course TEXT NOT NULL, username TEXT NOT NULL, "
                    "report TEXT NOT NULL, reported_at TEXT NOT NULL, PRIMARY KEY (course, username))"
                )
            self._ready = True
        return conn

    def put(self, username: str, report: Report, reported_at: str | None = None) -> str:
        stamp = reported_at or now_stamp()
        conn = self._connect()
        try:
            with conn:
                conn.execute(
                    "INSERT INTO reports (course, username, report, reported_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (course, username) DO UPDATE SET report = excluded.report, "
                    "reported_at = excluded.reported_at",
                    (report.course, username, json.dumps(report.to_dict()), stamp),
                )
        finally:
            conn.close()
        return stamp

    def for_course(self, course_id: str) -> dict[str, tuple[dict, str]]:
        """username -> (report, reported_at) for one course."""
        conn = self._connect()
        try:
            rows = conn.execute("SELECT username, report, reported_at FROM reports WHERE course = ?", (course_id,)).fetchall()
        finally:
            conn.close()
        return _decoded(rows)

    def for_student(self, username: str) -> dict[str, tuple[dict, str]]:
        """course -> (report, reported_at): one person's own last reports, read-only.

        For readers beside the service (the hub's home page, `scip-jupyter course
        status --reports`): it never creates the file or its table, so a store the
        service has not written yet reads as no report.
        """
        return self._read("SELECT course, report, reported_at FROM reports WHERE username = ?", (username,))

    def read_course(self, course_id: str) -> dict[str, tuple[dict, str]]:
        """username -> (report, reported_at) for one course, read-only (see `for_student`)."""
        return self._read("SELECT username, report, reported_at FROM reports WHERE course = ?", (course_id,))

    def _read(self, query: str, args: tuple) -> dict[str, tuple[dict, str]]:
        if not self.path.exists():
            return {}
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=self.timeout)
        try:
            rows = conn.execute(query, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the service opened it but nobody has reported yet
                return {}
            raise
        finally:
            conn.close()
        return _decoded(rows)


def _decoded(rows) -> dict[str, tuple[dict, str]]:
    """(key, report JSON, reported_at) rows -> key -> (report, reported_at)."""
    out = {}
    for key, text, stamp in rows:
        try:
            report = json.loads(text)
        except ValueError:  # a damaged row counts as no report, never stops the page
            continue
        if isinstance(report, dict):
            out[key] = (report, stamp)
    return out
