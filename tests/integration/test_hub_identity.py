"""Each person is themselves on the embedded hub (real JupyterHub, as root): two people's
servers run under two different unprivileged uids, `jupyter-<name>`, and neither can read
the other's home folder (mode 0700)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess

import pytest
import requests

from tests.fixtures.common import is_root

pytestmark = pytest.mark.hub
PEOPLE = ("student1", "researcher1")


def _server_uid(hub, username: str) -> tuple[int, dict[str, str]]:
    pid = hub.user(username)["servers"][""]["state"]["pid"]
    status = open(f"/proc/{pid}/status").read()
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return uid, dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.fixture
def two_servers(hub):
    for name in PEOPLE:
        hub.stop_server(name)
    try:
        for name in PEOPLE:
            r = hub.api("POST", f"/users/{name}/server", json={"profile": "cpu-small"})
            assert r.status_code in (201, 202), r.text
        for name in PEOPLE:
            hub.wait_for_server(name)
        yield PEOPLE
    finally:
        for name in PEOPLE:
            hub.stop_server(name)


def test_two_people_run_as_two_unprivileged_accounts_with_private_homes(hub, two_servers):
    if not is_root():
        pytest.fail("this test checks per-person accounts, which the hub creates only as root; run the tests as root")
    uids, homes = {}, {}
    for name in two_servers:
        uid, env = _server_uid(hub, name)
        account = pwd.getpwuid(uid)
        assert account.pw_name == f"jupyter-{name}" and uid != 0
        assert env["USER"] == account.pw_name
        home = hub.state_dir / "hub" / "home" / name
        assert env["HOME"] == str(home)
        st = home.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid, 0o700)
        assert not any(k in env for k in ("MUNGE_KEY",)) and "munge.key" not in "".join(env.values())
        uids[name], homes[name] = account, home
    assert uids["student1"].pw_uid != uids["researcher1"].pw_uid
    assert uids["student1"].pw_gid != uids["researcher1"].pw_gid  # own groups, nothing shared

    # A file written through student1's server belongs to student1's account...
    r = requests.put(
        f"{hub.url}/user/student1/api/contents/private.txt", headers=hub.headers,
        json={"type": "file", "format": "text", "content": "mine"}, timeout=30,
    )
    assert r.status_code == 201, r.text
    assert (homes["student1"] / "private.txt").stat().st_uid == uids["student1"].pw_uid
    # ...and researcher1's account can neither list nor read it.
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    for argv in (["ls", str(homes["student1"])], ["cat", str(homes["student1"] / "private.txt")]):
        proc = subprocess.run([runuser, "-u", "jupyter-researcher1", "--", *argv], capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0 and "Permission denied" in proc.stderr, (argv, proc.stdout, proc.stderr)
    # Neither can it signal the other's server.
    pid = hub.user("student1")["servers"][""]["state"]["pid"]
    proc = subprocess.run([runuser, "-u", "jupyter-researcher1", "--", "kill", "-0", str(pid)], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert os.path.exists(f"/proc/{pid}")


@pytest.mark.slurm
def test_each_server_gets_its_own_persons_slurm_token_from_the_hub_and_renews_it(hub, two_servers, slurm_cluster):
    """The server's own API token fetches that person's JWT (for jupyter-<name>), which slurmrestd
    accepts; asking again gives a fresh token; no other person's token is ever handed out."""
    from scip_jupyter.arc.rest import RestTransport
    from scip_jupyter.arc.states import parse_squeue, squeue_argv
    from scip_jupyter.identity import hub_token_source

    seen = {}
    for name in two_servers:
        _, env = _server_uid(hub, name)
        source = hub_token_source(env["JUPYTERHUB_API_URL"].replace("127.0.0.1", "127.0.0.1"), env["JUPYTERHUB_API_TOKEN"])
        # renew_margin longer than the token's life: every call fetches a fresh one, as near expiry
        transport = RestTransport("local-slurm", "http://127.0.0.1:6820", source, renew_margin=10 * 24 * 3600)
        assert '"jobs"' in transport.run_sync(squeue_argv())
        first = transport._token
        transport.run_sync(squeue_argv())
        assert transport.renewals == 2  # asked the hub again (a token minted in the same second may be identical)
        assert transport.account == f"jupyter-{name}"
        seen[name] = transport._token.token
        assert "SLURM_JWT" not in env and not any(v == first.token for v in env.values())
        # the person's account was given its Slurm association at spawn: its jobs are accepted, as that account
        job_id = transport.run_sync(["sbatch", "--parsable", "--begin=now+1hour", "-o", "/dev/null", "--wrap=true"],).strip()
        try:
            listed = [j for j in parse_squeue(transport.run_sync(squeue_argv()), user=transport.account) if j.job_id == job_id]
            assert [j.user for j in listed] == [f"jupyter-{name}"]
        finally:
            transport.run_sync(["scancel", job_id])
    assert seen["student1"] != seen["researcher1"]
    # the admin token is not a person's server token: no Slurm token for it
    r = requests.get(f"{hub.api_url}/scip/credentials/slurm", headers=hub.headers, timeout=30)
    assert r.status_code == 403, r.text
    r = requests.get(f"{hub.api_url}/scip/credentials/slurm", timeout=30)
    assert r.status_code in (401, 403)


@pytest.mark.ssh
@pytest.mark.slurm
def test_hub_signs_each_persons_ssh_certificate_for_their_own_account(hub, two_servers, sshd_robot, slurm_cluster):
    from scip_jupyter.arc.states import squeue_argv
    from scip_jupyter.arc.transport import SlurmUnavailable, SSHTarget, SSHTransport
    from scip_jupyter.ssh_ca import hub_certificate_source

    _, env = _server_uid(hub, "student1")
    source = hub_certificate_source("local-ssh", env["JUPYTERHUB_API_URL"], env["JUPYTERHUB_API_TOKEN"])
    target = SSHTarget(host=sshd_robot.host, port=sshd_robot.port, known_hosts=sshd_robot.known_hosts)
    transport = SSHTransport("local-ssh", target, credentials=source)
    transport.run_sync(squeue_argv())
    assert transport.account == "jupyter-student1" and transport.renewals == 1
    # that certificate does not log in as anyone else
    other = SSHTarget(host=sshd_robot.host, port=sshd_robot.port, user="jupyter-researcher1", known_hosts=sshd_robot.known_hosts)
    with pytest.raises(SlurmUnavailable, match="(?i)permission denied"):
        SSHTransport("local-ssh", other, credentials=source).run_sync(squeue_argv())
    r = requests.post(f"{hub.api_url}/scip/credentials/ssh", headers={"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}"},
                      json={"public_key": "not a key"}, timeout=30)
    assert r.status_code == 400 and "public_key" in r.text
