"""The GPU arbiter: jupyterhub-idle-culler's `cull_arbiter_hook`.

jupyterhub-idle-culler 2.x calls `c.IdleCuller.cull_arbiter_hook(inactive=,
inactive_limit=, server=)` for every ready server of each round and culls when
it returns True. `GpuArbiter` is that callable:

1. From the server's hub model: who (`full_name`), which profile
   (`user_options.profile`, else the catalog's default) and so whether it holds
   a GPU and which share (the profile's own vocabulary: `Profile.gpu_share`).
2. One read of the utilisation source per window and round (cached for half a
   round), shared by every server: 1,000 servers cost one read.
3. `policy.decide`; a warning is posted as an `idle-warning` notice (the person
   sees it), withdrawn when the GPU works again; a cull is recorded in
   `scip_gpu_culls` with the account that paid, the idle time and the
   GPU-hours held idle, before the culler stops the server.

A source that fails makes that round use the activity rule for GPU servers (and
is logged): a metrics outage never culls anyone who is active.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter, deque
from typing import Any, Callable, Mapping

from ..allocations.ledger import utcnow
from .policy import Action, Server, Verdict, decide, held_idle_gpu_hours
from .records import CullRecord, Records
from .settings import GPUCulling
from .sources import SourceError, Target, target_for

log = logging.getLogger(__name__)

IDLE_WARNING = "idle-warning"


def parse_time(value: str | None) -> dt.datetime | None:
    """The hub's ISO 8601 times -> naive UTC."""
    if not value:
        return None
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo else t


class ProfileInfo:
    """What the arbiter needs of the catalog: GPU share and MIG slice by slug, and the default slug."""

    def __init__(self, weights: Mapping[str, float], mig: Mapping[str, str | None] | None = None,
                 default: str = "", models: Mapping[str, str] | None = None):
        self.weights, self.mig, self.default = dict(weights), dict(mig or {}), default
        self.models = dict(models or {})  # slug -> GPU model ("h100")

    @classmethod
    def from_catalog(cls, catalog) -> "ProfileInfo":
        default = next((p.slug for p in catalog.profiles if p.default), catalog.profiles[0].slug if catalog.profiles else "")
        return cls(
            {p.slug: float(p.gpu_share) for p in catalog.profiles},
            {p.slug: (str(p.mig_profile) if p.mig_profile else None) for p in catalog.profiles},
            default,
            {p.slug: str(p.gpu_model) for p in catalog.profiles if p.gpu_model},
        )


