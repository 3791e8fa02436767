"""GPU-hours of Slurm jobs from Slurm's own accounting (`sacct --json`), into the ledger.

`SacctReconciler.run()` reads `sacct --json -X --allusers` for a window through the
preset's transport (one door per external system), keeps the jobs our notebook
servers submitted (their `--comment` carries our job tags, `arc/tags.py`), and
records each job (or array task) in the ledger with its GPU TRES and interval
(`Ledger.record_slurm_jobs`): GPU-hours = GPUs × share × (end − start), exactly
sacct's AllocTRES `gres/gpu` count × Elapsed for full GPUs, a MIG slice weighted
by its share of the GPU's 7 compute slices (as notebook servers are).

Rows are keyed by (cluster, job id): reading the same jobs again updates them, so
a reconciler that is killed (`kill -9`) and restarted, or two hubs reading the
same cluster, never count a job twice; a running job's row is open (no end) and
gets its end at the first read after it finishes. Slurm records a job's comment
when it ends, so for jobs still running the comment is read from `squeue`.

The account a job pays from is the allocations.yaml group whose `slurm_account`
is the job's Slurm account (`group:<name>`), else none (recorded, not charged).
Only presets with a local transport are read: automation nodes do not allow sacct.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..arc.tags import JobTags
from .ledger import Ledger, SlurmJobRecord, utcnow
from ..catalog import MIG_SLICES
from .quotas import Allocations

logger = logging.getLogger(__name__)

#: How far back a read reaches when the ledger has no open job older than that.
DEFAULT_LOOKBACK = dt.timedelta(days=35)
#: Job states in which a job may still be using its GPUs.
OPEN_STATES = {"RUNNING", "PENDING", "SUSPENDED", "REQUEUED", "RESIZING", "COMPLETING", "CONFIGURING"}


@dataclass(frozen=True)
class SacctJob:
    """One job (or array task) as sacct reports it; times as naive UTC."""

    job_id: str
    user: str
    account: str
    comment: str
    state: str
    start: dt.datetime | None
    end: dt.datetime | None
    elapsed: int
    gpus: dict[str, int]  # flavour -> count ("" for an untyped GPU)

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES or self.end is None


def _epoch(value: Any) -> dt.datetime | None:
    if isinstance(value, dict):  # newer Slurm: {"set": true, "number": N}
        value = value.get("number") if value.get("set", True) else None
    try:
        seconds = int(value or 0)
    except (TypeError, ValueError):
        return None
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).replace(tzinfo=None) if seconds > 0 else None


def _state(job: dict) -> str:
    state = job.get("state")
    if isinstance(state, dict):
        state = state.get("current")
    if isinstance(state, list):
        state = state[0] if state else ""
    return str(state or "")


def _comment(job: dict) -> str:
    comment = job.get("comment")
    if isinstance(comment, dict):
        comment = comment.get("job")
    return str(comment or "")


def _job_id(job: dict) -> str:
    """`<array job>_<task>` for an array task, else the job id."""
    array = job.get("array") or {}
    task = array.get("task_id")
    if isinstance(task, dict):
        task = task.get("number") if task.get("set") else None
    array_job = array.get("job_id") or 0
    if array_job and task is not None:
        return f"{array_job}_{task}"
    return str(job.get("job_id"))


def _gpus(job: dict) -> dict[str, int]:
    """GPU TRES allocated: {flavour: count}; the typed entries when there are any."""
    allocated = ((job.get("tres") or {}).get("allocated")) or []
    typed: dict[str, int] = {}
    untyped = 0
    for tres in allocated:
        if not isinstance(tres, dict) or tres.get("type") != "gres":
            continue
        name, count = str(tres.get("name") or ""), int(tres.get("count") or 0)
        if name == "gpu":
            untyped = count
        elif name.startswith("gpu:"):
            typed[name[4:]] = typed.get(name[4:], 0) + count
    if typed:
        return typed
    return {"": untyped} if untyped else {}


def parse_sacct_json(text: str) -> list[SacctJob]:
    """Jobs from `sacct --json`; an entry that cannot be read is skipped, never stops the rest.

    >>> doc = {"jobs": [{"job_id": 7, "array": {"job_id": 0, "task_id": None}, "user": "u", "account": "def-a",
    ...   "comment": {"job": "scip.ca:user=ana,server="}, "state": {"current": "COMPLETED"},
    ...   "time": {"start": 1000, "end": 4600, "elapsed": 3600},
    ...   "tres": {"allocated": [{"type": "gres", "name": "gpu", "count": 2}, {"type": "gres", "name": "gpu:h100", "count": 2}]}}]}
    >>> [(j.job_id, j.gpus, j.elapsed, j.state) for j in parse_sacct_json(json.dumps(doc))]
    [('7', {'h100': 2}, 3600, 'COMPLETED')]
    """
    try:
        jobs = json.loads(text).get("jobs") or []
    except (ValueError, AttributeError):
        raise ValueError("sacct --json did not print a JSON document with 'jobs'") from None
    out = []
    for job in jobs:
        try:
            times = job.get("time") or {}
            start, end = _epoch(times.get("start")), _epoch(times.get("end"))
            state = _state(job)
            if state in OPEN_STATES:
                end = None
            out.append(SacctJob(
                job_id=_job_id(job), user=str(job.get("user") or ""), account=str(job.get("account") or ""),
                comment=_comment(job), state=state, start=start, end=end,
                elapsed=int(times.get("elapsed") or 0), gpus=_gpus(job),
            ))
        except (TypeError, ValueError, AttributeError) as exc:
            logger.warning("skipping a sacct entry that could not be read (%s)", exc)
    return out


def flavour_share(flavour: str) -> float:
    """GPU-hours per hour of one unit: a full GPU 1, a MIG slice `<model>_<n>g.<mem>` n/7.

    >>> flavour_share("h100"), round(flavour_share("h100_3g.40gb"), 4), flavour_share("nvidia_h100_80gb_hbm3_1g.10gb") == 1 / 7
    (1.0, 0.4286, True)
    """
    tail = flavour.rsplit("_", 1)[-1] if "_" in flavour else ""
    if "g." in tail and tail.split("g.", 1)[0].isdigit():
        return min(int(tail.split("g.", 1)[0]), MIG_SLICES) / MIG_SLICES
    return 1.0


def to_record(job: SacctJob, cluster: str, tags: JobTags, allocations: Allocations | None) -> SlurmJobRecord:
    flavour = max(job.gpus, key=job.gpus.get) if job.gpus else None
    count = sum(job.gpus.values())
    weight = sum(n * flavour_share(f) for f, n in job.gpus.items())
    group = allocations.group_for_slurm_account(job.account) if allocations else None
    return SlurmJobRecord(
        cluster=cluster, job_id=job.job_id, user=tags.user, server=tags.server, slurm_user=job.user,
        slurm_account=job.account, account=f"group:{group}" if group else "", flavour=flavour or None,
        gpus=count, gpu_weight=weight, state=job.state, started_at=job.start, ended_at=_end(job),
    )


def _end(job: SacctJob) -> dt.datetime | None:
    """An ended job's interval is start + Elapsed, sacct's own figure (it leaves out time suspended)."""
    if job.end is None or job.start is None or job.elapsed <= 0:
        return job.end
    return job.start + dt.timedelta(seconds=job.elapsed)


def sacct_argv(since: dt.datetime, until: dt.datetime) -> list[str]:
    """sacct reads -S/-E in local time: the naive UTC bounds are converted to this host's zone."""

    def local(t: dt.datetime) -> str:
        return t.replace(tzinfo=dt.timezone.utc).astimezone().strftime("%Y-%m-%dT%H:%M:%S")

    return ["sacct", "--json", "-X", "--allusers", "-S", local(since), "-E", local(until)]


