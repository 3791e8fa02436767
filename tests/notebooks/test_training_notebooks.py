"""The training notebooks (notebooks/01..04), executed by nbclient; 03 against the real local Slurm.

Kernels run as the unprivileged account scip-user when the tests run as root
(see tests/notebooks/test_arc_notebook.py, whose runner they share).
"""

from __future__ import annotations

import time
import uuid

import nbformat
import pytest

from tests.fixtures.common import ROOT
from tests.notebooks.test_arc_notebook import outputs_text, run_notebook

NOTEBOOKS = ROOT / "notebooks"
TRAINING = [
    "01-getting-started.ipynb",
    "02-dask-basics.ipynb",
    "03-dask-on-slurm-with-arc.ipynb",
    "04-instructors-publishing-course-material.ipynb",
]


@pytest.mark.parametrize("name", TRAINING)
def test_training_notebook_is_stored_clean_with_objectives(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "**Learning objectives.**" in first.source


def _run(name: str, artifacts_dir, env: dict | None = None) -> str:
    nb = run_notebook(NOTEBOOKS / name, env or {})
    nbformat.write(nb, artifacts_dir / name.replace(".ipynb", ".executed.ipynb"))
    return outputs_text(nb)


@pytest.mark.notebooks
@pytest.mark.parametrize(
    "name, expected",
    [
        ("01-getting-started.ipynb", ["profile: (none: this kernel was not started by the SCIP hub)",
                                      "mig-1g-10gb", "computing on: cpu", "result shape: (256, 256)",
                                      "no course panel here"]),
        ("02-dask-basics.ipynb", ["workers: 2", "sum of squares: 328350", "total: 1225", "closed"]),
        ("04-instructors-publishing-course-material.ipynb", [
            "demo-course | Demo course", "courses[0]: end 2020-06-30 is before start 2026-09-01",
            "/hub/scip/course/demo-course/launch?notebook=week1%2Flab.py",
            "intro.ipynb: your version kept; new material saved as intro.update-",
            "week1/lab.py: updated", "week2.md: added", "backup kept at: demo-course.backup-",
            "update available: False"]),
    ],
)
def test_training_notebook_runs(name, expected, artifacts_dir):
    text = _run(name, artifacts_dir)
    for words in expected:
        assert words in text, f"{words!r} not in the outputs of {name}:\n{text[-2000:]}"


@pytest.mark.notebooks
def test_getting_started_degrades_gracefully_on_a_gpu_profile_without_gpu(artifacts_dir):
    """What the local spawner tells a server started with a MIG profile on this GPU-less host."""
    env = {"SCIP_PROFILE": "mig-1g-10gb", "SCIP_PROFILE_KIND": "mig", "SCIP_GPU": "none",
           "SCIP_GPU_NOTE": "profile mig-1g-10gb asks for H100 MIG slice 1g.10gb, but this host has no NVIDIA GPU"}
    text = _run("01-getting-started.ipynb", artifacts_dir, env)
    assert "profile: mig-1g-10gb  (kind: mig)" in text
    assert "computing on: cpu (profile mig-1g-10gb asks for H100 MIG slice 1g.10gb, but this host has no NVIDIA GPU)" in text


@pytest.mark.notebooks
@pytest.mark.slurm
def test_dask_on_slurm_notebook_runs_on_local_slurm_and_leaves_no_job(slurm_cluster, artifacts_dir):
    server = f"nb{uuid.uuid4().hex[:8]}"
    text = _run("03-dask-on-slurm-with-arc.ipynb", artifacts_dir, {"JUPYTERHUB_SERVER_NAME": server})
    assert "refused: walltime" in text
    assert "#SBATCH --comment=scip.ca:user=" in text and f"server={server}," in text
    assert "workers connected: 2" in text
    assert "sum of squares: 332833500" in text and "cluster closed" in text
    deadline = time.monotonic() + 60
    while (left := slurm_cluster.job_ids(comment_contains=f"server={server},")) and time.monotonic() < deadline:
        time.sleep(1)
    assert left == []
