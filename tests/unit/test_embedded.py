"""`scip-jupyter up` without starting anything: state folder, secrets, banner, refusals."""

from __future__ import annotations

import argparse
import os
import stat

import pytest

from scip_jupyter import cli, embedded
from scip_jupyter.embedded import HubSettings, banner, prepare_state, read_or_create_secret


def test_secret_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "demo-password"
    first, created = read_or_create_secret(path)
    assert created and len(first) >= 8
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = read_or_create_secret(path)
    assert (again, created_again) == (first, False)


def test_secret_file_made_readable_by_others_is_tightened(tmp_path):
    path = tmp_path / "s"
    read_or_create_secret(path)
    os.chmod(path, 0o644)
    read_or_create_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_state_layout_keeps_secrets_private(tmp_path):
    settings = HubSettings(state_dir=tmp_path / "hub", hub_port=1, proxy_api_port=2)
    prepare_state(settings)
    assert stat.S_IMODE(settings.private.stat().st_mode) == 0o700
    shared = 0o711 if os.geteuid() == 0 else 0o700
    assert stat.S_IMODE(settings.state_dir.stat().st_mode) == shared
    assert stat.S_IMODE(settings.homes.stat().st_mode) == shared


def test_banner_prints_password_only_when_new_and_never_the_token(tmp_path):
    settings = HubSettings(state_dir=tmp_path, port=8123, hub_port=1, proxy_api_port=2, admin_token="T" * 40)
    first = banner(settings, "pw-123456", tmp_path / "demo-password")
    later = banner(settings, None, tmp_path / "demo-password")
    assert "http://127.0.0.1:8123/" in first
    for user in ("student1", "researcher1", "instructor1"):
        assert user in first and user in later
    assert "pw-123456" in first and "pw-123456" not in later
    assert "T" * 40 not in first + later
    assert "scip-admin" in first


def test_settings_round_trip_through_environment(tmp_path):
    env = {
        embedded.ENV_STATE: str(tmp_path), embedded.ENV_PORT: "9000", embedded.ENV_IP: "127.0.0.1",
        embedded.ENV_HUB_PORT: "9001", embedded.ENV_PROXY_API_PORT: "9002", embedded.ENV_ADMIN_TOKEN: "x" * 20,
    }
    s = HubSettings.from_env(env)
    assert (s.state_dir, s.port, s.hub_port, s.proxy_api_port, s.admin_token) == (tmp_path, 9000, 9001, 9002, "x" * 20)
    assert s.catalog.name == "catalog.yaml"


def _args(tmp_path, **over):
    parser = argparse.ArgumentParser()
    embedded.add_arguments(parser)
    args = parser.parse_args(["--state-dir", str(tmp_path / "hub")])
    for k, v in over.items():
        setattr(args, k, v)
    return args


@pytest.mark.parametrize(
    "override, message",
    [
        ({"port": 70000}, "--port: 70000 is not a TCP port; allowed 1-65535"),
        ({"ip": "localhost:80"}, "--ip: 'localhost:80' is not an IP address"),
        ({"config": "missing.py"}, "--config: missing.py does not exist"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(tmp_path, capsys, override, message):
    from pathlib import Path

    over = {k: Path(v) if k == "config" else v for k, v in override.items()}
    assert embedded.run(_args(tmp_path, **over)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "hub").exists()  # nothing was created


def test_short_admin_token_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(embedded.ENV_ADMIN_TOKEN, "short")
    assert embedded.run(_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "$SCIP_ADMIN_TOKEN: must be at least 16 characters" in err
    assert "short" not in err  # the token itself is never echoed


def test_missing_proxy_says_to_run_make_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(HubSettings, "proxy_command", property(lambda self: tmp_path / "nope"))
    assert embedded.run(_args(tmp_path)) == 2
    assert "run `make run`" in capsys.readouterr().err


def test_bad_catalog_is_reported_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "catalog.yaml"
    bad.write_text("profiles:\n  - slug: Bad Slug\n")
    assert embedded.run(_args(tmp_path, catalog=bad)) == 2
    assert f"{bad}:2" in capsys.readouterr().err


def test_up_is_routed_by_the_cli():
    parser = cli.build_parser()
    args = parser.parse_args(["up", "--port", "8111"])
    assert args._module == "scip_jupyter.embedded" and args.port == 8111 and args.ip == "127.0.0.1"
