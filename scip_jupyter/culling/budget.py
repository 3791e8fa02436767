"""GPU-hour budgets while servers run: warn at 90 %, stop after a grace when exhausted.

At start the spawner refuses a GPU server whose allocation has no GPU-hours left
(allocations/policy.py). This covers the servers already running:

* `assess` (pure): for every account that pays for a running GPU server, what
  it used in its window (the ledger's holdings, `Holding.gpu_hours`) against
  its limit: a group's `gpu_hours` (all members together), a course's
  `gpu_hours_per_student` (each student alone). Level `ok`, `warn` (at
  `warn_fraction`, 90 %) or `exhausted`.
* `BudgetWatch.step` (the `scip-gpu` service calls it every `BudgetWatcher.every`
  s): posts a `budget-warning` notice to each person concerned, a
  `budget-exhausted` notice with a deadline `grace` later, and past the deadline
  stops each GPU server the account pays for through the hub API. Stopping a
  server runs the hub's post-stop hook, which cancels its Slurm jobs (the ARC
  clean-up, arc/hub_hooks.py): one mechanism for every stop. Each stop leaves a
  `budget-stop` notice. An account back under its limit (a new period, a larger
  quota) has its budget notices closed.

Time is the watcher's clock: `CompressedClock(speed)` lets tests run a month in
seconds; it maps the ledger's real timestamps onto the same compressed axis.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, Sequence

from ..allocations.ledger import utcnow
from ..allocations.policy import Account, Holding

log = logging.getLogger(__name__)

WARNING, EXHAUSTED, STOPPED = "budget-warning", "budget-exhausted", "budget-stop"
KINDS = (WARNING, EXHAUSTED, STOPPED)


class CompressedClock:
    """`speed` seconds pass per real second from `origin` (default: now); 1 is real time.

    >>> c = CompressedClock(3600, origin=dt.datetime(2026, 1, 1))
    >>> c.virtual(dt.datetime(2026, 1, 1, 0, 0, 2))
    datetime.datetime(2026, 1, 1, 2, 0)
    """

    def __init__(self, speed: float = 1.0, origin: dt.datetime | None = None,
                 real: Callable[[], dt.datetime] = utcnow):
        self.speed = float(speed)
        self.real = real
        self.origin = origin or real()

    def virtual(self, t: dt.datetime | None) -> dt.datetime | None:
        if t is None or self.speed == 1 or t <= self.origin:
            return t
        return self.origin + (t - self.origin) * self.speed

    def now(self) -> dt.datetime:
        return self.virtual(self.real())


@dataclass(frozen=True)
class BudgetState:
    """One account (for a course: one student of it) against its GPU-hour limit."""

    account: Account
    user: str | None  # a course's student; None: the whole group
    used: float
    limit: float
    level: str  # "ok", "warn", "exhausted"
    servers: tuple[Holding, ...]  # active GPU holdings it pays for

    @property
    def people(self) -> list[str]:
        return sorted({h.user for h in self.servers})


def _level(used: float, limit: float, warn_fraction: float) -> str:
    if used >= limit:
        return "exhausted"
    return "warn" if used >= limit * warn_fraction else "ok"


def assess(accounts: Iterable[Account], holdings: Sequence[Holding], now: dt.datetime,
           warn_fraction: float = 0.9) -> list[BudgetState]:
    """Where every account with running GPU servers stands (see the module docstring).

    >>> import datetime as dt
    >>> w = (dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1))
    >>> a = Account("group:lab", "group lab", "allocations.yaml", w, "this month", gpu_hours=10)
    >>> h = Holding("ana", "", "group:lab", "h100", 1, 1.0, dt.datetime(2026, 1, 1))
    >>> [(s.level, s.used) for s in assess([a], [h], dt.datetime(2026, 1, 1, 9, 30))]
    [('warn', 9.5)]
    """
    out = []
    for account in accounts:
        mine = [h for h in holdings if h.account == account.key]
        running = tuple(h for h in mine if h.active and h.gpu_weight > 0)
        if not running:
            continue
        if account.gpu_hours is not None:
            used = sum(h.gpu_hours(account.window, now) for h in mine)
            out.append(BudgetState(account, None, used, account.gpu_hours,
                                   _level(used, account.gpu_hours, warn_fraction), running))
        if account.user_gpu_hours is not None:
            for user in sorted({h.user for h in running}):
                used = sum(h.gpu_hours(account.window, now) for h in mine if h.user == user)
                out.append(BudgetState(account, user, used, account.user_gpu_hours,
                                       _level(used, account.user_gpu_hours, warn_fraction),
                                       tuple(h for h in running if h.user == user)))
    return out


@dataclass
class StepReport:
    """What one watcher step did (counted by tests and the status endpoint)."""

    states: list[BudgetState] = dataclasses.field(default_factory=list)
    warned: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (user, account)
    exhausted: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    stopped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (user, server)


class BudgetWatch:
    """The watcher's loop body, over injectable edges (ledger, records, accounts, hub stop)."""

    def __init__(self, ledger, records, accounts_for: Callable[[Iterable[str], dt.datetime], list[Account]],
                 stop_server: Callable[[str, str], Awaitable[None]], clock: CompressedClock | None = None,
                 warn_fraction: float = 0.9, grace: float = 900.0):
        self.ledger, self.records = ledger, records
        self.accounts_for = accounts_for
        self.stop_server = stop_server
        self.clock = clock or CompressedClock()
        self.warn_fraction, self.grace = warn_fraction, grace
        self.steps = 0
        self.stops = 0
        self._stopped: set[tuple[str, str, dt.datetime]] = set()  # holdings already stopped

    def _holdings(self, keys: list[str], since: dt.datetime) -> list[Holding]:
        # the ledger's times are real; the watcher judges on its own (maybe compressed) axis
        return [dataclasses.replace(h, start=self.clock.virtual(h.start), end=self.clock.virtual(h.end))
                for h in self.ledger.holdings(keys, since=since)]

    async def step(self) -> StepReport:
        self.steps += 1
        report = StepReport()
        now = self.clock.now()
        keys = sorted({h.account for h in self.ledger.active() if h.account and h.gpu_weight > 0})
        if not keys:
            return report
        accounts = self.accounts_for(keys, now)
        since = min((a.window[0] for a in accounts), default=now)
        report.states = assess(accounts, self._holdings(keys, min(since, self.clock.origin)), now,
                               self.warn_fraction)
        open_notices = {(n.kind, n.user, n.account): n for n in self.records.notices(kinds=KINDS, open_only=True)}
        for state in report.states:
            key = state.account.key
            people = [state.user] if state.user else state.people
            if state.level == "ok":
                for user in people:
                    self.records.clear([WARNING, EXHAUSTED], user=user, account=key, at=now)
                continue
            for user in people:
                detail = f"{state.account.label}: {state.used:.2f} of {state.limit:g} GPU-hours used"
                if (WARNING, user, key) not in open_notices:
                    log.info("budget: warning %s (%s)", user, detail)
                    self.records.post(WARNING, user, message=detail, account=key, at=now)
                    report.warned.append((user, key))
                if state.level != "exhausted":
                    continue
                notice = open_notices.get((EXHAUSTED, user, key))
                if notice is None:
                    deadline = now + dt.timedelta(seconds=self.grace)
                    log.info("budget: %s exhausted (%s); %s's GPU servers stop at %s", key, detail, user, deadline)
                    self.records.post(EXHAUSTED, user, message=detail, account=key, deadline=deadline, at=now)
                    report.exhausted.append((user, key))
                    if self.grace > 0:
                        continue
                elif notice.deadline is not None and now < notice.deadline:
                    continue
                for h in state.servers:
                    if h.user != user or (h.user, h.server, h.start) in self._stopped:
                        continue
                    log.info("budget: stopping %s/%s (%s)", h.user, h.server, detail)
                    try:
                        await self.stop_server(h.user, h.server)
                    except Exception as exc:  # noqa: BLE001 (one failed stop must not spare the others)
                        log.error("budget: stopping %s/%s failed: %s", h.user, h.server, exc)
                        continue
                    self.stops += 1
                    self._stopped.add((h.user, h.server, h.start))
                    self.records.post(STOPPED, h.user, h.server, message=detail, account=key, at=now)
                    report.stopped.append((h.user, h.server))
        return report
