"""ARCCluster as a drop-in for SLURMCluster: every keyword argument, dask-jobqueue's configuration, exact scripts.

The rows come from the signatures of `JobQueueCluster`, `SLURMJob` and `Job`
(what `SLURMCluster(...)` accepts): a parameter a new dask-jobqueue adds shows
up as a row without a case, and that row fails. Each case builds a real
ARCCluster (scheduler included) and checks the script it would submit; the
arguments that change what runs are run again on the real local Slurm in
tests/integration/test_arc_dropin.py (`RUN_CHANGING` says which).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import dask.config
import pytest
from dask_jobqueue.core import Job
from dask_jobqueue.slurm import SLURMCluster, SLURMJob
from distributed import Scheduler
from distributed.security import Security
from distributed.utils import LoopRunner

from scip_jupyter.arc.cluster import ARCCluster
from scip_jupyter.arc.compat import PARAMETERS, REFUSED, compose, shipped_config, user_settings
from scip_jupyter.arc.jobs import ARCJob
from scip_jupyter.arc.presets import ARCRequestError, load_presets
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import Transport
from scip_jupyter.i18n import load_catalog, use_locale

ROOT = Path(__file__).resolve().parents[2]
PRESETS = load_presets(ROOT / "hub_config" / "arc.yaml")
TAGS = JobTags(user="alice", server="lab", project="def-demo", site="scip-local", jurisdiction="CA")


def slurmcluster_parameters() -> list[str]:
    """Every keyword argument SLURMCluster(...) takes: the cluster's own and, through **job_kwargs, its job's."""
    names: list[str] = []
    jobs = [k.__init__ for k in SLURMCluster.job_cls.__mro__ if issubclass(k, Job) and "__init__" in vars(k)]
    for fn, skip in ((SLURMCluster, set()), *((j, {"scheduler", "name"}) for j in jobs)):
        for p in inspect.signature(fn).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in skip:
                continue
            if p.name not in names:
                names.append(p.name)
    return names


SIGNATURE = slurmcluster_parameters()


class RecordingSlurm(Transport):
    """Answers sbatch with job ids and keeps what was submitted (argv and the script on stdin)."""

    kind = "local"

    def __init__(self):
        super().__init__("local-slurm", hint="scripts/slurm-local status")
        self.submitted: list[tuple[list[str], str]] = []
        self.next_job = 700

    async def _run(self, argv, stdin, timeout):
        if argv[0] == "sbatch":
            self.submitted.append((argv, stdin))
            self.next_job += 1
            return 0, f"{self.next_job}\n", ""
        return 0, "", ""


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SCIP_ARC_REGISTRY", str(tmp_path / "arc-jobs.sqlite"))


def make(presets=PRESETS, **kwargs) -> ARCCluster:
    args = dict(presets=presets, user="alice", user_accounts=["def-demo", "rrg-demo"], tags=TAGS,
                transport=RecordingSlurm())
    args.update(kwargs)
    return ARCCluster("local-slurm", **args)


def directives(script: str) -> list[str]:
    return [line[len("#SBATCH "):] for line in script.splitlines() if line.startswith("#SBATCH ")]


def command(script: str) -> str:
    return [line for line in script.splitlines() if line.strip()][-1]


def wait_for(predicate, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}", pytrace=False)


def with_prologue(*lines: str):
    preset = PRESETS.get("local-slurm").model_copy(update={"job_script_prologue": list(lines)})
    return PRESETS.model_copy(update={"clusters": [preset]})


class MyScheduler(Scheduler):
    pass


class MyJob(ARCJob):
    pass


def tls_files(folder: Path) -> Security:
    """A user's own TLS set-up: certificates in files (here from temporary ones)."""
    temp = Security.temporary()
    folder.mkdir(exist_ok=True)
    paths = {}
    for attr in ("tls_ca_file", "tls_scheduler_cert", "tls_scheduler_key", "tls_worker_cert", "tls_worker_key",
                 "tls_client_cert", "tls_client_key"):
        path = folder / attr
        path.write_text(getattr(temp, attr))
        path.chmod(0o600)
        paths[attr] = str(path)
    return Security(**paths, require_encryption=True)


