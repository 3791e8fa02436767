"""The course registry (`courses.yaml`): a course as one unit.

A course has an id, a title, instructors, students (usernames and/or hub
groups), a material source (a local folder or a git repository and ref), the
notebook profiles it grants, an allocation and start/end dates. The file is
validated by pydantic through `config.load_model`, so every problem is reported
as `file:line: field: problem`; `load_courses` adds the checks that need the
file's location (the material folder exists) and the catalog beside it (every
profile a course names exists).

Everything here is pure except `load_courses` and `cached_registry` (they read
files). The hub, the CLI, the server extension and the widgets all read the
registry through this module.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from pathlib import Path
from typing import Annotated, Iterable

from pydantic import AfterValidator, Field, PrivateAttr, field_validator, model_validator

from ..catalog import SLUG_RE, Catalog, Slug, catalog_beside
from ..config import ConfigError, ConfigProblem, StrictModel, cached_load, load_yaml, require_unique, validate_data

#: JupyterHub usernames and group names we accept in the registry.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
#: git refs: branch, tag or commit; no spaces, no '..', no leading '-'.
REF_RE = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}$")
#: Environment variable naming the registry file (hub, single-user servers, kernels).
COURSES_ENV = "SCIP_COURSES_FILE"
log = logging.getLogger("scip.courses")


def _names(values: list[str], what: str) -> list[str]:
    for v in values:
        if not NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a valid {what}: lowercase letters, digits and . _ @ - (at most 64)")
    if len(set(values)) != len(values):
        dup = sorted({v for v in values if values.count(v) > 1})
        raise ValueError(f"{', '.join(dup)} listed twice")
    return values


#: Lists of hub usernames / group names, each valid and none twice (checked by `_names`).
Usernames = Annotated[list[str], AfterValidator(lambda v: _names(v, "username"))]
GroupNames = Annotated[list[str], AfterValidator(lambda v: _names(v, "group name"))]


class Students(StrictModel):
    users: Usernames = Field(default_factory=list, description="Hub usernames enrolled in the course.")
    groups: GroupNames = Field(default_factory=list, description="Hub groups whose members are enrolled.")

    @model_validator(mode="after")
    def _someone(self) -> "Students":
        if not self.users and not self.groups:
            raise ValueError("list at least one student in users or groups")
        return self


class Material(StrictModel):
    """Where the course material comes from: exactly one of `path` or `git`."""

    path: str | None = Field(None, description="Local folder, relative to courses.yaml or absolute.")
    git: str | None = Field(None, description="Git repository URL (https://, ssh, or a local path).")
    ref: str = Field("main", description="Branch, tag or commit of `git`.")
    subdir: str = Field("", description="Only this folder of the source is the material.")

    @field_validator("subdir")
    @classmethod
    def _subdir(cls, v: str) -> str:
        if v and (v.startswith("/") or ".." in Path(v).parts):
            raise ValueError(f"{v!r} must be a relative folder inside the material, without '..'")
        return v.strip("/")

    @field_validator("ref")
    @classmethod
    def _ref(cls, v: str) -> str:
        if not REF_RE.match(v):
            raise ValueError(f"{v!r} is not a git branch, tag or commit")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> "Material":
        if bool(self.path) == bool(self.git):
            raise ValueError("give exactly one of path (a local folder) or git (a repository URL)")
        if self.git and self.git.startswith("-"):
            raise ValueError("git must be a repository URL or path, not an option")
        return self

    @property
    def kind(self) -> str:
        return "git" if self.git else "path"


class Allocation(StrictModel):
    gpu_hours_per_student: float = Field(0, ge=0, le=100_000, description="GPU hours each student may use.")
    max_concurrent_servers: int = Field(0, ge=0, le=10_000, description="Servers the course may run at once; 0 = no limit.")


class Course(StrictModel):
    id: Slug = Field(description="Stable slug: used in group names, folders and links.")
    title: str = Field(min_length=1, max_length=200)
    instructors: Usernames = Field(min_length=1)
    students: Students
    material: Material
    profiles: list[str] = Field(min_length=1, description="Catalog profile slugs; the first is the launch default.")
    allocation: Allocation = Field(default_factory=Allocation)
    start: dt.date
    end: dt.date

    @field_validator("profiles")
    @classmethod
    def _profiles(cls, v):
        for slug in v:
            if not SLUG_RE.match(slug):
                raise ValueError(f"{slug!r} is not a profile slug")
        if len(set(v)) != len(v):
            raise ValueError("a profile is listed twice")
        return v

    @model_validator(mode="after")
    def _dates(self) -> "Course":
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    # -- pure questions -------------------------------------------------
    def is_active(self, today: dt.date) -> bool:
        return self.start <= today <= self.end

    def state(self, today: dt.date) -> str:
        return "upcoming" if today < self.start else "ended" if today > self.end else "active"

    @property
    def students_group(self) -> str:
        return f"course-{self.id}-students"

    @property
    def instructors_group(self) -> str:
        return f"course-{self.id}-instructors"

    @property
    def default_profile(self) -> str:
        return self.profiles[0]

    def is_student(self, username: str, groups: Iterable[str] = ()) -> bool:
        return username in self.students.users or bool(set(groups) & set(self.students.groups))

    def is_instructor(self, username: str) -> bool:
        return username in self.instructors

    def student_names(self, group_members: dict[str, Iterable[str]]) -> list[str]:
        """Usernames enrolled, expanding groups with `group_members` (group -> usernames)."""
        names = set(self.students.users)
        for g in self.students.groups:
            names.update(group_members.get(g, ()))
        return sorted(names - set(self.instructors))


class Registry(StrictModel):
    courses: list[Course] = Field(default_factory=list)
    #: set by load_courses: the folder relative `material.path` values are resolved against.
    _base_dir: str = PrivateAttr("")

    @model_validator(mode="after")
    def _unique(self) -> "Registry":
        require_unique(self.ids, "course id")
        return self

    def get(self, course_id: str) -> Course | None:
        return next((c for c in self.courses if c.id == course_id), None)

    def require(self, course_id: str) -> Course:
        course = self.get(course_id)
        if course is None:
            raise KeyError(f"course: unknown course {course_id!r}; known: {', '.join(self.ids) or '(none)'}")
        return course

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.courses]

    def material_dir(self, course: Course) -> Path:
        """The local material folder of a `path` course (resolved against the registry file)."""
        if course.material.path is None:
            raise ValueError(f"course {course.id} takes its material from git, not a folder")
        root = Path(self._base_dir or ".") / course.material.path
        return (root / course.material.subdir).resolve() if course.material.subdir else root.resolve()

    def courses_for(self, username: str, groups: Iterable[str] = ()) -> list[Course]:
        """Courses the user takes or teaches (any state)."""
        groups = set(groups)
        return [c for c in self.courses if c.is_student(username, groups) or c.is_instructor(username)]

    def granted_profiles(self, username: str, groups: Iterable[str], today: dt.date) -> set[str]:
        """Profile slugs the user's *active* courses grant: an ended course grants nothing."""
        out: set[str] = set()
        for c in self.courses_for(username, groups):
            if c.is_active(today):
                out.update(c.profiles)
        return out


