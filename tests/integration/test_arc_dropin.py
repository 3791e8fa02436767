"""ARCCluster as a drop-in for SLURMCluster, on the real local Slurm.

1. Every SLURMCluster argument that changes what runs is exercised for real:
   `RUN_CHANGING` maps each to what it must change in the Slurm job
   (`scontrol show job`) or in the running worker; the others are listed in
   `NOT_RUN_CHANGING` with the reason. Both come from SLURMCluster's signature,
   so a new dask-jobqueue parameter is an unclassified row, and fails.
2. `job_script()` is byte for byte the script sbatch receives (captured on stdin).
3. SLURMCluster usage snippets from dask-jobqueue's documentation run
   unchanged but for the class name (and small resources: one core, ~1 GiB,
   short walltimes, two jobs at most, since the machine is small).

Every test tags its jobs with its own server name, and leaves none behind.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import dask.config
import pytest
from dask.distributed import Client
from distributed.security import Security

from scip_jupyter.arc.cluster import ARCCluster
from scip_jupyter.arc.compat import PARAMETERS, shipped_config
from scip_jupyter.arc.jobs import ARCJob
from scip_jupyter.arc.presets import load_presets
from scip_jupyter.arc.tags import JobTags
from tests.unit.test_arc_dropin import SIGNATURE

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[2]
PRESETS = load_presets(ROOT / "hub_config" / "arc.yaml")
START = 240  # seconds for workers to start on a busy 2-core machine


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def server(monkeypatch):
    """A unique notebook-server name: the tags of this test's jobs (also for clusters built with defaults)."""
    name = f"d{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", name)
    return name


