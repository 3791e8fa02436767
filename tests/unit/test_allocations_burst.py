"""The pre-sbatch GPU-hours check: pure decision, the hub's body validation, who decides, the client.

The hub's real endpoint is tested in tests/integration/test_burst_hub.py; here the client
talks to a tiny HTTP server on 127.0.0.1 answering as the hub does (or not at all).
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from scip_jupyter.allocations import burst
from scip_jupyter.allocations.burst import BurstDecision, burst_body, check_gpu_hours, decide_burst
from scip_jupyter.allocations.hub_api import BodyError, configure_burst, parse_body, validate_body
from scip_jupyter.allocations.policy import group_account
from scip_jupyter.allocations.quotas import Allocations
from scip_jupyter.arc.presets import ARCRequestError, load_presets, validate_request
from scip_jupyter.hub_setup import FEATURES, HubSetup, Wiring
from scip_jupyter.i18n import use_locale

ROOT = Path(__file__).resolve().parents[2]
PRESETS = load_presets(ROOT / "hub_config" / "arc.yaml")
PRESET = PRESETS.get("local-slurm")
NOW = dt.datetime(2026, 12, 15, 12, 0)
ALLOCATIONS = Allocations.model_validate(yaml.safe_load("""
groups:
  lab: {max_gpus: {h100: 2}, gpu_hours: 10, slurm_account: def-lab}
  other: {max_gpus: {h100: 2}, gpu_hours: 10, slurm_account: def-other}
