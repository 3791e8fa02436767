"""LauncherModel (scip_jupyter.arc.launcher) and LauncherView (scip_widgets), both ways, headless.

The presets' real validator decides what is allowed. The cluster is a recording
stand-in (its Slurm side is tested against the real local Slurm in
tests/browser/test_arc_widgets_slurm.py): here we check what the model asks of it.
Submission failures use a real ARCCluster (scheduler included) whose transport
answers sbatch as a scripted Slurm would (refusing, failing, hanging); the real
Slurm case is in tests/integration/test_arc_slurm.py.
"""

import asyncio
import doctest
import time

import pytest

from scip_jupyter.arc import cluster as cluster_module
from scip_jupyter.arc import launcher as launcher_module
from scip_jupyter.arc.cluster import ARCCluster
from scip_jupyter.arc.launcher import LauncherModel
from scip_jupyter.arc.presets import ARCRequestError, PresetFile, example_preset, load_presets
from scip_jupyter.arc.transport import Transport
from scip_widgets import LauncherView

from .test_widgets_monitor import squeue_text  # one helper for captured-format squeue lines


def presets():
    return PresetFile(
        clusters=[
            example_preset(),  # "demo": partitions cpu/gpu, h100 + h100_1g.10gb, walltime max 7 days
            example_preset(
                name="cpuonly", partitions=["short", "long"], default_partition="short", gpu_partition=None, gpu_types=[],
                walltime={"tiers": ["01:00:00", "24:00:00"], "maximum": "24:00:00"}, max_jobs_per_user=10,
            ),
        ]
    )


def accounts(preset):
    return {"demo": ["def-alice", "rrg-alice"], "cpuonly": ["def-alice"]}[preset.name]


class FakeTransport:
    def __init__(self, cluster):
        self.cluster = cluster
        self.argvs = []

    async def run(self, argv, stdin=None, timeout=None):
        self.argvs.append(list(argv))
        if argv[0] == "squeue":
            return squeue_text(*[(j, "RUNNING", "None", "2026-11-25T07:00:00", "0:10") for j in sorted(self.cluster.job_ids)])
        return ""