@dataclass
class Case:
    """One SLURMCluster argument: what to pass (a function of tmp_path) and what the script/cluster shows."""

    kwargs: Callable[[Path], dict[str, Any]]
    check: Callable[..., None]
    presets: Any = None
    config: dict[str, Any] = field(default_factory=dict)  # jobqueue.* settings for this case
    warns: type[Warning] | None = None


HANDLER = logging.StreamHandler()  # silence_logs sets the level of the "distributed" logger's stream handlers
LOOP: dict[str, LoopRunner] = {}  # the running loop the "loop" case passes


def _dir(tmp, name):
    path = tmp / name
    path.mkdir(exist_ok=True)
    return str(path)


CASES: dict[str, Case] = {
    "n_workers": Case(lambda t: {"n_workers": 2}, lambda c, s, t: (
        wait_for(lambda: c.transport.submitted, "the array submission"),
        _assert("--array=0-1" in c.transport.submitted[0][0] and "#SBATCH --array=0-1" in c.transport.submitted[0][1]))),
    "job_cls": Case(lambda t: {"job_cls": MyJob}, lambda c, s, t: _assert(type(c._dummy_job) is MyJob)),
    "loop": Case(lambda t: {"loop": LOOP["runner"].loop}, lambda c, s, t: _assert(c.loop is LOOP["runner"].loop)),
    "security": Case(lambda t: {"security": tls_files(t / "tls")}, lambda c, s, t: _assert(
        f"--tls-ca-file {t / 'tls' / 'tls_ca_file'}" in s and c.scheduler.address.startswith("tls://"))),
    "shared_temp_directory": Case(lambda t: {"shared_temp_directory": _dir(t, "shared")}, lambda c, s, t: _assert(
        f"--tls-ca-file {t / 'shared'}/.dask-jobqueue.worker.ca_file." in s)),
    "silence_logs": Case(lambda t: (logging.getLogger("distributed").addHandler(HANDLER), {"silence_logs": "critical"})[1],
                         lambda c, s, t: (_assert(HANDLER.level == logging.CRITICAL),
                                          logging.getLogger("distributed").removeHandler(HANDLER))),
    "name": Case(lambda t: {"name": "mine"}, lambda c, s, t: _assert("--name mine-${SLURM_ARRAY_TASK_ID} " in s)),
    "asynchronous": Case(lambda t: {"asynchronous": True}, lambda c, s, t: _assert(c.asynchronous)),
    "dashboard_address": Case(lambda t: {"dashboard_address": ":12435"}, None),
    "host": Case(lambda t: {"host": "127.0.0.1"}, None),
    "scheduler_options": Case(lambda t: {"scheduler_options": {"idle_timeout": "1h", "dashboard_address": "127.0.0.1:0"}},
                              lambda c, s, t: _assert(c.scheduler.idle_timeout == 3600
                                                      and c.scheduler.address.startswith("tls://127.0.0.1:"))),
    "scheduler_cls": Case(lambda t: {"scheduler_cls": MyScheduler}, lambda c, s, t: _assert(type(c.scheduler) is MyScheduler)),
    "interface": Case(lambda t: {"interface": "lo"}, lambda c, s, t: _assert(
        "--interface lo" in s and c.scheduler.address.startswith("tls://127.0.0.1:"))),
    "protocol": Case(lambda t: {"protocol": "tls://"}, lambda c, s, t: _assert("--protocol tls://" in s)),
    "config_name": Case(lambda t: {"config_name": "arcsite"}, lambda c, s, t: _assert("echo from arcsite" in s),
                        config={"jobqueue.arcsite": {**shipped_config(), "job-script-prologue": ["echo from arcsite"]}}),
    "queue": Case(lambda t: {"queue": "gpu"}, lambda c, s, t: _assert("-p gpu" in directives(s))),
    "project": Case(lambda t: {"project": "rrg-demo"}, lambda c, s, t: _assert("-A rrg-demo" in directives(s)),
                    warns=FutureWarning),
    "account": Case(lambda t: {"account": "rrg-demo"}, lambda c, s, t: _assert("-A rrg-demo" in directives(s))),
    "walltime": Case(lambda t: {"walltime": "02:00:00"}, lambda c, s, t: _assert(
        "-t 02:00:00" in directives(s) and "--lifetime 6900s" in s)),
    "job_cpu": Case(lambda t: {"job_cpu": 2}, lambda c, s, t: _assert("--cpus-per-task=2" in directives(s))),
    "job_mem": Case(lambda t: {"job_mem": "3G"}, lambda c, s, t: _assert("--mem=3G" in directives(s))),
    "cores": Case(lambda t: {"cores": 2}, lambda c, s, t: _assert(
        "--cpus-per-task=2" in directives(s) and "--nthreads 2" in s)),
    "memory": Case(lambda t: {"memory": "1GiB"}, lambda c, s, t: _assert(
        "--mem=1G" in directives(s) and "--memory-limit 1.00GiB" in s)),
    "processes": Case(lambda t: {"cores": 2, "processes": 2}, lambda c, s, t: _assert(
        "--nworkers 2" in s and "--nthreads 1" in s)),
    "nanny": Case(lambda t: {"nanny": False}, lambda c, s, t: _assert("--no-nanny" in s)),
    "death_timeout": Case(lambda t: {"death_timeout": 30}, lambda c, s, t: _assert("--death-timeout 30" in s)),
    "local_directory": Case(lambda t: {"local_directory": "/scratch/alice"}, lambda c, s, t: _assert(
        "--local-directory /scratch/alice" in s and "SLURM_TMPDIR" not in s)),
    "extra": Case(lambda t: {"extra": ["--resources", "FOO=1"]}, lambda c, s, t: _assert(
        "--resources FOO=1" in s and "--lifetime" in s), warns=FutureWarning),
    "worker_command": Case(lambda t: {"worker_command": "distributed.cli.dask_spec"}, lambda c, s, t: _assert(
        "-m distributed.cli.dask_spec " in s)),
    "worker_extra_args": Case(lambda t: {"worker_extra_args": ["--resources", "FOO=1"]}, lambda c, s, t: _assert(
        s.index("--lifetime ") < s.index("--resources FOO=1"))),
    "job_extra": Case(lambda t: {"job_extra": ["--nice=5"]}, lambda c, s, t: _assert("--nice=5" in directives(s)),
                      warns=FutureWarning),
    "job_extra_directives": Case(lambda t: {"job_extra_directives": ["--nice=5", "--gres=gpu:h100:1"]},
                                 lambda c, s, t: _assert(
        directives(s)[-2:] == ["--nice=5", "--array=0"] and "--gpus-per-node=h100:1" in directives(s)
        and "-p gpu" in directives(s) and "--gres=gpu:h100:1" not in directives(s))),
    "env_extra": Case(lambda t: {"env_extra": ["export OLD=1"]}, lambda c, s, t: _assert("\nexport OLD=1\n" in s),
                      warns=FutureWarning),
    "job_script_prologue": Case(
        lambda t: {"job_script_prologue": ["module load python/3.11", "source ~/env/bin/activate"]},
        lambda c, s, t: _assert("\necho preset\nmodule load python/3.11\nsource ~/env/bin/activate\n" in s),
        presets=with_prologue("echo preset")),
    "header_skip": Case(lambda t: {"header_skip": ["-A "]}, lambda c, s, t: _assert(
        not [d for d in directives(s) if d.startswith("-A ")]), warns=FutureWarning),
    "job_directives_skip": Case(lambda t: {"job_directives_skip": ["--mem"]}, lambda c, s, t: _assert(
        not [d for d in directives(s) if d.startswith("--mem")] and "--comment=" in s)),
    "log_directory": Case(lambda t: {"log_directory": str(t / "logs")}, lambda c, s, t: _assert(
        f"--output={t / 'logs'}/%x-%j.out" in directives(s) and (t / "logs").is_dir())),
    "shebang": Case(lambda t: {"shebang": "#!/bin/bash"}, lambda c, s, t: _assert(s.startswith("#!/bin/bash\n"))),
    "python": Case(lambda t: {"python": "/usr/bin/python3"}, lambda c, s, t: _assert(
        command(s).startswith("/usr/bin/python3 -m distributed.cli.dask_worker "))),
    "job_name": Case(lambda t: {"job_name": "my-workers"}, lambda c, s, t: _assert(
        "-J my-workers" in directives(s) and f"--comment={TAGS.comment()}" in directives(s))),
}


