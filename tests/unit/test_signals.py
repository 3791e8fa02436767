"""Managed hub services end on the hub's SIGINT even when SIGINT was inherited as ignored.

A hub started from a background job of a script passes SIGINT down as ignored;
without `scip_jupyter.signals.stop_on_signals` the hub's shutdown waited out
its interrupt timeout for every service (seen: 33 s for `make run`).
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.fixtures.common import ROOT, free_port


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_reconcile_service_stops_on_the_hubs_signal_even_with_sigint_ignored(tmp_path, sig):
    env = dict(os.environ, JUPYTERHUB_API_URL=f"http://127.0.0.1:{free_port()}/hub/api",
               JUPYTERHUB_API_TOKEN="not-a-real-token", SCIP_ARC_REGISTRY=str(tmp_path / "jobs.sqlite"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "scip_jupyter.cli", "arc", "reconcile", "--hub", "--every", "300",
         "--preset", "local-slurm"],
        cwd=ROOT, env=env, preexec_fn=_ignore_sigint, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # wait (bounded) until the first pass has run: it reports that the hub did not answer
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "nothing cancelled" in line or not line:
                break
        assert any("nothing cancelled" in l for l in lines), lines
        assert proc.poll() is None, "the service must keep running between passes"
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