@pytest.fixture
def submitted(tmp_path, monkeypatch, slurm_cluster):
    """sbatch wrapped first on PATH: every script it receives on stdin is kept; private registry and cache."""
    bindir, kept = tmp_path / "bin", tmp_path / "submitted"
    bindir.mkdir()
    kept.mkdir()
    real = shutil.which("sbatch")
    (bindir / "sbatch").write_text(
        f'#!/bin/sh\nf=$(mktemp "{kept}/script.XXXXXX")\ncat > "$f"\n'
        f'echo "$*" > "$f.argv"\nexec "{real}" "$@" < "$f"\n')
    (bindir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("SCIP_ARC_REGISTRY", str(tmp_path / "arc-jobs.sqlite"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SCIP_ARC_PRESETS", str(ROOT / "hub_config" / "arc.yaml"))

    def scripts() -> list[tuple[str, str]]:
        """(argv, script) of every sbatch call, in order."""
        files = sorted((f for f in kept.iterdir() if not f.name.endswith(".argv")), key=lambda p: p.stat().st_mtime_ns)
        return [(Path(f"{f}.argv").read_text().strip(), f.read_text()) for f in files]

    return scripts


def tags_for(server: str) -> JobTags:
    return JobTags(user="pytest", server=server, project="def-demo", site="scip-local", jurisdiction="CA")


def our_jobs(slurm_cluster, server: str) -> list[str]:
    return slurm_cluster.job_ids(comment_contains=f"server={server},")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)


def assert_no_jobs_left(slurm_cluster, server: str) -> None:
    wait_until(lambda: not our_jobs(slurm_cluster, server), 90, f"squeue to show no jobs of server {server}")


def scontrol_job(slurm_cluster, job_id: str) -> dict[str, str]:
    shown = slurm_cluster.run("scontrol", "show", "job", job_id)
    return dict(re.findall(r"(\w+)=(\S*)", shown))


# ---------------------------------------------------------------- what runs


def probe(dask_worker):
    """What a running worker sees (runs inside the Slurm job)."""
    import os
    import sys

    return {
        "env": {k: v for k, v in os.environ.items() if k.startswith("SCIP_DROPIN")},
        "python": sys.executable,
        "local_directory": dask_worker.local_directory,
        "death_timeout": dask_worker.death_timeout,
        "lifetime": getattr(dask_worker, "lifetime", None),
        "array_task": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "job": os.environ.get("SLURM_JOB_ID"),
    }


@dataclass
class Ran:
    """What one group's cluster ran: the cluster, its workers' view, Slurm's view of the first job."""

    cluster: ARCCluster
    workers: dict[str, dict[str, Any]]  # name -> probe()
    info: dict[str, Any]  # scheduler_info()["workers"] by address
    job: dict[str, str]  # scontrol show job of the first task
    tmp: Path

    @property
    def first(self) -> dict[str, Any]:
        return next(iter(self.workers.values()))


class EnvJob(ARCJob):
    """A user's Job class: adds a line to the script before the worker starts."""

    def job_script(self):
        return super().job_script().replace("\n/", "\nexport SCIP_DROPIN_JOB_CLS=yes\n/", 1)


def user_tls(folder: Path) -> Security:
    temp = Security.temporary()
    folder.mkdir(exist_ok=True)
    paths = {}
    for attr in ("tls_ca_file", "tls_scheduler_cert", "tls_scheduler_key", "tls_worker_cert", "tls_worker_key",
                 "tls_client_cert", "tls_client_key"):
        (folder / attr).write_text(getattr(temp, attr))
        (folder / attr).chmod(0o600)
        paths[attr] = str(folder / attr)
    return Security(**paths, require_encryption=True)


def with_prologue(*lines: str):
    preset = PRESETS.get("local-slurm").model_copy(update={"job_script_prologue": list(lines)})
    return PRESETS.model_copy(update={"clusters": [preset]})


PYTHON3 = str(Path(sys.executable).with_name("python3"))

#: Groups of arguments run together (each group is one cluster on the real Slurm).
GROUPS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "shape": lambda t: dict(
        presets=with_prologue('export SCIP_DROPIN_ORDER="${SCIP_DROPIN_ORDER}preset"'),
        job_script_prologue=['export SCIP_DROPIN_ORDER="${SCIP_DROPIN_ORDER},user"'],
        interface="lo", queue="cpu", account="def-demo", walltime="00:15:00", cores=1, memory="1GiB",
        job_name="dropin-shape", local_directory=str(t / "spill"), worker_extra_args=["--resources", "FOO=1"],
        job_extra_directives=["--nice=5"], log_directory=str(t / "logs"), python=PYTHON3, nanny=False,
        death_timeout=45, n_workers=1, name="dropin", shared_temp_directory=str(t / "shared"),
    ),
    "two-processes": lambda t: dict(
        cores=2, processes=2, memory="1GiB", job_cpu=2, job_mem="1500M", walltime="00:15:00",
        security=user_tls(t / "tls"), protocol="tls://",
    ),
    "script": lambda t: dict(
        memory="1GiB", walltime="00:15:00", scheduler_options={"interface": "lo"}, job_directives_skip=["--mem"],
        shebang="#!/bin/sh", worker_command="distributed.cli.dask_worker", config_name="arcsite", job_cls=EnvJob,
    ),
    "deprecated": lambda t: dict(
        memory="1GiB", walltime="00:15:00", project="def-demo", extra=["--resources", "OLD=1"],
        job_extra=["--nice=3"], env_extra=["export SCIP_DROPIN_OLD=yes"], header_skip=["--mem"],
    ),
}
#: Configuration the "script" group reads (config_name="arcsite").
ARCSITE = {"jobqueue.arcsite": {**shipped_config(), "job-script-prologue": [
    "export SCIP_DROPIN_ARCSITE=yes", 'export SCIP_DROPIN_SHELL="${BASH_VERSION:-not-bash}"']}}

#: SLURMCluster argument -> (group, what it must change in what runs).
RUN_CHANGING: dict[str, tuple[str, Callable[[Ran], bool]]] = {
    "job_script_prologue": ("shape", lambda r: r.first["env"]["SCIP_DROPIN_ORDER"] == "preset,user"),
    "interface": ("shape", lambda r: all(a.startswith("tls://127.0.0.1:") for a in r.info)
                  and r.cluster.scheduler.address.startswith("tls://127.0.0.1:")),
    "queue": ("shape", lambda r: r.job["Partition"] == "cpu"),
    "account": ("shape", lambda r: r.job["Account"] == "def-demo"),
    "walltime": ("shape", lambda r: r.job["TimeLimit"] == "00:15:00"),
    "cores": ("shape", lambda r: r.job["NumCPUs"] == "1" and all(w["nthreads"] == 1 for w in r.info.values())),
    "memory": ("shape", lambda r: r.job["MinMemoryNode"] == "1G"),
    "job_name": ("shape", lambda r: r.job["JobName"] == "dropin-shape"),
    "local_directory": ("shape", lambda r: r.first["local_directory"].startswith(str(r.tmp / "spill"))),
    "worker_extra_args": ("shape", lambda r: all(w["resources"] == {"FOO": 1} for w in r.info.values())),
    "job_extra_directives": ("shape", lambda r: r.job["Nice"] == "5"),
    "log_directory": ("shape", lambda r: r.job["StdOut"].startswith(str(r.tmp / "logs") + "/")),
    "python": ("shape", lambda r: r.first["python"] == PYTHON3),
    "nanny": ("shape", lambda r: all(w.get("nanny") is None for w in r.info.values())),
    "death_timeout": ("shape", lambda r: r.first["death_timeout"] == 45),
    "n_workers": ("shape", lambda r: len(r.workers) == 1 and r.first["array_task"] == "0"),
    "name": ("shape", lambda r: set(r.workers) == {"dropin-0"}),
    "shared_temp_directory": ("shape", lambda r: any((r.tmp / "shared").glob(".dask-jobqueue.worker.key.*"))),
    "processes": ("two-processes", lambda r: len(r.workers) == 2 and len({w["job"] for w in r.workers.values()}) == 1),
    "job_cpu": ("two-processes", lambda r: r.job["NumCPUs"] == "2"),
    "job_mem": ("two-processes", lambda r: r.job["MinMemoryNode"] == "1500M"),
    "security": ("two-processes", lambda r: r.cluster.security.tls_ca_file == str(r.tmp / "tls" / "tls_ca_file")
                 and all(a.startswith("tls://") for a in r.info)),
    "protocol": ("two-processes", lambda r: all(a.startswith("tls://") for a in r.info)),
    "scheduler_options": ("script", lambda r: r.cluster.scheduler.address.startswith("tls://127.0.0.1:")),
    "job_directives_skip": ("script", lambda r: r.job["MinMemoryCPU"] == "512M"),  # DefMemPerCPU, not --mem
    "shebang": ("script", lambda r: r.first["env"]["SCIP_DROPIN_SHELL"] == "not-bash"),
    "worker_command": ("script", lambda r: len(r.workers) == 1),
    "config_name": ("script", lambda r: r.first["env"].get("SCIP_DROPIN_ARCSITE") == "yes"),
    "job_cls": ("script", lambda r: r.first["env"].get("SCIP_DROPIN_JOB_CLS") == "yes"),
    "project": ("deprecated", lambda r: r.job["Account"] == "def-demo"),
    "extra": ("deprecated", lambda r: all(w["resources"] == {"OLD": 1} for w in r.info.values())),
    "job_extra": ("deprecated", lambda r: r.job["Nice"] == "3"),
    "env_extra": ("deprecated", lambda r: r.first["env"].get("SCIP_DROPIN_OLD") == "yes"),
    "header_skip": ("deprecated", lambda r: r.job["MinMemoryCPU"] == "512M"),
}
#: SLURMCluster arguments that do not change what runs in Slurm, and why.
NOT_RUN_CHANGING = {
    "loop": "the event loop of this process",
    "asynchronous": "how this process awaits the cluster",
    "silence_logs": "log level of this process",
    "scheduler_cls": "the scheduler's class, in this process",
    "dashboard_address": "refused (as by SLURMCluster)",
    "host": "refused (as by SLURMCluster)",
}


def test_every_slurmcluster_parameter_is_classified_for_the_real_run():
    assert set(SIGNATURE) == set(RUN_CHANGING) | set(NOT_RUN_CHANGING), (
        f"unclassified: {sorted(set(SIGNATURE) - set(RUN_CHANGING) - set(NOT_RUN_CHANGING))}")
    assert set(PARAMETERS) == set(SIGNATURE)


@pytest.fixture(scope="module")
def ran(tmp_path_factory, slurm_cluster):
    """Runs each group once, lazily, on the real Slurm; cleans up every job."""
    results: dict[str, Ran] = {}

    def run(group: str) -> Ran:
        if group in results:
            if isinstance(results[group], BaseException):
                pytest.fail(f"group {group!r} failed to run: {results[group]!r}", pytrace=False)
            return results[group]
        tmp = tmp_path_factory.mktemp(group)
        (tmp / "shared").mkdir()
        server = f"d{uuid.uuid4().hex[:8]}"
        env = {"SCIP_ARC_REGISTRY": str(tmp / "arc-jobs.sqlite"), "XDG_CACHE_HOME": str(tmp / "cache")}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        kwargs = dict(presets=PRESETS, tags=tags_for(server), user_accounts=["def-demo"], user="pytest")
        kwargs.update(GROUPS[group](tmp))
        try:
            with dask.config.set(ARCSITE):  # as a jobqueue.yaml would: there for the cluster's whole life
                return _run_group(group, tmp, server, kwargs)
        except BaseException as exc:
            results[group] = exc
            raise
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)

    def _run_group(group, tmp, server, kwargs) -> Ran:
        cluster = ARCCluster("local-slurm", **kwargs)
        try:
            if not cluster.request.workers:
                cluster.scale(1)
            expected = cluster.request.processes
            with Client(cluster) as client:
                client.wait_for_workers(expected, timeout=START)
                info = client.scheduler_info(n_workers=-1)["workers"]
                probes = client.run(probe)
                workers = {info[a]["name"]: probes[a] for a in info}
                task = next(iter(cluster.workers.values())).job_id
                job = scontrol_job(slurm_cluster, task)
            results[group] = Ran(cluster=cluster, workers=workers, info=info, job=job, tmp=tmp)
        finally:
            cluster.close()
        assert_no_jobs_left(slurm_cluster, server)
        return results[group]

    return run