def _assert(condition):
    assert condition


def test_every_slurmcluster_parameter_has_a_documented_handling():
    assert set(SIGNATURE) == set(PARAMETERS), (
        f"not handled: {sorted(set(SIGNATURE) - set(PARAMETERS))}; gone: {sorted(set(PARAMETERS) - set(SIGNATURE))}")


def test_every_shipped_configuration_key_maps_to_a_parameter():
    keys = {p.config for p in PARAMETERS.values() if p.config}
    assert set(shipped_config()) <= keys, sorted(set(shipped_config()) - keys)


@pytest.mark.parametrize("name", SIGNATURE)
def test_slurmcluster_argument_works_with_arccluster(name, tmp_path, monkeypatch):
    case = CASES.get(name)
    assert case is not None, f"SLURMCluster parameter {name!r} has no test case in CASES"
    if PARAMETERS[name].kind == REFUSED:
        kwargs = case.kwargs(tmp_path)
        with pytest.raises(ValueError):  # SLURMCluster itself refuses it
            SLURMCluster(cores=1, memory="1GiB", **kwargs)
        with pytest.raises(ARCRequestError) as err:
            make(**kwargs)
        assert err.value.field == name and "scheduler_options" in str(err.value)
        return
    loop_runner = None
    if name == "loop":
        loop_runner = LOOP["runner"] = LoopRunner(asynchronous=False)
        loop_runner.start()
    with dask.config.set(case.config), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        kwargs = case.kwargs(tmp_path)
        if name == "asynchronous":
            async def run():
                async with make(**kwargs) as cluster:
                    case.check(cluster, cluster.job_script(), tmp_path)
            asyncio.run(run())
        else:
            cluster = make(presets=case.presets or PRESETS, **kwargs)
            try:
                case.check(cluster, cluster.job_script(), tmp_path)
            finally:
                cluster.close()
                if loop_runner:
                    loop_runner.stop()
    if case.warns:
        assert case.warns in {w.category for w in seen}, [str(w.message) for w in seen]


