"""JobMonitor (model) and JobMonitorView (view), both ways, headless.

model->widget: refreshed jobs appear as named rows; widget->model: the Cancel
button cancels through the model's canceller; a refused cancel leaves both as
they were. Sources and cancellers are counting stand-ins for the poller and the
transport (the Slurm side is tested against the real local Slurm elsewhere).
"""

import asyncio

import pytest

from scip_jupyter.arc.monitor import JobMonitor, JobRow, elapsed_now
from scip_jupyter.arc.states import Phase, parse_squeue
from scip_widgets import JobMonitorView

SCRIPT = "<script>alert('x')</script>"


def squeue_text(*rows):
    lines = []
    for job_id, state, reason, start, elapsed in rows:
        lines.append(f"{job_id}|{state}|{reason}|{start}|{elapsed}|1:00:00|scip-dask-worker-alice-default|alice|cpu|1|")
    return "\n".join(lines)


PENDING = ("9_1", "PENDING", "Resources", "2026-11-25T09:30:00", "0:00")
RUNNING = ("9_0", "RUNNING", "None", "2026-11-25T07:00:00", "1:05")


class Source:
    """Counts calls; returns the jobs set on it (or raises `fail`)."""

    def __init__(self, *rows):
        self.jobs = parse_squeue(squeue_text(*rows))
        self.calls = 0
        self.fail = None

    async def __call__(self):
        self.calls += 1
        if self.fail:
            raise self.fail
        return list(self.jobs)


class Canceller:
    def __init__(self, fail=None):
        self.cancelled = []
        self.fail = fail

    async def __call__(self, ids):
        if self.fail:
            raise self.fail
        self.cancelled.extend(ids)


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def built(monitor):
    view = JobMonitorView(monitor, auto_refresh=False)
    view.widget()
    return view


def test_refresh_shows_state_reason_estimated_start_and_elapsed():
    monitor = JobMonitor(Source(RUNNING, PENDING), Canceller())
    view = built(monitor)
    asyncio.run(monitor.refresh())
    rows = view.parts.rows
    assert list(rows) == ["9_0", "9_1"]
    assert rows["9_0"].state.value == "running"
    assert rows["9_0"].elapsed.value == "00:01:05"
    assert rows["9_0"].reason.value == ""
    assert rows["9_1"].state.value == "pending"
    assert rows["9_1"].reason.value == "waiting for nodes with the requested resources to become free"
    assert rows["9_1"].estimated_start.value == "2026-11-25 09:30"
    assert view.parts.summary.value == "1 running, 1 pending"
    assert "scip-job-pending" in rows["9_1"].box._dom_classes


def test_pending_job_becoming_running_updates_its_row_in_place():
    source = Source(PENDING)
    monitor = JobMonitor(source, Canceller())
    view = built(monitor)
    asyncio.run(monitor.refresh())
    row = view.parts.rows["9_1"]
    source.jobs = parse_squeue(squeue_text(("9_1", "RUNNING", "None", "2026-11-25T09:30:00", "0:03")))
    asyncio.run(monitor.refresh())
    assert view.parts.rows["9_1"] is row  # same widgets, new values
    assert row.state.value == "running" and row.estimated_start.value == ""
    assert "scip-job-running" in row.box._dom_classes and "scip-job-pending" not in row.box._dom_classes


def test_finished_jobs_leave_the_table():
    source = Source(RUNNING, PENDING)
    monitor = JobMonitor(source, Canceller())
    view = built(monitor)
    asyncio.run(monitor.refresh())
    source.jobs = source.jobs[:1]
    asyncio.run(monitor.refresh())
    assert list(view.parts.rows) == ["9_0"]
    assert len(view.parts.table.children) == 1


def test_cancel_button_cancels_through_the_model():
    canceller = Canceller()
    monitor = JobMonitor(Source(RUNNING, PENDING), canceller)
    view = built(monitor)
    asyncio.run(monitor.refresh())
    view.parts.rows["9_1"].cancel.click()
    assert canceller.cancelled == ["9_1"]
    assert {j.job_id: j.phase for j in monitor.jobs} == {"9_0": Phase.RUNNING, "9_1": Phase.CANCELLED}
    assert view.parts.rows["9_1"].state.value == "cancelled"
    assert view.parts.rows["9_1"].cancel.disabled
    assert not view.parts.rows["9_0"].cancel.disabled


