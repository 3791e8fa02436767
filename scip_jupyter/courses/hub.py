"""Courses in JupyterHub: groups, roles, granted profiles, and the hub wiring.

Pure builders first (tested without a hub):

- `hub_groups(registry, group_members)` -> `c.JupyterHub.load_groups` entries:
  `course-<id>-students` and `course-<id>-instructors`;
- `hub_roles(registry, service)` -> `c.JupyterHub.load_roles` entries: per course an
  instructor role whose scopes are filtered to the course's students group
  (`access:servers!group=course-<id>-students`, ...), and per course a student
  role on the students group that only lets their servers report progress to the
  service (`access:services!service=scip-courses`);
- `extra_profiles(...)` -> the profiles a user's *active* courses grant
  (SCIPSpawnerMixin.scip_extra_profiles calls it), so an ended course stops
  granting its profile at once, without a hub restart.

`configure(c, ...)` applies all of it to a JupyterHub config (one call from
hub_config/local.py): groups and roles at hub start, the launch-link handler
(launch.py), the instructor view service (service.py) that also keeps the
groups in step with the registry while the hub runs, and what the
single-user servers need: `SCIP_COURSES_FILE`, the service's URL
(`SCIP_COURSES_SERVICE_URL`) and `access:services!service=scip-courses` in their
own token, with which they report their course progress (reports.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from pathlib import Path
from typing import Iterable, Mapping

from ..config import ConfigError
from ..i18n import _
from ..hub_setup import add_server_token_scopes
from .registry import COURSES_ENV, Registry, cached_registry
from .reports import DEFAULT_STORE_NAME, REPORTS_ENV, SERVICE_URL_ENV

log = logging.getLogger("scip.courses")

SERVICE_NAME = "scip-courses"
LAUNCH_PATTERN = r"/scip/course/([^/]+)/launch"


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def desired_members(registry: Registry, group_members: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Course group name -> sorted usernames, from the registry and the members of the groups it names."""
    members = {g: list(u) for g, u in group_members.items()}
    out: dict[str, list[str]] = {}
    for course in registry.courses:
        out[course.students_group] = course.student_names(members)
        out[course.instructors_group] = sorted(course.instructors)
    return out


def hub_groups(registry: Registry, group_members: Mapping[str, Iterable[str]]) -> dict[str, dict]:
    """`load_groups` entries for every course (JupyterHub 3.2+ format)."""
    out = {}
    for course in registry.courses:
        members = desired_members(Registry(courses=[course]), group_members)
        for name, users in members.items():
            out[name] = {"users": users, "properties": {"scip.course": course.id}}
    return out


def instructor_scopes(group: str, service: str = SERVICE_NAME) -> list[str]:
    """What an instructor may do: see and reach the servers of their course's students, and use the view.

    >>> instructor_scopes("course-x-students")[:2]
    ['access:servers!group=course-x-students', 'read:servers!group=course-x-students']
    """
    return [
        f"access:servers!group={group}",
        f"read:servers!group={group}",
        f"read:users:activity!group={group}",
        f"read:users:name!group={group}",
        f"read:groups!group={group}",
        f"access:services!service={service}",
    ]


def hub_roles(registry: Registry, service: str = SERVICE_NAME) -> list[dict]:
    """`load_roles` entries: one instructor role per course, granted to its instructors group."""
    return [
        {
            "name": f"course-{c.id}-instructor",
            "description": f"Instructors of {c.id}: see and reach their students' servers"[:200],
            "scopes": instructor_scopes(c.students_group, service),
            "groups": [c.instructors_group],
        }
        for c in registry.courses
    ]


def student_roles(registry: Registry, service: str = SERVICE_NAME) -> list[dict]:
    """`load_roles` entries: per course, its students' servers may report progress to the service, nothing more.

    The scope reaches each server's own token through `Spawner.server_token_scopes`
    (JupyterHub drops it from the token of anyone without this role).
    """
    return [
        {
            "name": f"course-{c.id}-student",
            "description": f"Students of {c.id}: their servers report course progress"[:200],
            "scopes": [f"access:services!service={service}"],
            "groups": [c.students_group],
        }
        for c in registry.courses
    ]


def reports_path(c) -> str:
    """Where the service keeps progress reports: beside the hub's own SQLite database (the
    z2jh hub's PVC, /srv/jupyterhub; the embedded hub's state folder), else the hub's folder."""
    db_url = c.JupyterHub.db_url if "db_url" in c.JupyterHub else "sqlite:///jupyterhub.sqlite"
    folder = Path.cwd()
    if isinstance(db_url, str) and db_url.startswith("sqlite:///") and db_url != "sqlite:///:memory:":
        folder = (Path.cwd() / db_url[len("sqlite:///"):]).resolve().parent
    return str(folder / DEFAULT_STORE_NAME)


def service_role(service: str = SERVICE_NAME) -> dict:
    """What the course service needs: keep course groups in step, read activity and servers."""
    return {
        "name": f"{service}-service",
        "description": "SCIP course service: course groups, student activity, instructor view",
        "scopes": ["admin:groups", "list:users", "read:users", "read:users:activity", "read:servers"],
        "services": [service],
    }


