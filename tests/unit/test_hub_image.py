"""The hub image (images/hub/Dockerfile) builds on the z2jh hub image of the chart version we depend on."""

from __future__ import annotations

import re

import yaml

from tests.fixtures.chart import CHART, Z2JH_VERSION
from tests.fixtures.common import ROOT

DOCKERFILE = ROOT / "images" / "hub" / "Dockerfile"


def test_hub_image_is_based_on_the_z2jh_hub_image_of_the_chart_dependency():
    text = DOCKERFILE.read_text()
    [dependency] = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]
    assert re.search(rf"^ARG Z2JH_VERSION={re.escape(dependency['version'])}$", text, re.M)
    assert "FROM quay.io/jupyterhub/k8s-hub:${Z2JH_VERSION}" in text
    assert dependency["version"] == Z2JH_VERSION


def test_hub_image_installs_the_package_and_ends_unprivileged():
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert any("pip install" in line and "/tmp/scip-jupyter" in line for line in lines)
    assert lines[-1] == "USER ${NB_USER}"
    # Every COPY source exists in the repository (the build context is the repository root).
    for line in lines:
        if line.startswith("COPY "):
            *sources, _dest = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), source


def test_chart_defaults_run_our_hub_image():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["jupyterhub"]["hub"]["image"]["name"] == "ghcr.io/scip-ca/scip-jupyter-hub"
