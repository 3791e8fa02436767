"""Alembic migrations: a ledger made by a previous release (tables from `create_all`, revision
0001; or revision 0002 with GPU culling's tables made on first use) upgrades to the newest
schema and keeps every row, on SQLite and PostgreSQL; the migrated tables are the models'."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys

import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, inspect, text

import scip_jupyter.allocations.ledger as ledger_module
from scip_jupyter.allocations.ledger import HEAD_REVISION, Ledger
from scip_jupyter.allocations.policy import Request, accounts_for
from scip_jupyter.allocations.quotas import Allocations
from scip_jupyter.culling import records as culling_records
from scip_jupyter.culling.records import CullRecord, Records
from tests.fixtures.common import ROOT
from tests.fixtures.postgres import BACKENDS, database_url

OLD_LEDGER = ROOT / "tests" / "data" / "allocations" / "ledger_0001.py"
OLD_RECORDS = ROOT / "tests" / "data" / "allocations" / "records_0002.py"
ALLOCATIONS = Allocations.model_validate({"groups": {"lab": {"max_gpus": {"h100": 3}, "gpu_hours": 100}}})
NOW = dt.datetime(2026, 11, 20, 9)
TABLES = ("scip_reservations", "scip_allocation_events", "scip_allocation_accounts")
CULLING_TABLES = ("scip_gpu_culls", "scip_gpu_notices")
# Rows GPU culling wrote, before 0003, into tables it made on first use (every column set).
OLD_CULLS = [
    dict(at=NOW, user="ana", server="", profile="h100-full", account="group:lab", gpu_weight=1.0,
         idle_seconds=5400.0, gpu_hours_idle=1.5, reason="GPU idle"),
    dict(at=NOW + dt.timedelta(minutes=5), user="cy", server="big", profile="mig-1g-10gb", account="course:ml",
         gpu_weight=1 / 7, idle_seconds=7 * 900.0, gpu_hours_idle=0.25, reason="GPU idle <script>"),
]
OLD_NOTICES = [
    dict(at=NOW, kind="idle-warning", user="ana", server="", account="group:lab",
         deadline=NOW + dt.timedelta(minutes=30), message="idle", cleared_at=NOW + dt.timedelta(minutes=31)),
    dict(at=NOW, kind="budget-warning", user="bob", server="", account="group:lab", deadline=None,
         message="90 %", cleared_at=None),
]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # SQLAlchemy resolves its (string) annotations through it
    spec.loader.exec_module(module)
    return module


def old_ledger_module():
    return _load("ledger_0001", OLD_LEDGER)


def old_records_module():
    return _load("records_0002", OLD_RECORDS)


def alembic_to(url: str, revision: str, how: str = "upgrade") -> None:
    """Bring a database to one revision with Alembic itself (what a previous release's `migrate` did)."""
    config = Config()
    config.set_main_option("script_location", str(Path(ledger_module.__file__).parent / "migrations"))
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, how)(config, revision)
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


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
    old_records_module().write(url, OLD_CULLS, OLD_NOTICES)  # GPU culling made its tables on first use
    before = {t: rows(url, t) for t in TABLES + CULLING_TABLES}
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
        culling = {t: rows(url, t) for t in CULLING_TABLES}
        assert culling == {t: before[t] for t in CULLING_TABLES} and len(culling["scip_gpu_culls"]) == 2
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_at_0002_with_culling_tables_made_on_first_use_upgrades_through_records(request, backend, tmp_path):
    """The previous release: the ledger at 0002, GPU culling's tables from create_all. The
    culling service (Records) is the first to open it: it migrates, and every row stays."""
    url = database_url(request, backend, tmp_path)
    alembic_to(url, "0002")
    old_records_module().write(url, OLD_CULLS, OLD_NOTICES)
    before = {t: rows(url, t) for t in CULLING_TABLES}
    assert revision_of(url) == "0002"

    records = Records(url)
    try:
        assert revision_of(url) == HEAD_REVISION == "0003"
        assert {t: rows(url, t) for t in CULLING_TABLES} == before
        # the upgraded tables work: reclaimed hours of the old culls, open notices, new rows after the old
        assert [(r.account, r.culls, r.gpu_hours) for r in records.reclaimed()] == [
            ("group:lab", 1, 1.5), ("course:ml", 1, 0.25)]
        assert [n.kind for n in records.notices(open_only=True)] == ["budget-warning"]
        records.record_cull(CullRecord(NOW + dt.timedelta(hours=1), "dee", "", "h100-full", "group:lab", 1.0,
                                       3600.0, 1.0, "GPU idle"))
        assert records.post("idle-warning", "dee", message="idle") == 3
        assert [c.user for c in records.culls()] == ["ana", "cy", "dee"]
    finally:
        records.dispose()
    # the ledger opens the same database without migrating again, its tables at 0002's schema + rows
    ledger = Ledger(url)
    try:
        assert ledger.active() == [] and revision_of(url) == HEAD_REVISION
    finally:
        ledger.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrated_tables_are_exactly_the_models(request, backend, tmp_path):
    """A new database migrated to head has every table, column and index the models declare
    (Alembic's own comparison finds nothing to add, drop or change): the culling models and
    revision 0003 cannot drift apart unnoticed."""
    url = database_url(request, backend, tmp_path)
    Records(url).dispose()  # the culling service first, on an empty database: it migrates everything
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            models = MetaData()  # the ledger's and culling's models: every table the migrations manage
            for table in [*ledger_module.Base.metadata.sorted_tables, *culling_records.Base.metadata.sorted_tables]:
                table.to_metadata(models)
            diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), models)
            assert diffs == [], diffs
            assert set(CULLING_TABLES) | set(TABLES) | {"scip_slurm_usage"} <= set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_going_back_to_0002_drops_the_culling_tables_and_head_makes_them_again(request, backend, tmp_path):
    url = database_url(request, backend, tmp_path)
    Ledger(url).dispose()
    alembic_to(url, "0002", how="downgrade")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert not set(CULLING_TABLES) & set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    records = Records(url)
    try:
        assert revision_of(url) == HEAD_REVISION and records.post("budget-warning", "ana") == 1
    finally:
        records.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_ledgers_and_culling_records_opening_a_new_database_at_once_migrate_it_once(request, backend, tmp_path):
    url = database_url(request, backend, tmp_path)
    errors, start = [], threading.Barrier(4)

    def open_it(kind):
        try:
            start.wait()
            kind(url).dispose()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=open_it, args=(kind,)) for kind in (Ledger, Records, Ledger, Records)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and revision_of(url) == HEAD_REVISION
