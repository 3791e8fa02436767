"""ARCCluster on the real local Slurm: workers, arrays, scale down, adapt, GPUs, TLS, no leftovers.

Every test tags its jobs with its own server name, so it only looks at its own
jobs while other tests use the same Slurm. `sbatch`/`scancel` are counted by
wrappers put first on PATH (they log, then exec the real command).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest
from dask.distributed import Client

from scip_jupyter.arc.cluster import ARCCluster
from scip_jupyter.arc.launcher import LauncherModel
from scip_jupyter.arc.presets import ARCRequestError, load_presets
from scip_jupyter.arc.registry import JobRegistry
from scip_jupyter.arc.tags import JobTags

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[2]
PRESETS = load_presets(ROOT / "hub_config" / "arc.yaml")
WORKER = dict(walltime="00:20:00", memory="256MiB", cores=1)


@pytest.fixture
def counted(tmp_path, monkeypatch, slurm_cluster):
    """Count sbatch/scancel calls with logging wrappers first on PATH; private job registry."""
    bindir, log = tmp_path / "bin", tmp_path / "slurm-calls.log"
    bindir.mkdir()
    for cmd in ("sbatch", "scancel"):
        real = shutil.which(cmd)
        wrapper = bindir / cmd
        wrapper.write_text(f'#!/bin/sh\necho "{cmd} $*" >> "{log}"\nexec "{real}" "$@"\n')
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("SCIP_ARC_REGISTRY", str(tmp_path / "arc-jobs.sqlite"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def calls(cmd: str) -> list[str]:
        if not log.exists():
            return []
        return [line[len(cmd) + 1:] for line in log.read_text().splitlines() if line.startswith(cmd + " ")]

    return calls


@pytest.fixture
def server():
    """A unique notebook-server name for this test's job tags."""
    return f"t{uuid.uuid4().hex[:8]}"


def tags_for(server: str) -> JobTags:
    return JobTags(user="pytest", server=server, project="def-demo", site="scip-local", jurisdiction="CA")


def make_cluster(server: str, **kwargs) -> ARCCluster:
    args = dict(WORKER, presets=PRESETS, tags=tags_for(server), user_accounts=["def-demo"])
    args.update(kwargs)
    return ARCCluster("local-slurm", **args)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)


def our_jobs(slurm_cluster, server: str) -> list[str]:
    return slurm_cluster.job_ids(comment_contains=f"server={server},")


def assert_no_jobs_left(slurm_cluster, server: str) -> None:
    wait_until(lambda: not our_jobs(slurm_cluster, server), 60, f"squeue to show no jobs of server {server}")


def worker_names(client: Client) -> set[str]:
    return {w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()}


