"""ARC cluster presets (`arc.yaml`) and the validation of a user's request against one.

A preset describes one Slurm cluster the way a notebook user meets it: its
partitions, GPU types as Slurm names (MIG slices included), account naming
rules and whose accounts are whose, walltime tiers and maximum, how many jobs a
user may have queued (every array task counts), how workers reach the scheduler
(network mode) and how commands reach Slurm (submit transport).

`validate_request(preset, request, user_accounts)` is pure: a request that
breaks the preset is refused before anything is submitted, with an
`ARCRequestError` naming the field and the allowed values.

>>> p = example_preset()
>>> validate_request(p, {"account": "def-alice", "walltime": "8-00:00:00"}, ["def-alice"])
Traceback (most recent call last):
...
scip_jupyter.arc.presets.ARCRequestError: walltime: 8-00:00:00 is over the maximum of cluster 'demo' (7-00:00:00); allowed values: 03:00:00, 12:00:00, 1-00:00:00, 3-00:00:00, 7-00:00:00, or any time up to 7-00:00:00
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Sequence, Union

from dask.utils import format_bytes, parse_bytes
from pydantic import AfterValidator, Field, field_validator, model_validator

from ..catalog import SLUG_RE
from ..config import ConfigError, ConfigProblem, StrictModel, load_yaml, require_unique, validate_data
from ..i18n import _
from ..options import OptionsError
from ..storage import JurisdictionError, check_jurisdiction, within

#: A MIG slice as Slurm names it: `<model>_<g>g.<mem>gb`, e.g. h100_1g.10gb or nvidia_h100_80gb_hbm3_3g.40gb.
MIG_RE = re.compile(r"_(\d)g\.(\d+)gb$")
#: Environment variable naming the presets file.
ENV_PRESETS = "SCIP_ARC_PRESETS"


# ---------------------------------------------------------------- walltime

_WALLTIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_walltime(value: str | int) -> int:
    """Seconds in a Slurm time string (all of sbatch's --time forms).

    >>> [parse_walltime(v) for v in ("30", "30:00", "01:00:00", "2-00", "2-03:00", "1-00:00:30", 90)]
    [1800, 1800, 3600, 172800, 183600, 86430, 5400]
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value * 60  # sbatch reads a bare number as minutes
    text = str(value).strip()
    m = _WALLTIME_RE.match(text)
    if not m:
        raise ValueError(_("{value} is not a Slurm time like 03:00:00, 2-00:00:00 or 90 (minutes)").format(value=repr(value)))
    days, a, b, c = m.groups()
    if days is not None:  # d-h, d-h:m, d-h:m:s
        d, h, mi, s = int(days), int(a), int(b or 0), int(c or 0)
    elif c is not None:  # h:m:s
        d, h, mi, s = 0, int(a), int(b), int(c)
    elif b is not None:  # m:s
        d, h, mi, s = 0, 0, int(a), int(b)
    else:  # m
        d, h, mi, s = 0, 0, int(a), 0
    return ((d * 24 + h) * 60 + mi) * 60 + s


def format_walltime(seconds: int) -> str:
    """Slurm's own layout: HH:MM:SS, or D-HH:MM:SS from one day.

    >>> format_walltime(3600), format_walltime(7 * 86400), format_walltime(90061)
    ('01:00:00', '7-00:00:00', '1-01:01:01')
    """
    d, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d}-{h:02d}:{m:02d}:{s:02d}" if d else f"{h:02d}:{m:02d}:{s:02d}"


def slurm_memory(n: int) -> str:
    """Bytes as Slurm writes memory (K/M/G/T, rounded up).

    >>> slurm_memory(40 * 2**30), slurm_memory(1536 * 2**20)
    ('40G', '2G')
    """
    for unit, size in (("T", 2**40), ("G", 2**30), ("M", 2**20)):
        if n >= size:
            return f"{math.ceil(n / size)}{unit}"
    return f"{max(1, math.ceil(n / 1024))}K"


