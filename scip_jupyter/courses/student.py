"""The student's side of a course, inside their own notebook server.

One object, `StudentSide`, answers for a notebook root (the server's root
folder, or HOME in a kernel): which courses are here, their status, sync,
reset, and where a launch link should land. The server extension's handlers,
the course panel's local backend and the tests all call it, so the rules live
in one place. It runs as the student (the server's account), never as root.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..catalog import SLUG_RE
from .material import MANIFEST_NAME, Snapshot, default_cache_dir, scan, snapshot
from .progress import course_folder, folder_status, record_opened
from .registry import Course, Registry, cached_registry, registry_path
from .sync import plan_sync, read_manifest, reset_folder, safe_relpath, sync_folder


class CourseRequestError(ValueError):
    """A bad request: `field` names what was wrong; `status` is the HTTP status to answer with."""

    def __init__(self, field: str, message: str, status: int = 400):
        self.field, self.status = field, status
        super().__init__(f"{field}: {message}")


def check_course_id(value) -> str:
    if not isinstance(value, str) or not SLUG_RE.match(value):
        raise CourseRequestError("course", "must be a course id (lowercase letters, digits and '-')")
    return value


def check_notebook(value) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > 500 or not safe_relpath(value):
        raise CourseRequestError("notebook", "must be a relative path inside the course, without '..' or hidden parts")
    return value


@dataclass
class StudentSide:
    root: Path
    username: str
    registry_file: Path
    cache_dir: Path | None = None

    @classmethod
    def from_environment(cls, root: str | os.PathLike | None = None, username: str | None = None) -> "StudentSide":
        """For a server or kernel JupyterHub started: $SCIP_COURSES_FILE, $JUPYTERHUB_USER, root or HOME."""
        return cls(
            Path(root or os.environ.get("HOME", ".")),
            username or os.environ.get("JUPYTERHUB_USER", ""),
            registry_path(),
        )

    @property
    def registry(self) -> Registry:
        return cached_registry(self.registry_file)

    def course(self, course_id) -> Course:
        course_id = check_course_id(course_id)
        course = self.registry.get(course_id)
        if course is None:
            raise CourseRequestError("course", f"no course {course_id!r} in the registry", status=404)
        return course

    def may_manage(self, who: str, course: Course) -> bool:
        """The owner of this server, or an instructor of the course (the hub let them in by role).

        A server not started by JupyterHub (no JUPYTERHUB_USER) has one owner:
        whoever holds its token.
        """
        return not self.username or who == self.username or course.is_instructor(who)

    def folder(self, course: Course) -> Path:
        return course_folder(self.root, course.id)

    def snapshot(self, course: Course) -> Snapshot:
        return snapshot(self.registry, course, self.cache_dir or default_cache_dir())

    def courses(self, groups: Iterable[str] = ()) -> list[dict]:
        """Courses this user takes or teaches, plus any course folder present here."""
        present = {p.name for p in (self.root / "courses").iterdir() if p.is_dir()} if (self.root / "courses").is_dir() else set()
        today = dt.datetime.now(dt.timezone.utc).date()
        out = []
        for c in self.registry.courses:
            if c.id in present or c.is_student(self.username, groups) or c.is_instructor(self.username):
                out.append({"id": c.id, "title": c.title, "state": c.state(today), "start": str(c.start),
                            "end": str(c.end), "profiles": c.profiles, "folder_present": c.id in present})
        return out

    def status(self, course_id) -> dict:
        course = self.course(course_id)
        snap = self.snapshot(course)
        folder = self.folder(course)
        st = folder_status(self.username, course.id, folder, snap.files, snap.version)
        plan = plan_sync(course.id, snap.files, snap.version, read_manifest(folder), scan(folder))
        today = dt.datetime.now(dt.timezone.utc).date()
        return {
            **st.to_dict(),
            "title": course.title,
            "state": course.state(today),
            "folder": str(Path("courses") / course.id),
            "pending": {k: v for k, v in plan.summary().items() if k not in ("uptodate", "keep")},
        }

    def sync(self, course_id) -> dict:
        course = self.course(course_id)
        _, result = sync_folder(course.id, self.snapshot(course), self.folder(course))
        return result.to_dict()

    def reset(self, course_id) -> dict:
        course = self.course(course_id)
        return reset_folder(course.id, self.snapshot(course), self.folder(course)).to_dict()

    def launch(self, course_id, notebook) -> tuple[dict, str]:
        """Sync, then the path (relative to the root) JupyterLab should open."""
        notebook = check_notebook(notebook)
        course = self.course(course_id)
        result = self.sync(course.id)
        target = Path("courses") / course.id
        if notebook and (self.folder(course) / notebook).is_file():
            target = target / notebook
        return result, target.as_posix()

    def note_opened(self, path: str) -> bool:
        """Record that `path` (relative to the root) was opened, if it is a course notebook."""
        where = course_path(path)
        if where is None or not where[1].endswith(".ipynb"):
            return False
        return record_opened(self.root / "courses" / where[0], where[1])

    def report(self, course_id) -> dict:
        """What this server reports to the courses service about its own course folder (reports.py).

        Read from the folder alone (manifest, edits, opened, executed): the
        service adds the material's notebooks and version from its own snapshot.
        """
        course_id = check_course_id(course_id)
        folder = course_folder(self.root, course_id)
        manifest = read_manifest(folder)
        st = folder_status(self.username, course_id, folder, manifest.files, manifest.version)
        return {"course": course_id, "delivered_version": st.delivered_version, "synced_at": st.synced_at,
                "changed": st.changed, "opened": st.opened, "executed": st.executed}

    def present(self) -> list[str]:
        """Course ids with a delivered course folder here (a manifest), for the report at server start."""
        base = self.root / "courses"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir()
                      if SLUG_RE.match(p.name) and not p.is_symlink() and (p / MANIFEST_NAME).is_file())


def course_path(path: str) -> tuple[str, str] | None:
    """(course id, path inside its folder) for a path under `courses/<id>/`, relative to the root.

    >>> course_path("courses/intro/01.ipynb"), course_path("/courses/intro/sub/x.py"), course_path("notes.ipynb")
    (('intro', '01.ipynb'), ('intro', 'sub/x.py'), None)
    """
    parts = str(path).strip("/").split("/")
    if len(parts) < 3 or parts[0] != "courses" or not SLUG_RE.match(parts[1]):
        return None
    return parts[1], "/".join(parts[2:])
