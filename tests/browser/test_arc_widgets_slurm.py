"""The ARC launcher and job monitor, all real: JupyterLab (as scip-user) in
Debian Chromium, a kernel building an ARCCluster on the local Slurm.

Clicking Launch brings the workers up (Slurm runs their array tasks and they
join the scheduler), the monitor shows them running; a row's Cancel ends that
one task; Shutdown cancels the rest and squeue no longer lists them."""

import asyncio

import pytest

from tests.fixtures.browser import CELL_TIMEOUT_MS, open_and_run_notebook, save_screenshot

WORKERS = 2

LAUNCHER_CELL = f'''
from scip_jupyter.arc.launcher import LauncherModel
from scip_widgets import LauncherView

# Poll squeue every 2 s here (the default is 30 s, as sites ask): the test waits on it.
model = LauncherModel(preset="local-slurm", workers={WORKERS}, poll_interval=2, refresh_interval=1)
LauncherView(model)
'''


def live_job_ids(slurm_cluster) -> set[str]:
    """Array tasks Slurm still lists (any state)."""
    return {line.strip() for line in slurm_cluster.run("squeue", "-h", "-r", "-o", "%i").splitlines() if line.strip()}


async def wait_until_gone(slurm_cluster, job_ids: set[str], attempts: int = 120) -> set[str]:
    """Poll squeue until none of `job_ids` is listed (bounded); returns those still listed."""
    left = job_ids & live_job_ids(slurm_cluster)
    for _ in range(attempts):
        if not left:
            break
        await asyncio.sleep(0.5)
        left = job_ids & live_job_ids(slurm_cluster)
    return left


@pytest.mark.browser
@pytest.mark.slurm
async def test_launch_button_starts_workers_on_local_slurm_and_monitor_shows_them(
    slurm_cluster, lab_server, browser_page, artifacts_dir
):
    page = browser_page
    url = lab_server.write_notebook("arc_launcher.ipynb", [LAUNCHER_CELL])
    launcher = await open_and_run_notebook(page, url, wait_for=".jp-OutputArea-output .scip-launcher")
    seen: set[str] = set()
    try:
        # The shipped in-job presets are listed greyed, with ARCCluster's reason; local-slurm can launch.
        greyed = launcher.locator('.scip-launcher-greyed li[data-preset="rorqual"]')
        assert "network mode in-job" in await greyed.inner_text()
        assert await launcher.locator("button.scip-launcher-launch").is_enabled()
        await launcher.locator("button.scip-launcher-launch").click()

        # The monitor lists one row per worker job, and each turns "running".
        await page.wait_for_function(
            "n => document.querySelectorAll('.scip-launcher .scip-job-row.scip-job-running').length === n",
            arg=WORKERS,
            timeout=CELL_TIMEOUT_MS,
        )
        # ... and the workers joined the Dask scheduler.
        connected = launcher.locator(".scip-status-workers-connected")
        await page.wait_for_function(
            "n => { const el = document.querySelector('.scip-launcher .scip-status-workers-connected');"
            " return !!el && el.textContent.trim() === String(n); }",
            arg=WORKERS,
            timeout=CELL_TIMEOUT_MS,
        )
        assert (await connected.inner_text()).strip() == str(WORKERS)
        seen = {t.strip() for t in await launcher.locator(".scip-job-row .scip-job-job-id").all_inner_texts()}
        assert len(seen) == WORKERS
        # What the page shows is what Slurm runs: one array job, its tasks running.
        states = dict(
            line.split("|") for line in slurm_cluster.run("squeue", "-h", "-r", "-o", "%i|%T").splitlines() if line.strip()
        )
        assert {states.get(job_id) for job_id in seen} == {"RUNNING"}
        assert len({job_id.split("_")[0] for job_id in seen}) == 1  # one sbatch --array
        assert (await launcher.locator(".scip-launcher-phase").inner_text()).strip() == "running"
        await save_screenshot(page, artifacts_dir, "arc-launcher-running", element=launcher)

        # Cancel one worker job from its monitor row: Slurm drops that task, the row says so.
        victim = sorted(seen)[0]
        row = launcher.locator(".scip-job-row", has=page.locator(".scip-job-job-id", has_text=victim))
        await row.locator("button.scip-job-cancel").click()
        await page.wait_for_function(
            """id => ![...document.querySelectorAll('.scip-launcher .scip-job-row')].some(r =>
                   r.querySelector('.scip-job-job-id').textContent.trim() === id && !r.classList.contains('scip-job-cancelled'))""",
            arg=victim,
            timeout=CELL_TIMEOUT_MS,
        )
        assert await wait_until_gone(slurm_cluster, {victim}) == set()
        assert seen - {victim} <= live_job_ids(slurm_cluster)  # the other worker still runs

        await launcher.locator("button.scip-launcher-shutdown").click()
        await page.wait_for_function(
            "() => { const el = document.querySelector('.scip-launcher .scip-launcher-phase');"
            " return !!el && el.textContent.trim() === 'closed'; }",
            timeout=CELL_TIMEOUT_MS,
        )
        assert await wait_until_gone(slurm_cluster, seen) == set()
        await save_screenshot(page, artifacts_dir, "arc-launcher-closed", element=launcher)
    finally:
        # Whatever happened, no job this test started outlives it.
        left = seen & live_job_ids(slurm_cluster)
        if left:
            slurm_cluster.run("scancel", *sorted(left), check=False)
        lab_server.shutdown_kernels()
