"""The home page's pure parts: plain data for each section, from the models the hub uses.

No I/O here (handlers.py gathers and calls these), so every section is
table-tested: courses (launch link, material version, update available), the
server (profile, uptime, GPU-hours), the allocation (slots, hours left, a chart
of the last days) and the Slurm jobs (state, reason, expected start, cancel).
Every text a person reads goes through the catalog (scip_jupyter.i18n).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..allocations.policy import Account, Holding, account_words, window_words
from ..arc.states import JobState, Phase
from ..i18n import _, ngettext

#: Days the usage chart shows.
CHART_DAYS = 14


def duration_text(seconds: float) -> str:
    """A short human duration.

    >>> duration_text(59), duration_text(3600 * 2 + 60 * 5), duration_text(86400 * 3 + 3600)
    ('less than a minute', '2 h 5 min', '3 d 1 h')
    """
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return _("%(d)s d %(h)s h") % {"d": days, "h": hours}
    if hours:
        return _("%(h)s h %(m)s min") % {"h": hours, "m": minutes}
    if minutes:
        return _("%(m)s min") % {"m": minutes}
    return _("less than a minute")


def hours_text(value: float) -> str:
    """GPU-hours with at most two decimals.

    >>> hours_text(0), hours_text(1), hours_text(2.345)
    ('0 GPU-hours', '1 GPU-hour', '2.35 GPU-hours')
    """
    n = round(value, 2)
    return ngettext("%(n)s GPU-hour", "%(n)s GPU-hours", 1 if n == 1 else 2) % {"n": f"{n:g}"}


# --- courses ---------------------------------------------------------------------------------------


@dataclass
class CourseCard:
    id: str
    title: str
    state: str  # active | upcoming | ended (shown translated)
    launch_url: str
    current_version: str
    your_version: str
    update_available: bool
    note: str = ""
    #: when the person's own server last reported this course's folder (UTC ISO, for <time>); "" = no report
    reported_at: str = ""
    #: the words beside the version: "reported <time>", or that no report came yet
    reported_text: str = ""


def reported_words(reported_at: str) -> str:
    """The words for when the person's server last reported the course folder ("" = never).

    >>> reported_words("2026-12-01T10:00:05+00:00")
    'reported 2026-12-01 10:00 UTC'
    >>> reported_words("")[:44]
    'Your server has not reported this course yet'
    """
    if not reported_at:
        return _("Your server has not reported this course yet: it does when it starts "
                 "and when you launch the course.")
    try:
        when = dt.datetime.fromisoformat(reported_at)
    except ValueError:  # the store's own stamp; shown as it is (escaped) rather than dropped
        return _("reported %(time)s") % {"time": reported_at[:40]}
    return _("reported %(time)s") % {"time": _when(when, when)}


def course_card(course, launch_url: str, current_version: str, report: dict | None, reported_at: str = "",
                error: str = "") -> CourseCard:
    """One course on the person's home page, from the last report their own server sent (courses/reports.py).

    The same source on both hubs: the hub never reads the person's folder (on
    Kubernetes it mounts no home). `report` None: no report yet, said in words;
    `update_available` compares the reported version with the registry's current one.
    """
    state = course.state(dt.datetime.now(dt.timezone.utc).date())
    delivered = str((report or {}).get("delivered_version", "")) if report is not None else ""
    stamp = reported_at if report is not None else ""
    return CourseCard(
        id=course.id, title=course.title, state=state, launch_url=launch_url if state == "active" else "",
        current_version=current_version, your_version=delivered,
        update_available=bool(current_version and delivered and delivered != current_version), note=error,
        reported_at=stamp, reported_text="" if error and report is None else reported_words(stamp),
    )


# --- the server ------------------------------------------------------------------------------------


@dataclass
class ServerCard:
    state: str  # running | starting | stopping | stopped
    profile: str = ""
    profile_slug: str = ""
    uptime: str = ""
    gpu_hours: str = ""
    url: str = ""


def server_card(
    state: str, profile_name: str, profile_slug: str, started: dt.datetime | None, holding: Holding | None,
    now: dt.datetime, url: str,
) -> ServerCard:
    """The person's default server. `holding` is its allocation reservation (GPU-hours so far)."""
    uptime = duration_text((now - started).total_seconds()) if started and state != "stopped" else ""
    used = holding.gpu_hours((holding.start, now), now) if holding else 0.0
    return ServerCard(
        state=state, profile=profile_name, profile_slug=profile_slug, uptime=uptime,
        gpu_hours=hours_text(used) if state != "stopped" else "", url=url,
    )


# --- the allocation --------------------------------------------------------------------------------


@dataclass
class Slot:
    flavour: str
    used: int
    limit: int

    @property
    def percent(self) -> int:
        return round(100 * min(self.used / self.limit, 1.0)) if self.limit else 100


@dataclass
class AllocationCard:
    key: str
    label: str
    description: str
    window: str
    slots: list[Slot] = field(default_factory=list)
    hours_limit: float | None = None
    hours_used: float = 0.0
    your_hours: float = 0.0

    @property
    def hours_left(self) -> float | None:
        return None if self.hours_limit is None else max(self.hours_limit - self.hours_used, 0.0)

    @property
    def left_percent(self) -> int | None:
        if not self.hours_limit:
            return None
        return round(100 * (self.hours_left or 0.0) / self.hours_limit)


