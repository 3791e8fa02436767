"""Budgets while running, on the real hub with a compressed clock (30 budget-minutes per real second).

The group `researchers` has 4 GPU-hours this month. researcher1 holds a full H100 (1 GPU-hour per hour):
the `scip-gpu` service's budget watcher warns at 90 %, says "exhausted" with a deadline one (budget) hour
later, and then stops the server through the hub API, which runs the hub's post-stop hook: the ARC clean-up
cancels the server's Slurm job (a real job on the local Slurm, submitted as the person's account with the
server's tags). The notices are what the person reads, in English and French.
A course's budget is per student: student1's MIG slice, paid by a course of 1 GPU-hour per student, is
stopped the same way. Counted from the service's records, not timed. (The spawner's own start check runs on the real clock, so a
new start is not refused here; unit tests cover that check.)
"""

from __future__ import annotations

import json
import os
import pwd
import time

import pytest
import yaml

from scip_jupyter.arc.tags import JobTags
from scip_jupyter.culling.records import Records

pytestmark = [pytest.mark.hub, pytest.mark.slurm]

SPEED = 1800  # budget seconds per real second
ALLOCATIONS = {
    "period": "month",
    "unlisted": "allow",
    "groups": {"researchers": {"description": "budget test", "max_gpus": {"h100": 1}, "gpu_hours": 4}},
}
SETTINGS = {
    "GPUCulling": {"enabled": False},
    "BudgetWatcher": {"every": 0.5, "clock_speed": SPEED, "grace": 4 * 3600, "warn_fraction": 0.9},
}
WAIT = 180
#: A course of its own: each student may use 1 GPU-hour (a 1g.10gb slice: 7 hours of it).
COURSES = {"courses": [{
    "id": "gpu-budget", "title": "Budget test course", "instructors": ["instructor1"],
    "students": {"users": ["student1"], "groups": []}, "material": {"path": "material"},
    "profiles": ["mig-1g-10gb"], "allocation": {"gpu_hours_per_student": 1, "max_concurrent_servers": 0},
    "start": "2026-01-01", "end": "2030-12-31",
}]}


