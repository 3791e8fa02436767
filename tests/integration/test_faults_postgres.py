"""The allocation ledger on PostgreSQL stopped mid-spawn and started again.

A real embedded hub of this module's own whose ledger is a PostgreSQL of this
module's own (`private_postgres`: scripts/postgres-local with another state folder
and port), so stopping it cuts nobody else's databases. Its quota file gives the
group `researchers` one full H100 and two 1g.10gb MIG slices, so both spawns here
lock the group's account row in the ledger.

* a researcher runs a full H100 (the person already running);
* a second researcher's MIG spawn (in French) is caught inside the ledger's
  transaction, waiting for the account lock this test holds, when PostgreSQL is
  stopped (`pg_ctl stop -m fast` ends every session): the spawn fails with the 503
  words in French, nothing is reserved;
* while PostgreSQL is down the same spawn (in English) fails the same way, at once;
  that researcher's server, the hub's API and their home page go on answering;
* PostgreSQL started again (same data): the next spawn works, on the same hub
  process (the pool's pre-ping replaced the dead connections), and every ledger row
  from before the stop is still there, unchanged; the failed attempts added none.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

import pytest
import requests
import yaml
from sqlalchemy.engine import make_url

pytestmark = [pytest.mark.hub, pytest.mark.postgres]

H100 = {"profile": "h100-full"}
MIG = {"profile": "mig-1g-10gb"}
ALLOCATIONS = {
    "period": "month",
    "unlisted": "allow",
    "groups": {"researchers": {"description": "fault test", "max_gpus": {"h100": 1, "h100_1g.10gb": 2}}},
}
ACCOUNT = "group:researchers"
FRENCH = ("allocations : le registre des allocations n'est pas disponible "
          "(sa base de données ne répond pas ou est occupée) ; rien n'a été réservé")
ENGLISH = ("allocations: the ledger is not available (its database does not answer or is busy); "
           "nothing was reserved and no server was started")
POLLS = 300  # of 0.2 s


def _connect(url: str, **kwargs):
    import psycopg

    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database,
                           connect_timeout=10, **kwargs)


def _rows(url: str) -> tuple[dict, dict]:
    """Every reservation and audit event of the ledger: {id: row}."""
    with _connect(url) as db:
        reservations = {r[0]: r for r in db.execute(
            'SELECT id, "user", server, profile, account, units, started_at, released_at FROM scip_reservations')}
        events = {r[0]: r for r in db.execute(
            'SELECT id, kind, "user", profile, account, reservation_id FROM scip_allocation_events')}
    return reservations, events


def _messages(hub, user: str, answer: requests.Response) -> list[str]:
    """What the person is told about a spawn that failed: the POST's answer, else the progress events."""
    if answer.status_code == 503:
        return [answer.json()["message"]]
    assert answer.status_code == 202, answer.text
    for _ in range(POLLS):
        if hub.user(user)["pending"] is None:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"{user}'s spawn neither started nor failed:\n{hub.log_tail()}", pytrace=False)
    r = requests.get(f"{hub.api_url}/users/{user}/server/progress", headers=hub.headers, stream=True, timeout=30)
    return [json.loads(line[5:]).get("message", "") for line in r.iter_lines(decode_unicode=True)
            if line and line.startswith("data:")]


def _server_environment(hub, user: str) -> dict[str, str]:
    pid = hub.user(user)["servers"][""]["state"]["pid"]
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def _home_says_the_ledger_is_down(hub, user: str) -> None:
    """The person's home page answers, and says in words (French here) that the ledger is not available."""
    session = hub.login(user)
    session.cookies.set("scip-lang", "fr")
    page = session.get(f"{hub.url}/hub/scip/home", timeout=60)
    assert page.status_code == 200, page.text[:500]
    text = page.content.decode("utf-8")
    assert "Le registre des allocations n&#39;est pas disponible pour le moment" in text or \
        "Le registre des allocations n'est pas disponible pour le moment" in text, text[-3000:]
    assert "psycopg" not in text and "sqlalche" not in text


@pytest.fixture(scope="module")
def pg_hub(hub_factory, private_postgres):
    state = hub_factory.state_dir()
    quotas = state / "allocations-postgres.yaml"
    quotas.write_text(yaml.safe_dump(ALLOCATIONS))
    os.chmod(quotas, 0o644)
    hub = hub_factory.start(state, name="faults-postgres-hub", env={
        "SCIP_ALLOCATIONS_FILE": str(quotas), "SCIP_HUB_LEDGER_URL": private_postgres.url})
    yield hub
    hub_factory.stop(hub)