#: An account's name and window in the page's language (said once, in allocations/policy.py).
account_label = account_words
window_label = window_words


def allocation_card(account: Account, holdings: Iterable[Holding], user: str, now: dt.datetime,
                    description: str = "") -> AllocationCard:
    """Slots in use (all members, active holdings) and GPU-hours used in the account's window."""
    mine = [h for h in holdings if h.account == account.key]
    active = [h for h in mine if h.active]
    slots = [
        Slot(flavour, sum(h.units for h in active if flavour == "*" or h.flavour == flavour), limit)
        for flavour, limit in account.max_gpus.items()
    ]
    limit = account.gpu_hours if account.gpu_hours is not None else account.user_gpu_hours
    return AllocationCard(
        key=account.key, label=account_label(account.key, account.label), description=description,
        window=window_label(account.window_label),
        slots=slots, hours_limit=limit,
        hours_used=sum(h.gpu_hours(account.window, now) for h in mine
                       if account.gpu_hours is not None or h.user == user),
        your_hours=sum(h.gpu_hours(account.window, now) for h in mine if h.user == user),
    )


@dataclass
class ChartBar:
    day: str
    hours: float
    height: int  # pixels
    x: int
    y: int


def daily_hours(holdings: Iterable[Holding], user: str, now: dt.datetime, days: int = CHART_DAYS) -> list[tuple[dt.date, float]]:
    """The person's GPU-hours per UTC day for the last `days` days (oldest first).

    >>> now = dt.datetime(2026, 12, 1, 12)
    >>> h = Holding("ana", "", "group:r", "h100", 1, 1.0, dt.datetime(2026, 11, 30, 23), None)
    >>> daily_hours([h], "ana", now, days=2)
    [(datetime.date(2026, 11, 30), 1.0), (datetime.date(2026, 12, 1), 12.0)]
    """
    today = now.date()
    out = []
    for back in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=back)
        start = dt.datetime.combine(day, dt.time())
        window = (start, start + dt.timedelta(days=1))
        out.append((day, round(sum(h.gpu_hours(window, now) for h in holdings if h.user == user), 3)))
    return out


def chart_bars(series: Sequence[tuple[dt.date, float]], height: int = 60, bar: int = 12, gap: int = 4) -> list[ChartBar]:
    """SVG geometry for a small bar chart (the tallest bar is `height` px; an empty day is 1 px)."""
    top = max((v for _, v in series), default=0.0) or 1.0
    bars = []
    for i, (day, value) in enumerate(series):
        h = max(1, round(height * value / top))
        bars.append(ChartBar(day.isoformat(), value, h, i * (bar + gap), height - h))
    return bars


# --- Slurm jobs ------------------------------------------------------------------------------------


@dataclass
class JobRow:
    preset: str
    job_id: str
    cancel_id: str
    name: str
    phase: str
    state: str
    reason: str
    expected_start: str
    elapsed: str
    cancellable: bool


def _when(value: dt.datetime | None, now: dt.datetime) -> str:
    if value is None:
        return ""
    value = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def job_rows(preset: str, jobs: Iterable[JobState], user: str, account: str, now: dt.datetime) -> list[JobRow]:
    """The person's jobs on one cluster: run by Slurm as their own account AND tagged for them.

    Slurm's owning account decides; the tags only say which of that account's
    jobs are the hub's (any user can write any tags into their own job's
    comment, so tag text alone never makes a job someone's). No account: no jobs.
    """
    rows = []
    for j in jobs:
        if not account or j.user != account or j.tags is None or j.tags.user != user:
            continue
        rows.append(
            JobRow(
                preset=preset, job_id=j.job_id, cancel_id=j.array_job_id, name=j.name, phase=j.phase.value,
                state=j.slurm_state or j.phase.value, reason=j.reason if j.phase is Phase.PENDING else "",
                expected_start=_when(j.start, now) if j.phase is Phase.PENDING else "",
                elapsed=duration_text(j.elapsed_s) if j.elapsed_s else "",
                cancellable=not j.phase.finished,
            )
        )
    return rows


@dataclass
class JobsSection:
    rows: list[JobRow] = field(default_factory=list)
    #: preset -> why its jobs could not be listed (Slurm not running, unreachable).
    unavailable: dict[str, str] = field(default_factory=dict)


# --- the words for states ----------------------------------------------------------------------------


def state_words() -> dict[str, str]:
    """Translated names of the states the page shows (data keeps the English token)."""
    return {
        "running": _("running"), "starting": _("starting"), "stopping": _("stopping"), "stopped": _("stopped"),
        "active": _("active"), "upcoming": _("upcoming"), "ended": _("ended"),
        "pending": _("pending"), "suspended": _("suspended"), "completed": _("completed"), "failed": _("failed"),
        "timeout": _("timeout"), "cancelled": _("cancelled"), "unknown": _("unknown"),
    }
