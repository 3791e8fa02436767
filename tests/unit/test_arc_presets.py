"""ARC presets: the shipped file, bad files (file:line: field: problem), and request refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scip_jupyter.arc.cli import preset_summary
from scip_jupyter.arc.presets import (
    ARCRequestError,
    check_scale,
    example_preset,
    format_walltime,
    is_mig,
    load_presets,
    parse_sacctmgr_accounts,
    parse_walltime,
    validate_request,
)
from scip_jupyter.checks import check_dir
from scip_jupyter.cli import main as scip_main
from scip_jupyter.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "hub_config" / "arc.yaml"

GOOD = """\
clusters:
  - name: demo
    site: demo-site
    jurisdiction: CA
    partitions: [cpu, gpu]
    default_partition: cpu
    gpu_types: [h100, h100_1g.10gb]
    accounts:
      patterns: ["def-*"]
      users: {"*": [def-alice]}
    walltime:
      tiers: ["03:00:00", "12:00:00"]
      maximum: "24:00:00"
    network:
      mode: connect-back
      contact_host: 127.0.0.1
    transport:
      kind: local
      slurm_conf: ../slurm/slurm.conf
"""


# ---------------------------------------------------------------- the shipped presets


def test_shipped_presets_cover_local_and_national_clusters():
    presets = load_presets(SHIPPED)
    assert presets.names() == ["local-slurm", "fir", "nibi", "rorqual", "narval", "trillium"]
    modes = {p.name: p.network.mode for p in presets.clusters}
    # compute nodes of Fir and Nibi reach the internet; Rorqual, Narval, Trillium do not
    assert modes == {
        "local-slurm": "connect-back", "fir": "connect-back", "nibi": "connect-back",
        "rorqual": "in-job", "narval": "in-job", "trillium": "in-job",
    }
    assert presets.get("trillium").walltime.maximum == "1-00:00:00"
    assert presets.get("narval").mig_types == ["a100_1g.5gb", "a100_2g.10gb", "a100_3g.20gb", "a100_4g.20gb"]
    assert all(p.transport.kind == "ssh" for p in presets.clusters if p.name != "local-slurm")


def test_local_slurm_preset_points_at_the_project_slurm_conf():
    p = load_presets(SHIPPED).get("local-slurm")
    assert p.transport.slurm_conf == str(ROOT / ".state" / "slurm" / "slurm.conf")
    assert p.gpu_types[0] == "h100"


def test_relative_slurm_conf_is_resolved_from_the_file(tmp_path):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "arc.yaml"
    path.write_text(GOOD)
    assert load_presets(path).get("demo").transport.slurm_conf == str(tmp_path / "slurm" / "slurm.conf")


def test_check_command_validates_arc_yaml(tmp_path, capsys):
    (tmp_path / "arc.yaml").write_text(GOOD.replace("mode: connect-back", "mode: carrier-pigeon"))
    checked, problems = check_dir(tmp_path)
    assert checked == [str(tmp_path / "arc.yaml")]
    assert [p.field for p in problems] == ["clusters[0].network.mode"]
    assert problems[0].line == 15


@pytest.mark.parametrize(
    "replace, line, field, words",
    [
        (("site: demo-site", "site: demo-site\n    colour: red"), 4, "clusters[0].colour", "unknown field"),
        (("name: demo", "name: Demo Cluster"), 2, "clusters[0].name", "lowercase"),
        (("default_partition: cpu", "default_partition: bigmem"), 2, "clusters[0]", "not one of partitions: cpu, gpu"),
        (("contact_host: 127.0.0.1", "port: 8786"), 14, "clusters[0].network", "connect-back needs contact_host"),
        (('maximum: "24:00:00"', 'maximum: "06:00:00"'), 11, "clusters[0].walltime", "longer than the maximum"),
        (('tiers: ["03:00:00", "12:00:00"]', 'tiers: ["12:00:00", "03:00:00"]'), 12, "clusters[0].walltime.tiers", "shortest to longest"),
        (('tiers: ["03:00:00", "12:00:00"]', 'tiers: ["three hours"]'), 12, "clusters[0].walltime.tiers", "not a Slurm time"),
        (("gpu_types: [h100, h100_1g.10gb]", "gpu_types: [H100 80GB]"), 7, "clusters[0].gpu_types", "not a Slurm GPU type"),
        (("users: {\"*\": [def-alice]}", "users: {\"*\": [alice-project]}"), 8, "clusters[0].accounts", "matches none of def-*"),
        (("kind: local\n      slurm_conf: ../slurm/slurm.conf", "kind: ssh"), 17, "clusters[0].transport.ssh.host", "Field required"),
        (("kind: local", "kind: carrier"), 17, "clusters[0].transport", "does not match any of the expected tags"),
    ],
)
def test_bad_presets_name_file_line_field(tmp_path, replace, line, field, words):
    path = tmp_path / "arc.yaml"
    assert replace[0] in GOOD
    path.write_text(GOOD.replace(*replace))
    with pytest.raises(ConfigError) as err:
        load_presets(path)
    text = str(err.value)
    assert f"{path}:{line}: {field}:" in text, text
    assert words in text, text


def test_duplicate_preset_names_are_refused(tmp_path):
    path = tmp_path / "arc.yaml"
    path.write_text(GOOD + GOOD.split("clusters:\n", 1)[1])
    with pytest.raises(ConfigError, match="preset name 'demo' appears twice"):
        load_presets(path)


def test_presets_command_lists_every_preset_as_json(capsys):
    assert scip_main(["arc", "presets", "--json", "--file", str(SHIPPED)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == load_presets(SHIPPED).names()
    assert rows[0] == preset_summary(load_presets(SHIPPED).get("local-slurm"))


def test_presets_command_reports_a_bad_file(tmp_path, capsys):
    path = tmp_path / "arc.yaml"
    path.write_text("clusters: []\n")
    assert scip_main(["arc", "presets", "--file", str(path)]) == 1
    assert f"{path}:1: clusters:" in capsys.readouterr().err


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    "text, seconds",
    [("45", 2700), ("10:30", 630), ("03:00:00", 10800), ("1-00", 86400), ("2-12:30", 217800), ("7-00:00:00", 604800)],
)
def test_walltime_parses_every_sbatch_form(text, seconds):
    assert parse_walltime(text) == seconds
    assert parse_walltime(format_walltime(seconds)) == seconds


@pytest.mark.parametrize("name, mig", [("h100", False), ("h100_1g.10gb", True), ("a100_3g.20gb", True),
                                       ("nvidia_h100_80gb_hbm3_2g.20gb", True), ("a100", False)])
def test_mig_slices_are_recognised_by_their_slurm_names(name, mig):
    assert is_mig(name) is mig


def test_sacctmgr_accounts_are_parsed_once_each():
    assert parse_sacctmgr_accounts("def-smith|\nrrg-smith|\ndef-smith|\n") == ["def-smith", "rrg-smith"]


# ---------------------------------------------------------------- requests

PRESET = example_preset()
MINE = ["def-alice", "rrg-alice"]


def test_defaults_come_from_the_preset():
    r = validate_request(PRESET, {}, MINE)
    assert (r.account, r.partition, r.gpus, r.gpu_type, r.walltime, r.cores, r.processes, r.workers) == (
        "def-alice", "cpu", 0, None, "03:00:00", 1, 1, 0
    )


def test_gpu_request_goes_to_the_gpu_partition_with_the_full_gpu_type():
    r = validate_request(PRESET, {"gpus": 2}, MINE)
    assert (r.partition, r.gpu_type, r.gpus) == ("gpu", "h100", 2)


def test_naming_a_gpu_type_implies_one_gpu():
    r = validate_request(PRESET, {"gpu_type": "h100_1g.10gb"}, MINE)
    assert (r.gpu_type, r.gpus) == ("h100_1g.10gb", 1)


@pytest.mark.parametrize(
    "request_, field, words, allowed",
    [
        ({"walltime": "8-00:00:00"}, "walltime", "over the maximum of cluster 'demo' (7-00:00:00)", "03:00:00, 12:00:00"),
        ({"walltime": "soon"}, "walltime", "not a Slurm time", "or any time up to 7-00:00:00"),
        ({"partition": "bigmem"}, "partition", "'bigmem' is not a partition of cluster 'demo'", "cpu, gpu"),
        ({"gpu_type": "a100", "gpus": 1}, "gpu_type", "'a100' is not a GPU type on cluster 'demo'", "h100, h100_1g.10gb"),
        ({"gpu_type": "h100_1g.10gb", "gpus": 2}, "gpus", "a MIG slice (h100_1g.10gb) is one per job", "1"),
        ({"gpus": 9}, "gpus", "out of range", "0..4"),
        ({"account": "def-bob"}, "account", "'def-bob' is not one of your accounts", "def-alice, rrg-alice"),
        ({"account": "bob-lab"}, "account", "not an account name on cluster 'demo'", "def-alice, rrg-alice"),
        ({"cores": 65}, "cores", "out of range", "1..64"),
        ({"cores": "two"}, "cores", "not a whole number", "1..64"),
        ({"memory": "lots"}, "memory", "not an amount of memory", "2GiB"),
        ({"memory": "1TiB"}, "memory", "out of range", "up to 256GiB"),
        ({"workers": 1001}, "workers", "out of range", "0..1000"),
        ({"memory_per_gpu": "8GiB"}, "memory_per_gpu", "only applies to GPU requests", ""),
        ({"colour": "red"}, "colour", "unknown field", "account, partition"),
    ],
)
def test_request_breaking_the_preset_is_refused_naming_field_and_allowed(request_, field, words, allowed):
    with pytest.raises(ARCRequestError) as err:
        validate_request(PRESET, request_, MINE)
    assert err.value.field == field
    text = str(err.value)
    assert text.startswith(f"{field}: ")
    assert words in text, text
    assert allowed in text, text


def test_user_without_accounts_is_refused_with_403():
    with pytest.raises(ARCRequestError) as err:
        validate_request(PRESET, {}, [])
    assert (err.value.field, err.value.status) == ("account", 403)


def test_cluster_without_gpus_refuses_gpu_requests():
    with pytest.raises(ARCRequestError, match="gpus: cluster 'demo' has no GPUs"):
        validate_request(example_preset(gpu_types=[], gpu_partition=None), {"gpus": 1}, MINE)


def test_walltime_under_the_site_minimum_is_refused():
    p = example_preset(walltime={"tiers": ["03:00:00"], "maximum": "7-00:00:00", "minimum": "01:00:00"})
    with pytest.raises(ARCRequestError, match=r"under the minimum of cluster 'demo' \(01:00:00\)"):
        validate_request(p, {"walltime": "00:30:00"}, MINE)


@pytest.mark.parametrize("jobs, ok", [(1000, True), (1001, False)])
def test_scale_is_limited_by_jobs_per_user_counting_array_tasks(jobs, ok):
    if ok:
        check_scale(PRESET, jobs)
    else:
        with pytest.raises(ARCRequestError, match="each array task counts"):
            check_scale(PRESET, jobs)
