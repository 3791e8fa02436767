"""ClusterStatus (model) and ClusterStatusView (view): counts, model->widget, escaping.

Job states come from text parsed by the real squeue parser (scip_jupyter.arc.states).
"""

import pytest

from scip_jupyter.arc.monitor import ClusterStatus, JobMonitor, cluster_job_ids, task_count
from scip_jupyter.arc.states import parse_squeue
from scip_widgets import ClusterStatusView
from scip_widgets.status import ROWS

SCRIPT = "<script>alert('x')</script>"


def squeue(*rows: str):
    """rows: 'id|STATE|reason' -> JobStates through the real parser."""
    lines = []
    for row in rows:
        job_id, state, reason = row.split("|")
        start = "2026-11-25T08:00:00" if state == "PENDING" else "2026-11-25T07:00:00"
        lines.append(f"{job_id}|{state}|{reason}|{start}|0:30|1:00:00|scip-dask-worker-alice-default|alice|cpu|1|")
    return parse_squeue("\n".join(lines))


@pytest.mark.parametrize(
    "rows, requested, connected, expected",
    [
        ([], 0, 0, (0, 0, 0, "not started")),
        (["7_0|PENDING|Priority", "7_1|PENDING|Priority"], 2, 0, (2, 0, 0, "starting")),
        (["7_0|RUNNING|None", "7_1|PENDING|Resources"], 2, 1, (1, 1, 1, "starting")),
        (["7_0|RUNNING|None", "7_1|RUNNING|None"], 2, 2, (0, 2, 2, "running")),
        (["7_[2-5]|PENDING|JobArrayTaskLimit", "7_0|RUNNING|None", "7_1|RUNNING|None"], 6, 2, (4, 2, 2, "starting")),
        (["7_0|COMPLETED|None"], 0, 0, (0, 0, 0, "not started")),
    ],
)
def test_status_counts_array_tasks_by_phase(rows, requested, connected, expected):
    s = ClusterStatus.from_jobs(squeue(*rows), preset="local-slurm", requested=requested, connected=connected)
    assert (s.workers_pending, s.workers_running, s.workers_connected, s.state) == expected


def test_status_of_closed_cluster_says_closed():
    assert ClusterStatus.from_jobs([], requested=0, closed=True).state == "closed"


@pytest.mark.parametrize("job_id, n", [("42", 1), ("42_3", 1), ("42_[0-31]", 32), ("42_[0-3,7,9-10%2]", 7)])
def test_task_count_expands_array_ranges(job_id, n):
    assert task_count(job_id) == n


class FakeJob:
    def __init__(self, job_id):
        self.job_id = job_id


class FakeCluster:
    """The attributes dask-jobqueue clusters expose, nothing more."""

    def __init__(self):
        self.name = "SLURMCluster-1"
        self.scheduler_address = "tcp://127.0.0.1:40001"
        self.dashboard_link = "http://127.0.0.1:8787/status"
        self.worker_spec = {"w0": {}, "w1": {}, "w2": {}}
        self.workers = {"w0": FakeJob("7_0"), "w1": FakeJob("7_1"), "w2": FakeJob(None)}
        self.scheduler_info = {"workers": {"tcp://a": {}}}


def test_status_from_cluster_reads_spec_and_scheduler_without_slurm():
    cluster = FakeCluster()
    s = ClusterStatus.from_cluster(cluster, squeue("7_0|RUNNING|None", "7_1|PENDING|Priority"), preset="local-slurm")
    assert (s.workers_requested, s.workers_running, s.workers_pending, s.workers_connected) == (3, 1, 1, 1)
    assert s.scheduler_address == "tcp://127.0.0.1:40001"
    assert s.dashboard_link.endswith("/status")
    assert cluster_job_ids(cluster) == {"7_0", "7_1"}


