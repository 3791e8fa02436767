"""Course registry: validation with file:line errors, catalog cross-checks, grants by date."""

from __future__ import annotations

import datetime as dt
import doctest
from pathlib import Path

import pytest

from scip_jupyter.checks import check_dir
from scip_jupyter.config import ConfigError
from scip_jupyter.courses import registry as registry_module
from scip_jupyter.courses.registry import load_courses

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
courses:
  - id: c1
    title: Course one
    instructors: [teach]
    students:
      users: [alice]
      groups: [cohort]
    material:
      path: material
    profiles: [cpu-small]
    start: 2026-01-01
    end: 2026-06-30
"""


def _write(tmp_path: Path, text: str, catalog: bool = True) -> Path:
    (tmp_path / "material").mkdir(exist_ok=True)
    if catalog:
        (tmp_path / "catalog.yaml").write_text((ROOT / "hub_config" / "catalog.yaml").read_text())
    path = tmp_path / "courses.yaml"
    path.write_text(text)
    return path


def test_shipped_registry_is_valid_against_shipped_catalog():
    reg = load_courses(ROOT / "hub_config" / "courses.yaml")
    course = reg.require("intro-gpu")
    assert course.default_profile in ("mig-1g-10gb", "cpu-small")
    assert reg.material_dir(course) == (ROOT / "notebooks").resolve()
    assert {"student1"} <= set(course.students.users) and course.instructors == ["instructor1"]


@pytest.mark.parametrize(
    "replace, line, field, words",
    [
        (("id: c1", "id: C 1"), 2, "courses[0].id", "lowercase"),
        (("title: Course one", "title: ''"), 3, "courses[0].title", "at least 1 character"),
        (("instructors: [teach]", "instructors: []"), 4, "courses[0].instructors", "at least 1 item"),
        (("users: [alice]", "users: [Alice Smith]"), 6, "courses[0].students.users", "not a valid username"),
        (("users: [alice]\n      groups: [cohort]", "users: []"), 5, "courses[0].students", "at least one student"),
        (("path: material", "path: material\n      git: https://example.org/x.git"), 8, "courses[0].material",
         "exactly one of path"),
        (("path: material", "path: missing-folder"), 9, "courses[0].material.path", "does not exist"),
        (("path: material", "git: https://example.org/x.git\n      ref: '--upload-pack=evil'"), 10,
         "courses[0].material.ref", "not a git branch"),
        (("profiles: [cpu-small]", "profiles: [tpu-huge]"), 10, "courses[0].profiles[0]", "unknown profile 'tpu-huge'"),
        (("end: 2026-06-30", "end: 2025-06-30"), 2, "courses[0]", "before start"),
        (("start: 2026-01-01", "start: next week"), 11, "courses[0].start", "date"),
        (("title: Course one", "title: Course one\n    colour: red"), 4, "courses[0].colour", "unknown field"),
    ],
)
def test_bad_registry_names_file_line_field(tmp_path, replace, line, field, words):
    path = _write(tmp_path, GOOD.replace(*replace))
    with pytest.raises(ConfigError) as err:
        load_courses(path)
    text = str(err.value)
    assert f"{path}:{line}: {field}:" in text, text
    assert words in text, text


def test_duplicate_course_id_refused(tmp_path):
    body = GOOD.split("\n", 1)[1]
    path = _write(tmp_path, "courses:\n" + body + body)
    with pytest.raises(ConfigError, match="appears twice"):
        load_courses(path)


def test_unknown_profile_checked_only_with_a_catalog(tmp_path):
    path = _write(tmp_path, GOOD.replace("[cpu-small]", "[tpu-huge]"), catalog=False)
    assert load_courses(path).require("c1").profiles == ["tpu-huge"]


def test_check_cli_validates_courses_with_catalog(tmp_path, capsys):
    from scip_jupyter.cli import main

    _write(tmp_path, GOOD)
    assert main(["check", str(tmp_path)]) == 0
    _write(tmp_path, GOOD.replace("[cpu-small]", "[cpu-small, h100-ful]"))
    assert main(["check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'courses.yaml'}:10: courses[0].profiles[1]: unknown profile 'h100-ful'" in err
    assert "h100-full" in err  # the allowed values are named
    _, problems = check_dir(tmp_path)
    assert len(problems) == 1


@pytest.mark.parametrize(
    "day, granted",
    [
        (dt.date(2025, 12, 31), set()),  # upcoming: nothing yet
        (dt.date(2026, 1, 1), {"cpu-small"}),
        (dt.date(2026, 6, 30), {"cpu-small"}),
        (dt.date(2026, 7, 1), set()),  # ended: grants nothing
    ],
)
def test_course_grants_its_profiles_only_while_active(tmp_path, day, granted):
    reg = load_courses(_write(tmp_path, GOOD))
    assert reg.granted_profiles("alice", [], day) == granted
    assert reg.granted_profiles("bob", ["cohort"], day) == granted  # enrolled through a group
    assert reg.granted_profiles("teach", [], day) == granted
    assert reg.granted_profiles("mallory", ["other"], day) == set()


def test_student_names_expand_groups_and_exclude_instructors(tmp_path):
    course = load_courses(_write(tmp_path, GOOD)).require("c1")
    assert course.student_names({"cohort": ["bob", "teach", "alice"]}) == ["alice", "bob"]
    assert course.students_group == "course-c1-students"
    assert course.instructors_group == "course-c1-instructors"


def test_registry_reloads_when_the_file_changes(tmp_path):
    import os

    path = _write(tmp_path, GOOD)
    first = registry_module.cached_registry(path)
    assert registry_module.cached_registry(path) is first
    path.write_text(GOOD.replace("Course one", "Course renamed"))
    os.utime(path, ns=(1, 10**18))
    assert registry_module.cached_registry(path).require("c1").title == "Course renamed"


@pytest.mark.parametrize("module", ["registry", "material", "sync", "cli"])
def test_course_module_doctests(module):
    import importlib

    mod = importlib.import_module(f"scip_jupyter.courses.{module}")
    result = doctest.testmod(mod)
    assert result.failed == 0