def is_mig(gpu_type: str) -> bool:
    """Is this Slurm GPU type a MIG slice?

    >>> is_mig("h100_1g.10gb"), is_mig("nvidia_h100_80gb_hbm3_3g.40gb"), is_mig("h100")
    (True, True, False)
    """
    return bool(MIG_RE.search(gpu_type))


# ---------------------------------------------------------------- models


class WalltimeRules(StrictModel):
    tiers: list[str] = Field(description="Walltimes the scheduler favours, shortest first (e.g. 03:00:00, 12:00:00).")
    maximum: str = Field(description="Longest walltime a job may ask for.")
    default: str | None = Field(None, description="Walltime when the user gives none (default: the first tier).")
    minimum: str | None = Field(None, description="Shortest walltime the site accepts, if it has a rule.")

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, v: list[str]) -> list[str]:
        secs = [parse_walltime(t) for t in v]
        if secs != sorted(secs):
            raise ValueError(_("tiers must go from shortest to longest"))
        return [format_walltime(s) for s in secs]

    @field_validator("maximum", "default", "minimum")
    @classmethod
    def _time(cls, v: str | None) -> str | None:
        return None if v is None else format_walltime(parse_walltime(v))

    @model_validator(mode="after")
    def _consistent(self):
        top = parse_walltime(self.maximum)
        if any(parse_walltime(t) > top for t in self.tiers):
            raise ValueError(_("a tier is longer than the maximum {maximum}").format(maximum=self.maximum))
        if self.default and parse_walltime(self.default) > top:
            raise ValueError(_("default {default} is longer than the maximum {maximum}").format(
                default=self.default, maximum=self.maximum))
        return self

    @property
    def maximum_seconds(self) -> int:
        return parse_walltime(self.maximum)

    def allowed(self) -> list[str]:
        return [*self.tiers, _("or any time up to {maximum}").format(maximum=self.maximum)]


class AccountRules(StrictModel):
    patterns: list[str] = Field(description="Account names the cluster uses, as shell patterns (def-*, rrg-*).")
    source: Literal["sacctmgr", "config"] = Field(
        "config", description="Where a user's accounts come from: `sacctmgr` (only on a local transport) or `users` below."
    )
    users: dict[str, list[str]] = Field(
        default_factory=dict, description="user -> accounts; the key '*' gives accounts to every user."
    )
    default: str | None = Field(None, description="Account used when the request names none and the user has it.")

    @model_validator(mode="after")
    def _users_match(self):
        for user, accounts in self.users.items():
            for a in accounts:
                if not self.matches(a):
                    raise ValueError(_("users.{user}: account {account} matches none of {patterns}").format(
                        user=user, account=repr(a), patterns=", ".join(self.patterns)))
        return self

    def matches(self, account: str) -> bool:
        return any(fnmatch.fnmatchcase(account, p) for p in self.patterns)

    def configured_for(self, user: str) -> list[str]:
        out = list(self.users.get(user, []))
        out += [a for a in self.users.get("*", []) if a not in out]
        return out


class NetworkConfig(StrictModel):
    mode: Literal["connect-back", "in-job"] = Field(
        description="connect-back: workers on compute nodes connect to the scheduler in the notebook (TLS); "
        "in-job: scheduler and workers run inside one Slurm job (compute nodes cannot reach the notebook)."
    )
    contact_host: str | None = Field(
        None, description="Host name or address of the notebook as compute nodes reach it (connect-back)."
    )
    port: int = Field(0, ge=0, le=65535, description="Scheduler port; 0 picks a free one (connect-back).")
    listen_host: str = Field("127.0.0.1", description="Address the scheduler binds to (connect-back).")

    @model_validator(mode="after")
    def _contact(self):
        if self.mode == "connect-back" and not self.contact_host:
            raise ValueError(_("connect-back needs contact_host (how compute nodes reach the notebook)"))
        return self


class LocalTransportConfig(StrictModel):
    kind: Literal["local"]
    slurm_conf: str | None = Field(None, description="slurm.conf of the cluster; relative to this file.")


