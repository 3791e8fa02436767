"""Catalog validation: good files load, bad files give file:line: field: problem."""

from pathlib import Path

import pytest

from scip_jupyter.catalog import load_catalog
from scip_jupyter.checks import check_dir
from scip_jupyter.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
profiles:
  - slug: cpu
    display_name: CPU
    kind: cpu
    image: img
    allowed_groups: [students]
    site: s
    jurisdiction: CA
"""


def test_shipped_catalog_is_valid():
    cat = load_catalog(ROOT / "hub_config" / "catalog.yaml")
    kinds = {p.kind.value for p in cat.profiles}
    assert kinds == {"cpu", "gpu", "mig"}


def test_profiles_for_groups():
    cat = load_catalog(ROOT / "hub_config" / "catalog.yaml")
    assert "h100-full" not in [p.slug for p in cat.profiles_for({"students"})]
    assert "h100-full" in [p.slug for p in cat.profiles_for({"researchers"})]
    assert cat.profiles_for(set()) == []


@pytest.mark.parametrize(
    "replace, line, field, words",
    [
        (("kind: cpu", "kind: tpu"), 4, "profiles[0].kind", "'cpu', 'gpu' or 'mig'"),
        (("slug: cpu", "slug: CPU!"), 2, "profiles[0].slug", "lowercase"),
        (("image: img", "image: img\n    colour: red"), 6, "profiles[0].colour", "unknown field"),
        (("kind: cpu", "kind: mig\n    gpu_model: h100\n    mig_profile: 9g.1tb"), 2, "profiles[0]", "1g.10gb"),
        (("site: s", "site: s\n    mem_limit: lots"), 8, "profiles[0].mem_limit", "quantity"),
    ],
)
def test_bad_catalog_names_file_line_field(tmp_path, replace, line, field, words):
    path = tmp_path / "catalog.yaml"
    path.write_text(GOOD.replace(*replace))
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    text = str(err.value)
    assert f"{path}:{line}: {field}:" in text, text
    assert words in text


def test_yaml_syntax_error_has_line(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("profiles:\n  - slug: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    assert f"{path}:" in str(err.value) and "(syntax)" in str(err.value)


def test_check_cli_exit_codes(tmp_path, capsys):
    from scip_jupyter.cli import main

    (tmp_path / "catalog.yaml").write_text(GOOD)
    assert main(["check", str(tmp_path)]) == 0
    (tmp_path / "catalog.yaml").write_text(GOOD.replace("kind: cpu", "kind: tpu"))
    assert main(["check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'catalog.yaml'}:4: profiles[0].kind:" in err


def test_duplicate_slug_refused(tmp_path):
    path = tmp_path / "catalog.yaml"
    body = GOOD.split("\n", 1)[1]
    path.write_text("profiles:\n" + body + body)
    _, problems = check_dir(tmp_path)
    assert any("appears twice" in p.message for p in problems)


def test_profile_vocabulary_is_said_once_and_agrees_with_the_pod_resources():
    """One vocabulary on the profile: the allocation and form modules keep no copy of it."""
    import scip_jupyter.allocations.quotas as quotas
    import scip_jupyter.options as options
    from scip_jupyter.catalog import load_catalog
    from tests.fixtures.common import ROOT

    for module, copies in ((quotas, ("flavour_of", "units_of", "gpu_share", "gpu_weight", "MIG_SLICES")),
                           (options, ("gpu_summary", "gpu_share"))):
        assert not [name for name in copies if hasattr(module, name)], module.__name__
    for profile in load_catalog(ROOT / "hub_config" / "catalog.yaml").profiles:
        if profile.gpu_resource:
            assert profile.gpu_resource[1] == profile.units
        assert profile.summary
