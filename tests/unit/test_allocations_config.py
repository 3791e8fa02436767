"""allocations.yaml: validated with file:line errors, flavours checked against the catalog, run by `check`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scip_jupyter.allocations.quotas import Period, Unlisted, catalog_flavours, load_allocations
from scip_jupyter.catalog import load_catalog
from scip_jupyter.checks import check_dir
from scip_jupyter.config import ConfigError
from tests.fixtures.common import ROOT

CATALOG = ROOT / "hub_config" / "catalog.yaml"


def write(tmp_path: Path, text: str, catalog: bool = True) -> Path:
    if catalog:
        shutil.copy(CATALOG, tmp_path / "catalog.yaml")
    path = tmp_path / "allocations.yaml"
    path.write_text(text)
    return path


def test_shipped_allocations_are_valid():
    allocations = load_allocations(ROOT / "hub_config" / "allocations.yaml")
    assert allocations.period is Period.month and allocations.unlisted is Unlisted.allow
    assert allocations.groups["researchers"].max_gpus["h100"] == 1
    assert set(allocations.groups) == {"researchers", "instructors", "students"}


def test_catalog_flavours_in_slurm_naming():
    assert catalog_flavours(load_catalog(CATALOG)) == ["h100_1g.10gb", "h100_3g.40gb", "h100"]


@pytest.mark.parametrize(
    "text, line, field, problem",
    [
        ("period: year\n", 1, "period", "Input should be 'day', 'week' or 'month'"),
        ("unlisted: maybe\n", 1, "unlisted", "Input should be 'allow' or 'deny'"),
        ("groups:\n  lab:\n    max_gpu: {h100: 1}\n", 3, "groups.lab.max_gpu", "unknown field"),
        ("groups:\n  lab:\n    max_gpus:\n      h100: -1\n", 3, "groups.lab.max_gpus", "h100: -1 must be a whole number"),
        ("groups:\n  lab:\n    max_gpus:\n      h100: 1.5\n", 4, "groups.lab.max_gpus.h100", "valid integer"),
        ("groups:\n  lab:\n    gpu_hours: -3\n", 3, "groups.lab.gpu_hours", "greater than or equal to 0"),
        ("groups:\n  lab:\n    max_gpus:\n      a100: 1\n", 4, "groups.lab.max_gpus.a100",
         "unknown flavour 'a100'; the catalog's flavours: h100_1g.10gb, h100_3g.40gb, h100 (or *)"),
        ("groups: [lab]\n", 1, "groups", "valid dictionary"),
    ],
)
def test_bad_file_is_reported_at_its_line(tmp_path, text, line, field, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_allocations(path)
    [found] = err.value.problems
    assert (found.file, found.line, found.field) == (str(path), line, field)
    assert problem in found.message


def test_flavours_are_not_checked_without_a_catalog(tmp_path):
    path = write(tmp_path, "groups:\n  lab:\n    max_gpus: {a100: 1}\n", catalog=False)
    assert load_allocations(path).groups["lab"].max_gpus == {"a100": 1}


def test_check_command_validates_allocations(tmp_path):
    write(tmp_path, "groups:\n  lab:\n    max_gpus:\n      h200: 1\n")
    checked, problems = check_dir(tmp_path)
    assert str(tmp_path / "allocations.yaml") in checked
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'allocations.yaml'}:4: groups.lab.max_gpus.h200: unknown flavour 'h200'; "
        "the catalog's flavours: h100_1g.10gb, h100_3g.40gb, h100 (or *)"
    ]


def test_shipped_config_folder_checks_clean():
    checked, problems = check_dir(ROOT / "hub_config")
    assert problems == []
    assert str(ROOT / "hub_config" / "allocations.yaml") in checked
