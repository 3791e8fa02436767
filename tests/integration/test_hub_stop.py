"""`scip-jupyter up` stops on one SIGTERM: every managed service ends on the hub's first signal,
together (scip_jupyter.signals.stop_services_together), and the hub then finishes its clean-up.

Counts, not times: the hub's log names how many services it cleaned up, says "...done", and
never that a service was still stopping after the grace (then JupyterHub would escalate to
SIGTERM and SIGKILL, one service after another). docs/hub.md has the measured stop times.
"""

from __future__ import annotations

import re
import signal
import time

import pytest

pytestmark = pytest.mark.hub


def test_one_sigterm_stops_the_hub_and_all_its_services_together(hub_factory):
    hub = hub_factory.start(name="stop-hub")
    deadline = time.monotonic() + 120
    while "Starting service 'scip-usage'" not in hub.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(1)
    log = hub.log_path.read_text()
    started = set(re.findall(r"Starting service '([\w-]+)'", log))
    assert {"scip-courses", "scip-arc-reconcile", "scip-gpu", "scip-usage"} <= started, log[-3000:]
    time.sleep(3)  # let each service reach its loop
    proc = hub.process
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, hub.log_tail()
    log = hub.log_path.read_text()
    assert f"Cleaning up {len(started)} services..." in log, log[-3000:]
    assert "Services still stopping" not in log, log[-3000:]
    assert "...done" in log, log[-3000:]
