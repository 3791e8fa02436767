"""`scip-jupyter check DIR` in English and French (issue 14): the problems keep their
`file:line: field: problem` shape; only the problem's words follow the language ($LANG, as a
command reads it)."""

from __future__ import annotations

import pytest

from scip_jupyter.cli import main

#: arc.yaml with three problems: tiers out of order (line 13), connect-back without contact_host (17),
#: an unknown key (21).
ARC_YAML = """\
clusters:
- name: demo
  site: demo-site
  jurisdiction: CA
  partitions:
  - cpu
  - gpu
  default_partition: cpu
  accounts:
    patterns:
    - def-*
  walltime:
    tiers:
    - '12:00:00'
    - '03:00:00'
    maximum: 7-00:00:00
  network:
    mode: connect-back
  transport:
    kind: local
  colour: red
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    for var in ("SCIP_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "arc.yaml").write_text(ARC_YAML)
    return tmp_path


def check(folder, capsys) -> tuple[int, list[str]]:
    code = main(["check", str(folder)])
    return code, capsys.readouterr().err.splitlines()


def test_check_prints_the_arc_yaml_problems_in_french(folder, capsys, monkeypatch):
    monkeypatch.setenv("LANG", "fr_CA.UTF-8")
    code, lines = check(folder, capsys)
    path = folder / "arc.yaml"
    assert code == 1
    assert f"{path}:13: clusters[0].walltime.tiers: tiers doit aller de la plus courte à la plus longue durée" in lines
    assert f"{path}:17: clusters[0].network: connect-back exige contact_host (comment les nœuds de calcul " \
           "joignent le notebook)" in lines
    assert f"{path}:21: clusters[0].colour: champ inconnu (vérifiez l’orthographe ; voyez les champs documentés)" \
        in lines
    assert lines[-1] == f"{len(lines) - 1} problème(s) dans 1 fichier(s)"


def test_check_prints_the_same_problems_in_english(folder, capsys):
    code, lines = check(folder, capsys)
    path = folder / "arc.yaml"
    assert code == 1
    assert f"{path}:13: clusters[0].walltime.tiers: tiers must go from shortest to longest" in lines
    assert f"{path}:21: clusters[0].colour: unknown field (check the spelling; see the documented fields)" in lines
    assert lines[-1] == f"{len(lines) - 1} problem(s) in 1 file(s)"


def test_a_duplicate_key_and_a_missing_folder_in_french(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    (tmp_path / "arc.yaml").write_text("clusters: []\nclusters: []\n")
    code, lines = check(tmp_path, capsys)
    assert code == 1 and lines[0] == f"{tmp_path / 'arc.yaml'}:2: clusters: clé présente deux fois (d’abord à la ligne 1)"
    code, lines = check(tmp_path / "nowhere", capsys)
    assert code == 1 and lines[0] == f"{tmp_path / 'nowhere'}:1: (folder): n’est pas un dossier"
