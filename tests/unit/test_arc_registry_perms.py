"""The job registry says who runs what: its SQLite file and the WAL files beside it are private (0600)."""

from __future__ import annotations

import os
import stat

import pytest

from scip_jupyter.arc.registry import JobRegistry
from scip_jupyter.arc.tags import JobTags


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-0644-file"])
def test_registry_database_and_its_wal_and_shm_are_private(tmp_path, existing):
    path = tmp_path / "jobs.sqlite"
    old = os.umask(0o022)
    try:
        if existing:
            JobRegistry(path)
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(f"{path}{suffix}"):
                    os.chmod(f"{path}{suffix}", 0o644)
        reg = JobRegistry(path)
        reg.record("1", "local-slurm", JobTags(user="alice", server=""), preset="local-slurm")
        files = [f"{path}{s}" for s in ("", "-wal", "-shm") if os.path.exists(f"{path}{s}")]
        assert f"{path}-wal" in files and f"{path}-shm" in files  # WAL mode is on while it is open
        assert {f: oct(_mode(f)) for f in files} == {f: oct(0o600) for f in files}
    finally:
        os.umask(old)