def extra_profiles(registry_file: str | os.PathLike, username: str, groups: Iterable[str], today: dt.date | None = None) -> set[str]:
    """Profiles granted to this user by their active courses (empty when there is no registry)."""
    try:
        registry = cached_registry(registry_file)
    except (OSError, ConfigError) as exc:  # no valid registry: courses grant nothing, spawns go on
        log.error("course registry %s unavailable, no course grants a profile: %s", registry_file, exc)
        return set()
    return registry.granted_profiles(username, groups, today or _today())


def access_scopes_for(registry: Registry, user_groups: Iterable[str]) -> list[str]:
    """Scopes a student's server accepts besides its owner's: the instructors' course-group scope.

    JupyterHub's single-user servers do not resolve `!group=` filters themselves
    (jupyterhub.services.auth.check_scopes), so a server of a course's student
    also accepts `access:servers!group=course-<id>-students` -- exactly the scope
    the course's instructor role holds.
    """
    groups = set(user_groups)
    return [f"access:servers!group={c.students_group}" for c in registry.courses if c.students_group in groups]


def group_overrides(registry_file: str, existing=None):
    """A `c.Spawner.group_overrides` callable adding `access_scopes_for` to each server (live registry)."""

    async def overrides(spawner) -> dict:
        out: dict = {}
        if callable(existing):
            from jupyterhub.utils import maybe_future

            out.update(await maybe_future(existing(spawner)))
        elif isinstance(existing, dict):
            out.update(existing)
        groups = [g.name for g in spawner.user.groups]
        try:
            extra = access_scopes_for(cached_registry(registry_file), groups)
        except (OSError, ValueError):
            extra = []
        if extra:
            out["90-scip-course-instructors"] = {
                "groups": groups,
                "spawner_override": {"oauth_access_scopes": lambda sp: sorted(set(sp.oauth_access_scopes) | set(extra))},
            }
        return out

    return overrides


def check_course_option(registry_file: str | os.PathLike, username: str, groups: Iterable[str], course_id) -> None:
    """A spawn's `course` option must name an active course the user takes or teaches.

    Raises options.OptionsError naming the field and the user's active courses.
    """
    from ..options import OptionsError

    try:
        registry = cached_registry(registry_file)
    except (OSError, ConfigError) as exc:
        log.error("course registry %s unavailable: %s", registry_file, exc)
        raise OptionsError("course", _("the course registry is unavailable now; try again later"), [], status=503) from None
    today = _today()
    groups = list(groups)
    mine = [c.id for c in registry.courses_for(username, groups) if c.is_active(today)]
    if course_id in mine:
        return
    known = registry.get(course_id) if isinstance(course_id, str) else None
    if known is None:
        raise OptionsError("course", f"no course {str(course_id)[:60]!r}", mine)
    if not (known.is_student(username, groups) or known.is_instructor(username)):
        raise OptionsError("course", f"you are not enrolled in {known.id}", mine, status=403)
    when = f"ended on {known.end}" if today > known.end else f"starts on {known.start}"
    raise OptionsError("course", f"{known.id} {when}", mine, status=403)


def configure(
    c,
    registry_file: str | os.PathLike,
    *,
    groups: dict,
    roles: list,
    services: list,
    service_port: int,
    service_token: str,
    public_url: str = "",
    service_ip: str = "127.0.0.1",
    reports: str = "",
) -> Registry:
    """Wire courses into a JupyterHub config (see the module docstring); returns the registry."""
    from .launch import CourseLaunchHandler

    registry_file = str(Path(registry_file).resolve())
    registry = cached_registry(registry_file)
    known = {name: spec.get("users", []) for name, spec in groups.items() if isinstance(spec, dict)}
    for name, spec in hub_groups(registry, known).items():
        groups.setdefault(name, {"users": []})
        groups[name]["users"] = sorted(set(groups[name].get("users", [])) | set(spec["users"]))
        groups[name]["properties"] = spec["properties"]
    roles.extend(hub_roles(registry))
    roles.extend(student_roles(registry))
    roles.append(service_role())
    url = f"http://{service_ip}:{service_port}"
    services.append(
        {
            "name": SERVICE_NAME,
            "url": url,
            "api_token": service_token,
            "command": [sys.executable, "-m", "scip_jupyter.courses.service"],
            "environment": {
                COURSES_ENV: registry_file,
                REPORTS_ENV: reports or reports_path(c),
                "SCIP_PUBLIC_URL": public_url,
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            },
            "oauth_no_confirm": True,
            "display": True,
            "info": {"description": "Course material: launch links, student progress, CSV export"},
        }
    )
    c.JupyterHub.extra_handlers = [
        *_configured(c.JupyterHub, "extra_handlers", []),
        (LAUNCH_PATTERN, CourseLaunchHandler, {"registry_file": registry_file}),
    ]
    c.Spawner.group_overrides = group_overrides(registry_file, _configured(c.Spawner, "group_overrides", None))
    c.SCIPSpawnerMixin.courses_path = registry_file
    # servers report progress to the service directly (the hub pod's IP on Kubernetes), with their own token
    c.Spawner.environment = {**_configured(c.Spawner, "environment", {}), COURSES_ENV: registry_file,
                             SERVICE_URL_ENV: f"{url}/services/{SERVICE_NAME}/"}
    add_server_token_scopes(c, f"access:services!service={SERVICE_NAME}")
    return registry


def _configured(section, name: str, default):
    """A value already set in a traitlets config section, else `default` (never a lazy placeholder)."""
    return section[name] if name in section else default
