"""Models behind the ARC status and job-monitor widgets (views live in scip_widgets).

`ClusterStatus` is plain data: what a person wants to know about one Dask
cluster on Slurm (preset, workers requested / pending in Slurm / running in
Slurm / connected to the scheduler, scheduler address, dashboard link). It is
built either from job states alone (`from_jobs`, pure) or from a live cluster
object plus job states (`from_cluster`, which only reads attributes).

`JobMonitor` is the live model: it asks a job *source* (an async callable,
normally a cached `JobPoller` filtered to one cluster or one notebook server)
for `JobState`s, keeps the latest list and status in traitlets (so views observe
them), and cancels jobs through an injected *canceller*. It never talks to Slurm
itself: the source and the canceller do (see `cluster_source`).

>>> from scip_jupyter.arc.states import parse_squeue
>>> jobs = parse_squeue("7_0|RUNNING|None|2026-11-25T08:00:00|1:05|1:00:00|w|alice|cpu|1|\\n"
...                     "7_1|PENDING|Resources|N/A|0:00|1:00:00|w|alice|cpu|1|")
>>> s = ClusterStatus.from_jobs(jobs, preset="local-slurm", requested=3, connected=1)
>>> (s.workers_requested, s.workers_pending, s.workers_running, s.workers_connected, s.state)
(3, 1, 1, 1, 'starting')
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Awaitable, Callable, Iterable

from traitlets import Float, HasTraits, Instance, List, Unicode

from .states import JobState, Phase, jobs_with_ids

#: Cluster states a view shows (ClusterStatus.state).
STATES = ("not started", "starting", "running", "idle", "closed", "error")

_TASKS = re.compile(r"_\[(?P<spec>[^\]]*)\]$")


def task_count(job_id: str) -> int:
    """How many array tasks one squeue line stands for (``42_[0-3,7]`` -> 5; ``42_3`` -> 1).

    >>> task_count("42_[0-3,7%2]"), task_count("42_3"), task_count("42")
    (5, 1, 1)
    """
    m = _TASKS.search(job_id)
    if not m:
        return 1
    total = 0
    for part in m.group("spec").split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit():
            total += (int(hi) - int(lo) + 1) if hi.isdigit() else 1
    return max(total, 1)


def elapsed_now(job: JobState, polled_at: float | None, now: float | None = None) -> int | None:
    """A running job's elapsed seconds, advanced by the time since it was polled
    (the poller caches squeue for 30 s; the clock in the widget should not stall).

    >>> from scip_jupyter.arc.states import JobState, Phase
    >>> elapsed_now(JobState("1", Phase.RUNNING, elapsed_s=60), polled_at=100.0, now=130.0)
    90
    >>> elapsed_now(JobState("1", Phase.PENDING, elapsed_s=0), polled_at=100.0, now=130.0)
    0
    """
    if job.elapsed_s is None:
        return None
    if job.phase is not Phase.RUNNING or polled_at is None:
        return job.elapsed_s
    now = time.monotonic() if now is None else now
    return job.elapsed_s + max(0, int(now - polled_at))


def format_seconds(seconds: int | None) -> str:
    """``[d-]hh:mm:ss`` like Slurm prints it; '' for unknown.

    >>> format_seconds(93784), format_seconds(65), format_seconds(None)
    ('1-02:03:04', '00:01:05', '')
    """
    if seconds is None:
        return ""
    d, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def format_start(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M") if when else ""


@dataclass(frozen=True)
class JobRow:
    """One job as the monitor shows it: display strings, no Slurm objects."""

    job_id: str
    state: str  # Phase value: pending, running, ...
    reason: str = ""  # plain words ("waiting for nodes ..."), '' when none
    estimated_start: str = ""  # only while pending
    elapsed: str = ""
    time_limit: str = ""
    name: str = ""
    partition: str = ""
    cancellable: bool = False

    @classmethod
    def from_state(cls, job: JobState, polled_at: float | None = None, now: float | None = None) -> "JobRow":
        pending = job.phase is Phase.PENDING
        return cls(
            job_id=job.job_id,
            state=job.phase.value,
            reason=(job.reason_text or job.reason) if pending or job.phase.finished else "",
            estimated_start=format_start(job.start) if job.start_is_estimate else "",
            elapsed=format_seconds(elapsed_now(job, polled_at, now)),
            time_limit=format_seconds(job.time_limit_s),
            name=job.name,
            partition=job.partition,
            cancellable=not job.phase.finished,
        )


@dataclass(frozen=True)
class ClusterStatus:
    """What one Dask-on-Slurm cluster looks like now. Plain data (templates and widgets read it)."""

    preset: str = ""
    name: str = ""
    state: str = "not started"
    workers_requested: int = 0
    workers_pending: int = 0  # worker jobs Slurm has not started
    workers_running: int = 0  # worker jobs Slurm runs
    workers_connected: int = 0  # Dask workers connected to the scheduler
    scheduler_address: str = ""
    dashboard_link: str = ""
    message: str = ""
    jobs: tuple[JobRow, ...] = field(default=())

    @classmethod
    def from_jobs(
        cls,
        jobs: Iterable[JobState],
        *,
        preset: str = "",
        name: str = "",
        requested: int | None = None,
        connected: int = 0,
        scheduler_address: str = "",
        dashboard_link: str = "",
        closed: bool = False,
        message: str = "",
        polled_at: float | None = None,
    ) -> "ClusterStatus":
        """Count a cluster's jobs (array tasks one by one) into a status. Pure."""
        jobs = list(jobs)
        pending = sum(task_count(j.job_id) for j in jobs if j.phase in (Phase.PENDING, Phase.SUSPENDED))
        running = sum(task_count(j.job_id) for j in jobs if j.phase is Phase.RUNNING)
        if requested is None:
            requested = pending + running
        return cls(
            preset=preset,
            name=name,
            state=_state(requested, pending, running, connected, closed, bool(scheduler_address), message),
            workers_requested=requested,
            workers_pending=pending,
            workers_running=running,
            workers_connected=connected,
            scheduler_address=scheduler_address,
            dashboard_link=dashboard_link,
            message=message,
            jobs=tuple(JobRow.from_state(j, polled_at) for j in jobs),
        )

    @classmethod
    def from_cluster(cls, cluster: Any, jobs: Iterable[JobState] = (), preset: str = "", **kwargs) -> "ClusterStatus":
        """Read a dask-jobqueue cluster (ARCCluster or SLURMCluster) without calling Slurm.

        `jobs` are this cluster's job states (see `cluster_source`).
        """
        info = _safe(lambda: cluster.scheduler_info, {}) or {}
        status = str(_safe(lambda: cluster.status.name, "")).lower()
        kwargs.setdefault("closed", status in ("closed", "closing", "failed"))
        # ARCCluster keeps why its last submission failed (cleared by the next success)
        submit_error = getattr(cluster, "last_error", None)
        if submit_error is not None:
            kwargs.setdefault("message", str(submit_error))
        built = cls.from_jobs(
            jobs,
            preset=preset or str(getattr(cluster, "preset_name", "") or getattr(getattr(cluster, "preset", None), "name", "") or ""),
            name=str(_safe(lambda: cluster.name, "") or ""),
            requested=requested_workers(cluster),
            connected=len(info.get("workers", {})),
            scheduler_address=str(_safe(lambda: cluster.scheduler_address, "") or ""),
            dashboard_link=str(_safe(lambda: cluster.dashboard_link, "") or ""),
            **kwargs,
        )
        if submit_error is not None and built.state != "closed":
            built = replace(built, state="error")
        return built

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def _state(requested: int, pending: int, running: int, connected: int, closed: bool, has_scheduler: bool, message: str) -> str:
    if closed:
        return "closed"
    if message and not has_scheduler:
        return "error"
    if requested == 0:
        return "idle" if has_scheduler else "not started"
    # With a scheduler, "running" means the workers joined it; from Slurm alone, that their jobs run.
    if (connected if has_scheduler else running) >= requested:
        return "running"
    return "starting"


