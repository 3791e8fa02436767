"""The spawn form: a pure render of the allowed profiles, snapshot-tested and escaped.

Snapshots live in tests/unit/snapshots/spawn_form/<case>.html. After an intended
change, regenerate with `SCIP_UPDATE_SNAPSHOTS=1 pytest tests/unit/test_spawn_form.py`
and review the diff.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scip_jupyter.catalog import Profile, load_catalog
from scip_jupyter.options import ProfileStatus, render_spawn_form
from tests.fixtures.common import ROOT, assert_matches_snapshot

SNAPSHOTS = Path(__file__).parent / "snapshots" / "spawn_form"
CATALOG = load_catalog(ROOT / "hub_config" / "catalog.yaml")
EVIL = "<script>alert('x')</script>"
NOTE = "This host has no GPU: GPU and MIG profiles start on CPU only, and the server is told so."


def evil_profile() -> Profile:
    return Profile(
        slug="evil",
        display_name=f"{EVIL} & friends",
        description=f'"quoted" {EVIL}',
        kind="cpu",
        image="img",
        allowed_groups=["students"],
        site='"><img src=x onerror=alert(1)>',
        jurisdiction="CA",
    )


CASES = {
    "students": (CATALOG.profiles_for(["students"]), None, NOTE),
    "researchers": (CATALOG.profiles_for(["researchers"]), "h100-full", NOTE),
    "nobody": ([], None, ""),
    "script": ([evil_profile()], None, f"note {EVIL}"),
}
#: Live status as the spawner gathers it: cluster free counts and allocation left.
RESEARCHER_STATUS = {
    "cpu-small": ProfileStatus(free=None, allocation="not metered"),
    "mig-1g-10gb": ProfileStatus(free=5, allocation="group researchers: 4 of 4 × h100_1g.10gb free"),
    "mig-3g-40gb": ProfileStatus(free=0, allocation="not metered"),
    "h100-full": ProfileStatus(
        free=3, allocation="used up: group researchers: 0 of 1 × h100 free, 480 of 500 GPU-hours left this month",
        allocation_ok=False,
    ),
}
STATUS_CASES = {
    "researchers-live": (CATALOG.profiles_for(["researchers"]), RESEARCHER_STATUS),
    "students-unknown": (CATALOG.profiles_for(["students"]), {p: ProfileStatus() for p in ("cpu-small", "mig-1g-10gb")}),
    "script-live": ([evil_profile()], {"evil": ProfileStatus(free=0, allocation=f"group {EVIL}: 0 of 1 left", allocation_ok=False)}),
}


def radio_values(page: str) -> list[str]:
    return re.findall(r'<input[^>]*name="profile"[^>]*value="([^"]*)"', page)


def checked_value(page: str) -> str | None:
    m = re.search(r'<input[^>]*value="([^"]*)" checked>', page)
    return m.group(1) if m else None


def rendered(case: str) -> str:
    if case in STATUS_CASES:
        profiles, status = STATUS_CASES[case]
        return render_spawn_form(profiles, status=status)
    profiles, selected, note = CASES[case]
    return render_spawn_form(profiles, selected=selected, host_note=note)


@pytest.mark.parametrize("case", sorted(CASES) + sorted(STATUS_CASES))
def test_form_matches_snapshot(case):
    assert_matches_snapshot(rendered(case), SNAPSHOTS / f"{case}.html")


@pytest.mark.parametrize(
    "groups, slugs",
    [
        (["students"], ["cpu-small", "mig-1g-10gb"]),
        (["instructors"], ["cpu-small", "mig-1g-10gb", "mig-3g-40gb"]),
        (["researchers"], ["cpu-small", "mig-1g-10gb", "mig-3g-40gb", "h100-full"]),
        (["strangers"], []),
    ],
)
def test_form_offers_exactly_the_allowed_profiles(groups, slugs):
    assert radio_values(render_spawn_form(CATALOG.profiles_for(groups))) == slugs


@pytest.mark.parametrize(
    "selected, checked",
    [(None, "cpu-small"), ("mig-1g-10gb", "mig-1g-10gb"), ("h100-full", "cpu-small"), ("<script>", "cpu-small")],
)
def test_form_checks_previous_choice_only_if_allowed(selected, checked):
    page = render_spawn_form(CATALOG.profiles_for(["students"]), selected=selected)
    assert checked_value(page) == checked
    assert page.count(" checked") == 1


def test_script_profile_is_escaped_everywhere():
    page = render_spawn_form([evil_profile()], host_note=EVIL)
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; friends" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page


def test_form_shows_resources_and_gpu():
    page = render_spawn_form([CATALOG.get("mig-1g-10gb"), CATALOG.get("h100-full")])
    assert "H100 slice 1g.10gb (MIG, 1/7 of a GPU)" in page  # Profile.summary, the one wording
    assert "1 × H100 GPU" in page
    assert "CPU: 1 core guaranteed, up to 4 cores" in page
    assert "Memory: 8 GB guaranteed, up to 16 GB" in page


def card(page: str, slug: str) -> str:
    m = re.search(rf'<div class="scip-profile[^"]*"[^>]*>\s*<input[^>]*value="{slug}".*?</div>', page, re.S)
    assert m, page
    return m.group(0)


@pytest.mark.parametrize(
    "slug, available, lines",
    [
        ("cpu-small", "yes", ["Cost: no GPU-hours", "Your allocation: not metered"]),
        ("mig-1g-10gb", "yes", ["Cost: 1/7 GPU-hour per hour", "Free on the cluster now: 5",
                                "Your allocation: group researchers: 4 of 4 × h100_1g.10gb free"]),
        ("mig-3g-40gb", "no", ['<span class="scip-profile-free scip-none-free">None free on the cluster now</span>']),
        ("h100-full", "no", ["Free on the cluster now: 3", '<span class="scip-profile-allocation scip-none-free">'
                             "Your allocation: used up: group researchers: 0 of 1 × h100 free"]),
    ],
)
def test_form_shows_availability_cost_and_allocation(slug, available, lines):
    page = render_spawn_form(CATALOG.profiles_for(["researchers"]), status=RESEARCHER_STATUS)
    found = card(page, slug)
    assert f'data-available="{available}"' in found
    for line in lines:
        assert line in found


def test_profiles_with_none_free_are_still_offered():
    page = render_spawn_form(CATALOG.profiles_for(["researchers"]), status=RESEARCHER_STATUS)
    assert radio_values(page) == ["cpu-small", "mig-1g-10gb", "mig-3g-40gb", "h100-full"]
    assert "Free on the cluster" not in card(page, "cpu-small")  # CPU is not tracked


def test_unknown_availability_says_so():
    page = rendered("students-unknown")
    assert "Free on the cluster now: unknown" in card(page, "mig-1g-10gb")
    assert 'data-available="yes"' in card(page, "mig-1g-10gb")


def test_status_text_is_escaped():
    page = rendered("script-live")
    assert "<script>" not in page
    assert "Your allocation: group &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;: 0 of 1 left" in page
