"""Budgets while running: pure assessment (groups, courses per student) and the watcher over a real ledger."""

from __future__ import annotations

import datetime as dt

import pytest

from scip_jupyter.allocations.ledger import Ledger
from scip_jupyter.allocations.policy import Account, Holding, Request
from scip_jupyter.culling.budget import EXHAUSTED, STOPPED, WARNING, BudgetWatch, CompressedClock, assess
from scip_jupyter.culling.records import Records

T0 = dt.datetime(2026, 12, 10, 8)
MONTH = (dt.datetime(2026, 12, 1), dt.datetime(2027, 1, 1))
LAB = Account("group:lab", "group lab", "allocations.yaml", MONTH, "this month", {"h100": 2}, gpu_hours=10)
COURSE = Account("course:ml", "course ml", "courses.yaml", MONTH, "in course ml", user_gpu_hours=1)


def held(user, account, weight=1.0, hours_ago=0.0, ended=None, server=""):
    return Holding(user, server, account, "h100", 1, weight, T0 - dt.timedelta(hours=hours_ago), ended)


@pytest.mark.parametrize("holdings, level, used", [
    ([held("ana", "group:lab", hours_ago=5)], "ok", 5),
    ([held("ana", "group:lab", hours_ago=9)], "warn", 9),
    ([held("ana", "group:lab", hours_ago=5), held("bo", "group:lab", hours_ago=5)], "exhausted", 10),
    # a past holding of a member counts, a MIG slice counts its share
    ([held("ana", "group:lab", 3 / 7, hours_ago=7), held("bo", "group:lab", hours_ago=28, ended=T0 - dt.timedelta(hours=22))],
     "warn", 3 + 6),
])
def test_group_budget_levels(holdings, level, used):
    (state,) = assess([LAB], holdings, T0)
    assert state.level == level and state.used == pytest.approx(used) and state.user is None


def test_course_budget_is_per_student():
    states = assess([COURSE], [held("ana", "course:ml", hours_ago=1), held("bo", "course:ml", hours_ago=0.5)], T0)
    assert [(s.user, s.level) for s in states] == [("ana", "exhausted"), ("bo", "ok")]
    assert [h.user for h in states[0].servers] == ["ana"]


def test_accounts_without_running_gpu_servers_are_not_watched():
    assert assess([LAB], [held("ana", "group:lab", hours_ago=20, ended=T0)], T0) == []
    assert assess([LAB], [held("ana", "group:lab", weight=0.0, hours_ago=20)], T0) == []


def test_compressed_clock_maps_ledger_times_onto_its_axis():
    real = [T0]
    c = CompressedClock(3600, origin=T0, real=lambda: real[0])
    real[0] = T0 + dt.timedelta(seconds=3)
    assert c.now() == T0 + dt.timedelta(hours=3)
    assert c.virtual(T0 + dt.timedelta(seconds=1)) == T0 + dt.timedelta(hours=1)
    assert c.virtual(T0 - dt.timedelta(hours=1)) == T0 - dt.timedelta(hours=1)  # before the origin: as is


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    real = [T0]
    ledger = Ledger(url, clock=lambda: real[0])
    records = Records(url)
    stopped: list[tuple[str, str]] = []

    async def stop(user, server):
        stopped.append((user, server))
        ledger.release(user, server, "stopped by the budget watcher")

    def accounts_for(keys, now):
        return [a for a in (LAB, COURSE) if a.key in keys]

    clock = CompressedClock(3600, origin=T0, real=lambda: real[0])  # one hour per second
    watch = BudgetWatch(ledger, records, accounts_for, stop, clock, warn_fraction=0.9, grace=2 * 3600)
    yield real, ledger, records, watch, stopped
    ledger.dispose()
    records.dispose()


def reserve(ledger, user, account, weight=1.0, server=""):
    ledger.reserve(Request(user, server, "h100-full", "h100", 1, weight), [account])


def at(real, seconds):
    real[0] = T0 + dt.timedelta(seconds=seconds)


async def test_watcher_warns_at_90_percent_then_stops_after_the_grace(world):
    real, ledger, records, watch, stopped = world
    reserve(ledger, "ana", LAB)
    at(real, 5)  # 5 GPU-hours of 10
    assert (await watch.step()).warned == []
    at(real, 9.2)  # 92 %
    assert (await watch.step()).warned == [("ana", "group:lab")]
    assert (await watch.step()).warned == []  # warned once
    at(real, 10.5)
    r = await watch.step()
    assert r.exhausted == [("ana", "group:lab")] and r.stopped == []
    at(real, 11.5)  # within the 2 h grace
    assert (await watch.step()).stopped == []
    at(real, 12.6)
    assert (await watch.step()).stopped == [("ana", "")]
    assert (await watch.step()).stopped == [] and stopped == [("ana", "")]
    kinds = [n.kind for n in records.notices(user="ana")]
    assert kinds == [WARNING, EXHAUSTED, STOPPED]


async def test_watcher_stops_only_the_exhausted_student_of_a_course(world):
    real, ledger, records, watch, stopped = world
    reserve(ledger, "ana", COURSE, weight=1.0)
    reserve(ledger, "bo", COURSE, weight=1 / 7)
    at(real, 1.5)  # ana 1.5 GPU-h of 1 each; bo 0.21
    await watch.step()
    at(real, 1.5 + 2 * 3600 / 3600 + 0.1)
    await watch.step()
    assert stopped == [("ana", "")]
    assert {n.user for n in records.notices(kinds=[EXHAUSTED])} == {"ana"}


async def test_budget_back_under_its_limit_closes_the_notices(world):
    real, ledger, records, watch, stopped = world
    reserve(ledger, "ana", LAB)
    at(real, 9.5)
    await watch.step()
    assert records.notices(user="ana", open_only=True)
    watch.accounts_for = lambda keys, now: [Account(**{**LAB.__dict__, "gpu_hours": 100})]  # quota raised
    await watch.step()
    assert records.notices(user="ana", open_only=True) == [] and stopped == []


async def test_a_failed_stop_does_not_spare_the_others(world):
    real, ledger, records, watch, stopped = world
    reserve(ledger, "ana", LAB, server="a")
    reserve(ledger, "bo", LAB, server="b")

    async def flaky(user, server):
        if user == "ana":
            raise OSError("hub down")
        stopped.append((user, server))

    watch.stop_server = flaky
    watch.grace = 0
    at(real, 6)
    await watch.step()
    assert stopped == [("bo", "b")]
