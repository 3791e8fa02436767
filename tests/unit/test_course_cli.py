"""`scip-jupyter course sync|reset|status|links|list` on real folders.

The students' notebook roots belong to the unprivileged account scip-user (as
on the embedded platform); when the tests run as root, every write happens in
a child process that dropped to that account, which the file owners prove.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import uuid
from pathlib import Path

import pytest

from scip_jupyter.cli import main

ROOT = Path(__file__).resolve().parents[2]
COURSES = """\
courses:
  - id: c1
    title: "Course <one>"
    instructors: [teach]
    students:
      users: [alice, bob]
      groups: [cohort]
    material:
      path: material
    profiles: [cpu-small]
    start: 2026-01-01
    end: 2099-12-31
"""


def _account():
    try:
        return pwd.getpwnam("scip-user")
    except KeyError:
        pytest.fail("the account scip-user does not exist: run scripts/system-deps (make test does)")


@pytest.fixture
def site():
    """A registry, its material and two students' roots, in a folder scip-user can traverse."""
    base = ROOT / ".state" / f"test-course-cli-{uuid.uuid4().hex[:8]}"
    base.mkdir(parents=True)
    os.chmod(base, 0o755)
    material = base / "material"
    (material / "week1").mkdir(parents=True)
    (material / "intro.ipynb").write_text("intro v1")
    (material / "week1" / "lab.ipynb").write_text("lab v1")
    (base / "courses.yaml").write_text(COURSES)
    homes = base / "homes"
    homes.mkdir()
    acct = _account() if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    for name in ("alice", "bob", "carol"):
        (homes / name).mkdir(mode=0o700)
        os.chown(homes / name, acct.pw_uid, acct.pw_gid)
    yield {"base": base, "material": material, "homes": homes, "courses": base / "courses.yaml", "uid": acct.pw_uid}
    shutil.rmtree(base)


def _course(site, *args):
    return main(["course", *args, "--courses", str(site["courses"])])


def _homes(site):
    return ["--homes", str(site["homes"])]


def test_class_sync_delivers_material_as_the_students_account(site, capsys):
    assert _course(site, "sync", "c1", *_homes(site)) == 0
    for name in ("alice", "bob"):
        folder = site["homes"] / name / "courses" / "c1"
        assert (folder / "week1" / "lab.ipynb").read_text() == "lab v1"
        assert (folder / "week1" / "lab.ipynb").stat().st_uid == site["uid"]
        assert (folder / ".scip-course.json").stat().st_uid == site["uid"]
    assert not (site["homes"] / "carol" / "courses").exists()  # not enrolled
    out = capsys.readouterr()
    assert "syncing c1" in out.err and "2/2" in out.err  # the class-wide progress bar
    assert "group cohort" not in out.out and "--group-member" in out.err  # unresolved group is named


def test_sync_keeps_a_students_edit_and_offers_the_update_beside_it(site, capsys):
    _course(site, "sync", "c1", *_homes(site))
    mine = site["homes"] / "alice" / "courses" / "c1" / "intro.ipynb"
    mine.write_text("alice's answers")
    (site["material"] / "intro.ipynb").write_text("intro v2")
    (site["material"] / "week1" / "lab.ipynb").write_text("lab v2")
    capsys.readouterr()
    assert _course(site, "sync", "c1", "--student", "alice", "--json", *_homes(site)) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["ok"] and result["result"]["summary"] == {"rename": 1, "update": 1}
    folder = mine.parent
    assert mine.read_text() == "alice's answers"
    assert (folder / "week1" / "lab.ipynb").read_text() == "lab v2"
    copies = list(folder.glob("intro.update-*.ipynb"))
    assert [c.read_text() for c in copies] == ["intro v2"]