@pytest.mark.parametrize("name", [n for n in SIGNATURE if n not in NOT_RUN_CHANGING])
def test_argument_changes_what_runs_on_real_slurm(name, ran):
    assert name in RUN_CHANGING, f"SLURMCluster parameter {name!r} has no real-Slurm check"
    group, check = RUN_CHANGING[name]
    result = ran(group)
    assert check(result), (name, result.job, result.workers, result.info and next(iter(result.info.values())))


@pytest.mark.parametrize("line, gres", [("--gres=gpu:h100_1g.10gb:1", "gres:gpu:h100_1g.10gb:1"),
                                         ("--gpus-per-node=h100:2", "gres:gpu:h100:2")])
def test_gpu_lines_from_slurmcluster_code_become_the_validated_gpu_request(slurm_cluster, submitted, server, line, gres):
    """dask-jobqueue users ask for GPUs with job_extra_directives: ARCCluster reads them as gpus/gpu_type
    (validated, the preset's directive style, the GPU partition) instead of passing them around the preset."""
    cluster = ARCCluster("local-slurm", presets=PRESETS, tags=tags_for(server), user_accounts=["def-demo"],
                         memory="512MiB", walltime="00:10:00", job_extra_directives=[line])
    try:
        cluster.scale(1)
        task = wait_until(lambda: our_jobs(slurm_cluster, server), 90, "the GPU job in squeue")[0]
        job = scontrol_job(slurm_cluster, task)
        assert job["TresPerNode"] == gres and job["Partition"] == "gpu"
        script = submitted()[0][1]
        asked = [d for d in script.splitlines() if re.match(r"#SBATCH (-p|--gres|--gpus)", d)]
        assert asked == ["#SBATCH -p gpu", f"#SBATCH --gpus-per-node={gres.split(':', 2)[2]}"]
    finally:
        cluster.close()
    assert_no_jobs_left(slurm_cluster, server)


