"""The quota file (`allocations.yaml`) and what a profile costs.

A *flavour* is one kind of accelerator, named as Slurm names it: a full GPU by
its model (`h100`), a MIG slice by model and slice (`h100_1g.10gb`). A profile
holds `units` of one flavour while its server runs and uses `gpu_share`
GPU-hours per hour (a MIG slice: its share of the 7 compute slices of a GPU);
`catalog.Profile` says all three (`flavour`, `units`, `gpu_share`), once.
CPU profiles have no flavour and cost no GPU-hours.

`allocations.yaml` gives each project (a hub group) how many units of each
flavour its members may hold at once (`max_gpus`) and how many GPU-hours they
may use per period (`gpu_hours`). It is validated like every config file
(`file:line: field: problem`) and, when a `catalog.yaml` sits beside it, every
flavour it names must belong to a catalog profile. See docs/allocations.md.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

from pydantic import Field, field_validator

from ..catalog import Catalog, catalog_beside
from ..config import ConfigError, ConfigProblem, StrictModel, cached_load, load_yaml, validate_data

#: Key of `max_gpus` standing for every flavour the group does not list.
ANY_FLAVOUR = "*"


# --- what a profile costs: catalog.Profile says it (flavour, units, gpu_share) ---------------------


def catalog_flavours(catalog: Catalog) -> list[str]:
    """Every flavour the catalog's profiles hold, in catalog order."""
    out: list[str] = []
    for profile in catalog.profiles:
        fl = profile.flavour
        if fl and fl not in out:
            out.append(fl)
    return out


# --- the quota file --------------------------------------------------------------------------------


class Period(str, Enum):
    day = "day"
    week = "week"
    month = "month"


class Unlisted(str, Enum):
    allow = "allow"
    deny = "deny"


class GroupQuota(StrictModel):
    """The allocation of one project (hub group), shared by all its members."""

    description: str = Field("", max_length=200, description="What the project is (shown to its members).")
    max_gpus: dict[str, int] = Field(
        default_factory=dict,
        description="Flavour -> units the group's members may hold at once, all together "
        "(e.g. h100: 2, h100_1g.10gb: 7). `*` covers every flavour not listed. A flavour not "
        "covered is not charged to this group.",
    )
    gpu_hours: float | None = Field(
        None, ge=0, le=10_000_000,
        description="GPU-hours per period for the flavours covered, all members together; absent: no limit.",
    )
    slurm_account: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="The Slurm account whose jobs this allocation pays for (e.g. def-smith): its jobs' "
        "GPU-hours (from sacct) count against gpu_hours, and `scip-jupyter arc accounts sync` mirrors "
        "max_gpus on it as GrpTRES. Absent: Slurm jobs are not charged to this group.",
    )

    @field_validator("max_gpus")
    @classmethod
    def _counts(cls, v: dict[str, int]) -> dict[str, int]:
        for flavour, count in v.items():
            if not isinstance(count, int) or count < 0 or count > 100_000:
                raise ValueError(f"{flavour}: {count!r} must be a whole number of units from 0 to 100000")
        return v

    def covers(self, flavour: str | None) -> bool:
        return flavour is not None and (flavour in self.max_gpus or ANY_FLAVOUR in self.max_gpus)

    def limit_for(self, flavour: str) -> tuple[str, int]:
        """(key in max_gpus, units) for a covered flavour."""
        key = flavour if flavour in self.max_gpus else ANY_FLAVOUR
        return key, self.max_gpus[key]


class SlurmSync(StrictModel):
    """Where `scip-jupyter arc accounts sync` creates accounts and associations."""

    cluster: str = Field("local-slurm", description="The arc.yaml preset whose Slurm holds the accounts.")
    users: list[str] = Field(
        default_factory=list,
        description="Slurm (Unix) users that '*' in arc.yaml's accounts.users stands for, and who get every "
        "group's slurm_account (e.g. [scip-user] when the hub runs servers as scip-user).",
    )

    @field_validator("users")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        import re

        for name in v:
            if not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", name):
                raise ValueError(f"{name!r} is not a Unix user name (lowercase letters, digits, _ . -)")
        return v


class Allocations(StrictModel):
    period: Period = Field(Period.month, description="GPU-hours are counted per calendar day, week or month (UTC).")
    unlisted: Unlisted = Field(
        Unlisted.allow,
        description="A GPU profile that no quota of the user covers: allow (not metered) or deny.",
    )
    groups: dict[str, GroupQuota] = Field(default_factory=dict, description="Hub group -> its allocation.")
    slurm: SlurmSync | None = Field(None, description="Slurm accounts to create (`scip-jupyter arc accounts sync`).")

    @field_validator("groups")
    @classmethod
    def _one_group_per_account(cls, v: dict[str, GroupQuota]) -> dict[str, GroupQuota]:
        seen: dict[str, str] = {}
        for name, quota in v.items():
            if quota.slurm_account:
                if quota.slurm_account in seen:
                    raise ValueError(
                        f"{name}.slurm_account: {quota.slurm_account!r} already pays for group "
                        f"{seen[quota.slurm_account]!r}; one Slurm account per group"
                    )
                seen[quota.slurm_account] = name
        return v

    def group_for_slurm_account(self, account: str) -> str | None:
        """The group whose allocation pays for jobs of this Slurm account, if any."""
        for name, quota in self.groups.items():
            if quota.slurm_account == account:
                return name
        return None

    def group_order(self) -> list[str]:
        return list(self.groups)


def _check_flavours(allocations: Allocations, catalog: Catalog, lines: dict, file: str) -> list[ConfigProblem]:
    known = catalog_flavours(catalog)
    problems = []
    for group, quota in allocations.groups.items():
        for flavour in quota.max_gpus:
            if flavour != ANY_FLAVOUR and flavour not in known:
                problems.append(
                    ConfigProblem.at(
                        file, lines, ("groups", group, "max_gpus", flavour),
                        f"unknown flavour {flavour!r}; the catalog's flavours: {', '.join(known) or '(none)'} (or *)",
                    )
                )
    return problems


def load_allocations(path: str | os.PathLike, catalog: Catalog | str | os.PathLike | None = None) -> Allocations:
    """Load and validate an allocations.yaml; raises ConfigError with file:line problems.

    Flavours are checked against `catalog` (a Catalog or a path), else against a
    `catalog.yaml` in the same folder when there is one.
    """
    path = Path(path)
    data, lines = load_yaml(path)
    allocations = validate_data(Allocations, data, lines, str(path))
    catalog = catalog_beside(path, catalog)
    if catalog is not None:
        problems = _check_flavours(allocations, catalog, lines, str(path))
        if problems:
            raise ConfigError(problems)
    return allocations


def cached_allocations(path: str | os.PathLike) -> Allocations:
    """`load_allocations`, reloaded only when the file changes (a running hub sees edits)."""
    return cached_load(load_allocations, path)
