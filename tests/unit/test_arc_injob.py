"""In-job mode, pure parts: the job script, request validation, and status from squeue + files."""

import json
from pathlib import Path

import pytest

from scip_jupyter.arc.injob import ERROR, EXIT_CODE, RESULT, SIGNALLED, STATUS, InJobSpec, decide_status, encode_payload, injob_script
from scip_jupyter.arc.states import JobState, Phase
from scip_jupyter.arc.tags import JobTags

SNAPSHOT = Path(__file__).resolve().parents[1] / "data" / "arc" / "injob_script.sh"
TAGS = JobTags(user="alice", server="default", project="def-smith", site="rorqual", jurisdiction="CA")


def spec(**kw):
    base = dict(run_dir=".scip/injob/abc123", tags=TAGS, workers=3, cpus_per_task=2, mem_per_cpu_mb=2048,
                walltime="03:00:00", python="/opt/env/bin/python", partition="cpubase_bycore_b1",
                account="def-smith", prologue=("module load python/3.11",))  # fmt: skip
    base.update(kw)
    return InJobSpec(**base)


def test_job_script_snapshot():
    script = injob_script(spec(), payload_b64="UEFZTE9BRA==", driver="print('driver')")
    assert script == SNAPSHOT.read_text()


def test_job_script_asks_for_scheduler_client_and_workers():
    script = injob_script(spec(), payload_b64="x")
    assert "#SBATCH --ntasks=5" in script  # 3 workers + scheduler + client
    assert "#SBATCH --comment=scip.ca:user=alice,server=%64efault" in script  # a server named "default" (tags.py)
    assert "#SBATCH --job-name=scip-injob-alice-default" in script
    assert "srun --ntasks=5" in script
    assert "SLURMRunner" in script


def test_job_script_carries_no_environment_secrets(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "s3cret-token")
    assert "s3cret-token" not in injob_script(spec(), payload_b64="x")


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("workers", 0, "workers: 0 is not allowed; allowed: 1 to 1000"),
        ("walltime", "3 hours", "walltime: '3 hours' is not allowed; allowed: [D-]HH:MM[:SS]"),
        ("partition", "cpu;rm -rf", "partition"),
        ("run_dir", "x'; rm -rf ~; '", "run_dir"),
        ("extra_directives", ("--x\n#SBATCH --y",), "extra_directives"),
    ],
)
def test_bad_spec_is_refused_naming_the_field(field, value, words):
    with pytest.raises(ValueError) as err:
        spec(**{field: value})
    assert words in str(err.value)


def test_payload_needs_exactly_one_of_func_or_script():
    with pytest.raises(ValueError, match="exactly one"):
        encode_payload()
    with pytest.raises(ValueError, match="exactly one"):
        encode_payload(func=len, script="result = 1")
    with pytest.raises(ValueError, match="func"):
        encode_payload(func=42)


def q(phase, reason="", state=None):
    return JobState(job_id="7", phase=phase, slurm_state=state or phase.value.upper(), reason=reason)


NOFILES = {}


@pytest.mark.parametrize(
    "queued, files, cancelled, phase, words",
    [
        (q(Phase.PENDING, "Priority"), NOFILES, False, Phase.PENDING, "higher-priority"),
        (q(Phase.PENDING), {STATUS: json.dumps({"phase": "running", "workers": 2})}, False, Phase.RUNNING, ""),
        (q(Phase.RUNNING), {STATUS: json.dumps({"phase": "starting"})}, False, Phase.RUNNING, ""),
        (q(Phase.RUNNING), {RESULT: "abc"}, False, Phase.COMPLETED, ""),
        (None, {RESULT: "abc", EXIT_CODE: "0"}, False, Phase.COMPLETED, ""),
        (None, {ERROR: json.dumps({"type": "ZeroDivisionError", "message": "division by zero"})}, False, Phase.FAILED, "ZeroDivisionError: division by zero"),
        (None, NOFILES, True, Phase.CANCELLED, "cancelled from the notebook"),
        (q(Phase.TIMEOUT, state="TIMEOUT"), NOFILES, False, Phase.TIMEOUT, "TIMEOUT"),
        (None, {SIGNALLED: "stopped"}, False, Phase.CANCELLED, "time limit or scancel"),
        (None, {EXIT_CODE: "1"}, False, Phase.FAILED, "exited with status 1"),
        (q(Phase.COMPLETED), NOFILES, False, Phase.RUNNING, "finishing"),
        (None, NOFILES, False, Phase.UNKNOWN, "left the queue"),
    ],
)  # fmt: skip
def test_status_from_queue_and_files(queued, files, cancelled, phase, words):
    st = decide_status("7", queued, files, cancelled)
    assert st.phase is phase
    assert words in f"{st.reason} {st.message}"


def in_job_presets():
    from scip_jupyter.arc.presets import NetworkConfig, PresetFile, load_default_presets

    local = load_default_presets().get("local-slurm")
    return PresetFile(clusters=[local.model_copy(update={"name": "local-injob", "network": NetworkConfig(mode="in-job")})])


class CountingTransport:
    kind = "local"

    def __init__(self):
        self.argvs = []

    async def run(self, argv, stdin=None, timeout=None):
        self.argvs.append(argv)
        return "1\n"


@pytest.mark.parametrize(
    "request_, field",
    [({"walltime": "8-00:00:00"}, "walltime"), ({"partition": "nope"}, "partition"),
     ({"account": "def-someoneelse"}, "account"), ({"workers": 0}, "workers")],
)  # fmt: skip
def test_request_breaking_the_preset_is_refused_before_sbatch(tmp_path, request_, field):
    from scip_jupyter.arc.injob import InJobRun
    from scip_jupyter.arc.presets import ARCRequestError
    from scip_jupyter.arc.registry import JobRegistry

    transport = CountingTransport()
    kwargs = dict(preset="local-injob", presets=in_job_presets(), transport=transport,
                  registry=JobRegistry(tmp_path / "r.sqlite"), user="alice")  # fmt: skip
    kwargs.update(request_)
    with pytest.raises(ARCRequestError) as err:
        InJobRun(len, **kwargs)
    assert field in str(err.value)
    assert transport.argvs == []
