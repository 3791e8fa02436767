"""Allocation decisions, table-driven: who pays, what is left, and the message of a refusal."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest

from scip_jupyter.allocations.policy import (
    Holding,
    Request,
    accounts_for,
    decide,
    paying_course,
    period_window,
    standing,
)
from scip_jupyter.allocations.quotas import Allocations, Period, Unlisted
from scip_jupyter.catalog import load_catalog
from scip_jupyter.courses.registry import Course
from tests.fixtures.common import ROOT

CATALOG = load_catalog(ROOT / "hub_config" / "catalog.yaml")
NOW = dt.datetime(2026, 11, 26, 12, 0)
HOUR = dt.timedelta(hours=1)
ALLOCATIONS = Allocations.model_validate(
    {
        "period": "month",
        "groups": {
            "lab-a": {"max_gpus": {"h100": 1}, "gpu_hours": 10},
            "researchers": {"max_gpus": {"h100": 2, "h100_1g.10gb": 4}},
            "wide": {"max_gpus": {"*": 1}},
        },
    }
)


def course(**allocation) -> Course:
    return Course.model_validate(
        {
            "id": "gpu-101", "title": "GPU 101", "instructors": ["teacher"], "students": {"users": ["sam", "kim"]},
            "material": {"path": "m"}, "profiles": ["mig-1g-10gb", "cpu-small"], "allocation": allocation,
            "start": "2026-09-01", "end": "2026-12-31",
        }
    )


def held(user, account, slug, start=NOW - HOUR, end=None, server=""):
    p = CATALOG.get(slug)
    return Holding(user, server, account, p.flavour, p.units, float(p.gpu_share), start, end)


def ask(user, slug, groups, holdings=(), allocations=ALLOCATIONS, crs=None, option=None, unlisted=Unlisted.allow):
    profile = CATALOG.get(slug)
    request = Request.for_profile(profile, user)
    paying = paying_course([crs] if crs else [], slug, user, groups, option, profile.allows(groups), NOW.date())
    accounts = accounts_for(request, groups, allocations, paying, NOW)
    return decide(request, accounts, list(holdings), NOW, unlisted)


CASES = {
    "free-h100": (ask("ana", "h100-full", ["lab-a"]), True, "group:lab-a", []),
    "last-h100-taken": (
        ask("ana", "h100-full", ["lab-a"], [held("bob", "group:lab-a", "h100-full")]),
        False, "",
        ["profile: allocation exhausted for 'h100-full' (needs 1 × h100): ",
         "group lab-a: max_gpus.h100 is 1 in allocations.yaml, 1 in use, 0 left (needs 1 × h100)",
         "Left: group lab-a: 0 of 1 × h100 free, 9 of 10 GPU-hours left this month"],
    ),
    "own-stale-holding-is-replaced": (
        ask("ana", "h100-full", ["lab-a"], [held("ana", "group:lab-a", "h100-full")]), True, "group:lab-a", [],
    ),
    "same-user-other-server-counts": (
        ask("ana", "h100-full", ["lab-a"], [held("ana", "group:lab-a", "h100-full", server="big")]), False, "", [],
    ),
    "released-holding-frees-the-slot": (
        ask("ana", "h100-full", ["lab-a"], [held("bob", "group:lab-a", "h100-full", NOW - 2 * HOUR, NOW - HOUR)]),
        True, "group:lab-a", [],
    ),
    "second-group-pays-when-first-is-full": (
        ask("ana", "h100-full", ["lab-a", "researchers"], [held("bob", "group:lab-a", "h100-full")]),
        True, "group:researchers", ["paid by group researchers; before this start: 2 of 2 × h100 free"],
    ),
    "gpu-hours-used-up": (
        ask("ana", "h100-full", ["lab-a"], [held("bob", "group:lab-a", "h100-full", NOW - 11 * HOUR, NOW - HOUR)]),
        False, "",
        ["group lab-a: gpu_hours is 10 in allocations.yaml, 10 used this month, 0 left (needs 1 GPU-hours)"],
    ),
    "last-month-hours-do-not-count": (
        ask("ana", "h100-full", ["lab-a"],
            [held("bob", "group:lab-a", "h100-full", dt.datetime(2026, 10, 1), dt.datetime(2026, 10, 30))]),
        True, "group:lab-a", ["10 of 10 GPU-hours left this month"],
    ),
    "hours-across-the-month-start-count-from-the-first": (
        ask("ana", "h100-full", ["lab-a"],
            [held("bob", "group:lab-a", "h100-full", dt.datetime(2026, 10, 31, 20), dt.datetime(2026, 11, 1, 6))]),
        True, "group:lab-a", ["4 of 10 GPU-hours left this month"],
    ),
    "mig-slices-hold-their-own-flavour": (
        ask("ana", "mig-1g-10gb", ["researchers"], [held("bob", "group:researchers", "h100-full")] * 2),
        True, "group:researchers", ["4 of 4 × h100_1g.10gb free"],
    ),
    "cpu-is-never-metered": (ask("ana", "cpu-small", ["lab-a"]), True, "", ["not metered"]),
    "uncovered-flavour-allowed-unmetered": (ask("ana", "mig-3g-40gb", ["lab-a"]), True, "", []),
    "uncovered-flavour-denied-when-unlisted-deny": (
        ask("ana", "mig-3g-40gb", ["lab-a"], unlisted=Unlisted.deny), False, "",
        ["profile: no allocation of yours covers h100_3g.40gb (needed by 'mig-3g-40gb')"],
    ),
    "star-covers-every-other-flavour": (
        ask("ana", "mig-3g-40gb", ["wide"], [held("bob", "group:wide", "mig-3g-40gb")]), False, "",
        ["group wide: max_gpus.* is 1 in allocations.yaml, 1 in use, 0 left"],
    ),
    "star-counts-each-flavour-apart": (
        ask("ana", "mig-3g-40gb", ["wide"], [held("bob", "group:wide", "h100-full")]), True, "group:wide", [],
    ),
    "course-pays-for-course-launch": (
        ask("sam", "mig-1g-10gb", ["students"], crs=course(max_concurrent_servers=2), option="gpu-101"),
        True, "course:gpu-101", ["paid by course gpu-101; before this start: 2 of 2 servers free"],
    ),
    "course-servers-full": (
        ask("sam", "cpu-small", ["students"], [held("kim", "course:gpu-101", "mig-1g-10gb")],
            crs=course(max_concurrent_servers=1), option="gpu-101"),
        False, "",
        ["course gpu-101: allocation.max_concurrent_servers is 1 in courses.yaml, 1 in use, 0 left (needs 1 server)"],
    ),
    "course-student-hours-used-up": (
        ask("sam", "mig-1g-10gb", ["students"], [held("sam", "course:gpu-101", "mig-1g-10gb", NOW - 8 * HOUR, NOW)],
            crs=course(gpu_hours_per_student=1), option="gpu-101"),
        False, "",
        ["course gpu-101: allocation.gpu_hours_per_student is 1 in courses.yaml, 1.14 used in course gpu-101, 0 left"],
    ),
    "course-hours-are-per-student": (
        ask("kim", "mig-1g-10gb", ["students"], [held("sam", "course:gpu-101", "mig-1g-10gb", NOW - 8 * HOUR, NOW)],
            crs=course(gpu_hours_per_student=1), option="gpu-101"),
        True, "course:gpu-101", ["1 of 1 of your GPU-hours left in course gpu-101"],
    ),
    "course-zero-means-no-limit": (
        ask("sam", "mig-1g-10gb", ["students"], crs=course(), option="gpu-101"), True, "course:gpu-101", ["no limit"],
    ),
    "course-grant-pays-without-option": (
        ask("sam", "mig-1g-10gb", [], crs=course(max_concurrent_servers=3)), True, "course:gpu-101", [],
    ),
    "group-pays-when-groups-allow-and-no-option": (
        ask("sam", "mig-1g-10gb", ["researchers"], crs=course(max_concurrent_servers=3)),
        True, "group:researchers", [],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_decision(case):
    decision, allowed, account, fragments = CASES[case]
    assert decision.allowed is allowed, decision.message
    assert decision.account_key == account
    for fragment in fragments:
        assert fragment in decision.message
    if not allowed:
        assert decision.message.startswith("profile: ")


def test_refusal_names_every_account_tried():
    decision = ask(
        "ana", "h100-full", ["lab-a", "researchers"],
        [held("bob", "group:lab-a", "h100-full"), held("cy", "group:researchers", "h100-full"),
         held("di", "group:researchers", "h100-full")],
    )
    assert not decision.allowed
    assert [f.field for f in decision.shortfalls] == ["max_gpus.h100", "max_gpus.h100"]
    assert "group lab-a: max_gpus.h100" in decision.message and "group researchers: max_gpus.h100" in decision.message
    assert decision.message.endswith("Stop a running server or choose another profile")


@pytest.mark.parametrize(
    "holdings, ok, text",
    [
        ([], True, "group lab-a: 1 of 1 × h100 free, 10 of 10 GPU-hours left this month"),
        ([held("bob", "group:lab-a", "h100-full")], False, "used up: group lab-a: 0 of 1 × h100 free, 9 of 10 GPU-hours"),
    ],
)
def test_standing_for_the_form(holdings, ok, text):
    profile = CATALOG.get("h100-full")
    request = Request.for_profile(profile, "ana")
    accounts = accounts_for(request, ["lab-a"], ALLOCATIONS, None, NOW)
    result = standing(request, accounts, holdings, NOW)
    assert result.ok is ok
    assert result.text.startswith(text)


def test_standing_without_accounts():
    request = Request.for_profile(CATALOG.get("mig-3g-40gb"), "ana")
    assert standing(request, [], [], NOW) == standing(request, [], [], NOW, Unlisted.allow)
    assert standing(request, [], [], NOW).text == "not metered"
    assert standing(request, [], [], NOW, Unlisted.deny).text == "no allocation of yours covers h100_3g.40gb"


@pytest.mark.parametrize(
    "period, now, window",
    [
        (Period.day, dt.datetime(2026, 11, 26, 23, 59), (dt.datetime(2026, 11, 26), dt.datetime(2026, 11, 27))),
        (Period.week, dt.datetime(2026, 11, 29, 1), (dt.datetime(2026, 11, 23), dt.datetime(2026, 11, 30))),
        (Period.month, dt.datetime(2026, 12, 31, 5), (dt.datetime(2026, 12, 1), dt.datetime(2027, 1, 1))),
        (Period.month, dt.datetime(2026, 2, 1), (dt.datetime(2026, 2, 1), dt.datetime(2026, 3, 1))),
    ],
)
def test_period_window(period, now, window):
    assert period_window(period, now) == window


@pytest.mark.parametrize(
    "slug, flavour, units, share",
    [
        ("cpu-small", None, 0, Fraction(0)),
        ("mig-1g-10gb", "h100_1g.10gb", 1, Fraction(1, 7)),
        ("mig-3g-40gb", "h100_3g.40gb", 1, Fraction(3, 7)),
        ("h100-full", "h100", 1, Fraction(1)),
    ],
)
def test_what_a_profile_holds_and_costs(slug, flavour, units, share):
    profile = CATALOG.get(slug)
    assert (profile.flavour, profile.units, profile.gpu_share) == (flavour, units, share)


@pytest.mark.parametrize(
    "option, groups, today, expected",
    [
        ("gpu-101", ["students"], dt.date(2026, 10, 1), "gpu-101"),
        (None, ["students"], dt.date(2026, 10, 1), None),  # the groups allow the profile: they pay
        (None, [], dt.date(2026, 10, 1), "gpu-101"),  # only the course grants it
        ("gpu-101", ["students"], dt.date(2027, 1, 1), None),  # ended: the course pays for nothing
        ("other", [], dt.date(2026, 10, 1), "gpu-101"),
    ],
)
def test_paying_course(option, groups, today, expected):
    c = course()
    allowed_by_groups = CATALOG.get("mig-1g-10gb").allows(groups)
    found = paying_course([c], "mig-1g-10gb", "sam", groups, option, allowed_by_groups, today)
    assert (found.id if found else None) == expected


def test_not_enrolled_user_gets_no_course():
    assert paying_course([course()], "mig-1g-10gb", "eve", [], "gpu-101", False, dt.date(2026, 10, 1)) is None