class FakeCluster:
    """Records what the launcher asks of an ARCCluster."""

    instances = []

    def __init__(self, fail_on_scale=False, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        self.fail_on_scale = fail_on_scale
        self.job_ids = set()
        self.transport = FakeTransport(self)
        FakeCluster.instances.append(self)

    def scale(self, n):
        if self.fail_on_scale:
            raise RuntimeError("sbatch: error: Batch job submission failed: Invalid account")
        self.calls.append(("scale", n))
        self.job_ids = {f"77_{i}" for i in range(n)}

    def adapt(self, minimum, maximum):
        self.calls.append(("adapt", minimum, maximum))

    def close(self):
        self.calls.append(("close",))
        self.job_ids = set()


def model(**kwargs):
    return LauncherModel(presets(), accounts=accounts, cluster_factory=FakeCluster, user="alice", **kwargs)


def view_of(m):
    v = LauncherView(m)
    v.widget()
    return v


def test_defaults_come_from_the_preset():
    m = model()
    assert (m.preset, m.account, m.partition, m.gpu_type, m.gpus, m.walltime, m.workers) == (
        "demo", "def-alice", "cpu", "", 0, "03:00:00", 2)


def test_shipped_local_slurm_preset_gives_a_valid_default_request(project_root):
    m = LauncherModel(load_presets(project_root / "hub_config" / "arc.yaml"), cluster_factory=FakeCluster, user="alice")
    assert m.preset == "local-slurm"
    assert m.account == "def-demo" and m.partition == "cpu"
    assert m.request is not None and m.request.workers == m.workers


@pytest.mark.parametrize(
    "field, value, widget_value",
    [
        ("account", "rrg-alice", "rrg-alice"),
        ("partition", "gpu", "gpu"),
        ("gpu_type", "h100", "h100"),
        ("gpus", 2, 2),
        ("walltime", "12:00:00", "12:00:00"),
        ("walltime", "2-00", "2-00:00:00"),  # normalised by the validator
        ("workers", 5, 5),
    ],
)
def test_model_change_shows_in_widget(field, value, widget_value):
    m = model()
    v = view_of(m)
    m.set(field, value)
    assert v.parts.fields[field].value == widget_value


@pytest.mark.parametrize(
    "field, value, model_value",
    [
        ("account", "rrg-alice", "rrg-alice"),
        ("partition", "gpu", "gpu"),
        ("gpus", 3, 3),
        ("walltime", "24:00:00", "1-00:00:00"),
        ("walltime", "90", "01:30:00"),
        ("workers", 8, 8),
        ("preset", "cpuonly", "cpuonly"),
    ],
)
def test_widget_change_reaches_model(field, value, model_value):
    m = model()
    v = view_of(m)
    v.parts.fields[field].value = value
    assert getattr(m, field) == model_value
    assert v.parts.errors[field].value == ""
    assert v.parts.fields[field].value == model_value  # the widget shows the normalised value


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("walltime", "9-00:00:00", "7-00:00:00"),
        ("walltime", "soon", "03:00:00"),
        ("gpus", 9, "0..4"),
        ("workers", -1, "0.."),
    ],
)
def test_bad_widget_value_leaves_model_and_widget_unchanged_and_names_field(field, value, allowed):
    m = model()
    v = view_of(m)
    before = {f: getattr(m, f) for f in ("preset", "account", "partition", "gpu_type", "gpus", "walltime", "workers")}
    v.parts.fields[field].value = value
    after = {f: getattr(m, f) for f in before}
    assert after == before
    assert v.parts.fields[field].value == before[field]
    message = v.parts.errors[field].value
    assert message.startswith('<span class="scip-error"') and f">{field}:" in message
    assert "allowed values" in message and allowed in message


def test_bad_direct_assignment_raises_and_changes_nothing():
    m = model()
    with pytest.raises(ARCRequestError) as err:
        m.walltime = "9-00:00:00"
    assert err.value.field == "walltime"
    assert m.walltime == "03:00:00"


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("gpu_type", "h100", {"gpus": 1, "partition": "gpu"}),
        ("preset", "cpuonly", {"partition": "short", "walltime": "01:00:00", "account": "def-alice"}),
        ("walltime", "90", {"walltime": "01:30:00"}),
    ],
)
def test_plain_assignment_normalises_and_updates_dependent_fields(field, value, expected):
    m = model()
    v = view_of(m)
    setattr(m, field, value)
    assert {k: getattr(m, k) for k in expected} == expected
    assert {k: v.parts.fields[k].value for k in expected} == expected


def test_failing_scale_is_reported_in_the_page():
    class Flaky(FakeCluster):
        def scale(self, n):
            if self.calls:
                raise RuntimeError("Slurm on cluster 'demo' is not answering")
            super().scale(n)

    m = LauncherModel(presets(), accounts=accounts, user="alice", cluster_factory=Flaky)
    v = view_of(m)
    v.parts.buttons["launch"].click()
    v.parts.buttons["scale"].click()
    assert v.parts.message.value == "Scale failed: Slurm on cluster 'demo' is not answering"
    assert m.phase == "running"


def test_mig_slice_is_one_per_job():
    m = model()
    m.set("gpu_type", "h100_1g.10gb")
    with pytest.raises(ARCRequestError) as err:
        m.set("gpus", 2)
    assert err.value.field == "gpus" and err.value.allowed == ["1"]
    assert m.gpus == 1


def test_choosing_a_gpu_type_sets_count_and_gpu_partition_in_widgets():
    m = model()
    v = view_of(m)
    v.parts.fields["gpu_type"].value = "h100"
    assert (m.gpus, m.partition) == (1, "gpu")
    assert (v.parts.fields["gpus"].value, v.parts.fields["partition"].value) == (1, "gpu")
    v.parts.fields["gpus"].value = 0
    assert (m.gpu_type, m.partition) == ("", "cpu")
    assert v.parts.fields["gpu_type"].value == ""


