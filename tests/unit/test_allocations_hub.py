"""Hub wiring of accounting (a hub_setup.FEATURES entry): the hub id and the scip-usage service."""

from __future__ import annotations

from traitlets.config import Config

from scip_jupyter.allocations import hub as usage_hub
from scip_jupyter.hub_setup import FEATURES, HubSetup, Wiring


def test_usage_feature_is_wired_for_both_hubs(monkeypatch):
    monkeypatch.delenv("SCIP_HUB_ID", raising=False)  # configure_usage sets it for the hub process
    c = Config()
    c.JupyterHub.db_url = "sqlite:////srv/a/jupyterhub.sqlite"
    setup = HubSetup(backend="kube", catalog_path="x", allocations_path="/etc/scip/allocations.yaml",
                     ledger_url="postgresql+psycopg://scip@db/scip", arc_cleanup_presets=["local-slurm", "fir"])
    wiring = Wiring(groups={})
    usage_hub.configure_usage(c, setup, wiring)
    (service,) = [s for s in wiring.services if s["name"] == usage_hub.SERVICE_NAME]
    assert service["command"][-4:] == ["--watch", "300", "--cluster", "local-slurm"]  # fir: ssh, no sacct
    assert any(r["name"] == usage_hub.SERVICE_NAME and "read:servers" in r["scopes"] for r in wiring.roles)
    assert service["environment"]["SCIP_LEDGER_URL"] == setup.ledger_url


def test_hub_id_is_stable_per_hub_database_and_differs_between_hubs(monkeypatch):
    monkeypatch.delenv("SCIP_HUB_ID", raising=False)
    monkeypatch.delenv("HELM_RELEASE_NAME", raising=False)
    a, b = Config(), Config()
    a.JupyterHub.db_url, b.JupyterHub.db_url = "sqlite:////srv/a.sqlite", "sqlite:////srv/b.sqlite"
    assert usage_hub.hub_id(a) == usage_hub.hub_id(a) != usage_hub.hub_id(b)
    monkeypatch.setenv("HELM_RELEASE_NAME", "scip-east")
    assert usage_hub.hub_id(a) == "scip-east"
    monkeypatch.setenv("SCIP_HUB_ID", "replica-2")
    assert usage_hub.hub_id(a) == "replica-2"


def test_no_allocations_no_service(monkeypatch):
    monkeypatch.delenv("SCIP_HUB_ID", raising=False)
    wiring = Wiring(groups={})
    usage_hub.configure_usage(Config(), HubSetup(backend="local", catalog_path="x"), wiring)
    assert wiring.services == []
