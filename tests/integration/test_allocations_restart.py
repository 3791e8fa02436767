"""Restart safety: the hub is killed with SIGKILL and started again on the same state.

Two servers hold GPUs when the hub dies: researcher1's (an H100, metered: the test
quota is 1) keeps running; student1's (a MIG slice) dies while the hub is down.
After the restart, the ledger shows each server's holding once: researcher1's still
open (and still counted: researcher2 is refused the H100), student1's closed (by the
hub's own clean-up of a server it finds dead, or by the scip-usage service's sweep).
Nothing is counted twice or lost.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time

import pytest
from sqlalchemy import create_engine, text

from tests.fixtures.hub import start_hub

pytestmark = pytest.mark.hub


def reservations(url: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT user, server, profile, released_at FROM scip_reservations ORDER BY id"))]
    finally:
        engine.dispose()


def server_pid(state, user: str) -> int:
    db = sqlite3.connect(state / "hub" / "private" / "jupyterhub.sqlite")
    try:
        rows = db.execute(
            "SELECT s.state FROM spawners s JOIN users u ON s.user_id = u.id WHERE u.name = ? AND s.name = ''", (user,)
        ).fetchall()
    finally:
        db.close()
    return int(json.loads(rows[0][0])["pid"])


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)


def test_hub_killed_and_restarted_keeps_each_holding_once(hub_factory):
    state = hub_factory.state_dir()
    first = hub_factory.start(state, name="restart-hub-1")
    url = first.ledger_url
    for user, profile in (("researcher1", "h100-full"), ("student1", "mig-1g-10gb")):
        r = first.api("POST", f"/users/{user}/server", json={"profile": profile})
        assert r.status_code in (201, 202), r.text
        first.wait_for_server(user)
    assert [(u, p, end) for u, _s, p, end in reservations(url)] == [
        ("researcher1", "h100-full", None), ("student1", "mig-1g-10gb", None)]
    keep, lose = server_pid(state, "researcher1"), server_pid(state, "student1")

    os.killpg(first.process.pid, signal.SIGKILL)  # the hub and its proxy; servers run in their own sessions
    first.process.wait(timeout=30)
    first.process = None
    os.kill(lose, signal.SIGKILL)  # student1's server dies while the hub is down
    wait_until(lambda: not os.path.exists(f"/proc/{lose}") or open(f"/proc/{lose}/stat").read().split()[2] == "Z",
               30, "student1's server to die")

    second = start_hub(state)
    hub_factory._hubs[id(second)] = (second, "restart-hub-2")
    try:
        def settled():
            rows = reservations(url)
            student = [r for r in rows if r[0] == "student1"]
            return rows if student and all(r[3] is not None for r in student) else None

        rows = wait_until(settled, 120, "student1's holding to be released after the restart")
        assert [(u, p) for u, _s, p, _e in rows] == [("researcher1", "h100-full"), ("student1", "mig-1g-10gb")]
        assert rows[0][3] is None  # researcher1's server still runs: still held, once
        assert os.path.exists(f"/proc/{keep}")
        assert second.api("POST", "/users/researcher2").status_code == 201
        assert second.api("POST", "/groups/researchers/users", json={"users": ["researcher2"]}).status_code == 200
        refused = second.api("POST", "/users/researcher2/server", json={"profile": "h100-full"})
        assert refused.status_code == 403 and "max_gpus.h100" in refused.text
    finally:
        hub_factory.stop(second)
        try:
            os.kill(keep, signal.SIGKILL)
        except ProcessLookupError:
            pass
