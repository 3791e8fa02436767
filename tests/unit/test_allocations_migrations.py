"""Alembic migrations: a ledger made by the previous release (tables from `create_all`,
revision 0001) upgrades to the newest schema and keeps every row, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys

import pytest
from sqlalchemy import create_engine, inspect, text

from scip_jupyter.allocations.ledger import HEAD_REVISION, Ledger
from scip_jupyter.allocations.policy import Request, accounts_for
from scip_jupyter.allocations.quotas import Allocations
from tests.fixtures.common import ROOT
from tests.fixtures.postgres import BACKENDS, database_url

OLD_LEDGER = ROOT / "tests" / "data" / "allocations" / "ledger_0001.py"
ALLOCATIONS = Allocations.model_validate({"groups": {"lab": {"max_gpus": {"h100": 3}, "gpu_hours": 100}}})
NOW = dt.datetime(2026, 11, 20, 9)
TABLES = ("scip_reservations", "scip_allocation_events", "scip_allocation_accounts")


def old_ledger_module():
    spec = importlib.util.spec_from_file_location("ledger_0001", OLD_LEDGER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ledger_0001"] = module  # SQLAlchemy resolves its (string) annotations through it
    spec.loader.exec_module(module)
    return module


def rows(url: str, table: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_ledger_of_the_previous_schema_upgrades_and_keeps_every_row(request, backend, tmp_path):
    url = database_url(request, backend, tmp_path)
    old = old_ledger_module().Ledger(url, clock=lambda: NOW)
    for user in ("ana", "bob", "cy", "dee"):
        r = Request(user, "", "h100-full", "h100", 1, 1.0)
        old.reserve(r, accounts_for(r, ["lab"], ALLOCATIONS, None, NOW), ALLOCATIONS.unlisted)
    old.release("bob")
    old.dispose()
    before = {t: rows(url, t) for t in TABLES}
    # 3 reserved (dee refused: max_gpus.h100 is 3), bob released
    assert len(before["scip_reservations"]) == 3 and len(before["scip_allocation_events"]) == 5

    new = Ledger(url, clock=lambda: NOW + dt.timedelta(hours=1), hub_id="hub-a")
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
            assert "hub" in {c["name"] for c in inspect(conn).get_columns("scip_reservations")}
            assert "scip_slurm_usage" in inspect(conn).get_table_names()
        engine.dispose()
        after = {t: rows(url, t) for t in TABLES}
        # every old row is there, unchanged, with the new column (hub '') at the end
        width = len(before["scip_reservations"][0])
        assert [r[:width] for r in after["scip_reservations"]] == before["scip_reservations"]
        assert {r[width:] for r in after["scip_reservations"]} == {("",)}
        assert after["scip_allocation_events"] == before["scip_allocation_events"]
        assert after["scip_allocation_accounts"] == before["scip_allocation_accounts"]
        # and the upgraded ledger works on them: ana and cy hold 2 of 3, eve gets the last, fred not
        assert sorted(h.user for h in new.active()) == ["ana", "cy"]
        for user, allowed in (("eve", True), ("fred", False)):
            r = Request(user, "", "h100-full", "h100", 1, 1.0)
            assert new.reserve(r, accounts_for(r, ["lab"], ALLOCATIONS, None, NOW), ALLOCATIONS.unlisted).allowed is allowed
        # unowned holdings (from before hubs were recorded) are swept by any hub
        assert len(new.release_stale({("ana", "")}, NOW + dt.timedelta(hours=1))) == 1
    finally:
        new.dispose()
    # opening it again finds it at the newest revision and changes nothing
    again = Ledger(url)
    assert len(again.events()) == 5 + 2 + 1
    again.dispose()