def test_arc_cluster_reaches_two_workers_computes_and_leaves_no_jobs(slurm_cluster, counted, server, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token-must-not-leak")
    cluster = make_cluster(server)
    try:
        cluster.scale(2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            assert worker_names(client) == {"ARCCluster-0", "ARCCluster-1"}
            assert client.submit(sum, range(101)).result() == 5050
            assert sum(client.gather(client.map(lambda x: x * x, range(10)))) == 285
            # each worker is the array task its name says, and the hub token never reached the job
            envs = client.run(lambda: (os.environ.get("SLURM_ARRAY_TASK_ID"), os.environ.get("JUPYTERHUB_API_TOKEN")))
            assert sorted(envs.values()) == [("0", None), ("1", None)]
            assert len(our_jobs(slurm_cluster, server)) == 2
    finally:
        cluster.close()
    assert_no_jobs_left(slurm_cluster, server)
    assert len(counted("sbatch")) == 1


def test_scale_up_is_one_sbatch_array_and_scale_down_cancels_single_tasks(slurm_cluster, counted, server):
    cluster = make_cluster(server)
    try:
        cluster.scale(3)
        cluster.scale(6)  # within the coalescing window: the same submission
        tasks = wait_until(lambda: sorted(our_jobs(slurm_cluster, server)) if len(our_jobs(slurm_cluster, server)) == 6 else None,
                           60, "6 array tasks in squeue")
        sbatch = counted("sbatch")
        assert len(sbatch) == 1, sbatch
        assert "--array=0-5" in sbatch[0]
        array_ids = {t.split("_")[0] for t in tasks}
        assert len(array_ids) == 1
        job = array_ids.pop()
        assert sorted(tasks, key=lambda t: int(t.split("_")[1])) == [f"{job}_{i}" for i in range(6)]
        assert set(cluster.workers) == {f"ARCCluster-{i}" for i in range(6)}
        assert {cluster.workers[f"ARCCluster-{i}"].job_id for i in range(6)} == {f"{job}_{i}" for i in range(6)}

        cluster.scale(4)
        wait_until(lambda: len(our_jobs(slurm_cluster, server)) == 4, 60, "scale-down to 4 tasks")
        cancelled = " ".join(counted("scancel")).split()
        assert sorted(cancelled) == sorted(f"{job}_{i}" for i in range(6) if f"ARCCluster-{i}" not in cluster.worker_spec)
        assert len(cancelled) == 2 and all(c.startswith(f"{job}_") for c in cancelled)
        assert set(our_jobs(slurm_cluster, server)) <= set(tasks)
        assert len(counted("sbatch")) == 1

        # scaling up again reuses the free indices, in one new array
        cluster.scale(6)
        wait_until(lambda: len(our_jobs(slurm_cluster, server)) == 6, 60, "scale back up to 6 tasks")
        assert len(counted("sbatch")) == 2
        assert set(cluster.worker_spec) == {f"ARCCluster-{i}" for i in range(6)}
    finally:
        cluster.close()
    assert_no_jobs_left(slurm_cluster, server)


def test_jobs_are_recorded_while_alive_and_forgotten_after_close(slurm_cluster, counted, server):
    cluster = make_cluster(server)
    try:
        cluster.scale(2)
        wait_until(lambda: len(our_jobs(slurm_cluster, server)) == 2, 60, "2 array tasks")
        records = JobRegistry.default().jobs_for("pytest", server)
        assert len(records) == 1  # one array job, one record
        assert records[0].tags == tags_for(server) and records[0].preset == "local-slurm"
        assert our_jobs(slurm_cluster, server)[0].startswith(records[0].job_id + "_")
    finally:
        cluster.close()
    assert JobRegistry.default().jobs_for("pytest", server) == []
    assert_no_jobs_left(slurm_cluster, server)


def test_adaptive_scaling_submits_arrays_and_returns_to_zero(slurm_cluster, counted, server):
    cluster = make_cluster(server)
    try:
        cluster.adapt(minimum=0, maximum=3, interval="300ms", wait_count=2)
        with Client(cluster) as client:
            futures = client.map(lambda x: (time.sleep(0.5), x)[1], range(12))
            assert sum(client.gather(futures)) == 66
            assert wait_until(lambda: len(counted("sbatch")) >= 1, 10, "an adaptive submission")
            del futures
            wait_until(lambda: not cluster.worker_spec, 60, "adaptive scale-down to zero")
        assert all("--array=" in call for call in counted("sbatch"))
    finally:
        cluster.close()
    assert_no_jobs_left(slurm_cluster, server)


@pytest.mark.parametrize("gpu_type, gres", [("h100", "gres:gpu:h100:1"), ("h100_1g.10gb", "gres:gpu:h100_1g.10gb:1")])
def test_gpu_request_lands_as_slurm_gres(slurm_cluster, counted, server, gpu_type, gres):
    cluster = make_cluster(server, gpu_type=gpu_type, gpus=1)
    try:
        cluster.scale(1)
        task = wait_until(lambda: our_jobs(slurm_cluster, server), 60, "the GPU job in squeue")[0]
        shown = slurm_cluster.run("scontrol", "show", "job", task)
        assert f"TresPerNode={gres}" in shown, shown
        assert "Partition=gpu" in shown
    finally:
        cluster.close()
    assert_no_jobs_left(slurm_cluster, server)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"walltime": "8-00:00:00"}, "walltime"),
        ({"partition": "bigmem"}, "partition"),
        ({"gpu_type": "a100", "gpus": 1}, "gpu_type"),
        ({"account": "def-someone-else"}, "account"),
    ],
)
def test_request_breaking_the_preset_submits_nothing(slurm_cluster, counted, server, kwargs, field):
    with pytest.raises(ARCRequestError) as err:
        make_cluster(server, **kwargs)
    assert err.value.field == field
    assert counted("sbatch") == []


def test_scale_past_the_job_limit_is_refused_before_submitting(slurm_cluster, counted, server):
    cluster = make_cluster(server)
    try:
        with pytest.raises(ARCRequestError, match="each array task counts"):
            cluster.scale(1001)
        assert counted("sbatch") == []
    finally:
        cluster.close()


def test_workers_connect_back_over_tls_only(slurm_cluster, counted, server):
    cluster = make_cluster(server)
    try:
        cluster.scale(1)
        address = cluster.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
            addresses = [w for w in client.scheduler_info()["workers"]]
            assert addresses and all(a.startswith("tls://") for a in addresses)
        # without the cluster's credentials nobody gets in
        with pytest.raises(Exception):
            Client(address, timeout=3)
    finally:
        cluster.close()
    assert_no_jobs_left(slurm_cluster, server)


def test_local_slurm_preset_matches_the_running_cluster(slurm_cluster):
    preset = PRESETS.get("local-slurm")
    assert set(slurm_cluster.partitions) == set(preset.partitions)
    gres = slurm_cluster.run("sinfo", "-h", "-o", "%G")
    for gpu_type in preset.gpu_types:
        assert f"gpu:{gpu_type}:" in gres, gres


