"""The SSH transport against a real sshd set up like an automation node (scripts/sshd-local).

The node's key has a forced command allowing only sbatch, squeue, scontrol,
scancel (and cat), never through a shell; scripts go on standard input.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import time
import uuid
from pathlib import Path

import asyncssh
import pytest
from dask.distributed import Client

from scip_jupyter.arc.cluster import ARCCluster
from scip_jupyter.arc.presets import load_presets
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import SlurmCommandError, SlurmUnavailable, SSHTarget, SSHTransport
from tests.fixtures.common import free_port

pytestmark = [pytest.mark.ssh, pytest.mark.slurm]

ROOT = Path(__file__).resolve().parents[2]
SLEEPER = """#!/bin/bash
#SBATCH -J scip-ssh-test
#SBATCH --comment={comment}
#SBATCH -o /dev/null
#SBATCH -t 00:05:00
#SBATCH --mem=64M
sleep 300
"""


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)


async def test_ssh_transport_submits_lists_and_cancels_as_the_unprivileged_user(sshd_robot, slurm_cluster):
    transport = SSHTransport("local-ssh", sshd_robot.target("scip-user"))
    server = f"ssh{uuid.uuid4().hex[:8]}"
    comment = JobTags(user="scip-user", server=server).comment()
    try:
        job_id = (await transport.run(["sbatch", "--parsable"], stdin=SLEEPER.format(comment=comment))).strip()
        assert job_id.isdigit()
        listed = await transport.run(["squeue", "--me", "-h", "-o", "%i|%k|%u"])
        assert f"{job_id}|{comment}|scip-user" in listed.splitlines()
        shown = await transport.run(["scontrol", "show", "job", job_id])
        assert "UserId=scip-user(" in shown
        await transport.run(["scancel", job_id])
        assert dict(transport.calls) == {"sbatch": 1, "squeue": 1, "scontrol": 1, "scancel": 1}
    finally:
        await transport.close()
    wait_until(lambda: not slurm_cluster.job_ids(comment_contains=f"server={server}"), 60, "the cancelled job to leave squeue")


@pytest.mark.parametrize(
    "command",
    ["sinfo", "sacctmgr show assoc", "bash -c id", "id", "squeue; touch /tmp/scip-ssh-pwned", "", "rm -rf /tmp/nothing"],
)
async def test_automation_node_refuses_commands_outside_slurm(sshd_robot, command):
    async with asyncssh.connect(
        sshd_robot.host, port=sshd_robot.port, username=getpass.getuser(),
        client_keys=[sshd_robot.key], known_hosts=sshd_robot.known_hosts, agent_path=None,
    ) as conn:
        # an empty command asks for a login shell, which the forced command refuses too
        result = await conn.run(command, check=False) if command else await conn.run(check=False)
    assert result.exit_status != 0
    assert "allowed" in result.stderr
    assert not os.path.exists("/tmp/scip-ssh-pwned")


async def test_command_line_is_not_run_through_a_shell(sshd_robot, slurm_cluster):
    transport = SSHTransport("local-ssh", sshd_robot.target("scip-user"))
    marker = f"/tmp/scip-ssh-{uuid.uuid4().hex[:8]}"
    try:
        # a shell would run the substitution; the forced command hands it to squeue as one literal word
        with pytest.raises(SlurmCommandError):
            await transport.run(["squeue", "--me", "-j", f"$(touch {marker})"])
    finally:
        await transport.close()
    assert not os.path.exists(marker)


async def test_transport_refuses_other_commands_before_connecting():
    # port 9 on a documentation address: a connection attempt would end in SlurmUnavailable, not this
    transport = SSHTransport("fir", SSHTarget(host="192.0.2.1", port=9))
    with pytest.raises(SlurmCommandError, match="sinfo is not allowed through the automation node; allowed: sbatch"):
        await transport.run(["sinfo"])


async def test_unknown_host_key_is_refused(sshd_robot, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = SSHTarget(host=sshd_robot.host, port=sshd_robot.port, user="scip-user", key=sshd_robot.key, known_hosts=str(empty))
    with pytest.raises(SlurmUnavailable) as err:
        await SSHTransport("local-ssh", target).run(["squeue", "--me"])
    assert "cluster 'local-ssh'" in str(err.value) and f"127.0.0.1:{sshd_robot.port}" in str(err.value)


async def test_unreachable_node_gives_a_clear_error_without_hanging(sshd_robot):
    target = SSHTarget(host="127.0.0.1", port=free_port(), user="scip-user", key=sshd_robot.key,
                       known_hosts=sshd_robot.known_hosts)
    transport = SSHTransport("fir", target, hint="that robot.fir.alliancecan.ca accepts your key", timeout=10)
    with pytest.raises(SlurmUnavailable) as err:
        await asyncio.wait_for(transport.run(["squeue", "--me"]), 30)
    text = str(err.value)
    assert text.startswith("Slurm on cluster 'fir' is not answering (ssh: cannot connect to scip-user@127.0.0.1:")
    assert "Check: that robot.fir.alliancecan.ca accepts your key" in text


def test_arc_cluster_submits_one_array_through_ssh(sshd_robot, slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SCIP_ARC_REGISTRY", str(tmp_path / "arc-jobs.sqlite"))
    server = f"ssh{uuid.uuid4().hex[:8]}"
    transport = SSHTransport("local-slurm", sshd_robot.target(getpass.getuser()))
    cluster = ARCCluster(
        "local-slurm", presets=load_presets(ROOT / "hub_config" / "arc.yaml"), transport=transport,
        tags=JobTags(user="pytest", server=server, project="def-demo"), user_accounts=["def-demo"],
        walltime="00:20:00", memory="256MiB",
    )
    try:
        cluster.scale(2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            assert client.submit(sum, [1, 2, 3]).result() == 6
        assert transport.calls["sbatch"] == 1
        assert [argv for argv in transport.log if argv[0] == "sbatch"] == [["sbatch", "--parsable", "--array=0-1"]]
    finally:
        cluster.close()
    wait_until(lambda: not slurm_cluster.job_ids(comment_contains=f"server={server},"), 60, "no jobs left")


def test_synchronous_callers_get_a_fresh_connection_each_time(sshd_robot, slurm_cluster):
    transport = SSHTransport("local-ssh", sshd_robot.target("scip-user"))
    for _ in range(2):  # each call runs its own event loop; the connection of the last one is closed
        assert "JOBID" in transport.run_sync(["squeue", "--me"])
    assert transport.calls["squeue"] == 2 and transport._conns == {}
