"""Slurm job states, parsed from `squeue`, `squeue --start`, `squeue --json` and `sacct`.

Pure: command builders return argv lists, parsers take the text a command
printed and return `JobState`s. The one place that runs the commands is
scip_jupyter/arc/poller.py.

dask-jobqueue reports a pending job as running (its issue #11); here a job is
`pending` until Slurm says it runs, with Slurm's reason and estimated start:

>>> line = "42_3|PENDING|Priority|2026-11-25T08:00:00|0:00|1:00:00|scip-dask-worker-alice-default|alice|cpu|1|scip.ca:user=alice,server=default"
>>> (job,) = parse_squeue(line)
>>> job.phase, job.reason, job.array_job_id, job.array_task, job.tags.user
(<Phase.PENDING: 'pending'>, 'Priority', '42', '3', 'alice')
>>> job.reason_text
'higher-priority jobs are ahead in the queue'
>>> parse_duration("1-02:03:04")
93784
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum

from .tags import JobTags

log = logging.getLogger(__name__)


class Phase(str, Enum):
    """What a person needs to know about a job; Slurm's own state stays in `JobState.slurm_state`."""

    PENDING = "pending"
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = {Phase.COMPLETED, Phase.FAILED, Phase.TIMEOUT, Phase.CANCELLED}

#: Slurm's extended job states (squeue %T, sacct State) -> Phase.
SLURM_STATES: dict[str, Phase] = {
    "PENDING": Phase.PENDING,
    "CONFIGURING": Phase.PENDING,  # resources allocated, nodes booting: nothing runs yet
    "REQUEUED": Phase.PENDING,
    "REQUEUE_FED": Phase.PENDING,
    "REQUEUE_HOLD": Phase.PENDING,
    "RESV_DEL_HOLD": Phase.PENDING,
    "SPECIAL_EXIT": Phase.PENDING,
    "RUNNING": Phase.RUNNING,
    "COMPLETING": Phase.RUNNING,
    "STAGE_OUT": Phase.RUNNING,
    "SIGNALING": Phase.RUNNING,
    "RESIZING": Phase.RUNNING,
    "SUSPENDED": Phase.SUSPENDED,
    "STOPPED": Phase.SUSPENDED,
    "COMPLETED": Phase.COMPLETED,
    "FAILED": Phase.FAILED,
    "BOOT_FAIL": Phase.FAILED,
    "NODE_FAIL": Phase.FAILED,
    "OUT_OF_MEMORY": Phase.FAILED,
    "DEADLINE": Phase.FAILED,
    "PREEMPTED": Phase.FAILED,
    "REVOKED": Phase.CANCELLED,
    "CANCELLED": Phase.CANCELLED,
    "TIMEOUT": Phase.TIMEOUT,
}

#: Common pending reasons in plain words (squeue(1) "JOB REASON CODES"); others are shown as Slurm prints them.
REASONS: dict[str, str] = {
    "Priority": "higher-priority jobs are ahead in the queue",
    "Resources": "waiting for nodes with the requested resources to become free",
    "Dependency": "waiting for another job to finish",
    "JobArrayTaskLimit": "other tasks of its array run first (array throttle)",
    "DependencyNeverSatisfied": "depends on a job that failed: it will never start",
    "BeginTime": "its earliest start time has not been reached",
    "JobHeldUser": "held by its owner (scontrol release to start it)",
    "JobHeldAdmin": "held by an administrator",
    "ReqNodeNotAvail": "a node it needs is down, drained or reserved",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition does not start jobs now",
    "PartitionTimeLimit": "its walltime exceeds the partition's limit",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows, or they are down",
    "InvalidAccount": "the account is not valid for this user",
    "InvalidQOS": "the QOS is not valid",
    "AssocGrpGRES": "the account's GPU allocation is in use",
    "AssocMaxJobsLimit": "the per-user job limit is reached",
    "QOSMaxJobsPerUserLimit": "the per-user job limit is reached",
    "Reservation": "waiting for its reservation to start",
    "Licenses": "waiting for a licence",
    "NodeDown": "a node it needs is down",
    "BadConstraints": "its constraints cannot be met",
    "WaitingForScheduling": "the scheduler has not looked at it yet",
    "None": "",
}

