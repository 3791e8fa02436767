"""Adaptive scaling while the hub refuses GPU scale-ups: one clear line per answer, never sbatch.

`ARCCluster.adapt()` in a notebook server asks the hub before every GPU scale-up
(allocations/burst.py). Here the hub is a tiny HTTP server on 127.0.0.1 answering as
the real one does (test_allocations_burst.FakeHub; the real hub's endpoint is in
tests/integration/test_burst_hub.py), Slurm the scripted transport of the launcher
tests, which counts its sbatch calls. The adaptive loop runs every 50 ms and asks
again 50 ms after each refusal, so every answer below is asked for many times.
"""

from __future__ import annotations

import logging

import pytest

from scip_jupyter.allocations.burst import decide_burst
from scip_jupyter.arc.cluster import ARCCluster
from scip_jupyter.i18n import use_locale

from .test_allocations_burst import FakeHub, lab, req
from .test_widgets_launcher import SHIPPED, ScriptedSlurm, private_state, wait_for  # noqa: F401 (fixture)

ASKS = 6  # questions the hub must get for each answer before the log is counted


class Records(logging.Handler):
    """Every record of the loggers it is attached to (distributed's do not propagate to the root)."""

    def __init__(self, *names: str):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.loggers = [logging.getLogger(n) for n in names]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.addHandler(self)
            lg.setLevel(logging.INFO)

    def emit(self, record):
        self.records.append(record)

    def lines(self, text: str) -> list[str]:
        return [r.getMessage() for r in self.records if text in r.getMessage()]

    def close(self):
        for lg, level in zip(self.loggers, self.levels):
            lg.removeHandler(self)
            lg.setLevel(level)
        super().close()


def refusal(used: float) -> dict:
    return decide_burst(lab(), used, req(), 2).to_json()


@pytest.fixture
def hub(monkeypatch, private_state):  # noqa: F811
    fake = FakeHub(200, refusal(9.75))
    for key, value in fake.env.items():
        monkeypatch.setenv(key, value)
    for key in ("JUPYTERHUB_SERVICE_NAME", "SCIP_LEDGER_URL", "SCIP_ALLOCATIONS_FILE"):
        monkeypatch.delenv(key, raising=False)  # as in a person's server: only the hub decides
    yield fake
    fake.close()


@pytest.fixture
def logs():
    handler = Records("scip_jupyter.arc.cluster", "distributed.deploy.adaptive")
    yield handler
    handler.close()


def gpu_cluster(transport) -> ARCCluster:
    return ARCCluster("local-slurm", presets=SHIPPED, user="alice", user_accounts=["def-lab"], account="def-lab",
                      gpu_type="h100", gpus=1, walltime="01:00:00", transport=transport, coalesce_window=0.02,
                      submit_retry_after=0.05)


def asked_more(hub: FakeHub, what: str) -> None:
    seen = len(hub.seen)
    wait_for(lambda: len(hub.seen) >= seen + ASKS, f"{ASKS} more questions to the hub ({what})")


def test_refused_burst_under_adapt_logs_one_line_per_answer_and_never_reaches_sbatch(hub, logs):
    transport = ScriptedSlurm()
    cluster = gpu_cluster(transport)
    try:
        cluster.adapt(minimum=2, maximum=2, interval="50ms")
        asked_more(hub, "0.25 GPU-hours left")
        refused = logs.lines("refused, nothing was submitted")
        assert len(refused) == 1, refused
        assert "group lab" in refused[0] and "0.25 of 10 GPU-hours left" in refused[0], refused[0]
        assert "'local-slurm'" in refused[0] and "scale-up to 2 workers" in refused[0]
        assert transport.calls["sbatch"] == 0 and not cluster.worker_spec
        assert cluster.last_error is not None and "group lab" in cluster.last_error.message

        hub.body = refusal(9.9)  # less left: a new answer, one more line
        asked_more(hub, "0.1 GPU-hours left")
        refused = logs.lines("refused, nothing was submitted")
        assert len(refused) == 2 and "0.1 of 10 GPU-hours left" in refused[1], refused

        hub.status, hub.body = 500, {"message": "ledger unreadable"}  # the hub cannot answer: refused (503)
        asked_more(hub, "the hub failing")
        refused = logs.lines("refused, nothing was submitted")
        assert len(refused) == 3 and "could not ask the hub" in refused[2] and "ledger unreadable" in refused[2]
        assert transport.calls["sbatch"] == 0

        # never dask's traceback for a refusal, however often it was asked
        assert not [r for r in logs.records if r.exc_info or "encountered an error" in r.getMessage()]

        hub.status, hub.body = 200, decide_burst(lab(), 0, req(), 2).to_json()  # allowed again
        wait_for(lambda: transport.calls["sbatch"] == 1, "the allowed scale-up's one sbatch")
        assert len(logs.lines("allows scale-ups again")) == 1
        assert len(logs.lines("refused, nothing was submitted")) == 3
    finally:
        cluster.close()


def test_refusal_line_in_french(hub, logs, monkeypatch):
    monkeypatch.setenv("SCIP_LANG", "fr")  # the kernel's language (the cluster's loop runs in its own thread)
    with use_locale("fr"):
        hub.body = refusal(9.75)  # the hub answers in the language the server asks in
    cluster = gpu_cluster(ScriptedSlurm())
    try:
        cluster.adapt(minimum=2, maximum=2, interval="50ms")
        asked_more(hub, "a refusal")
    finally:
        cluster.close()
    assert {seen[1] for seen in hub.seen} == {"token server-token"}
    (line,) = [r.getMessage() for r in logs.records if r.name == "scip_jupyter.arc.cluster" and r.levelno >= 30]
    assert "mise à l'échelle adaptative sur la grappe 'local-slurm'" in line and "rien n'a été soumis" in line, line


def test_scale_refused_by_hand_still_raises(hub, logs):
    """Outside adapt(), the person asked: the refusal is raised to them (tests/integration/test_burst_hub.py)."""
    from scip_jupyter.arc.presets import ARCRequestError

    transport = ScriptedSlurm()
    cluster = gpu_cluster(transport)
    try:
        with pytest.raises(ARCRequestError) as refused:
            cluster.scale(2)
        assert refused.value.status == 403 and refused.value.decision.allocation == "group lab"
        assert transport.calls["sbatch"] == 0 and not logs.lines("refused, nothing was submitted")
    finally:
        cluster.close()
