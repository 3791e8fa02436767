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


def test_usage_service_ends_on_its_first_signal_even_mid_round(tmp_path):
    """`scip-jupyter usage --watch` (scip-usage) ends on the hub's first SIGTERM, exit 0, no kill needed
    (it used to notice a stop flag once a second, after its round)."""
    env = dict(os.environ, JUPYTERHUB_API_URL=f"http://127.0.0.1:{free_port()}/hub/api",
               JUPYTERHUB_API_TOKEN="not-a-real-token", SCIP_LEDGER_URL=f"sqlite:///{tmp_path / 'ledger.sqlite'}",
               SCIP_ALLOCATIONS_FILE=str(ROOT / "hub_config" / "allocations.yaml"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "scip_jupyter.cli", "usage", "--watch", "300", "--no-sacct"],
        cwd=ROOT, env=env, preexec_fn=_ignore_sigint, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:  # its first round has run (the hub does not answer)
            line = proc.stderr.readline()
            lines.append(line)
            if "sweep failed" in line or not line:
                break
        assert any("sweep failed" in l for l in lines), lines
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


COUNTING_SERVICE = """
import os, signal, sys, time
from scip_jupyter.signals import stop_on_signals
got = []
stop_on_signals()
handler = signal.getsignal(signal.SIGINT)
def counting(signum, frame):
    got.append(signum)
    handler(signum, frame)
signal.signal(signal.SIGINT, counting)
signal.signal(signal.SIGTERM, counting)
try:
    print("ready", flush=True)
    while True:
        time.sleep(60)
except KeyboardInterrupt:
    pass
finally:
    with open(sys.argv[1], "w") as f:
        f.write(",".join(str(s) for s in got))
"""


class _Spawner:
    def __init__(self, proc):
        self.proc, self.pid = proc, proc.pid

    async def poll(self):
        return self.proc.poll()


async def test_hub_signals_every_service_once_and_together_before_its_one_by_one_stop(tmp_path):
    """JupyterHub's cleanup stops services one after another (each ~1 s on a busy machine); ours
    signals all of them at once: each gets exactly one SIGINT and has ended, by itself, before
    JupyterHub's own sequential stop runs (which then finds nothing to signal)."""
    from types import SimpleNamespace

    from scip_jupyter.signals import signal_services_together

    services = []
    for i in range(4):
        proc = subprocess.Popen([sys.executable, "-c", COUNTING_SERVICE, str(tmp_path / f"s{i}")], cwd=ROOT,
                                preexec_fn=_ignore_sigint, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        services.append(SimpleNamespace(name=f"s{i}", managed=True, spawner=_Spawner(proc)))
    services.append(SimpleNamespace(name="external", managed=False, spawner=None))
    try:
        left = await signal_services_together(services, grace=30)
        assert left == []
        for i, s in enumerate(services[:4]):
            assert s.spawner.proc.poll() == 0, s.name  # ended by itself, exit 0 (not killed)
            assert (tmp_path / f"s{i}").read_text() == str(int(signal.SIGINT))  # one signal each
    finally:
        for s in services[:4]:
            if s.spawner.proc.poll() is None:
                s.spawner.proc.kill()
                s.spawner.proc.wait()


def test_embedded_hub_stops_its_services_together():
    from jupyterhub.app import JupyterHub

    from scip_jupyter.signals import stop_services_together

    stop_services_together()
    stop_services_together()  # once per process
    assert JupyterHub._scip_services_together
    assert JupyterHub.cleanup.__qualname__.startswith("stop_services_together")


_FAKE_HUB = r"""
import os, subprocess, sys
# as JupyterHub's LocalProcessSpawner starts a managed service: its own session, the hub's env
proc = subprocess.Popen(sys.argv[1:], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
print(proc.pid, flush=True)
for line in proc.stderr:  # until the service's first pass has run
    if "nothing cancelled" in line:
        print("ready", flush=True)
        break
sys.stdin.read()  # until killed
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("managed", [True, False])
def test_a_managed_service_ends_when_its_hub_is_killed(tmp_path, managed):
    """`kill -9` of the hub cannot stop its services (own sessions): a managed one ends by itself
    (PR_SET_PDEATHSIG), so a restarted hub never meets an orphaned copy. The same command run by
    hand (no JUPYTERHUB_SERVICE_NAME) is not tied to its parent."""
    env = dict(os.environ, JUPYTERHUB_API_URL=f"http://127.0.0.1:{free_port()}/hub/api",
               JUPYTERHUB_API_TOKEN="not-a-real-token", SCIP_ARC_REGISTRY=str(tmp_path / "jobs.sqlite"))
    env.pop("JUPYTERHUB_SERVICE_NAME", None)
    if managed:
        env["JUPYTERHUB_SERVICE_NAME"] = "scip-arc-reconcile"
    hub = subprocess.Popen(
        [sys.executable, "-c", _FAKE_HUB, sys.executable, "-m", "scip_jupyter.cli", "arc", "reconcile", "--hub",
         "--every", "300", "--preset", "local-slurm"],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    service = int(hub.stdout.readline())
    try:
        assert hub.stdout.readline().strip() == "ready"
        assert _alive(service)
        hub.kill()
        hub.wait()
        deadline = time.monotonic() + 30
        while _alive(service) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(service) is (not managed)
    finally:
        if _alive(service):
            os.kill(service, signal.SIGKILL)
