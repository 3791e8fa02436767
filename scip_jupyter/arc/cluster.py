"""`ARCCluster`: dask-jobqueue's SLURMCluster, built from a preset, scaling with job arrays.

    from scip_jupyter.arc import ARCCluster
    cluster = ARCCluster(preset="local-slurm", walltime="01:00:00", memory="1GiB")
    cluster.scale(32)       # ONE `sbatch --array` for 32 workers
    cluster.adapt(maximum=64)

What it adds to SLURMCluster (subclass, don't fork):

- The request (account, partition, GPU type/count, walltime, worker shape) is
  validated against the preset before anything is submitted
  (`presets.validate_request`), and scale-ups past the cluster's per-user job
  limit are refused.
- Scale-up submits all new workers as one array (`jobs.ArrayBatcher`). Scale
  requests arriving within `coalesce_window` seconds are coalesced: the
  cluster's reconciliation (`SpecCluster._correct_state`) waits that long
  before it starts the new jobs. Worker names end in their array index
  (`ARCCluster-<i>`, the lowest free index), so a worker, its Slurm task
  (`<job>_<i>`) and its name map one to one; scale-down cancels single tasks.
  Adaptive scaling goes through the same `scale`/`scale_down` and keeps working.
- Network mode connect-back: the scheduler listens at the preset's address,
  workers connect to its contact address, always over TLS with temporary
  credentials (`Security.temporary()`); the worker's certificate files are
  written to a private folder and only their paths appear in job scripts.
- A drop-in for SLURMCluster: its keyword arguments and dask-jobqueue's own
  configuration are composed with the preset (`compat.py`): prologue lines run
  after the preset's, `queue`/`account` are validated, a user's interface,
  security and shared temporary directory replace the preset's defaults;
  conflicts with the preset are reported, never silently dropped.
- Every array job is recorded in the job registry when submitted and
  forgotten when all its tasks are closed, so the notebook server's shutdown
  hook and the hub can cancel what a dead kernel leaves behind.
- A submission that fails (Slurm refuses it, the controller does not answer
  within the transport's timeout, the transport refuses the command) does not
  stay inside the cluster's event loop: `cluster.last_error` (a `SubmitError`:
  message naming the cluster and what to check, and the time) is set, listeners
  added with `add_submit_listener` are called, and the workers that were never
  submitted leave the plan, so `scale(n)` submits them again. The next
  successful submission clears `last_error`. Adaptive scaling waits
  `submit_retry_after` seconds after a failure before it submits again.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import math
import os
import socket
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from dask_jobqueue.slurm import SLURMCluster
from distributed.core import Status
from distributed.deploy.adaptive import Adaptive
from distributed.security import Security

from ..i18n import N_, _, ngettext
from ..storage import DATA_JURISDICTIONS_ENV, parse_data_jurisdictions
from .compat import compose, merge_job_settings, user_config, validate_composed
from .jobs import ARCJob, ArrayBatcher, array_index, array_script, job_settings
from .presets import (
    ARCRequestError,
    ClusterPreset,
    PresetFile,
    check_connect_back,
    check_data_jurisdiction,
    check_scale,
    load_default_presets,
    load_presets,
    parse_sacctmgr_accounts,
    sacctmgr_argv,
    validate_request,
)
from .tags import JobTags
from .transport import SlurmCommandError, SlurmError, SlurmUnavailable, Transport, transport_for

logger = logging.getLogger(__name__)

def private_dir(*parts: str) -> Path:
    """A folder under the user's cache, readable only by them (job logs, TLS files)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base.joinpath("scip-jupyter", *parts)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def _current_user() -> str:
    """The hub user when running under JupyterHub, else the account name."""
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def held_data(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """{project: jurisdiction} of the project data this notebook server mounts (`$SCIP_DATA_JURISDICTIONS`,
    written by the spawner beside `$SCIP_PROJECT_DIRS`); a value that cannot be read refuses (fails closed)."""
    env = os.environ if env is None else env
    try:
        return parse_data_jurisdictions(env.get(DATA_JURISDICTIONS_ENV))
    except ValueError as exc:
        raise ARCRequestError(DATA_JURISDICTIONS_ENV, str(exc), [_("restart your server from the hub")],
                              status=403) from None


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def resolve_accounts(preset: ClusterPreset, user: str, transport: Transport) -> list[str]:
    """The user's accounts on this cluster: from sacctmgr where allowed, else from the preset."""
    configured = preset.accounts.configured_for(user)
    if preset.accounts.source == "sacctmgr" and transport.kind == "local":
        try:
            found = parse_sacctmgr_accounts(transport.run_sync(sacctmgr_argv(user), timeout=15))
        except SlurmError as exc:
            logger.warning("sacctmgr on %s failed (%s); using the preset's account list", preset.name, exc)
        else:
            return found or configured
    return configured


def scheduler_network(preset: ClusterPreset) -> dict[str, Any]:
    """Scheduler options for connect-back: listen address, port, and the contact address workers use."""
    net = preset.network
    port = net.port or free_port(net.listen_host)
    options: dict[str, Any] = {"host": net.listen_host, "port": port, "dashboard_address": "127.0.0.1:0"}
    if net.contact_host and net.contact_host != net.listen_host:
        options["contact_address"] = f"tls://{net.contact_host}:{port}"
    return options


@dataclass(frozen=True)
class SubmitError:
    """Why the last worker submission failed, in words a notebook user can act on.

    `cluster` is the preset's name, `workers` how many worker jobs the submission
    would have started, `detail` what Slurm (or the transport) said, `check`
    what to look at, `at` when it happened (UTC).
    """

    cluster: str
    workers: int
    detail: str
    check: str
    at: datetime
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def message(self) -> str:
        return ngettext(
            "Submitting {workers} worker job to cluster {cluster} failed at {at} UTC: {detail} Check: {check}",
            "Submitting {workers} worker jobs to cluster {cluster} failed at {at} UTC: {detail} Check: {check}",
            self.workers,
        ).format(workers=self.workers, cluster=repr(self.cluster), at=f"{self.at:%H:%M:%S}", detail=self.detail,
                 check=self.check)

    def __str__(self) -> str:
        return self.message


#: What to check when Slurm answered but refused the submission.
REFUSED_CHECK = N_(
    "the request (account, partition, GPU type, walltime, memory) against what the cluster allows "
    "(`scontrol show partition`, your accounts) and the preset in arc.yaml"
)
#: What to check when the transport itself failed (not Slurm).
TRANSPORT_CHECK = N_("the preset's transport settings in arc.yaml (submit host, key, Slurm client commands)")


def submit_error(cluster: str, workers: int, exc: BaseException, at: datetime | None = None) -> SubmitError:
    """What to tell a person about a failed submission (pure).

    >>> when = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
    >>> refused = SlurmCommandError("local-slurm", ["sbatch"], 1, "sbatch: error: invalid partition specified: nope")
    >>> print(submit_error("local-slurm", 2, refused, when).message)  # doctest: +ELLIPSIS
    Submitting 2 worker jobs to cluster 'local-slurm' failed at 08:00:00 UTC: Slurm refused them (sbatch exit 1): sbatch: error: invalid partition specified: nope Check: the request (account, partition, ...
    >>> down = SlurmUnavailable("fir", "sbatch", "no answer within 30s", "that robot.fir answers")
    >>> print(submit_error("fir", 1, down, when).message)
    Submitting 1 worker job to cluster 'fir' failed at 08:00:00 UTC: Slurm did not answer (sbatch: no answer within 30s). Check: that robot.fir answers
    """
    at = at or datetime.now(timezone.utc)
    if isinstance(exc, SlurmUnavailable):
        detail = _("Slurm did not answer ({command}: {detail}).").format(command=exc.command, detail=exc.detail)
        check = exc.hint or _(TRANSPORT_CHECK)
    elif isinstance(exc, SlurmCommandError):
        command = exc.argv[0] if exc.argv else "sbatch"
        said = "; ".join(line.strip() for line in exc.stderr.splitlines() if line.strip())
        detail = _("Slurm refused them ({command} exit {returncode}): {said}").format(
            command=command, returncode=exc.returncode, said=said or _("(no message)"))
        check = _(REFUSED_CHECK)
    else:
        detail, check = f"{type(exc).__name__}: {exc}", _(TRANSPORT_CHECK)
    return SubmitError(cluster=cluster, workers=workers, detail=detail, check=check, at=at, exception=exc)


def refusal_state(exc: ARCRequestError) -> tuple:
    """What a refused scale-up's log line depends on: the allocation and what it has left (the
    hub's decision), else the refusal's status and field (the hub not answering) — never the
    number of jobs asked for, which adaptive scaling changes at every retry (pure).

    >>> from types import SimpleNamespace as D
    >>> refused = ARCRequestError("workers", "...", [], status=403)
    >>> refused.decision = D(allocation="group lab", slurm_account="def-lab", left=0.251, limit=1.0)
    >>> refusal_state(refused)
    ('refused', 'group lab', 'def-lab', 0.25, 1.0)
    >>> refusal_state(ARCRequestError("workers", "could not ask the hub at http://hub/ (timeout)", [], status=503))
    (503, 'workers')
    """
    decision = getattr(exc, "decision", None)
    if decision is not None:
        left = None if decision.left is None else round(decision.left, 2)
        return ("refused", decision.allocation, decision.slurm_account, left, decision.limit)
    return (exc.status, exc.field)


class ARCAdaptive(Adaptive):
    """dask's Adaptive, but after a failed submission it waits the cluster's
    `submit_retry_after` seconds before asking for workers again, instead of
    calling sbatch at every adaptive interval while Slurm keeps refusing.

    A scale-up the allocation check refuses (`ARCCluster.scale`: the hub says the
    GPU-hours left cannot pay, or cannot be asked) is an answer, not an error of
    the adaptive loop: nothing is submitted, `cluster.last_error` says why, and the
    log gets ONE line naming the allocation and what is left each time that answer
    changes (`refusal_state`), not dask's traceback at every retry. A scale-up
    allowed again after refusals logs one line too."""

    _refusal: tuple | None = None  # the refusal state last logged; None: the last scale-up was allowed

    async def scale_up(self, n):
        if self.cluster.submission_paused():
            return
        try:
            await super().scale_up(n)
        except ARCRequestError as exc:
            error = self.cluster.last_error
            if error is None or error.exception is not exc:
                raise  # not the allocation check (a preset limit, say): dask's own handling
            self._log_refusal(exc, n)
            return
        if self._refusal is not None:
            self._refusal = None
            logger.info("%s", _("adaptive scaling on cluster {cluster!r}: the allocation check allows "
                                "scale-ups again").format(cluster=self.cluster.preset.name))

    def _log_refusal(self, exc: ARCRequestError, workers: int) -> None:
        state = refusal_state(exc)
        if state == self._refusal:
            return
        self._refusal = state
        logger.warning("%s", _(
            "adaptive scaling on cluster {cluster!r}: scale-up to {workers} workers refused, nothing was "
            "submitted: {why} (asking again every {retry:g} s; logged again when the answer changes)"
        ).format(cluster=self.cluster.preset.name, workers=workers, why=exc.problem,
                 retry=self.cluster.submit_retry_after))


class ARCCluster(SLURMCluster):
    """A Dask cluster on an ARC Slurm cluster, from a preset.

    Parameters
    ----------
    preset: preset name in arc.yaml (default `local-slurm`).
    account, partition, gpu_type, gpus, memory_per_gpu, walltime, cores, memory, processes:
        the request, validated against the preset (defaults from the preset).
    n_workers: workers to start at once.
    presets: a PresetFile or a path to arc.yaml (default: $SCIP_ARC_PRESETS or hub_config/arc.yaml).
    user, user_accounts: who submits and their accounts (default: from the environment and the preset).
    tags: JobTags for the jobs (default: this notebook server's).
    transport: a Transport (default: the preset's).
    array: submit scale-ups as one job array (default True); False submits one job per worker.
    coalesce_window: seconds scale requests are gathered before submitting.
    submit_retry_after: seconds adaptive scaling waits after a failed submission before it submits again.
    data_jurisdictions: {project: jurisdiction} of the project data this notebook holds (default:
        `$SCIP_DATA_JURISDICTIONS`, set by the spawner); a preset outside one is refused (docs/arc.md).

    Every other keyword argument is SLURMCluster's (a drop-in: `queue`, `job_script_prologue`,
    `interface`, `shared_temp_directory`, `job_extra_directives`, ...), composed with the preset by
    `compat.compose` (`compat.PARAMETERS` says what happens to each; docs/arc.md has the table).
    dask-jobqueue's configuration (`jobqueue.slurm.*`) is honoured where the preset allows it; a
    configured value it cannot take is reported in a UserWarning (and `config_warnings`), not used.
    `job_script(workers=n)` is exactly the script the next scale-up by n submits.
    """

    job_cls = ARCJob

    def __init__(
        self,
        preset: str = "local-slurm",
        *,
        account: str | None = None,
        partition: str | None = None,
        gpu_type: str | None = None,
        gpus: int | None = None,
        memory_per_gpu: str | None = None,
        walltime: str | None = None,
        cores: int | None = None,
        memory: str | None = None,
        processes: int | None = None,
        n_workers: int | None = None,
        presets: PresetFile | str | os.PathLike | None = None,
        user: str | None = None,
        user_accounts: Sequence[str] | None = None,
        tags: JobTags | None = None,
        transport: Transport | None = None,
        array: bool = True,
        coalesce_window: float = 0.1,
        submit_retry_after: float = 60.0,
        security: Security | bool | None = None,
        data_jurisdictions: Mapping[str, str] | None = None,
        **kwargs,
    ):
        if isinstance(presets, PresetFile):
            preset_file = presets
        else:
            preset_file = load_presets(presets) if presets else load_default_presets()
        self.preset = p = preset_file.get(preset)
        check_connect_back(p, preset_file.clusters)  # an in-job preset: workers could not reach this notebook
        # where the notebook's project data may go: the spawn's rule, before anything is submitted or asked
        check_data_jurisdiction(p, held_data() if data_jurisdictions is None else dict(data_jurisdictions),
                                [q for q in preset_file.clusters if q.network.mode == "connect-back"])
        # SLURMCluster's arguments (and the user's dask-jobqueue configuration) composed with the preset
        given = dict(kwargs, account=account, walltime=walltime, cores=cores, memory=memory,
                     processes=processes, n_workers=n_workers, security=security)
        section = kwargs.get("config_name") or "slurm"
        composition = compose(p, given, user_config(section), section=section,
                              network=scheduler_network(p))
        for message in composition.deprecations:
            warnings.warn(message, FutureWarning, stacklevel=2)
        explicit = dict(composition.explicit)
        for key, value in dict(partition=partition, gpu_type=gpu_type, gpus=gpus, memory_per_gpu=memory_per_gpu).items():
            if value is None:
                continue
            if key in explicit and str(explicit[key]) != str(value):
                raise ARCRequestError(
                    composition.sources[key], _("{value!r} differs from {key}={other!r}; they name the same thing")
                    .format(value=explicit[key], key=key, other=value), [_("give one of them")])
            explicit[key] = value
            composition.sources[key] = key
        self.transport = transport or transport_for(p)
        user = user or _current_user()
        accounts = list(user_accounts) if user_accounts is not None else resolve_accounts(p, user, self.transport)
        self.request, request_warnings = validate_composed(
            p, explicit, composition.configured, composition.sources, accounts)
        if self.request.memory_per_gpu and "job_mem" in composition.job:
            source = composition.sources.get("job_mem", "job_mem")
            if not source.startswith("jobqueue."):
                raise ARCRequestError(source, _("Slurm refuses --mem together with --mem-per-gpu"),
                                      [_("memory_per_gpu alone"), _("job_mem without memory_per_gpu")])
            request_warnings.append(_("{source}: {value!r} is not used: {problem}").format(
                source=source, value=composition.job.pop("job_mem"),
                problem=_("Slurm refuses --mem together with --mem-per-gpu")))
        self.config_warnings = [*composition.warnings, *request_warnings]
        for message in self.config_warnings:
            warnings.warn(message, UserWarning, stacklevel=2)
        self.tags = tags or replace(
            JobTags.from_environment(project=self.request.account, site=p.site, jurisdiction=p.jurisdiction),
            user=user,
        )
        self.coalesce_window = coalesce_window
        self.submit_retry_after = submit_retry_after
        self.last_error: SubmitError | None = None  # the last failed submission; None once one succeeds
        self._submit_listeners: list[Callable[[SubmitError | None], None]] = []
        self._registry = None
        self.batcher = (
            ArrayBatcher(self.transport, on_submitted=self._record, on_finished=self._forget) if array else None
        )
        log_directory = composition.job.pop("log_directory", None)
        if log_directory is None:
            log_directory = private_dir("arc-logs") if self.transport.kind == "local" else p.log_directory
        elif self.transport.kind == "local":
            Path(os.path.expanduser(log_directory)).mkdir(parents=True, exist_ok=True)
        settings = job_settings(p, self.request, self.tags, log_directory=str(log_directory) if log_directory else None)
        settings = merge_job_settings(settings, composition)
        cluster_kwargs = dict(composition.cluster)
        name = cluster_kwargs.pop("name", None) or type(self).__name__
        if cluster_kwargs.get("security") is None:
            cluster_kwargs["security"] = Security.temporary()
        cluster_kwargs.setdefault("shared_temp_directory", str(private_dir("arc-tls")))
        super().__init__(
            name=name,
            scheduler_options=composition.scheduler_options,
            transport=self.transport,
            batcher=self.batcher,
            worker_prefix=name,
            **cluster_kwargs,
            **settings,
        )
        if self.request.workers:
            self.scale(self.request.workers)

    def _free_indices(self, jobs: int) -> list[int]:
        """The `jobs` lowest array indices no live or planned worker uses."""
        used = {array_index(n, self._name) for n in (*self.worker_spec, *self.workers)}
        free, i = [], 0
        while len(free) < jobs:
            if i not in used:
                free.append(i)
            i += 1
        return free

    def job_script(self, workers: int | None = None) -> str:
        """Exactly the script the next scale-up submits (with the contact address workers are given).

        In array mode it carries the `#SBATCH --array=` line of the next submission: the lowest free
        indices for `workers` more workers (default: one job). With `array=False`, the script of the
        next worker job."""
        contact = getattr(self.scheduler, "contact_address", None) if self.scheduler else None
        address = contact or getattr(self.scheduler, "address", None) or "tcp://<insert-scheduler-address-here>:8786"
        if self.batcher is None:  # SpecCluster's next name, as new_worker_spec() will pick it
            i = self._i
            while self._new_worker_name(i) in self.worker_spec:
                i += 1
            return self.job_cls(address, name=self._new_worker_name(i), **self._job_kwargs).job_script()
        indices = self._free_indices(self._jobs_for(workers) if workers else 1)
        script = self.job_cls(address, name=self._new_worker_name(indices[0]), **self._job_kwargs).job_script()
        return array_script(script, self.batcher.spec(indices))


    # ------------------------------------------------------------ registry

    @property
    def registry(self):
        if self._registry is None:
            from .registry import JobRegistry

            self._registry = JobRegistry.default()
        return self._registry

    def _record(self, job_id: str, indices: list[int]) -> None:
        self.registry.record(
            job_id, cluster=self.preset.name, tags=self.tags, preset=self.preset.name, account=self.transport.account or ""
        )  # owner recorded at submission (issue 9)

    def _forget(self, job_id: str) -> None:
        self.registry.forget(job_id, cluster=self.preset.name)

    # ------------------------------------------------------------ submission errors

    def add_submit_listener(self, callback: Callable[[SubmitError | None], None]) -> None:
        """Call `callback(error)` when a submission fails, and `callback(None)` when one
        succeeds after a failure. It runs on the cluster's event loop (its own thread
        for a synchronous cluster): keep it short."""
        self._submit_listeners.append(callback)

    def remove_submit_listener(self, callback: Callable[[SubmitError | None], None]) -> None:
        if callback in self._submit_listeners:
            self._submit_listeners.remove(callback)

    def submission_paused(self) -> bool:
        """True within `submit_retry_after` seconds of a failed submission (adaptive scaling waits)."""
        error = self.last_error
        return error is not None and (datetime.now(timezone.utc) - error.at).total_seconds() < self.submit_retry_after

    def _set_submit_error(self, error: SubmitError | None) -> None:
        if error is None and self.last_error is None:
            return
        self.last_error = error
        for callback in list(self._submit_listeners):
            try:
                callback(error)
            except Exception:  # a broken listener must not break scaling
                logger.exception("submit listener %r failed", callback)

    async def _drop_unsubmitted(self) -> int:
        """Forget the workers whose submission failed (still `created`: they never got a job id),
        so the plan shows what Slurm holds and the next scale submits them again."""
        failed = [name for name, job in self.workers.items() if job.status == Status.created]
        for name in failed:
            job = self.workers.pop(name)
            self.worker_spec.pop(name, None)
            await job.close()  # nothing to cancel; marks it closed for SpecCluster's shutdown check
        return len(failed)

    # ------------------------------------------------------------ scaling

    def new_worker_spec(self):
        """The next worker takes the lowest array index no live or planned worker uses."""
        if self.batcher is None:
            return super().new_worker_spec()
        i = self._free_indices(1)[0]
        if i >= self.preset.max_array_size:
            raise ARCRequestError("workers", _("array index {index} is beyond MaxArraySize of {name}").format(
                index=i, name=repr(self.preset.name)),
                                  [f"0..{self.preset.max_array_size - 1}"])
        return {self._new_worker_name(i): self.new_spec}

    def _jobs_for(self, n: int) -> int:
        return math.ceil(n / self._dummy_job.worker_processes)

    def scale(self, n=None, jobs=0, memory=None, cores=None):
        """Scale to `n` workers (or `jobs` jobs); refused past the cluster's per-user job limit."""
        check_scale(self.preset, self._jobs_for(n) if n is not None else jobs)
        from ..allocations.burst import check_gpu_hours  # issue 10: GPU-hours left must cover the new jobs

        new_jobs = (self._jobs_for(n) if n is not None else jobs) - len(self.worker_spec)
        try:  # the hub (notebook servers) or the ledger (hub services) decides; nothing is submitted if refused
            check_gpu_hours(self.preset, self.request, new_jobs)
        except ARCRequestError as exc:
            self._set_submit_error(SubmitError(self.preset.name, new_jobs, str(exc), _(
                "your allocation's GPU-hours (scip-jupyter usage, or your home page); nothing was submitted"),
                datetime.now(timezone.utc), exc))
            raise
        return super().scale(n, jobs=jobs, memory=memory, cores=cores)

    def adapt(self, *args, minimum_jobs=None, maximum_jobs=None, **kwargs):
        if not args:
            kwargs.setdefault("Adaptive", ARCAdaptive)
        limit = min(self.preset.max_jobs_per_user, self.preset.max_array_size)
        processes = self._dummy_job.worker_processes
        if maximum_jobs is not None:
            check_scale(self.preset, maximum_jobs)
        elif kwargs.get("maximum") is None or kwargs["maximum"] == math.inf:
            kwargs["maximum"] = limit * processes
        else:
            check_scale(self.preset, self._jobs_for(kwargs["maximum"]))
        return super().adapt(*args, minimum_jobs=minimum_jobs, maximum_jobs=maximum_jobs, **kwargs)

    def _correct_state(self):
        # Same contract as SpecCluster._correct_state (callers share one pending task), but the
        # task first waits `coalesce_window`: every scale request in that window lands in the
        # same reconciliation, hence in the same sbatch --array.
        if self._correct_state_waiting:
            return self._correct_state_waiting
        task = asyncio.ensure_future(self._coalesced_correct_state())
        self._correct_state_waiting = task
        return task

    async def _coalesced_correct_state(self):
        if self.coalesce_window and self.status not in (Status.closing, Status.closed):
            await asyncio.sleep(self.coalesce_window)
        opening = len(set(self.worker_spec) - set(self.workers))
        try:
            await self._correct_state_internal()
        except Exception as exc:
            # Nobody awaits this task (scale() only schedules it): without this the
            # failure would stay in the event loop and the cluster look "starting" forever.
            dropped = await self._drop_unsubmitted()
            if not dropped:
                raise  # not a submission failure: dask's own handling
            error = submit_error(self.preset.name, dropped, exc)
            logger.error("%s", error.message)
            self._set_submit_error(error)
            return
        if opening:
            self._set_submit_error(None)

    async def _close(self):
        try:
            await super()._close()
        finally:
            if self.transport is not None:
                await self.transport.close()
