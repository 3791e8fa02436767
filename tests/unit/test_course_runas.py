"""runas.call_as: class-wide course operations run as the student's account, bounded in time, without fork().

The course service is threaded (tornado + asyncio.to_thread): fork() there can
copy a lock held by another thread into the child, which then hangs for ever.
So the work runs in a fresh interpreter started as the owner, with a timeout,
and only plain JSON comes back (a child running as the student cannot hand root a pickle).
"""

from __future__ import annotations

import os
import pwd
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from scip_jupyter.courses import runas
from scip_jupyter.courses.runas import RunAsError, call_as


@pytest.fixture
def owner():
    assert os.geteuid() == 0, "these tests drop privileges, so they run as root (make test does)"
    acct = pwd.getpwnam("scip-user")
    return acct.pw_uid, acct.pw_gid


def test_work_runs_as_the_owner(owner):
    assert call_as(owner, os.getuid) == owner[0]
    assert call_as(owner, os.getgroups) == [] or call_as(owner, os.getgroups) == [owner[1]]


def test_no_fork_from_a_threaded_service(owner, monkeypatch):
    def no_fork():
        raise AssertionError("call_as forked the threaded parent")

    monkeypatch.setattr(os, "fork", no_fork)
    held = threading.Lock()
    held.acquire()  # a lock another thread holds, as in the course service
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: call_as(owner, os.getuid), range(8)))
    finally:
        held.release()
    assert results == [owner[0]] * 8


def test_a_stuck_worker_is_stopped_at_the_timeout(owner):
    with pytest.raises(RunAsError, match=r"did not finish within 1 s"):
        call_as(owner, time.sleep, 60, timeout=1)


def test_errors_come_back_as_messages(owner):
    with pytest.raises(RunAsError, match=r"FileNotFoundError: .*no-such-file"):
        call_as(owner, os.stat, "/no-such-file")


def test_only_plain_data_comes_back(owner):
    with pytest.raises(RunAsError, match="plain data"):
        call_as(owner, threading.Lock)


def test_in_process_when_nothing_to_drop():
    assert call_as(None, os.getpid) == os.getpid()
    assert call_as((0, 0), os.getpid) == os.getpid()
    assert runas.DEFAULT_TIMEOUT > 0


@pytest.fixture
def reachable_dir():
    """A folder scip-user can reach (pytest's tmp_path lives under a 0700 folder of root)."""
    import shutil
    import uuid

    from tests.fixtures.common import ROOT

    path = ROOT / ".state" / f"test-runas-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_class_operations_run_through_the_worker_as_the_student(owner, reachable_dir):
    tmp_path = reachable_dir
    from scip_jupyter.courses.material import folder_snapshot
    from scip_jupyter.courses.ops import Homes, status_student, sync_student
    from scip_jupyter.courses.registry import Course

    os.chmod(tmp_path, 0o755)
    material = tmp_path / "material"
    material.mkdir()
    (material / "intro.ipynb").write_text("{}")
    home = tmp_path / "homes" / "alice"
    home.mkdir(parents=True)
    os.chmod(tmp_path / "homes", 0o755)
    os.chown(home, *owner)
    course = Course.model_validate({
        "id": "c1", "title": "C", "instructors": ["teach"], "students": {"users": ["alice"]},
        "material": {"path": str(material)}, "profiles": ["cpu-small"], "start": "2026-01-01", "end": "2099-01-01",
    })
    snap = folder_snapshot(material)
    outcome = sync_student(course, snap, Homes(str(tmp_path / "homes")), "alice")
    assert outcome.ok, outcome.error
    delivered = home / "courses" / "c1" / "intro.ipynb"
    assert delivered.stat().st_uid == owner[0]  # written by the student's account, not root
    status = status_student(course, snap, Homes(str(tmp_path / "homes")), "alice")
    assert status.delivered_version == snap.version and status.error == ""