def test_changing_preset_resets_dependent_choices_and_options():
    m = model()
    v = view_of(m)
    m.set("walltime", "3-00:00:00")
    v.parts.fields["preset"].value = "cpuonly"
    assert (m.partition, m.walltime, m.gpu_type) == ("short", "01:00:00", "")
    assert [value for _label, value in v.parts.fields["partition"].options] == ["", "short", "long"]
    assert [value for _label, value in v.parts.fields["gpu_type"].options] == [""]
    assert list(v.parts.fields["walltime"].options) == ["01:00:00", "1-00:00:00"]


def test_launch_builds_cluster_from_validated_request_and_scales():
    FakeCluster.instances.clear()
    m = model(workers=3)
    v = view_of(m)
    m.set("gpu_type", "h100")
    v.parts.buttons["launch"].click()
    (cluster,) = FakeCluster.instances
    assert cluster.kwargs.pop("presets") is m.presets
    assert cluster.kwargs == {
        "preset": "demo", "user": "alice", "user_accounts": ["def-alice", "rrg-alice"], "account": "def-alice",
        "walltime": "03:00:00", "cores": 1, "memory": 2 * 2**30, "processes": 1, "partition": "gpu",
        "gpu_type": "h100", "gpus": 1, "data_jurisdictions": {},  # the table the presets were greyed by
    }
    assert cluster.calls == [("scale", 3)]
    assert m.phase == "running" and v.parts.phase.value == "running"
    assert v.parts.buttons["launch"].disabled and not v.parts.buttons["shutdown"].disabled


def test_launch_shows_job_monitor_with_the_clusters_jobs():
    FakeCluster.instances.clear()
    m = model(workers=2)
    v = view_of(m)
    v.parts.buttons["launch"].click()
    jobs_view = v.parts.jobs_view
    assert list(jobs_view.parts.rows) == ["77_0", "77_1"]
    assert v.parts.status_view.parts.workers_running.value == "2"
    (cluster,) = FakeCluster.instances
    assert [argv[0] for argv in cluster.transport.argvs] == ["squeue"]  # one listing serves both views


def test_scale_adapt_shutdown_drive_the_cluster():
    FakeCluster.instances.clear()
    m = model(workers=2)
    v = view_of(m)
    v.parts.buttons["launch"].click()
    v.parts.fields["workers"].value = 4
    v.parts.buttons["scale"].click()
    v.parts.buttons["adapt"].click()
    v.parts.buttons["shutdown"].click()
    (cluster,) = FakeCluster.instances
    assert cluster.calls == [("scale", 2), ("scale", 4), ("adapt", 0, 4), ("close",)]
    assert m.phase == "closed"
    assert not v.parts.buttons["launch"].disabled and v.parts.buttons["scale"].disabled


def test_scaling_past_the_job_limit_is_refused_before_submitting():
    FakeCluster.instances.clear()
    m = model()
    v = view_of(m)
    v.parts.fields["preset"].value = "cpuonly"  # max_jobs_per_user = 10
    v.parts.fields["workers"].value = 11
    assert m.workers == 2
    assert "workers:" in v.parts.errors["workers"].value
    v.parts.buttons["launch"].click()
    with pytest.raises(ARCRequestError) as err:
        m.scale(11)
    assert err.value.field == "workers"
    (cluster,) = FakeCluster.instances
    assert cluster.calls == [("scale", 2)]
    assert m.workers == 2


def test_actions_out_of_phase_are_refused_with_a_message():
    m = model()
    v = view_of(m)
    v.parts.buttons["shutdown"].click()
    assert m.phase == "idle"
    assert m.message.startswith("phase:") and "idle" in m.message
    assert v.parts.message.value == m.message


