"""slurmctld stopped during a scale-up and during a server's stop clean-up (the project's local Slurm).

The controller is stopped with SIGTERM (pid checked to be the project's
slurmctld) and ALWAYS restarted with `scripts/slurm-local start` afterwards
(others depend on it). For each fault: the person gets a clear message naming
the cluster and what to check; jobs already running are not lost; once the
controller is back everything works again without manual steps.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from scip_jupyter.arc.presets import load_default_presets
from scip_jupyter.arc.registry import JobRegistry
from scip_jupyter.arc.server_jobs import ServerJobs
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import transport_for
from tests.fixtures.common import VENV_BIN
from tests.integration.test_arc_faults import _controller_alive, _restart_controller, _slurmctld_pid
from tests.integration.test_arc_slurm import make_cluster, our_jobs, wait_until

pytestmark = pytest.mark.slurm


def _stop_controller() -> None:
    pid = _slurmctld_pid()
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 30, "slurmctld to stop on SIGTERM")


@pytest.fixture
def controller_restored(slurm_cluster):
    """Whatever the test does to slurmctld, it runs again afterwards."""
    try:
        yield
    finally:
        if not _controller_alive():
            _restart_controller()
        subprocess.run([str(Path(__file__).resolve().parents[2] / "scripts" / "slurm-local"), "start"],
                       capture_output=True, timeout=180)


def test_controller_stopped_during_a_scale_up(slurm_cluster, controller_restored, monkeypatch, tmp_path):
    monkeypatch.setenv("SCIP_ARC_REGISTRY", str(tmp_path / "arc-jobs.sqlite"))
    server = f"f{uuid.uuid4().hex[:8]}"
    cluster = make_cluster(server)
    errors = []
    cluster.add_submit_listener(errors.append)  # what the launcher widget shows the person
    try:
        cluster.scale(2)
        wait_until(lambda: len(our_jobs(slurm_cluster, server)) == 2, 60, "the first 2 workers in squeue")
        first = sorted(our_jobs(slurm_cluster, server))
        _stop_controller()
        cluster.scale(4)  # the next 2 cannot be submitted
        wait_until(lambda: cluster.last_error is not None, 120, "the failed submission to be reported")
        message = cluster.last_error.message
        assert "local-slurm" in message and "scripts/slurm-local status" in message, message
        assert errors and errors[-1] is cluster.last_error
        assert len(cluster.worker_spec) == 2  # the plan shows what Slurm holds, not the 2 that failed
        _restart_controller()
        # nothing lost: the 2 running before the outage are still there
        assert sorted(our_jobs(slurm_cluster, server)) == first
        cluster.scale(4)  # the same call works again, no manual step
        wait_until(lambda: len(our_jobs(slurm_cluster, server)) == 4, 90, "4 workers after the controller is back")
        wait_until(lambda: cluster.last_error is None, 30, "the error to clear after a good submission")
    finally:
        if _controller_alive():
            cluster.close()
    wait_until(lambda: not our_jobs(slurm_cluster, server), 60, "no job left after close")


def test_controller_stopped_during_a_servers_stop_clean_up(slurm_cluster, controller_restored, tmp_path):
    user, server = f"faults-{uuid.uuid4().hex[:6]}", "s"
    tags = JobTags(user=user, server=server, project="def-demo", site="scip-local", jurisdiction="CA")
    preset = load_default_presets().get("local-slurm")
    transport = transport_for(preset, timeout=15)
    job_id = slurm_cluster.run("sbatch", "--parsable", "--hold", "-o", "/dev/null", "-D", "/tmp", "--job-name=faults",
                               f"--comment={tags.comment()}", "--wrap=true").strip().split(";")[0]
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    registry.record(job_id, "local-slurm", tags, preset="local-slurm")
    jobs = ServerJobs(tags, registry, lambda p: transport, presets=["local-slurm"])

    _stop_controller()
    # the server stops (its shutdown hook): the cancel fails, is logged, and nothing is forgotten
    done = asyncio.run(asyncio.wait_for(jobs.cancel_all(), 120))
    assert not _controller_alive(), "slurmctld came back during the outage (another session ran slurm-local start)"
    assert done == {}, done
    assert [r.job_id for r in registry.all()] == [job_id]
    _restart_controller()
    assert job_id in slurm_cluster.job_ids(comment_contains=f"user={user},")  # still there: not lost, not run

    # the hub side's reconcile (as its service runs it) cancels it by tag once Slurm answers
    # the job runs as this test's own account, which is therefore the person's (reconcile checks the owner too)
    me = pwd.getpwuid(os.geteuid()).pw_name
    proc = subprocess.run([str(VENV_BIN / "scip-jupyter"), "arc", "reconcile", "--preset", "local-slurm",
                           "--none-running", "--only-user", user, "--account-template", me], env=slurm_cluster.env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert job_id in proc.stdout
    wait_until(lambda: job_id not in slurm_cluster.job_ids(comment_contains=f"user={user},"), 60, "the job cancelled")
    # and the server's own record goes once Slurm no longer lists the job
    asyncio.run(asyncio.wait_for(jobs.cancel_all(), 120))
    wait_until(lambda: not registry.all() or asyncio.run(jobs.cancel_all()) is not None and not registry.all(), 60,
               "the registry to forget the cancelled job")