def test_status_reports_version_edits_and_notebooks(site, capsys):
    _course(site, "sync", "c1", *_homes(site))
    folder = site["homes"] / "alice" / "courses" / "c1"
    executed = {"cells": [{"cell_type": "code", "execution_count": 1, "source": "1+1", "outputs": []}]}
    (folder / "intro.ipynb").write_text(json.dumps(executed))
    (site["material"] / "week1" / "lab.ipynb").write_text("lab v2")
    capsys.readouterr()
    assert _course(site, "status", "c1", "--json", *_homes(site)) == 0
    rows = {r["username"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["alice"]["update_available"] and rows["alice"]["changed"] == ["intro.ipynb"]
    assert rows["alice"]["executed"] == ["intro.ipynb"] and rows["bob"]["executed"] == []
    assert rows["alice"]["delivered_version"] != rows["alice"]["current_version"]


def test_reset_needs_confirmation_and_keeps_a_backup(site, capsys):
    _course(site, "sync", "c1", *_homes(site))
    folder = site["homes"] / "bob" / "courses" / "c1"
    (folder / "intro.ipynb").write_text("bob broke it")
    assert _course(site, "reset", "c1", "--student", "bob", *_homes(site)) == 2
    assert "--yes" in capsys.readouterr().err
    assert _course(site, "reset", "c1", "--student", "bob", "--yes", *_homes(site)) == 0
    assert (folder / "intro.ipynb").read_text() == "intro v1"
    backups = list(folder.parent.glob("c1.backup-*"))
    assert len(backups) == 1 and (backups[0] / "intro.ipynb").read_text() == "bob broke it"
    assert backups[0].stat().st_uid == site["uid"]


def test_student_not_enrolled_is_refused_by_name(site, capsys):
    assert _course(site, "sync", "c1", "--student", "carol", *_homes(site)) == 2
    err = capsys.readouterr().err
    assert "carol not enrolled in c1" in err and "alice, bob" in err


def test_student_without_a_notebook_folder_is_reported_not_fatal(site, capsys):
    shutil.rmtree(site["homes"] / "bob")
    assert _course(site, "sync", "c1", "--json", *_homes(site)) == 1
    rows = {r["student"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["alice"]["ok"] and not rows["bob"]["ok"] and "never started a server" in rows["bob"]["error"]


def test_links_list_the_course_and_each_notebook(site, capsys):
    assert _course(site, "links", "c1", "--hub-url", "https://hub.example.org/") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "c1: https://hub.example.org/hub/scip/course/c1/launch"
    assert "https://hub.example.org/hub/scip/course/c1/launch?notebook=week1%2Flab.ipynb" in out[-1]


def test_links_of_the_shipped_demo_course():
    assert main(["course", "links", "intro-gpu"]) == 0


def test_a_link_planted_by_the_student_does_not_let_the_sync_write_elsewhere(site):
    if os.geteuid() != 0:
        pytest.fail("this test checks the privilege drop: run it as root (make test does)")
    target = site["base"] / "root-only"
    target.mkdir(mode=0o755)
    folder = site["homes"] / "alice" / "courses" / "c1"
    folder.mkdir(parents=True)
    os.chown(folder.parent, site["uid"], -1)
    os.chown(folder, site["uid"], -1)
    os.symlink(target, folder / "week1")
    assert _course(site, "sync", "c1", "--student", "alice", *_homes(site)) == 0
    assert list(target.iterdir()) == []


def test_git_material_is_synced_by_root_into_folders_it_does_not_own(site, monkeypatch):
    import subprocess

    repo = site["base"] / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "one"]):
        if args[0] == "add":
            (repo / "week1").mkdir()
            (repo / "week1" / "lab.ipynb").write_text("git lab v1")
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    site["courses"].write_text(COURSES.replace("path: material", f"git: {repo}\n      ref: main"))
    monkeypatch.setenv("SCIP_COURSE_CACHE", str(site["base"] / "cache"))
    assert _course(site, "sync", "c1", "--student", "alice", *_homes(site)) == 0
    assert (site["homes"] / "alice" / "courses" / "c1" / "week1" / "lab.ipynb").read_text() == "git lab v1"
