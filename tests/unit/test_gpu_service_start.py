"""The scip-gpu service survives a ledger database that is down when the hub starts.

JupyterHub exits when a managed service dies or its port stays closed (app.py start_service), so a
PostgreSQL that is down at the hub's start must not end the service: it listens at once, answers 503
(in the person's language) until the ledger answers, and tries again with a back-off.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests

from scip_jupyter.culling import service
from tests.fixtures.common import ROOT, free_port

CATALOG = str(ROOT / "scip_jupyter" / "data" / "catalog.yaml")


async def test_build_waits_for_the_ledger_and_then_builds(tmp_path, caplog):
    env = {service.ENV_LEDGER: f"postgresql+psycopg://scip@127.0.0.1:{free_port()}/none?connect_timeout=2",
           service.ENV_CATALOG: CATALOG}
    waits = []

    async def sleep(seconds):  # the third attempt finds a database that answers
        waits.append(seconds)
        if len(waits) == 2:
            env[service.ENV_LEDGER] = f"sqlite:///{tmp_path / 'ledger.sqlite'}"

    caplog.set_level("WARNING", logger="scip.gpu")
    culling, budget, records, arbiter, watch = await service.build_when_ready(env, wait=1, most=1.5, sleep=sleep)
    assert waits == [1, 1.5]
    assert arbiter is not None and records is not None
    lines = [r.getMessage() for r in caplog.records if "ledger not available" in r.getMessage()]
    assert len(lines) == 2 and all("does not answer" in line for line in lines), lines
    assert not any("127.0.0.1" in line or "scip@" in line for line in lines)  # never the address


async def test_other_errors_are_not_waited_for(tmp_path):
    """A broken settings value is the operator's to fix: no retry loop hides it."""
    env = {service.ENV_LEDGER: f"sqlite:///{tmp_path / 'ledger.sqlite'}", service.ENV_CATALOG: CATALOG,
           service.ENV_SETTINGS: "{not json"}
    waits = []

    async def sleep(seconds):
        waits.append(seconds)

    with pytest.raises(Exception) as raised:
        await service.build_when_ready(env, sleep=sleep)
    assert waits == [] and not service._ledger_unavailable(raised.value)


def test_the_service_listens_and_answers_503_while_its_ledger_is_down(tmp_path):
    port = free_port()
    env = dict(os.environ, JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}/", JUPYTERHUB_SERVICE_PREFIX="/services/scip-gpu/",
               JUPYTERHUB_API_URL=f"http://127.0.0.1:{free_port()}/hub/api", JUPYTERHUB_API_TOKEN="not-a-token",
               JUPYTERHUB_CLIENT_ID="service-scip-gpu", JUPYTERHUB_SERVICE_NAME="scip-gpu",
               **{service.ENV_LEDGER: f"postgresql+psycopg://scip@127.0.0.1:{free_port()}/none?connect_timeout=2",
                  service.ENV_CATALOG: CATALOG})
    proc = subprocess.Popen([sys.executable, "-m", "scip_jupyter.culling.service"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        answer = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/services/scip-gpu/api/status",
                                      headers={"Accept-Language": "fr"}, timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert proc.poll() is None, "the service must keep running while its ledger is down"
        assert answer is not None and answer.status_code == 503, answer
        assert "registre des allocations" in answer.text
        time.sleep(3)  # at least one more attempt
        assert proc.poll() is None
    finally:
        proc.terminate()
        try:
            err = proc.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1]
    assert err.count("ledger not available") >= 2, err
