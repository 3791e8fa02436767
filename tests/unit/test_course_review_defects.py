"""Defects a review of the course code found, each pinned by a test (issue 11, item 5)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from scip_jupyter.config import ConfigError
from scip_jupyter.courses import hub as course_hub
from scip_jupyter.courses.material import MANIFEST_NAME, folder_snapshot
from scip_jupyter.courses.progress import folder_status
from scip_jupyter.courses.registry import cached_registry, load_courses
from scip_jupyter.courses.sync import Manifest, read_manifest, sync_folder

TWO_COURSES = """\
courses:
  - id: good
    title: Good course
    instructors: [teach]
    students:
      users: [alice]
    material:
      path: material
    profiles: [cpu-small]
    start: 2026-01-01
    end: 2099-12-31
  - id: broken
    title: Course whose folder went away
    instructors: [teach]
    students:
      users: [bob]
    material:
      path: gone
    profiles: [cpu-small]
    start: 2026-01-01
    end: 2099-12-31
"""


def _two_courses(tmp_path: Path) -> Path:
    (tmp_path / "material").mkdir()
    (tmp_path / "material" / "intro.ipynb").write_text("{}")
    path = tmp_path / "courses.yaml"
    path.write_text(TWO_COURSES)
    return path


def test_check_still_reports_a_missing_material_folder(tmp_path):
    path = _two_courses(tmp_path)
    with pytest.raises(ConfigError, match=r"courses\[1\]\.material\.path: folder .*gone does not exist"):
        load_courses(path)


def test_one_course_without_its_folder_does_not_break_everyones_spawn(tmp_path):
    path = _two_courses(tmp_path)
    # every spawn asks for the profiles a user's courses grant: this raised ConfigError (a 500) for everyone
    assert course_hub.extra_profiles(path, "alice", []) == {"cpu-small"}
    assert course_hub.extra_profiles(path, "carol", []) == set()
    course_hub.check_course_option(path, "alice", [], "good")
    assert [c.id for c in cached_registry(path).courses] == ["good", "broken"]


def test_the_course_without_its_folder_fails_alone_with_a_clear_message(tmp_path):
    path = _two_courses(tmp_path)
    reg = cached_registry(path)
    with pytest.raises(FileNotFoundError, match="material folder .*gone does not exist"):
        folder_snapshot(reg.material_dir(reg.require("broken")))


def test_a_running_hub_keeps_the_last_valid_registry_when_an_edit_breaks_it(tmp_path):
    path = _two_courses(tmp_path)
    assert course_hub.extra_profiles(path, "alice", []) == {"cpu-small"}
    path.write_text(TWO_COURSES.replace("title: Good course", "title: [unclosed"))
    os.utime(path, ns=(1, 10**18))
    assert course_hub.extra_profiles(path, "alice", []) == {"cpu-small"}
    assert cached_registry(path).require("good").title == "Good course"


def test_a_registry_broken_from_the_start_grants_nothing_instead_of_failing_spawns(tmp_path):
    path = tmp_path / "courses.yaml"
    path.write_text("courses: {not: a list}\n")
    assert course_hub.extra_profiles(path, "alice", []) == set()


# --- manifests that are valid JSON of the wrong shape --------------------------------------------

WRONG_SHAPES = [
    {"files": []},
    {"files": "intro.ipynb"},
    {"files": 3},
    {"files": {"intro.ipynb": ["not", "a", "hash"]}},
    {"offered": [1, 2]},
    {"files": None, "offered": None, "version": {"x": 1}},
    {"course": ["x"], "synced_at": 12},
    [],
    "just a string",
    12,
    None,
]


@pytest.mark.parametrize("data", WRONG_SHAPES, ids=lambda d: json.dumps(d)[:40])
def test_a_manifest_of_the_wrong_shape_counts_as_no_manifest(tmp_path, data):
    folder = tmp_path / "courses" / "good"
    folder.mkdir(parents=True)
    (folder / MANIFEST_NAME).write_text(json.dumps(data))
    manifest = read_manifest(folder)
    assert isinstance(manifest, Manifest)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in manifest.files.items())
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in manifest.offered.items())
    # status (the instructor page calls it for every student) and sync both go on
    material = tmp_path / "material"
    material.mkdir()
    (material / "intro.ipynb").write_text("{}")
    snap = folder_snapshot(material)
    status = folder_status("alice", "good", folder, snap.files, snap.version)
    assert status.error == ""
    _, result = sync_folder("good", snap, folder)
    assert (folder / "intro.ipynb").is_file()
    assert read_manifest(folder).files == {"intro.ipynb": snap.files["intro.ipynb"]}