def _check_against(registry: Registry, lines: dict, file: str, catalog: Catalog | None) -> list[ConfigProblem]:
    """Checks that need the file system or the catalog."""
    problems = []
    for i, course in enumerate(registry.courses):
        if course.material.path is not None:
            folder = registry.material_dir(course)
            if not folder.is_dir():
                problems.append(
                    ConfigProblem.at(file, lines, ("courses", i, "material", "path"), f"folder {folder} does not exist")
                )
        if catalog is not None:
            for j, slug in enumerate(course.profiles):
                if catalog.get(slug) is None:
                    problems.append(
                        ConfigProblem.at(
                            file, lines, ("courses", i, "profiles", j),
                            f"unknown profile {slug!r}; catalog profiles: {', '.join(catalog.slugs)}",
                        )
                    )
    return problems


def load_courses(
    path: str | os.PathLike, catalog: Catalog | str | os.PathLike | None = None, *, require_material: bool = True
) -> Registry:
    """Load and validate a courses.yaml; raises ConfigError with file:line problems.

    Profiles are checked against `catalog` (a Catalog or a path), or, when not
    given, against a `catalog.yaml` in the same folder if there is one. With
    `require_material=False` (a running hub) a missing material folder is logged,
    not raised: it is that one course's problem, reported when its material is read.
    """
    path = Path(path)
    data, lines = load_yaml(path)
    registry = validate_data(Registry, data, lines, str(path))
    registry._base_dir = str(path.resolve().parent)
    problems = _check_against(registry, lines, str(path), catalog_beside(path, catalog))
    if not require_material:
        for p in [p for p in problems if p.field.endswith(".material.path")]:
            log.warning("course registry: %s (only this course's material is unavailable)", p)
            problems.remove(p)
    if problems:
        raise ConfigError(problems)
    return registry


def _load_live(path: str | os.PathLike) -> Registry:
    return load_courses(path, require_material=False)


#: resolved path -> the last registry that loaded, kept while a later edit is broken
_last_good: dict[str, Registry] = {}


def cached_registry(path: str | os.PathLike) -> Registry:
    """The registry as a running hub, service or server reads it: reloaded when the file changes.

    One course's missing material folder does not invalidate the others (see
    `load_courses`), and an edit that breaks the file keeps the last valid
    registry in force (logged) until it is fixed; `scip-jupyter check` reports
    both. Raises ConfigError only when no valid version was ever read.
    """
    key = str(Path(path).resolve())
    try:
        registry = cached_load(_load_live, key)
    except ConfigError as exc:
        if key not in _last_good:
            raise
        log.error("course registry %s is invalid; keeping the last valid version:\n%s", key, exc)
        return _last_good[key]
    _last_good[key] = registry
    return registry


def registry_path(explicit: str | os.PathLike | None = None) -> Path:
    """The registry file: an explicit path, else $SCIP_COURSES_FILE."""
    value = explicit or os.environ.get(COURSES_ENV)
    if not value:
        raise ConfigError([ConfigProblem("(environment)", 1, COURSES_ENV, "not set: give --courses FILE or set it")])
    return Path(value)
