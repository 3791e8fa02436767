"""SLURMCluster's keyword arguments and dask-jobqueue's configuration, as ARCCluster takes them.

ARCCluster is a drop-in for dask-jobqueue's `SLURMCluster`: code written for
SLURMCluster runs after changing the class name. `PARAMETERS` says, for every
keyword argument of `SLURMCluster` (`JobQueueCluster`, `SLURMJob`, `Job`), what
ARCCluster does with it (the table in docs/arc.md comes from it, and a test
fails when dask-jobqueue grows a parameter this table does not know):

- `request`: taken as part of the request and validated against the preset
  like ARCCluster's own fields (`queue` is the partition, `account` the account);
- `composed`: the preset's value first, then the user's (prologue lines run
  after the preset's; directives and worker arguments come after ARC's own);
- `override`: the user's value replaces the preset's default (interface,
  security, shared temporary directory, spill and log folders, job name);
- `passed`: checked, then given to SLURMCluster unchanged;
- `deprecated`: dask-jobqueue's old name, taken as the new one with
  dask-jobqueue's FutureWarning;
- `refused`: refused with a message naming the argument, why, and what to use.

`compose()` is pure: from the preset, the arguments the user gave and the
user's own dask-jobqueue configuration (`user_config()`: the `jobqueue.slurm`
values that differ from dask-jobqueue's shipped `jobqueue.yaml`), it returns
what ARCCluster passes on, plus the warnings to show. Precedence: an argument
> the user's configuration > the preset > dask-jobqueue's defaults. A
configured value that the preset cannot take (a partition the cluster does not
have, an interface where the preset fixes the network, ...) is not used, and a
warning names both values: never silently dropped.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from dask.utils import parse_bytes

from ..i18n import _
from .jobs import DIRECTIVE_FIELDS, GPU_OPTIONS, parse_gpu_directive, split_directive
from .presets import ARCRequestError, ClusterPreset, ValidRequest, up_to, validate_request

REQUEST, COMPOSED, OVERRIDE, PASSED, DEPRECATED, REFUSED = (
    "request", "composed", "override", "passed", "deprecated", "refused",
)


@dataclass(frozen=True)
class Param:
    """How ARCCluster treats one SLURMCluster keyword argument."""

    kind: str
    what: str  # one line for the docs table (English)
    target: str | None = None  # request field (request) or the new name (deprecated)
    config: str | None = None  # its key in jobqueue.<section>, if dask-jobqueue reads one


PARAMETERS: dict[str, Param] = {
    # JobQueueCluster
    "n_workers": Param(REQUEST, "workers started at once, counted against the per-user job limit", "workers"),
    "job_cls": Param(PASSED, "a subclass of `ARCJob` (others would bypass the transport and arrays)"),
    "loop": Param(PASSED, "unchanged"),
    "security": Param(OVERRIDE, "a `Security` with TLS replaces the temporary credentials; `True` = temporary; "
                      "no TLS is refused (workers connect back over the network)"),
    "shared_temp_directory": Param(OVERRIDE, "where the worker's TLS files are written (default: a private "
                                   "`~/.cache/scip-jupyter/arc-tls`)", config="shared-temp-directory"),
    "silence_logs": Param(PASSED, "unchanged"),
    "name": Param(PASSED, "cluster name, prefix of worker names (`<name>-<array index>`)"),
    "asynchronous": Param(PASSED, "unchanged"),
    "dashboard_address": Param(REFUSED, "refused, as SLURMCluster refuses it: use "
                               "`scheduler_options={'dashboard_address': ...}`"),
    "host": Param(REFUSED, "refused, as SLURMCluster refuses it: use `scheduler_options={'host': ...}`"),
    "scheduler_options": Param(OVERRIDE, "merged over the preset's network; `host`/`interface` replace the "
                               "preset's listen and contact address", config="scheduler-options"),
    "scheduler_cls": Param(PASSED, "unchanged"),
    "interface": Param(OVERRIDE, "workers and scheduler use this interface instead of the preset's addresses",
                       config="interface"),
    "protocol": Param(PASSED, "`tls://` only (connect-back is always TLS)"),
    "config_name": Param(PASSED, "the `jobqueue.<name>` configuration section to read (default `slurm`)"),
    # SLURMJob
    "queue": Param(REQUEST, "the partition, validated like `partition`", "partition", config="queue"),
    "project": Param(DEPRECATED, "old name of `account`", "account", config="project"),
    "account": Param(REQUEST, "validated against the user's accounts on the cluster", "account", config="account"),
    "walltime": Param(REQUEST, "validated against the preset's maximum (and minimum)", "walltime",
                      config="walltime"),
    "job_cpu": Param(PASSED, "`--cpus-per-task`, up to the preset's `max_cores`", config="job-cpu"),
    "job_mem": Param(PASSED, "`--mem`, up to the preset's `max_memory`; not with `memory_per_gpu`",
                     config="job-mem"),
    # Job
    "cores": Param(REQUEST, "validated against the preset's limits", "cores", config="cores"),
    "memory": Param(REQUEST, "validated against the preset's limits", "memory", config="memory"),
    "processes": Param(REQUEST, "at most `cores` (default: the preset's worker shape)", "processes",
                       config="processes"),
    "nanny": Param(PASSED, "unchanged"),
    "death_timeout": Param(PASSED, "unchanged (seconds)", config="death-timeout"),
    "local_directory": Param(OVERRIDE, "replaces the preset's spill folder (`${SLURM_TMPDIR:-/tmp}`)",
                             config="local-directory"),
    "extra": Param(DEPRECATED, "old name of `worker_extra_args`", "worker_extra_args", config="extra"),
    "worker_command": Param(PASSED, "unchanged", config="worker-command"),
    "worker_extra_args": Param(COMPOSED, "after ARC's `--lifetime`/`--lifetime-stagger` (yours win)",
                               config="worker-extra-args"),
    "job_extra": Param(DEPRECATED, "old name of `job_extra_directives`", "job_extra_directives", config="job-extra"),
    "job_extra_directives": Param(COMPOSED, "after ARC's (tags, GPUs, logs); `-p`, `-A`, `-t`, GPU, `--mem*`, `-c`, "
                                  "`-J` lines are read as the request; `--array` and `--comment` are refused",
                                  config="job-extra-directives"),
    "env_extra": Param(DEPRECATED, "old name of `job_script_prologue`", "job_script_prologue", config="env-extra"),
    "job_script_prologue": Param(COMPOSED, "run after the preset's own prologue lines",
                                 config="job-script-prologue"),
    "header_skip": Param(DEPRECATED, "old name of `job_directives_skip`", "job_directives_skip",
                         config="header-skip"),
    "job_directives_skip": Param(COMPOSED, "with ARC's own; as in SLURMCluster it skips header lines (`-p`, `-A`, "
                                 "`--mem`, ...), never the extra directives (ARC's tags, GPUs, logs)",
                                 config="job-directives-skip"),
    "log_directory": Param(OVERRIDE, "Slurm output folder instead of the preset's (or the private default)",
                           config="log-directory"),
    "shebang": Param(PASSED, "unchanged", config="shebang"),
    "python": Param(PASSED, "unchanged (default: this Python)", config="python"),
    "job_name": Param(OVERRIDE, "`-J` instead of `scip-dask-worker-<user>-<server>` (tags stay in `--comment`)",
                      config="name"),
}

#: Configuration keys ARCCluster resolves itself, so dask-jobqueue must not read them again.
RESOLVED_CONFIG = ("queue", "account", "project", "walltime", "log-directory", "interface", "extra",
                   "env-extra", "job-extra", "header-skip", "job-cpu", "job-mem")

_CONFIG_TO_PARAM = {p.config: name for name, p in PARAMETERS.items() if p.config}


# ---------------------------------------------------------------- configuration


@functools.lru_cache(maxsize=1)
def shipped_config() -> dict[str, Any]:
    """dask-jobqueue's own `jobqueue.slurm` defaults, from the jobqueue.yaml it ships."""
    import dask_jobqueue
    import yaml

    with open(Path(dask_jobqueue.__file__).parent / "jobqueue.yaml") as f:
        return dict(yaml.safe_load(f)["jobqueue"]["slurm"])


