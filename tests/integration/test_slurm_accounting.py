"""Slurm accounting on the real local Slurm (MariaDB + slurmdbd from scripts/slurm-local).

Accounts and associations from our config (`scip-jupyter arc accounts sync`), a foreign
account refused by our validator and by Slurm, GPU-hours from sacct into the ledger
(matching sacct's own figures within 1%, never counted twice), the same jobs and GPU-hours
from `sacct --json` and from `sacct --parsable` (crafted job names and comments included),
a sacct without --json found once and read parsable, and a scale-up the remaining GPU-hours
cannot cover refused before sbatch.

Each test module run uses its own Slurm account (`def-scip-<random>`), removed afterwards,
so other tests sharing this Slurm are not limited by its GrpTRES.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from scip_jupyter.allocations.burst import check_gpu_hours
from scip_jupyter.allocations.ledger import Ledger
from scip_jupyter.allocations.quotas import load_allocations
from scip_jupyter.allocations import usage_sacct
from scip_jupyter.allocations.usage_sacct import SacctReconciler, flavour_share
from scip_jupyter.arc.cluster import submit_error
from scip_jupyter.arc.presets import ARCRequestError, load_presets, validate_request
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import LocalTransport, SlurmCommandError
from scip_jupyter.cli import main as cli

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[2]
PRESETS = load_presets(ROOT / "hub_config" / "arc.yaml")
PRESET = PRESETS.get("local-slurm")


@pytest.fixture(scope="module")
def account(slurm_cluster, tmp_path_factory):
    """A fresh Slurm account for group `lab` (max 1 h100, 1 MIG slice, 1 GPU-hour), synced from config."""
    name = f"def-scip-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("accounting")
    path = folder / "allocations.yaml"
    path.write_text(yaml.safe_dump({
        "slurm": {"cluster": "local-slurm", "users": ["root", "scip-user"]},
        "groups": {"lab": {"max_gpus": {"h100": 1, "h100_1g.10gb": 1}, "gpu_hours": 1, "slurm_account": name}},
    }))
    yield name, path
    subprocess.run(["sacctmgr", "-i", "delete", "account", f"name={name}"], env=slurm_cluster.env,
                   capture_output=True, timeout=60)


def sync(path: Path, capsys, *extra: str) -> str:
    capsys.readouterr()
    assert cli(["arc", "accounts", "sync", "--allocations", str(path), *extra]) == 0
    return capsys.readouterr().out


def test_sync_creates_accounts_associations_and_grptres_once(slurm_cluster, account, capsys):
    name, path = account
    sync(path, capsys)
    assoc = slurm_cluster.run("sacctmgr", "-nP", "show", "assoc", "where", f"account={name}",
                              "format=account,user,grptres")
    rows = {tuple(line.split("|")) for line in assoc.splitlines()}
    assert (name, "", "gres/gpu:h100=1,gres/gpu:h100_1g.10gb=1") in rows
    assert {(name, "root", ""), (name, "scip-user", "")} <= rows
    # arc.yaml's "*": [def-demo] gives def-demo to allocations.yaml's slurm.users
    demo = slurm_cluster.run("sacctmgr", "-nP", "show", "assoc", "where", "account=def-demo", "format=user")
    assert {"root", "scip-user"} <= set(demo.split())
    assert "nothing to change" in sync(path, capsys)  # idempotent


def test_foreign_account_is_refused_by_our_validator_then_by_slurm(slurm_cluster, account, capsys):
    sync(account[1], capsys)
    foreign = f"def-nobody-{uuid.uuid4().hex[:6]}"
    with pytest.raises(ARCRequestError) as refused:
        validate_request(PRESET, {"account": foreign}, ["def-demo"])
    assert refused.value.field == "account" and "not one of your accounts" in str(refused.value)
    # If it gets through (a stale account list), Slurm itself refuses it: the person sees Slurm's words.
    transport = LocalTransport("local-slurm", slurm_conf=slurm_cluster.conf)
    with pytest.raises(SlurmCommandError) as slurm_said:
        transport.run_sync(["sbatch", "--parsable", f"--account={foreign}", "-p", "cpu", "-t", "1",
                            "-o", "/dev/null", "--wrap", "true"])
    message = submit_error("local-slurm", 1, slurm_said.value).message
    assert "Invalid account or account/partition combination specified" in message
    assert "your accounts" in message  # and what to check


def sacct_jobs(slurm_cluster, ids: list[str]) -> list[dict]:
    out = slurm_cluster.run("sacct", "--json", "-X", "-j", ",".join(ids))
    return json.loads(out)["jobs"]


def wait_finished(slurm_cluster, ids: list[str], expect: int, timeout: float = 120, tagged: bool = True) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = sacct_jobs(slurm_cluster, ids)
        states = [j["state"]["current"] for j in jobs]
        # Slurm stores a job's comment when it ends: wait for it too.
        if len(jobs) == expect and all(s not in ("PENDING", "RUNNING") for s in states) and (not tagged or all(
            (j.get("comment") or {}).get("job") for j in jobs
        )):
            return jobs
        time.sleep(1)
    pytest.fail(f"jobs {ids} did not finish within {timeout}s", pytrace=False)


def sacct_gpu_hours(job: dict) -> float:
    """sacct's own figure: allocated gres/gpu:<type> count × Elapsed, a MIG slice at its share."""
    hours = 0.0
    for tres in job["tres"]["allocated"]:
        if tres["type"] == "gres" and tres["name"].startswith("gpu:"):
            hours += tres["count"] * flavour_share(tres["name"][4:]) * job["time"]["elapsed"] / 3600
    return hours