class SSHTransportConfig(StrictModel):
    kind: Literal["ssh"]
    host: str = Field(description="Login or automation node (e.g. robot.fir.alliancecan.ca).")
    port: int = Field(22, ge=1, le=65535)
    user: str | None = Field(None, description="Remote account; default: the local user name.")
    key: str | None = Field(None, description="Private key path (~ allowed), restricted on the node to Slurm commands.")
    known_hosts: str | None = Field(None, description="known_hosts path; default ~/.ssh/known_hosts. Host keys are always checked.")
    credentials: Literal["key", "hub"] = Field(
        "key", description="key: the `key` file (and its -cert.pub); hub: a short-lived certificate the hub signs for this person (issue 9)."
    )


class RestTransportConfig(StrictModel):
    """slurmrestd with per-person JWTs (scip_jupyter/arc/rest.py; issue 9)."""

    kind: Literal["rest"]
    url: str = Field(description="slurmrestd base URL, e.g. http://127.0.0.1:6820 (no path).")
    api_version: str = Field("v0.0.38", description="Slurm REST API version in the paths.")
    credentials: Literal["hub", "env"] = Field(
        "hub", description="hub: the server fetches its person's token from the hub (renewed); env: $SLURM_JWT."
    )


TransportConfig = Annotated[
    Union[LocalTransportConfig, SSHTransportConfig, RestTransportConfig], Field(discriminator="kind")
]


def _memory_text(value: str) -> str:
    parse_bytes(value)  # raises ValueError naming the value
    return value


#: A memory size as dask writes it (2GiB, 512MB), kept as written.
Memory = Annotated[str, AfterValidator(_memory_text)]


class WorkerDefaults(StrictModel):
    cores: int = Field(1, ge=1, le=1024)
    memory: Memory = Field("2GiB", description="Memory per worker job, e.g. 2GiB.")
    processes: int = Field(1, ge=1, le=256)


class Limits(StrictModel):
    max_cores: int = Field(64, ge=1, description="Most cores one worker job may ask for.")
    max_memory: Memory = Field("256GiB", description="Most memory one worker job may ask for.")
    max_gpus_per_node: int = Field(4, ge=0, le=16)