def test_view_shows_model_values_in_named_widgets():
    s = ClusterStatus.from_jobs(squeue("7_0|RUNNING|None", "7_1|PENDING|Priority"), preset="local-slurm", requested=2,
                                connected=1, scheduler_address="tcp://127.0.0.1:40001", dashboard_link="http://127.0.0.1:8787/status")
    view = ClusterStatusView(s)
    view.widget()
    p = view.parts
    assert p.workers_requested.value == "2"
    assert p.workers_pending.value == "1"
    assert p.workers_running.value == "1"
    assert p.workers_connected.value == "1"
    assert p.scheduler_address.value == "tcp://127.0.0.1:40001"
    assert 'href="http://127.0.0.1:8787/status"' in p.dashboard.value
    assert "local-slurm" in p.title.value
    assert all(hasattr(p, name) for name, _, _ in ROWS)


def test_view_update_replaces_snapshot():
    view = ClusterStatusView(ClusterStatus(preset="local-slurm"))
    view.widget()
    view.update(ClusterStatus(preset="local-slurm", workers_requested=4, state="starting"))
    assert view.parts.workers_requested.value == "4"
    assert view.parts.state.value == "starting"


def test_view_is_displayed_as_widget_with_html_fallback():
    bundle = ClusterStatusView(ClusterStatus(preset="local-slurm"))._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "ARC cluster" in bundle["text/html"]


@pytest.mark.parametrize("field", ["preset", "name", "scheduler_address", "dashboard_link", "message", "state"])
def test_html_fallback_and_widgets_escape_script(field):
    s = ClusterStatus(**{field: SCRIPT})
    view = ClusterStatusView(s)
    html = view._repr_html_()
    assert "<script>" not in html
    if field != "state":
        assert "&lt;script&gt;" in html
    view.widget()
    # HTML sub-widgets are escaped; Label sub-widgets render text, never markup.
    assert "<script>" not in view.parts.title.value
    assert "<script>" not in view.parts.dashboard.value


@pytest.mark.parametrize("link", ["javascript:alert(1)", "//evil.example/x", "data:text/html,<b>"])
def test_dashboard_link_with_unsafe_scheme_is_not_clickable(link):
    view = ClusterStatusView(ClusterStatus(dashboard_link=link))
    assert "href" not in view._repr_html_()
    view.widget()
    assert "href" not in view.parts.dashboard.value


def test_view_follows_a_live_monitor():
    jobs = squeue("7_0|PENDING|Priority")

    async def source():
        return jobs

    monitor = JobMonitor(source, preset="local-slurm")
    view = ClusterStatusView(monitor, auto_refresh=False)
    view.widget()
    assert view.parts.workers_pending.value == "0"
    view.refresh()  # no event loop here: runs to completion
    assert view.parts.workers_pending.value == "1"
    jobs[:] = squeue("7_0|RUNNING|None")
    view.refresh()
    assert (view.parts.workers_pending.value, view.parts.workers_running.value, view.parts.state.value) == ("0", "1", "running")


def test_view_rejects_wrong_model_type():
    with pytest.raises(TypeError, match="model"):
        ClusterStatusView({"preset": "x"})


def test_status_shows_a_failed_submission_as_error_with_its_message():
    from datetime import datetime, timezone

    from scip_jupyter.arc.cluster import SubmitError

    cluster = FakeCluster()
    cluster.last_error = SubmitError(cluster="local-slurm", workers=2, detail="sbatch: error: <b>invalid partition</b>",
                                     check="the preset's partitions", at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    s = ClusterStatus.from_cluster(cluster, (), preset="local-slurm")
    assert s.state == "error"
    assert "invalid partition" in s.message and "'local-slurm'" in s.message
    html = ClusterStatusView(s)._repr_html_()
    assert "&lt;b&gt;invalid partition&lt;/b&gt;" in html and "<b>invalid" not in html
    cluster.last_error = None
    assert ClusterStatus.from_cluster(cluster, (), preset="local-slurm").state != "error"
