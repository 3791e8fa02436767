"""Free GPUs per flavour read from the real local Slurm (scripts/slurm-local: 4 × h100, 2 × h100_1g.10gb).

A job holding every MIG slice makes the count deterministic even on a shared
cluster: while it runs, nobody else can hold one.
"""

from __future__ import annotations

import time

import pytest
from jupyterhub.objects import Hub

from scip_jupyter.availability import SlurmAvailability
from scip_jupyter.spawners.local import SCIPLocalSpawner
from tests.fixtures.common import ROOT
from tests.fixtures.k8s import make_user

pytestmark = [pytest.mark.slurm, pytest.mark.asyncio(loop_scope="session")]

MIG = "h100_1g.10gb"


def wait_running(cluster, job_id: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = cluster.run("squeue", "-h", "-j", job_id, "-o", "%T|%r", check=False).strip()
        if state.startswith("RUNNING"):
            return
        time.sleep(0.5)
    pytest.fail(f"job {job_id} holding every {MIG} slice did not run: {state!r}", pytrace=False)


async def test_a_job_holding_every_mig_slice_leaves_none_free(slurm_cluster):
    idle = await SlurmAvailability(str(slurm_cluster.conf), ttl=0).flavours()
    assert idle is not None
    assert idle[MIG].allocatable == 2 and idle["h100"].allocatable == 4

    job_id = slurm_cluster.run(
        "sbatch", "--parsable", "-p", "gpu", f"--gres=gpu:{MIG}:2", "-t", "5", "-J", "scip-availability-test",
        "-o", "/dev/null", "--wrap", "sleep 120",
    ).strip().split(";")[0]
    try:
        wait_running(slurm_cluster, job_id)
        busy = await SlurmAvailability(str(slurm_cluster.conf), ttl=0).flavours()
        assert busy[MIG].free == 0 and busy[MIG].requested == 2

        # The local spawner's form reads the same numbers, per profile.
        spawner = SCIPLocalSpawner(
            hub=Hub(), user=make_user("rita", "researchers"), api_token="x", oauth_client_id="unused",
            catalog_path=str(ROOT / "hub_config" / "catalog.yaml"), slurm_conf=str(slurm_cluster.conf),
            availability_ttl=0,
        )
        free = await spawner.scip_cluster_availability(spawner.scip_allowed_profiles())
        assert free["mig-1g-10gb"] == 0
        assert free["mig-3g-40gb"] == 0  # not configured on this cluster
        assert free["cpu-small"] is None
        assert free["h100-full"] == busy["h100"].free
    finally:
        slurm_cluster.run("scancel", job_id, check=False)
