"""Pure allocation decisions: may this user start this profile now, and what is left?

Nothing here reads a file or a database. The ledger gathers the holdings (one
per reservation, active or past) inside its transaction and asks `decide`; the
spawn form asks `standing` for the same figures without reserving anything.

Who pays for a spawn (`accounts_for`):

1. a course, when the options name an active course the user takes or teaches
   that lists the profile, or when only a course grants the profile (not the
   user's groups): the course's `allocation` from courses.yaml
   (`max_concurrent_servers`, `gpu_hours_per_student`; 0 means no limit);
2. otherwise the user's groups whose quota in allocations.yaml covers the
   profile's flavour, in file order: the first with room pays;
3. no such account: CPU profiles are never metered; a GPU profile is allowed
   unmetered or denied, as the file's `unlisted` says.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..catalog import Profile
from ..i18n import _
from .quotas import Allocations, GroupQuota, Period, Unlisted

#: The account of a spawn no quota covers.
UNMETERED = ""
_EPS = 1e-9


# --- inputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What one spawn asks for."""

    user: str
    server: str
    profile: str
    flavour: str | None
    units: int
    gpu_weight: float

    @classmethod
    def for_profile(cls, profile: Profile, user: str, server: str = "") -> "Request":
        return cls(user, server, profile.slug, profile.flavour, profile.units, float(profile.gpu_share))

    @property
    def need(self) -> str:
        return f"{self.units} × {self.flavour}" if self.flavour else "no GPU"


@dataclass(frozen=True)
class Holding:
    """One reservation as the policy sees it; `end` is None while it is held."""

    user: str
    server: str
    account: str
    flavour: str | None
    units: int
    gpu_weight: float
    start: dt.datetime
    end: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.end is None

    def gpu_hours(self, window: tuple[dt.datetime, dt.datetime], now: dt.datetime) -> float:
        """GPU-hours this holding used inside `window` (up to `now` while still held)."""
        start = max(self.start, window[0])
        end = min(self.end or now, window[1], now)
        return max((end - start).total_seconds(), 0.0) / 3600 * self.gpu_weight


@dataclass(frozen=True)
class Account:
    """Who pays: a project (hub group) or a course, with its limits for the current window."""

    key: str
    label: str
    source: str
    window: tuple[dt.datetime, dt.datetime]
    window_label: str
    max_gpus: Mapping[str, int] = field(default_factory=dict)
    gpu_hours: float | None = None
    user_gpu_hours: float | None = None
    max_servers: int | None = None


# --- outputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One limit of an account as it stands for a request: `field` as written in its file."""

    account: Account
    field: str
    limit: float
    used: float
    need: float
    unit: str  # "server", "× h100", "GPU-hours"

    @property
    def hours(self) -> bool:
        return self.unit == "GPU-hours"

    @property
    def left(self) -> float:
        return max(self.limit - self.used, 0.0)

    @property
    def short(self) -> bool:
        # GPU-hours are checked at start only (a running server may go past them);
        # units and servers must fit whole.
        return self.used + _EPS >= self.limit if self.hours else self.used + self.need > self.limit

    def left_text(self) -> str:
        if self.hours:
            whose = "of your " if self.field.endswith("per_student") else ""
            return f"{_num(self.left)} of {_num(self.limit)} {whose}GPU-hours left {self.account.window_label}"
        unit = "servers" if self.unit == "server" else self.unit
        return f"{_num(self.left)} of {_num(self.limit)} {unit} free"

    def left_words(self) -> str:
        """`left_text()` in the reader's language (the spawn form)."""
        figures = {"left": _num(self.left), "limit": _num(self.limit)}
        if self.hours:
            window = window_words(self.account.window_label)
            if self.field.endswith("per_student"):
                return _("%(left)s of %(limit)s of your GPU-hours left %(window)s") % {**figures, "window": window}
            return _("%(left)s of %(limit)s GPU-hours left %(window)s") % {**figures, "window": window}
        if self.unit == "server":
            return _("%(left)s of %(limit)s servers free") % figures
        return _("%(left)s of %(limit)s %(unit)s free") % {**figures, "unit": self.unit}

    def __str__(self) -> str:
        used = f"used {self.account.window_label}" if self.hours else "in use"
        return (
            f"{self.account.label}: {self.field} is {_num(self.limit)} in {self.account.source}, "
            f"{_num(self.used)} {used}, {_num(self.left)} left (needs {_num(self.need)} {self.unit})"
        )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    account: Account | None
    message: str
    shortfalls: tuple[Figure, ...] = ()

    @property
    def account_key(self) -> str:
        return self.account.key if self.account else UNMETERED


