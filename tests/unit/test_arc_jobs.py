"""ARC job scripts: snapshots, GPU directives, lifetimes, tags, arrays, no secrets.

Snapshots live in tests/unit/snapshots/arc/<case>.sh. After an intended change,
regenerate with SCIP_UPDATE_SNAPSHOTS=1 and review the diff.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from distributed.security import Security

from scip_jupyter.arc.jobs import ARCJob, ArrayBatcher, array_spec, gpu_directive, job_settings, lifetime_args
from scip_jupyter.arc.presets import ValidRequest, load_presets, parse_walltime, validate_request
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import LocalTransport, clean_environment
from tests.fixtures.common import assert_matches_snapshot

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).parent / "snapshots" / "arc"
PRESETS = load_presets(ROOT / "hub_config" / "arc.yaml")
TAGS = JobTags(user="alice", server="lab", project="def-alice", site="scip-local", jurisdiction="CA")
SCHEDULER = "tls://10.0.0.5:8786"
PYTHON = "/opt/scip/.venv/bin/python"
LOGS = "/home/alice/.cache/scip-jupyter/arc-logs"
TLS = Security(
    tls_ca_file="/home/alice/.cache/scip-jupyter/arc-tls/ca.pem",
    tls_worker_cert="/home/alice/.cache/scip-jupyter/arc-tls/worker.pem",
    tls_worker_key="/home/alice/.cache/scip-jupyter/arc-tls/worker.key",
)


def build_job(preset_name="local-slurm", request=None, *, array=True, name="ARCCluster-3", security=None,
              accounts=("def-demo", "def-alice"), preset=None):
    preset = preset or PRESETS.get(preset_name)
    valid = validate_request(preset, request or {}, list(accounts))
    settings = job_settings(preset, valid, TAGS, log_directory=LOGS)
    transport = LocalTransport(preset.name)
    return ARCJob(
        SCHEDULER, name=name, transport=transport,
        batcher=ArrayBatcher(transport) if array else None, worker_prefix="ARCCluster",
        python=PYTHON, security=security, protocol="tls://" if security else None, **settings,
    )


CASES = {
    "local-cpu-array": dict(request={"walltime": "01:00:00", "memory": "512MiB"}),
    "local-h100x2": dict(request={"gpus": 2, "walltime": "12:00:00", "cores": 8, "memory": "32GiB"}),
    "local-mig-slice": dict(request={"gpu_type": "h100_1g.10gb", "walltime": "03:00:00"}),
    "local-mem-per-gpu": dict(request={"gpus": 1, "memory_per_gpu": "40GiB"}),
    "local-single-job": dict(request={"walltime": "00:30:00"}, array=False, name="ARCCluster-7"),
    "local-two-processes": dict(request={"cores": 4, "processes": 2, "memory": "8GiB"}),
    "local-tls": dict(request={}, security=TLS),
    "fir-mig-3g": dict(preset_name="fir", request={"gpu_type": "h100_3g.40gb", "account": "def-alice"}),
    "narval-gres-a100": dict(
        preset=PRESETS.get("narval").model_copy(update={"gpu_directive": "gres"}),
        request={"gpus": 4, "account": "rrg-alice", "walltime": "3-00:00:00"}, accounts=("rrg-alice",),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_job_script_matches_snapshot(case):
    assert_matches_snapshot(build_job(**CASES[case]).job_script(), SNAPSHOTS / f"{case}.sh")


def directives(script: str) -> list[str]:
    return [line[len("#SBATCH "):] for line in script.splitlines() if line.startswith("#SBATCH ")]


@pytest.mark.parametrize(
    "style, gpu_type, n, line",
    [
        ("gpus-per-node", "h100", 1, "--gpus-per-node=h100:1"),
        ("gpus-per-node", "nvidia_h100_80gb_hbm3_1g.10gb", 1, "--gpus-per-node=nvidia_h100_80gb_hbm3_1g.10gb:1"),
        ("gres", "a100", 4, "--gres=gpu:a100:4"),
    ],
)
def test_gpu_directive_uses_the_preset_style(style, gpu_type, n, line):
    assert gpu_directive(style, gpu_type, n) == line


def test_gpu_job_asks_for_its_gpus_once_and_in_the_gpu_partition():
    lines = directives(build_job(request={"gpus": 2}).job_script())
    assert [d for d in lines if "gpu" in d] == ["-p gpu", "--gpus-per-node=h100:2"]


def test_mem_per_gpu_never_comes_with_mem():
    lines = directives(build_job(request={"gpus": 1, "memory_per_gpu": "40GiB"}).job_script())
    assert "--mem-per-gpu=40G" in lines
    assert not [d for d in lines if d.startswith("--mem=")]


def test_cpu_job_keeps_its_memory_request():
    lines = directives(build_job(request={"memory": "3GiB"}).job_script())
    assert "--mem=3G" in lines and not [d for d in lines if "gpu" in d]


@pytest.mark.parametrize("walltime", ["00:02:00", "00:10:00", "01:00:00", "12:00:00", "7-00:00:00"])
def test_worker_lifetime_ends_before_the_walltime(walltime):
    seconds = parse_walltime(walltime)
    args = lifetime_args(seconds)
    lifetime, stagger = int(args[1].rstrip("s")), int(args[3].rstrip("s"))
    assert 0 < lifetime + stagger < seconds
    assert seconds - (lifetime + stagger) <= 300  # a few minutes, no more
    script = build_job(request={"walltime": walltime}).job_script()
    assert f"--lifetime {args[1]} --lifetime-stagger {args[3]}" in script
    assert f"-t {walltime}" in directives(script)


def test_spill_directory_is_slurm_tmpdir_when_the_job_has_one():
    assert "--local-directory ${SLURM_TMPDIR:-/tmp}" in build_job().job_script()


def test_every_job_is_tagged_with_user_server_and_project():
    lines = directives(build_job().job_script())
    comment = next(d for d in lines if d.startswith("--comment="))
    assert JobTags.from_comment(comment.split("=", 1)[1]) == TAGS
    assert "-J scip-dask-worker-alice-lab" in lines


def test_array_task_names_its_worker_from_the_task_id():
    job = build_job(name="ARCCluster-12")
    assert job.array_index == 12 and job.name == "ARCCluster-12"
    assert "--name ARCCluster-${SLURM_ARRAY_TASK_ID}" in job.job_script()
    # one script for every task: the index is not baked in
    assert build_job(name="ARCCluster-0").job_script() == job.job_script()


def test_single_job_names_its_worker_directly():
    job = build_job(array=False, name="ARCCluster-7")
    assert job.array_index is None
    assert "--name ARCCluster-7 " in job.job_script()


def test_tls_material_is_referenced_by_path_only():
    script = build_job(security=TLS).job_script()
    assert "--tls-key /home/alice/.cache/scip-jupyter/arc-tls/worker.key" in script
    assert "BEGIN" not in script


@pytest.mark.parametrize(
    "indices, spec",
    [([0], "0"), ([0, 1, 2, 3], "0-3"), ([7, 3, 4, 5, 9], "3-5,7,9"), ([2, 2, 3], "2-3")],
)
def test_array_spec_compresses_runs(indices, spec):
    assert array_spec(indices) == spec


def test_hub_token_never_reaches_sbatch():
    env = clean_environment({"PATH": "/usr/bin", "JUPYTERHUB_API_TOKEN": "s3cret", "JPY_API_TOKEN": "s3cret",
                             "AWS_SECRET_ACCESS_KEY": "k", "SLURM_CONF": "/etc/slurm/slurm.conf"})
    assert env == {"PATH": "/usr/bin", "SLURM_CONF": "/etc/slurm/slurm.conf"}


async def test_cluster_job_script_holds_no_secrets(tmp_path, monkeypatch):
    """The cluster writes its temporary TLS credentials to private files; the script only names them."""
    from scip_jupyter.arc.cluster import ARCCluster

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token-0123456789")
    async with ARCCluster(
        "local-slurm", presets=PRESETS, user="alice", user_accounts=["def-demo"], asynchronous=True
    ) as cluster:
        script = cluster.job_script()
        assert "BEGIN" not in script and "hub-token" not in script
        paths = re.findall(r"--tls-(?:ca-file|cert|key) (\S+)", script)
        assert len(paths) == 3
        for p in paths:
            mode = stat.S_IMODE(os.stat(p).st_mode)
            assert mode & 0o077 == 0, f"{p} is readable by others ({oct(mode)})"
        assert stat.S_IMODE(os.stat(tmp_path / "cache" / "scip-jupyter" / "arc-tls").st_mode) == 0o700
        assert cluster.scheduler.address.startswith("tls://127.0.0.1:")


def test_valid_request_counts_jobs_per_process():
    r = ValidRequest(preset="x", account="def-a", partition=None, gpu_type=None, gpus=0, memory_per_gpu=None,
                     walltime_seconds=3600, cores=4, memory=2**30, processes=2, workers=5)
    assert r.jobs == 3
