"""Storage that matches the clusters: project, scratch and course data in notebook pods.

A path that works in the notebook works in its Slurm jobs: notebook pods mount
project storage per allocation group at the path the ARC clusters use
(`/project/<group>`), a person's scratch at `/scratch/<user>`, and the course's
data read-only at `/courses-data/<course>`. The path templates come from an ARC
preset's `storage` (arc.yaml), else the Alliance layout below. The person's home
is z2jh's per-person claim (singleuser.storage).

Where data lives is part of it: every project names the jurisdiction its data
must stay in. A spawn (or an ARC scale-up) that would put a project's data where
that jurisdiction does not reach is refused, naming the project, both
jurisdictions and what would fit (`check_jurisdiction`).

Pure: `StorageConfig` (validated, `file:line`-free: it comes from chart values)
and `storage_mounts(...)`; the spawner applies the result.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import quote, unquote

from pydantic import Field, ValidationError, field_validator

from .config import StrictModel
from .i18n import _

#: The Alliance clusters' layout (used when no ARC preset declares `storage`).
DEFAULT_PATHS = {"project": "/project/{group}", "scratch": "/scratch/{user}", "course": "/courses-data/{course}"}
_AREAS = tuple(DEFAULT_PATHS)


class JurisdictionError(ValueError):
    """Data would leave its jurisdiction; the message says which data, where it may go and what fits."""


def within(jurisdiction: str, data_jurisdiction: str) -> bool:
    """Whether work in `jurisdiction` keeps data bound to `data_jurisdiction` where it may be.

    A region is within its country (CA-BC is within CA); a country is not within one
    of its regions (a CA-wide site might be outside BC).

    >>> within("CA-BC", "CA"), within("CA", "CA"), within("CA", "CA-BC"), within("CA-QC", "CA-BC")
    (True, True, False, False)
    """
    return jurisdiction == data_jurisdiction or jurisdiction.startswith(data_jurisdiction + "-")


def check_jurisdiction(project: str, data_jurisdiction: str, where: str, jurisdiction: str,
                       fitting: Sequence[str] = (), none_fit: str = "") -> None:
    """Raise JurisdictionError when work at `where` (in `jurisdiction`) would take `project`'s data outside it.

    The one rule for both callers: a spawn (`where` a profile, `fitting` the person's
    profiles that fit) and an ARC scale-up (`where` a cluster preset, `fitting` the
    presets that fit). `none_fit` is the sentence said when nothing fits (default: profiles').

    >>> check_jurisdiction("lab-bc", "CA-BC", "profile 'H100 east'", "CA-QC", ["H100 west"])
    Traceback (most recent call last):
    ...
    scip_jupyter.storage.JurisdictionError: project: the data of lab-bc must stay in CA-BC; profile 'H100 east' runs in CA-QC. Choose one in CA-BC: H100 west
    """
    if within(jurisdiction, data_jurisdiction):
        return
    message = _("project: the data of {project} must stay in {data}; {where} runs in {jurisdiction}.").format(
        project=project, data=data_jurisdiction, where=where, jurisdiction=jurisdiction)
    if fitting:
        message += " " + _("Choose one in {data}: {fitting}").format(data=data_jurisdiction, fitting=", ".join(fitting))
    else:
        message += " " + (none_fit or _("No profile of yours runs there; ask your project lead."))
    raise JurisdictionError(message)


#: Environment variable of a notebook server: the project data it mounts and where each must stay,
#: `project=jurisdiction` pairs joined by `,`, each side percent-encoded (no braces: KubeSpawner
#: expands `{...}` in environment values, so JSON would not survive).
DATA_JURISDICTIONS_ENV = "SCIP_DATA_JURISDICTIONS"


def format_data_jurisdictions(held: Mapping[str, str]) -> str:
    """`$SCIP_DATA_JURISDICTIONS` for these projects (sorted; any group name survives).

    >>> format_data_jurisdictions({"lab-bc": "CA-BC", "a,b={x}": "CA"})
    'a%2Cb%3D%7Bx%7D=CA,lab-bc=CA-BC'
    """
    return ",".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(held.items()))


def parse_data_jurisdictions(text: str | None) -> dict[str, str]:
    """The projects whose data a server holds and where each must stay, from `$SCIP_DATA_JURISDICTIONS`.

    Absent or empty: {} (no project data mounted). Anything else that is not `project=jurisdiction`
    pairs raises ValueError naming the variable: the check fails closed.

    >>> parse_data_jurisdictions(format_data_jurisdictions({"lab-bc": "CA-BC", "a,b={x}": "CA"}))
    {'a,b={x}': 'CA', 'lab-bc': 'CA-BC'}
    >>> parse_data_jurisdictions(None)
    {}
    >>> parse_data_jurisdictions("lab-bc")
    Traceback (most recent call last):
    ...
    ValueError: SCIP_DATA_JURISDICTIONS: 'lab-bc' is not project=jurisdiction pairs joined by ',', e.g. lab-bc=CA-BC,def-smith=CA
    """
    if not text or not text.strip():
        return {}
    out: dict[str, str] = {}
    for pair in text.split(","):
        project, eq, where = pair.partition("=")
        project, where = unquote(project.strip()), unquote(where.strip())
        if not eq or not project or len(where) < 2 or project in out:
            shown = text if len(text) <= 80 else text[:80] + "..."
            raise ValueError(f"{DATA_JURISDICTIONS_ENV}: {shown!r} is not project=jurisdiction pairs joined by ',', "
                             "e.g. lab-bc=CA-BC,def-smith=CA")
        out[project] = where
    return out


class ProjectStorage(StrictModel):
    claim: str = Field(min_length=1, description="PersistentVolumeClaim holding the project's folder (RWX).")
    sub_path: str = Field("", description="Folder inside the claim; default: the group's name.")
    jurisdiction: str = Field(min_length=2, description="Where the project's data must stay, e.g. CA or CA-BC.")
    read_only: bool = False


class SharedClaim(StrictModel):
    claim: str = Field(min_length=1, description="PersistentVolumeClaim (RWX); one sub-folder per person or course.")


class StorageConfig(StrictModel):
    """custom.scip.storage in the chart (SCIPKubeSpawner.storage)."""

    projects: dict[str, ProjectStorage] = Field(default_factory=dict, description="Allocation group -> its project storage.")
    scratch: SharedClaim | None = None
    course_data: SharedClaim | None = Field(None, description="Read-only course data, a sub-folder per course id.")
    paths: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PATHS), description="Mount path templates.")

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - set(_AREAS)
        if unknown:
            raise ValueError(f"unknown area(s) {', '.join(sorted(unknown))}; allowed: {', '.join(_AREAS)}")
        for area, template in value.items():
            if not template.startswith("/"):
                raise ValueError(f"{area}: {template!r} must be an absolute path template")
        return {**DEFAULT_PATHS, **value}


def parse_storage(value: Mapping[str, Any]) -> StorageConfig:
    """Validate storage settings; ValueError naming each field and what is allowed."""
    try:
        return StorageConfig.model_validate(dict(value))
    except ValidationError as exc:
        problems = "; ".join(f"storage.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(problems) from None


def _volume(name: str, claim: str, read_only: bool) -> dict[str, Any]:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}


def storage_mounts(
    config: StorageConfig,
    user: str,
    groups: Iterable[str],
    course: str = "",
    *,
    where: str = "",
    jurisdiction: str = "",
    fitting: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """Volumes, mounts and environment for a person's project, scratch and course data.

    `jurisdiction` is where the pod runs (its profile's); a project whose data may not go
    there raises JurisdictionError. Folder names are the group, user and course as given
    (label-safe names are not needed: these are paths inside claims).

    >>> cfg = parse_storage({"projects": {"lab": {"claim": "projects", "jurisdiction": "CA"}}, "scratch": {"claim": "scratch"}})
    >>> volumes, mounts, env = storage_mounts(cfg, "alice", ["lab", "other"], where="profile 'CPU'", jurisdiction="CA-QC")
    >>> [(m["mountPath"], m["subPath"]) for m in mounts]
    [('/project/lab', 'lab'), ('/scratch/alice', 'alice')]
    >>> env
    {'SCIP_PROJECT_DIRS': '/project/lab', 'SCIP_DATA_JURISDICTIONS': 'lab=CA', 'SCIP_SCRATCH': '/scratch/alice'}
    """
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    env: dict[str, str] = {}
    claims: dict[tuple[str, bool], str] = {}

    def volume_for(claim: str, read_only: bool) -> str:
        if (claim, read_only) not in claims:
            name = f"scip-data-{len(claims)}"
            claims[(claim, read_only)] = name
            volumes.append(_volume(name, claim, read_only))
        return claims[(claim, read_only)]

    projects = []
    held: dict[str, str] = {}
    for group in sorted(set(groups) & set(config.projects)):
        project = config.projects[group]
        if jurisdiction:
            check_jurisdiction(group, project.jurisdiction, where, jurisdiction, fitting)
        path = config.paths["project"].format(group=group, user=user, course=course)
        mounts.append({"name": volume_for(project.claim, project.read_only), "mountPath": path,
                       "subPath": project.sub_path or group, "readOnly": project.read_only})
        projects.append(path)
        held[group] = project.jurisdiction
    if projects:
        env["SCIP_PROJECT_DIRS"] = ":".join(projects)
        # the same table reaches the notebook: ARC scale-ups apply the same rule (arc.presets)
        env[DATA_JURISDICTIONS_ENV] = format_data_jurisdictions(held)
    if config.scratch:
        path = config.paths["scratch"].format(user=user, group="", course=course)
        mounts.append({"name": volume_for(config.scratch.claim, False), "mountPath": path, "subPath": user, "readOnly": False})
        env["SCIP_SCRATCH"] = path
    if course and config.course_data:
        path = config.paths["course"].format(course=course, user=user, group="")
        mounts.append({"name": volume_for(config.course_data.claim, True), "mountPath": path, "subPath": course, "readOnly": True})
        env["SCIP_COURSE_DATA"] = path
    return volumes, mounts, env