#: squeue -o fields, in order. The comment (free text of other users' jobs) comes last
#: so a "|" inside it cannot shift the other columns.
SQUEUE_FIELDS = ("%i", "%T", "%r", "%S", "%M", "%l", "%j", "%u", "%P", "%D", "%k")
SQUEUE_FORMAT = "|".join(SQUEUE_FIELDS)
SACCT_FIELDS = ("JobID", "State", "ExitCode", "Start", "End", "Elapsed", "Timelimit", "JobName", "User", "Partition", "Reason", "Comment")

_ARRAY_ID = re.compile(r"^(?P<job>\d+)_(?P<task>\[.*\]|\d+)$")
_HET_ID = re.compile(r"^(?P<job>\d+)\+(?P<comp>\d+)$")
_DURATION = re.compile(r"^(?:(?P<d>\d+)-)?(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+)(?:\.\d+)?$")


@dataclass(frozen=True)
class JobState:
    """One Slurm job (or one array task) as seen at one moment."""

    job_id: str  # as Slurm prints it: "42", "42_3", "42_[4-31]"
    phase: Phase
    slurm_state: str = ""
    reason: str = ""  # Slurm's reason code ("Priority", "Resources", ...), "" when none
    start: datetime | None = None  # actual start, or Slurm's estimate while pending
    end: datetime | None = None
    elapsed_s: int | None = None
    time_limit_s: int | None = None  # None: unlimited or not set
    name: str = ""
    user: str = ""
    partition: str = ""
    nodes: int | None = None
    exit_code: str = ""
    comment: str = ""
    tags: JobTags | None = field(default=None, compare=False)

    @property
    def array_job_id(self) -> str:
        """The id `scancel` needs to end the whole job (array tasks share it)."""
        m = _ARRAY_ID.match(self.job_id) or _HET_ID.match(self.job_id)
        return m.group("job") if m else self.job_id

    @property
    def array_task(self) -> str | None:
        m = _ARRAY_ID.match(self.job_id)
        return m.group("task") if m else None

    @property
    def reason_text(self) -> str:
        code = self.reason.split(",")[0].strip()
        return REASONS.get(code, self.reason)

    @property
    def start_is_estimate(self) -> bool:
        return self.phase is Phase.PENDING and self.start is not None

    def to_json(self) -> dict:
        """Plain data for the REST API and widgets."""
        out = asdict(self)
        out.pop("tags")
        out["phase"] = self.phase.value
        out["start"] = self.start.isoformat() if self.start else None
        out["end"] = self.end.isoformat() if self.end else None
        out["reason_text"] = self.reason_text
        out["start_is_estimate"] = self.start_is_estimate
        out["array_job_id"] = self.array_job_id
        out["array_task"] = self.array_task
        out["tags"] = asdict(self.tags) if self.tags else None
        return out

    @classmethod
    def from_slurm(cls, *, reason: str, comment: str, **fields) -> "JobState":
        """One job as a Slurm command printed it (squeue, sacct, squeue --json): the one place
        that reads Slurm's "None" reason as none and the platform's tags from the --comment."""
        return cls(reason="" if reason == "None" else reason, comment=comment, tags=JobTags.from_comment(comment), **fields)


# ---------------------------------------------------------------- command builders


def squeue_argv(user: str | None = None, me: bool = False, states: str | None = None, json: bool = True) -> list[str]:
    """`squeue --json` (default; Slurm 22.05+), or every array task on its own line in SQUEUE_FORMAT.

    JSON is the default because job names and comments are free text chosen
    by users: in columns a `|` or a newline would shift them. Slurm 22.05
    ignores the filters with `--json` (it lists every job), so the parsers
    filter by user themselves (`parse_squeue(text, user=...)`).

    `me=True` lists the jobs of whoever the transport runs as (through ssh that
    is the cluster account, whose name may differ from the notebook's user).

    >>> squeue_argv(user="alice")
    ['squeue', '--json', '--user=alice']
    """
    argv = ["squeue", "--json"] if json else ["squeue", "--noheader", "--array", f"--format={SQUEUE_FORMAT}"]
    if me:
        argv.append("--me")
    elif user:
        argv.append(f"--user={user}")
    if states:
        argv.append(f"--states={states}")
    return argv


def squeue_start_argv(me: bool = True) -> list[str]:
    """`squeue --start`: pending jobs with Slurm's estimated start (backfill scheduler only)."""
    return ["squeue", "--start", "--noheader", "--array", f"--format={SQUEUE_FORMAT}"] + (["--me"] if me else [])


