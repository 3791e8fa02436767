"""notebooks/arc-minimal.ipynb, executed by nbclient against the real local Slurm.

The kernel runs as the unprivileged account `scip-user` when the tests run as
root (never a root kernel), as a notebook user would: its Slurm jobs belong to
scip-user, and the run is tagged with its own server name so the test checks
only its own jobs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from tests.fixtures.common import ROOT, VENV_BIN, is_root

NOTEBOOK = ROOT / "notebooks" / "arc-minimal.ipynb"
RUN_AS = "scip-user"

#: Executes a notebook with nbclient; writes the executed copy even when a cell fails.
RUNNER = """
import sys, nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
src, out, cwd = sys.argv[1:4]
nb = nbformat.read(src, as_version=4)
client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": cwd}})
try:
    client.execute()
except CellExecutionError as exc:
    nbformat.write(nb, out)
    print(exc, file=sys.stderr)
    sys.exit(1)
nbformat.write(nb, out)
"""


def run_notebook(path: Path, env_extra: dict[str, str], timeout: float = 420) -> nbformat.NotebookNode:
    """Execute `path` with nbclient (as scip-user when root); returns the executed notebook."""
    workdir = Path(tempfile.mkdtemp(prefix="scip-nb-"))
    out = workdir / path.name
    env = {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        **env_extra,
    }
    prefix: list[str] = []
    if is_root():
        user = pwd.getpwnam(RUN_AS)
        os.chown(workdir, user.pw_uid, user.pw_gid)
        env.update(HOME=user.pw_dir, USER=RUN_AS, LOGNAME=RUN_AS)
        prefix = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", RUN_AS, "--"]
    else:
        env.update(HOME=os.environ.get("HOME", str(workdir)), USER=os.environ.get("USER", ""))
    try:
        proc = subprocess.run(
            [*prefix, str(VENV_BIN / "python"), "-c", RUNNER, str(path), str(out), str(workdir)],
            env=env, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0 or not out.exists():
            pytest.fail(f"{path.name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", pytrace=False)
        return nbformat.read(out, as_version=4)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def outputs_text(nb: nbformat.NotebookNode) -> str:
    """The cells' outputs as a person sees them: a cell's stream messages run on into one text (a print
    may reach the notebook in several messages), other outputs are lines of their own."""
    parts = []
    for cell in nb.cells:
        streams = {}
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                streams[output.get("name", "stdout")] = streams.get(output.get("name", "stdout"), "") + output.get("text", "")
            else:
                parts.append(output.get("text", ""))
                parts.append(output.get("data", {}).get("text/plain", ""))
        parts.extend(streams.values())
    return "\n".join(parts)


def test_arc_minimal_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


@pytest.mark.notebooks
@pytest.mark.slurm
def test_arc_minimal_notebook_runs_two_workers_on_local_slurm(slurm_cluster, artifacts_dir):
    server = f"nb{uuid.uuid4().hex[:8]}"
    nb = run_notebook(NOTEBOOK, {"JUPYTERHUB_SERVER_NAME": server})
    nbformat.write(nb, artifacts_dir / "arc-minimal.executed.ipynb")
    text = outputs_text(nb)
    assert "sum of squares: 332833500" in text
    assert "'ARCCluster-0': '" in text and "'ARCCluster-1': '" in text  # worker -> array task id
    assert "cluster closed" in text
    expected_user = RUN_AS if is_root() else os.environ.get("USER", "")
    assert f"--comment=scip.ca:user={expected_user},server={server}," in text
    deadline = time.monotonic() + 60  # cancelled jobs may show as completing for a moment
    while (leftovers := slurm_cluster.job_ids(comment_contains=f"server={server},")) and time.monotonic() < deadline:
        time.sleep(1)
    assert leftovers == [], f"jobs left in squeue after the notebook closed its cluster: {leftovers}"
