"""Free GPUs per flavour from `sinfo` (pure parsing of captured output) and the cached, time-limited reader."""

from __future__ import annotations

import sys

import pytest

from scip_jupyter.availability import (
    Flavour,
    SlurmAvailability,
    parse_gres,
    profile_availability,
    slurm_gpu_availability,
    slurm_resource,
)
from scip_jupyter.catalog import load_catalog
from tests.fixtures.common import ROOT

CATALOG = load_catalog(ROOT / "hub_config" / "catalog.yaml")
# Captured from scripts/slurm-local (Slurm 22.05) with two jobs holding gpu:h100:2 and gpu:h100_1g.10gb:1.
LOCAL_BUSY = (
    "vm|gpu:h100:4,gpu:h100_1g.10gb:2|gpu:h100:2(IDX:0-1),gpu:h100_1g.10gb:1(IDX:4)|mixed|\n"
    "vm|gpu:h100:4,gpu:h100_1g.10gb:2|gpu:h100:2(IDX:0-1),gpu:h100_1g.10gb:1(IDX:4)|mixed|\n"
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("gpu:h100:4,gpu:h100_1g.10gb:2", {"h100": 4, "h100_1g.10gb": 2}),
        ("gpu:h100:2(IDX:0,2),gpu:h100_1g.10gb:0(IDX:N/A)", {"h100": 2, "h100_1g.10gb": 0}),
        ("gpu:a100:4(S:0-1)", {"a100": 4}),
        ("gpu:2", {"gpu": 2}),
        ("gpu:h100:1,gpu:h100:1", {"h100": 2}),
        ("shard:8,mps:100", {}),
        ("(null)", {}),
        ("", {}),
    ],
)
def test_parse_gres(text, expected):
    assert parse_gres(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (LOCAL_BUSY, {"h100": Flavour("h100", 4, 2), "h100_1g.10gb": Flavour("h100_1g.10gb", 2, 1)}),
        ("a|gpu:h100:4|gpu:h100:0(IDX:N/A)|idle|\nb|gpu:h100:4|gpu:h100:4(IDX:0-3)|mixed|\n",
         {"h100": Flavour("h100", 8, 4)}),
        ("a|gpu:h100:4|gpu:h100:0(IDX:N/A)|drained|\n", {"h100": Flavour("h100", 4, 4)}),
        ("a|gpu:h100:4|gpu:h100:0(IDX:N/A)|idle*|\n", {"h100": Flavour("h100", 4, 4)}),
        ("a|gpu:h100:4|gpu:h100:1(IDX:0)|allocated|\n", {"h100": Flavour("h100", 4, 4)}),
        ("a|(null)|gpu:0|idle|\n", {}),
        ("garbage\n\n", {}),
    ],
    ids=["local-busy", "two-nodes", "drained-node-has-none-free", "not-responding", "cpus-all-taken", "no-gpu", "junk"],
)
def test_slurm_gpu_availability(text, expected):
    assert slurm_gpu_availability(text) == expected


def test_profiles_from_slurm_flavours():
    flavours = slurm_gpu_availability(LOCAL_BUSY)
    assert profile_availability(CATALOG.profiles, flavours, slurm_resource) == {
        "cpu-small": None,
        "mig-1g-10gb": 1,
        "mig-3g-40gb": 0,  # this Slurm has no 3g.40gb slices
        "h100-full": 2,
    }


def fake_sinfo(script: str) -> tuple[str, ...]:
    return (sys.executable, "-c", script)


async def test_reads_are_cached_for_the_ttl():
    now = [0.0]
    reader = SlurmAvailability(ttl=30, clock=lambda: now[0], argv=fake_sinfo(f"print({LOCAL_BUSY!r}, end='')"))
    first = await reader.flavours()
    assert first["h100"].free == 2
    now[0] = 29
    assert await reader.flavours() is first
    assert reader.calls == 1
    now[0] = 31
    await reader.flavours()
    assert reader.calls == 2


@pytest.mark.parametrize(
    "argv, timeout, error",
    [
        (fake_sinfo("import time; time.sleep(60)"), 0.5, "did not answer within 0.5s"),
        (fake_sinfo("import sys; sys.stderr.write('slurm_load_partitions: Unable to contact slurm controller'); sys.exit(1)"),
         30, "failed (1): slurm_load_partitions: Unable to contact slurm controller"),
        (("/nonexistent/sinfo",), 30, "No such file or directory"),
    ],
    ids=["hung", "controller-down", "not-installed"],
)
async def test_failure_is_unknown_and_cached(argv, timeout, error):
    now = [0.0]
    reader = SlurmAvailability(ttl=30, timeout=timeout, clock=lambda: now[0], argv=argv)
    assert await reader.flavours() is None
    assert error in reader.error
    assert await reader.flavours() is None
    assert reader.calls == 1  # a failing Slurm is asked once per TTL, not at every form


async def test_slurm_conf_is_passed_to_sinfo(tmp_path):
    reader = SlurmAvailability(
        conf=str(tmp_path / "slurm.conf"),
        argv=fake_sinfo("import os; print('n|gpu:h100:1|gpu:h100:0|idle|' if os.environ['SLURM_CONF'].endswith('slurm.conf') else '')"),
    )
    assert (await reader.flavours())["h100"].free == 1
