"""What a hub killed mid-spawn left running: `leftover_servers` on a fake /proc (pure table)."""

from __future__ import annotations

import os

import pytest

from scip_jupyter.spawners.local import leftover_servers


def _proc(root, pid: int, env: dict[str, str]):
    d = root / str(pid)
    d.mkdir()
    (d / "environ").write_bytes(b"\0".join(f"{k}={v}".encode() for k, v in env.items()) + b"\0")


@pytest.mark.parametrize(
    "env, found",
    [
        ({"JUPYTERHUB_USER": "student1", "JUPYTERHUB_SERVER_NAME": ""}, True),
        ({"JUPYTERHUB_USER": "student1", "JUPYTERHUB_SERVER_NAME": "gpu"}, False),  # another server of theirs
        ({"JUPYTERHUB_USER": "student10", "JUPYTERHUB_SERVER_NAME": ""}, False),  # another person
        ({"JUPYTERHUB_USER": "researcher1", "JUPYTERHUB_SERVER_NAME": ""}, False),
        ({"JUPYTERHUB_SERVER_NAME": ""}, False),  # not a server the hub started
        ({"PATH": "/bin"}, False),
    ],
)
def test_only_this_persons_server_is_a_leftover(tmp_path, env, found):
    _proc(tmp_path, 4242, env)
    assert leftover_servers(os.geteuid(), "student1", "", proc=tmp_path) == ([4242] if found else [])


def test_another_accounts_process_never_matches(tmp_path):
    _proc(tmp_path, 4242, {"JUPYTERHUB_USER": "student1", "JUPYTERHUB_SERVER_NAME": ""})
    assert leftover_servers(os.geteuid() + 1, "student1", "", proc=tmp_path) == []


def test_the_known_pid_and_non_processes_are_skipped(tmp_path):
    env = {"JUPYTERHUB_USER": "student1", "JUPYTERHUB_SERVER_NAME": ""}
    _proc(tmp_path, 4242, env)
    _proc(tmp_path, 4343, env)
    (tmp_path / "self").mkdir()
    (tmp_path / "4444").mkdir()  # gone meanwhile: no environ
    assert leftover_servers(os.geteuid(), "student1", "", exclude=4343, proc=tmp_path) == [4242]


def test_a_server_another_hub_started_for_the_same_account_is_not_a_leftover(tmp_path):
    """Two hubs on one machine (parallel test runs) run student1 as the same account: each stops
    only what it started itself (its own API URL in the server's environment)."""
    mine = {"JUPYTERHUB_USER": "student1", "JUPYTERHUB_SERVER_NAME": "", "JUPYTERHUB_API_URL": "http://127.0.0.1:5001/hub/api"}
    _proc(tmp_path, 4242, mine)
    _proc(tmp_path, 4343, {**mine, "JUPYTERHUB_API_URL": "http://127.0.0.1:6002/hub/api"})
    found = leftover_servers(os.geteuid(), "student1", "", proc=tmp_path, hub_api_url="http://127.0.0.1:5001/hub/api")
    assert found == [4242]
