"""The Slurm jobs of ONE notebook server: list with state, cancel one, cancel all.

Used by the server extension (`/scip/api/arc/jobs`, shutdown hook) and by the
`scip-jupyter arc jobs|cancel` verbs. A job belongs to the server when Slurm
says it runs as the account this server submits as (the transport's
`account`) AND either the registry recorded it, as (cluster, job id, owning
account), for this server, or its `--comment` tags name the server (which also
catches a job whose record was lost, e.g. a kernel killed between `sbatch` and
the registry write). Tag text alone never makes a job ours: any user can write
any tags into their own job's comment.

I/O goes through two injected things: the registry, and `transport_for(preset)`
giving the transport of a preset's cluster, so tests and the hub can supply
their own.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable

from ..i18n import N_, _
from .poller import JobPoller
from .registry import JobRecord, JobRegistry
from .states import JobState, Phase, jobs_of_server, scancel_argv
from .tags import JobTags

log = logging.getLogger(__name__)

#: What a job id given by a person may look like: `123`, `123_4` (one array task), `123_[4-7]`.
JOB_ID = re.compile(r"^\d{1,12}(_\d{1,7}|_\[[0-9,\-%]{1,64}\])?$")
JOB_ID_HELP = N_("a Slurm job id: digits, optionally _<task> for one array task (e.g. 1234 or 1234_5)")
GONE_REASON = "no longer in the queue (finished)"
NEW_REASON = "submitted after the last squeue listing"


_transports: dict[str, object] = {}


def preset_transport(name: str):
    """The transport of preset `name` in the default presets file ($SCIP_ARC_PRESETS or hub_config/arc.yaml).

    One per preset per process, so an SSH transport keeps its one connection.
    """
    if name not in _transports:
        from .presets import load_default_presets
        from .transport import transport_for

        _transports[name] = transport_for(load_default_presets().get(name))
    return _transports[name]


class NotThisServersJob(LookupError):
    """The job is not one of this notebook server's jobs (or does not exist)."""


def check_job_id(value: str) -> str:
    """Validate a job id from a request or the command line."""
    value = (value or "").strip()
    if not JOB_ID.match(value):
        raise ValueError(_("job_id: {value} is not {what}").format(value=repr(value), what=_(JOB_ID_HELP)))
    return value


@dataclass
class ClusterView:
    """The jobs of this server on one cluster (or why they could not be listed)."""

    preset: str
    jobs: list[JobState] = field(default_factory=list)
    error: str = ""


