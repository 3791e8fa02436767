"""`scip-jupyter arc accounts sync` planning (pure): what arc.yaml and allocations.yaml declare vs what exists."""

from __future__ import annotations

import pytest

from scip_jupyter.allocations.quotas import Allocations
from scip_jupyter.arc.accounts import Existing, desired, parse_existing, plan
from scip_jupyter.arc.presets import load_presets
from scip_jupyter.config import ConfigError
from tests.fixtures.common import ROOT

PRESET = load_presets(ROOT / "hub_config" / "arc.yaml").get("local-slurm")
TRES = ["cpu", "gres/gpu", "gres/gpu:h100", "gres/gpu:h100_1g.10gb"]


def allocations(**groups):
    return Allocations.model_validate({"slurm": {"users": ["root", "scip-user"]}, "groups": groups})


def test_a_fresh_cluster_gets_accounts_associations_and_grptres():
    want = desired(PRESET, allocations(lab={"max_gpus": {"h100": 2, "h100_3g.40gb": 1}, "slurm_account": "def-lab"}), TRES)
    commands = plan(want, Existing(set(), set(), {}), "scip-local")
    text = [" ".join(c) for c in commands]
    assert any("add account def-demo" in t for t in text) and any("add account def-lab" in t for t in text)
    assert "sacctmgr -i add user scip-user Account=def-lab Cluster=scip-local" in text
    assert text[-1].endswith("set GrpTRES=gres/gpu:h100=2")
    assert want.skipped == ["lab.max_gpus.h100_3g.40gb"]  # not a TRES of this cluster


def test_in_step_plans_nothing_and_a_dropped_limit_is_cleared():
    groups = {"lab": {"max_gpus": {"h100": 2}, "slurm_account": "def-lab"}}
    want = desired(PRESET, allocations(**groups), TRES)
    have = parse_existing(
        "def-demo\ndef-lab\nroot\n",
        "def-demo||\ndef-demo|root|\ndef-demo|scip-user|\ndef-lab||gres/gpu:h100=2\ndef-lab|root|\ndef-lab|scip-user|\n",
    )
    assert plan(want, have, "scip-local") == []
    fewer = desired(PRESET, allocations(lab={"max_gpus": {"h100_1g.10gb": 3}, "slurm_account": "def-lab"}), TRES)
    (cmd,) = plan(fewer, have, "scip-local")
    assert cmd[-1] == "GrpTRES=gres/gpu:h100=-1,gres/gpu:h100_1g.10gb=3"


@pytest.mark.parametrize("groups, slurm, field", [
    ({"a": {"slurm_account": "def-x"}, "b": {"slurm_account": "def-x"}}, None, "already pays for group 'a'"),
    ({"a": {"slurm_account": "Def X"}}, None, "slurm_account"),
    ({}, {"users": ["Not A User"]}, "is not a Unix user name"),
])
def test_bad_slurm_settings_name_the_field(tmp_path, groups, slurm, field):
    import yaml

    from scip_jupyter.allocations.quotas import load_allocations

    data = {"groups": groups}
    if slurm:
        data["slurm"] = slurm
    path = tmp_path / "allocations.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as bad:
        load_allocations(path)
    assert field in str(bad.value) and "allocations.yaml:" in str(bad.value)
