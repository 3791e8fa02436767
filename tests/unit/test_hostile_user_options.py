"""Hostile `user_options` (REST API, form, launch links) against the one validation.

Only allow-listed keys pass, every value is type-checked, `course` is a course
id, `notebook` is a relative path inside the course (dropped when no course
uses it). Each refusal names the field, says what is allowed, is a 4xx, and
echoes at most a short piece of the input.
"""

from __future__ import annotations

import pytest

from scip_jupyter.catalog import load_catalog
from scip_jupyter.options import OptionsError, validate_spawn_options
from tests.fixtures.common import ROOT

STUDENTS = ["students"]
LONG = "x" * 100_000


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(ROOT / "hub_config" / "catalog.yaml")


#: (id, options, field named, status)
REFUSED = [
    ("list", ["cpu-small"], "user_options", 400),
    ("string", "cpu-small", "user_options", 400),
    ("number", 3, "user_options", 400),
    ("bool", True, "user_options", 400),
    ("image", {"profile": "cpu-small", "image": "evil/miner"}, "image", 400),
    ("cmd", {"profile": "cpu-small", "cmd": ["sh", "-c", "id"]}, "cmd", 400),
    ("environment", {"environment": {"LD_PRELOAD": "/tmp/x.so"}}, "environment", 400),
    ("proto", {"__proto__": {"admin": True}}, "__proto__", 400),
    ("cpu-limit", {"cpu_limit": 64}, "cpu_limit", 400),
    ("profile-option", {"profile": "cpu-small", "profile-option-cpu-small--image": "x"}, "profile-option-cpu-small--image", 400),
    ("script-key", {"<script>alert(1)</script>": 1}, "<script>alert(1)</script>", 400),
    ("profile-int", {"profile": 7}, "profile", 400),
    ("profile-float", {"profile": 1.5}, "profile", 400),
    ("profile-bool", {"profile": True}, "profile", 400),
    ("profile-list", {"profile": ["cpu-small", "h100-full"]}, "profile", 400),
    ("profile-dict", {"profile": {"slug": "h100-full"}}, "profile", 400),
    ("profile-huge", {"profile": LONG}, "profile", 400),
    ("profile-padded", {"profile": " cpu-small"}, "profile", 400),
    ("profile-nul", {"profile": "cpu-small\x00"}, "profile", 400),
    ("profile-confusable", {"profile": "cpu\u2010small"}, "profile", 400),
    ("profile-script", {"profile": "<script>alert(1)</script>"}, "profile", 400),
    ("profile-not-allowed", {"profile": "h100-full"}, "profile", 403),
    ("course-int", {"course": 5}, "course", 400),
    ("course-list", {"course": ["intro-gpu"]}, "course", 400),
    ("course-dict", {"course": {"id": "intro-gpu"}}, "course", 400),
    ("course-path", {"course": "../intro-gpu"}, "course", 400),
    ("course-space", {"course": "intro gpu"}, "course", 400),
    ("course-upper", {"course": "Intro-GPU"}, "course", 400),
    ("course-script", {"course": "<script>"}, "course", 400),
    ("course-huge", {"course": LONG}, "course", 400),
    ("notebook-parent", {"course": "intro-gpu", "notebook": "../../etc/passwd"}, "notebook", 400),
    ("notebook-absolute", {"course": "intro-gpu", "notebook": "/etc/passwd"}, "notebook", 400),
    ("notebook-inner-dotdot", {"course": "intro-gpu", "notebook": "week1/../../x.ipynb"}, "notebook", 400),
    ("notebook-hidden", {"course": "intro-gpu", "notebook": ".git/config"}, "notebook", 400),
    ("notebook-backslash", {"course": "intro-gpu", "notebook": "week1\\..\\..\\x"}, "notebook", 400),
    ("notebook-double-slash", {"course": "intro-gpu", "notebook": "week1//x.ipynb"}, "notebook", 400),
    ("notebook-nul", {"course": "intro-gpu", "notebook": "a\x00.ipynb"}, "notebook", 400),
    ("notebook-newline", {"course": "intro-gpu", "notebook": "a\n.ipynb"}, "notebook", 400),
    ("notebook-url", {"course": "intro-gpu", "notebook": "https://evil.example/x.ipynb"}, "notebook", 400),
    ("notebook-list", {"course": "intro-gpu", "notebook": ["a.ipynb"]}, "notebook", 400),
    ("notebook-int", {"course": "intro-gpu", "notebook": 1}, "notebook", 400),
    ("notebook-huge", {"course": "intro-gpu", "notebook": "a/" * 400 + "x.ipynb"}, "notebook", 400),
]


@pytest.mark.parametrize("options, field, status", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_hostile_user_options_are_refused_naming_the_field(catalog, options, field, status):
    with pytest.raises(OptionsError) as err:
        validate_spawn_options(options, catalog, STUDENTS)
    exc = err.value
    assert exc.status == status
    assert exc.field == field[:60] or exc.field.startswith(field[:60])
    text = str(exc)
    assert text.startswith(exc.field + ": ") and "allowed" in text
    assert len(text) < 600, text[:200]  # never the whole hostile input echoed back


def test_a_very_long_unknown_key_is_not_echoed_whole(catalog):
    with pytest.raises(OptionsError) as err:
        validate_spawn_options({"k" * 10_000: 1}, catalog, STUDENTS)
    assert len(str(err.value)) < 300


@pytest.mark.parametrize(
    "options, normalised",
    [
        ({"profile": "cpu-small", "notebook": "a.ipynb"}, {"profile": "cpu-small"}),  # no course uses it: dropped
        ({"profile": "cpu-small", "course": "", "notebook": ""}, {"profile": "cpu-small"}),  # empty form fields
        ({"profile": "cpu-small", "course": None}, {"profile": "cpu-small"}),
        ({"profile": "cpu-small", "course": "intro-gpu", "notebook": "week1/lab.ipynb"},
         {"profile": "cpu-small", "course": "intro-gpu", "notebook": "week1/lab.ipynb"}),
        ({"profile": "cpu-small", "course": "intro-gpu", "notebook": "01 getting started (é).ipynb"},
         {"profile": "cpu-small", "course": "intro-gpu", "notebook": "01 getting started (é).ipynb"}),
    ],
)
def test_course_and_notebook_are_normalised(catalog, options, normalised):
    before = dict(options)
    assert validate_spawn_options(options, catalog, STUDENTS)[1] == normalised
    assert options == before  # the input is never modified
