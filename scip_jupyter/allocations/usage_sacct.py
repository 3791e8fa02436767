"""GPU-hours of Slurm jobs from Slurm's own accounting (`sacct --json`, or `--parsable`), into the ledger.

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

JSON or parsable. Not every sacct prints JSON (`--json` came in Slurm 21.08 and needs
the serializer/json plugin, which some builds leave out). The first read on a cluster
tries `--json`; when sacct refuses the option (or prints no JSON) the cluster is read
with `--parsable` from then on, in this process (`SACCT_JSON` remembers it). Comments
are free text their job's owner chose (`|`, newlines, tabs, anything), so the parsable
read names its fields (`SACCT_FIELDS`, the comment last) and separates them with a
delimiter made fresh for each read (`new_delimiter`): no comment written before the
read can hold it, and each record ends with it (the trailing delimiter of `--parsable`)
then a newline, so no text can shift a column or start a record. Job names are not
read at all. Both reads give the same `SacctJob`s (a test compares them on the real
Slurm); `squeue` for running jobs' comments is read the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..arc.tags import JobTags
from ..arc.transport import SlurmCommandError
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


def _local(t: dt.datetime) -> str:
    """sacct reads -S/-E in local time: a naive UTC bound in this host's zone."""
    return t.replace(tzinfo=dt.timezone.utc).astimezone().strftime("%Y-%m-%dT%H:%M:%S")


def sacct_argv(since: dt.datetime, until: dt.datetime) -> list[str]:
    """`sacct --json` for every user's allocations (not steps) in [since, until)."""
    return ["sacct", "--json", "-X", "--allusers", "-S", _local(since), "-E", _local(until)]


#: What the parsable read asks sacct for, in this order: the comment (free text) last.
SACCT_FIELDS = ("JobID", "User", "Account", "State", "Start", "End", "ElapsedRaw", "AllocTRES", "Comment")


def new_delimiter() -> str:
    """A field delimiter no job's text holds: 64 random bits, made for one read (`|` and hex: no shell quoting)."""
    return f"|{secrets.token_hex(8)}|"


def sacct_parsable_argv(since: dt.datetime, until: dt.datetime, delimiter: str) -> list[str]:
    """`sacct --parsable` (each record ends with the delimiter) with named fields, for a sacct without --json.

    >>> sacct_parsable_argv(dt.datetime(2026, 12, 1), dt.datetime(2026, 12, 2), "|d|")[:6]
    ['sacct', '--parsable', '--noheader', '--delimiter=|d|', '--format=JobID,User,Account,State,Start,End,ElapsedRaw,AllocTRES,Comment', '-X']
    """
    return ["sacct", "--parsable", "--noheader", f"--delimiter={delimiter}", f"--format={','.join(SACCT_FIELDS)}",
            "-X", "--allusers", "-S", _local(since), "-E", _local(until)]


def split_records(text: str, delimiter: str, fields: int) -> Iterable[list[str]]:
    """Records of `fields` columns, each ended by `delimiter` + newline; one of another width is skipped.

    A newline inside a field (a comment) does not end its record: only the delimiter does.

    >>> list(split_records("1|d|a|b\\nc|d|\\n2|d||d|\\n", "|d|", 2))
    [['1', 'a|b\\nc'], ['2', '']]
    """
    for record in text.split(delimiter + "\n"):
        if not record.strip():
            continue
        columns = record.split(delimiter)
        if len(columns) != fields:
            logger.warning("skipping a Slurm record of %d fields, expected %d: %.200r", len(columns), fields, record)
            continue
        yield columns


def _slurm_time(text: str) -> dt.datetime | None:
    """sacct's local time (`2026-12-01T09:00:00`, or Unknown/None) -> naive UTC."""
    try:
        return dt.datetime.fromisoformat(text.strip()).astimezone(dt.timezone.utc).replace(tzinfo=None)
    except ValueError:
        return None


def _tres_gpus(tres: str) -> dict[str, int]:
    """AllocTRES `cpu=1,gres/gpu:h100=1,gres/gpu=1,...` -> {flavour: count}, as `_gpus` reads the JSON.

    >>> _tres_gpus("billing=1,cpu=1,gres/gpu:h100_1g.10gb=2,gres/gpu=2,mem=256M,node=1"), _tres_gpus("gres/gpu=1")
    ({'h100_1g.10gb': 2}, {'': 1})
    """
    typed: dict[str, int] = {}
    untyped = 0
    for item in tres.split(","):
        name, eq, count = item.strip().partition("=")
        if not eq or not name.startswith("gres/gpu") or not count.strip().isdigit():
            continue
        if name == "gres/gpu":
            untyped = int(count)
        elif name.startswith("gres/gpu:"):
            typed[name[9:]] = typed.get(name[9:], 0) + int(count)
    if typed:
        return typed
    return {"": untyped} if untyped else {}


def parse_sacct_parsable(text: str, delimiter: str) -> list[SacctJob]:
    """Jobs from `sacct_parsable_argv(..., delimiter)`; the same `SacctJob`s `parse_sacct_json` gives.

    >>> d = "|x|"
    >>> row = ["7", "u", "def-a", "CANCELLED by 0", "2026-12-01T09:00:00", "2026-12-01T10:00:00", "3600",
    ...        "cpu=1,gres/gpu:h100=2,gres/gpu=2", "scip.ca:user=ana,server=|\\n8|evil"]
    >>> [(j.job_id, j.state, j.gpus, j.elapsed, j.comment) for j in parse_sacct_parsable(d.join(row) + d + "\\n", d)]
    [('7', 'CANCELLED', {'h100': 2}, 3600, 'scip.ca:user=ana,server=|\\n8|evil')]
    """
    out = []
    for columns in split_records(text, delimiter, len(SACCT_FIELDS)):
        job_id, user, account, state, start, end, elapsed, tres, comment = columns
        try:
            state = (state.split() or [""])[0].rstrip("+")
            out.append(SacctJob(
                job_id=job_id.strip(), user=user.strip(), account=account.strip(),
                comment="" if comment == "(null)" else comment, state=state, start=_slurm_time(start),
                end=None if state in OPEN_STATES else _slurm_time(end), elapsed=int(elapsed.strip() or 0),
                gpus=_tres_gpus(tres),
            ))
        except ValueError as exc:
            logger.warning("skipping a sacct record that could not be read (%s)", exc)
    return out