class ClusterPreset(StrictModel):
    name: str = Field(description="Preset name users pick (lowercase, digits, '-').")
    display_name: str = ""
    description: str = ""
    site: str
    jurisdiction: str
    partitions: list[str] = Field(min_length=1)
    default_partition: str | None = Field(None, description="Partition for CPU jobs; none lets Slurm route the job.")
    gpu_partition: str | None = Field(None, description="Partition for GPU jobs when the request names none.")
    gpu_types: list[str] = Field(default_factory=list, description="GPU types as Slurm names, MIG slices included.")
    gpu_directive: Literal["gpus-per-node", "gres"] = "gpus-per-node"
    accounts: AccountRules
    walltime: WalltimeRules
    max_jobs_per_user: int = Field(1000, ge=1, description="Pending + running jobs per user; each array task counts.")
    max_array_size: int = Field(1001, ge=1, description="Slurm MaxArraySize: array indices stay below it.")
    network: NetworkConfig
    transport: TransportConfig
    storage: dict[Literal["project", "scratch", "course"], str] = Field(
        default_factory=dict,
        description="Where data lives on this cluster, as path templates ({group}, {user}, {course}), e.g. "
        "{project: /project/{group}, scratch: /scratch/{user}}; notebook pods mount the same paths (scip_jupyter.storage).",
    )
    worker: WorkerDefaults = WorkerDefaults()
    limits: Limits = Limits()
    local_directory: str = Field(
        "${SLURM_TMPDIR:-/tmp}", description="Worker spill directory (node-local; evaluated in the job)."
    )
    log_directory: str | None = Field(
        None, description="Folder for job output on the cluster; default: a private folder (local) or Slurm's default."
    )
    job_script_prologue: list[str] = Field(default_factory=list, description="Lines run before the worker (module loads).")
    unavailable_hint: str = Field("", description="What to check when Slurm does not answer.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not SLUG_RE.match(v):  # preset names follow the catalog's slug rule
            raise ValueError(_("{name} must be 1-40 lowercase letters, digits or '-'").format(name=repr(v)))
        return v

    @field_validator("gpu_types")
    @classmethod
    def _gpu_types(cls, v: list[str]) -> list[str]:
        for t in v:
            if not re.match(r"^[a-z0-9_.]+$", t):
                raise ValueError(_("{gpu_type} is not a Slurm GPU type name (lowercase, digits, '_', '.')").format(
                    gpu_type=repr(t)))
        return v

    @model_validator(mode="after")
    def _partitions(self):
        for key in ("default_partition", "gpu_partition"):
            value = getattr(self, key)
            if value is not None and value not in self.partitions:
                raise ValueError(_("{key} {value} is not one of partitions: {partitions}").format(
                    key=key, value=repr(value), partitions=", ".join(self.partitions)))
        return self

    @property
    def full_gpu_types(self) -> list[str]:
        return [t for t in self.gpu_types if not is_mig(t)]

    @property
    def mig_types(self) -> list[str]:
        return [t for t in self.gpu_types if is_mig(t)]


class PresetFile(StrictModel):
    clusters: list[ClusterPreset] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        require_unique([p.name for p in self.clusters], _("preset name"))
        return self

    def get(self, name: str) -> ClusterPreset:
        for p in self.clusters:
            if p.name == name:
                return p
        raise ARCRequestError("preset", _("unknown preset {name}").format(name=repr(name)), self.names())

    def names(self) -> list[str]:
        return [p.name for p in self.clusters]


# ---------------------------------------------------------------- loading


def load_presets(path: str | os.PathLike) -> PresetFile:
    """Load and validate arc.yaml; raises ConfigError with `file:line: field: problem` lines.

    Relative `slurm_conf` paths are made absolute from the file's folder.
    """
    path = Path(path)
    data, lines = load_yaml(path)
    presets = validate_data(PresetFile, data, lines, str(path))
    fixed = []
    for p in presets.clusters:
        t = p.transport
        if isinstance(t, LocalTransportConfig) and t.slurm_conf and not os.path.isabs(os.path.expanduser(t.slurm_conf)):
            t = t.model_copy(update={"slurm_conf": str((path.parent / t.slurm_conf).resolve())})
            p = p.model_copy(update={"transport": t})
        fixed.append(p)
    return presets.model_copy(update={"clusters": fixed})


def default_presets_path() -> Path:
    """$SCIP_ARC_PRESETS, else the arc.yaml shipped in the installed package (scip_jupyter.data)."""
    env = os.environ.get(ENV_PRESETS)
    if env:
        return Path(env).expanduser()
    from .. import data

    return data.path("arc.yaml")


def load_default_presets() -> PresetFile:
    path = default_presets_path()
    if not path.exists():
        raise ConfigError([ConfigProblem(str(path), 1, "(file)", _("no ARC presets file; set {variable}").format(variable=ENV_PRESETS))])
    return load_presets(path)


# ---------------------------------------------------------------- requests


class ARCRequestError(OptionsError):
    """A request that breaks a preset; names the field and the allowed values.

    `field` and `allowed` stay as the code knows them; `problem` and the words around them are in
    the language of the notebook (or request) where it was raised (scip_jupyter.i18n).
    """

    def __str__(self) -> str:
        allowed = ", ".join(self.allowed) if self.allowed else _("(none for your groups)")
        return _("{field}: {problem}; allowed values: {allowed}").format(
            field=self.field, problem=self.problem, allowed=allowed)


def up_to(maximum: str) -> str:
    """The allowed-values hint for a quantity with only a maximum (memory).

    >>> up_to("256GiB")
    'up to 256GiB'
    """
    return _("up to {maximum}").format(maximum=maximum)


#: Fields a request may carry (the launcher widget and ARCCluster use the same names).
REQUEST_FIELDS = (
    "account", "partition", "gpu_type", "gpus", "memory_per_gpu", "walltime",
    "cores", "memory", "processes", "workers",
)


@dataclass(frozen=True)
class ValidRequest:
    """A request checked against its preset, with every default filled in."""

    preset: str
    account: str
    partition: str | None
    gpu_type: str | None
    gpus: int
    memory_per_gpu: str | None
    walltime_seconds: int
    cores: int
    memory: int  # bytes per worker job
    processes: int
    workers: int
    notes: tuple[str, ...] = field(default=())

    @property
    def walltime(self) -> str:
        return format_walltime(self.walltime_seconds)

    @property
    def jobs(self) -> int:
        """Slurm jobs (array tasks) for `workers` Dask workers."""
        return math.ceil(self.workers / self.processes)


def _int(raw: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = raw.get(key, None)
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError):
        raise ARCRequestError(key, _("{value} is not a whole number").format(value=repr(value)), [f"{lo}..{hi}"]) from None
    if not lo <= number <= hi:
        raise ARCRequestError(key, _("{value} is out of range").format(value=number), [f"{lo}..{hi}"])
    return number


def _bytes(raw: Mapping[str, Any], key: str, default: str | None) -> int | None:
    value = raw.get(key, None)
    if value is None or value == "":
        return parse_bytes(default) if default else None
    try:
        return parse_bytes(value) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ARCRequestError(key, _("{value} is not an amount of memory").format(value=repr(value)),
                              [_("e.g. 2GiB, 512MiB")]) from None


def validate_request(
    preset: ClusterPreset, raw: Mapping[str, Any], user_accounts: Sequence[str]
) -> ValidRequest:
    """Check a request against a preset (pure). Returns it normalised, or raises ARCRequestError."""
    if not isinstance(raw, Mapping):
        raise ARCRequestError("request", _("must be a mapping of fields"), list(REQUEST_FIELDS))
    unknown = sorted(k for k in raw if k not in REQUEST_FIELDS)
    if unknown:
        raise ARCRequestError(unknown[0], _("unknown field"), list(REQUEST_FIELDS))
    notes: list[str] = []

    # account: the cluster's naming rules, and one of the user's own accounts
    rules = preset.accounts
    mine = [a for a in user_accounts if rules.matches(a)]
    account = raw.get("account") or None
    if account is None:
        account = rules.default if rules.default in mine else (mine[0] if mine else None)
        if account is None:
            raise ARCRequestError("account", _("you have no account on cluster {name!r}").format(name=preset.name), [],
                                  status=403)
    if not isinstance(account, str) or not rules.matches(account):
        raise ARCRequestError(
            "account", _("{account} is not an account name on cluster {name}").format(account=repr(account), name=repr(preset.name)),
            mine or rules.patterns,
        )
    if account not in mine:
        raise ARCRequestError("account", _("{account} is not one of your accounts on cluster {name}").format(
            account=repr(account), name=repr(preset.name)), mine, status=403)

    # GPUs: a type the cluster has; a MIG slice is one per job
    gpus = _int(raw, "gpus", 0, 0, preset.limits.max_gpus_per_node)
    gpu_type = raw.get("gpu_type") or None
    if gpu_type is not None and not gpus:
        gpus = 1
    if gpus:
        if not preset.gpu_types:
            raise ARCRequestError("gpus", _("cluster {name} has no GPUs").format(name=repr(preset.name)), ["0"])
        if gpu_type is None:
            gpu_type = (preset.full_gpu_types or preset.gpu_types)[0]
        if gpu_type not in preset.gpu_types:
            raise ARCRequestError("gpu_type", _("{gpu_type} is not a GPU type on cluster {name}").format(
                gpu_type=repr(gpu_type), name=repr(preset.name)), preset.gpu_types)
        if is_mig(gpu_type) and gpus != 1:
            raise ARCRequestError("gpus", _("a MIG slice ({gpu_type}) is one per job").format(gpu_type=gpu_type), ["1"])
    memory_per_gpu = raw.get("memory_per_gpu") or None
    if memory_per_gpu is not None:
        if not gpus:
            raise ARCRequestError("memory_per_gpu", _("only applies to GPU requests (set gpus first)"), [])
        memory_per_gpu = slurm_memory(_bytes(raw, "memory_per_gpu", None))

    # partition
    partition = raw.get("partition") or None
    if partition is None:
        partition = preset.gpu_partition if gpus and preset.gpu_partition else preset.default_partition
    elif partition not in preset.partitions:
        raise ARCRequestError("partition", _("{partition} is not a partition of cluster {name}").format(
            partition=repr(partition), name=repr(preset.name)), preset.partitions)

    # walltime
    wt = preset.walltime
    walltime_raw = raw.get("walltime") or wt.default or wt.tiers[0]
    try:
        walltime = parse_walltime(walltime_raw)
    except ValueError as exc:
        raise ARCRequestError("walltime", str(exc), wt.allowed()) from None
    if walltime <= 0:
        raise ARCRequestError("walltime", _("must be longer than zero"), wt.allowed())
    if walltime > wt.maximum_seconds:
        raise ARCRequestError(
            "walltime", _("{walltime} is over the maximum of cluster {name} ({maximum})").format(
                walltime=format_walltime(walltime), name=repr(preset.name), maximum=wt.maximum), wt.allowed()
        )
    if wt.minimum and walltime < parse_walltime(wt.minimum):
        raise ARCRequestError(
            "walltime", _("{walltime} is under the minimum of cluster {name} ({minimum})").format(
                walltime=format_walltime(walltime), name=repr(preset.name), minimum=wt.minimum), wt.allowed()
        )

    # worker shape
    cores = _int(raw, "cores", preset.worker.cores, 1, preset.limits.max_cores)
    processes = _int(raw, "processes", min(preset.worker.processes, cores), 1, cores)
    memory = _bytes(raw, "memory", preset.worker.memory)
    if memory <= 0 or memory > parse_bytes(preset.limits.max_memory):
        raise ARCRequestError("memory", _("{value} is out of range").format(value=format_bytes(memory)),
                              [up_to(preset.limits.max_memory)])
    max_workers = preset.max_jobs_per_user * processes
    workers = _int(raw, "workers", 0, 0, max_workers)
    return ValidRequest(
        preset=preset.name, account=account, partition=partition, gpu_type=gpu_type, gpus=gpus,
        memory_per_gpu=memory_per_gpu, walltime_seconds=walltime, cores=cores, memory=memory,
        processes=processes, workers=workers, notes=tuple(notes),
    )


def check_scale(preset: ClusterPreset, jobs: int) -> None:
    """Refuse a scale-up past the cluster's per-user job limit (every array task counts)."""
    limit = min(preset.max_jobs_per_user, preset.max_array_size)
    if jobs > limit:
        raise ARCRequestError(
            "workers", _("{jobs} jobs exceed the limit of cluster {name} ({limit} jobs per user; each array task counts)")
            .format(jobs=jobs, name=repr(preset.name), limit=limit),
            [_("0..{limit} jobs").format(limit=limit)],
        )


class ARCPresetRefused(ARCRequestError):
    """A preset this notebook cannot use at all; the message names the field and what to use instead."""

    def __str__(self) -> str:
        return self.problem  # it names the field and what fits already


class ARCJurisdictionError(ARCPresetRefused, JurisdictionError):
    """A preset where a project's data may not go (field `project`, 403); the message names the
    project, both jurisdictions and the presets that fit (`storage.check_jurisdiction`)."""


def check_connect_back(preset: ClusterPreset, candidates: Sequence[ClusterPreset] = ()) -> None:
    """Refuse an in-job preset where workers must connect back to the notebook (ARCCluster, the
    launcher): its compute nodes cannot reach the notebook. Names InJobRun and the connect-back
    presets among `candidates`.

    >>> check_connect_back(example_preset(name="rorqual", network={"mode": "in-job"}), [example_preset()])
    Traceback (most recent call last):
    ...
    scip_jupyter.arc.presets.ARCPresetRefused: preset: 'rorqual' runs Dask inside one Slurm job (network mode in-job): its compute nodes cannot reach this notebook, so workers cannot connect back. Use InJobRun(func, preset='rorqual') (scip_jupyter.arc.injob) for it, or a preset whose workers connect back: demo
    """
    if preset.network.mode == "connect-back":
        return
    fitting = [q.name for q in candidates if q.network.mode == "connect-back"]
    problem = _("preset: {name!r} runs Dask inside one Slurm job (network mode in-job): its compute nodes cannot "
                "reach this notebook, so workers cannot connect back. Use InJobRun(func, preset={name!r}) "
                "(scip_jupyter.arc.injob) for it").format(name=preset.name)
    if fitting:
        problem += _(", or a preset whose workers connect back: {names}").format(names=", ".join(fitting))
    raise ARCPresetRefused("preset", problem, fitting)


def check_data_jurisdiction(preset: ClusterPreset, data: Mapping[str, str],
                            candidates: Sequence[ClusterPreset] = ()) -> None:
    """Refuse `preset` when the data of a project in `data` ({project: jurisdiction}, the projects
    whose data the notebook holds: `storage.parse_data_jurisdictions`) may not go where it runs.

    The spawn's rule, reused (`storage.check_jurisdiction`); `candidates` are the presets the
    message may offer, and those within every project's jurisdiction are named.

    >>> fir, local = example_preset(name="fir", jurisdiction="CA-BC"), example_preset(name="local")
    >>> check_data_jurisdiction(fir, {"lab-bc": "CA-BC"})
    >>> check_data_jurisdiction(local, {"lab-bc": "CA-BC"}, [local, fir])
    Traceback (most recent call last):
    ...
    scip_jupyter.arc.presets.ARCJurisdictionError: project: the data of lab-bc must stay in CA-BC; cluster preset 'local' (site demo-site) runs in CA. Choose one in CA-BC: fir
    """
    fitting = [q.name for q in candidates if all(within(q.jurisdiction, d) for d in data.values())]
    for project in sorted(data):
        try:
            check_jurisdiction(
                project, data[project],
                _("cluster preset {name!r} (site {site})").format(name=preset.name, site=preset.site),
                preset.jurisdiction, fitting, none_fit=_("No cluster preset runs there; ask your project lead."))
        except JurisdictionError as exc:
            raise ARCJurisdictionError("project", str(exc), fitting, status=403) from None


# ---------------------------------------------------------------- accounts


def parse_sacctmgr_accounts(text: str) -> list[str]:
    """Accounts from `sacctmgr -nP show assoc where user=U format=account`.

    >>> parse_sacctmgr_accounts("def-smith\\nrrg-smith\\ndef-smith\\n\\n")
    ['def-smith', 'rrg-smith']
    """
    out: list[str] = []
    for line in text.splitlines():
        name = line.strip().split("|")[0].strip()
        if name and name not in out:
            out.append(name)
    return out


def sacctmgr_argv(user: str) -> list[str]:
    return ["sacctmgr", "-nP", "show", "assoc", "where", f"user={user}", "format=account"]


def example_preset(**overrides) -> ClusterPreset:
    """A small preset for doctests and unit tests."""
    data = dict(
        name="demo", site="demo-site", jurisdiction="CA", partitions=["cpu", "gpu"], default_partition="cpu",
        gpu_partition="gpu", gpu_types=["h100", "h100_1g.10gb"],
        accounts={"patterns": ["def-*", "rrg-*"], "users": {"*": ["def-alice"]}},
        walltime={"tiers": ["03:00:00", "12:00:00", "24:00:00", "3-00:00:00", "7-00:00:00"], "maximum": "7-00:00:00"},
        network={"mode": "connect-back", "contact_host": "127.0.0.1"},
        transport={"kind": "local"},
    )
    data.update(overrides)
    return ClusterPreset.model_validate(data)
