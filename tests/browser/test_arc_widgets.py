"""The ARC cluster status widget through the whole stack: a model from
scip_jupyter, the scip_widgets view, a real JupyterLab (as scip-user) and Debian
Chromium. The test reads what the page shows and saves a screenshot."""

import pytest

from tests.fixtures.browser import open_and_run_notebook, save_screenshot

STATUS_CELL = '''
from scip_jupyter.arc.monitor import ClusterStatus
from scip_jupyter.arc.states import parse_squeue
from scip_widgets import ClusterStatusView

jobs = parse_squeue(
    "41_0|RUNNING|None|2026-11-25T07:00:00|2:00|1:00:00|scip-dask-worker-demo-default|demo|cpu|1|\\n"
    "41_1|RUNNING|None|2026-11-25T07:00:00|2:00|1:00:00|scip-dask-worker-demo-default|demo|cpu|1|\\n"
    "41_2|PENDING|Resources|N/A|0:00|1:00:00|scip-dask-worker-demo-default|demo|cpu|1|"
)
status = ClusterStatus.from_jobs(
    jobs, preset="local-slurm", name="<script>window.scipInjected = 1</script>", requested=3, connected=2,
    scheduler_address="tcp://127.0.0.1:40001", dashboard_link="http://127.0.0.1:8787/status",
)
ClusterStatusView(status)
'''


@pytest.mark.browser
async def test_cluster_status_widget_renders_in_jupyterlab(browser_page, lab_server, artifacts_dir):
    page = browser_page
    url = lab_server.write_notebook("cluster_status.ipynb", [STATUS_CELL])
    try:
        widget = await open_and_run_notebook(page, url, wait_for=".jp-OutputArea-output .scip-cluster-status")
        counts = {}
        for name in ("workers-requested", "workers-pending", "workers-running", "workers-connected", "state"):
            counts[name] = (await widget.locator(f".scip-status-{name}").inner_text()).strip()
        assert counts == {
            "workers-requested": "3",
            "workers-pending": "1",
            "workers-running": "2",
            "workers-connected": "2",
            "state": "starting",
        }
        assert "tcp://127.0.0.1:40001" in await widget.locator(".scip-status-scheduler-address").inner_text()
        link = widget.locator(".scip-status-dashboard a")
        assert await link.get_attribute("href") == "http://127.0.0.1:8787/status"
        # The cluster name arrived as markup: shown as text, never run.
        assert "<script>window.scipInjected = 1</script>" in await widget.locator(".scip-status-title").inner_text()
        assert await page.evaluate("typeof window.scipInjected") == "undefined"
        await save_screenshot(page, artifacts_dir, "arc-cluster-status-widget")
    finally:
        lab_server.shutdown_kernels()
