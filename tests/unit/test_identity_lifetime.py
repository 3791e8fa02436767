"""A credential never outlives the server that asked for it (identity_hub.credential_lifespan)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from scip_jupyter.identity_hub import (
    MINT_SLACK,
    SERVER_AGE_END,
    TOKEN_END,
    SCIPCredentials,
    ServerEnded,
    credential_lifespan,
    culler_max_age,
)
from scip_jupyter.i18n import use_locale

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "wanted, max_lifespan, ends, expected",
    [
        (3600, 43200, {}, 3600),
        (3600, 600, {}, 600),  # max_lifespan caps the configured lifespan
        (3600, 43200, {SERVER_AGE_END: NOW + 100}, 100 - MINT_SLACK),  # the server ends first
        (3600, 43200, {SERVER_AGE_END: NOW + 9000, TOKEN_END: NOW + 50.7}, 48),  # the earliest end wins
        (3600, 43200, {SERVER_AGE_END: None, TOKEN_END: None}, 3600),  # ends the hub does not know
        (3600, 43200, {SERVER_AGE_END: NOW + MINT_SLACK + 1}, 1),
    ],
)
def test_lifespan_is_capped_at_the_servers_end(wanted, max_lifespan, ends, expected):
    lifespan = credential_lifespan(wanted, max_lifespan, NOW, ends)
    assert lifespan == expected
    assert all(NOW + lifespan <= end - MINT_SLACK for end in ends.values() if end is not None)


@pytest.mark.parametrize("end", [NOW - 3600, NOW, NOW + MINT_SLACK + 0.5])
def test_a_server_past_its_end_gets_no_credential(end):
    with pytest.raises(ServerEnded, match="maximum age"):
        credential_lifespan(3600, 43200, NOW, {SERVER_AGE_END: end})
    with use_locale("fr"), pytest.raises(ServerEnded, match="limite d'âge"):
        credential_lifespan(3600, 43200, NOW, {SERVER_AGE_END: end})


@pytest.mark.parametrize(
    "services, expected",
    [
        ([{"name": "cull-idle", "command": ["python3", "-m", "jupyterhub_idle_culler", "--timeout=3600", "--max-age=28800"]}], 28800),
        ([{"name": "cull", "command": "jupyterhub-idle-culler --max-age 600"}], 600),
        ([{"name": "cull", "command": ["python3", "-m", "jupyterhub_idle_culler", "--timeout=3600"]}], 0),  # no max age
        ([{"name": "other", "command": ["tool", "--max-age=5"]}], 0),  # not the culler
        ([{"name": "cull", "command": ["jupyterhub_idle_culler", "--max-age=soon"]}], 0),
        ([{"name": "api-only"}], 0),
        (None, 0),
    ],
)
def test_the_idle_cullers_max_age_is_read_from_the_hub_services(services, expected):
    assert culler_max_age(services) == expected


def test_max_server_age_defaults_to_the_culler_then_the_environment(monkeypatch):
    monkeypatch.delenv("SCIP_MAX_SERVER_AGE", raising=False)
    assert SCIPCredentials().max_server_age == 0
    monkeypatch.setenv("SCIP_MAX_SERVER_AGE", "7200")
    assert SCIPCredentials().max_server_age == 7200
    c = Config()
    c.JupyterHub.services = [{"name": "cull", "command": ["python3", "-m", "jupyterhub_idle_culler", "--max-age=3600"]}]
    assert SCIPCredentials(config=c).max_server_age == 3600  # the culler stops it then: the hub knows
    c.SCIPCredentials.max_server_age = 60
    assert SCIPCredentials(config=c).max_server_age == 60  # said outright wins
    monkeypatch.setenv("SCIP_MAX_SERVER_AGE", "eight hours")
    assert SCIPCredentials().max_server_age == 0


def _spawner(started: dt.datetime | None):
    return SimpleNamespace(orm_spawner=SimpleNamespace(started=started))


def test_server_ends_from_its_start_and_its_token():
    started = dt.datetime(2027, 1, 15, 8, 0, 0)  # JupyterHub's naive UTC
    epoch = started.replace(tzinfo=dt.timezone.utc).timestamp()
    issuer = SCIPCredentials(max_server_age=3600)
    assert issuer.server_ends(_spawner(started), None) == {SERVER_AGE_END: epoch + 3600, TOKEN_END: None}
    assert issuer.server_ends(None, epoch + 60) == {SERVER_AGE_END: None, TOKEN_END: epoch + 60}
    assert issuer.server_ends(_spawner(None), None) == {SERVER_AGE_END: None, TOKEN_END: None}
    assert SCIPCredentials(max_server_age=0).server_ends(_spawner(started), None)[SERVER_AGE_END] is None
