"""Every test module that starts a real component says which, by a marker (`pytest -m` selects by them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ("hub", "slurm", "k8s", "browser", "notebooks", "ssh", "server")
MODULES = sorted(
    p for folder in ("integration", "browser", "notebooks") for p in (ROOT / "tests" / folder).glob("test_*.py")
)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_needing_a_real_component_carries_its_marker(path: Path):
    text = path.read_text(encoding="utf-8")
    marked = re.search(r"pytest\.mark\.(" + "|".join(COMPONENTS) + r")\b", text)
    assert marked, f"{path.name}: mark it with the component it starts (one of {', '.join(COMPONENTS)})"


def test_every_component_marker_is_registered():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for name in COMPONENTS:
        assert f'"{name}: ' in text, f"marker {name!r} is not registered in pyproject.toml"