def _safe(get: Callable[[], Any], default: Any) -> Any:
    """Cluster attributes can raise once the cluster is closed; a status view must not."""
    try:
        return get()
    except Exception:  # noqa: BLE001
        return default


def requested_workers(cluster: Any) -> int:
    """Workers the cluster aims for: dask's SpecCluster keeps them in `worker_spec`."""
    spec = _safe(lambda: cluster.worker_spec, None)
    if spec is not None:
        return len(spec)
    return int(_safe(lambda: len(cluster.requested), 0))


def cluster_job_ids(cluster: Any) -> set[str]:
    """Slurm job ids of a cluster's workers (``job_ids`` if the cluster keeps them,
    else each dask-jobqueue Job's ``job_id``)."""
    ids = _safe(lambda: getattr(cluster, "job_ids"), None)
    if callable(ids):
        ids = _safe(ids, None)
    if ids:
        return {str(i) for i in ids}
    workers = _safe(lambda: dict(cluster.workers), {}) or {}
    return {str(w.job_id) for w in workers.values() if getattr(w, "job_id", None)}


def cluster_source(cluster: Any, poller: Any, user: str | None = None) -> Callable[[], Awaitable[list[JobState]]]:
    """An async job source: the poller's (cached) listing, kept to this cluster's jobs."""

    async def source() -> list[JobState]:
        ids = cluster_job_ids(cluster)
        if not ids:
            return []
        return jobs_with_ids(await poller.jobs(user), ids)

    return source


def transport_canceller(transport: Any, poller: Any = None) -> Callable[[list[str]], Awaitable[None]]:
    """An async canceller: ``scancel`` through the cluster's transport, then the
    poller's cache shows the jobs cancelled at once (no extra squeue)."""
    from .states import scancel_argv

    async def cancel(job_ids: list[str]) -> None:
        await transport.run(scancel_argv(list(job_ids)))
        if poller is not None:
            poller.note_cancelled(set(job_ids))

    return cancel


