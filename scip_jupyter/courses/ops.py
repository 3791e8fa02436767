"""Course operations on students' folders: status, sync, reset (one student or the class).

Used by the CLI (`scip-jupyter course ...`) and the instructor view. A student's
notebook root is found through `Homes` (on the embedded platform
`<state>/home/<username>`, as SCIPLocalSpawner lays it out); the course folder
is `<root>/courses/<id>`. Writes run as the owner of the student's root (see
runas.py), never as root.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Iterable

from ..homes import workdir_name
from .material import Snapshot, snapshot
from .progress import StudentStatus, course_folder, folder_status
from .registry import Course, Registry
from .runas import RunAsError, call_as_owner_of
from .sync import reset_folder, sync_folder

HOMES_ENV = "SCIP_HOMES"
CACHE_ENV = "SCIP_COURSE_CACHE"


@dataclass(frozen=True)
class Homes:
    """Where each user's notebook root is: `<folder>/<username>` or a `{username}` template."""

    pattern: str

    @classmethod
    def default(cls, explicit: str | None = None) -> "Homes":
        value = explicit or os.environ.get(HOMES_ENV)
        if not value:
            from ..embedded import HubSettings

            value = str(HubSettings.from_env().homes)
        return cls(value)

    def of(self, username: str) -> Path:
        if "{username}" in self.pattern:
            return Path(self.pattern.format(username=workdir_name(username)))
        return Path(self.pattern) / workdir_name(username)


@dataclass
class Outcome:
    username: str
    ok: bool
    detail: dict | None = None
    error: str = ""


def _sync_one(course_id: str, snap: Snapshot, folder: str, dry_run: bool) -> dict:
    plan, result = sync_folder(course_id, snap, folder, dry_run=dry_run)
    if result is None:
        return {"course": course_id, "version": plan.version, "summary": plan.summary(),
                "changes": [a.describe() for a in plan.changes], "dry_run": True}
    return result.to_dict()


def _reset_one(course_id: str, snap: Snapshot, folder: str) -> dict:
    return reset_folder(course_id, snap, folder).to_dict()


def _status_one(username: str, course_id: str, folder: str, files: dict, version: str) -> dict:
    # plain data: it comes back from a worker running as the student (runas.py)
    return asdict(folder_status(username, course_id, folder, files, version))


def _run(homes: Homes, username: str, fn: Callable, *args) -> Outcome:
    root = homes.of(username)
    if not root.is_dir():
        return Outcome(username, False, error=f"no notebook folder yet ({root}): the student has never started a server")
    try:
        return Outcome(username, True, call_as_owner_of(root, fn, *args))
    except (RunAsError, OSError, RuntimeError) as exc:
        return Outcome(username, False, error=str(exc))


def sync_student(course: Course, snap: Snapshot, homes: Homes, username: str, dry_run: bool = False) -> Outcome:
    folder = course_folder(homes.of(username), course.id)
    return _run(homes, username, _sync_one, course.id, snap, str(folder), dry_run)


def reset_student(course: Course, snap: Snapshot, homes: Homes, username: str) -> Outcome:
    folder = course_folder(homes.of(username), course.id)
    return _run(homes, username, _reset_one, course.id, snap, str(folder))


def status_student(course: Course, snap: Snapshot, homes: Homes, username: str) -> StudentStatus:
    root = homes.of(username)
    folder = course_folder(root, course.id)
    if not root.is_dir():
        return StudentStatus(username, course.id, current_version=snap.version,
                             notebooks=sorted(p for p in snap.files if p.endswith(".ipynb")),
                             error="never started a server")
    try:
        data = call_as_owner_of(root, _status_one, username, course.id, str(folder), dict(snap.files), snap.version)
        return StudentStatus(**{f.name: data[f.name] for f in fields(StudentStatus) if f.name in data})
    except (RunAsError, OSError) as exc:
        return StudentStatus(username, course.id, current_version=snap.version, error=str(exc))


def for_each(
    usernames: Iterable[str], op: Callable[[str], Outcome | StudentStatus], advance: Callable[[str], None] | None = None
) -> list:
    """Run `op` for every student, calling `advance(username)` after each (progress bars)."""
    out = []
    for name in usernames:
        out.append(op(name))
        if advance is not None:
            advance(name)
    return out


def cache_dir() -> Path | None:
    """Where root's tools (CLI, course service) keep git material: $SCIP_COURSE_CACHE, else the
    project's `.state/course-cache` (not root's home, which the students' accounts cannot read)."""
    value = os.environ.get(CACHE_ENV)
    if value:
        return Path(value)
    if os.geteuid() == 0:
        from ..embedded import project_root

        return project_root() / ".state" / "course-cache"
    return None


def current_snapshot(registry: Registry, course: Course) -> Snapshot:
    """The material now (a git course is fetched into `cache_dir()`)."""
    return snapshot(registry, course, cache_dir())


def today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()