def test_workers_use_the_presets_contact_address(slurm_cluster, counted, server):
    """connect-back: the scheduler listens on listen_host, workers are told contact_host."""
    base = PRESETS.get("local-slurm")
    preset = base.model_copy(update={"network": base.network.model_copy(update={"contact_host": "localhost"})})
    presets = PRESETS.model_copy(update={"clusters": [preset]})
    cluster = make_cluster(server, presets=presets)
    try:
        contact = cluster.scheduler.contact_address
        assert contact.startswith("tls://localhost:")
        assert f" {contact} " in cluster.job_script()
        cluster.scale(1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
            assert client.submit(lambda: 7 * 6).result() == 42
        assert f" {contact} " in cluster.workers["ARCCluster-0"].job_script()
    finally:
        cluster.close()
    assert_no_jobs_left(slurm_cluster, server)


def launch_on_a_partition_slurm_lacks(server: str) -> LauncherModel:
    """A launcher for 2 workers on a partition the preset allows and the local Slurm does not have."""
    base = PRESETS.get("local-slurm")
    preset = base.model_copy(update={"partitions": [*base.partitions, "nowhere"]})
    presets = PRESETS.model_copy(update={"clusters": [preset]})
    m = LauncherModel(presets, accounts=lambda p: ["def-demo"], user="pytest", workers=2, partition="nowhere",
                      cluster_kwargs={"tags": tags_for(server), "walltime": "00:20:00", "memory": 256 * 2**20})
    m.launch()
    return m


def test_partition_slurm_rejects_reaches_the_launcher_and_nothing_hangs(slurm_cluster, counted, server):
    """The preset allows a partition Slurm does not have: sbatch fails for real, and
    the failure reaches `cluster.last_error` and the launcher instead of the event loop."""
    m = launch_on_a_partition_slurm_lacks(server)
    try:
        wait_until(lambda: m.phase == "failed", 60, "the launcher to show the rejected submission")
        error = m.cluster.last_error
        assert error.cluster == "local-slurm"
        assert "cluster 'local-slurm'" in m.message and "invalid partition specified: nowhere" in m.message
        assert "Check: " in m.message
        assert len(counted("sbatch")) == 1
        assert dict(m.cluster.worker_spec) == {}
        assert our_jobs(slurm_cluster, server) == []
    finally:
        m.shutdown()
    assert m.phase == "closed"


def test_scale_after_a_failed_submission_submits_again(slurm_cluster, counted, server, tmp_path, monkeypatch):
    """sbatch fails like an unreachable controller while a flag file exists; then Slurm is back."""
    flag, bindir = tmp_path / "controller-down", tmp_path / "failing-bin"
    flag.touch()
    bindir.mkdir()
    (bindir / "sbatch").write_text(
        f'#!/bin/sh\nif [ -e "{flag}" ]; then\n'
        '  echo "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)" >&2\n'
        f'  exit 1\nfi\nexec "{tmp_path / "bin" / "sbatch"}" "$@"\n'
    )
    (bindir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    seen = []
    cluster = make_cluster(server)
    cluster.add_submit_listener(seen.append)
    try:
        cluster.scale(1)
        wait_until(lambda: cluster.last_error is not None, 60, "the failed submission")
        assert "Slurm did not answer" in cluster.last_error.message
        assert "cluster 'local-slurm'" in cluster.last_error.message
        assert "scripts/slurm-local status" in cluster.last_error.check
        assert dict(cluster.worker_spec) == {}
        flag.unlink()
        cluster.scale(1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
            assert client.submit(lambda: 6 * 7).result() == 42
        assert cluster.last_error is None
        assert [e is None for e in seen] == [False, True]
        assert len(counted("sbatch")) == 1  # the failed call never reached the real sbatch
    finally:
        cluster.close()
    assert_no_jobs_left(slurm_cluster, server)


def test_a_french_notebook_reads_the_refusals_and_slurms_rejection_in_french(slurm_cluster, counted, server,
                                                                             monkeypatch):
    """LANG=fr_CA in the notebook's environment (as a French kernel has it): the validator's refusal
    and the real sbatch's rejection reach ARCCluster and the launcher in French; the field, the
    allowed values and what Slurm itself said are unchanged (issue 14)."""
    monkeypatch.setenv("LANG", "fr_CA.UTF-8")
    with pytest.raises(ARCRequestError) as err:
        make_cluster(server, walltime="8-00:00:00")
    assert err.value.field == "walltime"
    assert str(err.value).startswith("walltime : 8-00:00:00 dépasse le maximum de la grappe 'local-slurm' "
                                     "(7-00:00:00) ; valeurs permises : 03:00:00, ")
    assert err.value.allowed[-1] == "ou toute durée jusqu’à 7-00:00:00"
    assert counted("sbatch") == []

    m = launch_on_a_partition_slurm_lacks(server)
    try:
        wait_until(lambda: m.phase == "failed", 60, "the launcher to show the rejected submission")
        assert m.message.startswith("La soumission de 2 tâches de worker à la grappe 'local-slurm' a échoué à "), m.message
        assert "Slurm les a refusées (sbatch, code de sortie 1) : " in m.message
        assert "invalid partition specified: nowhere" in m.message  # Slurm's own words, as it said them
        assert "Vérifiez : la demande (compte, partition, type de GPU, durée, mémoire)" in m.message
        assert len(counted("sbatch")) == 1
        assert our_jobs(slurm_cluster, server) == []
    finally:
        m.shutdown()
    assert m.phase == "closed"
