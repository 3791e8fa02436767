"""`scip-jupyter arc reconcile` cancels jobs of servers it believes stopped: it must be told which run."""

from __future__ import annotations

import pytest

from scip_jupyter.arc import jobs_cli
from scip_jupyter.cli import main


@pytest.fixture
def no_slurm(monkeypatch):
    def refuse(args):
        raise AssertionError("reconcile reached Slurm without an explicit scope")

    monkeypatch.setattr(jobs_cli, "_cleanup", refuse)


@pytest.mark.parametrize("extra", [[], ["--dry-run"], ["--only-user", "alice"], ["--every", "0"]])
def test_reconcile_without_a_scope_refuses_and_touches_nothing(no_slurm, capsys, extra):
    assert main(["arc", "reconcile", "--preset", "local-slurm", *extra]) == 2
    err = capsys.readouterr().err
    assert "--hub" in err and "--running" in err and "--none-running" in err
    assert "Traceback" not in err


def test_none_running_is_the_explicit_way_to_say_every_server_stopped(monkeypatch, capsys):
    seen = {}

    def once(cleanup, running, args):
        seen["running"] = set(running)
        return 0

    monkeypatch.setattr(jobs_cli, "_cleanup", lambda args: object())
    monkeypatch.setattr(jobs_cli, "_reconcile_once", once)
    assert main(["arc", "reconcile", "--preset", "local-slurm", "--none-running", "--dry-run"]) == 0
    assert seen["running"] == set()


def test_none_running_and_running_together_are_refused(no_slurm, capsys):
    assert main(["arc", "reconcile", "--none-running", "--running", "alice/"]) == 2
    assert "--none-running" in capsys.readouterr().err
