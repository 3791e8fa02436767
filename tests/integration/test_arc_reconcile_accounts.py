"""Reconcile decides by tags AND the owning account, on the real local Slurm with the real hub.

Two people's servers give them their own accounts (`jupyter-h9v-…`, `jupyter-h9a-…`, people of
this test's own, each with its Slurm association). Jobs are submitted as each account with today's tags and
with the legacy format's; `scip-jupyter arc reconcile --hub` (the hub service's command, which
asks the hub for the account mapping) must cancel the genuine orphans and keep:

* a job of student1's account whose crafted tags name researcher1 (stopped server or not);
* a legacy-tagged job (`server=default`) of student1's running unnamed server.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from scip_jupyter.arc.tags import JobTags
from tests.fixtures.common import VENV_BIN, is_root

pytestmark = [pytest.mark.slurm, pytest.mark.hub]


def _sbatch_as(slurm_cluster, account: str, comment: str) -> str:
    argv = ["runuser", "-u", account, "--", "sbatch", "--parsable", f"--comment={comment}", "--job-name=h9-reconcile",
            "-o", "/dev/null", "-D", "/tmp", "--time=00:05:00", "--hold", "--wrap", "sleep 300"]  # fmt: skip
    return slurm_cluster.run(*argv).strip()


def _reconcile(hub, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JUPYTERHUB_API_URL": hub.api_url, "JUPYTERHUB_API_TOKEN": hub.token}
    return subprocess.run([str(VENV_BIN / "scip-jupyter"), "arc", "reconcile", "--hub", "--preset", "local-slurm", *args],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture
def two_accounts(hub, slurm_cluster):
    """Two people of this test's own (so no other hub's demo users are touched), each with their own
    account made at spawn (`jupyter-<name>`, with its Slurm association). The victim's server is
    stopped again; the other person's unnamed server runs."""
    if not is_root():
        pytest.fail("per-person accounts exist only when the hub runs as root; run the tests as root")
    tag = uuid.uuid4().hex[:6]
    victim, other = f"h9v-{tag}", f"h9a-{tag}"
    for name in (victim, other):
        assert hub.api("POST", f"/users/{name}").status_code == 201
    r = hub.api("POST", "/groups/students/users", json={"users": [victim, other]})  # cpu-small is theirs
    assert r.status_code == 200, r.text
    try:
        for name in (victim, other):
            r = hub.api("POST", f"/users/{name}/server", json={"profile": "cpu-small"})
            assert r.status_code in (201, 202), r.text
            hub.wait_for_server(name)
        hub.stop_server(victim)
        yield victim, other
    finally:
        for name in (victim, other):
            hub.stop_server(name)
            hub.api("DELETE", f"/users/{name}")
            slurm_cluster.run("sacctmgr", "-i", "delete", "user", f"jupyter-{name}", check=False)
            subprocess.run(["userdel", f"jupyter-{name}"], capture_output=True, timeout=30)


def test_a_crafted_tag_of_another_account_survives_reconcile_and_the_genuine_orphan_does_not(hub, slurm_cluster, two_accounts):
    person, intruder = two_accounts
    victim, other = f"jupyter-{person}", f"jupyter-{intruder}"
    jobs = {
        "orphan": _sbatch_as(slurm_cluster, victim, JobTags(user=person, server="h9-gone").comment()),
        # the intruder's own jobs, with tags naming the victim's stopped servers
        "crafted": _sbatch_as(slurm_cluster, other, JobTags(user=person, server="h9-gone").comment()),
        "crafted-unnamed": _sbatch_as(slurm_cluster, other, JobTags(user=person, server="").comment()),
        # the legacy format named the unnamed server "default": the intruder's unnamed server runs, so this is kept
        "legacy-running": _sbatch_as(slurm_cluster, other, f"scip.ca:user={intruder},server=default,project=def-x"),
        "legacy-orphan": _sbatch_as(slurm_cluster, victim, f"scip.ca:user={person},server=default"),
    }
    try:
        dry = _reconcile(hub, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        would_cancel = {job_id for line in dry.stdout.splitlines() if " would cancel " in line
                        for job_id in line.split(" would cancel ")[1].split(" of stopped server ")[0].split(", ")}
        would_keep = {line.split(" would keep ")[1].split(":")[0] for line in dry.stdout.splitlines() if " would keep " in line}
        ours = set(jobs.values())
        assert would_cancel & ours == {jobs["orphan"], jobs["legacy-orphan"]}, dry.stdout
        assert would_keep & ours == {jobs["crafted"], jobs["crafted-unnamed"]}, dry.stdout
        assert f"runs as {other}" in dry.stdout and victim in dry.stdout
        assert ours <= set(slurm_cluster.job_ids())  # a dry run cancels nothing

        done = _reconcile(hub)
        assert done.returncode == 0, (done.stdout, done.stderr)
        queue = set(slurm_cluster.job_ids())
        kept = {k for k, job_id in jobs.items() if job_id in queue}
        assert kept == {"crafted", "crafted-unnamed", "legacy-running"}, (done.stdout, done.stderr)
    finally:
        for job_id in jobs.values():
            slurm_cluster.run("scancel", job_id, check=False)
