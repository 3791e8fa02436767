"""Allocation usage widget: model from the ledger, view (ipywidgets and escaped HTML fallback)."""

from __future__ import annotations

import datetime as dt

import pytest

from scip_jupyter.allocations.ledger import Ledger, SlurmJobRecord
from scip_jupyter.allocations.policy import Request, accounts_for
from scip_jupyter.allocations.quotas import Allocations
from scip_jupyter.allocations.usage_model import group_usage
from scip_widgets.usage import AllocationUsageView

NOW = dt.datetime(2026, 11, 20, 12)
ALLOCATIONS = Allocations.model_validate(
    {"groups": {"lab": {"max_gpus": {"h100": 2, "h100_1g.10gb": 7}, "gpu_hours": 100, "slurm_account": "def-lab"}}}
)


@pytest.fixture
def ledger(tmp_path):
    clock = lambda: NOW - dt.timedelta(hours=3)  # noqa: E731
    led = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}", clock=clock)
    r = Request("ana", "", "h100-full", "h100", 1, 1.0)
    assert led.reserve(r, accounts_for(r, ["lab"], ALLOCATIONS, None, NOW)).allowed  # held for 3 h at NOW
    led.record_slurm_jobs([SlurmJobRecord("local-slurm", "7", "bob", "", "scip-user", "def-lab", "group:lab", "h100",
                                          2, 2.0, "COMPLETED", NOW - dt.timedelta(days=1, hours=2),
                                          NOW - dt.timedelta(days=1))])
    led.clock = lambda: NOW
    yield led
    led.dispose()


def test_model_counts_slots_and_gpu_hours_of_servers_and_slurm_jobs(ledger):
    u = group_usage(ledger, ALLOCATIONS, "lab", NOW)
    assert [(s.flavour, s.in_use, s.limit) for s in u.slots] == [("h100", 1, 2), ("h100_1g.10gb", 0, 7)]
    assert u.gpu_hours_used == pytest.approx(3 + 4) and u.gpu_hours_left == pytest.approx(93)
    assert u.by_source == {"server": pytest.approx(3), "slurm": pytest.approx(4)}
    assert u.daily[-1] == (NOW.date(), pytest.approx(3)) and u.daily[-2][1] == pytest.approx(4)
    with pytest.raises(KeyError, match="allowed: lab"):
        group_usage(ledger, ALLOCATIONS, "nope", NOW)


def test_widget_shows_the_model(ledger):
    u = group_usage(ledger, ALLOCATIONS, "lab", NOW)
    view = AllocationUsageView(u)
    view.widget()
    assert view.parts.slots["h100"].value == 1 and view.parts.slots["h100"].max == 2
    assert view.parts.hours.value == pytest.approx(7) and view.parts.hours.max == 100
    assert "93.00 of 100 GPU-hours left this month" in view.parts.hours_text.value
    assert "<rect" in view.parts.chart.value


def test_refresh_reloads_from_a_callable(ledger):
    view = AllocationUsageView(lambda: group_usage(ledger, ALLOCATIONS, "lab", NOW))
    view.widget()
    ledger.release("ana")
    ledger.clock = lambda: NOW + dt.timedelta(hours=1)
    view.refresh()
    assert view.parts.slots["h100"].value == 0


def test_html_fallback_escapes_everything(ledger):
    from dataclasses import replace

    u = group_usage(ledger, ALLOCATIONS, "lab", NOW)
    evil = replace(u, label="<script>alert(1)</script>", window_label="<img src=x onerror=alert(1)>")
    html = AllocationUsageView(evil)._repr_html_()
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "<svg" in html and "h100_1g.10gb" in html
