"""The allocation ledger's database locked by another process, or gone (a hub of the test's own, real SQLite).

* locked for a moment: the spawn waits for it, then starts; the hub keeps answering everyone meanwhile;
* locked past the ledger's busy timeout: the spawn fails with a message saying the
  ledger is not available (never a traceback), nothing is reserved, and the next
  spawn works once the lock is gone, without a restart;
* the SQLite file removed: spawns fail with the same message, nothing is reserved, running
  servers go on; restored from a backup, the next spawn works without a restart.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
import requests

from scip_jupyter.allocations.ledger import Ledger

pytestmark = pytest.mark.hub
H100 = {"profile": "h100-full"}
ATTEMPTS = 300  # polls of 0.5 s


@pytest.fixture(scope="module")
def ledger_hub(hub_factory):
    hub = hub_factory.start(name="faults-ledger-hub")
    yield hub
    hub_factory.stop(hub)


@pytest.fixture
def lock(ledger_hub):
    """An EXCLUSIVE transaction on the ledger file, as a stuck writer elsewhere would hold it."""
    path = ledger_hub.ledger_url.removeprefix("sqlite:///")
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    state = {"db": db}

    def release():
        if state["db"] is not None:
            state["db"].execute("ROLLBACK")
            state["db"].close()
            state["db"] = None

    yield release
    release()
    ledger_hub.stop_server("researcher1")


def _active(hub, user: str) -> int:
    ledger = Ledger(hub.ledger_url)
    try:
        return sum(1 for h in ledger.active() if h.user == user)
    finally:
        ledger.dispose()


def _progress_messages(hub, user: str) -> list[str]:
    r = requests.get(f"{hub.api_url}/users/{user}/server/progress", headers=hub.headers, stream=True, timeout=30)
    out = []
    for line in r.iter_lines(decode_unicode=True):
        if line and line.startswith("data:"):
            out.append(json.loads(line[5:]).get("message", ""))
    return out


def test_ledger_locked_for_a_moment_only_delays_the_spawn(ledger_hub, lock):
    hub = ledger_hub
    r = hub.api("POST", "/users/researcher1/server", json=H100)
    assert r.status_code in (201, 202), r.text
    # everyone else is served while the ledger is locked (its calls run off the hub's event loop)
    answers = [hub.api("GET", "/users/student1", timeout=10).status_code for _ in range(5)]
    login = hub.login("student1").get(hub.url + "/hub/home", timeout=10).status_code
    assert answers == [200] * 5 and login == 200
    lock()
    assert hub.wait_for_server("researcher1")["user_options"] == H100
    assert _active(hub, "researcher1") == 1


def test_ledger_locked_past_its_timeout_fails_the_spawn_with_a_message(ledger_hub, lock):
    hub = ledger_hub
    r = hub.api("POST", "/users/researcher1/server", json=H100)
    if r.status_code == 503:  # failed within the hub's slow_spawn_timeout: the message is in the answer
        messages = [r.json()["message"]]
    else:
        assert r.status_code == 202, r.text
        for _ in range(ATTEMPTS):
            if hub.user("researcher1")["pending"] is None:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the spawn neither started nor failed while the ledger stayed locked")
        messages = _progress_messages(hub, "researcher1")
    assert any("allocations: the ledger is not available" in m for m in messages), messages
    assert not any("Traceback" in m for m in messages)
    assert hub.user("researcher1")["servers"] == {}
    lock()
    assert _active(hub, "researcher1") == 0  # the failed attempt holds nothing
    # once the lock is gone the same request works, no restart
    r = hub.api("POST", "/users/researcher1/server", json=H100)
    assert r.status_code in (201, 202), r.text
    hub.wait_for_server("researcher1")
    assert _active(hub, "researcher1") == 1


def test_ledger_file_gone_fails_spawns_clearly_and_recovers_once_restored(ledger_hub, tmp_path):
    """SQLite "gone": the file removed under a running hub. Spawns fail with the 503 message and
    reserve nothing; running servers go on; restoring the file from its backup (a different file
    at the same path) is the recovery, without a restart (docs/allocations.md)."""
    hub = ledger_hub
    r = hub.api("POST", "/users/researcher1/server", json=H100)
    assert r.status_code in (201, 202), r.text
    hub.wait_for_server("researcher1")
    assert _active(hub, "researcher1") == 1
    path = Path(ledger_hub.ledger_url.removeprefix("sqlite:///"))
    backup = tmp_path / "allocations-backup.sqlite"
    with sqlite3.connect(path) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)  # the operator's backup, taken while researcher1 runs
    mode = path.stat().st_mode & 0o777
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        f.unlink(missing_ok=True)
    try:
        r = hub.api("POST", "/users/student1/server", json={"profile": "cpu-small"})
        if r.status_code == 503:
            messages = [r.json()["message"]]
        else:
            assert r.status_code == 202, r.text
            for _ in range(ATTEMPTS):
                if hub.user("student1")["pending"] is None:
                    break
                time.sleep(0.5)
            else:
                pytest.fail("student1's spawn neither started nor failed while the ledger file was gone")
            messages = _progress_messages(hub, "student1")
        assert any("allocations: the ledger is not available" in m for m in messages), messages
        assert not any("Traceback" in m or str(path) in m for m in messages), messages
        assert hub.user("student1")["servers"] == {}
        # researcher1 is not affected
        assert hub.get("/user/researcher1/api/status", timeout=10).status_code == 200
    finally:
        restored = path.with_name(path.name + ".restoring")
        shutil.copyfile(backup, restored)
        os.chmod(restored, mode)
        restored.replace(path)  # the restore: a new file at the same path
    # nothing half-reserved: researcher1's holding is there, the failed attempt holds nothing
    assert _active(hub, "researcher1") == 1 and _active(hub, "student1") == 0
    # the next spawn works on the restored file, no restart
    r = hub.api("POST", "/users/student1/server", json={"profile": "cpu-small"})
    assert r.status_code in (201, 202), r.text
    hub.wait_for_server("student1")
    assert _active(hub, "researcher1") == 1
    hub.stop_server("student1")
    hub.stop_server("researcher1")