class GpuArbiter:
    """The `cull_arbiter_hook` (see the module docstring)."""

    def __init__(self, settings: GPUCulling, profiles: ProfileInfo | Callable[[], ProfileInfo], source: Any,
                 records: Records | None = None, account_of: Callable[[str, str], str] | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, cache_seconds: float | None = None,
                 batch: bool = False):
        self.settings = settings
        self._profiles = profiles
        self._profiles_at: tuple[float, ProfileInfo] | None = None
        self.source = source
        self.records = records
        self.account_of = account_of or (lambda user, server: "")
        self.clock = clock
        self.cache_seconds = max(settings.cull_every / 2, 0.2) if cache_seconds is None else cache_seconds
        self._snapshots: dict[float, tuple[float, Any]] = {}
        self._locks: dict[float, asyncio.Lock] = {}
        self.warned: dict[str, dt.datetime] = {}
        self.verdicts: dict[str, Verdict] = {}
        #: server key -> (profile, GPU share, MIG slice or None, last Reading or None): what the monitor shows
        self.readings: dict[str, tuple[str, float, str | None, Any]] = {}
        #: server key -> the latest utilisation of each round (the monitor's sparkline)
        self.history: dict[str, deque] = {}
        self.counts: Counter = Counter()  # (server key, action) -> decisions
        self.source_reads = 0
        self.source_errors = 0
        #: batch: a round's record writes wait in `_pending` for `flush()` (one transaction); the
        #: service flushes every second and before each source read, so a round never waits on the disk
        self.batch = batch
        self._pending: list[tuple[str, dict]] = []
        if records is not None:  # a restarted culler remembers whom it warned
            for n in records.notices(kinds=[IDLE_WARNING], open_only=True):
                self.warned[f"{n.user}/{n.server}"] = n.at

    @property
    def profiles(self) -> ProfileInfo:
        """The catalog's profiles; a loader is asked at most once per `cache_seconds` (once a round)."""
        if not callable(self._profiles):
            return self._profiles
        now = time.monotonic()
        if self._profiles_at is None or now - self._profiles_at[0] >= max(self.cache_seconds, 0.2):
            self._profiles_at = (now, self._profiles())
        return self._profiles_at[1]

    def server_of(self, model: Mapping[str, Any]) -> Server:
        user, _, name = str(model.get("full_name", "/")).partition("/")
        info = self.profiles
        profile = (model.get("user_options") or {}).get("profile") or info.default
        return Server(user, name, str(profile), info.weights.get(str(profile), 0.0), parse_time(model.get("started")))

    async def _snapshot(self, window: float):
        """The source's snapshot for `window`, read at most once per `cache_seconds`."""
        lock = self._locks.setdefault(window, asyncio.Lock())
        async with lock:
            cached = self._snapshots.get(window)
            if cached and time.monotonic() - cached[0] < self.cache_seconds:
                return cached[1]
            self.source_reads += 1
            self.flush()
            snap = await self.source.snapshot(window)
            self._snapshots[window] = (time.monotonic(), snap)
            return snap

    async def verdict(self, *, inactive: dt.timedelta | None, inactive_limit: float,
                      server: Mapping[str, Any], facts: Server | None = None) -> Verdict:
        """Decide for one server (no side effects besides the source read and what the monitor shows)."""
        s = facts or self.server_of(server)
        rule = self.settings.rule_for(s.profile)
        reading = None
        mig = self.profiles.mig.get(s.profile)
        if s.has_gpu and rule.enabled and self.source is not None:
            try:
                snap = await self._snapshot(rule.idle_time)
            except (SourceError, OSError, ValueError) as exc:
                self.source_errors += 1
                log.warning("GPU culler: %s source failed, activity rule this round: %s", self.source.name, exc)
            else:
                reading = snap.get(target_for(server, self.settings.pod_name_template, self.settings.namespace, mig))
                if reading is not None:
                    self.history.setdefault(s.key, deque(maxlen=60)).append(
                        reading.now if reading.now is not None else reading.peak)
        self.readings[s.key] = (s.profile, s.gpu_weight, mig, reading)
        secs = inactive.total_seconds() if inactive is not None else None
        return decide(s, reading, rule, self.warned.get(s.key), self.clock(), secs, inactive_limit)

    async def __call__(self, *, inactive: dt.timedelta | None, inactive_limit: float,
                       server: Mapping[str, Any], **_kwargs) -> bool:
        s = self.server_of(server)
        v = await self.verdict(inactive=inactive, inactive_limit=inactive_limit, server=server, facts=s)
        self.verdicts[s.key] = v
        self.counts[(s.key, v.action.value)] += 1
        try:
            self._act(s, v)
        except Exception:  # noqa: BLE001 (a record that fails must not stop the round for everyone)
            log.exception("GPU culler: recording the decision for %s failed", s.key)
        log.info("GPU culler: %s %s (%s)", v.action.value, s.key, v.reason)
        return v.cull

    def _act(self, s: Server, v: Verdict) -> None:
        now = self.clock()
        if v.action is Action.warn:
            self.warned[s.key] = now
            if self.records is not None:
                rule = self.settings.rule_for(s.profile)
                self._write("post", kind=IDLE_WARNING, user=s.user, server=s.name, message=v.reason,
                            account=self.account_of(s.user, s.name),
                            deadline=now + dt.timedelta(seconds=rule.warning_time), at=now)
            return
        if s.key in self.warned and (v.action is Action.cull or v.rule == "gpu"):
            # culled, or judged again on its GPU and not idle: the warning is over
            if v.action is Action.cull or not v.idle_seconds:
                self.warned.pop(s.key, None)
                if self.records is not None:
                    self._write("clear", kinds=[IDLE_WARNING], user=s.user, server=s.name, at=now)
        if v.action is Action.cull and self.records is not None and s.has_gpu:
            idle = v.idle_seconds if v.rule == "gpu" else 0.0
            self._write("cull", record=CullRecord(
                at=now, user=s.user, server=s.name, profile=s.profile, account=self.account_of(s.user, s.name),
                gpu_weight=s.gpu_weight, idle_seconds=idle, gpu_hours_idle=held_idle_gpu_hours(s, idle),
                reason=v.reason,
            ))

    def _write(self, op: str, **kw) -> None:
        self._pending.append((op, kw))
        if not self.batch:
            self.flush()

    def flush(self) -> None:
        """Write what waits (one transaction); a failed write is logged and dropped, never retried forever."""
        if not self._pending or self.records is None:
            self._pending.clear()
            return
        ops, self._pending = self._pending, []
        try:
            self.records.write_many(ops)
        except Exception:  # noqa: BLE001 (the ledger may be busy or down: the culler goes on)
            log.exception("GPU culler: %d record writes lost", len(ops))

    def status(self) -> dict:
        """What the service's status endpoint shows (tests count these)."""
        return {
            "source": getattr(self.source, "name", "none"),
            "source_reads": self.source_reads,
            "source_errors": self.source_errors,
            "warned": sorted(self.warned),
            "servers": {
                key: {"action": v.action.value, "rule": v.rule, "reason": v.reason,
                      "decisions": {a.value: self.counts[(key, a.value)] for a in Action}}
                for key, v in sorted(self.verdicts.items())
            },
        }