class ServerJobs:
    """Jobs of the notebook server `tags.user`/`tags.server` across the presets it used."""

    def __init__(
        self,
        tags: JobTags,
        registry: JobRegistry,
        transport_for: Callable[[str], object],
        presets: Iterable[str] = (),
        poll_interval: float | None = None,
        config=None,
    ):
        self.tags = tags
        self.registry = registry
        self.transport_for = transport_for
        self.presets = tuple(presets)  # presets to scan by tag even when nothing is recorded for them
        self.poll_interval = poll_interval
        self.config = config  # traitlets config, so c.JobPoller.interval applies
        self._pollers: dict[str, JobPoller] = {}

    # ------------------------------------------------------------ reading

    def records(self) -> list[JobRecord]:
        return self.registry.jobs_for(self.tags.user, self.tags.server)

    def _presets_in_use(self, records: list[JobRecord]) -> list[str]:
        seen = dict.fromkeys(r.preset for r in records)
        seen.update(dict.fromkeys(self.presets))
        seen.update(dict.fromkeys(self._pollers))  # clusters this server talked to before
        return list(seen)

    def poller(self, preset: str) -> JobPoller:
        if preset not in self._pollers:
            kwargs = {} if self.poll_interval is None else {"interval": self.poll_interval}
            if self.config is not None:
                kwargs["config"] = self.config
            self._pollers[preset] = JobPoller(self.transport_for(preset), cluster=preset, **kwargs)
        return self._pollers[preset]

    async def list(self) -> list[ClusterView]:
        """Every job of this server, with its state; one (cached) squeue per cluster."""
        records = self.records()
        views = await asyncio.gather(*(self._list_one(p, records) for p in self._presets_in_use(records)))
        return list(views)

    async def _seen(self, preset: str, records: list[JobRecord]) -> tuple[list[JobState], datetime]:
        """This server's jobs in Slurm's listing: owned by our account, and recorded or tagged for this server."""
        mine = [r for r in records if r.preset == preset]
        poller = self.poller(preset)
        queue = _owned(await poller.jobs(), _account(poller.transport), mine)
        listed_at = poller.listed_at()
        seen = jobs_of_server(queue, self.tags.user, self.tags.server)
        ids = {r.job_id for r in mine}
        seen_ids = {j.job_id for j in seen}
        seen += [j for j in queue if j.array_job_id in ids and j.job_id not in seen_ids]
        return seen, listed_at

    async def _list_one(self, preset: str, records: list[JobRecord]) -> ClusterView:
        mine = [r for r in records if r.preset == preset]
        try:
            seen, listed_at = await self._seen(preset, records)
        except Exception as exc:  # the error names the cluster and what to check (transport's job)
            return ClusterView(preset, [_placeholder(r, Phase.UNKNOWN, "") for r in mine], error=str(exc))
        seen_ids = {j.job_id for j in seen} | {j.array_job_id for j in seen}
        unseen = [r for r in mine if r.job_id not in seen_ids]
        gone = [r for r in unseen if r.submitted < listed_at]
        new = [r for r in unseen if r.submitted >= listed_at]  # submitted after the cached listing
        for r in gone:  # left the queue: it finished and can no longer be orphaned
            self.registry.forget(r.job_id, cluster=r.cluster)
        jobs = seen + [_placeholder(r, Phase.PENDING, NEW_REASON) for r in new]
        jobs += [_placeholder(r, Phase.UNKNOWN, GONE_REASON) for r in gone]
        return ClusterView(preset, jobs)

    # ------------------------------------------------------------ cancelling

    async def cancel(self, job_id: str) -> None:
        """Cancel one job (or array task) of this server; NotThisServersJob otherwise.

        Only a job Slurm lists as running under this server's account, and recorded or
        tagged for this server, is cancelled (Slurm would refuse anyone else's anyway).
        """
        job_id = check_job_id(job_id)
        base = job_id.split("_")[0]
        records = self.records()
        record = next((r for r in records if r.job_id in (job_id, base)), None)
        presets = [record.preset] if record else self._presets_in_use(records)
        found = None
        for attempt in (0, 1):
            for preset in presets:
                try:
                    seen, _polled = await self._seen(preset, records)
                except Exception as exc:
                    log.warning("listing jobs on %s to cancel %s failed: %s", preset, job_id, exc)
                    continue
                if any(j.job_id == job_id or j.array_job_id in (job_id, base) for j in seen):
                    found = preset
                    break
            if found or attempt:
                break
            for preset in presets:  # perhaps submitted after the cached listing: ask Slurm once more
                self.poller(preset).invalidate()
        if found is None:
            raise NotThisServersJob(_("job {job_id} is not a job of server {server}").format(
                job_id=job_id, server=f"{self.tags.user}/{self.tags.server}"))
        await self._scancel(found, [job_id])
        if job_id == base:
            self.registry.forget(job_id, cluster=record.cluster if record else found)

    async def cancel_all(self) -> dict[str, list[str]]:
        """Cancel every job of this server on every cluster it used (the shutdown hook).

        Returns preset -> cancelled ids. Clusters that cannot be reached are logged
        and skipped (the hub side cancels by tag later); nothing waits unboundedly.
        """
        records = self.records()
        presets = self._presets_in_use(records)
        results = await asyncio.gather(*(self._cancel_all_one(p, records) for p in presets), return_exceptions=True)
        done: dict[str, list[str]] = {}
        for preset, result in zip(presets, results, strict=True):
            if isinstance(result, BaseException):
                log.error("cancelling the jobs of %s/%s on %s failed: %s", self.tags.user, self.tags.server, preset, result)
            else:
                done[preset] = result
        return done

    async def _cancel_all_one(self, preset: str, records: list[JobRecord]) -> list[str]:
        ids = {r.job_id for r in records if r.preset == preset}
        try:
            poller = self.poller(preset)
            poller.invalidate()  # at shutdown, ask Slurm now
            queue = _owned(await poller.jobs(), _account(poller.transport), [r for r in records if r.preset == preset])
            ids |= {j.array_job_id for j in jobs_of_server(queue, self.tags.user, self.tags.server)}
        except Exception as exc:
            log.warning("listing jobs on %s failed (%s); cancelling the %d recorded ones", preset, exc, len(ids))
        if ids:
            await self._scancel(preset, sorted(ids))
        for job_id in ids:
            self.registry.forget(job_id, cluster=next((r.cluster for r in records if r.job_id == job_id), None))
        return sorted(ids)

    async def _scancel(self, preset: str, ids: list[str]) -> None:
        poller = self.poller(preset)
        await poller.transport.run(scancel_argv(ids), timeout=poller.timeout)
        poller.note_cancelled(set(ids))


def _account(transport) -> str | None:
    return getattr(transport, "account", None)


def _owned(queue: list[JobState], account: str | None, records: list[JobRecord]) -> list[JobState]:
    """The listed jobs this server's account owns: Slurm's user must be the transport's
    account and, for recorded jobs, the account recorded at submission."""
    owner = {r.job_id: r.account for r in records if r.account}
    out = []
    for j in queue:
        if account and j.user and j.user != account:
            continue
        recorded = owner.get(j.job_id) or owner.get(j.array_job_id)
        if recorded and j.user and j.user != recorded:
            continue
        out.append(j)
    return out


def _placeholder(record: JobRecord, phase: Phase, reason: str) -> JobState:
    """A recorded job Slurm did not (or could not) tell us about."""
    return JobState(
        job_id=record.job_id,
        phase=phase,
        reason=reason,
        comment=record.tags.comment(),
        tags=record.tags,
        user=record.tags.user,
    )


def summary(views: list[ClusterView]) -> dict:
    """JSON body of GET /scip/api/arc/jobs."""
    return {
        "jobs": [dict(j.to_json(), preset=v.preset) for v in views for j in v.jobs],
        "errors": [{"preset": v.preset, "message": v.error} for v in views if v.error],
        "polled_at": datetime.now(timezone.utc).isoformat(),
    }


__all__ = ["ServerJobs", "NotThisServersJob", "check_job_id", "summary", "ClusterView", "JOB_ID_HELP"]
