"""A person's credentials never outlive their server, on the real embedded hub.

A hub of its own with a maximum server age (SCIP_MAX_SERVER_AGE, the default of
`SCIPCredentials.max_server_age`), one real server: every Slurm JWT and SSH
certificate the server gets from the hub with its own API token ends no later than
the server's start + that age (read from the hub's own `started`), renewal through
the server-side token source keeps working (slurmrestd accepts each token), and once
the server's end has come the hub refuses (403 naming the maximum age).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import pytest
import requests

pytestmark = [pytest.mark.hub, pytest.mark.slurm, pytest.mark.ssh]
MAX_AGE = 75  # seconds: long enough for a spawn and the checks, short enough to wait for its end
PERSON = "student1"


def _server_env(hub, username: str) -> dict[str, str]:
    pid = hub.user(username)["servers"][""]["state"]["pid"]
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _jwt_exp(token: str) -> float:
    claims = token.split(".")[1]
    return float(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["exp"])


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def aged_hub(hub_factory):
    hub = hub_factory.start(env={"SCIP_MAX_SERVER_AGE": str(MAX_AGE)}, name="lifetime-hub")
    yield hub
    hub_factory.stop(hub)


def test_credentials_end_with_the_server_and_renewal_works_until_then(aged_hub, slurm_cluster, sshd_robot):
    import asyncssh

    from scip_jupyter.arc.rest import RestTransport
    from scip_jupyter.arc.states import squeue_argv
    from scip_jupyter.identity import hub_token_source

    hub = aged_hub
    r = hub.api("POST", f"/users/{PERSON}/server", json={"profile": "cpu-small"})
    assert r.status_code in (201, 202), r.text
    hub.wait_for_server(PERSON)
    end = _epoch(hub.user(PERSON)["servers"][""]["started"]) + MAX_AGE  # the hub's own record of the start
    env = _server_env(hub, PERSON)
    api, token = env["JUPYTERHUB_API_URL"], env["JUPYTERHUB_API_TOKEN"]
    assert time.time() < end - 10, f"the spawn took most of the server's {MAX_AGE} s: nothing left to check"

    # the Slurm JWT: its expiry (and the token's own exp claim) is the server's end at the latest
    answer = requests.get(f"{api}/scip/credentials/slurm", headers={"Authorization": f"token {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["user"] == f"jupyter-{PERSON}"
    assert time.time() < body["expires"] <= end and _jwt_exp(body["token"]) <= end, (body["expires"], end)

    # renewal through the server's own token source: each token accepted by slurmrestd, none past the end
    transport = RestTransport("local-slurm", "http://127.0.0.1:6820", hub_token_source(api, token), renew_margin=10 * 24 * 3600)
    for _ in range(2):
        assert '"jobs"' in transport.run_sync(squeue_argv())
        assert transport._token.expires <= end and _jwt_exp(transport._token.token) <= end
    assert transport.renewals == 2

    # the SSH certificate: valid_before is the server's end at the latest
    key = asyncssh.generate_private_key("ssh-ed25519")
    signed = requests.post(f"{api}/scip/credentials/ssh", headers={"Authorization": f"token {token}"},
                           json={"public_key": key.export_public_key().decode(), "preset": "local-ssh"}, timeout=30)
    assert signed.status_code == 200, signed.text
    cert = signed.json()
    assert cert["principal"] == f"jupyter-{PERSON}" and time.time() < cert["expires"] <= end
    parsed = asyncssh.import_certificate(cert["certificate"])
    assert parsed.principals == [f"jupyter-{PERSON}"]
    assert parsed._valid_before <= end  # what sshd checks (asyncssh keeps it private; no public reader)

    # the server's end comes: no credential any more, and the refusal says why
    deadline = end + 30
    while time.time() < end and time.time() < deadline:
        time.sleep(1)
    for method, path, kwargs in (
        ("GET", "/scip/credentials/slurm", {}),
        ("POST", "/scip/credentials/ssh", {"json": {"public_key": key.export_public_key().decode()}}),
    ):
        refused = requests.request(method, api + path, headers={"Authorization": f"token {token}"}, timeout=30, **kwargs)
        assert refused.status_code == 403 and "maximum age" in refused.text, (path, refused.status_code, refused.text)
    hub.stop_server(PERSON)