# ---------------------------------------------------------------- job_script() is what sbatch receives


@pytest.mark.parametrize("array", [True, False], ids=["array", "one-job-per-worker"])
def test_job_script_is_byte_for_byte_what_sbatch_receives(slurm_cluster, submitted, server, array):
    cluster = ARCCluster("local-slurm", presets=PRESETS, tags=tags_for(server), user_accounts=["def-demo"],
                         array=array, cores=1, memory="512MiB", walltime="00:10:00",
                         job_script_prologue=["echo from-the-user"])
    try:
        expected = cluster.job_script(workers=2)
        cluster.scale(2)
        wait_until(lambda: len(our_jobs(slurm_cluster, server)) == 2, 90, "2 jobs in squeue")
        calls = submitted()
        if array:
            assert calls == [("--parsable --array=0-1", expected)]
        else:
            assert len(calls) == 2 and expected in [script for _, script in calls]
    finally:
        cluster.close()
    assert_no_jobs_left(slurm_cluster, server)


# ---------------------------------------------------------------- dask-jobqueue's documentation, unchanged


def as_arc(snippet: str) -> str:
    """The one change a migrating user makes: the class (and the module it comes from)."""
    code = textwrap.dedent(snippet)
    code = code.replace("from dask_jobqueue import SLURMCluster", "from scip_jupyter.arc import ARCCluster")
    return code.replace("SLURMCluster", "ARCCluster")


