"""One `squeue` call serves every reader: job states polled at most every 30 s per user.

Sites ask users not to poll `squeue` every few seconds, and a notebook server
can have many readers at once (the job monitor widget in several kernels, the
REST endpoint, the shutdown hook). `JobPoller` keeps, per Slurm user, the last
listing and its age; readers within `interval` get the cached listing, and
readers that arrive while a call is in flight wait for that same call.

The clock is injectable so tests count calls instead of waiting.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable

from traitlets import Float
from traitlets.config import LoggingConfigurable

from .states import JobState, Phase, parse_squeue, squeue_argv

ME = "--me"  # cache key for "whoever the transport runs as"


class JobPoller(LoggingConfigurable):
    """Cached `squeue` listings for one cluster, reached through one transport."""

    interval = Float(
        30.0,
        config=True,
        help="""Minimum seconds between two `squeue` calls for the same user.
        Readers in between get the cached listing. Sites ask for no less than 30 s.
        Example: c.JobPoller.interval = 60""",
    )
    error_interval = Float(
        5.0,
        config=True,
        help="""Seconds a failed `squeue` call (controller down, ssh refused) is remembered
        and re-raised to readers before Slurm is asked again.""",
    )
    timeout = Float(20.0, config=True, help="Seconds one `squeue` call may take before it counts as failed.")

    def __init__(self, transport, cluster: str = "", clock: Callable[[], float] = time.monotonic, **kwargs):
        super().__init__(**kwargs)
        self.transport = transport
        self.cluster = cluster
        self.clock = clock
        self.calls = 0  # squeue calls made (for tests and the benchmark)
        self._cache: dict[str, tuple[float, list[JobState] | BaseException]] = {}
        self._listed_at: dict[str, datetime] = {}  # wall-clock time of each cached listing
        self._inflight: dict[str, asyncio.Future] = {}

    async def jobs(self, user: str | None = None) -> list[JobState]:
        """The jobs of `user` (default: the transport's own account), at most `interval` s old."""
        key = user or ME
        cached = self._cache.get(key)
        if cached is not None:
            stamp, value = cached
            max_age = self.error_interval if isinstance(value, BaseException) else self.interval
            if self.clock() - stamp < max_age:
                if isinstance(value, BaseException):
                    raise value
                return list(value)
        if key in self._inflight:
            return list(await asyncio.shield(self._inflight[key]))
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            asked = datetime.now(timezone.utc)
            jobs = await self._call(user)
        except Exception as exc:
            self._cache[key] = (self.clock(), exc)
            future.set_exception(exc)
            future.exception()  # mark retrieved: readers that were waiting got it too
            raise
        else:
            self._cache[key] = (self.clock(), jobs)
            self._listed_at[key] = asked
            future.set_result(jobs)
            return list(jobs)
        finally:
            del self._inflight[key]
            if not future.done():  # this reader was cancelled: let waiting readers retry
                future.cancel()

    async def _call(self, user: str | None) -> list[JobState]:
        self.calls += 1
        argv = squeue_argv(user=user, me=user is None)
        text = await self.transport.run(argv, timeout=self.timeout)
        # squeue --json of Slurm 22.05 lists every user's jobs: keep the asked account's only
        return parse_squeue(text, user=user or getattr(self.transport, "account", None))

    def note_cancelled(self, job_ids: set[str]) -> None:
        """Show cancelled jobs as such at once, without asking Slurm again before `interval`."""
        for key, (stamp, value) in list(self._cache.items()):
            if isinstance(value, BaseException):
                continue
            self._cache[key] = (
                stamp,
                [
                    replace(j, phase=Phase.CANCELLED, slurm_state="CANCELLED", reason="cancel requested")
                    if (j.job_id in job_ids or j.array_job_id in job_ids) and not j.phase.finished
                    else j
                    for j in value
                ],
            )

    def listed_at(self, user: str | None = None) -> datetime:
        """When Slurm was asked for the cached listing (a job submitted later cannot be in it)."""
        return self._listed_at.get(user or ME, datetime.min.replace(tzinfo=timezone.utc))

    def invalidate(self, user: str | None = None) -> None:
        """Forget a cached listing (the next reader calls squeue)."""
        self._cache.pop(user or ME, None)
