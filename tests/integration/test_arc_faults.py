"""Slurm controller down: ARC calls fail fast with a clear error, and work again once it is back.

This test stops the project's own slurmctld (the pid in .state/slurm/run, checked
to be slurmctld) — it disrupts Slurm for anything running at the same time, so
it is short, and the controller is always restarted (`scripts/slurm-local start`,
idempotent: only what is down is started) in a `finally`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from scip_jupyter.arc.injob import InJobRun
from scip_jupyter.arc.poller import JobPoller
from scip_jupyter.arc.presets import NetworkConfig, PresetFile, load_default_presets
from scip_jupyter.arc.registry import JobRegistry
from scip_jupyter.arc.server_jobs import ServerJobs, summary
from scip_jupyter.arc.states import scancel_argv, squeue_argv
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import SlurmUnavailable, transport_for
from tests.fixtures.common import VENV_BIN
from tests.fixtures.slurm import SLURM_LOCAL, STATE

pytestmark = pytest.mark.slurm
#: Each Slurm call gets this long before the transport gives up; nothing may wait longer.
CALL_TIMEOUT = 15
#: Bound on a whole call, transport included; hitting it means something hung.
HANG = 60


def _slurmctld_pid() -> int:
    pidfile = STATE / "run" / "slurmctld.pid"
    pid = int(pidfile.read_text().strip())
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    assert comm == "slurmctld", f"{pidfile} names pid {pid} ({comm}), not the project's slurmctld"
    return pid


def _controller_alive() -> bool:
    pidfile = STATE / "run" / "slurmctld.pid"
    try:
        pid = int(pidfile.read_text().strip())
        return Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld"
    except (OSError, ValueError):
        return False


def _restart_controller() -> None:
    proc = subprocess.run([str(SLURM_LOCAL), "start"], capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        pytest.fail(f"could not restart the local Slurm:\n{proc.stdout}\n{proc.stderr}", pytrace=False)


@pytest.fixture
def controller_down(slurm_cluster):
    """slurmctld stopped while the test runs; always restarted afterwards."""
    pid = _slurmctld_pid()
    os.kill(pid, signal.SIGTERM)
    try:
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
        else:
            pytest.fail("slurmctld did not stop on SIGTERM")
        yield
    finally:
        _restart_controller()


def in_job_presets() -> PresetFile:
    local = load_default_presets().get("local-slurm")
    return PresetFile(clusters=[local.model_copy(update={"name": "local-injob", "network": NetworkConfig(mode="in-job")})])


def assert_clear(exc: BaseException) -> None:
    text = str(exc)
    assert isinstance(exc, SlurmUnavailable), f"{type(exc).__name__}: {text}"
    assert "'local-slurm'" in text or "'local-injob'" in text  # names the cluster
    assert "scripts/slurm-local status" in text  # says what to check


async def _outcome(coro):
    """The result or the exception of a call, bounded by HANG (a hang fails the test)."""
    try:
        return await asyncio.wait_for(coro, HANG)
    except asyncio.TimeoutError:
        pytest.fail(f"an ARC call hung for {HANG}s while the controller was down")
    except Exception as exc:
        return exc


async def _cli(*args: str, env: dict) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "scip-jupyter"), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    return proc.returncode, err.decode()


def test_controller_down_gives_clear_errors_then_recovers(controller_down, slurm_cluster, tmp_path):
    preset = load_default_presets().get("local-slurm")
    transport = transport_for(preset, timeout=CALL_TIMEOUT)
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    registry.record("999999", "local-slurm", JobTags(user="h2-faults", server="x"), preset="local-slurm")
    poller = JobPoller(transport, cluster="local-slurm")
    jobs = ServerJobs(JobTags(user="h2-faults", server="x"), registry, lambda p: transport, presets=["local-slurm"])
    injob_presets = in_job_presets()
    run = InJobRun(len, args=([1],), preset="local-injob", presets=injob_presets, registry=registry,
                   transport=transport_for(injob_presets.get("local-injob"), timeout=CALL_TIMEOUT),
                   user="h2-faults", base_dir=str(tmp_path / "runs"))  # fmt: skip

    async def all_at_once():
        # concurrently: each Slurm client call needs ~9 s to give up, and the controller stays down meanwhile
        return await asyncio.gather(
            _outcome(transport.run(squeue_argv(me=True))),
            _outcome(transport.run(["sbatch", "--parsable"], stdin="#!/bin/sh\ntrue\n")),
            _outcome(transport.run(scancel_argv(["1"]))),
            _outcome(poller.jobs()),
            _outcome(ServerJobs(JobTags(user="h2-faults", server="y"), registry, lambda p: transport,
                                presets=["local-slurm"]).list()),  # fmt: skip
            _outcome(jobs.cancel_all()),
            _outcome(run.asubmit()),
            _outcome(_cli("arc", "jobs", "--all", "--preset", "local-slurm", env=slurm_cluster.env)),
        )

    squeue, sbatch, scancel, polled, views, cancelled, submitted, (cli_code, cli_err) = asyncio.run(all_at_once())
    assert not _controller_alive(), (
        "slurmctld came back during the outage: another process ran `scripts/slurm-local start` "
        "(a concurrent test session); the outcomes above are not reliable"
    )

    for exc in (squeue, sbatch, scancel, polled, submitted):  # the bridge's calls raise a clear error
        assert_clear(exc)
    body = summary(views)  # the server's job list reports it, naming the cluster and what to check
    assert [e["preset"] for e in body["errors"]] == ["local-slurm"]
    assert "scripts/slurm-local status" in body["errors"][0]["message"]
    assert cancelled == {}  # the shutdown hook logs the failure and goes on (the hub side cancels later)
    assert [r.job_id for r in registry.all()] == ["999999"]  # not forgotten: nothing was cancelled
    assert run.job_id is None  # the failed submission recorded nothing
    assert cli_code == 1 and "local-slurm" in cli_err and "not answering" in cli_err

    # back again: the same objects work
    _restart_controller()

    async def works_again():
        job_id = (await transport.run(["sbatch", "--parsable", "--hold", "-o", "/dev/null", "-D", "/tmp",
                                       "--job-name=h2-faults"], stdin="#!/bin/sh\ntrue\n")).strip()  # fmt: skip
        try:
            poller.clock = lambda: time.monotonic() + 3600  # the remembered error expires without waiting
            return job_id, {j.job_id for j in await poller.jobs()}
        finally:
            await transport.run(scancel_argv([job_id]))

    job_id, listed = asyncio.run(asyncio.wait_for(works_again(), HANG))
    assert job_id in listed