# ---------------------------------------------------------------- refusals


REFUSALS = [
    ({"security": False}, "security", "always TLS"),
    ({"security": Security()}, "security", "no TLS certificates"),
    ({"protocol": "tcp://"}, "protocol", "TLS only"),
    ({"job_cls": SLURMJob}, "job_cls", "not a subclass of ARCJob"),
    ({"job_extra_directives": ["--array=0-3"]}, "job_extra_directives", "submits arrays itself"),
    ({"job_extra_directives": ["--comment=mine"]}, "job_extra_directives", "tags"),
    ({"queue": "bigmem"}, "queue", "is not a partition"),
    ({"queue": "cpu", "partition": "gpu"}, "queue", "name the same thing"),
    ({"account": "def-someone"}, "account", "not one of your accounts"),
    ({"walltime": "8-00:00:00"}, "walltime", "over the maximum"),
    ({"job_extra_directives": ["-t 8-00:00:00"]}, "job_extra_directives ('-t 8-00:00:00')", "over the maximum"),
    ({"job_script_prologue": "module load python"}, "job_script_prologue", "must be a list"),
    ({"job_script_prologue": ["a\n#SBATCH -p gpu"]}, "job_script_prologue", "several lines"),
    ({"name": "my cluster"}, "name", "cannot carry"),
    ({"job_name": "a b"}, "job_name", "cannot carry"),
    ({"gpus": 1, "memory_per_gpu": "10GiB", "job_mem": "4G"}, "job_mem", "--mem-per-gpu"),
    ({"job_cpu": 1000}, "job_cpu", "out of range"),
    ({"shared_temp_directory": "/nonexistent/folder"}, "shared_temp_directory", "is not a folder"),
    ({"nanny": "yes"}, "nanny", "True or False"),
    ({"no_such_argument": 1}, "no_such_argument", "is not an argument"),
]


