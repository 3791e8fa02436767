"""Usage reports: GPU-hours per day, user, account and source (notebook servers, Slurm jobs).

Pure model over the ledger's intervals: `load_intervals(ledger, since, until)` is the
one read; `build_report(...)` clips each interval to the window, splits it by UTC
day and sums. The CLI table, the CSV and the chart (`scip-jupyter usage`), the
allocation usage widget and the instructor page all show `UsageReport` figures, so
their totals agree with each other and with the ledger.

An interval's GPU-hours are its GPU weight (GPUs × the GPU's share: a MIG slice 1/7
per compute slice) × the hours it overlaps the window; an interval still open counts
up to `now`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from ..i18n import _

SERVER, SLURM = "server", "slurm"
#: Source -> what people read.
SOURCES = {SERVER: "notebook servers", SLURM: "Slurm jobs"}


@dataclass(frozen=True)
class UsageInterval:
    """One holding of GPUs: a notebook server's reservation or a Slurm job from sacct."""

    source: str  # SERVER or SLURM
    user: str
    account: str  # ledger key: group:<name>, course:<id>, "" (not metered)
    slurm_account: str
    flavour: str | None
    gpu_weight: float  # GPU-hours per hour
    start: dt.datetime
    end: dt.datetime | None  # None: still open
    ref: str  # server name, or cluster:job id

    def hours_between(self, a: dt.datetime, b: dt.datetime, now: dt.datetime) -> float:
        start, end = max(self.start, a), min(self.end or now, b, now)
        return max((end - start).total_seconds(), 0.0) / 3600 * self.gpu_weight


def load_intervals(ledger, since: dt.datetime, until: dt.datetime) -> list[UsageInterval]:
    """Every GPU interval of the ledger overlapping [since, until)."""
    servers, jobs = ledger.intervals(since, until)
    out = [
        UsageInterval(SERVER, r.user, r.account, "", r.flavour, r.gpu_weight, r.started_at, r.released_at, r.server)
        for r in servers
    ]
    out += [
        UsageInterval(SLURM, j.user, j.account, j.slurm_account, j.flavour, j.gpu_weight, j.started_at, j.ended_at,
                      f"{j.cluster}:{j.job_id}")
        for j in jobs
    ]
    return out


def matches_project(interval: UsageInterval, project: str) -> bool:
    """`--project P`: the group or course P (`group:P`, `course:P`, or the key itself), or Slurm account P."""
    return project in (interval.account, interval.slurm_account) or interval.account.split(":", 1)[-1] == project


@dataclass
class UsageRow:
    user: str
    account: str
    source: str
    gpu_hours: float


@dataclass
class UsageReport:
    since: dt.datetime
    until: dt.datetime
    rows: list[UsageRow] = field(default_factory=list)  # per (user, account, source), largest first
    daily: dict[tuple[dt.date, str], float] = field(default_factory=dict)  # (day, user) -> GPU-hours
    daily_rows: list[tuple[dt.date, str, str, str, float]] = field(default_factory=list)  # day, user, account, source

    @property
    def total(self) -> float:
        return sum(r.gpu_hours for r in self.rows)

    def days(self) -> list[dt.date]:
        first, last = self.since.date(), (self.until - dt.timedelta(microseconds=1)).date()
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    def users(self) -> list[str]:
        totals: dict[str, float] = defaultdict(float)
        for r in self.rows:
            totals[r.user] += r.gpu_hours
        return sorted(totals, key=lambda u: (-totals[u], u))


def _day_pieces(interval: UsageInterval, since: dt.datetime, until: dt.datetime, now: dt.datetime):
    start = max(interval.start, since)
    end = min(interval.end or now, until, now)
    while start < end:
        day_end = dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time())
        piece_end = min(day_end, end)
        yield start.date(), (piece_end - start).total_seconds() / 3600 * interval.gpu_weight
        start = piece_end