def test_failed_launch_reports_error_and_closes_what_started():
    FakeCluster.instances.clear()
    m = LauncherModel(presets(), accounts=accounts, user="alice",
                      cluster_factory=lambda **kw: FakeCluster(fail_on_scale=True, **kw))
    v = view_of(m)
    v.parts.buttons["launch"].click()
    (cluster,) = FakeCluster.instances
    assert cluster.calls == [("close",)]
    assert m.phase == "error" and "Invalid account" in v.parts.alert.value and v.parts.message.value == ""
    assert not v.parts.buttons["launch"].disabled
    v.parts.buttons["shutdown"].click()  # nothing left to close: no crash
    assert m.phase == "closed" and v.parts.alert.value == ""


def test_html_fallback_escapes_script():
    m = model()
    m.message = "<script>alert(1)</script>"
    html = LauncherView(m)._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html


# ---------------------------------------------------------------- submission failures (real ARCCluster)

SHIPPED = load_presets(__import__("pathlib").Path(__file__).resolve().parents[2] / "hub_config" / "arc.yaml")


class ScriptedSlurm(Transport):
    """A transport answering like Slurm would: sbatch gets the next scripted answer
    ((exit code, stdout, stderr), "hang", or an exception); squeue/scancel succeed."""

    kind = "local"

    def __init__(self, *answers, timeout=30.0):
        super().__init__("local-slurm", hint="scripts/slurm-local status", timeout=timeout)
        self.answers = list(answers)
        self.next_job = 500

    async def _run(self, argv, stdin, timeout):
        if argv[0] != "sbatch":
            return 0, "", ""
        answer = self.answers.pop(0) if self.answers else "ok"
        if answer == "hang":
            await asyncio.sleep(3600)
        if isinstance(answer, BaseException):
            raise answer
        if answer == "ok":
            self.next_job += 1
            return 0, f"{self.next_job}\n", ""
        return answer


