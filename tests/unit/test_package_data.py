"""Config and presets come from the installed package, never from the source tree.

A wheel is built from the checkout (pip, no network) and imported from an
unpacked copy outside the checkout: the catalog, ARC presets and quotas are
there as real files and `default_presets_path()` finds them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from scip_jupyter import data
from tests.fixtures.common import ROOT


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # what images/hub/Dockerfile copies; the build never writes into the checkout
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for name in ("scip_jupyter", "widgets", "hub_config", "jupyter-config"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [wheel] = out.glob("scip_jupyter-*.whl")
    target = out / "site"
    zipfile.ZipFile(wheel).extractall(target)
    return target


def test_wheel_ships_the_config_files_as_real_files(unpacked_wheel):
    for name in data.FILES:
        shipped = unpacked_wheel / "scip_jupyter" / "data" / name
        assert shipped.is_file() and not shipped.is_symlink(), name
        assert shipped.read_text() == (ROOT / "hub_config" / name).read_text()


def test_installed_package_finds_its_presets_without_the_source_tree(unpacked_wheel):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import scip_jupyter.data as d; from scip_jupyter.arc.presets import default_presets_path, load_default_presets;"
        "print(d.path('catalog.yaml')); print(default_presets_path()); print(len(load_default_presets().clusters))"
    )
    env = {k: v for k, v in os.environ.items() if k != "SCIP_ARC_PRESETS"}
    proc = subprocess.run([sys.executable, "-c", code, str(unpacked_wheel)], capture_output=True, text=True,
                          cwd="/", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    catalog, presets, count = proc.stdout.split()
    assert catalog.startswith(str(unpacked_wheel)) and presets.startswith(str(unpacked_wheel))
    assert int(count) >= 1


def test_unknown_shipped_file_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="shipped files: catalog.yaml, arc.yaml, allocations.yaml"):
        data.path("courses.yaml")