def submit(slurm_cluster, *args: str) -> str:
    return slurm_cluster.run("sbatch", "--parsable", "-p", "gpu", "-t", "5", "-o", "/dev/null", *args).strip()


def test_reconciler_records_gpu_hours_matching_sacct_and_never_twice(slurm_cluster, account, capsys, tmp_path):
    name, path = account
    sync(path, capsys)
    server = f"t{uuid.uuid4().hex[:6]}"
    tags = JobTags(user="ana", server=server, project=name).comment()
    full = submit(slurm_cluster, f"--account={name}", "--gpus-per-node=h100:1", f"--comment={tags}", "--wrap", "sleep 4")
    mig = submit(slurm_cluster, f"--account={name}", "--gpus-per-node=h100_1g.10gb:1", "--array=0-1",
                 f"--comment={tags}", "--wrap", "sleep 3")
    untagged = submit(slurm_cluster, f"--account={name}", "--gpus-per-node=h100:1", "--wrap", "sleep 1")
    jobs = wait_finished(slurm_cluster, [full, mig], expect=3)
    wait_finished(slurm_cluster, [untagged], expect=1, tagged=False)

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    reconciler = SacctReconciler(ledger, PRESET, LocalTransport("local-slurm", slurm_conf=slurm_cluster.conf),
                                 load_allocations(path))
    first = reconciler.run()
    ours = {j.job_id: j for j in ledger.slurm_jobs() if j.server == server}
    assert len(ours) == 3 and untagged not in ours  # a job without our tags is not ours
    for job in jobs:
        key = f"{job['array']['job_id']}_{job['array']['task_id']}" if job["array"]["job_id"] else str(job["job_id"])
        record = ours[key]
        assert record.account == "group:lab" and record.user == "ana" and record.slurm_account == name
        ledger_hours = record.gpu_weight * (record.ended_at - record.started_at).total_seconds() / 3600
        assert ledger_hours == pytest.approx(sacct_gpu_hours(job), rel=0.01)
    assert first.new >= 3
    again = reconciler.run()  # a second read (or a restarted reconciler) counts nothing twice
    assert again.new == 0 and len([j for j in ledger.slurm_jobs() if j.server == server]) == 3
    # and the policy sees these GPU-hours in the group's account
    total = sum(sacct_gpu_hours(j) for j in jobs)
    window = (dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1))
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    held = [h for h in ledger.holdings({"group:lab"}, window[0]) if h.server.startswith("slurm:")]
    used = sum(h.gpu_hours(window, now) for h in held)
    assert used == pytest.approx(total, rel=0.01)
    ledger.dispose()


#: Text a job's owner chooses, as job names and comments: what must not shift a parsable column.
CRAFTED = [
    "a|b\nc\td",
    "ünïcødé 名前 ✓",
    # a whole forged record after a newline, in --parsable2's `|` columns, charging someone else's tags
    "x|y\n99999|root|def-other|COMPLETED|2026-12-01T09:00:00|2026-12-01T19:00:00|36000|gres/gpu:h100=8|"
    "scip.ca:user=victim,server=s",
]


def key_of(job: dict) -> str:
    return f"{job['array']['job_id']}_{job['array']['task_id']}" if job["array"]["job_id"] else str(job["job_id"])


def ledger_hours(record) -> float:
    return record.gpu_weight * (record.ended_at - record.started_at).total_seconds() / 3600


