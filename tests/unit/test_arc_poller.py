"""The job-state poller: one squeue call serves many readers; at most one per interval per user.

The transport here is a counting stand-in that returns text captured from the
real local Slurm: the poller's logic (caching, coalescing) is what is tested,
so calls are counted and the clock is a variable, not wall time.
"""

import asyncio
from pathlib import Path

import pytest

from scip_jupyter.arc.poller import JobPoller
from scip_jupyter.arc.states import Phase

CAPTURED = (Path(__file__).resolve().parents[1] / "data" / "slurm" / "squeue_format_all.txt").read_text()


class CountingTransport:
    def __init__(self, fail=None):
        self.argvs = []
        self.fail = fail
        self.gate = asyncio.Event()
        self.gate.set()

    async def run(self, argv, stdin=None, timeout=None):
        self.argvs.append(argv)
        await self.gate.wait()
        if self.fail:
            raise self.fail
        return CAPTURED


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


async def test_readers_within_interval_share_one_squeue_call(clock):
    transport = CountingTransport()
    poller = JobPoller(transport, cluster="local-slurm", clock=clock)
    for _ in range(10):
        jobs = await poller.jobs()
        clock.now += 2.9  # 10 reads over 29 s
    assert len(transport.argvs) == 1 and poller.calls == 1
    assert "--me" in transport.argvs[0]
    assert {j.job_id for j in jobs} >= {"1", "2_0"}
    clock.now += 1.1
    await poller.jobs()
    assert len(transport.argvs) == 2


async def test_concurrent_readers_wait_for_the_same_call(clock):
    transport = CountingTransport()
    transport.gate.clear()
    poller = JobPoller(transport, clock=clock)
    readers = [asyncio.create_task(poller.jobs()) for _ in range(25)]
    await asyncio.sleep(0)
    transport.gate.set()
    results = await asyncio.gather(*readers)
    assert len(transport.argvs) == 1
    assert all(len(r) == len(results[0]) for r in results)


async def test_users_are_polled_separately(clock):
    transport = CountingTransport()
    poller = JobPoller(transport, clock=clock)
    await poller.jobs("alice")
    await poller.jobs("bob")
    await poller.jobs("alice")
    assert [a[-1] for a in transport.argvs] == ["--user=alice", "--user=bob"]


@pytest.mark.parametrize("interval, reads, calls", [(30, 6, 1), (30, 7, 2), (10, 7, 4), (0, 4, 4)])
def test_interval_is_configurable(clock, interval, reads, calls):
    transport = CountingTransport()
    poller = JobPoller(transport, clock=clock, interval=interval)

    async def go():
        for _ in range(reads):
            await poller.jobs()
            clock.now += 5  # reads at 0, 5, 10, ... s

    asyncio.run(go())
    assert len(transport.argvs) == calls


async def test_failure_is_remembered_briefly_then_retried(clock):
    transport = CountingTransport(fail=RuntimeError("slurmctld down"))
    poller = JobPoller(transport, clock=clock)
    for _ in range(3):
        with pytest.raises(RuntimeError, match="slurmctld down"):
            await poller.jobs()
    assert len(transport.argvs) == 1
    transport.fail = None
    clock.now += poller.error_interval
    assert await poller.jobs()
    assert len(transport.argvs) == 2


async def test_cancelled_jobs_show_at_once_without_new_call(clock):
    transport = CountingTransport()
    poller = JobPoller(transport, clock=clock)
    await poller.jobs()
    poller.note_cancelled({"2"})
    jobs = {j.job_id: j for j in await poller.jobs()}
    assert jobs["2_3"].phase is Phase.CANCELLED and jobs["2_3"].reason == "cancel requested"
    assert jobs["5"].phase is Phase.COMPLETED and jobs["1"].phase is Phase.RUNNING
    assert len(transport.argvs) == 1
