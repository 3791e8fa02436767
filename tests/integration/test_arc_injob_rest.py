"""In-job mode over the `rest` transport, on the real local Slurm + slurmrestd, as the person.

Person A's notebook side runs in a process as A's own Unix account, with A's JWT
(minted by the hub's own code, SCIPCredentials): one in-job run is submitted
through slurmrestd (POST /job/submit), followed through slurmrestd (GET /jobs),
cancelled through it (DELETE), and its result read from the run folder, which
this host shares with the cluster — slurmrestd itself cannot read a file. The
tasks run as A, without the token. When the folder the notebook writes is NOT
what the cluster sees (here: the notebook process has a private tmpfs over it,
in its own mount namespace), the job finds no handshake, runs nothing, and the
run fails naming the folder and what to use instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.fixtures.common import ROOT
from tests.integration.test_arc_rest import PEOPLE, REST_URL, RUNUSER, people  # noqa: F401 - `people` is a fixture

pytestmark = pytest.mark.slurm

CHILD = r'''
import json, os, sys, time
from scip_jupyter.arc.injob import InJobFailed, InJobRun
from scip_jupyter.arc.poller import JobPoller
from scip_jupyter.arc.presets import NetworkConfig, PresetFile, RestTransportConfig, load_presets
from scip_jupyter.arc.registry import JobRegistry
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import transport_for

url, mode, server, credentials = sys.argv[1:5]
base_dir = sys.argv[5] if len(sys.argv) > 5 else None
local = load_presets(os.environ["ARC_PRESETS"]).get("local-slurm")
preset = local.model_copy(update={"name": "local-injob", "network": NetworkConfig(mode="in-job"),
                                  "transport": RestTransportConfig(kind="rest", url=url, credentials=credentials)})
transport = transport_for(preset)  # the preset's rest transport: this person's JWT ($SLURM_JWT, or from the hub)
poller = JobPoller(transport, cluster="local-injob", interval=1)
registry = JobRegistry(os.environ["SCIP_ARC_REGISTRY"])
me = os.environ["USER"]


def say(**data):
    print(json.dumps(data), flush=True)


def make(func, **kwargs):
    return InJobRun(func, preset="local-injob", presets=PresetFile(clusters=[preset]), transport=transport,
                    registry=registry, poller=poller, user=me, tags=JobTags(user=me, server=server),
                    walltime="00:10:00", base_dir=base_dir, **kwargs)


def squares(n, client):
    import os
    total = sum(client.gather(client.map(lambda x: x * x, range(n))))
    workers = sorted(str(w["name"]) for w in client.scheduler_info()["workers"].values())
    who = client.run(lambda: (os.getuid(), os.environ.get("SLURM_JOB_USER")))
    return total, workers, sorted(set(who.values())), (os.getuid(), os.environ.get("SLURM_JOB_USER")), dict(os.environ)


def forever(client):
    import time
    time.sleep(600)


if mode == "run":
    run = make(squares, args=(10,), workers=2)
    job_id = run.submit()
    total, workers, worker_users, client_user, env = run.result(timeout=300)
    token = transport._token.token  # the JWT the transport was given
    say(job_id=job_id, renewals=transport.renewals, slurm_user=transport.account, total=total, workers=workers, worker_users=worker_users, client_user=client_user,
        run_dir=run.spec.run_dir, access=run.folder.access, phase=run.status().phase.value,
        token_in_job=any(token in v for v in env.values()) or "SLURM_JWT" in env, registry=len(registry.all()))
    cancelled = make(forever, workers=1)
    cancelled_id = cancelled.submit()
    for _ in range(600):  # until the client task reports the Dask cluster runs
        if cancelled.status().progress == "running":
            break
        time.sleep(0.5)
    cancelled.cancel()
    say(cancelled_id=cancelled_id, phase=cancelled.status().phase.value, registry=len(registry.all()))
    try:
        cancelled.result(timeout=30)
        say(cancelled_result="returned")
    except InJobFailed as exc:
        say(cancelled_result=str(exc))
elif mode == "unshared":
    run = make(squares, args=(3,), workers=1)
    job_id = run.submit()
    try:
        run.result(timeout=300)
        say(job_id=job_id, error=None)
    except InJobFailed as exc:
        say(job_id=job_id, run_id=run.run_id, error=str(exc), phase=run.status().phase.value)
say(calls=dict(transport.calls))
'''


def _child_env(person, issuer, slurm_cluster):
    import asyncio

    token, _expires = asyncio.run(issuer.slurm_token(person.pw_name))
    return token, {
        "HOME": person.pw_dir, "USER": person.pw_name, "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin",
        "SLURM_JWT": token, "SLURM_CONF": str(slurm_cluster.conf), "ARC_PRESETS": str(ROOT / "hub_config" / "arc.yaml"),
        "SCIP_ARC_REGISTRY": f"{person.pw_dir}/arc-jobs-injob.sqlite", "PYTHONPATH": str(ROOT),
    }


def _lines(proc: subprocess.CompletedProcess) -> list[dict]:
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not out:
        pytest.fail(f"the notebook side failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}",
                    pytrace=False)
    return out


def _gone(slurm_cluster, server: str) -> bool:
    for _ in range(120):
        if not slurm_cluster.job_ids(comment_contains=f"server={server},"):
            return True
        time.sleep(0.5)
    return False


def test_injob_run_over_rest_as_the_person_reads_its_result_from_the_shared_folder(people, slurm_cluster):
    accounts, issuer, _key = people
    a = accounts[PEOPLE[0]]
    server = f"ijr{uuid.uuid4().hex[:6]}"
    token, env = _child_env(a, issuer, slurm_cluster)
    try:
        proc = subprocess.run([RUNUSER, "-u", a.pw_name, "--", sys.executable, "-c", CHILD, REST_URL, "run", server, "env"],
                              capture_output=True, text=True, env=env, cwd="/", timeout=900)
    finally:
        for job_id in slurm_cluster.job_ids(comment_contains=f"server={server},"):
            slurm_cluster.run("scancel", job_id, check=False)
    ran, cancelled, cancelled_result, calls = _lines(proc)
    _check_run(ran, cancelled, cancelled_result, calls, a, a.pw_dir)
    assert token not in proc.stdout + proc.stderr
    assert _gone(slurm_cluster, server)


def _check_run(ran, cancelled, cancelled_result, calls, a, home):
    """One run's report (the "run" mode of CHILD) as `a` (a pwd entry) with its home `home`."""
    assert ran["slurm_user"] == a.pw_name
    assert ran["total"] == sum(x * x for x in range(10)) and ran["workers"] == ["2", "3"]
    assert ran["worker_users"] == [[a.pw_uid, a.pw_name]] and ran["client_user"] == [a.pw_uid, a.pw_name]
    assert ran["token_in_job"] is False  # the JWT went in headers to slurmrestd only
    assert ran["access"] == "shared" and ran["run_dir"].startswith(f"{home}/.scip/injob/")
    assert ran["phase"] == "completed" and ran["registry"] == 0  # finished runs are forgotten
    assert cancelled["phase"] == "cancelled" and cancelled["registry"] == 0
    assert "cancelled" in cancelled_result["cancelled_result"]
    # two sbatch (one per run) and one DELETE, through slurmrestd; never a `cat` or `sacct`
    assert calls["calls"]["sbatch"] == 2 and calls["calls"]["scancel"] == 1
    assert calls["calls"].get("cat", 0) == 0 and calls["calls"].get("sacct", 0) == 0