"""))


def req(gpus=1, gpu_type="h100", walltime="01:00:00", account="def-lab"):
    return validate_request(PRESET, {"account": account, "gpus": gpus, "gpu_type": gpu_type, "walltime": walltime},
                            [account])


def lab():
    return group_account("lab", ALLOCATIONS.groups["lab"], ALLOCATIONS.period, NOW)


# --- the pure decision -----------------------------------------------------------------------------


@pytest.mark.parametrize("used, jobs, allowed, fits", [
    (0, 10, True, 10),      # exactly what is left
    (9.5, 1, False, 0),     # half an hour left, one hour asked
    (7, 4, False, 3),       # 3 left: 3 jobs would fit
    (12, 1, False, 0),      # over already: nothing left, not negative
])
def test_full_h100_scale_up_fits_or_is_refused_with_what_would_fit(used, jobs, allowed, fits):
    decision = decide_burst(lab(), used, req(), jobs)
    assert (decision.allowed, decision.fits, decision.metered) == (allowed, fits, True)
    assert decision.left == max(10 - used, 0) and decision.asked == jobs


def test_refusal_names_allocation_left_and_asked():
    decision = decide_burst(lab(), 9.5, req(gpus=2, walltime="00:30:00"), 3)
    assert not decision.allowed
    for part in ("group lab", "def-lab", "0.5 of 10 GPU-hours left this month", "3 jobs", "up to 3 GPU-hours",
                 "2 × h100 × 0.5 h"):
        assert part in decision.message
    error = decision.error()
    assert error.field == "workers" and error.status == 403 and error.allowed == ["at most 0 more jobs of this size"]


def test_mig_slice_costs_its_share():
    decision = decide_burst(lab(), 9, req(gpu_type="h100_1g.10gb", walltime="07:00:00"), 1)  # 1/7 × 7 h = 1
    assert decision.allowed and decision.asked == pytest.approx(1.0) and decision.fits == 1


def test_unmetered_account_is_allowed():
    decision = decide_burst(None, 0, req(account="def-demo"), 100)
    assert decision.allowed and not decision.metered and decision.left is None


def test_refusal_in_french():
    with use_locale("fr"):
        decision = decide_burst(lab(), 9.5, req(), 2)
    assert "Slurm account" not in decision.message and "heures-GPU" in decision.message, decision.message


def test_decision_round_trips_through_json():
    decision = decide_burst(lab(), 9.5, req(), 2)
    assert BurstDecision.from_json(json.loads(json.dumps(decision.to_json()))) == decision
    with pytest.raises(ValueError):
        BurstDecision.from_json({"allowed": "yes"})


# --- who decides -----------------------------------------------------------------------------------


@pytest.mark.parametrize("env, mode", [
    ({"JUPYTERHUB_API_URL": "http://h/hub/api", "JUPYTERHUB_API_TOKEN": "t"}, "hub"),
    ({"JUPYTERHUB_API_URL": "http://h/hub/api", "JUPYTERHUB_API_TOKEN": "t",
      "SCIP_LEDGER_URL": "sqlite://", "SCIP_ALLOCATIONS_FILE": "a.yaml"}, "hub"),  # a server: the hub, always
    ({"JUPYTERHUB_API_URL": "u", "JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_SERVICE_NAME": "scip-usage",
      "SCIP_LEDGER_URL": "sqlite://", "SCIP_ALLOCATIONS_FILE": "a.yaml"}, "ledger"),  # a hub service
    ({"SCIP_LEDGER_URL": "sqlite://", "SCIP_ALLOCATIONS_FILE": "a.yaml"}, "ledger"),
    ({"JUPYTERHUB_API_URL": "u"}, None),
    ({}, None),
])
def test_who_decides(env, mode):
    assert burst.burst_mode(env) == mode


# --- the hub's body validation ---------------------------------------------------------------------

GOOD = {"preset": "local-slurm", "gpus_per_job": 1, "jobs": 2, "walltime": "01:00:00", "account": "def-lab"}


@pytest.mark.parametrize("change, field, status", [
    ({"user": "researcher1"}, "user", 400),             # nobody asks on someone's behalf
    ({"preset": None}, "preset", 400),
    ({"preset": "nope"}, "preset", 400),
    ({"jobs": 0}, "jobs", 400),
    ({"jobs": "2"}, "jobs", 400),
    ({"jobs": True}, "jobs", 400),
    ({"jobs": 5000}, "jobs", 400),
    ({"gpus_per_job": 9}, "gpus_per_job", 400),
    ({"gpus_per_job": "x"}, "gpus_per_job", 400),
    ({"gpu_type": "a100"}, "gpu_type", 400),
    ({"walltime": "8-00:00:00"}, "walltime", 400),
    ({"walltime": "soon"}, "walltime", 400),
    ({"walltime": 3600}, "walltime", 400),
    ({"account": "def-other"}, "account", 403),         # another project's allocation
    ({"account": "rrg-nobody"}, "account", 403),        # not one of the person's accounts
])
def test_bad_body_is_refused_naming_the_field(change, field, status):
    body = {**GOOD, **change}
    with pytest.raises(BodyError) as refused:
        validate_body(body, PRESETS, "ana", ["lab"], ALLOCATIONS)
    assert (refused.value.field, refused.value.status) == (field, status), refused.value
    data = refused.value.to_json()
    assert data["message"].startswith(f"{field}: ") and "allowed values" in data["message"]


def test_good_body_gives_the_request_with_the_persons_group_account():
    preset, request, jobs = validate_body(GOOD, PRESETS, "ana", ["lab"], ALLOCATIONS)
    assert (preset.name, request.account, request.gpus, request.gpu_type, request.walltime_seconds, jobs) == (
        "local-slurm", "def-lab", 1, "h100", 3600, 2)


def test_body_is_what_the_client_sends():
    body = burst_body(req(), 3)
    assert set(body) <= {"preset", "gpus_per_job", "jobs", "walltime", "gpu_type", "account"}
    validate_body(body, PRESETS, "ana", ["lab"], ALLOCATIONS)


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"x"'])
def test_body_that_is_no_json_object(raw):
    with pytest.raises(BodyError) as refused:
        parse_body(raw)
    assert refused.value.field == "body"


def test_endpoint_is_a_feature_of_both_hubs():
    c = Config()
    setup = HubSetup(backend="kube", catalog_path="x", allocations_path="/etc/a.yaml")
    configure_burst(c, setup, Wiring(groups={}))
    assert [p for p, _h in c.JupyterHub.extra_handlers] == ["/api/scip/allocations/burst"]
    # and hub_setup.configure (both hub configs call it) runs it among its FEATURES
    (feature,) = [f for f in FEATURES if "allocations.hub_api" in inspect.getsource(f)]
    wired = Config()
    feature(wired, HubSetup(backend="local", catalog_path="x"), Wiring(groups={}))
    assert "/api/scip/allocations/burst" in [p for p, *_rest in wired.JupyterHub.extra_handlers]


# --- the client: asking the hub --------------------------------------------------------------------


class FakeHub:
    """Answers POST .../scip/allocations/burst with (status, body); records what it was sent."""

    def __init__(self, status: int, body):
        self.status, self.body, self.seen = status, body, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                outer.seen.append((self.path, self.headers.get("Authorization"), json.loads(self.rfile.read(length))))
                data = outer.body if isinstance(outer.body, bytes) else json.dumps(outer.body).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def env(self):
        return {"JUPYTERHUB_API_URL": f"http://127.0.0.1:{self.server.server_port}/hub/api",
                "JUPYTERHUB_API_TOKEN": "server-token"}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_hub():
    hubs = []

    def make(status, body):
        hubs.append(FakeHub(status, body))
        return hubs[-1]

    yield make
    for h in hubs:
        h.close()


def test_refusal_from_the_hub_raises_its_message(fake_hub):
    refusal = decide_burst(lab(), 9.5, req(), 2)
    hub = fake_hub(200, refusal.to_json())
    with pytest.raises(ARCRequestError) as refused:
        check_gpu_hours(PRESET, req(), 2, env=hub.env)
    assert refused.value.status == 403 and refusal.message in str(refused.value)
    (path, auth, body), = hub.seen
    assert path == "/hub/api/scip/allocations/burst" and auth == "token server-token"
    assert body["jobs"] == 2 and body["gpus_per_job"] == 1 and body["walltime"] == "01:00:00"


def test_allowed_by_the_hub(fake_hub):
    hub = fake_hub(200, decide_burst(lab(), 0, req(), 2).to_json())
    assert check_gpu_hours(PRESET, req(), 2, env=hub.env).allowed


def test_hub_refusing_the_question_names_its_field(fake_hub):
    hub = fake_hub(400, BodyError("walltime", "over the maximum", ["03:00:00"]).to_json())
    with pytest.raises(ARCRequestError) as refused:
        check_gpu_hours(PRESET, req(), 2, env=hub.env)
    assert (refused.value.field, refused.value.status, refused.value.allowed) == ("walltime", 400, ["03:00:00"])


@pytest.mark.parametrize("status, body", [(500, {"message": "boom"}), (404, {"message": "no such"}),
                                          (200, b"<html>"), (200, {"allowed": "maybe"})])
def test_hub_that_cannot_answer_refuses_gpu_jobs(fake_hub, status, body):
    hub = fake_hub(status, body)
    with pytest.raises(ARCRequestError) as refused:
        check_gpu_hours(PRESET, req(), 1, env=hub.env)
    assert refused.value.status == 503 and hub.env["JUPYTERHUB_API_URL"] in str(refused.value)
    assert "nothing was submitted" in str(refused.value)
    if isinstance(body, dict) and status != 200:
        assert body["message"] in str(refused.value)  # what the hub said (e.g. its ledger is not readable)


def test_hub_down_refuses_gpu_jobs_and_never_asks_for_cpu_jobs():
    from tests.fixtures.common import free_port

    env = {"JUPYTERHUB_API_URL": f"http://127.0.0.1:{free_port()}/hub/api", "JUPYTERHUB_API_TOKEN": "t"}
    with pytest.raises(ARCRequestError) as refused:
        check_gpu_hours(PRESET, req(), 1, env=env)
    assert refused.value.status == 503 and env["JUPYTERHUB_API_URL"] in str(refused.value)
    cpu = validate_request(PRESET, {"account": "def-demo"}, ["def-demo"])
    assert check_gpu_hours(PRESET, cpu, 5, env=env) is None
    assert check_gpu_hours(PRESET, req(), 0, env=env) is None  # scale-down


def test_nothing_to_ask_outside_servers_and_services():
    assert check_gpu_hours(PRESET, req(), 1000, env={}) is None
