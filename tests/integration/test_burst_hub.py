"""A notebook server's GPU scale-up asks the real hub whether its allocation can pay, before sbatch.

A hub of this module's own (hub_factory) whose quota file gives the group `researchers`
(researcher1) 1 GPU-hour a month, paid through a fresh Slurm account `def-scip-<random>`
(synced into the local Slurm, removed afterwards). 0.75 GPU-hours are already in the
hub's ledger. researcher1's and student1's real servers (cpu-small) are started; their
own `JUPYTERHUB_API_URL`/`JUPYTERHUB_API_TOKEN` (read from /proc, as test_hub_identity
does) are what `ARCCluster` sees here. Servers never get the ledger's URL.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from scip_jupyter.allocations.ledger import Ledger, SlurmJobRecord
from scip_jupyter.arc.presets import ARCRequestError, load_presets
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import LocalTransport
from scip_jupyter.cli import main as cli

pytestmark = [pytest.mark.hub, pytest.mark.slurm]

ROOT = Path(__file__).resolve().parents[2]
PRESETS = load_presets(ROOT / "hub_config" / "arc.yaml")
PEOPLE = ("researcher1", "student1")
USED = 0.75  # GPU-hours of the group's 1 already used


def _server_env(hub, username: str) -> dict[str, str]:
    pid = hub.user(username)["servers"][""]["state"]["pid"]
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.fixture(scope="module")
def budget(hub_factory, slurm_cluster):
    """(hub, Slurm account, {person: their server's env}) — see the module docstring."""
    name = f"def-scip-{uuid.uuid4().hex[:8]}"
    state = hub_factory.state_dir()
    path = state / "allocations-burst.yaml"
    path.write_text(yaml.safe_dump({
        "period": "month",
        "slurm": {"cluster": "local-slurm", "users": ["root", "scip-user"]},
        "groups": {"researchers": {"max_gpus": {"h100": 2}, "gpu_hours": 1, "slurm_account": name}},
    }))
    os.chmod(path, 0o644)
    try:
        assert cli(["arc", "accounts", "sync", "--allocations", str(path)]) == 0
        hub = hub_factory.start(state, env={"SCIP_ALLOCATIONS_FILE": str(path)}, name="burst-hub")
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        ledger = Ledger(hub.ledger_url)
        ledger.record_slurm_jobs([SlurmJobRecord(
            cluster="test-seed", job_id="1", user="researcher1", server="", slurm_user="root", slurm_account=name,
            account="group:researchers", flavour="h100", gpus=1, gpu_weight=1.0, state="COMPLETED",
            started_at=now - dt.timedelta(hours=USED), ended_at=now)])
        ledger.dispose()
        for person in PEOPLE:
            r = hub.api("POST", f"/users/{person}/server", json={"profile": "cpu-small"})
            assert r.status_code in (201, 202), r.text
        envs = {}
        for person in PEOPLE:
            hub.wait_for_server(person)
            envs[person] = _server_env(hub, person)
            assert envs[person]["JUPYTERHUB_API_TOKEN"] and "SCIP_LEDGER_URL" not in envs[person]
        yield hub, name, envs
    finally:
        subprocess.run(["sacctmgr", "-i", "delete", "account", f"name={name}"], env=slurm_cluster.env,
                       capture_output=True, timeout=60)


def ask(env: dict[str, str], body: dict, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"token {token or env['JUPYTERHUB_API_TOKEN']}"} if token != "" else {}
    return requests.post(env["JUPYTERHUB_API_URL"].rstrip("/") + "/scip/allocations/burst", json=body,
                         headers=headers, timeout=60)


def body(account: str, **change) -> dict:
    return {"preset": "local-slurm", "gpus_per_job": 1, "jobs": 3, "walltime": "01:00:00", "gpu_type": "h100",
            "account": account, **change}


def test_researcher_server_is_told_what_is_left_and_what_fits(budget):
    hub, name, envs = budget
    r = ask(envs["researcher1"], body(name))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["allowed"] is False and answer["allocation"] == "group researchers"
    assert answer["slurm_account"] == name and answer["asked"] == pytest.approx(3)
    assert answer["left"] <= 1 - USED + 0.01 and answer["fits"] == 0
    assert "group researchers" in answer["message"] and name in answer["message"]
    assert "up to 3 GPU-hours" in answer["message"] and "GPU-hours left" in answer["message"]
    small = ask(envs["researcher1"], body(name, jobs=1, walltime="00:15:00")).json()
    assert small["allowed"] is True and small["asked"] == pytest.approx(0.25)
    french = requests.post(envs["researcher1"]["JUPYTERHUB_API_URL"].rstrip("/") + "/scip/allocations/burst",
                           json=body(name), timeout=60, headers={
                               "Authorization": f"token {envs['researcher1']['JUPYTERHUB_API_TOKEN']}",
                               "Accept-Language": "fr"}).json()
    assert "heures-GPU" in french["message"] and "compte Slurm" in french["message"]


@pytest.mark.parametrize("change, field", [
    ({"user": "student1"}, "user"),
    ({"preset": "nowhere"}, "preset"),
    ({"jobs": 0}, "jobs"),
    ({"gpus_per_job": 99}, "gpus_per_job"),
    ({"gpu_type": "a100"}, "gpu_type"),
    ({"walltime": "99-00:00:00"}, "walltime"),
    ({"walltime": None}, "walltime"),
])
def test_bad_bodies_get_4xx_naming_the_field(budget, change, field):
    hub, name, envs = budget
    r = ask(envs["researcher1"], body(name, **change))
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and r.json()["message"].startswith(f"{field}: ")
    assert "allowed values" in r.json()["message"]


def test_nobody_asks_for_someone_elses_allocation(budget):
    hub, name, envs = budget
    # student1's own server token, naming researchers' account: not theirs to spend or read
    r = ask(envs["student1"], body(name))
    assert r.status_code == 403 and r.json()["field"] == "account", r.text
    assert "left" not in r.json()["message"] and "0.25" not in r.text
    # the admin (a service) and anonymous callers get nothing
    assert ask(envs["researcher1"], body(name), token=hub.token).status_code == 403
    assert ask(envs["researcher1"], body(name), token="").status_code in (401, 403)


def test_gpu_scale_up_the_hub_refuses_never_reaches_sbatch_and_a_small_one_does(budget, tmp_path, monkeypatch):
    from scip_jupyter.arc.cluster import ARCCluster

    hub, name, envs = budget
    for key in ("SCIP_LEDGER_URL", "SCIP_ALLOCATIONS_FILE", "JUPYTERHUB_SERVICE_NAME"):
        monkeypatch.delenv(key, raising=False)  # as in a server: only the hub can say
    for key in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"):
        monkeypatch.setenv(key, envs["researcher1"][key])
    monkeypatch.setenv("SCIP_ARC_REGISTRY", str(tmp_path / "arc-jobs.sqlite"))
    conf = os.environ["SLURM_CONF"]

    def cluster(walltime: str):
        transport = LocalTransport("local-slurm", slurm_conf=conf)
        return transport, ARCCluster(
            "local-slurm", presets=PRESETS, account=name, user_accounts=[name], gpu_type="h100", gpus=1,
            walltime=walltime, memory="256MiB", cores=1, transport=transport,
            tags=JobTags(user="researcher1", server="burst", project=name))

    transport, big = cluster("01:00:00")
    try:
        with pytest.raises(ARCRequestError) as refused:
            big.scale(3)
        assert refused.value.status == 403 and "group researchers" in str(refused.value)
        assert name in str(refused.value) and "at most 0 more jobs" in str(refused.value)
        assert big.last_error is not None and "up to 3 GPU-hours" in big.last_error.message
        time.sleep(big.coalesce_window * 5)  # nothing was scheduled either
        assert transport.calls["sbatch"] == 0 and not big.worker_spec
    finally:
        big.close()

    transport, small = cluster("00:15:00")
    try:
        small.scale(1)  # 0.25 GPU-hours: what is left
        deadline = time.monotonic() + 120
        while transport.calls["sbatch"] == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert transport.calls["sbatch"] == 1, small.last_error
        assert small.last_error is None
    finally:
        small.close()
    assert re.search(r"burst check for researcher1 .* -> refused", hub.log_path.read_text())


def test_adaptive_scaling_refused_by_the_hub_logs_one_line_and_never_reaches_sbatch(budget, tmp_path, monkeypatch):
    """cluster.adapt() on researcher1's server while the hub refuses: the hub is asked again and again,
    the notebook's log gets ONE line naming the allocation and what is left (no traceback per retry),
    and sbatch is never called."""
    from scip_jupyter.arc.cluster import ARCCluster
    from tests.unit.test_arc_adaptive_refusal import Records

    hub, name, envs = budget
    for key in ("SCIP_LEDGER_URL", "SCIP_ALLOCATIONS_FILE", "JUPYTERHUB_SERVICE_NAME"):
        monkeypatch.delenv(key, raising=False)
    for key in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"):
        monkeypatch.setenv(key, envs["researcher1"][key])
    monkeypatch.setenv("SCIP_ARC_REGISTRY", str(tmp_path / "arc-jobs.sqlite"))
    transport = LocalTransport("local-slurm", slurm_conf=os.environ["SLURM_CONF"])
    logs = Records("scip_jupyter.arc.cluster", "distributed.deploy.adaptive")
    refusals = re.compile(r"burst check for researcher1 .* -> refused")
    before = len(refusals.findall(hub.log_path.read_text()))
    cluster = ARCCluster(
        "local-slurm", presets=PRESETS, account=name, user_accounts=[name], gpu_type="h100", gpus=1,
        walltime="01:00:00", memory="256MiB", cores=1, transport=transport, submit_retry_after=0.2,
        tags=JobTags(user="researcher1", server="burst-adaptive", project=name))
    try:
        cluster.adapt(minimum=2, maximum=2, interval="100ms")
        deadline = time.monotonic() + 120
        while len(refusals.findall(hub.log_path.read_text())) < before + 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        asked = len(refusals.findall(hub.log_path.read_text())) - before
        assert asked >= 5, hub.log_tail()
        lines = logs.lines("refused, nothing was submitted")
        assert len(lines) == 1, lines
        assert "group researchers" in lines[0] and name in lines[0] and "GPU-hours left" in lines[0], lines[0]
        assert not [r for r in logs.records if r.exc_info or "encountered an error" in r.getMessage()]
        assert transport.calls["sbatch"] == 0 and not cluster.worker_spec
    finally:
        cluster.close()
        logs.close()
