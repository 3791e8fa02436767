"""Data jurisdiction on the real local Slurm: a refused preset never reaches sbatch; an allowed one does."""

from __future__ import annotations

import pytest

from scip_jupyter.arc.presets import ARCJurisdictionError
from scip_jupyter.storage import DATA_JURISDICTIONS_ENV
from tests.integration.test_arc_slurm import counted, make_cluster, server, wait_until  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slurm


def test_project_data_bound_to_bc_never_reaches_sbatch_on_a_ca_wide_cluster(slurm_cluster, counted, server,
                                                                             monkeypatch):
    monkeypatch.setenv(DATA_JURISDICTIONS_ENV, 'lab-bc=CA-BC')  # as the spawner sets it
    with pytest.raises(ARCJurisdictionError) as info:
        make_cluster(server, n_workers=2)
    assert "the data of lab-bc must stay in CA-BC" in str(info.value) and info.value.allowed == ["fir"]
    assert counted("sbatch") == []
    assert slurm_cluster.job_ids(comment_contains=f"server={server},") == []


def test_project_data_allowed_in_ca_is_submitted(slurm_cluster, counted, server, monkeypatch):
    monkeypatch.setenv(DATA_JURISDICTIONS_ENV, 'def-demo=CA')
    cluster = make_cluster(server)
    try:
        cluster.scale(1)
        wait_until(lambda: counted("sbatch"), 60, "the scale-up's sbatch")
        assert len(counted("sbatch")) == 1
    finally:
        cluster.close()
