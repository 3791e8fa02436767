"""SSH as the person: the hub's CA signs a short-lived certificate for one account (real sshd, real Slurm).

scripts/sshd-local trusts the CA and maps principals to accounts. A's
certificate logs in as A only (jobs run as A), an expired certificate and the
old shared key without a certificate are refused by sshd, and the transport
fetches a fresh certificate by itself before the one it holds expires.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import pytest

from scip_jupyter.arc.states import parse_squeue, squeue_argv
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import SlurmUnavailable, SSHTarget, SSHTransport
from scip_jupyter.identity import ensure_account
from scip_jupyter.ssh_ca import local_credential
from tests.fixtures.common import ROOT, is_root

pytestmark = [pytest.mark.ssh, pytest.mark.slurm]
PEOPLE = ("jupyter-arc-a", "jupyter-arc-b")
SLEEPER = "#!/bin/bash\n#SBATCH -J scip-cert-test\n#SBATCH --comment={comment}\n#SBATCH -o /dev/null\n#SBATCH -t 00:05:00\n#SBATCH --mem=64M\nsleep 300\n"


@pytest.fixture(scope="module")
def ca(sshd_robot, slurm_cluster):
    if not is_root():
        pytest.fail("per-person SSH accounts need root")
    key = Path(sshd_robot.key).parent / "hub_ca" / "user_ca"
    if not key.exists():
        pytest.fail(f"{key} is missing: scripts/sshd-local start creates the hub's user CA")
    base = ROOT / ".state" / "test-identity"
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o711)
    for name in PEOPLE:
        home = base / name
        entry = asyncio.run(ensure_account(name, str(home), name))
        home.mkdir(exist_ok=True)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        os.chmod(home, 0o700)
        slurm_cluster.run("sacctmgr", "-i", "add", "user", name, "Account=def-demo", "Cluster=scip-local", check=False)
    return str(key)


def _transport(robot, user, credentials):
    target = SSHTarget(host=robot.host, port=robot.port, user=user, known_hosts=robot.known_hosts)
    return SSHTransport("local-ssh", target, credentials=credentials)


def _source(ca, principal, validity=600.0, now=None):
    async def source():
        return local_credential(ca, principal, validity, now=now)

    return source


def test_persons_certificate_submits_as_that_person_only(ca, sshd_robot, slurm_cluster):
    a, b = PEOPLE
    transport = _transport(sshd_robot, None, _source(ca, a))  # the account is the certificate's principal
    server = f"cert{uuid.uuid4().hex[:6]}"
    comment = JobTags(user="arc-a", server=server).comment()
    job_id = transport.run_sync(["sbatch", "--parsable"], stdin=SLEEPER.format(comment=comment)).strip()
    try:
        (job,) = [j for j in parse_squeue(transport.run_sync(squeue_argv())) if j.job_id == job_id]
        assert job.user == a and transport.account == a
        with pytest.raises(SlurmUnavailable, match="(?i)permission denied"):
            _transport(sshd_robot, b, _source(ca, a)).run_sync(["squeue"])  # A's certificate is not B's login
    finally:
        transport.run_sync(["scancel", job_id])


def test_expired_certificate_and_shared_key_alone_are_refused(ca, sshd_robot, tmp_path):
    import time

    a = PEOPLE[0]
    with pytest.raises(SlurmUnavailable, match="(?i)permission denied"):
        _transport(sshd_robot, a, _source(ca, a, validity=60, now=time.time() - 3600)).run_sync(["squeue"])
    bare = tmp_path / "robot_key"  # the old shared key, without its certificate next to it
    shutil.copy(sshd_robot.key, bare)
    os.chmod(bare, 0o600)
    target = SSHTarget(host=sshd_robot.host, port=sshd_robot.port, user="root", key=str(bare), known_hosts=sshd_robot.known_hosts)
    with pytest.raises(SlurmUnavailable, match="(?i)permission denied"):
        SSHTransport("local-ssh", target).run_sync(["squeue"])


def test_certificate_due_to_expire_is_renewed_by_the_transport(ca, sshd_robot):
    a = PEOPLE[0]
    transport = _transport(sshd_robot, a, _source(ca, a, validity=600))
    transport.renew_margin = 3600  # longer than the certificate's life: always "about to expire"
    for _ in range(2):
        transport.run_sync(squeue_argv())
    assert transport.renewals == 2