def sacct_argv(job_ids: list[str]) -> list[str]:
    """`sacct` for finished jobs (where allowed: robot nodes forbid it)."""
    return [
        "sacct", "--parsable2", "--noheader", "--allocations", "--duplicates",
        f"--format={','.join(SACCT_FIELDS)}", f"--jobs={','.join(job_ids)}",
    ]  # fmt: skip


def scancel_argv(job_ids: list[str]) -> list[str]:
    return ["scancel", *job_ids]


# ---------------------------------------------------------------- value parsers


def parse_duration(text: str) -> int | None:
    """Slurm's `[days-][hours:]minutes:seconds` -> seconds; None for UNLIMITED, NOT_SET, INVALID, ''."""
    text = (text or "").strip()
    m = _DURATION.match(text)
    if not m:
        return None
    d, h, mi, s = (int(m.group(k) or 0) for k in ("d", "h", "m", "s"))
    return ((d * 24 + h) * 60 + mi) * 60 + s


def parse_time(text: str) -> datetime | None:
    """Slurm's local ISO time (no zone) -> aware datetime; None for N/A, Unknown, None, ''."""
    text = (text or "").strip()
    if not text or text in ("N/A", "Unknown", "None", "NONE"):
        return None
    try:
        return datetime.fromisoformat(text).astimezone()
    except ValueError:
        return None


def _epoch(value) -> datetime | None:
    """`squeue --json` times: an int (22.05) or {"set": bool, "number": int} (23.02+); 0 means unset."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if not value:
        return None
    return datetime.fromtimestamp(int(value), tz=timezone.utc).astimezone()


def _number(value) -> int | None:
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    return None if value in (None, "") else int(value)


def phase_of(slurm_state: str) -> Phase:
    """`CANCELLED by 0` -> cancelled; unknown states -> unknown."""
    word = (slurm_state or "").strip().split(" ")[0].rstrip("+").upper()
    return SLURM_STATES.get(word, Phase.UNKNOWN)


def _int(text: str) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


# ---------------------------------------------------------------- output parsers


def parse_squeue(text: str, user: str | None = None) -> list[JobState]:
    """What `squeue_argv()` printed -> JobStates: JSON (`--json`) or lines (`squeue_start_argv()`, older Slurm).

    `user` keeps only that account's jobs (JSON from Slurm 22.05 lists everyone's).
    A malformed entry is skipped with a log line; the others are still returned.
    """
    if text.lstrip().startswith("{"):
        return parse_squeue_json(text, user=user)
    jobs = _parse_squeue_lines(text)
    return [j for j in jobs if j.user == user] if user else jobs


def _parse_squeue_lines(text: str) -> list[JobState]:
    jobs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            jobs.append(_squeue_line(line))
        except ValueError as exc:
            log.warning("skipping a squeue line that does not parse: %s", exc)
    return jobs


def _squeue_line(line: str) -> JobState:
    cols = line.split("|", len(SQUEUE_FIELDS) - 1)
    if len(cols) < len(SQUEUE_FIELDS):
        raise ValueError(f"squeue line has {len(cols)} columns, expected {len(SQUEUE_FIELDS)} ({SQUEUE_FORMAT}): {line!r}")
    job_id, state, reason, start, used, limit, name, user, partition, nodes, comment = (c.strip() for c in cols)
    return JobState.from_slurm(
        job_id=job_id,
        phase=phase_of(state),
        slurm_state=state,
        reason=reason,
        start=parse_time(start),
        elapsed_s=parse_duration(used),
        time_limit_s=parse_duration(limit),
        name=name,
        user=user,
        partition=partition,
        nodes=_int(nodes),
        comment="" if comment == "(null)" else comment,
    )


def parse_squeue_start(text: str) -> dict[str, datetime | None]:
    """`squeue --start` in its DEFAULT format (JOBID PARTITION NAME USER ST START_TIME NODES SCHEDNODES NODELIST(REASON)).

    Returns job id -> estimated start. Accepts the header line or none.
    """
    out: dict[str, datetime | None] = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 6 or cols[0] == "JOBID":
            continue
        out[cols[0]] = parse_time(cols[5])
    return out


def with_start_estimates(jobs: list[JobState], estimates: dict[str, datetime | None]) -> list[JobState]:
    """Fill pending jobs' start from `squeue --start` where squeue itself gave none."""
    return [
        replace(j, start=estimates[j.job_id]) if j.phase is Phase.PENDING and j.start is None and estimates.get(j.job_id) else j
        for j in jobs
    ]