def test_failed_cancel_leaves_model_and_widget_unchanged_and_says_why():
    monitor = JobMonitor(Source(RUNNING), Canceller(fail=RuntimeError("scancel: Invalid job id specified")))
    view = built(monitor)
    asyncio.run(monitor.refresh())
    before = list(monitor.jobs)
    view.parts.rows["9_0"].cancel.click()
    assert monitor.jobs == before
    assert view.parts.rows["9_0"].state.value == "running"
    assert "Invalid job id" in view.parts.error.value and "9_0" in view.parts.error.value


def test_cancel_of_unknown_job_names_the_field_and_allowed_ids():
    canceller = Canceller()
    monitor = JobMonitor(Source(RUNNING), canceller)
    asyncio.run(monitor.refresh())
    assert asyncio.run(monitor.cancel("12345")) is False
    assert monitor.error.startswith("job_id:") and "9_0" in monitor.error
    assert canceller.cancelled == []


def test_failed_refresh_keeps_last_jobs_and_shows_error():
    source = Source(RUNNING)
    monitor = JobMonitor(source, Canceller())
    view = built(monitor)
    asyncio.run(monitor.refresh())
    source.fail = RuntimeError("Slurm on cluster 'local-slurm' is not answering")
    asyncio.run(monitor.refresh())
    assert [j.job_id for j in monitor.jobs] == ["9_0"]
    assert "not answering" in view.parts.error.value
    source.fail = None
    asyncio.run(monitor.refresh())
    assert view.parts.error.value == ""


def test_elapsed_advances_between_polls_for_running_jobs_only():
    clock = Clock()
    monitor = JobMonitor(Source(RUNNING, PENDING), Canceller(), clock=clock)
    asyncio.run(monitor.refresh())
    clock.now += 30
    rows = {r.job_id: r for r in monitor.rows()}
    assert rows["9_0"].elapsed == "00:01:35"
    assert rows["9_1"].elapsed == "00:00:00"


def test_elapsed_now_unknown_stays_unknown():
    (job,) = parse_squeue(squeue_text(("1", "RUNNING", "None", "N/A", "INVALID")))
    assert elapsed_now(job, 1.0, 5.0) is None


async def test_view_refreshes_periodically_in_a_running_loop():
    source = Source(PENDING)
    monitor = JobMonitor(source, Canceller(), interval=0.2)
    view = JobMonitorView(monitor)
    view.widget()
    try:
        for _ in range(200):  # until the periodic callback has refreshed twice (bounded)
            if source.calls >= 2:
                break
            await asyncio.sleep(0.05)
        assert source.calls >= 2
        assert list(view.parts.rows) == ["9_1"]
    finally:
        view.close()
    calls = source.calls
    await asyncio.sleep(0.5)
    assert source.calls <= calls + 1  # stopped (one tick may have been in flight)


def test_html_fallback_escapes_script_in_every_column():
    text = squeue_text((SCRIPT.replace("|", ""), "PENDING", SCRIPT, "N/A", "0:00"))
    monitor = JobMonitor(Source(), Canceller())
    monitor.jobs = parse_squeue(text)
    monitor.error = SCRIPT
    html = JobMonitorView(monitor)._repr_html_()
    assert "<script>" not in html
    assert html.count("&lt;script&gt;") >= 3


def test_empty_monitor_says_no_jobs():
    view = built(JobMonitor(Source(), Canceller()))
    assert view.parts.summary.value == "No jobs."
    assert "No jobs." in view._repr_html_()


@pytest.mark.parametrize("state, cancellable", [("RUNNING", True), ("PENDING", True), ("COMPLETED", False), ("CANCELLED", False)])
def test_only_unfinished_jobs_are_cancellable(state, cancellable):
    (job,) = parse_squeue(squeue_text(("5", state, "None", "N/A", "0:00")))
    assert JobRow.from_state(job).cancellable is cancellable