def test_injob_run_over_rest_refuses_a_folder_the_cluster_does_not_share(people, slurm_cluster, tmp_path):
    accounts, issuer, _key = people
    a = accounts[PEOPLE[0]]
    server = f"iju{uuid.uuid4().hex[:6]}"
    base = Path(a.pw_dir) / f"unshared-{server}"  # what the cluster sees: an empty folder of A's
    base.mkdir()
    os.chown(base, a.pw_uid, a.pw_gid)
    os.chmod(base, 0o700)
    _token, env = _child_env(a, issuer, slurm_cluster)
    # the notebook side gets a private tmpfs over that folder: what it writes there, the cluster never sees
    script = 'mount -t tmpfs -o mode=0700 tmpfs "$1" && chown "$2" "$1" && shift 2 && exec "$@"'
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(base), a.pw_name,
            RUNUSER, "-u", a.pw_name, "--", sys.executable, "-c", CHILD, REST_URL, "unshared", server, "env", str(base)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/", timeout=600)
    finally:
        for job_id in slurm_cluster.job_ids(comment_contains=f"server={server},"):
            slurm_cluster.run("scancel", job_id, check=False)
    failed, calls = _lines(proc)
    assert failed["phase"] == "failed"
    assert "the job did not find the run folder this server wrote" in failed["error"]
    assert f"{base}/{failed['run_id']}" in failed["error"] and "transport ssh" in failed["error"]
    left = list(base.iterdir())
    shutil.rmtree(base)
    assert left == []  # the job wrote nothing where the cluster sees it (no folder, no log): it ran nothing
    assert calls["calls"]["sbatch"] == 1 and calls["calls"].get("cat", 0) == 0
    assert _gone(slurm_cluster, server)