def parse_squeue_comments(text: str) -> dict[str, str]:
    """`squeue -h -r -o %i|%k` -> {job id: comment}; the comment is the last column (may hold `|`).

    >>> parse_squeue_comments("49_1|scip.ca:user=a,server=\\n50|\\n")
    {'49_1': 'scip.ca:user=a,server=', '50': ''}
    """
    out = {}
    for line in text.splitlines():
        job_id, sep, comment = line.partition("|")
        if sep and job_id.strip():
            out[job_id.strip()] = comment.strip()
    return out


@dataclass
class ReconcileResult:
    read: int
    ours: int
    new: int
    updated: int


class SacctReconciler:
    """Reads sacct for one preset's cluster and records our jobs' GPU intervals in the ledger."""

    def __init__(self, ledger: Ledger, preset, transport, allocations: Allocations | None,
                 clock: Callable[[], dt.datetime] = utcnow, lookback: dt.timedelta = DEFAULT_LOOKBACK):
        self.ledger, self.preset, self.transport, self.allocations = ledger, preset, transport, allocations
        self.clock, self.lookback = clock, lookback

    def window(self) -> tuple[dt.datetime, dt.datetime]:
        now = self.clock()
        since = now - self.lookback
        open_jobs = [j.started_at for j in self.ledger.slurm_jobs(self.preset.name, open_only=True) if j.started_at]
        return min([since, *open_jobs]), now + dt.timedelta(minutes=1)

    def read(self, since: dt.datetime, until: dt.datetime) -> list[SacctJob]:
        text = self.transport.run_sync(sacct_argv(since, until), timeout=120)
        return parse_sacct_json(text)

    def _running_comments(self, jobs: Iterable[SacctJob]) -> dict[str, str]:
        missing = [j.job_id for j in jobs if j.open and not j.comment]
        if not missing:
            return {}
        try:
            out = self.transport.run_sync(["squeue", "-h", "-r", "-o", "%i|%k"], timeout=60)
        except Exception as exc:  # noqa: BLE001 - running jobs are picked up at the next read
            logger.warning("squeue for running jobs' comments failed on %s: %s", self.preset.name, exc)
            return {}
        return parse_squeue_comments(out)

    def run(self, progress: Callable[[int, int], None] | None = None) -> ReconcileResult:
        since, until = self.window()
        jobs = self.read(since, until)
        comments = self._running_comments(jobs)
        records = []
        for i, job in enumerate(jobs):
            tags = JobTags.from_comment(job.comment or comments.get(job.job_id, ""))
            if tags is not None and job.start is not None:
                records.append(to_record(job, self.preset.name, tags, self.allocations))
            if progress and (i % 200 == 0 or i == len(jobs) - 1):
                progress(i + 1, len(jobs))
        new, updated = self.ledger.record_slurm_jobs(records)
        return ReconcileResult(len(jobs), len(records), new, updated)
