"""A burst of server stops shares one `squeue` per cluster; each server's jobs are still cancelled on their own.

The post-stop hook of every stopped server needs the cluster's queue. Listing it
once per stop made a burst of N stops (a course ending, the idle culler) run N
`squeue` per cluster on the hub. `ARCCleanup.shared_queue` lets the stops of a
burst share one listing, which always begins after each of their hooks was
called; `reconcile` always lists anew. The transport here is a counting
stand-in whose queue the test edits (lines in SQUEUE_FORMAT, as Slurm prints
them): squeue and scancel calls are counted, nothing is timed.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from scip_jupyter.arc.hub_hooks import ARCCleanup, post_stop_hook_for
from scip_jupyter.arc.tags import JobTags


class QueueTransport:
    """A cluster whose queue is `self.jobs` ({job id: (account, tags comment)}); counts every command."""

    def __init__(self, fail_first: int = 0):
        self.jobs: dict[str, tuple[str, str]] = {}
        self.argvs: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_flight = self.most_in_flight = 0
        self.fail_first = fail_first

    def submit(self, job_id: str, user: str, server: str, account: str = "root") -> str:
        self.jobs[job_id] = (account, JobTags(user=user, server=server).comment())
        return job_id

    def count(self, command: str) -> int:
        return sum(1 for argv in self.argvs if argv[0] == command)

    async def run(self, argv, stdin=None, timeout=None):
        argv = list(argv)
        self.argvs.append(argv)
        if argv[0] == "scancel":
            for job_id in argv[1:]:
                self.jobs.pop(job_id, None)
            return ""
        assert argv[0] == "squeue", argv
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            if self.count("squeue") <= self.fail_first:
                raise RuntimeError("slurmctld: no answer")
            return "".join(
                f"{job_id}|RUNNING|None|2026-11-25T06:41:41|0:10|1:00:00|scip-dask-worker|{account}|cpu|1|{comment}\n"
                for job_id, (account, comment) in sorted(self.jobs.items())
            )
        finally:
            self.in_flight -= 1


def cleanup_for(*clusters: QueueTransport, coalesce: float | None = 0.2) -> ARCCleanup:
    """ARCCleanup over `clusters` (presets cluster0, cluster1, ...); coalesce None: the default window."""
    presets = {f"cluster{i}": t for i, t in enumerate(clusters)}
    window = {} if coalesce is None else {"coalesce": coalesce}
    return ARCCleanup(transport_for=presets.__getitem__, presets=list(presets), **window)


def spawner(user: str, server: str = "", account: str | None = None):
    log = SimpleNamespace(info=lambda *a, **k: None)
    return SimpleNamespace(user=SimpleNamespace(name=user), name=server, slurm_account=account, log=log,
                           _log_name=f"{user}:{server}")


async def until(condition, steps: int = 500) -> None:
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not come true")


@pytest.mark.parametrize("stops", [1, 2, 25, 200])
async def test_a_burst_of_stops_lists_each_cluster_once_and_cancels_per_server(stops):
    clusters = QueueTransport(), QueueTransport()
    for n, cluster in enumerate(clusters):
        for i in range(stops):
            if i % 3:  # some stopped servers have no job left
                cluster.submit(f"{n}{i:04d}", f"student{i}", "")
        cluster.submit(f"{n}9999", "student0", "other")  # a server of student0 that still runs
    hook = post_stop_hook_for(cleanup_for(*clusters, coalesce=None))  # the default window

    await asyncio.gather(*(hook(spawner(f"student{i}")) for i in range(stops)))

    for n, cluster in enumerate(clusters):
        assert cluster.count("squeue") == 1
        cancels = [argv[1:] for argv in cluster.argvs if argv[0] == "scancel"]
        expected = [[f"{n}{i:04d}"] for i in range(stops) if i % 3]
        assert sorted(cancels) == expected  # one scancel per server with jobs, naming only that server's job
        assert set(cluster.jobs) == {f"{n}9999"}


async def test_each_stop_in_a_burst_gets_only_its_own_servers_jobs():
    cluster = QueueTransport()
    cluster.submit("11", "alice", "")
    cluster.submit("12", "alice", "gpu")
    cluster.submit("13", "bob", "", account="bob-acct")
    cluster.submit("14", "bob", "", account="mallory")  # bob's tags in someone else's job
    cleanup = cleanup_for(cluster)

    results = await asyncio.gather(
        cleanup.cancel_server_jobs("alice", None),
        cleanup.cancel_server_jobs("alice", "gpu"),
        cleanup.cancel_server_jobs("bob", "", account="bob-acct"),
        cleanup.cancel_server_jobs("carol", ""),
    )

    assert results == [{"cluster0": ["11"]}, {"cluster0": ["12"]}, {"cluster0": ["13"]}, {"cluster0": []}]
    assert cluster.count("squeue") == 1 and cluster.count("scancel") == 3
    assert set(cluster.jobs) == {"14"}


async def test_a_stop_during_a_listing_waits_for_the_next_listing_and_sees_newer_jobs():
    cluster = QueueTransport()
    cluster.submit("21", "alice", "")
    cleanup = cleanup_for(cluster)
    cluster.gate.clear()
    first = asyncio.ensure_future(cleanup.cancel_server_jobs("alice", ""))
    await until(lambda: cluster.count("squeue") == 1)  # alice's listing is under way
    cluster.submit("22", "bob", "")  # bob's server submitted this after that listing began, then stopped
    second = asyncio.ensure_future(cleanup.cancel_server_jobs("bob", ""))
    third = asyncio.ensure_future(cleanup.cancel_server_jobs("carol", ""))
    await asyncio.sleep(0.3)  # past the window: bob's and carol's stops wait on alice's listing, not a second squeue
    assert cluster.count("squeue") == 1
    cluster.gate.set()

    assert await first == {"cluster0": ["21"]}
    assert await second == {"cluster0": ["22"]}  # not served by the listing that began before bob's stop
    assert await third == {"cluster0": []}
    assert cluster.count("squeue") == 2 and cluster.most_in_flight == 1
    assert cluster.jobs == {}


async def test_stops_apart_each_list_the_queue_anew():
    cluster = QueueTransport()
    cleanup = cleanup_for(cluster, coalesce=0)
    assert await cleanup.cancel_server_jobs("alice", "") == {"cluster0": []}
    cluster.submit("31", "alice", "")  # nothing of the first listing is kept
    assert await cleanup.cancel_server_jobs("alice", "") == {"cluster0": ["31"]}
    assert cluster.count("squeue") == 2


async def test_a_job_submitted_after_the_shared_listing_is_found_by_reconcile():
    cluster = QueueTransport()
    cluster.submit("41", "alice", "")
    cleanup = cleanup_for(cluster)
    assert await cleanup.cancel_server_jobs("alice", "") == {"cluster0": ["41"]}
    cluster.submit("42", "alice", "")  # a late sbatch of the stopped server lands after its hook listed the queue
    assert await cleanup.reconcile(running=set(), only_users={"alice"}) == {"cluster0": ["42"]}
    assert cluster.count("squeue") == 2 and cluster.jobs == {}


async def test_a_failed_listing_fails_that_cluster_for_each_stop_of_the_burst_and_is_not_kept():
    failing, healthy = QueueTransport(fail_first=1), QueueTransport()
    for cluster in (failing, healthy):
        cluster.submit("51", "alice", "")
        cluster.submit("52", "bob", "")
    cleanup = cleanup_for(failing, healthy)

    results = await asyncio.gather(cleanup.cancel_server_jobs("alice", ""), cleanup.cancel_server_jobs("bob", ""))

    assert results == [{"cluster1": ["51"]}, {"cluster1": ["52"]}]  # the failing cluster logged, the other cleaned
    assert failing.count("squeue") == 1 and failing.count("scancel") == 0
    assert await cleanup.cancel_server_jobs("alice", "") == {"cluster0": ["51"], "cluster1": []}  # listed again
    assert failing.count("squeue") == 2


async def test_a_cancelled_stop_leaves_the_others_their_listing():
    cluster = QueueTransport()
    cluster.submit("61", "alice", "")
    cluster.submit("62", "bob", "")
    cleanup = cleanup_for(cluster)
    cluster.gate.clear()
    alice = asyncio.ensure_future(cleanup.cancel_server_jobs("alice", ""))
    bob = asyncio.ensure_future(cleanup.cancel_server_jobs("bob", ""))
    await until(lambda: cluster.count("squeue") == 1)
    alice.cancel()  # e.g. the hub gave up on alice's hook
    cluster.gate.set()

    assert await bob == {"cluster0": ["62"]}
    assert alice.cancelled()
    assert cluster.count("squeue") == 1 and set(cluster.jobs) == {"61"}  # reconcile finds alice's later