def build_report(
    intervals: Iterable[UsageInterval], since: dt.datetime, until: dt.datetime, now: dt.datetime,
    project: str | None = None, user: str | None = None, progress: Callable[[int], None] | None = None,
) -> UsageReport:
    """GPU-hours in [since, until), per (user, account, source) and per (day, user)."""
    totals: dict[tuple[str, str, str], float] = defaultdict(float)
    daily: dict[tuple[dt.date, str], float] = defaultdict(float)
    daily_rows: dict[tuple[dt.date, str, str, str], float] = defaultdict(float)
    for i, interval in enumerate(intervals):
        if progress and i % 500 == 0:
            progress(i)
        if user is not None and interval.user != user:
            continue
        if project is not None and not matches_project(interval, project):
            continue
        for day, hours in _day_pieces(interval, since, until, now):
            if hours <= 0:
                continue
            totals[(interval.user, interval.account, interval.source)] += hours
            daily[(day, interval.user)] += hours
            daily_rows[(day, interval.user, interval.account, interval.source)] += hours
    rows = [UsageRow(u, a, s, h) for (u, a, s), h in totals.items()]
    rows.sort(key=lambda r: (-r.gpu_hours, r.user, r.account, r.source))
    return UsageReport(since, until, rows, dict(daily), sorted((*k, v) for k, v in daily_rows.items()))


def account_label(key: str) -> str:
    if not key:
        return _("not metered")
    kind, _sep, name = key.partition(":")
    return {"group": _("group {name}"), "course": _("course {name}")}.get(kind, "{name}").format(name=name or key)


def source_label(source: str) -> str:
    return _("notebook servers") if source == SERVER else _("Slurm jobs")


# ---------------------------------------------------------------- outputs (CSV, chart)


def write_csv(report: UsageReport, path) -> int:
    """One line per (day, user, account, source) with its GPU-hours; returns the lines written."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["day", "user", "account", "source", "gpu_hours"])
        for day, who, account, source, hours in report.daily_rows:
            out.writerow([day.isoformat(), who, account, source, f"{hours:.6f}"])
    return len(report.daily_rows)


def plot(report: UsageReport, path, title: str | None = None, max_users: int = 12) -> None:
    """A PNG: GPU-hours per day, stacked by user (the smallest users beyond `max_users` as "others")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = report.days()
    users = report.users()
    shown, rest = users[:max_users], users[max_users:]
    fig, ax = plt.subplots(figsize=(max(6, min(16, len(days) * 0.45 + 3)), 4.5), dpi=110)
    bottom = [0.0] * len(days)
    series = [(u, [report.daily.get((d, u), 0.0) for d in days]) for u in shown]
    if rest:
        series.append((_("others"), [sum(report.daily.get((d, u), 0.0) for u in rest) for d in days]))
    x = list(range(len(days)))
    for name, values in series:
        ax.bar(x, values, bottom=bottom, label=name, width=0.8)
        bottom = [b + v for b, v in zip(bottom, values)]
    step = max(1, len(days) // 15)
    ax.set_xticks(x[::step], [d.strftime("%m-%d") for d in days][::step], rotation=45, ha="right")
    ax.set_ylabel(_("GPU-hours"))
    ax.set_title(title or _("GPU-hours per day by user, {since} to {until} (total {total})").format(
        since=report.since.date().isoformat(), until=report.until.date().isoformat(), total=f"{report.total:.2f}"))
    if series:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def parse_day(value: str, field_name: str) -> dt.datetime:
    """`YYYY-MM-DD` (UTC midnight) or `YYYY-MM-DDTHH:MM`; ValueError naming the field otherwise."""
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise ValueError(_("{field}: {value!r} is not a date; allowed: YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)").format(
        field=field_name, value=value))


def per_account(report: UsageReport) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for r in report.rows:
        out[r.account] += r.gpu_hours
    return dict(out)


def users_in(intervals: Sequence[UsageInterval]) -> list[str]:
    return sorted({i.user for i in intervals})
