"""The home page's pure parts (scip_jupyter/home/model.py) and the language switcher's redirect check."""

from __future__ import annotations

import datetime as dt

import pytest

from scip_jupyter.allocations.policy import Account, Holding
from scip_jupyter.arc.states import JobState, Phase
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.home import model
from scip_jupyter.home.handlers import safe_next
from scip_jupyter.i18n import use_locale

NOW = dt.datetime(2026, 12, 1, 12)
MONTH = (dt.datetime(2026, 12, 1), dt.datetime(2027, 1, 1))


def holding(user, account="group:r", flavour="h100", units=1, weight=1.0, start=NOW - dt.timedelta(hours=2), end=None):
    return Holding(user, "", account, flavour, units, weight, start, end)


def test_allocation_card_counts_slots_of_everyone_and_hours_of_the_window():
    account = Account("group:r", "group r", "allocations.yaml", MONTH, "this month", {"h100": 2, "h100_1g.10gb": 7}, 500)
    holdings = [holding("ana"), holding("bo", units=1), holding("bo", flavour="h100_1g.10gb", weight=1 / 7),
                holding("ana", account="group:other")]
    card = model.allocation_card(account, holdings, "ana", NOW)
    assert [(s.flavour, s.used, s.limit) for s in card.slots] == [("h100", 2, 2), ("h100_1g.10gb", 1, 7)]
    assert card.hours_used == pytest.approx(2 + 2 + 2 / 7)
    assert card.your_hours == pytest.approx(2)
    assert card.hours_left == pytest.approx(500 - card.hours_used)


def test_course_allocation_counts_only_the_persons_hours():
    account = Account("course:c", "course c", "courses.yaml", MONTH, "in course c", user_gpu_hours=20)
    card = model.allocation_card(account, [holding("ana", "course:c"), holding("bo", "course:c")], "ana", NOW)
    assert (card.hours_limit, card.hours_used) == (20, pytest.approx(2))


def test_daily_chart_splits_hours_by_day():
    series = model.daily_hours([holding("ana", start=NOW - dt.timedelta(hours=14))], "ana", NOW, days=3)
    assert [h for _d, h in series] == [0.0, 2.0, 12.0]
    bars = model.chart_bars(series)
    assert [b.height for b in bars] == [1, 10, 60]


def _job(job_id, user, phase=Phase.PENDING, reason="Priority", account=None):
    tags = JobTags(user=user, server="")
    return JobState(job_id, phase, slurm_state=phase.value.upper(), reason=reason, name="w",
                    user=f"jupyter-{user}" if account is None else account,
                    start=dt.datetime(2026, 12, 1, 13, tzinfo=dt.timezone.utc), comment=tags.comment(), tags=tags)


def test_job_rows_are_the_persons_by_tag_with_reason_and_expected_start():
    rows = model.job_rows("local-slurm", [_job("1", "ana"), _job("2", "bo"), _job("3_[1-4]", "ana"),
                                          _job("4", "ana", Phase.COMPLETED, "")], "ana", "jupyter-ana", NOW)
    assert [r.job_id for r in rows] == ["1", "3_[1-4]", "4"]
    assert rows[0].reason == "Priority" and rows[0].expected_start == "2026-12-01 13:00 UTC"
    assert rows[1].cancel_id == "3"
    assert [r.cancellable for r in rows] == [True, True, False]


def test_untagged_jobs_are_nobodys():
    untagged = JobState("9", Phase.RUNNING, user="ana")
    assert model.job_rows("p", [untagged], "ana", "ana", NOW) == []


def test_a_job_tagged_for_ana_but_run_by_another_account_is_not_hers():
    forged = [_job("5", "ana", account="jupyter-bo"), _job("6", "ana", account="root"), _job("7", "ana", account="")]
    assert model.job_rows("p", forged, "ana", "jupyter-ana", NOW) == []
    assert model.job_rows("p", [_job("8", "ana")], "ana", "", NOW) == []  # no known account: nobody's


@pytest.mark.parametrize("value, expected", [
    ("/hub/scip/home", "/hub/scip/home"), ("/hub/spawn/ana?x=1", "/hub/spawn/ana?x=1"),
    ("https://elsewhere.example/", "/d"), ("//elsewhere.example/x", "/d"), ("javascript:alert(1)", "/d"),
    ("", "/d"), ("/\\elsewhere", "/d"),
])
def test_language_switcher_goes_back_only_to_this_site(value, expected):
    assert safe_next(value, "/d") == expected


def test_words_and_labels_follow_the_language():
    with use_locale("fr"):
        assert model.state_words()["running"] == "en marche"
        assert model.account_label("group:r", "group r") == "groupe r"
        assert model.window_label("this month") == "ce mois-ci"
        assert model.duration_text(3600 * 2 + 60) == "2 h 1 min"
    assert model.window_label("in course c") == "in course c"
