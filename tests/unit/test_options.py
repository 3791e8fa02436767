"""Spawn options: parse (form), validate (never trusts input), apply (only what passed)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
from tornado import web

from scip_jupyter.catalog import load_catalog
from scip_jupyter.spawners.local import SCIPLocalSpawner
from scip_jupyter.options import OptionsError, options_from_form, validate_spawn_options
from tests.fixtures.common import ROOT

CATALOG_PATH = ROOT / "hub_config" / "catalog.yaml"
STUDENT = ["cpu-small", "mig-1g-10gb"]
RESEARCHER = ["cpu-small", "mig-1g-10gb", "mig-3g-40gb", "h100-full"]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(CATALOG_PATH)


@pytest.mark.parametrize(
    "groups, options, slug",
    [
        (["students"], {"profile": "cpu-small"}, "cpu-small"),
        (["students"], {"profile": "mig-1g-10gb"}, "mig-1g-10gb"),
        (["students"], {}, "cpu-small"),  # the catalog's default
        (["students"], None, "cpu-small"),
        (["students"], {"profile": ""}, "cpu-small"),
        (["researchers"], {"profile": "h100-full"}, "h100-full"),
        (["instructors"], {"profile": "mig-3g-40gb"}, "mig-3g-40gb"),
        (["students", "researchers"], {"profile": "h100-full"}, "h100-full"),
    ],
)
def test_allowed_choice_is_accepted(catalog, groups, options, slug):
    profile, normalised = validate_spawn_options(options, catalog, groups)
    assert profile.slug == slug
    assert normalised == {"profile": slug}


@pytest.mark.parametrize(
    "groups, options, field, status, allowed",
    [
        (["students"], {"profile": "h100-full"}, "profile", 403, STUDENT),
        (["students"], {"profile": "mig-3g-40gb"}, "profile", 403, STUDENT),
        (["instructors"], {"profile": "h100-full"}, "profile", 403, ["cpu-small", "mig-1g-10gb", "mig-3g-40gb"]),
        (["students"], {"profile": "no-such"}, "profile", 400, STUDENT),
        (["students"], {"profile": "<script>alert(1)</script>"}, "profile", 400, STUDENT),
        (["students"], {"profile": 7}, "profile", 400, STUDENT),
        (["students"], {"profile": ["cpu-small", "h100-full"]}, "profile", 400, STUDENT),
        (["students"], {"profile": None, "image": "evil"}, "image", 400, ["profile", "course", "notebook"]),
        (["students"], {"profile": "cpu-small", "cpu_limit": 64}, "cpu_limit", 400, ["profile", "course", "notebook"]),
        (["students"], {"profile": "cpu-small", "profile-option-cpu-small--image": "x"}, "profile-option-cpu-small--image", 400, []),
        (["students"], {"profile": "cpu-small", "course": 5}, "course", 400, []),
        (["students"], {"profile": "cpu-small", "course": "intro", "notebook": "x" * 501}, "notebook", 400, []),
        (["students"], ["cpu-small"], "user_options", 400, ['{"profile": "<slug>"}']),
        (["students"], "cpu-small", "user_options", 400, ['{"profile": "<slug>"}']),
        ([], {}, "profile", 403, []),
        (["nobody-group"], {"profile": "cpu-small"}, "profile", 403, []),
    ],
)
def test_bad_choice_names_field_and_allowed_values(catalog, groups, options, field, status, allowed):
    before = copy.deepcopy(options)
    with pytest.raises(OptionsError) as err:
        validate_spawn_options(options, catalog, groups)
    assert (err.value.field, err.value.status, err.value.allowed) == (field, status, allowed)
    assert str(err.value).startswith(f"{field}: ")
    assert "allowed values: " in str(err.value)
    assert options == before  # the input is never modified


def test_extra_grant_allows_profile_outside_groups(catalog):
    """A course can grant a profile its students' groups do not (scip_extra_profiles)."""
    profile, _ = validate_spawn_options({"profile": "mig-3g-40gb"}, catalog, ["students"], extra_allowed=["mig-3g-40gb"])
    assert profile.slug == "mig-3g-40gb"


def test_course_and_notebook_are_kept(catalog):
    _, normalised = validate_spawn_options({"profile": "cpu-small", "course": "intro", "notebook": "a.ipynb"}, catalog, ["students"])
    assert normalised == {"profile": "cpu-small", "course": "intro", "notebook": "a.ipynb"}


def test_long_unknown_profile_is_shortened_in_message(catalog):
    with pytest.raises(OptionsError) as err:
        validate_spawn_options({"profile": "x" * 500}, catalog, ["students"])
    assert len(str(err.value)) < 200


@pytest.mark.parametrize(
    "formdata, parsed",
    [
        ({"profile": ["cpu-small"]}, {"profile": "cpu-small"}),
        ({"profile": ["cpu-small"], "_xsrf": ["token"]}, {"profile": "cpu-small"}),
        ({"profile": ["a", "b"]}, {"profile": ["a", "b"]}),
        ({"profile": []}, {}),
        ({}, {}),
    ],
)
def test_form_parsing_has_no_opinion(formdata, parsed):
    assert options_from_form(formdata) == parsed


# --- the spawner: validate, then apply; a refusal changes nothing --------------------------------


def _spawner(groups, saved_options=None):
    user = SimpleNamespace(
        name="student1", groups=[SimpleNamespace(name=g) for g in groups], url="/user/student1/", escaped_name="student1"
    )
    orm = SimpleNamespace(user_options=saved_options, server=None)
    return SCIPLocalSpawner(user=user, orm_spawner=orm, catalog_path=str(CATALOG_PATH))


@pytest.mark.parametrize(
    "options, status",
    [({"profile": "h100-full"}, 403), ({"profile": "nope"}, 400), ({"image": "evil"}, 400), ("cpu-small", 400)],
)
def test_refused_options_leave_spawner_unchanged(options, status):
    spawner = _spawner(["students"], saved_options=options)
    before = {k: getattr(spawner, k) for k in ("mem_limit", "cpu_limit", "mem_guarantee", "cpu_guarantee", "scip_profile", "user_options")}
    with pytest.raises(web.HTTPError) as err:
        spawner.scip_apply(options)
    assert err.value.status_code == status
    after = {k: getattr(spawner, k) for k in before}
    assert after == before
    # The refused choice is not kept as the server's default for the next spawn.
    assert spawner.orm_spawner.user_options == {}


def test_accepted_options_apply_the_profile():
    spawner = _spawner(["researchers"])
    profile = spawner.scip_apply({"profile": "h100-full"})
    assert profile.slug == "h100-full"
    assert (spawner.cpu_limit, spawner.cpu_guarantee) == (16, 4)
    assert (spawner.mem_limit, spawner.mem_guarantee) == (64 * 10**9, 32 * 10**9)
    assert spawner.user_options == spawner.orm_spawner.user_options == {"profile": "h100-full"}


def test_form_handler_only_parses_and_the_choice_is_validated_once_at_start():
    spawner = _spawner(["students"])
    assert spawner.options_from_form({"profile": ["mig-1g-10gb"]}) == {"profile": "mig-1g-10gb"}
    parsed = spawner.options_from_form({"profile": ["h100-full"]})  # parsed, not judged here
    with pytest.raises(web.HTTPError) as err:
        spawner.scip_validate(parsed)  # what the mixin's start does first
    assert err.value.status_code == 403
    assert "allowed values: cpu-small, mig-1g-10gb" in err.value.log_message
