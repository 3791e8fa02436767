"""Pure cull decisions: warn, cull or keep one server, given what its GPU did.

Nothing here reads metrics, the hub or a database. The arbiter gathers, for
each server, the facts (`Server`), the GPU reading of the last `idle_time`
seconds (`Reading`, or None when no metrics source knows the server), the
profile's `Rule`, and when its person was warned; `decide` says what to do.

* **CPU server** (no GPU): the plain activity rule, as jupyterhub-idle-culler
  has it (culled after `inactive_limit` seconds without web activity).
* **GPU server without a reading** (no source, no samples yet): the activity
  rule too; a missing metric never culls anyone.
* **GPU server whose peak utilisation over the window reached the threshold**:
  kept, and any warning is withdrawn (the person resumed work), whatever the
  web activity says: a long training run in a closed tab is GPU work.
* **GPU server idle over the whole window**: warned first; culled once the
  warning is `warning_time` old and the GPU is still idle, **even when its
  browser tab is active**. A server younger than `idle_time` is not judged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum

from .settings import Rule


class Action(str, Enum):
    keep = "keep"
    warn = "warn"
    cull = "cull"


@dataclass(frozen=True)
class Server:
    """What the arbiter knows of one running server."""

    user: str
    name: str
    profile: str
    gpu_weight: float  # GPU-hours per hour it holds (0: a CPU server)
    started: dt.datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.user}/{self.name}"

    @property
    def has_gpu(self) -> bool:
        return self.gpu_weight > 0


@dataclass(frozen=True)
class Reading:
    """A GPU's utilisation over the judged window (percent) and its memory now (MiB)."""

    peak: float  # highest utilisation in the window
    now: float | None = None  # latest sample
    samples: int = 1
    memory_used: float | None = None
    memory_total: float | None = None


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str
    #: Seconds the GPU has been idle (at least), for the cull record; 0 unless idle.
    idle_seconds: float = 0.0
    #: Rule used: "activity" (web activity) or "gpu".
    rule: str = "gpu"

    @property
    def cull(self) -> bool:
        return self.action is Action.cull


def activity_verdict(inactive: float | None, inactive_limit: float, why: str) -> Verdict:
    """jupyterhub-idle-culler's own rule (its `default_cull_arbiter`)."""
    if inactive is not None and inactive >= inactive_limit:
        return Verdict(Action.cull, f"{why}: no web activity for {inactive:.0f} s", rule="activity")
    return Verdict(Action.keep, why, rule="activity")


def decide(
    server: Server,
    reading: Reading | None,
    rule: Rule,
    warned_at: dt.datetime | None,
    now: dt.datetime,
    inactive: float | None,
    inactive_limit: float,
) -> Verdict:
    """What to do with one server this round (see the module docstring).

    >>> import datetime as dt
    >>> r = Rule(threshold=5, idle_time=600, warning_time=300)
    >>> s = Server("ana", "", "h100-full", 1.0, dt.datetime(2026, 1, 1, 9))
    >>> now = dt.datetime(2026, 1, 1, 10)
    >>> decide(s, Reading(peak=1), r, None, now, inactive=0, inactive_limit=3600).action
    <Action.warn: 'warn'>
    >>> decide(s, Reading(peak=1), r, now - dt.timedelta(seconds=300), now, 0, 3600).action
    <Action.cull: 'cull'>
    >>> decide(s, Reading(peak=40), r, now - dt.timedelta(seconds=300), now, 0, 3600).action
    <Action.keep: 'keep'>
    """
    if not server.has_gpu:
        return activity_verdict(inactive, inactive_limit, "CPU server")
    if not rule.enabled:
        return activity_verdict(inactive, inactive_limit, f"GPU culling is off for {server.profile}")
    if reading is None or reading.samples <= 0:
        return activity_verdict(inactive, inactive_limit, "no GPU metrics")
    if server.started is not None and (now - server.started).total_seconds() < rule.idle_time:
        return Verdict(Action.keep, f"started less than {rule.idle_time:.0f} s ago")
    if reading.peak >= rule.threshold:
        return Verdict(Action.keep, f"GPU busy: peak {reading.peak:.0f} % >= {rule.threshold:g} %")
    if warned_at is None:
        return Verdict(
            Action.warn,
            f"GPU idle: below {rule.threshold:g} % for {rule.idle_time:.0f} s (peak {reading.peak:.0f} %)",
            idle_seconds=rule.idle_time,
        )
    waited = (now - warned_at).total_seconds()
    idle = rule.idle_time + max(waited, 0.0)
    if waited >= rule.warning_time:
        return Verdict(
            Action.cull, f"GPU idle for {idle:.0f} s, warned {waited:.0f} s ago (peak {reading.peak:.0f} %)",
            idle_seconds=idle,
        )
    return Verdict(Action.keep, f"warned {waited:.0f} s ago; culled after {rule.warning_time:.0f} s", idle)


def held_idle_gpu_hours(server: Server, idle_seconds: float) -> float:
    """GPU-hours a server held while its GPU sat idle (reclaimed by culling it).

    >>> held_idle_gpu_hours(Server("ana", "", "mig-3g-40gb", 3 / 7), 7 * 3600)
    3.0
    """
    return round(idle_seconds / 3600 * server.gpu_weight, 6)