#: From dask-jobqueue's documentation (SLURMCluster's docstring, clusters-overview.rst,
#: clusters-configuration-setup.rst, clusters-advanced-tips-and-tricks.rst); resources made small.
SNIPPETS = {
    "docstring": """
        from dask_jobqueue import SLURMCluster
        cluster = SLURMCluster(
            queue='cpu',
            account="def-demo",
            cores=1,
            memory="1 GiB"
        )
        cluster.scale(jobs=2)  # ask for 2 jobs

        from dask.distributed import Client
        client = Client(cluster)

        cluster.adapt(maximum_jobs=2)
    """,
    "configuration-file": """
        from dask_jobqueue import SLURMCluster
        cluster = SLURMCluster()
        cluster.scale(jobs=2)    # Deploy two single-node jobs

        from dask.distributed import Client
        client = Client(cluster)  # Connect this local process to remote workers

        cluster.adapt(minimum_jobs=1, maximum_jobs=2)  # auto-scale between 1 and 2 jobs
        cluster.adapt(maximum_memory="2 GiB")  # or use core/memory limits
    """,
    "prologue-and-skip": """
        from dask_jobqueue import SLURMCluster
        job_script_prologue = ['cd {tmp}', 'source {venv}/bin/activate']
        cluster = SLURMCluster(cores=1, memory="1GB", log_directory='logs', python='python3',
                               job_script_prologue=job_script_prologue,
                               job_directives_skip=['--mem', 'another-string'])
        print(cluster.job_script())
        cluster.scale(jobs=1)

        from dask.distributed import Client
        client = Client(cluster)
    """,
    "lifetime-adaptive": """
        from dask_jobqueue import SLURMCluster
        cluster = SLURMCluster(
            walltime="00:20:00",
            cores=1,
            memory="1gb",
            worker_extra_args=["--lifetime", "15m", "--lifetime-stagger", "1m"],
        )
        cluster.adapt(minimum=0, maximum=2)

        from dask.distributed import Client
        client = Client(cluster)
    """,
}
#: jobqueue.yaml of the "configuration-file" snippet (clusters-configuration-setup.rst).
SNIPPET_CONFIG = {"configuration-file": {"jobqueue.slurm.cores": 1, "jobqueue.slurm.memory": "1GiB",
                                         "jobqueue.slurm.queue": "cpu", "jobqueue.slurm.walltime": "00:20:00"}}


@pytest.mark.parametrize("snippet", sorted(SNIPPETS))
def test_documented_slurmcluster_usage_runs_with_arccluster(snippet, slurm_cluster, submitted, server, tmp_path,
                                                            monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = as_arc(SNIPPETS[snippet].replace("{tmp}", str(tmp_path)).replace("{venv}", str(ROOT / ".venv")))
    assert "SLURMCluster" not in code and "ARCCluster(" in code
    namespace: dict[str, Any] = {}
    with dask.config.set(SNIPPET_CONFIG.get(snippet, {})):
        try:
            exec(compile(code, f"<dask-jobqueue docs: {snippet}>", "exec"), namespace)
            client, cluster = namespace["client"], namespace["cluster"]
            futures = client.map(lambda x: x * x, range(10))
            assert sum(client.gather(futures)) == 285
            assert our_jobs(slurm_cluster, server) or cluster.workers
            if snippet == "lifetime-adaptive":
                lifetimes = client.run(lambda dask_worker: dask_worker.lifetime)
                assert lifetimes and all(15 * 60 - 60 <= v <= 15 * 60 + 60 for v in lifetimes.values())
            if snippet == "prologue-and-skip":
                printed = capsys.readouterr().out
                assert f"cd {tmp_path}\nsource {ROOT / '.venv'}/bin/activate\n" in printed
                assert "--mem=" not in printed
                assert (tmp_path / "logs").is_dir()
                cwd = client.run(os.getcwd)
                assert set(cwd.values()) == {str(tmp_path)}
        finally:
            if "client" in namespace:
                namespace["client"].close()
            if "cluster" in namespace:
                namespace["cluster"].close()
    assert all("#SBATCH --array=" in script for _, script in submitted())
    assert_no_jobs_left(slurm_cluster, server)
