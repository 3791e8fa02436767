"""SCIPLocalSpawner's pure parts: the environment a profile gives, folder names, reachability."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from scip_jupyter.catalog import load_catalog
from scip_jupyter.homes import unreachable_dirs, workdir_name
from scip_jupyter.spawners.local_env import detect_gpus, profile_environment
from tests.fixtures.common import ROOT

CATALOG = load_catalog(ROOT / "hub_config" / "catalog.yaml")
LABELS = {"scip.ca/user": "student1", "scip.ca/server": "default", "scip.ca/profile": "x"}
NO_GPU_NOTE = "but this host has no NVIDIA GPU: the server runs on CPU only"


@pytest.mark.parametrize(
    "slug, gpus, cuda, scip_gpu, note",
    [
        ("cpu-small", [], "", "none", None),
        ("cpu-small", [0, 1], "", "none", None),  # a CPU profile never sees the GPUs
        ("mig-1g-10gb", [], "", "none", NO_GPU_NOTE),
        ("h100-full", [], "", "none", NO_GPU_NOTE),
        ("h100-full", [0, 1], "0", "h100:1", None),
        ("mig-3g-40gb", [2], "2", "h100:mig-3g.40gb", None),
    ],
)
def test_gpu_environment_only_names_real_devices(slug, gpus, cuda, scip_gpu, note):
    env = profile_environment(CATALOG.get(slug), LABELS, gpus)
    assert env["CUDA_VISIBLE_DEVICES"] == cuda
    assert env["SCIP_GPU"] == scip_gpu
    if note is None:
        assert "SCIP_GPU_NOTE" not in env
    else:
        assert note in env["SCIP_GPU_NOTE"]


def test_profile_environment_snapshot():
    env = profile_environment(CATALOG.get("mig-1g-10gb"), LABELS, [], {"profile": "mig-1g-10gb", "course": "intro-ml"})
    assert env == {
        "SCIP_PROFILE": "mig-1g-10gb",
        "SCIP_PROFILE_KIND": "mig",
        "SCIP_SITE": "scip-east",
        "SCIP_JURISDICTION": "CA",
        "SCIP_LABEL_USER": "student1",
        "SCIP_LABEL_SERVER": "default",
        "SCIP_LABEL_PROFILE": "x",
        "SCIP_COURSE": "intro-ml",
        "CUDA_VISIBLE_DEVICES": "",
        "SCIP_GPU": "none",
        "SCIP_GPU_NOTE": "profile mig-1g-10gb asks for H100 slice 1g.10gb (MIG, 1/7 of a GPU), " + NO_GPU_NOTE,
    }


def test_detect_gpus_reads_device_files(tmp_path):
    for name in ("nvidia1", "nvidia0", "nvidiactl", "nvidia-uvm"):
        (tmp_path / name).touch()
    assert detect_gpus(str(tmp_path / "nvidia[0-9]*")) == [0, 1]
    assert detect_gpus(str(tmp_path / "none[0-9]*")) == []


def test_this_machine_has_no_gpu():
    """The hub tests rely on it: servers here are told there is no GPU."""
    assert detect_gpus() == []


@pytest.mark.parametrize(
    "username, folder",
    [("student1", "student1"), ("a.b@x.org", "a.b@x.org"), ("..", "%2E."), (".hidden", "%2Ehidden"),
     ("a/b", "a%2Fb"), ("é", "%C3%A9"), ("a b", "a%20b")],
)
def test_workdir_name_is_one_safe_folder(username, folder):
    assert workdir_name(username) == folder
    assert "/" not in folder and folder not in (".", "..")


def _stat(mode: int, uid: int = 0, gid: int = 0):
    return SimpleNamespace(st_mode=stat.S_IFDIR | mode, st_uid=uid, st_gid=gid)


@pytest.mark.parametrize(
    "modes, blocked",
    [
        ({"/": 0o755, "/srv": 0o755, "/srv/hub": 0o711}, []),
        ({"/": 0o755, "/srv": 0o700, "/srv/hub": 0o711}, ["/srv"]),
        ({"/": 0o755, "/srv": 0o750, "/srv/hub": 0o700}, ["/srv/hub", "/srv"]),
    ],
)
def test_unreachable_dirs_finds_folders_without_search_permission(modes, blocked):
    stats = {p: _stat(m) for p, m in modes.items()}
    found = unreachable_dirs(Path("/srv/hub"), uid=999, gids=[999], stat_fn=lambda p: stats[p])
    assert [str(p) for p in found] == blocked


def test_unreachable_dirs_honours_owner_and_group():
    stats = {"/": _stat(0o755), "/a": _stat(0o700, uid=999), "/a/b": _stat(0o710, gid=50)}
    assert unreachable_dirs(Path("/a/b"), uid=999, gids=[50], stat_fn=lambda p: stats[p]) == []
    assert unreachable_dirs(Path("/a/b"), uid=998, gids=[50], stat_fn=lambda p: stats[p]) == [Path("/a")]


def test_unreachable_dirs_on_real_folders(tmp_path):
    inner = tmp_path / "x"
    inner.mkdir()
    os.chmod(inner, 0o700)
    uid = os.getuid() + 12345  # some other account
    assert inner in unreachable_dirs(inner, uid=uid, gids=[uid])


def test_doctests_of_spawner_and_options_modules():
    import doctest

    from scip_jupyter import homes, options
    from scip_jupyter.spawners import local_env

    for module in (local_env, homes, options):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_not_root_says_so_once_in_the_log_and_on_every_form(monkeypatch, caplog):
    """When the hub is not root, servers share the hub's account: the log says it once, the form every time (en, fr)."""
    import pwd as pwd_module
    from types import SimpleNamespace as NS

    from scip_jupyter.i18n import use_locale
    from scip_jupyter.spawners import local

    me = next(p for p in pwd_module.getpwall() if p.pw_uid != 0)
    monkeypatch.setattr(local.os, "geteuid", lambda: me.pw_uid)
    monkeypatch.setattr(local.SCIPLocalSpawner, "_told_not_root", False)
    spawner = local.SCIPLocalSpawner.__new__(local.SCIPLocalSpawner)
    spawner.__dict__["log"] = __import__("logging").getLogger("test-local")
    object.__setattr__(spawner, "_trait_values", {"log": spawner.__dict__["log"], "user": NS(name="student1")})
    with caplog.at_level("WARNING"):
        first = spawner.shared_account_note()
        second = spawner.shared_account_note()
    assert me.pw_name in first and first == second
    assert caplog.text.count("is not root") == 1
    with use_locale("fr"):
        assert "partagé" in spawner.shared_account_note()
