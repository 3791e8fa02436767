"""The allocation usage model the widget and pages show: slots in use, GPU-hours left, a daily series.

`allocation_usage(ledger, account, now)` reads the account's holdings from the ledger
(notebook servers and Slurm jobs, the same rows `decide` uses) and returns plain
data; `group_usage(ledger, allocations, group, now)` builds the account from
allocations.yaml. Views (widgets/usage.py) only render it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .policy import Account, group_account
from .usage import SERVER, SLURM, UsageInterval, build_report


@dataclass(frozen=True)
class Slots:
    flavour: str
    in_use: int
    limit: int


@dataclass(frozen=True)
class AllocationUsage:
    """One account's standing now."""

    key: str
    label: str
    window_label: str
    slots: tuple[Slots, ...]
    gpu_hours_used: float
    gpu_hours_limit: float | None
    by_source: dict[str, float] = field(default_factory=dict)  # SERVER / SLURM -> GPU-hours this window
    daily: tuple[tuple[dt.date, float], ...] = ()  # last days, GPU-hours per day

    @property
    def gpu_hours_left(self) -> float | None:
        if self.gpu_hours_limit is None:
            return None
        return max(self.gpu_hours_limit - self.gpu_hours_used, 0.0)


def allocation_usage(ledger, account: Account, now: dt.datetime, days: int = 14) -> AllocationUsage:
    window = account.window
    chart_start = min(window[0], dt.datetime.combine(now.date() - dt.timedelta(days=days - 1), dt.time()))
    holdings = ledger.holdings([account.key], chart_start)
    active = [h for h in holdings if h.active]
    slots = tuple(
        Slots(flavour, sum(h.units for h in active if h.flavour == flavour), limit)
        for flavour, limit in account.max_gpus.items()
    )
    intervals = [
        UsageInterval(SLURM if h.server.startswith("slurm:") else SERVER, h.user, h.account, "", h.flavour,
                      h.gpu_weight, h.start, h.end, h.server)
        for h in holdings
    ]
    in_window = build_report(intervals, window[0], min(window[1], now), now)
    by_source: dict[str, float] = {SERVER: 0.0, SLURM: 0.0}
    for row in in_window.rows:
        by_source[row.source] += row.gpu_hours
    chart_from = dt.datetime.combine(now.date() - dt.timedelta(days=days - 1), dt.time())
    chart = build_report(intervals, chart_from, now, now)
    per_day: dict[dt.date, float] = {}
    for (day, _user), hours in chart.daily.items():
        per_day[day] = per_day.get(day, 0.0) + hours
    daily = tuple((d, per_day.get(d, 0.0)) for d in chart.days())
    limit = account.gpu_hours if account.gpu_hours is not None else account.user_gpu_hours
    return AllocationUsage(account.key, account.label, account.window_label, slots, in_window.total, limit,
                           by_source, daily)


def group_usage(ledger, allocations, group: str, now: dt.datetime, days: int = 14) -> AllocationUsage:
    """The usage of one allocations.yaml group; KeyError naming the known groups otherwise."""
    if group not in allocations.groups:
        raise KeyError(f"group: {group!r} has no allocation; allowed: {', '.join(allocations.groups) or '(none)'}")
    account = group_account(group, allocations.groups[group], allocations.period, now)
    return allocation_usage(ledger, account, now, days)


@dataclass(frozen=True)
class CourseGpuHours:
    """A course's GPU-hours (notebook servers and Slurm jobs it paid for) between its start and end."""

    course: str
    total: float
    students: int  # people who used any
    per_student_limit: float | None

    def text(self) -> str:
        from ..i18n import _

        limit = (_("; at most {limit} per student").format(limit=f"{self.per_student_limit:g}")
                 if self.per_student_limit else "")
        return _("{total} GPU-hours used by {students} people in this course{limit}").format(
            total=f"{self.total:.2f}", students=self.students, limit=limit)


def course_gpu_hours(course, ledger_url: str | None = None, now: dt.datetime | None = None) -> CourseGpuHours | None:
    """For the instructor page: None when no ledger is configured here ($SCIP_LEDGER_URL) or it cannot be read."""
    import logging
    import os

    from .ledger import ledger_for, utcnow
    from .policy import course_account

    url = ledger_url or os.environ.get("SCIP_LEDGER_URL")
    if not url:
        return None
    now = now or utcnow()
    try:
        account = course_account(course)
        holdings = ledger_for(url).holdings([account.key], account.window[0])
    except Exception as exc:  # noqa: BLE001 - the page shows everything else
        logging.getLogger(__name__).warning("course GPU-hours unavailable: %s", type(exc).__name__)
        return None
    used = [(h.user, h.gpu_hours(account.window, now)) for h in holdings]
    return CourseGpuHours(course.id, sum(h for _u, h in used), len({u for u, h in used if h > 0}),
                          account.user_gpu_hours)
