"""Faults of the hub and the proxy, on real processes (a hub of the test's own, `scip-jupyter up`).

* the hub killed with `kill -9` while a server is starting, then restarted on the
  same state: the starting person gets a server again (no stuck "pending", no
  leftover process), a person whose server was running keeps it throughout;
* the proxy killed: the hub starts a new one and puts every route back, without
  a restart of anything else.

Recovery is waited for by polling with a bounded number of attempts (counted,
never timed).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.fixtures.common import free_port
from tests.fixtures.hub import retire_hub, start_hub

pytestmark = pytest.mark.hub
#: polls of 0.5 s each while waiting for a recovery
ATTEMPTS = 240


def _server_pids(username: str, api_url: str = "") -> list[int]:
    """Processes of single-user servers started for `username` (JUPYTERHUB_USER in their environment)
    by the hub whose API is `api_url` (JUPYTERHUB_API_URL; the restarted hub keeps it): another test's
    hub on this machine may run a server for the same demo account."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if api_url and f"JUPYTERHUB_API_URL={api_url}".encode() not in env:
            continue
        if f"JUPYTERHUB_USER={username}".encode() in env and (b"jupyterhub-singleuser" in cmd or b"jupyter-lab" in cmd
                                                                or b"jupyter_server" in cmd or b"jupyter-server" in cmd):
            out.append(int(proc.name))
    return out


def _post_or_error(hub, user: str):
    try:
        return hub.api("POST", f"/users/{user}/server", json={"profile": "cpu-small"}).status_code
    except requests.RequestException as exc:  # the hub died before it answered
        return type(exc).__name__


def _until(what: str, check, attempts: int = ATTEMPTS, pause: float = 0.5):
    for _ in range(attempts):
        try:
            value = check()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(pause)
    pytest.fail(f"{what}: not after {attempts} attempts")


def _ready(hub, user: str) -> bool:
    model = hub.user(user)
    return model["pending"] is None and bool(model["servers"].get("", {}).get("ready"))


def _settled(hub, user: str) -> bool:
    return hub.user(user)["pending"] is None


def _status(hub, user: str) -> int:
    return hub.get(f"/user/{user}/api/status", timeout=10).status_code


@pytest.fixture
def own_hub(hub_factory, artifacts_dir):
    state, port = hub_factory.state_dir(), free_port()
    hubs = [start_hub(state, port)]
    yield state, port, hubs
    for h in hubs:
        if h.process is not None:
            retire_hub(h, artifacts_dir, "faults-hub")


def test_hub_killed_mid_spawn_and_restarted(own_hub):
    state, port, hubs = own_hub
    hub = hubs[0]
    # researcher1's server runs before the fault: it must go on serving through it
    assert hub.api("POST", "/users/researcher1/server", json={"profile": "cpu-small"}).status_code in (201, 202)
    hub.wait_for_server("researcher1")
    assert _status(hub, "researcher1") == 200
    pid = hub.user("researcher1")["servers"][""]["state"]["pid"]
    api = next(e for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if e.startswith(b"JUPYTERHUB_API_URL="))
    api = api.decode().split("=", 1)[1]
    assert _server_pids("researcher1", api) == [pid]
    # student1 is starting when the hub dies: its server process exists, but start() has not
    # returned (the hub waits for the server to answer HTTP), so no pid is in the hub's database
    answer = []
    post = threading.Thread(target=lambda: answer.append(_post_or_error(hub, "student1")), daemon=True)
    post.start()
    _until("student1's server process appears", lambda: _server_pids("student1", api), attempts=ATTEMPTS * 50, pause=0.01)
    os.kill(hub.process.pid, signal.SIGKILL)
    post.join(60)
    assert answer and answer[0] != 201, f"the spawn had finished before the kill: {answer}"
    hub.process.wait(timeout=30)
    hub.process = None  # gone; the restarted hub below owns the proxy and the servers now
    # the proxy (a separate process) still routes researcher1 while no hub runs
    assert _status(hub, "researcher1") == 200

    again = start_hub(state, port)  # same state folder and port, as `make run` would after a crash
    hubs.append(again)
    assert _status(again, "researcher1") == 200  # kept: the new hub found it running
    # student1: no stuck "pending"; either their server came up, or they can start it again
    _until("student1's spawn settles after the restart", lambda: _settled(again, "student1"))
    if not _ready(again, "student1"):
        r = again.api("POST", "/users/student1/server", json={"profile": "cpu-small"})
        assert r.status_code in (201, 202, 400), r.text  # 400: "already running" is also an answer
        again.wait_for_server("student1")
    assert _status(again, "student1") == 200
    assert _server_pids("researcher1", api) == [pid], _server_pids("researcher1", api)
    leftovers = len(_server_pids("student1", api)) - 1
    again.stop_server("student1")
    again.stop_server("researcher1")
    orphans = _server_pids("student1", api)
    for pid in orphans:  # clean up what the spawner left, so later tests start clean
        os.kill(pid, signal.SIGKILL)
    _until("servers stopped", lambda: not _server_pids("student1", api) and not _server_pids("researcher1", api))
    # the process of the spawn the kill cut short was found and stopped (restarted hub's poll, or the
    # new start): one server for student1, and nothing left over once it is stopped
    assert leftovers == 0, f"{leftovers} orphan(s) of the cut-short spawn beside the new server"
    assert orphans == [], orphans


def test_proxy_killed_is_restarted_with_every_route(own_hub):
    state, _port, hubs = own_hub
    hub = hubs[0]
    assert hub.api("POST", "/users/researcher1/server", json={"profile": "cpu-small"}).status_code in (201, 202)
    hub.wait_for_server("researcher1")
    pidfile = state / "hub" / "private" / "proxy.pid"
    old = int(pidfile.read_text().strip())
    assert Path(f"/proc/{old}/cmdline").read_bytes().find(b"configurable-http-proxy") >= 0
    os.kill(old, signal.SIGKILL)
    # while it is down the person's browser gets "connection refused"; then the hub starts a new proxy
    _until("a new proxy answers", lambda: int(pidfile.read_text().strip() or 0) != old and requests.get(
        hub.url + "/hub/api/", timeout=5).status_code == 200)
    _until("researcher1's route is back", lambda: _status(hub, "researcher1") == 200)
    # logging in and starting a server work as before
    s = hub.login("student1")
    assert s.get(hub.url + "/hub/home", timeout=30).status_code == 200
    hub.stop_server("researcher1")