@pytest.fixture(scope="module")
def budget_hub(hub_factory):
    state = hub_factory.state_dir()
    quota = state / "budget-allocations.yaml"  # not allocations.yaml: start_hub writes its own there
    quota.write_text(yaml.safe_dump(ALLOCATIONS, sort_keys=False))
    quota.chmod(0o644)
    (state / "gpu.json").write_text(json.dumps(SETTINGS))
    (state / "material").mkdir()
    (state / "material" / "README.md").write_text("Budget test course\n")
    (state / "courses.yaml").write_text(yaml.safe_dump(COURSES, sort_keys=False))
    for path in (state / "material", state / "material" / "README.md", state / "courses.yaml"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    hub = hub_factory.start(state, name="gpu-budget-hub", courses_file=state / "courses.yaml", env={
        "SCIP_GPU_CONFIG": str(state / "gpu.json"), "SCIP_ALLOCATIONS_FILE": str(quota)})
    yield hub
    hub_factory.stop(hub)


def records_ledger(hub):
    from scip_jupyter.allocations.ledger import Ledger

    return Ledger(hub.ledger_url)


def submit_server_job(hub, slurm_cluster, user: str) -> str:
    """A held Slurm job tagged for user's default server, submitted as the account the server runs as."""
    pid = hub.user(user)["servers"][""]["state"]["pid"]
    account = pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name
    argv = ["sbatch", "--parsable", f"--comment={JobTags(user=user, server='').comment()}", "--job-name=budget-test",
            "-o", "/dev/null", "-D", "/tmp", "--time=00:05:00", "--hold", "--wrap", "sleep 300"]
    if os.geteuid() == 0:
        # the per-person account needs a Slurm association (slurm-local enforces them); idempotent
        base = os.environ.get("SCIP_SLURM_BASE_ACCOUNT", "def-demo")
        slurm_cluster.run("sacctmgr", "-i", "add", "user", account, f"Account={base}", check=False)
        argv = ["runuser", "-u", account, "--", *argv]
    return slurm_cluster.run(*argv).strip()


def test_exhausted_budget_warns_then_stops_the_gpu_server_after_the_grace(budget_hub, slurm_cluster):
    hub = budget_hub
    r = hub.api("POST", "/users/researcher1/server", json={"profile": "h100-full"})
    assert r.status_code in (201, 202), r.text
    hub.wait_for_server("researcher1")
    job = submit_server_job(hub, slurm_cluster, "researcher1")

    deadline = time.monotonic() + WAIT
    while "" in hub.user("researcher1").get("servers", {}) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "" not in hub.user("researcher1").get("servers", {}), f"the GPU server was never stopped\n{hub.log_tail()}"
    try:  # its Slurm job is cancelled by the stop (the hub's post-stop hook)
        while job in slurm_cluster.job_ids() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert job not in slurm_cluster.job_ids(), f"job {job} of the stopped server still queued\n{hub.log_tail()}"
    finally:
        slurm_cluster.run("scancel", job, check=False)

    records = Records(hub.ledger_url)
    notices = records.notices(user="researcher1")
    kinds = [n.kind for n in notices]
    assert kinds == ["budget-warning", "budget-exhausted", "budget-stop"], kinds
    warning, exhausted, stop = notices
    assert {n.account for n in notices} == {"group:researchers"}
    # the stop came after the grace, on the watcher's (compressed) clock
    assert stop.at >= exhausted.deadline and (exhausted.deadline - exhausted.at).total_seconds() == 4 * 3600
    assert stop.server == "" and warning.at <= exhausted.at

    # the person reads why, in their language
    r = hub.get("/services/scip-gpu/api/notices", params={"user": "researcher1", "lang": "fr"})
    assert r.status_code == 200, r.text
    texts = {n["kind"]: n["text"] for n in r.json()["notices"]}
    assert texts["budget-warning"] == "Votre allocation researchers a utilisé 90 % de ses heures-GPU."
    assert texts["budget-stop"].startswith("Votre serveur par défaut a été arrêté")
    r = hub.get("/services/scip-gpu/api/notices", params={"user": "researcher1"})
    assert "has no GPU-hours left" in {n["kind"]: n["text"] for n in r.json()["notices"]}["budget-exhausted"]

    # the stop released the ledger's holding (the spawner's stop ran)
    assert not [h for h in records_ledger(hub).active() if h.user == "researcher1"]
    status = hub.get("/services/scip-gpu/api/status").json()["budget"]
    assert status["stops"] == 1 and status["steps"] >= 3
    records.dispose()
    print(f"\nbudget: warned at {warning.at:%H:%M}, exhausted at {exhausted.at:%H:%M}, stopped at {stop.at:%H:%M} "
          f"(budget clock, {SPEED}x); {status['steps']} watcher steps, {status['stops']} stop")


def test_a_course_budget_stops_only_its_exhausted_students_slice(budget_hub):
    """Per course: student1's slice is paid by the course (1 GPU-hour per student), stopped when theirs is used."""
    hub = budget_hub
    r = hub.api("POST", "/users/student1/server", json={"profile": "mig-1g-10gb", "course": "gpu-budget"})
    assert r.status_code in (201, 202), r.text
    hub.wait_for_server("student1")
    deadline = time.monotonic() + WAIT
    while "" in hub.user("student1").get("servers", {}) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "" not in hub.user("student1").get("servers", {}), f"the course slice was never stopped\n{hub.log_tail()}"
    records = Records(hub.ledger_url)
    notices = records.notices(user="student1")
    assert [n.kind for n in notices] == ["budget-warning", "budget-exhausted", "budget-stop"]
    assert {n.account for n in notices} == {"course:gpu-budget"}
    stop = notices[-1]
    assert stop.at >= notices[1].deadline
    records.dispose()
    r = hub.get("/services/scip-gpu/api/notices", params={"user": "student1"})
    assert any(n["text"] == "Your server default was stopped: allocation gpu-budget has no GPU-hours left."
               for n in r.json()["notices"]), r.text


def test_a_person_reads_only_their_own_notices(budget_hub):
    hub = budget_hub
    s = hub.login("student1")
    r = s.get(hub.url + "/services/scip-gpu/api/notices", params={"user": "researcher1"})
    assert r.status_code == 403, r.status_code
    r = s.get(hub.url + "/services/scip-gpu/api/notices")  # their own: the course budget's notices
    assert r.status_code == 200 and r.json()["user"] == "student1", r.text
    assert {n["user"] for n in r.json()["notices"]} == {"student1"}
