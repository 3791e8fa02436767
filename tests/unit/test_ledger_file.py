"""A SQLite ledger file removed or restored under a running hub (real SQLite in tmp_path)."""

from __future__ import annotations

import shutil

import pytest

from scip_jupyter.allocations.ledger import Ledger
from scip_jupyter.spawners.ledger_file import LedgerFileMissing, check_ledger_file


def test_missing_file_refuses_and_nothing_recreates_it(tmp_path):
    path = tmp_path / "allocations.sqlite"
    ledger = Ledger(f"sqlite:///{path}")
    try:
        check_ledger_file(ledger)
        path.unlink()
        with pytest.raises(LedgerFileMissing):
            check_ledger_file(ledger)
        assert not path.exists()
    finally:
        ledger.dispose()


def test_restored_copy_is_used_without_a_restart(tmp_path):
    path, backup = tmp_path / "allocations.sqlite", tmp_path / "backup.sqlite"
    ledger = Ledger(f"sqlite:///{path}")
    try:
        list(ledger.active())  # a pooled connection to the original file
        check_ledger_file(ledger)
        shutil.copyfile(path, backup)
        path.unlink()
        shutil.copyfile(backup, path)  # a different file at the same path
        check_ledger_file(ledger)  # drops the connections of the removed file
        with ledger.engine.begin() as conn:  # writes reach the restored file
            conn.exec_driver_sql("CREATE TABLE restored_probe (x INTEGER)")
        import sqlite3

        with sqlite3.connect(path) as db:
            assert db.execute("SELECT name FROM sqlite_master WHERE name='restored_probe'").fetchone()
    finally:
        ledger.dispose()


def test_other_databases_are_not_checked():
    ledger = Ledger("sqlite://")
    try:
        check_ledger_file(ledger)
    finally:
        ledger.dispose()
