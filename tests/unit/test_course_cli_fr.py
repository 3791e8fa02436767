"""`scip-jupyter course ...` in English and French (issue 14): headers, notes, errors and help follow
the language a command reads ($LANG here); `--json` keys and values do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

COURSES = """\
courses:
  - id: c1
    title: "Course one"
    instructors: [teach]
    students:
      users: [alice, bob]
      groups: [extra]
    material:
      path: material
    profiles: [cpu-small]
    start: 2026-01-01
    end: 2099-12-31
"""


@pytest.fixture
def site(tmp_path):
    (tmp_path / "material").mkdir()
    (tmp_path / "material" / "intro.ipynb").write_text('{"cells": []}')
    (tmp_path / "courses.yaml").write_text(COURSES)
    (tmp_path / "homes" / "alice").mkdir(parents=True)  # alice has started a server, bob has not
    return tmp_path


def course(site: Path, lang: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SCIP_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    env.update(COLUMNS="250", **({"LANG": lang} if lang else {}))
    homes = ["--homes", str(site / "homes")] if args[0] in ("status", "sync", "reset") else []
    return subprocess.run(
        [sys.executable, "-m", "scip_jupyter.cli", "course", *args, "--courses", str(site / "courses.yaml"), *homes],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def header(out: str) -> list[str]:
    """The cells of a rich table's header row."""
    line = next(line for line in out.splitlines() if line.startswith("┃"))
    return [cell.strip() for cell in line.strip("┃").split("┃")]


def test_course_list_in_french_and_in_english(site):
    fr = course(site, "fr_CA.UTF-8", "list")
    assert fr.returncode == 0, fr.stderr
    assert header(fr.stdout) == ["identifiant", "titre", "état", "dates", "profils", "enseignants", "étudiants"]
    assert "en cours" in fr.stdout and "groupe extra" in fr.stdout
    en = course(site, None, "list")
    assert header(en.stdout) == ["id", "title", "state", "dates", "profiles", "instructors", "students"]
    assert "active" in en.stdout and "group extra" in en.stdout


def test_course_sync_and_status_in_french(site):
    sync = course(site, "fr_CA.UTF-8", "sync", "c1", "--student", "alice")
    assert sync.returncode == 0, sync.stderr
    assert header(sync.stdout) == ["étudiant", "résultat", "détails"]
    assert "ajout 1" in sync.stdout and "version " in sync.stdout
    status = course(site, "fr_CA.UTF-8", "status", "c1")
    assert status.returncode == 0, status.stderr
    assert header(status.stdout)[:4] == ["étudiant", "version", "mise à jour", "vos modifications"]
    assert "version du matériel" in status.stdout
    alice = next(line for line in status.stdout.splitlines() if line.startswith("│ alice"))
    assert "non" in alice and "pas ouvert" in alice
    assert "remarque : les étudiants des groupes extra ne sont pas listés" in status.stderr
    assert "lecture c1" in status.stderr  # the progress bar's label


def test_course_status_in_english_is_as_before(site):
    assert course(site, None, "sync", "c1", "--student", "alice").returncode == 0
    status = course(site, "C", "status", "c1")
    assert status.returncode == 0, status.stderr
    assert header(status.stdout)[:5] == ["student", "version", "update", "your edits", "intro.ipynb"]
    assert "material version" in status.stdout
    alice = next(line for line in status.stdout.splitlines() if line.startswith("│ alice"))
    assert "│ no " in alice and "not opened" in alice
    assert "note: students in groups extra are not listed; pass --group-member GROUP=users" in status.stderr


def test_json_keeps_its_keys_and_values_in_french(site):
    fr = course(site, "fr_CA.UTF-8", "sync", "c1", "--student", "alice", "--json")
    en = course(site, None, "sync", "c1", "--student", "bob", "--json")
    (alice,), (bob,) = json.loads(fr.stdout), json.loads(en.stdout)
    assert sorted(alice) == sorted(bob) == ["error", "ok", "result", "student"]
    assert alice["ok"] and alice["result"]["summary"] == {"add": 1}
    status = json.loads(course(site, "fr_CA.UTF-8", "status", "c1", "--student", "alice", "--json").stdout)
    assert status[0]["username"] == "alice" and status[0]["update_available"] is False


@pytest.mark.parametrize("lang, args, message", [
    ("fr_CA.UTF-8", ("status", "c9"), "course : cours inconnu 'c9' ; connus : c1"),
    (None, ("status", "c9"), "course: unknown course 'c9'; known: c1"),
    ("fr_CA.UTF-8", ("reset", "c1", "--all"), "reset : ajoutez --yes pour confirmer"),
    ("fr_CA.UTF-8", ("reset", "c1"), "reset : nommez --student UTILISATEUR (répétable) ou --all"),
    (None, ("reset", "c1"), "reset: name --student USER (repeatable) or --all for the whole class"),
    ("fr_CA.UTF-8", ("status", "c1", "--student", "zed"), "--student : zed pas inscrit(s) à c1 ; inscrits : alice, bob"),
    ("fr_CA.UTF-8", ("sync", "c1", "--group-member", "extra"), "--group-member : 'extra' n’est pas de la forme"),
])
def test_course_errors_follow_the_language(site, lang, args, message):
    result = course(site, lang, *args)
    assert result.returncode == 2
    assert f"scip-jupyter course: {message}" in result.stderr


def test_course_help_in_french(site):
    fr = course(site, "fr_CA.UTF-8", "sync", "--help")
    assert fr.returncode == 0
    text = " ".join(fr.stdout.split())  # argparse wraps the help
    assert "livrer le matériel actuel aux étudiants (leurs modifications sont conservées)" in text
    assert "montrer le plan, ne rien changer" in text and "seulement cet étudiant (répétable)" in text
    en = " ".join(course(site, None, "sync", "--help").stdout.split())
    assert "show the plan, change nothing" in en and "montrer" not in en