REFUSED = (1, "", "sbatch: error: invalid partition specified: nowhere\n"
                  "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
UNREACHABLE = (1, "", "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n")


@pytest.fixture
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SCIP_ARC_REGISTRY", str(tmp_path / "arc-jobs.sqlite"))


def wait_for(predicate, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}", pytrace=False)


def launcher_on(transport, workers=2):
    return LauncherModel(
        SHIPPED, accounts=lambda p: ["def-demo"], user="alice", workers=workers,
        cluster_kwargs={"transport": transport, "coalesce_window": 0.02},
    )


@pytest.mark.parametrize(
    "answer, timeout, said, check",
    [
        (REFUSED, 30.0, "Slurm refused them (sbatch exit 1): sbatch: error: invalid partition specified: nowhere",
         "Check: the request (account, partition"),
        (UNREACHABLE, 30.0, "Slurm did not answer (sbatch: sbatch: error: Batch job submission failed: Unable to contact",
         "Check: scripts/slurm-local status"),
        ("hang", 0.5, "Slurm did not answer (sbatch: no answer within 0.5s)", "Check: scripts/slurm-local status"),
        (PermissionError("ssh key ~/.ssh/robot is not readable"), 30.0,
         "PermissionError: ssh key ~/.ssh/robot is not readable", "Check: the preset's transport settings"),
    ],
    ids=["slurm-refuses", "controller-down", "sbatch-hangs", "transport-refuses"],
)
def test_failed_submission_makes_launcher_failed_naming_cluster_and_what_to_check(private_state, answer, timeout, said, check):
    transport = ScriptedSlurm(answer, timeout=timeout)
    m = launcher_on(transport)
    v = view_of(m)
    v.parts.buttons["launch"].click()
    try:
        wait_for(lambda: m.phase == "failed", "the launcher to show the failed submission")
        cluster = m.cluster
        error = cluster.last_error
        assert error.cluster == "local-slurm" and error.workers == 2
        assert m.message == error.message
        assert m.message.startswith("Submitting 2 worker jobs to cluster 'local-slurm' failed at ")
        assert said in m.message and check in m.message
        assert transport.calls["sbatch"] == 1
        # nothing is left "starting": the workers that never got a job leave the plan
        assert dict(cluster.worker_spec) == {} and dict(cluster.workers) == {}
        v.parts.jobs_view.parts.refresh.click()
        # the cluster status says so too, with the same message
        assert m.monitor.status.state == "error" and m.monitor.status.workers_requested == 0
        assert m.monitor.status.message == error.message
        # the view shows it in red, and Scale (retry) and Shutdown stay usable
        assert v.parts.phase.value == "failed" and v.parts.message.value == ""
        assert 'class="scip-error"' in v.parts.alert.value and "local-slurm" in v.parts.alert.value
        assert not v.parts.buttons["scale"].disabled and not v.parts.buttons["shutdown"].disabled
        assert v.parts.buttons["launch"].disabled
    finally:
        m.shutdown()
    assert m.phase == "closed"


def test_next_successful_submission_clears_the_failure(private_state):
    transport = ScriptedSlurm(UNREACHABLE, "ok")
    m = launcher_on(transport)
    v = view_of(m)
    v.parts.buttons["launch"].click()
    try:
        wait_for(lambda: m.phase == "failed", "the failed submission")
        v.parts.buttons["scale"].click()  # same 2 workers: submitted again, since the failed ones left the plan
        wait_for(lambda: m.phase == "running", "the launcher to recover")
        assert m.cluster.last_error is None
        assert transport.calls["sbatch"] == 2
        assert sorted(job.job_id for job in m.cluster.workers.values()) == ["501_0", "501_1"]
        assert m.message == "Workers submitted to local-slurm." and v.parts.alert.value == ""
    finally:
        m.shutdown()
    assert transport.calls["scancel"] == 1


def test_failure_message_is_escaped_in_the_view(private_state):
    transport = ScriptedSlurm((1, "", "sbatch: error: <script>alert(1)</script>"))
    m = launcher_on(transport, workers=1)
    v = view_of(m)
    v.parts.buttons["launch"].click()
    try:
        wait_for(lambda: m.phase == "failed", "the failed submission")
        assert "<script>" not in v.parts.alert.value and "&lt;script&gt;alert(1)&lt;/script&gt;" in v.parts.alert.value
        assert "<script>" not in v._repr_html_()
    finally:
        m.shutdown()


def test_adaptive_scaling_waits_before_resubmitting_after_a_failure(private_state):
    transport = ScriptedSlurm(REFUSED, REFUSED, REFUSED)
    cluster = ARCCluster("local-slurm", presets=SHIPPED, user="alice", user_accounts=["def-demo"],
                         transport=transport, coalesce_window=0.02, submit_retry_after=3600)
    try:
        adaptive = cluster.adapt(minimum=2, maximum=2, interval="50ms")
        wait_for(lambda: cluster.last_error is not None, "the first failed submission")
        # the adaptive loop keeps asking for 2 workers; none of its requests reaches sbatch
        seen = len(adaptive.log)
        wait_for(lambda: len(adaptive.log) >= seen + 5, "five more adaptive recommendations")
        assert transport.calls["sbatch"] == 1
        assert cluster.submission_paused()
    finally:
        cluster.close()


def test_cluster_without_listeners_is_followed_on_refresh():
    class Quiet(FakeCluster):
        last_error = None

    m = LauncherModel(presets(), accounts=accounts, user="alice", cluster_factory=Quiet)
    v = view_of(m)
    v.parts.buttons["launch"].click()
    m.cluster.last_error = "Submitting 2 worker jobs to cluster 'demo' failed: down. Check: slurmctld"
    v.parts.jobs_view.parts.refresh.click()  # a monitor refresh (headless: runs at once)
    assert m.phase == "failed" and "cluster &#39;demo&#39; failed: down" in v.parts.alert.value
    m.cluster.last_error = None
    v.parts.jobs_view.parts.refresh.click()
    assert m.phase == "running" and v.parts.alert.value == ""


@pytest.mark.parametrize("module", [cluster_module, launcher_module], ids=lambda m: m.__name__)
def test_module_doctests_pass(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