JobSource = Callable[[], Awaitable[list[JobState]]]
Canceller = Callable[[list[str]], Awaitable[Any]]


class JobMonitor(HasTraits):
    """Live model of a list of Slurm jobs: views observe `jobs`, `status`, `error`.

    `source()` returns the jobs to show; `canceller(ids)` cancels jobs (through a
    transport). `cluster` (optional) adds scheduler facts to `status`.
    """

    jobs = List(Instance(JobState), help="Latest job states from the source.")
    status = Instance(ClusterStatus, args=(), help="Cluster summary built from the latest jobs.")
    error = Unicode("", help="Why the last refresh or cancel failed ('' when it worked).")
    refreshed_at = Float(0.0, help="time.monotonic() of the last successful refresh.")
    interval = Float(5.0, help="Seconds between automatic refreshes in the view. The source caches squeue.")

    def __init__(
        self,
        source: JobSource,
        canceller: Canceller | None = None,
        *,
        cluster: Any = None,
        preset: str = "",
        clock: Callable[[], float] = time.monotonic,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source = source
        self.canceller = canceller
        self.cluster = cluster
        self.preset = preset
        self.clock = clock
        self.refreshes = 0

    @classmethod
    def for_cluster(cls, cluster: Any, poll_interval: float = 30.0, **kwargs) -> "JobMonitor":
        """Monitor one ARCCluster's jobs through its own transport (squeue at most every `poll_interval` s)."""
        from .poller import JobPoller

        poller = JobPoller(cluster.transport, cluster=getattr(getattr(cluster, "preset", None), "name", ""), interval=poll_interval)
        kwargs.setdefault("preset", getattr(getattr(cluster, "preset", None), "name", ""))
        return cls(cluster_source(cluster, poller), transport_canceller(cluster.transport, poller), cluster=cluster, **kwargs)

    @classmethod
    def for_server(cls, preset: Any, user: str = "", server: str = "", poll_interval: float = 30.0, **kwargs) -> "JobMonitor":
        """Monitor every job this notebook server started on a preset (found by their --comment tags),
        whichever kernel started them."""
        from .poller import JobPoller
        from .states import jobs_of_server
        from .tags import JobTags
        from .transport import transport_for

        here = JobTags.from_environment()
        user, server = user or here.user, server or here.server
        transport = transport_for(preset)
        poller = JobPoller(transport, cluster=preset.name, interval=poll_interval)

        async def source() -> list[JobState]:
            return jobs_of_server(await poller.jobs(), user, server)

        kwargs.setdefault("preset", preset.name)
        return cls(source, transport_canceller(transport, poller), **kwargs)

    async def refresh(self) -> list[JobState]:
        """Ask the source once; on failure keep the last jobs and set `error`."""
        try:
            jobs = list(await self.source())
        except Exception as exc:  # noqa: BLE001 - shown to the person, not raised into the event loop
            self.error = f"could not list jobs: {exc}"
            return list(self.jobs)
        self.refreshes += 1
        now = self.clock()
        with self.hold_trait_notifications():
            self.jobs = jobs
            self.refreshed_at = now
            self.error = ""
            self.status = self._status(jobs, now)
        return jobs

    def _status(self, jobs: list[JobState], polled_at: float | None) -> ClusterStatus:
        if self.cluster is not None:
            return ClusterStatus.from_cluster(self.cluster, jobs, preset=self.preset, polled_at=polled_at)
        return ClusterStatus.from_jobs(jobs, preset=self.preset, polled_at=polled_at)

    def rows(self, now: float | None = None) -> list[JobRow]:
        """Display rows, with running jobs' elapsed time advanced to `now`."""
        now = self.clock() if now is None else now
        return [JobRow.from_state(j, self.refreshed_at or None, now) for j in self.jobs]

    async def cancel(self, job_id: str) -> bool:
        """Cancel one job (or array task) that is in the list and not finished."""
        known = {j.job_id: j for j in self.jobs}
        job = known.get(job_id)
        if job is None:
            self.error = f"job_id: {job_id!r} is not one of this monitor's jobs; allowed: {', '.join(known) or '(none)'}"
            return False
        if job.phase.finished:
            self.error = f"job_id: {job_id} has already {job.phase.value}"
            return False
        if self.canceller is None:
            self.error = "this monitor cannot cancel jobs (no canceller)"
            return False
        try:
            await self.canceller([job_id])
        except Exception as exc:  # noqa: BLE001
            self.error = f"could not cancel {job_id}: {exc}"
            return False
        self.jobs = [replace(j, phase=Phase.CANCELLED, slurm_state="CANCELLED", reason="cancel requested") if j.job_id == job_id else j for j in self.jobs]
        self.status = self._status(list(self.jobs), self.refreshed_at or None)
        self.error = ""
        return True