def test_json_and_parsable_sacct_give_the_same_jobs_and_gpu_hours_with_crafted_names_and_comments(
    slurm_cluster, account, capsys, tmp_path
):
    name, path = account
    sync(path, capsys)
    server = f"p{uuid.uuid4().hex[:6]}"
    tags = JobTags(user="ana", server=server, project=name).comment()
    ours, crafted_comments = [], {}
    for text in CRAFTED:  # ours with a crafted name; not ours with a crafted comment
        ours.append(submit(slurm_cluster, f"--account={name}", "--gpus-per-node=h100:1", f"--job-name={text}",
                           f"--comment={tags}", "--wrap", "sleep 2"))
        crafted_comments[submit(slurm_cluster, f"--account={name}", "--gpus-per-node=h100:1", "--job-name=plain",
                                f"--comment={text}", "--wrap", "sleep 1")] = text
    ours.append(submit(slurm_cluster, f"--account={name}", "--gpus-per-node=h100_1g.10gb:1", "--array=0-1",
                       f"--job-name={CRAFTED[0]}", f"--comment={tags}", "--wrap", "sleep 2"))
    jobs = wait_finished(slurm_cluster, ours, expect=len(CRAFTED) + 2)
    others = wait_finished(slurm_cluster, list(crafted_comments), expect=len(CRAFTED))
    keys = {key_of(j) for j in jobs + others}

    allocations = load_allocations(path)
    transport = LocalTransport("local-slurm", slurm_conf=slurm_cluster.conf)
    ledgers = {fmt: Ledger(f"sqlite:///{tmp_path / f'{fmt}.sqlite'}") for fmt in ("json", "parsable")}
    try:
        reconcilers = {fmt: SacctReconciler(ledgers[fmt], PRESET, transport, allocations, sacct_json=fmt == "json")
                       for fmt in ledgers}
        window = reconcilers["json"].window()
        read = {fmt: {j.job_id: j for j in r.read(*window) if j.job_id in keys} for fmt, r in reconcilers.items()}
        assert len(read["json"]) == len(keys) == len(CRAFTED) * 2 + 2
        assert read["parsable"] == read["json"]  # every field of every job: no column shifted, no record made
        assert {j: read["parsable"][j].comment for j in crafted_comments} == {
            j: read["json"][j].comment for j in crafted_comments}
        assert "99999" not in read["parsable"]
        assert sum(1 for a in transport.log if a[:2] == ["sacct", "--parsable"]) == 1
        assert sum(1 for a in transport.log if a[:2] == ["sacct", "--json"]) == 1

        for reconciler in reconcilers.values():
            reconciler.run()
        recorded = {fmt: {j.job_id: j for j in led.slurm_jobs() if j.server == server} for fmt, led in ledgers.items()}
        assert recorded["parsable"] == recorded["json"] and len(recorded["json"]) == len(CRAFTED) + 2
        for job in jobs:
            for fmt in ledgers:
                assert ledger_hours(recorded[fmt][key_of(job)]) == pytest.approx(sacct_gpu_hours(job), rel=0.01)
        totals = {fmt: sum(ledger_hours(r) for r in recorded[fmt].values()) for fmt in ledgers}
        assert totals["parsable"] == totals["json"] == pytest.approx(sum(sacct_gpu_hours(j) for j in jobs), rel=0.01)
        assert not any(r.user == "victim" for fmt in ledgers for r in ledgers[fmt].slurm_jobs())
    finally:
        for led in ledgers.values():
            led.dispose()


def test_a_sacct_without_json_is_found_once_and_read_parsable(slurm_cluster, account, capsys, tmp_path, monkeypatch):
    """An sacct from before Slurm 21.08 (a wrapper refusing --json with its words, the real sacct otherwise):
    the first read finds it and falls back, later reads (new reconcilers, as each usage round makes)
    go straight to --parsable, and the GPU-hours are sacct's own."""
    name, path = account
    sync(path, capsys)
    wrapper = tmp_path / "bin"
    wrapper.mkdir()
    real = shutil.which("sacct", path=slurm_cluster.env["PATH"])
    (wrapper / "sacct").write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do if [ "$a" = --json ]; then\n'
        "  echo \"sacct: unrecognized option '--json'\" >&2\n"
        "  echo 'Try \"sacct --help\" for more information' >&2; exit 1\n"
        "fi; done\n"
        f'exec {real} "$@"\n'
    )
    (wrapper / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper}:{os.environ['PATH']}")
    monkeypatch.setattr(usage_sacct, "SACCT_JSON", {})
    server = f"o{uuid.uuid4().hex[:6]}"
    job = submit(slurm_cluster, f"--account={name}", "--gpus-per-node=h100:1", f"--job-name={CRAFTED[2]}",
                 f"--comment={JobTags(user='ana', server=server, project=name).comment()}", "--wrap", "sleep 2")
    (finished,) = wait_finished(slurm_cluster, [job], expect=1)

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    transports = [LocalTransport("local-slurm", slurm_conf=slurm_cluster.conf) for _ in range(3)]
    try:
        results = [SacctReconciler(ledger, PRESET, t, load_allocations(path)).run() for t in transports]
        sacct_calls = [a for t in transports for a in t.log if a[0] == "sacct"]
        assert [a[1] for a in sacct_calls] == ["--json", "--parsable", "--parsable", "--parsable"]
        assert list(usage_sacct.SACCT_JSON.values()) == [False]
        # the shared Slurm holds other tests' tagged jobs too: the first read records them all, later ones none
        assert results[0].new >= 1 and results[1].new == results[2].new == 0  # never counted twice
        (row,) = [j for j in ledger.slurm_jobs() if j.server == server]
        assert row.job_id == job and row.account == "group:lab"
        assert ledger_hours(row) == pytest.approx(sacct_gpu_hours(finished), rel=0.01)
    finally:
        ledger.dispose()


