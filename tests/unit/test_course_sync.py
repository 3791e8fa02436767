"""Sync engine: the plan table, apply's safety checks, reset with backup, git material."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from scip_jupyter.courses.material import MANIFEST_NAME, content_hash, folder_snapshot, git_snapshot, scan
from scip_jupyter.courses.sync import Kind, Manifest, apply_plan, plan_sync, read_manifest, reset_folder, sync_folder

H = {name: content_hash(name.encode()) for name in ("v1", "v2", "mine", "other")}


@pytest.mark.parametrize(
    "material, delivered, local, kind",
    [
        ("v1", None, None, Kind.add),  # new material
        ("v1", "v1", None, Kind.add),  # the student deleted it: restored
        ("v1", "v1", "v1", Kind.uptodate),
        ("v2", "v1", "v1", Kind.update),  # untouched by the student
        ("v1", "v1", "mine", Kind.keep),  # the student's edit, material unchanged
        ("v2", "v1", "mine", Kind.rename),  # both changed: keep theirs, put ours beside it
        ("v1", None, "mine", Kind.rename),  # a file of theirs where new material arrives
        (None, "v1", "v1", Kind.remove),  # withdrawn, never touched
        (None, "v1", "mine", Kind.keep),  # withdrawn, but theirs now
        (None, "v1", None, Kind.forget),
    ],
)
def test_plan_table(material, delivered, local, kind):
    m = {"a.ipynb": H[material]} if material else {}
    d = Manifest(files={"a.ipynb": H[delivered]} if delivered else {})
    l = {"a.ipynb": H[local]} if local else {}
    plan = plan_sync("c", m, "0123456789ab", d, l)
    assert plan.actions[0].kind is kind, plan.actions
    if kind is Kind.rename:
        assert plan.actions[0].target == "a.update-0123456.ipynb"


def test_files_that_are_not_ours_are_never_looked_at():
    plan = plan_sync("c", {}, "v", Manifest(), {"my-own.py": H["mine"]})
    assert plan.actions == ()


def test_rename_target_avoids_every_existing_name():
    local = {"a.ipynb": H["mine"], "a.update-0123456.ipynb": H["other"]}
    plan = plan_sync("c", {"a.ipynb": H["v2"]}, "0123456789ab", Manifest(files={"a.ipynb": H["v1"]}), local)
    assert plan.actions[0].target == "a.update-0123456-2.ipynb"


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def test_edit_saved_between_plan_and_apply_is_kept(tmp_path):
    material, course = tmp_path / "m", tmp_path / "c"
    _write(material, "a.ipynb", "v1")
    sync_folder("c", folder_snapshot(material), course)
    _write(material, "a.ipynb", "v2")
    snap = folder_snapshot(material)
    plan = plan_sync("c", snap.files, snap.version, read_manifest(course), scan(course))
    assert plan.actions[0].kind is Kind.update
    _write(course, "a.ipynb", "saved by the student just now")
    result = apply_plan(plan, material, course)
    assert (course / "a.ipynb").read_text() == "saved by the student just now"
    assert [a.path for a, _ in result.skipped] == ["a.ipynb"]
    # and the next sync treats it as the student's file
    plan2, _ = sync_folder("c", folder_snapshot(material), course)
    assert plan2.actions[0].kind is Kind.rename
    assert (course / plan2.actions[0].target).read_text() == "v2"


def test_never_writes_through_a_link_out_of_the_course_folder(tmp_path):
    material, course, outside = tmp_path / "m", tmp_path / "c", tmp_path / "outside"
    _write(material, "sub/a.txt", "material")
    outside.mkdir()
    course.mkdir()
    (course / "sub").symlink_to(outside)
    _, result = sync_folder("c", folder_snapshot(material), course)
    assert list(outside.iterdir()) == []
    assert result.skipped and "link" in result.skipped[0][1]


def test_a_forged_manifest_cannot_delete_outside_the_folder(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    course = tmp_path / "home" / "c"
    course.mkdir(parents=True)
    forged = {"format": 1, "files": {"../../victim.txt": content_hash(b"precious"), "/etc/passwd": "x"}}
    (course / MANIFEST_NAME).write_text(json.dumps(forged))
    assert read_manifest(course).files == {}
    (tmp_path / "m").mkdir()
    sync_folder("c", folder_snapshot(tmp_path / "m"), course)
    assert victim.read_text() == "precious"


def test_damaged_manifest_counts_every_file_as_the_students(tmp_path):
    material, course = tmp_path / "m", tmp_path / "c"
    _write(material, "a.ipynb", "v1")
    sync_folder("c", folder_snapshot(material), course)
    (course / MANIFEST_NAME).write_text("{not json")
    _write(course, "a.ipynb", "edited")
    _write(material, "a.ipynb", "v2")
    sync_folder("c", folder_snapshot(material), course)
    assert (course / "a.ipynb").read_text() == "edited"


def test_reset_moves_the_folder_to_a_visible_backup(tmp_path):
    material, course = tmp_path / "m", tmp_path / "courses" / "c"
    _write(material, "a.ipynb", "v1")
    sync_folder("c", folder_snapshot(material), course)
    _write(course, "a.ipynb", "my broken attempt")
    _write(course, "scratch.py", "print(1)")
    result = reset_folder("c", folder_snapshot(material), course)
    backup = Path(result.backup)
    assert backup.parent == course.parent and backup.name.startswith("c.backup-")
    assert (backup / "a.ipynb").read_text() == "my broken attempt"
    assert (backup / "scratch.py").read_text() == "print(1)"
    assert scan(course) == folder_snapshot(material).files


def test_material_hidden_and_generated_files_are_not_material(tmp_path):
    _write(tmp_path, "a.ipynb", "x")
    _write(tmp_path, ".ipynb_checkpoints/a-checkpoint.ipynb", "x")
    _write(tmp_path, "__pycache__/m.pyc", "x")
    _write(tmp_path, ".secret", "x")
    assert list(folder_snapshot(tmp_path).files) == ["a.ipynb"]


def _git(cwd, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout.strip()


def test_git_material_follows_the_ref(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _write(repo, "course/intro.ipynb", "v1")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    first = _git(repo, "rev-parse", "HEAD")
    snap = git_snapshot(str(repo), "main", tmp_path / "cache", subdir="course")
    assert snap.version == first[:12] and list(snap.files) == ["intro.ipynb"]
    _write(repo, "course/intro.ipynb", "v2")
    _git(repo, "commit", "-qam", "two")
    snap2 = git_snapshot(str(repo), "main", tmp_path / "cache", subdir="course")
    assert snap2.version != snap.version
    assert (snap2.root / "intro.ipynb").read_text() == "v2"
    # a pinned commit stays put
    pinned = git_snapshot(str(repo), first, tmp_path / "cache", subdir="course")
    assert (pinned.root / "intro.ipynb").read_text() == "v1"