def parse_sacct(text: str) -> list[JobState]:
    """`sacct_argv()` output (`--parsable2`: '|' separated, comment last) -> JobStates."""
    jobs = []
    n = len(SACCT_FIELDS)
    for line in text.splitlines():
        if not line.strip() or line.startswith("JobID|"):
            continue
        cols = line.split("|", n - 1)
        if len(cols) < n:
            raise ValueError(f"sacct line has {len(cols)} columns, expected {n} ({','.join(SACCT_FIELDS)}): {line!r}")
        job_id, state, exit_code, start, end, elapsed, limit, name, user, partition, reason, comment = cols
        jobs.append(
            JobState.from_slurm(
                job_id=job_id,
                phase=phase_of(state),
                slurm_state=state,
                reason=reason,
                start=parse_time(start),
                end=parse_time(end),
                elapsed_s=parse_duration(elapsed),
                time_limit_s=parse_duration(limit),
                name=name,
                user=user,
                partition=partition,
                exit_code=exit_code,
                comment=comment,
            )
        )
    return jobs


def parse_squeue_json(text: str, now: datetime | None = None, user: str | None = None) -> list[JobState]:
    """`squeue --json` (Slurm 22.05 and later, and slurmrestd's GET /jobs) -> JobStates, one per array task.

    Pending tasks Slurm still holds together keep its id `42_[2-31%4]`. JSON gives no
    elapsed time: it is computed from the start time and `now`. `user` keeps
    only that account's jobs. An entry that does not parse is skipped with a log line.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"squeue --json printed something that is not JSON ({exc}): {text[:200]!r}") from None
    now = now or datetime.now(timezone.utc)
    jobs: list[JobState] = []
    entries = data.get("jobs") if isinstance(data, dict) else None
    for j in entries if isinstance(entries, list) else []:
        try:
            if user and j.get("user_name") != user:
                continue
            jobs.append(_json_job(j, now))
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
            job_id = j.get("job_id") if isinstance(j, dict) else None
            log.warning("skipping job %r in squeue --json output: %s: %s", job_id, type(exc).__name__, exc)
    return jobs


def _json_job(j: dict, now: datetime) -> JobState:
    state = j.get("job_state", "")
    if isinstance(state, list):  # 23.02+: a list of flags, the base state first
        state = state[0] if state else ""
    array_job = _number(j.get("array_job_id"))
    task = _number(j.get("array_task_id"))
    job_id = f"{array_job}_{task}" if array_job and task is not None else str(int(j["job_id"]))
    if array_job and task is None and j.get("array_task_string"):
        job_id = f"{array_job}_[{j['array_task_string']}]"
    limit_min = _number(j.get("time_limit"))
    start, phase = _epoch(j.get("start_time")), phase_of(str(state))
    elapsed = int((now - start).total_seconds()) if start and phase is Phase.RUNNING else (0 if phase is Phase.PENDING else None)
    comment = j.get("comment") or ""
    if isinstance(comment, dict):  # 23.02+
        comment = comment.get("job") or ""
    reason = j.get("state_reason") or ""
    return JobState.from_slurm(
        job_id=job_id,
        phase=phase,
        slurm_state=str(state),
        reason=str(reason),
        start=start,
        end=_epoch(j.get("end_time")) if phase.finished else None,
        elapsed_s=elapsed,
        time_limit_s=limit_min * 60 if limit_min else None,
        name=str(j.get("name") or ""),
        user=str(j.get("user_name") or ""),
        partition=str(j.get("partition") or ""),
        nodes=_number(j.get("node_count")),
        comment=str(comment),
    )


# ---------------------------------------------------------------- selections


def jobs_of_server(jobs: list[JobState], user: str, server: str) -> list[JobState]:
    """The jobs whose --comment tags name this notebook server."""
    want = JobTags(user=user, server=server)
    return [j for j in jobs if j.tags is not None and j.tags.same_server(want)]


def jobs_with_ids(jobs: list[JobState], ids: set[str]) -> list[JobState]:
    """Jobs (or array tasks) belonging to any of the given job ids."""
    return [j for j in jobs if j.job_id in ids or j.array_job_id in ids]