@dataclass(frozen=True)
class Standing:
    """For the spawn form: can it start now, and what is left in the account that would pay."""

    ok: bool
    text: str
    #: Why it cannot start (ok False), in the reader's language: the card's "unavailable" reason.
    reason: str = ""


def account_words(key: str, label: str) -> str:
    """An account's name in the reader's language.

    >>> account_words("group:researchers", "group researchers"), account_words("x", "x")
    ('group researchers', 'x')
    """
    kind, _sep, name = key.partition(":")
    if kind == "group":
        return _("group %(name)s") % {"name": name}
    if kind == "course":
        return _("course %(id)s") % {"id": name}
    return label


def window_words(text: str) -> str:
    """An allocation window ("this month", "in course x") in the reader's language."""
    words = {"this day": _("today"), "this week": _("this week"), "this month": _("this month")}
    if text in words:
        return words[text]
    if text.startswith("in course "):
        return _("in course %(id)s") % {"id": text[len("in course "):]}
    return text


def _num(value: float) -> str:
    return f"{round(value, 2):g}"


# --- accounts --------------------------------------------------------------------------------------


def period_window(period: Period, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The calendar period (UTC, naive datetimes) holding `now`.

    >>> period_window(Period.week, dt.datetime(2026, 11, 26, 15))
    (datetime.datetime(2026, 11, 23, 0, 0), datetime.datetime(2026, 11, 30, 0, 0))
    """
    day = dt.datetime(now.year, now.month, now.day)
    if period is Period.day:
        return day, day + dt.timedelta(days=1)
    if period is Period.week:
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=7)
    start = dt.datetime(now.year, now.month, 1)
    end = dt.datetime(now.year + (now.month == 12), now.month % 12 + 1, 1)
    return start, end


def group_account(name: str, quota: GroupQuota, period: Period, now: dt.datetime) -> Account:
    return Account(
        key=f"group:{name}",
        label=f"group {name}",
        source="allocations.yaml",
        window=period_window(period, now),
        window_label=f"this {period.value}",
        max_gpus=dict(quota.max_gpus),
        gpu_hours=quota.gpu_hours,
    )


def course_account(course: Any) -> Account:
    """A course's allocation (registry Course: id, allocation, start, end); 0 means no limit."""
    start = dt.datetime.combine(course.start, dt.time())
    end = dt.datetime.combine(course.end, dt.time()) + dt.timedelta(days=1)
    alloc = course.allocation
    return Account(
        key=f"course:{course.id}",
        label=f"course {course.id}",
        source="courses.yaml",
        window=(start, end),
        window_label=f"in course {course.id}",
        user_gpu_hours=alloc.gpu_hours_per_student or None,
        max_servers=alloc.max_concurrent_servers or None,
    )


def paying_course(
    courses: Sequence[Any], profile: str, user: str, groups: Iterable[str], course_option: str | None,
    allowed_by_groups: bool, today: dt.date,
) -> Any | None:
    """The course that pays for this spawn, if any (see the module docstring)."""
    groups = set(groups)
    mine = [
        c for c in courses
        if c.is_active(today) and profile in c.profiles and (c.is_student(user, groups) or c.is_instructor(user))
    ]
    if course_option:
        named = [c for c in mine if c.id == course_option]
        if named:
            return named[0]
    return mine[0] if mine and not allowed_by_groups else None


def accounts_for(
    request: Request, groups: Iterable[str], allocations: Allocations | None, course: Any | None, now: dt.datetime
) -> list[Account]:
    """Accounts that may pay for this request, in the order they are tried."""
    if course is not None:
        return [course_account(course)]
    if allocations is None or request.flavour is None:
        return []
    groups = set(groups)
    return [
        group_account(name, quota, allocations.period, now)
        for name, quota in allocations.groups.items()
        if name in groups and quota.covers(request.flavour)
    ]


# --- decisions -------------------------------------------------------------------------------------


def figures(account: Account, request: Request, holdings: Iterable[Holding], now: dt.datetime) -> list[Figure]:
    """Every limit of `account` that applies to this request, with what is used.

    The requester's own active holding for the same server is left out: a new
    start of that server replaces it.
    """
    mine = [
        h for h in holdings
        if h.account == account.key and not (h.active and h.user == request.user and h.server == request.server)
    ]
    active = [h for h in mine if h.active]
    out = []
    if account.max_servers is not None:
        out.append(Figure(account, "allocation.max_concurrent_servers", account.max_servers, len(active), 1, "server"))
    if request.flavour is not None:
        key = request.flavour if request.flavour in account.max_gpus else "*" if "*" in account.max_gpus else None
        if key is not None:
            used = sum(h.units for h in active if h.flavour == request.flavour)
            limit = account.max_gpus[key]
            out.append(Figure(account, f"max_gpus.{key}", limit, used, request.units, f"× {request.flavour}"))
    if request.gpu_weight > 0:
        if account.gpu_hours is not None:
            used = sum(h.gpu_hours(account.window, now) for h in mine)
            out.append(Figure(account, "gpu_hours", account.gpu_hours, used, request.gpu_weight, "GPU-hours"))
        if account.user_gpu_hours is not None:
            used = sum(h.gpu_hours(account.window, now) for h in mine if h.user == request.user)
            out.append(
                Figure(account, "allocation.gpu_hours_per_student", account.user_gpu_hours, used, request.gpu_weight,
                       "GPU-hours")
            )
    return out


def left_in(account: Account, request: Request, holdings: Iterable[Holding], now: dt.datetime) -> str:
    """What the account has left for this request, in words (for messages and the form)."""
    return ", ".join(f.left_text() for f in figures(account, request, holdings, now)) or "no limit"


def decide(
    request: Request, accounts: Sequence[Account], holdings: Sequence[Holding], now: dt.datetime,
    unlisted: Unlisted = Unlisted.allow,
) -> Decision:
    """Allow (naming the account that pays) or deny (naming the exhausted field and what is left)."""
    if not accounts:
        if request.flavour is None or unlisted is Unlisted.allow:
            return Decision(True, None, "not metered")
        return Decision(
            False, None,
            f"profile: no allocation of yours covers {request.flavour} (needed by {request.profile!r}); "
            "allocations.yaml has unlisted: deny. Ask your project lead for an allocation, or choose another profile",
        )
    found: list[Figure] = []
    for account in accounts:
        short = [f for f in figures(account, request, holdings, now) if f.short]
        if not short:
            return Decision(
                True, account, f"paid by {account.label}; before this start: {left_in(account, request, holdings, now)}"
            )
        found.extend(short)
    details = "; ".join(str(s) for s in found)
    left = "; ".join(f"{a.label}: {left_in(a, request, holdings, now)}" for a in accounts)
    message = (
        f"profile: allocation exhausted for {request.profile!r} (needs {request.need}): {details}. "
        f"Left: {left}. Stop a running server or choose another profile"
    )
    return Decision(False, None, message, tuple(found))


def standing(
    request: Request, accounts: Sequence[Account], holdings: Sequence[Holding], now: dt.datetime,
    unlisted: Unlisted = Unlisted.allow,
) -> Standing:
    """What the form shows for one profile: could it start now, and what is left."""
    decision = decide(request, accounts, holdings, now, unlisted)
    if not accounts:
        if decision.allowed:
            return Standing(True, _("not metered"))
        why = _("no allocation of yours covers %(flavour)s") % {"flavour": request.flavour}
        return Standing(False, why, why)
    account = decision.account or accounts[0]  # who pays, or (refused) the first who could have
    left_words = ", ".join(f.left_words() for f in figures(account, request, holdings, now)) or _("no limit")
    left = f"{account_words(account.key, account.label)}: {left_words}"
    if decision.allowed:
        return Standing(True, left)
    return Standing(False, _("used up: %(left)s") % {"left": left}, _("allocation exhausted"))
