"""Allocations on the real hub: the last full H100 of a project goes to one researcher at a time.

The test hub's quota file (tests/fixtures/hub.py, TEST_ALLOCATIONS) gives the group
`researchers` one full H100 at a time. A second researcher account is made through
the REST API and put in that group. The audit trail is read from the hub's ledger.
"""

from __future__ import annotations

import re
import uuid

import pytest

from scip_jupyter.allocations.ledger import Ledger

pytestmark = pytest.mark.hub

H100 = {"profile": "h100-full"}


@pytest.fixture
def second_researcher(hub):
    """A fresh account in the group `researchers`; researcher1 and it have no server before and after."""
    name = f"researcher-{uuid.uuid4().hex[:6]}"
    assert hub.api("POST", f"/users/{name}").status_code == 201
    assert hub.api("POST", "/groups/researchers/users", json={"users": [name]}).status_code == 200
    hub.stop_server("researcher1")
    yield name
    hub.stop_server(name)
    hub.stop_server("researcher1")
    # leave the shared hub as we found it: other tests read the group's members
    assert hub.api("DELETE", f"/users/{name}").status_code == 204


@pytest.fixture
def ledger(hub):
    ledger = Ledger(hub.ledger_url)
    yield ledger
    ledger.dispose()


def _no_server(hub, username: str) -> None:
    model = hub.user(username)
    assert model["servers"] == {} and model["pending"] is None, model


def _form(session, hub, username: str) -> str:
    page = session.get(f"{hub.url}/hub/spawn/{username}", timeout=30)
    assert page.status_code == 200
    return page.content.decode("utf-8")


def _h100_card(page: str) -> str:
    m = re.search(r'<div class="scip-profile[^"]*"[^>]*>\s*<input[^>]*value="h100-full".*?</div>', page, re.S)
    assert m, page[:2000]
    return m.group(0)


def test_last_full_h100_goes_to_one_researcher_until_released(hub, second_researcher, ledger):
    second = second_researcher
    before = len(ledger.events())

    r = hub.api("POST", "/users/researcher1/server", json=H100)
    assert r.status_code in (201, 202), r.text
    assert hub.wait_for_server("researcher1")["user_options"] == H100

    # The second researcher's form shows the allocation as used up (and stays escaped HTML).
    session = hub.login(second)
    card = _h100_card(_form(session, hub, second))
    assert 'data-available="no"' in card, card
    assert "Your allocation: used up: group researchers: 0 of 1 × h100 free" in card, card
    assert "Cost: 1 GPU-hour per hour" in card

    r = hub.api("POST", f"/users/{second}/server", json=H100)
    assert r.status_code == 403, r.text
    message = r.json()["message"]
    assert message.startswith("profile: allocation exhausted for 'h100-full' (needs 1 × h100): "), message
    assert "group researchers: max_gpus.h100 is 1 in allocations.yaml, 1 in use, 0 left" in message
    _no_server(hub, second)

    hub.stop_server("researcher1")
    card = _h100_card(_form(session, hub, second))
    assert 'data-available="yes"' in card and "1 of 1 × h100 free" in card

    r = hub.api("POST", f"/users/{second}/server", json=H100)
    assert r.status_code in (201, 202), r.text
    assert hub.wait_for_server(second)["user_options"] == H100
    hub.stop_server(second)

    audit = [
        (e.kind, e.user, e.profile, e.account)
        for e in ledger.events()[before:]
        if e.user in ("researcher1", second)
    ]
    assert audit == [
        ("reserve", "researcher1", "h100-full", "group:researchers"),
        ("deny", second, "h100-full", ""),
        ("release", "researcher1", "h100-full", "group:researchers"),
        ("reserve", second, "h100-full", "group:researchers"),
        ("release", second, "h100-full", "group:researchers"),
    ]
    deny = [e for e in ledger.events(user=second, kinds=["deny"])][-1]
    assert deny.message == message
    assert not [h for h in ledger.active() if h.user in ("researcher1", second)]


def test_form_post_refused_by_allocation_starts_nothing(hub, second_researcher):
    """The same refusal through the spawn form: the page says why, and no server starts."""
    second = second_researcher
    r = hub.api("POST", "/users/researcher1/server", json=H100)
    assert r.status_code in (201, 202), r.text
    hub.wait_for_server("researcher1")
    session = hub.login(second)
    xsrf = session.cookies.get("_xsrf")
    r = session.post(f"{hub.url}/hub/spawn/{second}?_xsrf={xsrf}", data=H100, allow_redirects=False, timeout=60)
    assert "allocation exhausted for &#39;h100-full&#39;" in r.text, r.text[:1500]
    assert "max_gpus.h100" in r.text
    _no_server(hub, second)
