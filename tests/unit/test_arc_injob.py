"""In-job mode, pure parts: the job script, request validation, and status from squeue + files."""

import json
from pathlib import Path

import pytest

from scip_jupyter.arc.injob import (ERROR, EXIT_CODE, LOG, RESULT, SIGNALLED, STATUS, InJobSpec, decide_status, encode_payload,
                                    injob_script)
from scip_jupyter.arc.injob_folder import HANDSHAKE, UNSHARED_EXIT, RunFolder
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


# ------------------------------------------------------------------ over the rest transport: a shared run folder


def test_job_script_with_a_handshake_checks_it_before_anything_else():
    script = injob_script(spec(run_dir="/scratch/alice/.scip/injob/abc123", handshake="0f" * 16), payload_b64="x")
    check = f"""[ "$(cat "$RUN/{HANDSHAKE}" 2>/dev/null)" = '{"0f" * 16}' ] || exit {UNSHARED_EXIT}"""
    assert check in script
    assert script.index(check) < script.index("umask 077") < script.index("mkdir -p")  # nothing written before it
    assert HANDSHAKE not in injob_script(spec(), payload_b64="x")  # local and ssh: as before (snapshot)


@pytest.mark.parametrize("handshake", ["'; rm -rf ~; '", "ABC", "12 34"])
def test_handshake_is_hexadecimal_only(handshake):
    with pytest.raises(ValueError, match="handshake"):
        spec(handshake=handshake)


@pytest.mark.parametrize(
    "kind, base_dir, path, handshake",
    [
        ("local", None, str(Path.home() / ".scip" / "injob" / "r1"), False),
        ("ssh", None, ".scip/injob/r1", False),  # the job resolves it in the cluster home; read with `cat`
        ("rest", None, str(Path.home() / ".scip" / "injob" / "r1"), True),  # shared: absolute, proved by a handshake
        ("rest", "/shared/runs", "/shared/runs/r1", True),
    ],
)
def test_run_folder_per_transport(kind, base_dir, path, handshake):
    from types import SimpleNamespace

    from scip_jupyter.arc.presets import example_preset

    folder = RunFolder.for_run(example_preset(), SimpleNamespace(kind=kind), "alice", "r1", base_dir)
    assert folder.path == path
    assert folder.access == {"local": "local", "ssh": "cat", "rest": "shared"}[kind]
    assert bool(folder.handshake) == handshake and (not handshake or len(folder.handshake) == 32)


def rest_run(tmp_path, **kwargs):
    from scip_jupyter.arc.injob import InJobRun
    from scip_jupyter.arc.registry import JobRegistry

    transport = CountingTransport()
    transport.kind = "rest"
    run = InJobRun(len, preset="local-injob", presets=kwargs.pop("presets", None) or in_job_presets(), transport=transport,
                   registry=JobRegistry(tmp_path / "r.sqlite"), user="alice", **kwargs)  # fmt: skip
    return run, transport


@pytest.mark.parametrize("why", ["relative base_dir", "scratch not mounted"])
def test_rest_without_a_folder_both_see_is_refused_before_sbatch(tmp_path, why):
    from scip_jupyter.arc.presets import ARCRequestError, PresetFile

    kwargs = {"base_dir": "runs"} if why == "relative base_dir" else {"presets": PresetFile(clusters=[
        in_job_presets().get("local-injob").model_copy(update={"storage": {"scratch": str(tmp_path / "absent/{user}")}})])}
    with pytest.raises(ARCRequestError) as err:
        rest_run(tmp_path, **kwargs)
    assert err.value.field == "base_dir"
    assert "base_dir= a folder this server and the cluster both see" in str(err.value) and "transport ssh" in str(err.value)


def test_rest_run_folder_is_the_presets_scratch_and_gets_a_private_handshake(tmp_path):
    import asyncio
    import stat

    from scip_jupyter.arc.presets import PresetFile

    (tmp_path / "scratch" / "alice").mkdir(parents=True)
    preset = in_job_presets().get("local-injob").model_copy(update={"storage": {"scratch": str(tmp_path / "scratch/{user}")}})
    run, transport = rest_run(tmp_path, presets=PresetFile(clusters=[preset]))
    assert run.spec.run_dir == str(tmp_path / "scratch" / "alice" / ".scip" / "injob" / run.run_id)
    asyncio.run(run.asubmit())
    folder = Path(run.spec.run_dir)
    assert (folder / HANDSHAKE).read_text().strip() == run.spec.handshake
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE((folder / HANDSHAKE).stat().st_mode) == 0o600
    (argv,) = transport.argvs  # one sbatch; the handshake went into the folder, not through Slurm
    assert argv == ["sbatch", "--parsable"]


UNSHARED = "the job did not find the run folder"


@pytest.mark.parametrize(
    "queued, files, phase, words",
    [
        (None, NOFILES, Phase.FAILED, UNSHARED),  # ran nothing, left the queue: the folder is not shared
        (q(Phase.FAILED, "NonZeroExitCode"), NOFILES, Phase.FAILED, UNSHARED),
        (q(Phase.PENDING, "Priority"), NOFILES, Phase.PENDING, "higher-priority"),  # not started yet: wait
        (q(Phase.TIMEOUT, state="TIMEOUT"), NOFILES, Phase.TIMEOUT, "TIMEOUT"),
        (None, {LOG: ""}, Phase.UNKNOWN, "left the queue"),  # it reached the folder: another story
        (None, {EXIT_CODE: "1", LOG: ""}, Phase.FAILED, "exited with status 1"),
        (None, {RESULT: "abc"}, Phase.COMPLETED, ""),
    ],
)  # fmt: skip
def test_status_of_a_shared_folder_says_when_the_job_never_found_it(queued, files, phase, words):
    st = decide_status("7", queued, files, False, unshared=f"{UNSHARED} (/x)")
    assert st.phase is phase
    assert words in f"{st.reason} {st.message}"


def test_unshared_reason_in_french(tmp_path):
    from scip_jupyter.i18n import use_locale

    run, _transport = rest_run(tmp_path, base_dir=str(tmp_path / "runs"))
    with use_locale("fr"):
        reason = run.folder.unshared_reason()
    assert reason.startswith(f"la tâche n’a pas trouvé le dossier de l’exécution écrit par ce serveur ({run.spec.run_dir})")
    assert "'local-injob'" in reason and "transport ssh" in reason


def test_injob_folder_doctests():
    import doctest

    from scip_jupyter.arc import injob_folder

    result = doctest.testmod(injob_folder, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
