"""The ledger: atomic reserve (threads and processes racing for the last slot), release, audit events.

Every test runs on SQLite and on the real PostgreSQL of scripts/postgres-local (marker `postgres`).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading

import pytest

import scip_jupyter.allocations.ledger as ledger_module
from scip_jupyter.allocations.ledger import Ledger
from scip_jupyter.allocations.policy import Request, accounts_for
from scip_jupyter.allocations.quotas import Allocations, Unlisted
from tests.fixtures.postgres import BACKENDS, database_url

ALLOCATIONS = Allocations.model_validate(
    {"groups": {"lab": {"max_gpus": {"h100": 2, "h100_1g.10gb": 7}, "gpu_hours": 10}}}
)
H100 = dict(profile="h100-full", flavour="h100", units=1, gpu_weight=1.0)
NOW = dt.datetime(2026, 11, 26, 12)


class Clock:
    def __init__(self, now=NOW):
        self.now = now

    def __call__(self):
        return self.now


def request(user, server="", **kind):
    return Request(user, server, **(kind or H100))


def reserve(ledger, user, server="", groups=("lab",), allocations=ALLOCATIONS, **kind):
    r = request(user, server, **kind)
    return ledger.reserve(r, accounts_for(r, groups, allocations, None, ledger.clock()), allocations.unlisted)


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    return database_url(request, request.param, tmp_path)


@pytest.fixture
def ledger(url):
    led = Ledger(url, clock=Clock())
    yield led
    led.dispose()


def test_reserve_release_and_audit(ledger):
    assert reserve(ledger, "ana").allowed
    assert reserve(ledger, "bob").allowed
    refused = reserve(ledger, "cy")
    assert not refused.allowed and "max_gpus.h100 is 2" in refused.message
    assert [h.user for h in ledger.active()] == ["ana", "bob"]
    assert ledger.release("ana") != []
    assert ledger.release("ana") == []  # idempotent: nothing held any more, no event
    assert reserve(ledger, "cy").allowed
    events = [(e.kind, e.user, e.account) for e in ledger.events()]
    assert events == [
        ("reserve", "ana", "group:lab"), ("reserve", "bob", "group:lab"), ("deny", "cy", ""),
        ("release", "ana", "group:lab"), ("reserve", "cy", "group:lab"),
    ]
    deny = ledger.events(user="cy", kinds=["deny"])[0]
    assert deny.message == refused.message and deny.reservation_id is None and deny.at == NOW
    assert ledger.events(user="cy", kinds=["reserve"])[0].reservation_id is not None


def test_a_new_start_of_the_same_server_supersedes_its_old_holding(ledger):
    assert reserve(ledger, "ana").allowed
    assert reserve(ledger, "ana").allowed  # e.g. the hub died without stopping the server
    assert len(ledger.active()) == 1
    kinds = [(e.kind, e.message.split(":")[0]) for e in ledger.events()]
    assert kinds[1] == ("release", "superseded")


def test_servers_of_one_user_hold_separately(ledger):
    assert reserve(ledger, "ana", "").allowed
    assert reserve(ledger, "ana", "big").allowed
    assert not reserve(ledger, "ana", "third").allowed
    assert ledger.release("ana", "big") and [h.server for h in ledger.active()] == [""]


def test_gpu_hours_accumulate_until_the_period_ends(ledger):
    clock = ledger.clock
    assert reserve(ledger, "ana").allowed
    clock.now = NOW + dt.timedelta(hours=10)
    ledger.release("ana")
    refused = reserve(ledger, "bob")
    assert not refused.allowed and "gpu_hours is 10 in allocations.yaml, 10 used this month, 0 left" in refused.message
    clock.now = dt.datetime(2026, 12, 1, 0, 5)  # a new month
    assert reserve(ledger, "bob").allowed


def test_unmetered_spawns_are_recorded(ledger):
    decision = reserve(ledger, "ana", groups=(), profile="cpu-small", flavour=None, units=0, gpu_weight=0.0)
    assert decision.allowed and decision.account_key == ""
    assert [(h.user, h.account) for h in ledger.active()] == [("ana", "")]


def test_unlisted_deny_is_recorded(ledger):
    strict = Allocations.model_validate({"unlisted": "deny", "groups": {}})
    decision = reserve(ledger, "ana", allocations=strict)
    assert not decision.allowed and strict.unlisted is Unlisted.deny
    assert [e.kind for e in ledger.events()] == ["deny"]


def test_release_stale_keeps_running_servers_and_newer_spawns(ledger):
    for user in ("ana", "bob"):
        assert reserve(ledger, user).allowed
    snapshot = ledger.clock.now = NOW + dt.timedelta(seconds=1)
    ledger.clock.now = NOW + dt.timedelta(seconds=2)
    assert reserve(ledger, "cy", "x", profile="cpu-small", flavour=None, units=0, gpu_weight=0.0).allowed
    released = ledger.release_stale({("ana", "")}, started_before=snapshot)
    assert len(released) == 1
    assert [h.user for h in ledger.active()] == ["ana", "cy"]  # cy started after the snapshot
    assert ledger.events(kinds=["release"])[0].user == "bob"


def test_holdings_include_recently_ended(ledger):
    assert reserve(ledger, "ana").allowed
    ledger.clock.now = NOW + dt.timedelta(hours=1)
    ledger.release("ana")
    assert [h.end for h in ledger.holdings({"group:lab"}, NOW)] == [NOW + dt.timedelta(hours=1)]
    assert ledger.holdings({"group:lab"}, NOW + dt.timedelta(hours=2)) == []
    assert ledger.holdings(set()) == []


# --- concurrency -----------------------------------------------------------------------------------


@pytest.mark.parametrize("contenders, slots", [(8, 1), (12, 2)])
def test_threads_racing_for_the_last_slots_get_exactly_that_many(url, monkeypatch, contenders, slots):
    """Each thread has its own Ledger (engine, connections) on one database, like hub replicas."""
    allocations = Allocations.model_validate({"groups": {"lab": {"max_gpus": {"h100": slots}}}})
    Ledger(url).dispose()  # create the tables once
    inside, peak, guard = [0], [0], threading.Lock()
    decide = ledger_module.decide

    def counting_decide(*args, **kwargs):
        # Count deciders inside the critical section at once; a short pause widens any race.
        with guard:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        threading.Event().wait(0.02)
        try:
            return decide(*args, **kwargs)
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(ledger_module, "decide", counting_decide)
    start = threading.Barrier(contenders)
    results, errors = [], []

    def contend(i):
        led = Ledger(url)
        try:
            start.wait()
            results.append(reserve(led, f"user{i}", allocations=allocations))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            led.dispose()

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.allowed for r in results) == slots
    assert peak[0] == 1  # the decisions were serialised
    final = Ledger(url)
    assert len(final.active()) == slots
    kinds = [e.kind for e in final.events()]
    assert kinds.count("reserve") == slots and kinds.count("deny") == contenders - slots
    final.dispose()


def _process_contender(url: str, user: str, barrier, out) -> None:
    allocations = Allocations.model_validate({"groups": {"lab": {"max_gpus": {"h100": 1}}}})
    led = Ledger(url)
    barrier.wait()
    out.put((user, reserve(led, user, allocations=allocations).allowed))
    led.dispose()


def test_processes_racing_for_the_last_slot_get_one(url):
    Ledger(url).dispose()
    ctx = multiprocessing.get_context("spawn")
    contenders = 4
    barrier, out = ctx.Barrier(contenders), ctx.Queue()
    procs = [ctx.Process(target=_process_contender, args=(url, f"p{i}", barrier, out)) for i in range(contenders)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * contenders
    assert sum(allowed for _, allowed in results) == 1
    final = Ledger(url)
    assert len(final.active()) == 1
    assert sorted(e.kind for e in final.events()) == ["deny"] * (contenders - 1) + ["reserve"]
    final.dispose()


# --- hub replicas sharing one ledger ------------------------------------------------------------


def test_one_hubs_sweep_leaves_the_other_hubs_holdings(url):
    clock = Clock()
    hub_a, hub_b = Ledger(url, clock=clock, hub_id="hub-a"), Ledger(url, clock=clock, hub_id="hub-b")
    try:
        assert reserve(hub_a, "ana").allowed and reserve(hub_b, "bob").allowed
        clock.now = NOW + dt.timedelta(seconds=5)
        # hub-a runs nothing any more; bob's server runs on hub-b, which hub-a cannot see.
        assert len(hub_a.release_stale(set(), started_before=clock.now)) == 1
        assert [h.user for h in hub_b.active()] == ["bob"]
        assert hub_b.release_stale({("bob", "")}, started_before=clock.now) == []
    finally:
        hub_a.dispose()
        hub_b.dispose()


def test_two_ledgers_opening_a_new_database_at_once_migrate_it_once(url):
    errors, start = [], threading.Barrier(4)

    def open_it():
        try:
            start.wait()
            Ledger(url).dispose()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