#: sacct's words when it cannot print JSON: no such option (before Slurm 21.08), or no JSON plugin.
_NO_JSON = re.compile(r"unrecognized option|invalid option|json|serializer|data_parser|mime", re.IGNORECASE)


def lacks_json(exc: Exception) -> bool:
    """Does this failure of `sacct --json` mean this sacct has no JSON (rather than Slurm being down)?

    >>> lacks_json(SlurmCommandError("c", ["sacct"], 1, "sacct: unrecognized option '--json'"))
    True
    >>> lacks_json(SlurmCommandError("c", ["sacct"], 1, "sacct: error: Invalid user id: 0")), lacks_json(ValueError("no JSON"))
    (False, True)
    """
    if isinstance(exc, SlurmCommandError):
        return bool(_NO_JSON.search(exc.stderr))
    return isinstance(exc, ValueError)  # exit 0 but no JSON document: this sacct does not print one


#: Does a cluster's sacct print JSON? Found by a cluster's first read, kept for this process:
#: (transport kind, cluster, how it is reached) -> True (JSON) / False (parsable).
SACCT_JSON: dict[tuple[str, str, str], bool] = {}


def squeue_comments_argv(delimiter: str) -> list[str]:
    """`squeue` of every job and array task: its id and comment, each record ended by the delimiter."""
    return ["squeue", "-h", "-r", "-o", f"%i{delimiter}%k{delimiter}"]


def parse_squeue_comments(text: str, delimiter: str) -> dict[str, str]:
    """`squeue_comments_argv(delimiter)` -> {job id: comment}; a comment may hold `|` or newlines.

    >>> parse_squeue_comments("49_1|d|scip.ca:user=a,server=|d|\\n50|d|x\\n51|y|d|\\n52|d|(null)|d|\\n", "|d|")
    {'49_1': 'scip.ca:user=a,server=', '50': 'x\\n51|y', '52': ''}
    """
    return {job_id.strip(): "" if comment == "(null)" else comment
            for job_id, comment in split_records(text, delimiter, 2) if job_id.strip()}


@dataclass
class ReconcileResult:
    read: int
    ours: int
    new: int
    updated: int


class SacctReconciler:
    """Reads sacct for one preset's cluster and records our jobs' GPU intervals in the ledger."""

    def __init__(self, ledger: Ledger, preset, transport, allocations: Allocations | None,
                 clock: Callable[[], dt.datetime] = utcnow, lookback: dt.timedelta = DEFAULT_LOOKBACK,
                 sacct_json: bool | None = None):
        self.ledger, self.preset, self.transport, self.allocations = ledger, preset, transport, allocations
        self.clock, self.lookback = clock, lookback
        #: True: `sacct --json`; False: `--parsable`; None: as found by the cluster's first read (SACCT_JSON).
        self.sacct_json = sacct_json

    def window(self) -> tuple[dt.datetime, dt.datetime]:
        now = self.clock()
        since = now - self.lookback
        open_jobs = [j.started_at for j in self.ledger.slurm_jobs(self.preset.name, open_only=True) if j.started_at]
        return min([since, *open_jobs]), now + dt.timedelta(minutes=1)

    def _sacct_key(self) -> tuple[str, str, str]:
        t = self.transport
        return (getattr(t, "kind", ""), getattr(t, "cluster", self.preset.name), t.describe())

    def read(self, since: dt.datetime, until: dt.datetime) -> list[SacctJob]:
        """Our window of sacct: JSON where this cluster's sacct prints it, else parsable (found once)."""
        key = self._sacct_key()
        use_json = self.sacct_json if self.sacct_json is not None else SACCT_JSON.get(key)
        if use_json is not False:
            try:
                jobs = parse_sacct_json(self.transport.run_sync(sacct_argv(since, until), timeout=120))
            except (SlurmCommandError, ValueError) as exc:
                if use_json or not lacks_json(exc):
                    raise
                logger.warning("sacct on %s prints no JSON (%s): reading it with --parsable from now on",
                               self.preset.name, exc)
                SACCT_JSON[key] = False
            else:
                SACCT_JSON.setdefault(key, True)
                return jobs
        delimiter = new_delimiter()
        text = self.transport.run_sync(sacct_parsable_argv(since, until, delimiter), timeout=120)
        return parse_sacct_parsable(text, delimiter)

    def _running_comments(self, jobs: Iterable[SacctJob]) -> dict[str, str]:
        missing = [j.job_id for j in jobs if j.open and not j.comment]
        if not missing:
            return {}
        delimiter = new_delimiter()
        try:
            out = self.transport.run_sync(squeue_comments_argv(delimiter), timeout=60)
        except Exception as exc:  # noqa: BLE001 - running jobs are picked up at the next read
            logger.warning("squeue for running jobs' comments failed on %s: %s", self.preset.name, exc)
            return {}
        return parse_squeue_comments(out, delimiter)

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
