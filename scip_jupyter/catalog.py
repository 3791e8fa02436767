"""The resource catalog: which notebook profiles exist and who may use them.

A profile is CPU-only, a full GPU, or a MIG slice; it says what it asks for in one
vocabulary (`flavour`, `units`, `gpu_share`, `gpu_resource`, `summary`) that the
quotas, availability, pod builder and spawn form all use. The catalog is YAML
(`hub_config/catalog.yaml`), validated by pydantic with `file:line` errors, and
is the single source for the spawn form, the REST API validation, the
Kubernetes pod builder and the local spawner.
"""

from __future__ import annotations

import os
import re
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Iterable

from pydantic import AfterValidator, Field, field_validator, model_validator

from .config import StrictModel, load_model, require_unique

SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?([KMGT]i?)?$")
#: MIG profiles NVIDIA defines for the GPUs the platform carries.
MIG_PROFILES = {
    "h100": ("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    "a100": ("1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"),
}
GPU_MODELS = ("h100", "a100", "l40s")
#: Compute slices of a MIG-capable GPU (H100, A100): `3g.40gb` is 3/7 of one.
MIG_SLICES = 7
#: How people name the GPU models.
GPU_NAMES = {"h100": "H100", "a100": "A100", "l40s": "L40S"}
_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def parse_quantity(value: str) -> float:
    """Bytes in a Kubernetes-style memory quantity.

    >>> parse_quantity("2G"), parse_quantity("1Gi")
    (2000000000.0, 1073741824.0)
    """
    m = QUANTITY_RE.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a quantity like 512M, 4G or 16Gi")
    number = float(value[: m.start(2)] if m.group(2) else value)
    return number * _UNITS[m.group(2) or ""]


def check_slug(value: str) -> str:
    """A profile slug or course id: what links, labels, groups and folders are named by.

    >>> check_slug("intro-ml")
    'intro-ml'
    >>> check_slug("-x")
    Traceback (most recent call last):
    ...
    ValueError: '-x' must be 1-40 lowercase letters, digits or '-', not starting or ending with '-'
    """
    if not SLUG_RE.match(value):
        raise ValueError(f"{value!r} must be 1-40 lowercase letters, digits or '-', not starting or ending with '-'")
    return value


#: A string field holding a slug (checked by `check_slug`).
Slug = Annotated[str, AfterValidator(check_slug)]


class ProfileKind(str, Enum):
    cpu = "cpu"
    gpu = "gpu"
    mig = "mig"


class Profile(StrictModel):
    slug: Slug = Field(description="Stable identifier used in user_options['profile'] and links.")
    display_name: str
    description: str = ""
    display_name_fr: str = Field("", description="French display name (French pages); empty: display_name.")
    description_fr: str = Field("", description="French description (French pages); empty: description.")
    kind: ProfileKind
    gpu_model: str | None = Field(None, description="GPU model for gpu/mig kinds, e.g. h100.")
    gpu_count: int = Field(0, ge=0, le=8, description="Whole GPUs (kind gpu).")
    mig_profile: str | None = Field(None, description="MIG slice, e.g. 1g.10gb (kind mig).")
    image: str
    cpu_guarantee: float = Field(0.5, gt=0, le=256)
    cpu_limit: float = Field(2, gt=0, le=256)
    mem_guarantee: str = "1G"
    mem_limit: str = "4G"
    shm_size: str = Field("1G", description="Size of the memory-backed /dev/shm.")
    allowed_groups: list[str] = Field(default_factory=list, description="Groups that may use it; empty means nobody.")
    site: str
    jurisdiction: str
    default: bool = False

    @field_validator("mem_guarantee", "mem_limit", "shm_size")
    @classmethod
    def _quantity(cls, v: str) -> str:
        parse_quantity(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Profile":
        if self.cpu_guarantee > self.cpu_limit:
            raise ValueError(f"cpu_guarantee {self.cpu_guarantee} is above cpu_limit {self.cpu_limit}")
        if parse_quantity(self.mem_guarantee) > parse_quantity(self.mem_limit):
            raise ValueError(f"mem_guarantee {self.mem_guarantee} is above mem_limit {self.mem_limit}")
        if self.kind is ProfileKind.cpu:
            if self.gpu_model or self.gpu_count or self.mig_profile:
                raise ValueError("a cpu profile takes no gpu_model, gpu_count or mig_profile")
            return self
        if self.gpu_model not in GPU_MODELS:
            raise ValueError(f"gpu_model must be one of {', '.join(GPU_MODELS)} for kind {self.kind.value}")
        if self.kind is ProfileKind.gpu:
            if self.gpu_count < 1 or self.mig_profile:
                raise ValueError("a gpu profile needs gpu_count >= 1 and no mig_profile")
        else:
            allowed = MIG_PROFILES.get(self.gpu_model, ())
            if self.mig_profile not in allowed or self.gpu_count:
                raise ValueError(
                    f"a mig profile needs mig_profile one of {', '.join(allowed)} for {self.gpu_model}, and no gpu_count"
                )
        return self

    # --- texts in the reader's language --------------------------------------------------------------

    def name_in(self, language: str) -> str:
        """The display name in `language` ("fr": display_name_fr when given).

        >>> p = Profile(slug="c", display_name="CPU", display_name_fr="Processeur", kind="cpu", image="i",
        ...             site="s", jurisdiction="CA")
        >>> p.name_in("fr"), p.name_in("en"), p.description_in("fr")
        ('Processeur', 'CPU', '')
        """
        return (self.display_name_fr if language == "fr" else "") or self.display_name

    def description_in(self, language: str) -> str:
        """The description in `language` ("fr": description_fr when given)."""
        return (self.description_fr if language == "fr" else "") or self.description

    # --- the accelerator vocabulary: what a profile asks for, said once -----------------------------

    @property
    def flavour(self) -> str | None:
        """The flavour it holds, in Slurm's naming (the quota and availability key); None for CPU.

        >>> Profile(slug="m", display_name="m", kind="mig", gpu_model="h100", mig_profile="1g.10gb",
        ...         image="i", site="s", jurisdiction="CA").flavour
        'h100_1g.10gb'
        """
        if self.kind is ProfileKind.gpu:
            return str(self.gpu_model)
        if self.kind is ProfileKind.mig:
            return f"{self.gpu_model}_{self.mig_profile}"
        return None

    @property
    def units(self) -> int:
        """Units of its flavour it holds: whole GPUs, or one MIG slice; 0 for CPU."""
        if self.kind is ProfileKind.gpu:
            return self.gpu_count
        return 1 if self.kind is ProfileKind.mig else 0

    @property
    def gpu_share(self) -> Fraction:
        """GPU-hours per hour of use, exactly: whole GPUs, or the slice's share.

        >>> Profile(slug="m", display_name="m", kind="mig", gpu_model="h100", mig_profile="3g.40gb",
        ...         image="i", site="s", jurisdiction="CA").gpu_share
        Fraction(3, 7)
        """
        if self.kind is ProfileKind.gpu:
            return Fraction(self.gpu_count)
        if self.kind is ProfileKind.mig:
            slices = int(str(self.mig_profile).split("g.", 1)[0])
            return Fraction(min(slices, MIG_SLICES), MIG_SLICES)
        return Fraction(0)

    @property
    def summary(self) -> str:
        """What it asks for, in words.

        >>> Profile(slug="g", display_name="g", kind="gpu", gpu_model="h100", gpu_count=2,
        ...         image="i", site="s", jurisdiction="CA").summary
        '2 × H100 GPU'
        >>> Profile(slug="m", display_name="m", kind="mig", gpu_model="h100", mig_profile="3g.40gb",
        ...         image="i", site="s", jurisdiction="CA").summary
        'H100 slice 3g.40gb (MIG, 3/7 of a GPU)'
        >>> Profile(slug="c", display_name="c", kind="cpu", image="i", site="s", jurisdiction="CA").summary
        'CPU only (no GPU)'
        """
        from .i18n import _

        model = GPU_NAMES.get(str(self.gpu_model), str(self.gpu_model).upper())
        if self.kind is ProfileKind.gpu:
            return _("{count} × {model} GPU").format(count=self.gpu_count, model=model)
        if self.kind is ProfileKind.mig:
            return _("{model} slice {slice} (MIG, {share} of a GPU)").format(
                model=model, slice=self.mig_profile, share=str(self.gpu_share))
        return _("CPU only (no GPU)")

    @property
    def gpu_resource(self) -> tuple[str, int] | None:
        """Kubernetes extended resource and count (NVIDIA device plugin, mixed MIG strategy)."""
        if self.kind is ProfileKind.gpu:
            return "nvidia.com/gpu", self.gpu_count
        if self.kind is ProfileKind.mig:
            return f"nvidia.com/mig-{self.mig_profile}", 1
        return None

    def allows(self, groups: Iterable[str]) -> bool:
        return bool(set(self.allowed_groups) & set(groups))


class Catalog(StrictModel):
    profiles: list[Profile] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "Catalog":
        require_unique(self.slugs, "profile slug")
        return self

    def get(self, slug: str) -> Profile | None:
        return next((p for p in self.profiles if p.slug == slug), None)

    def profiles_for(self, groups: Iterable[str]) -> list[Profile]:
        """Profiles the given groups allow, in catalog order."""
        groups = set(groups)
        return [p for p in self.profiles if p.allows(groups)]

    @property
    def slugs(self) -> list[str]:
        return [p.slug for p in self.profiles]


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a catalog file; raises config.ConfigError with file:line problems."""
    return load_model(Catalog, path)


def catalog_beside(path: str | os.PathLike, catalog: Catalog | str | os.PathLike | None = None) -> Catalog | None:
    """The catalog another config file (courses.yaml, allocations.yaml) is checked against.

    `catalog` itself when given (a Catalog, or a path to load), else the
    `catalog.yaml` in the same folder as `path` when there is one, else None
    (nothing to check against).
    """
    if catalog is None and (Path(path).parent / "catalog.yaml").exists():
        catalog = Path(path).parent / "catalog.yaml"
    if isinstance(catalog, (str, os.PathLike)):
        catalog = load_catalog(catalog)
    return catalog
