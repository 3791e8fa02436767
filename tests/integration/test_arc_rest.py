"""Two people on the local Slurm through the `rest` transport (slurmrestd + hub-minted JWTs).

A's ARCCluster runs in a process as A's own Unix account (as A's notebook
server would) and submits its workers through slurmrestd with A's token:
the workers run as A. B, with B's own token and account, cannot cancel A's
job: our jobs API refuses it (it is not B's), slurmrestd/Slurm refuses B's
DELETE, and B's own `scancel` on the command line is refused by Slurm.
Also: an expired token is refused by slurmrestd and the transport renews it
by itself; a token signed with another key is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from scip_jupyter.arc.registry import JobRegistry
from scip_jupyter.arc.rest import RestTransport, SlurmToken
from scip_jupyter.arc.server_jobs import NotThisServersJob, ServerJobs
from scip_jupyter.arc.states import parse_squeue, squeue_argv
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import SlurmCommandError
from scip_jupyter.identity import ensure_account, mint_slurm_jwt
from scip_jupyter.identity_hub import SCIPCredentials
from tests.fixtures.common import ROOT, is_root

pytestmark = pytest.mark.slurm
REST_URL = f"http://127.0.0.1:{os.environ.get('SCIP_SLURMRESTD_PORT', '6820')}"
PEOPLE = ("jupyter-arc-a", "jupyter-arc-b")
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"

CHILD = r'''
import json, os, sys
from dask.distributed import Client
from scip_jupyter.arc.cluster import ARCCluster
from scip_jupyter.arc.presets import load_presets
from scip_jupyter.arc.rest import RestTransport
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.identity import env_token_source

url, server = sys.argv[1], sys.argv[2]
transport = RestTransport("local-slurm", url, env_token_source())
presets = load_presets(os.environ["ARC_PRESETS"])
cluster = ARCCluster("local-slurm", presets=presets, tags=JobTags(user="arc-a", server=server, project="def-demo"),
                     user_accounts=["def-demo"], transport=transport, walltime="00:20:00", memory="256MiB", cores=1)
try:
    cluster.scale(2)
    with Client(cluster) as client:
        client.wait_for_workers(2, timeout=180)
        who = client.run(lambda: (os.getuid(), os.environ.get("SLURM_JOB_USER"), "SLURM_JWT" in os.environ))
        print(json.dumps({"workers": sorted(who.values()), "submissions": transport.calls["sbatch"]}), flush=True)
        sys.stdin.readline()  # the test checks B's refusals meanwhile
finally:
    cluster.close()
print(json.dumps({"closed": True}), flush=True)
'''


@pytest.fixture(scope="module")
def people(slurm_cluster):
    if not is_root():
        pytest.fail("two-person tests need root (per-person accounts, tokens for them)")
    key_file = Path(slurm_cluster.conf).parent / "jwt" / "jwt_hs256.key"
    if not key_file.exists():
        pytest.fail(f"{key_file} is missing: scripts/slurm-local start sets up slurmrestd with JWT")
    base = ROOT / ".state" / "test-identity"
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o711)
    out = {}
    for name in PEOPLE:
        home = base / name
        entry = asyncio.run(ensure_account(name, str(home), name))
        home.mkdir(exist_ok=True)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        os.chmod(home, 0o700)
        slurm_cluster.run("sacctmgr", "-i", "add", "user", name, "Account=def-demo", "Cluster=scip-local", check=False)
        out[name] = entry
    issuer = SCIPCredentials(slurm_jwt_key_file=str(key_file), slurm_token_lifespan=600)
    return out, issuer, key_file


def _source(issuer, account):
    async def source():
        token, expires = await issuer.slurm_token(account)
        return SlurmToken(account, token, expires)

    return source


def test_b_cannot_cancel_as_workers_run_as_a(people, slurm_cluster, tmp_path):
    accounts, issuer, _ = people
    a, b = (accounts[n] for n in PEOPLE)
    server = f"rest{uuid.uuid4().hex[:6]}"
    token_a, _ = asyncio.run(issuer.slurm_token(a.pw_name))
    env = {
        "HOME": a.pw_dir, "USER": a.pw_name, "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin",
        "SLURM_JWT": token_a, "SLURM_CONF": str(slurm_cluster.conf), "ARC_PRESETS": str(ROOT / "hub_config" / "arc.yaml"),
        "SCIP_ARC_REGISTRY": f"{a.pw_dir}/arc-jobs.sqlite", "PYTHONPATH": str(ROOT),
    }
    child = subprocess.Popen(
        [RUNUSER, "-u", a.pw_name, "--", sys.executable, "-c", CHILD, REST_URL, server],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/",
    )
    try:
        line = child.stdout.readline()
        if not line:
            pytest.fail(f"A's ARCCluster over REST did not start:\n{child.stderr.read()[-3000:]}", pytrace=False)
        report = json.loads(line)
        assert report["workers"] == [[a.pw_uid, a.pw_name, False]] * 2  # A's uid, A's Slurm user, no token in the job
        assert report["submissions"] == 1  # one sbatch --array for both workers

        # A's jobs, as Slurm lists them
        b_transport = RestTransport("local-slurm", REST_URL, _source(issuer, b.pw_name))
        listed = parse_squeue(b_transport.run_sync(squeue_argv()))
        a_jobs = [j for j in listed if j.tags and j.tags.server == server]
        assert a_jobs and {j.user for j in a_jobs} == {a.pw_name}
        target = a_jobs[0].array_job_id

        # 1. our jobs API (B's server) refuses it, even when B's registry claims it and B's tags are forged
        registry = JobRegistry(tmp_path / "b-jobs.sqlite")
        b_jobs = ServerJobs(JobTags(user="arc-a", server=server), registry, lambda preset: b_transport, presets=["local-slurm"])
        with pytest.raises(NotThisServersJob):
            asyncio.run(b_jobs.cancel(target))
        registry.record(target, "local-slurm", JobTags(user="arc-a", server=server), preset="local-slurm", account=b.pw_name)
        with pytest.raises(NotThisServersJob):
            asyncio.run(b_jobs.cancel(target))
        assert all(v.jobs == [] or all(j.user != a.pw_name for j in v.jobs) for v in asyncio.run(b_jobs.list()))

        # 2. Slurm refuses B's DELETE through slurmrestd, with B's token
        with pytest.raises(SlurmCommandError, match="(?i)access|permission|denied"):
            b_transport.run_sync(["scancel", target])
        # 3. and B's own scancel on the command line
        proc = subprocess.run([RUNUSER, "-u", b.pw_name, "--", "scancel", target], capture_output=True, text=True,
                              env={**os.environ, "SLURM_CONF": str(slurm_cluster.conf)}, timeout=60)
        assert "denied" in (proc.stderr + proc.stdout).lower() or proc.returncode != 0, proc
        still = {j.job_id for j in parse_squeue(b_transport.run_sync(squeue_argv())) if j.tags and j.tags.server == server and not j.phase.finished}
        assert still, "A's jobs must survive B's attempts"
    finally:
        if child.poll() is None:
            child.stdin.write("done\n")
            child.stdin.flush()
            try:
                child.wait(120)
            except subprocess.TimeoutExpired:
                child.kill()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and slurm_cluster.job_ids(comment_contains=f"server={server},"):
        time.sleep(1)
    assert not slurm_cluster.job_ids(comment_contains=f"server={server},")


def test_expired_token_is_refused_and_renewed_without_the_person(people):
    accounts, issuer, key_file = people
    a = accounts[PEOPLE[0]]
    key = key_file.read_bytes()
    handed = []

    async def source():  # first an expired token (as a server that slept past it), then fresh ones
        token, expires = mint_slurm_jwt(key, a.pw_name, -30 if not handed else 600)
        handed.append(expires)
        return SlurmToken(a.pw_name, token, expires + 10_000)  # pretend it is still fresh, so slurmrestd must refuse it

    transport = RestTransport("local-slurm", REST_URL, source)
    text = transport.run_sync(squeue_argv())
    assert json.loads(text)["jobs"] is not None
    assert transport.renewals == 2 and len(handed) == 2  # refused once, renewed by the transport itself

    async def expired_only():
        token, expires = mint_slurm_jwt(key, a.pw_name, -30)
        return SlurmToken(a.pw_name, token, expires + 10_000)

    with pytest.raises(SlurmCommandError, match="refused the Slurm token"):
        RestTransport("local-slurm", REST_URL, expired_only).run_sync(squeue_argv())

    async def forged():  # signed with a key that is not the cluster's
        token, expires = mint_slurm_jwt(b"not-the-key" * 4, "root", 600)
        return SlurmToken("root", token, expires)

    with pytest.raises(SlurmCommandError, match="refused the Slurm token"):
        RestTransport("local-slurm", REST_URL, forged).run_sync(["scancel", "1"])


def test_token_due_to_expire_is_renewed_before_use(people):
    accounts, issuer, _ = people
    a = accounts[PEOPLE[0]]
    real = _source(issuer, a.pw_name)
    calls = []

    async def short_lived():
        tok = await real()
        calls.append(tok)
        return SlurmToken(tok.user, tok.token, time.time() + (30 if len(calls) == 1 else 600))

    transport = RestTransport("local-slurm", REST_URL, short_lived, renew_margin=60)
    transport.run_sync(squeue_argv())
    transport.run_sync(squeue_argv())
    assert len(calls) == 2  # the first expired within the margin: renewed before the second call
    assert transport.account == a.pw_name