def test_scale_up_the_remaining_gpu_hours_cannot_cover_is_refused_before_sbatch(
    slurm_cluster, account, capsys, tmp_path, monkeypatch
):
    name, path = account
    sync(path, capsys)
    allocations = load_allocations(path)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    request = validate_request(PRESET, {"account": name, "gpu_type": "h100", "gpus": 1, "walltime": "00:30:00"}, [name])
    check_gpu_hours(PRESET, request, 2, allocations=allocations, ledger=ledger)  # 2 × 0.5 h = 1 of 1 left: fits
    with pytest.raises(ARCRequestError) as refused:
        check_gpu_hours(PRESET, request, 3, allocations=allocations, ledger=ledger)
    text = str(refused.value)
    assert refused.value.field == "workers" and refused.value.status == 403
    assert "group lab" in text and name in text and "1 of 1 GPU-hours left this month" in text
    assert "up to 1.5 GPU-hours" in text and "at most 2 more jobs" in text

    # Through ARCCluster.scale: refused before any sbatch.
    from scip_jupyter.arc.cluster import ARCCluster

    monkeypatch.setenv("SCIP_ALLOCATIONS_FILE", str(path))
    monkeypatch.setenv("SCIP_LEDGER_URL", ledger.url)
    monkeypatch.setenv("SCIP_ARC_REGISTRY", str(tmp_path / "arc-jobs.sqlite"))
    transport = LocalTransport("local-slurm", slurm_conf=slurm_cluster.conf)
    cluster = ARCCluster("local-slurm", presets=PRESETS, account=name, user_accounts=[name], gpu_type="h100", gpus=1,
                         walltime="00:30:00", memory="256MiB", cores=1, transport=transport,
                         tags=JobTags(user="ana", server="budget", project=name))
    try:
        with pytest.raises(ARCRequestError) as scaled:
            cluster.scale(3)
        assert "GPU-hours left" in str(scaled.value)
        assert transport.calls["sbatch"] == 0
    finally:
        cluster.close()
        ledger.dispose()


def test_usage_service_killed_and_restarted_counts_each_job_once(slurm_cluster, account, capsys, tmp_path):
    """`scip-jupyter usage --watch` (the hub's scip-usage service) is killed with SIGKILL while a job
    runs; restarted, it closes that job's open interval at sacct's end and counts nothing twice."""
    import os
    import signal
    import sys

    from scip_jupyter.allocations.ledger import Ledger as L

    name, path = account
    sync(path, capsys)
    server = f"r{uuid.uuid4().hex[:6]}"
    tags = JobTags(user="ana", server=server, project=name).comment()
    job = submit(slurm_cluster, f"--account={name}", "--gpus-per-node=h100:1", f"--comment={tags}", "--wrap", "sleep 8")
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    env = {**os.environ, "SLURM_CONF": str(slurm_cluster.conf), "SCIP_ALLOCATIONS_FILE": str(path)}
    argv = [sys.executable, "-m", "scip_jupyter.cli", "usage", "--ledger", url, "--allocations", str(path),
            "--watch", "1"]

    def recorded():
        led = L(url)
        try:
            return [j for j in led.slurm_jobs() if j.job_id == job]
        finally:
            led.dispose()

    service = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (recorded() and recorded()[0].ended_at is None):
            time.sleep(0.5)
        rows = recorded()
        assert len(rows) == 1 and rows[0].ended_at is None, rows  # seen while running: an open interval
    finally:
        service.send_signal(signal.SIGKILL)
        service.wait(timeout=30)
    (finished,) = wait_finished(slurm_cluster, [job], expect=1)
    service = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (recorded() and recorded()[0].ended_at is not None):
            time.sleep(0.5)
    finally:
        service.terminate()
        service.wait(timeout=30)
    (row,) = recorded()
    hours = row.gpu_weight * (row.ended_at - row.started_at).total_seconds() / 3600
    assert hours == pytest.approx(sacct_gpu_hours(finished), rel=0.01)