def user_settings(section: Mapping[str, Any], shipped: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The keyword arguments a user's `jobqueue.<section>` configuration sets (pure): the values that
    differ from dask-jobqueue's shipped defaults (which every installation has).

    >>> user_settings({"queue": "regular", "walltime": "00:30:00", "job_script_prologue": ["module load x"]},
    ...               {"queue": None, "walltime": "00:30:00", "job-script-prologue": []})
    {'queue': 'regular', 'job_script_prologue': ['module load x']}
    """
    shipped = shipped_config() if shipped is None else shipped
    out: dict[str, Any] = {}
    for key, value in section.items():
        key = key.replace("_", "-")
        param = _CONFIG_TO_PARAM.get(key)
        if param is None:
            continue
        default = shipped.get(key)
        if value is None or value == default:
            continue
        out[param] = value
    return out


def user_config(config_name: str = "slurm") -> dict[str, Any]:
    """`user_settings` of the live dask configuration (`jobqueue.yaml`, `DASK_JOBQUEUE__...`, dask.config.set)."""
    import dask.config

    jobqueue = dask.config.get("jobqueue", {}) or {}
    if config_name not in jobqueue:
        raise ARCRequestError(
            "config_name", _("there is no jobqueue.{name} section in the dask configuration").format(name=config_name),
            sorted(jobqueue) or ["slurm"],
        )
    return user_settings(jobqueue[config_name] or {})


# ---------------------------------------------------------------- directives


def _forbidden_directives() -> dict[str, str]:
    return {
        "--array": _("ARCCluster submits arrays itself; use cluster.scale(n), or array=False for one job per worker"),
        "-a": _("ARCCluster submits arrays itself; use cluster.scale(n), or array=False for one job per worker"),
        "--comment": _("the comment carries the job's tags, which let the hub cancel orphaned jobs; "
                       "use tags=JobTags(...)"),
    }


# ---------------------------------------------------------------- composition


@dataclass
class Composition:
    """What ARCCluster passes on, from the preset, the arguments and the user's configuration."""

    explicit: dict[str, Any] = field(default_factory=dict)  # request fields from arguments
    configured: dict[str, Any] = field(default_factory=dict)  # request fields from configuration
    sources: dict[str, str] = field(default_factory=dict)  # request field -> where it came from (for messages)
    job: dict[str, Any] = field(default_factory=dict)  # SLURMJob keyword arguments to add or replace
    prologue: list[str] = field(default_factory=list)  # after the preset's lines
    worker_extra_args: list[str] = field(default_factory=list)  # after ARC's
    job_extra_directives: list[str] = field(default_factory=list)  # after ARC's
    job_directives_skip: list[str] = field(default_factory=list)  # with ARC's
    cluster: dict[str, Any] = field(default_factory=dict)  # JobQueueCluster keyword arguments
    scheduler_options: dict[str, Any] = field(default_factory=dict)
    network_overridden: bool = False
    warnings: list[str] = field(default_factory=list)  # conflicts with the preset (UserWarning)
    deprecations: list[str] = field(default_factory=list)  # old names (FutureWarning)


def _refuse(name: str, problem: str, allowed: Sequence[str]) -> ARCRequestError:
    return ARCRequestError(name, problem, list(allowed))


def _lines(name: str, value: Any) -> list[str]:
    """A list of one-line strings (a lone string is refused: dask-jobqueue would split it into characters)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _refuse(name, _("must be a list of strings, not {kind}").format(kind=type(value).__name__),
                      [f"{name}=[{value!r}]" if isinstance(value, str) else f"{name}=['...']"])
    out = []
    for item in value:
        if not isinstance(item, str):
            raise _refuse(name, _("{item!r} is not a string").format(item=item), [f"{name}=['...']"])
        if "\n" in item or "\r" in item:
            raise _refuse(name, _("{item!r} spans several lines: give one list item per line").format(item=item),
                          [f"{name}={item.splitlines()!r}"])
        out.append(item)
    return out


def _text(name: str, value: Any, pattern: str | None = None, example: str = "...") -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value or "\n" in value or "\r" in value:
        raise _refuse(name, _("{value!r} is not a one-line text").format(value=value), [example])
    if pattern and not re.fullmatch(pattern, value):
        raise _refuse(name, _("{value!r} has characters a Slurm job script cannot carry safely").format(value=value),
                      [example])
    return value


NAME_RE = r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}"
JOB_NAME_RE = r"[A-Za-z0-9_.@+=:,%-]{1,128}"


@dataclass
class _Inputs:
    """The arguments given (not None) and the user's configuration, with where each value came from."""

    given: dict[str, Any]
    config: dict[str, Any]
    section: str = "slurm"

    def origin(self, name: str) -> str:
        """How the user wrote it: the argument's name, or its configuration key."""
        return name if name in self.given else f"jobqueue.{self.section}.{PARAMETERS[name].config}"

    def pick(self, name: str) -> Any:
        return self.given[name] if name in self.given else self.config.get(name)

    def has(self, name: str) -> bool:
        return name in self.given or name in self.config


def compose(
    preset: ClusterPreset,
    given: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    *,
    network: Mapping[str, Any] | None = None,
    section: str = "slurm",
) -> Composition:
    """SLURMCluster arguments (`given`; None means not given) and the user's configuration (`config`,
    from `user_config`) composed with the preset (pure, but for checking that a shared temporary
    directory exists). Raises ARCRequestError for an argument the preset cannot take."""
    i = _Inputs({k: v for k, v in given.items() if v is not None}, dict(config or {}), section)
    c = Composition()
    unknown = sorted(k for k in i.given if k not in PARAMETERS)
    if unknown:
        raise _refuse(unknown[0], _("is not an argument of SLURMCluster or ARCCluster"), sorted(PARAMETERS))
    for name in sorted(i.given):
        if PARAMETERS[name].kind == REFUSED:
            raise _refuse(name, _("SLURMCluster does not take it either: the scheduler's options go in "
                                  "scheduler_options"), [f"scheduler_options={{{name!r}: {i.given[name]!r}}}"])
    _rename_deprecated(c, i)
    for name, p in PARAMETERS.items():  # arguments are validated later; configuration falls back with a warning
        if p.kind == REQUEST and i.has(name):
            (c.explicit if name in i.given else c.configured)[p.target] = i.pick(name)
            c.sources[p.target] = i.origin(name)
    _compose_directives(c, i)
    _compose_job(c, i, preset)
    _compose_folders(c, i, preset)
    _compose_network(c, preset, i, dict(network or {}))
    _compose_security(c, i.given)
    _compose_cluster(c, i)
    return c


def _rename_deprecated(c: Composition, i: _Inputs) -> None:
    """dask-jobqueue's FutureWarning, then the new name (unless that is given too: then the old one is ignored)."""
    for values in (i.given, i.config):
        for name in [k for k in values if PARAMETERS[k].kind == DEPRECATED]:
            new, value = PARAMETERS[name].target, values.pop(name)
            c.deprecations.append(_("{old} has been renamed to {new}; {old} still works for now but will be removed "
                                    "in a future version of dask-jobqueue (also check your jobqueue.yaml)")
                                  .format(old=name, new=new))
            if new not in values and not (values is i.config and new in i.given):
                values[new] = value


def _compose_directives(c: Composition, i: _Inputs) -> None:
    """job_extra_directives: lines that say what the request says are read into it; ours are refused."""
    raw = i.pick("job_extra_directives")
    if raw is None:
        return
    explicit = "job_extra_directives" in i.given
    source = i.origin("job_extra_directives")
    if isinstance(raw, Mapping):  # dask-jobqueue documents "list or dict"
        raw = [f"{k} {v}".strip() if v not in (None, "") else str(k) for k, v in raw.items()]
    for line in _lines("job_extra_directives", raw):
        option, value = split_directive(line)
        forbidden = _forbidden_directives().get(option)
        if forbidden:
            if explicit:
                raise _refuse("job_extra_directives", _("{line!r}: {why}").format(line=line, why=forbidden), [])
            c.warnings.append(_("{source}: {line!r} is not used: {why}").format(source=source, line=line, why=forbidden))
            continue
        target = DIRECTIVE_FIELDS.get(option)
        gpu = parse_gpu_directive(option, value) if option in GPU_OPTIONS else None
        if gpu is not None:
            fields = {"gpus": gpu[1], **({"gpu_type": gpu[0]} if gpu[0] else {})}
        elif target == "memory_per_gpu":
            fields = {"memory_per_gpu": value}
        elif target in ("queue", "account", "walltime"):
            fields = {PARAMETERS[target].target: value}
        elif target in ("job_mem", "job_cpu", "job_name"):
            if target in i.given and str(i.given[target]) != value:
                raise _refuse(target, _("{value!r} differs from {line!r} in job_extra_directives")
                              .format(value=i.given[target], line=line), [_("give it once")])
            if target not in i.given:
                (i.given if explicit else i.config)[target] = value
            continue
        else:
            c.job_extra_directives.append(line)
            continue
        for key, v in fields.items():
            if key in c.explicit and str(c.explicit[key]) != str(v):
                raise _refuse(c.sources.get(key, key), _("{value!r} differs from {line!r} in {source}")
                              .format(value=c.explicit[key], line=line, source=source), [_("give it once")])
            if key not in c.explicit:
                (c.explicit if explicit else c.configured)[key] = v
                c.sources[key] = f"{source} ({line!r})"


_EXAMPLES = {"python": "python='/usr/bin/python3'", "worker_command": "worker_command='distributed.cli.dask_worker'",
             "shebang": "shebang='#!/usr/bin/env bash'"}


def _compose_job(c: Composition, i: _Inputs, preset: ClusterPreset) -> None:
    """Job-level arguments: checked, then passed on (or, from the configuration, reported when out of range)."""
    limits = preset.limits
    for name in ("job_cpu", "job_mem"):
        value = i.pick(name)
        if value is None:
            continue
        c.sources[name] = i.origin(name)
        try:
            if name == "job_cpu":
                if isinstance(value, bool) or int(value) != float(value) or not 1 <= int(value) <= limits.max_cores:
                    raise ValueError
                c.job[name] = int(value)
            else:
                if not 0 < parse_bytes(value) <= parse_bytes(limits.max_memory):
                    raise ValueError
                c.job[name] = str(value).replace(" ", "")
        except (TypeError, ValueError):
            allowed = [f"1..{limits.max_cores}"] if name == "job_cpu" else [up_to(limits.max_memory)]
            problem = _("{value!r} is out of range for cluster {cluster!r}").format(value=value, cluster=preset.name)
            if name in i.given:
                raise _refuse(name, problem, allowed) from None
            c.warnings.append(_("{source}: {value!r} is not used: {problem}").format(
                source=i.origin(name), value=value, problem=problem))
    if i.has("job_name"):
        c.job["job_name"] = _text("job_name", i.pick("job_name"), JOB_NAME_RE, "job_name='my-workers'")
    for name in ("python", "worker_command", "shebang"):  # from the configuration, dask-jobqueue reads them itself
        if name in i.given:
            c.job[name] = _text(name, i.given[name], example=_EXAMPLES[name])
    if not c.job.get("shebang", "#!").startswith("#!"):
        raise _refuse("shebang", _("{value!r} does not start with #!").format(value=c.job["shebang"]),
                      [_EXAMPLES["shebang"]])
    if "nanny" in i.given:
        if not isinstance(i.given["nanny"], bool):
            raise _refuse("nanny", _("{value!r} is not True or False").format(value=i.given["nanny"]), ["True", "False"])
        c.job["nanny"] = i.given["nanny"]
    if "death_timeout" in i.given:
        value = i.given["death_timeout"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
            raise _refuse("death_timeout", _("{value!r} is not a number of seconds").format(value=value), ["60"])
        c.job["death_timeout"] = value
    if i.has("job_script_prologue"):
        c.prologue = _lines("job_script_prologue", i.pick("job_script_prologue"))
    if i.has("worker_extra_args"):
        c.worker_extra_args = [str(a) for a in _lines_or_args("worker_extra_args", i.pick("worker_extra_args"))]
    if i.has("job_directives_skip"):
        c.job_directives_skip = _lines("job_directives_skip", i.pick("job_directives_skip"))


def _compose_folders(c: Composition, i: _Inputs, preset: ClusterPreset) -> None:
    """Spill, log and shared temporary folders: an argument replaces the preset's; configuration too,
    unless the preset sets its own (then the conflict is reported)."""
    if "local_directory" in i.given:
        c.job["local_directory"] = _text("local_directory", i.given["local_directory"],
                                         example="local_directory='$SLURM_TMPDIR'")
    elif "local_directory" in i.config and i.config["local_directory"] != preset.local_directory:
        c.warnings.append(_conflict(i.origin("local_directory"), i.config["local_directory"], preset,
                                    "local_directory", preset.local_directory))
    if "log_directory" in i.given:
        c.job["log_directory"] = _text("log_directory", i.given["log_directory"], example="log_directory='logs'")
    elif "log_directory" in i.config:
        if not preset.log_directory:
            c.job["log_directory"] = _text("log_directory", i.config["log_directory"])
        elif i.config["log_directory"] != preset.log_directory:
            c.warnings.append(_conflict(i.origin("log_directory"), i.config["log_directory"], preset,
                                        "log_directory", preset.log_directory))
    name = "shared_temp_directory"
    if not i.has(name):
        return
    value = i.pick(name)
    try:
        text = _text(name, value, example=f"{name}='~/dask-tls'")
        if not os.path.isdir(os.path.expanduser(os.path.expandvars(text))):
            raise _refuse(name, _("{value!r} is not a folder").format(value=text),
                          [_("an existing folder the jobs can read, e.g. one in your home")])
    except ARCRequestError as exc:
        if name in i.given:
            raise
        c.warnings.append(_("{source}: {value!r} is not used: {problem}").format(
            source=i.origin(name), value=value, problem=exc.problem))
    else:
        c.cluster[name] = text


def _compose_cluster(c: Composition, i: _Inputs) -> None:
    from .jobs import ARCJob

    if "name" in i.given:
        c.cluster["name"] = _text("name", i.given["name"], NAME_RE, "name='mycluster'")
    if "job_cls" in i.given:
        job_cls = i.given["job_cls"]
        if not (isinstance(job_cls, type) and issubclass(job_cls, ARCJob)):
            raise _refuse("job_cls", _("{value!r} is not a subclass of ARCJob: its jobs would not go through the "
                                       "cluster's transport and arrays").format(value=job_cls),
                          ["a subclass of scip_jupyter.arc.jobs.ARCJob"])
        c.cluster["job_cls"] = job_cls
    if "config_name" in i.given:
        c.cluster["config_name"] = _text("config_name", i.given["config_name"], NAME_RE, "config_name='slurm'")
    for name in ("loop", "silence_logs", "asynchronous", "scheduler_cls"):
        if name in i.given:
            c.cluster[name] = i.given[name]


def _lines_or_args(name: str, value: Any) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _refuse(name, _("must be a list of strings, not {kind}").format(kind=type(value).__name__),
                      [f"{name}=['--resources', 'GPU=1']"])
    return list(value)


def _conflict(source: str, value: Any, preset: ClusterPreset, key: str, preset_value: Any) -> str:
    return _("{source}: {value!r} is not used: cluster {cluster!r} sets {key} to {preset_value!r} "
             "(pass {argument}={value!r} to ARCCluster to use yours)").format(
        source=source, value=value, cluster=preset.name, key=key, preset_value=preset_value,
        argument=key if key != "network" else "interface")


def _compose_network(c: Composition, preset: ClusterPreset, i: _Inputs, network: dict) -> None:
    """Scheduler options: the preset's listen/contact address, unless the user chose an interface or host."""
    given, config, origin = i.given, i.config, i.origin
    explicit = given.get("scheduler_options")
    if explicit is not None and not isinstance(explicit, Mapping):
        raise _refuse("scheduler_options", _("must be a dict, not {kind}").format(kind=type(explicit).__name__),
                      ["scheduler_options={'dashboard_address': '127.0.0.1:0'}"])
    explicit = dict(explicit or {})
    interface = given.get("interface")
    if interface is not None:
        interface = _text("interface", interface, r"[A-Za-z0-9_.:@-]{1,32}", "interface='ib0'")
    overridden = bool(interface) or bool({"host", "interface"} & set(explicit))
    options = dict(network)
    if overridden:
        options.pop("host", None)
        options.pop("contact_address", None)
        if interface and not {"host", "interface"} & set(explicit):
            options["interface"] = interface
    configured = config.get("scheduler_options")
    if configured is not None:
        if not isinstance(configured, Mapping):
            c.warnings.append(_("{source}: {value!r} is not used: {problem}").format(
                source=origin("scheduler_options"), value=configured, problem=_("it is not a mapping")))
            configured = {}
        for key, value in configured.items():
            if key in ("host", "interface", "contact_address", "port") and not overridden and key not in explicit:
                c.warnings.append(_conflict(f"{origin('scheduler_options')}.{key}", value, preset, "network",
                                            _network_text(network)))
                continue
            options[key] = value
    if "interface" in config and interface is None:
        if overridden:
            interface = config["interface"]
        else:
            c.warnings.append(_conflict(origin("interface"), config["interface"], preset, "network",
                                        _network_text(network)))
            interface = ""  # not None: dask-jobqueue would read the configured one again
    options.update(explicit)
    c.scheduler_options = options
    c.network_overridden = overridden
    if interface is not None:
        c.cluster["interface"] = interface


def _network_text(network: Mapping[str, Any]) -> str:
    listen = network.get("host", "?")
    contact = network.get("contact_address") or listen
    return _("listen on {listen}, workers connect to {contact}").format(listen=listen, contact=contact)


def _compose_security(c: Composition, given) -> None:
    from distributed.security import Security

    security = given.get("security")
    if security is False:
        raise _refuse("security", _("workers connect back to this notebook over the network, so the connection is "
                                    "always TLS"), ["security=True", "Security(tls_ca_file=..., ...)"])
    if isinstance(security, Security):
        if not security.tls_ca_file:
            raise _refuse("security", _("this Security object has no TLS certificates (tls_ca_file is not set)"),
                          ["security=True", "Security(tls_ca_file=..., tls_scheduler_cert=..., tls_worker_cert=...)"])
        c.cluster["security"] = security
    elif security is not None and security is not True:
        raise _refuse("security", _("{value!r} is not a Security object or True").format(value=security),
                      ["security=True", "Security(...)"])
    protocol = given.get("protocol")
    if protocol is not None:
        if str(protocol).rstrip(":/") != "tls":
            raise _refuse("protocol", _("{value!r}: workers connect back over TLS only").format(value=protocol),
                          ["protocol='tls://'", _("leave it unset")])
        c.cluster["protocol"] = "tls://"


# ---------------------------------------------------------------- the request


def validate_composed(
    preset: ClusterPreset, explicit: Mapping[str, Any], configured: Mapping[str, Any],
    sources: Mapping[str, str], accounts: Sequence[str],
) -> tuple[ValidRequest, list[str]]:
    """`validate_request` over arguments and configuration: an argument that breaks the preset raises;
    a configured value that does is dropped (the preset's default is used) with a warning naming it."""
    configured = {k: v for k, v in configured.items() if k not in explicit}
    warnings: list[str] = []
    while True:
        try:
            return validate_request(preset, {**configured, **explicit}, accounts), warnings
        except ARCRequestError as exc:
            key = exc.field if exc.field in configured else None
            if key is None:
                if exc.field in sources and sources[exc.field] != exc.field:
                    exc.field = sources[exc.field]  # name the argument the user wrote (queue, not partition)
                raise
            source = sources.get(key, key)
            warnings.append(_("{source}: {value!r} is not used: {problem} (allowed: {allowed}); the preset's "
                              "default applies").format(source=source, value=configured.pop(key),
                                                        problem=exc.problem, allowed=", ".join(exc.allowed) or "-"))
            for other in [k for k in configured if sources.get(k) == source]:  # one line (--gres=gpu:a100:1) falls whole
                configured.pop(other)


def merge_job_settings(settings: dict[str, Any], c: Composition) -> dict[str, Any]:
    """ARC's SLURMJob arguments (`jobs.job_settings`) with the user's added (pure)."""
    out = dict(settings)
    out["job_script_prologue"] = [*settings.get("job_script_prologue", []), *c.prologue]
    out["worker_extra_args"] = [*settings.get("worker_extra_args", []), *c.worker_extra_args]
    out["job_extra_directives"] = [*settings.get("job_extra_directives", []), *c.job_extra_directives]
    out["job_directives_skip"] = [*settings.get("job_directives_skip", []), *c.job_directives_skip]
    for key, value in c.job.items():
        if key == "job_mem" and "--mem=" in out["job_directives_skip"]:
            continue  # --mem-per-gpu: Slurm refuses --mem with it (checked before)
        out[key] = value
    return out


# ---------------------------------------------------------------- the docs table


KIND_TEXT = {
    REQUEST: "validated request", COMPOSED: "composed with the preset", OVERRIDE: "replaces the preset's default",
    PASSED: "checked, passed on", DEPRECATED: "deprecated name", REFUSED: "refused",
}


def parameters_table() -> str:
    """The Markdown table of docs/arc.md: each SLURMCluster argument and what ARCCluster does with it.

    >>> print(parameters_table().splitlines()[2])
    | `n_workers` | validated request | workers started at once, counted against the per-user job limit | - |
    """
    rows = ["| SLURMCluster argument | ARCCluster | what it does | dask config key |", "|---|---|---|---|"]
    for name, p in PARAMETERS.items():
        target = f" (as `{p.target}`)" if p.kind == DEPRECATED else ""
        config = f"`jobqueue.slurm.{p.config}`" if p.config else "-"
        rows.append(f"| `{name}` | {KIND_TEXT[p.kind]}{target} | {p.what} | {config} |")
    return "\n".join(rows)