@pytest.mark.parametrize("kwargs, field, problem", REFUSALS, ids=[r[1] + ":" + r[2] for r in REFUSALS])
def test_refusal_names_the_argument_the_reason_and_what_to_use(kwargs, field, problem):
    transport = RecordingSlurm()
    with pytest.raises(ARCRequestError) as err:
        make(transport=transport, **kwargs)
    assert err.value.field == field
    assert problem in err.value.problem
    assert "allowed values" in str(err.value)
    assert transport.submitted == []


def test_refusal_reads_in_french():
    with use_locale("fr"), pytest.raises(ARCRequestError) as err:
        make(protocol="tcp://")
    assert "TLS uniquement" in err.value.problem


def test_every_message_of_the_drop_in_has_a_french_translation():
    import ast

    catalog = load_catalog("fr")
    ids = set()
    for module in ("compat.py", "cluster.py"):
        tree = ast.parse((ROOT / "scip_jupyter" / "arc" / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    ids.add(arg.value)
    missing = sorted(i for i in ids if i not in catalog or not catalog[i].string)
    assert not missing, missing


# ---------------------------------------------------------------- the reported failures


def test_prologue_lines_run_after_the_presets_own():
    cluster = make(presets=with_prologue("module load StdEnv/2023"),
                   job_script_prologue=["module load python/3.11", "source ~/env/bin/activate"])
    try:
        script = cluster.job_script()
        body = script.split("#SBATCH --array=0\n", 1)[1].splitlines()
        assert body[:3] == ["module load StdEnv/2023", "module load python/3.11", "source ~/env/bin/activate"]
        assert body[3].startswith(cluster._job_kwargs["python"] if "python" in cluster._job_kwargs else "")
    finally:
        cluster.close()


@pytest.mark.parametrize("kwargs", [{"interface": "lo"}, {"scheduler_options": {"interface": "lo"}},
                                    {"interface": "lo", "scheduler_options": {"interface": "lo"}}])
def test_a_users_interface_replaces_the_presets_addresses(kwargs):
    cluster = make(**kwargs)
    try:
        assert cluster.scheduler.address.startswith("tls://127.0.0.1:")
        assert "contact_address" not in cluster.scheduler_spec["options"]
        assert "host" not in cluster.scheduler_spec["options"]
        assert (" --interface lo " in cluster.job_script()) == ("interface" in kwargs)
    finally:
        cluster.close()


def test_shared_temp_directory_receives_the_worker_credentials(tmp_path):
    cluster = make(shared_temp_directory=str(tmp_path))
    try:
        written = sorted(p.name.split(".")[3] for p in tmp_path.glob(".dask-jobqueue.worker.*"))
        assert written == ["ca_file", "cert", "key"]
        assert all(oct(p.stat().st_mode & 0o077) == "0o0" for p in tmp_path.glob(".dask-jobqueue.worker.*"))
    finally:
        cluster.close()


@pytest.mark.parametrize("kwargs, line", [({"queue": "gpu"}, "-p gpu"), ({"account": "rrg-demo"}, "-A rrg-demo"),
                                          ({"job_extra_directives": ["--partition=gpu"]}, "-p gpu")])
def test_queue_and_account_are_the_validated_partition_and_account(kwargs, line):
    cluster = make(**kwargs)
    try:
        assert line in directives(cluster.job_script())
        assert cluster.request.partition == (line[3:] if line.startswith("-p") else "cpu")
    finally:
        cluster.close()


# ---------------------------------------------------------------- dask-jobqueue's configuration


CONFIG_CASES = [
    # (jobqueue.slurm settings, ARCCluster arguments, lines in the script, lines not in it, warning texts)
    ({"queue": "gpu"}, {}, ["#SBATCH -p gpu"], [], []),
    ({"queue": "regular"}, {}, ["#SBATCH -p cpu"], ["-p regular"], ["jobqueue.slurm.queue", "'regular'"]),
    ({"queue": "regular"}, {"queue": "gpu"}, ["#SBATCH -p gpu"], [], []),
    ({"account": "def-someone"}, {}, ["#SBATCH -A def-demo"], ["def-someone"], ["jobqueue.slurm.account"]),
    ({"walltime": "02:00:00"}, {}, ["#SBATCH -t 02:00:00"], [], []),
    ({"walltime": "30-00:00:00"}, {}, ["#SBATCH -t 01:00:00"], [], ["jobqueue.slurm.walltime", "30-00:00:00"]),
    ({"cores": 2, "memory": "2GiB", "processes": 2}, {}, ["--cpus-per-task=2", "--mem=2G", "--nworkers 2"], [], []),
    ({"job-script-prologue": ["echo configured"]}, {}, ["echo preset\necho configured\n"], [], []),
    ({"job-script-prologue": ["echo configured"]}, {"job_script_prologue": ["echo mine"]},
     ["echo preset\necho mine\n"], ["echo configured"], []),
    ({"env-extra": ["echo old"]}, {}, ["echo preset\necho old\n"], [], []),
    ({"interface": "ib0"}, {}, [], ["--interface"], ["jobqueue.slurm.interface", "'ib0'", "127.0.0.1"]),
    ({"interface": "ib0"}, {"interface": "lo"}, ["--interface lo"], ["ib0"], []),
    ({"scheduler-options": {"interface": "ib0"}}, {}, [], ["ib0"], ["jobqueue.slurm.scheduler-options.interface"]),
    ({"local-directory": "/scratch"}, {}, ["--local-directory ${SLURM_TMPDIR:-/tmp}"], ["/scratch"],
     ["jobqueue.slurm.local-directory", "'/scratch'", "${SLURM_TMPDIR:-/tmp}"]),
    ({"job-extra-directives": ["--nice=3", "--array=1-3"]}, {}, ["#SBATCH --nice=3"], ["--array=1-3"],
     ["jobqueue.slurm.job-extra-directives", "--array=1-3"]),
    ({"job-extra-directives": ["--gres=gpu:h100_1g.10gb:1"]}, {}, ["--gpus-per-node=h100_1g.10gb:1", "-p gpu"], [], []),
    ({"worker-extra-args": ["--resources", "FOO=1"]}, {}, ["--resources FOO=1"], [], []),
    ({"job-directives-skip": ["-A "]}, {}, [], ["#SBATCH -A "], []),
    ({"name": "configured-name"}, {}, ["#SBATCH -J configured-name"], [], []),
    ({"death-timeout": 17}, {}, ["--death-timeout 17"], [], []),
    ({"python": "/usr/bin/python3"}, {}, ["/usr/bin/python3 -m distributed.cli.dask_worker"], [], []),
    ({"shebang": "#!/bin/bash"}, {}, ["#!/bin/bash\n"], [], []),
    ({"job-cpu": 3}, {}, ["--cpus-per-task=3"], [], []),
    ({"job-mem": "999TiB"}, {}, ["--mem=512M"], ["999T", "999TiB"], ["jobqueue.slurm.job-mem"]),
    ({"worker-command": "distributed.cli.dask_spec"}, {}, ["-m distributed.cli.dask_spec"], [], []),
]


@pytest.mark.parametrize("settings, kwargs, present, absent, warned", CONFIG_CASES,
                         ids=[",".join(c[0]) + ("+args" if c[1] else "") for c in CONFIG_CASES])
def test_jobqueue_configuration_is_honoured_or_the_conflict_reported(settings, kwargs, present, absent, warned):
    with dask.config.set({f"jobqueue.slurm.{k}": v for k, v in settings.items()}), \
            warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cluster = make(presets=with_prologue("echo preset"), **kwargs)
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
    for text in present:
        assert text in script, script
    for text in absent:
        assert text not in script, script
    ours = [str(w.message) for w in seen if w.category is UserWarning and "is not used" in str(w.message)]
    if warned:
        assert any(all(t in m for t in warned) for m in ours), ours
    else:
        assert ours == []


def test_configured_log_and_shared_temp_directories_are_honoured(tmp_path):
    (tmp_path / "shared").mkdir()
    with dask.config.set({"jobqueue.slurm.log-directory": str(tmp_path / "logs"),
                          "jobqueue.slurm.shared-temp-directory": str(tmp_path / "shared")}):
        cluster = make()
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
    assert f"--output={tmp_path / 'logs'}/%x-%j.out" in directives(script)
    assert f"--tls-ca-file {tmp_path / 'shared'}/" in script


def test_only_values_that_differ_from_dask_jobqueues_own_defaults_count_as_configuration():
    assert user_settings(shipped_config()) == {}
    assert user_settings({**shipped_config(), "queue": "gpu", "walltime": "00:30:00"}) == {"queue": "gpu"}


def test_the_shipped_defaults_change_nothing():
    """jobqueue.yaml as dask-jobqueue ships it (and copies to ~/.config/dask) gives the preset's script."""
    with dask.config.set({"jobqueue.slurm": shipped_config()}), warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        cluster = make()
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
    assert "-t 01:00:00" in directives(script) and "-J scip-dask-worker-alice-lab" in directives(script)


def test_compose_is_pure_and_reports_instead_of_dropping():
    preset = PRESETS.get("local-slurm")
    composition = compose(preset, {"queue": "gpu"}, {"interface": "ib0", "local_directory": "/scratch"},
                          network={"host": "127.0.0.1", "port": 0})
    assert composition.explicit == {"partition": "gpu"}
    assert len(composition.warnings) == 2
    assert composition.cluster["interface"] == ""  # dask-jobqueue must not read the configured one again


# ---------------------------------------------------------------- job_script() is what is submitted


@pytest.mark.parametrize("array", [True, False])
def test_job_script_is_exactly_what_is_submitted(array):
    transport = RecordingSlurm()
    cluster = make(transport=transport, array=array, job_script_prologue=["echo hi"], queue="cpu")
    try:
        expected = cluster.job_script(workers=3)
        cluster.scale(3)
        wait_for(lambda: len(transport.submitted) == (1 if array else 3), "the submissions")
        scripts = [stdin for _, stdin in transport.submitted]
        if array:
            assert scripts == [expected]
            assert transport.submitted[0][0] == ["sbatch", "--parsable", "--array=0-2"]
            # the next scale-up takes the next free indices, and job_script() says so
            assert "#SBATCH --array=3-4\n" in cluster.job_script(workers=2)
        else:
            assert expected in scripts
            assert "--array" not in expected
    finally:
        cluster.close()


def test_docs_table_is_the_one_generated_from_the_parameters():
    from scip_jupyter.arc.compat import parameters_table

    docs = (ROOT / "docs" / "arc.md").read_text()
    start = docs.index("<!-- parameters-table: generated by scip_jupyter.arc.compat.parameters_table() -->\n")
    end = docs.index("\n<!-- /parameters-table -->")
    assert docs[docs.index("\n", start) + 1:end] == parameters_table()
    for name in SIGNATURE:
        assert f"| `{name}` |" in docs


def test_a_configured_gpu_line_the_cluster_cannot_take_is_dropped_whole_and_reported():
    with dask.config.set({"jobqueue.slurm.job-extra-directives": ["--gres=gpu:a100:2"]}), \
            warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cluster = make()
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
    assert not [d for d in directives(script) if d.startswith(("--gres", "--gpus", "-p gpu"))]
    assert cluster.request.gpus == 0
    assert any("--gres=gpu:a100:2" in str(w.message) and "'a100'" in str(w.message) for w in seen)


def test_a_configured_job_mem_is_reported_when_memory_per_gpu_is_asked():
    with dask.config.set({"jobqueue.slurm.job-mem": "4G"}), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cluster = make(gpus=1, memory_per_gpu="10GiB")
        try:
            lines = directives(cluster.job_script())
        finally:
            cluster.close()
    assert "--mem-per-gpu=10G" in lines and not [d for d in lines if d.startswith("--mem=")]
    assert any(str(w.message).startswith("jobqueue.slurm.job-mem: '4G' is not used") for w in seen)