@pytest.mark.hub
def test_injob_run_over_rest_with_the_token_the_hub_gives_the_persons_server(hub, slurm_cluster):
    """The notebook side as researcher1's own server would run it: its account, its home, and the
    preset's `credentials: hub` — the JWT comes from the hub, asked with the server's own API token."""
    import pwd
    import re

    from tests.fixtures.common import is_root

    if not is_root():
        pytest.fail("this test runs the notebook side as the person's account, which the hub creates only as root")
    name = "researcher1"
    hub.stop_server(name)
    r = hub.api("POST", f"/users/{name}/server", json={"profile": "cpu-small"})
    assert r.status_code in (201, 202), r.text
    server = f"ijh{uuid.uuid4().hex[:6]}"
    try:
        hub.wait_for_server(name)
        pid = hub.user(name)["servers"][""]["state"]["pid"]
        uid = int(re.search(r"^Uid:\s+(\d+)", open(f"/proc/{pid}/status").read(), re.M).group(1))
        raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        server_env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
        person = pwd.getpwuid(uid)
        env = {k: server_env[k] for k in ("HOME", "USER", "JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN")}
        env.update({"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "SLURM_CONF": str(slurm_cluster.conf),
                    "ARC_PRESETS": str(ROOT / "hub_config" / "arc.yaml"), "PYTHONPATH": str(ROOT),
                    "SCIP_ARC_REGISTRY": f"{server_env['HOME']}/arc-jobs-injob.sqlite"})
        # -m: keep the server's HOME (the account's passwd home may name an earlier test hub's folder)
        proc = subprocess.run([RUNUSER, "-m", "-u", person.pw_name, "--", sys.executable, "-c", CHILD, REST_URL, "run", server, "hub"],
                              capture_output=True, text=True, env=env, cwd="/", timeout=900)
    finally:
        for job_id in slurm_cluster.job_ids(comment_contains=f"server={server},"):
            slurm_cluster.run("scancel", job_id, check=False)
        hub.stop_server(name)
    ran, cancelled, cancelled_result, calls = _lines(proc)
    assert person.pw_name == f"jupyter-{name}" and ran["renewals"] >= 1  # asked the hub, as that server
    _check_run(ran, cancelled, cancelled_result, calls, person, server_env["HOME"])
    assert _gone(slurm_cluster, server)
