"""In-job network mode end to end on the real local Slurm.

Scheduler, client and workers run inside ONE multi-task Slurm job (srun,
dask-jobqueue's SLURMRunner); the notebook side submits one `sbatch` through
the transport (script on stdin), monitors with `squeue`, cancels with
`scancel`, and reads results from the files the job writes — no `sacct`.
"""

from __future__ import annotations

import time

import pytest

from scip_jupyter.arc.injob import InJobFailed, InJobRun
from scip_jupyter.arc.presets import NetworkConfig, PresetFile, load_default_presets
from scip_jupyter.arc.registry import JobRegistry
from scip_jupyter.arc.states import Phase
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import LocalTransport

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def presets(slurm_cluster):
    local = load_default_presets().get("local-slurm")
    injob = local.model_copy(update={"name": "local-injob", "network": NetworkConfig(mode="in-job")})
    return PresetFile(clusters=[injob])


@pytest.fixture
def make_run(presets, tmp_path, slurm_cluster):
    transport = LocalTransport("local-injob", slurm_conf=str(slurm_cluster.conf))
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    runs = []

    def make(func=None, **kwargs):
        run = InJobRun(
            func, preset="local-injob", presets=presets, transport=transport, registry=registry,
            user="h2-injob", tags=JobTags(user="h2-injob", server=f"t{len(runs)}"), base_dir=str(tmp_path / "runs"),
            walltime="00:10:00", **kwargs,
        )  # fmt: skip
        runs.append(run)
        return run

    make.transport, make.registry = transport, registry
    yield make
    for run in runs:  # never leave a job behind, whatever the test did
        if run.job_id:
            slurm_cluster.run("scancel", run.job_id, check=False)


def squares_on_workers(n, client):
    futures = client.map(lambda x: x * x, range(n))
    workers = sorted(str(w["name"]) for w in client.scheduler_info()["workers"].values())
    return sum(client.gather(futures)), workers


def wait_until_gone(slurm_cluster, job_id, tries=60):
    for _ in range(tries):
        if job_id not in slurm_cluster.job_ids():
            return True
        time.sleep(0.5)
    return False


def test_function_runs_on_workers_inside_one_job(make_run, slurm_cluster):
    run = make_run(squares_on_workers, args=(10,), workers=2)
    job_id = run.submit()
    total, workers = run.result(timeout=180)
    assert total == sum(x * x for x in range(10))
    assert workers == ["2", "3"]  # SLURMRunner names workers by their task rank: 0 scheduler, 1 client
    assert make_run.transport.calls["sbatch"] == 1
    assert make_run.transport.calls["sacct"] == 0
    assert run.status().phase is Phase.COMPLETED
    assert make_run.registry.all() == []  # finished runs are forgotten
    assert wait_until_gone(slurm_cluster, job_id)


def test_script_mode_sets_result(make_run):
    run = make_run(script="result = client.submit(sum, [1, 2, 3]).result() * 10", workers=1)
    run.submit()
    assert run.result(timeout=180) == 60


def test_exception_in_the_job_comes_back_as_a_clear_failure(make_run):
    def broken(client):
        return client.submit(lambda: 1 / 0).result()

    run = make_run(broken, workers=1)
    run.submit()
    with pytest.raises(InJobFailed, match="ZeroDivisionError") as err:
        run.result(timeout=180)
    assert run.job_id in str(err.value)
    assert run.status().phase is Phase.FAILED


def test_cancel_stops_the_job(make_run, slurm_cluster):
    def forever(client):
        import time

        time.sleep(600)

    run = make_run(forever, workers=1)
    job_id = run.submit()
    assert make_run.registry.jobs_for("h2-injob", run.spec.tags.server)[0].job_id == job_id
    for _ in range(240):  # until the client task reports that the Dask cluster runs
        if run.status().progress == "running":
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"in-job run never reached 'running': {run.status()}")
    run.cancel()
    assert run.status().phase is Phase.CANCELLED
    with pytest.raises(InJobFailed, match="cancelled"):
        run.result(timeout=30)
    assert wait_until_gone(slurm_cluster, job_id)
    assert make_run.registry.all() == []