def _new_researcher(hub) -> str:
    """A fresh account in `researchers`. Not researcher1: other hubs on this machine (other test runs)
    run researcher1 as the same jupyter-researcher1 account, and a hub stops that account's servers it
    takes for leftovers of its own (spawners/local.py leftover_servers)."""
    name = f"researcher-{uuid.uuid4().hex[:6]}"
    assert hub.api("POST", f"/users/{name}").status_code == 201
    assert hub.api("POST", "/groups/researchers/users", json={"users": [name]}).status_code == 200
    return name


@pytest.fixture
def researchers(pg_hub):
    """(first, second): two fresh researchers; no server of theirs left afterwards."""
    people = (_new_researcher(pg_hub), _new_researcher(pg_hub))
    yield people
    for name in people:
        pg_hub.stop_server(name)


def test_postgres_stopped_mid_spawn_refuses_in_words_and_recovers_without_restart(
        pg_hub, private_postgres, researchers):
    hub, pg, (first, second) = pg_hub, private_postgres, researchers
    url = pg.url
    hub_pid = hub.process.pid
    r = hub.api("POST", f"/users/{first}/server", json=H100)
    assert r.status_code in (201, 202), r.text
    hub.wait_for_server(first)
    reservations, events = _rows(url)
    assert [(row[1], row[7]) for row in reservations.values()] == [(first, None)]
    # the ledger's password is the hub's: nowhere in a person's server
    password = make_url(url).password
    assert password and password not in "\0".join(_server_environment(hub, first).values())

    # --- mid-spawn: the second researcher's reservation waits for the account row this test locks
    locker = _connect(url)
    locker.execute("SELECT key FROM scip_allocation_accounts WHERE key = %s FOR UPDATE", (ACCOUNT,))
    answers: list[requests.Response] = []
    post = threading.Thread(target=lambda: answers.append(requests.post(
        f"{hub.api_url}/users/{second}/server", json=MIG, timeout=120,
        headers={**hub.headers, "Accept-Language": "fr"})))
    post.start()
    for _ in range(POLLS):
        waiting = locker.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        ).fetchone()[0]
        if waiting:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the spawn never reached the ledger's account lock:\n{hub.log_tail()}", pytrace=False)
    pg.stop()  # ends every session: the hub's transaction is cut in the middle
    locker.close()
    post.join(timeout=150)
    assert answers, "the spawn request did not return"
    french = _messages(hub, second, answers[0])
    assert any(FRENCH in m for m in french), french
    assert not any("Traceback" in m or str(pg.port) in m or "postgresql" in m.lower() for m in french), french
    assert hub.user(second)["servers"] == {}

    # --- while it is down: refused at once, in words; the first researcher and the hub go on
    r = requests.post(f"{hub.api_url}/users/{second}/server", json=MIG, timeout=60,
                      headers={**hub.headers, "Accept-Language": "en"})
    english = _messages(hub, second, r)
    assert any(ENGLISH in m for m in english), english
    assert hub.user(second)["servers"] == {}
    assert hub.get(f"/user/{first}/api/status", timeout=10).status_code == 200
    assert hub.user(first)["servers"][""]["ready"]
    _home_says_the_ledger_is_down(hub, first)

    # --- PostgreSQL back: the next spawn works on the same hub process, no restart
    assert pg.start() == url
    r = hub.api("POST", f"/users/{second}/server", json=MIG)
    assert r.status_code in (201, 202), r.text
    assert hub.wait_for_server(second)["user_options"] == MIG
    assert hub.process.pid == hub_pid and hub.process.poll() is None

    # --- no ledger row lost or changed; the failed attempts left none
    after_reservations, after_events = _rows(url)
    assert {k: after_reservations[k] for k in reservations} == reservations
    assert {k: after_events[k] for k in events} == events
    new = [row for k, row in after_reservations.items() if k not in reservations]
    assert [(row[1], row[3], row[4], row[7]) for row in new] == [(second, "mig-1g-10gb", ACCOUNT, None)]
    assert [row[1] for k, row in after_events.items() if k not in events] == ["reserve"]
    log = hub.log_path.read_text(errors="replace")
    assert log.count("Allocation ledger failed for") == 2, hub.log_tail()
