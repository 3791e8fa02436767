"""The `scip-gpu` feature in `hub_setup.configure`: service, role, scopes, $SCIP_GPU_CONFIG, documented settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from traitlets.config import Config

from scip_jupyter.culling.hub import ACCESS, SERVICE_SCOPES
from scip_jupyter.culling.settings import from_json, settings_table
from scip_jupyter.hub_setup import HubSetup, configure

ROOT = Path(__file__).resolve().parents[2]


def wire(c=None, **kw):
    c = c or Config()
    setup = HubSetup(backend="local", catalog_path=str(ROOT / "hub_config" / "catalog.yaml"),
                     allocations_path=str(ROOT / "hub_config" / "allocations.yaml"), ledger_url="sqlite:///x.sqlite", **kw)
    return c, configure(c, setup)


def gpu_service(wiring):
    (service,) = [s for s in wiring.services if s["name"] == "scip-gpu"]
    return service


def test_both_hubs_get_the_service_with_its_files_and_settings(monkeypatch):
    monkeypatch.delenv("SCIP_GPU_CONFIG", raising=False)
    c = Config()
    c.GPUCulling.idle_time = 900
    c.GPUCulling.profiles = {"h100-full": {"threshold": 10}}
    c, wiring = wire(c)
    service = gpu_service(wiring)
    assert service["command"][1:] == ["-m", "scip_jupyter.culling.service"]
    assert service["url"].startswith("http://127.0.0.1:")
    env = service["environment"]
    assert env["SCIP_GPU_LEDGER"] == "sqlite:///x.sqlite" and env["SCIP_GPU_CATALOG"].endswith("catalog.yaml")
    culling, budget = from_json(env["SCIP_GPU_SETTINGS"])
    assert culling.idle_time == 900 and culling.rule_for("h100-full").threshold == 10 and budget.enabled
    (role,) = [r for r in wiring.roles if r.get("services") == ["scip-gpu"]]
    assert set(role["scopes"]) == set(SERVICE_SCOPES) and "delete:servers" in role["scopes"]
    (user_role,) = [r for r in wiring.roles if r["name"] == "user"]
    assert user_role["scopes"] == ["self", ACCESS]
    assert ACCESS in c.Spawner.server_token_scopes and "access:servers!server" in c.Spawner.server_token_scopes
    # each server finds the service (the monitor widget, JupyterLab)
    assert c.Spawner.environment["SCIP_GPU_SERVICE_URL"] == service["url"] + "/services/scip-gpu/"


def test_kubernetes_hub_listens_where_the_proxy_reaches_it(monkeypatch):
    monkeypatch.delenv("SCIP_GPU_CONFIG", raising=False)
    _c, wiring = wire(courses_service_ip="10.0.0.7")
    assert gpu_service(wiring)["url"].startswith("http://10.0.0.7:")


def test_config_file_overrides_and_can_turn_it_off(tmp_path, monkeypatch):
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps({"GPUCulling": {"enabled": False}, "BudgetWatcher": {"enabled": False}}))
    monkeypatch.setenv("SCIP_GPU_CONFIG", str(path))
    _c, wiring = wire()
    assert not [s for s in wiring.services if s["name"] == "scip-gpu"]


@pytest.mark.parametrize("text, problem", [
    ("{not json", "cannot read it as JSON"),
    ('{"GPUCuling": {}}', "GPUCuling: unknown section"),
])
def test_a_broken_config_file_stops_the_hub_naming_it(tmp_path, monkeypatch, text, problem):
    path = tmp_path / "gpu.json"
    path.write_text(text)
    monkeypatch.setenv("SCIP_GPU_CONFIG", str(path))
    with pytest.raises(SystemExit, match=re.escape(problem)) as info:
        wire()
    assert str(path) in str(info.value)


def test_docs_list_every_setting_as_declared():
    doc = (ROOT / "docs" / "culling.md").read_text()
    assert settings_table() in doc, "docs/culling.md: regenerate the settings table from settings_table()"
