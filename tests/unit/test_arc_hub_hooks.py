"""Hub-side decisions: which tagged jobs are leftovers of a stopped server, which are orphans."""

from pathlib import Path

import pytest
from traitlets.config import Config

from scip_jupyter.arc.hub_hooks import SERVICE_NAME, configure_hub, hub_service, leftovers_of, orphans_of, server_key
from scip_jupyter.arc.states import parse_squeue

DATA = Path(__file__).resolve().parents[1] / "data" / "slurm"
CAPTURED = parse_squeue((DATA / "squeue_format_all.txt").read_text())
EDGE = parse_squeue((DATA / "squeue_edge_cases.txt").read_text())


def test_leftovers_are_whole_arrays_of_that_server_only():
    assert leftovers_of(CAPTURED, "alice", "default") == ["1", "2"]
    # JupyterHub's unnamed server is "": a server *named* "default" is another server
    assert leftovers_of(CAPTURED, "alice", "") == []
    assert leftovers_of(CAPTURED, "alice", "gpu") == []
    assert leftovers_of(CAPTURED, "bob", "default") == []


def test_leftovers_need_the_owning_account_when_known():
    assert leftovers_of(CAPTURED, "alice", "default", account="root") == ["1", "2"]
    assert leftovers_of(CAPTURED, "alice", "default", account="mallory") == []


def test_finished_jobs_are_not_cancelled_again():
    # 106 is PREEMPTED (finished) though tagged for carol/other
    assert leftovers_of(EDGE, "carol", "other") == []


@pytest.mark.parametrize(
    "running, expected",
    [
        (set(), {("alice", "default"): ["1", "2"]}),
        ({("alice", "default")}, {}),
        ({("alice", "")}, {("alice", "default"): ["1", "2"]}),
        ({("alice", "gpu")}, {("alice", "default"): ["1", "2"]}),
    ],
)
def test_orphans_are_jobs_of_servers_not_running(running, expected):
    assert orphans_of(CAPTURED, running) == expected


def test_orphans_can_be_limited_to_some_users():
    jobs = CAPTURED + EDGE
    assert set(orphans_of(jobs, set())) == {("alice", "default"), ("carol", "default")}
    assert set(orphans_of(jobs, set(), only_users={"carol"})) == {("carol", "default")}
    assert orphans_of(jobs, set(), only_users={"nobody"}) == {}


def test_untagged_jobs_are_never_touched():
    untagged = {j.array_job_id for j in CAPTURED if j.tags is None}
    cancelled = {i for ids in orphans_of(CAPTURED, set()).values() for i in ids}
    assert untagged and not (untagged & cancelled)


def test_server_key_is_exact_and_default_is_not_unnamed():
    assert server_key("a b", None) == ("a b", "")
    assert server_key("a", "default") != server_key("a", None)  # a server named "default" is not the unnamed one


def test_configure_hub_appends_to_existing_lists_and_chains_hook():
    c = Config()
    services, roles = [{"name": "other"}], []
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles

    def previous(spawner):
        return None

    c.Spawner.post_stop_hook = previous
    configure_hub(c, presets=["local-slurm"], every=60)
    assert [s["name"] for s in services] == ["other", SERVICE_NAME]  # same list object, appended
    assert roles[0]["services"] == [SERVICE_NAME] and "read:servers" in roles[0]["scopes"]
    assert c.Spawner.post_stop_hook is not previous and callable(c.Spawner.post_stop_hook)
    assert c.ARCCleanup.presets == ["local-slurm"]


def test_hub_service_runs_reconcile_for_each_preset():
    service, role = hub_service(["local-slurm", "fir"], every=120, python="/venv/bin/python")
    assert service["command"] == [
        "/venv/bin/python", "-m", "scip_jupyter.cli", "arc", "reconcile", "--hub", "--every", "120",
        "--preset", "local-slurm", "--preset", "fir",
    ]  # fmt: skip
    assert role["scopes"] == ["list:users", "read:users:name", "read:servers"]


@pytest.mark.parametrize(
    "presets, expected_presets, wired",
    [
        (None, ["local-slurm"], True),  # ARCCleanup.presets' default
        (["local-slurm"], ["local-slurm"], True),
        ([], [], False),  # the hub reaches no cluster: no hook, no service reconciling every preset's cluster
    ],
)
def test_configure_hub_with_default_given_or_no_presets(presets, expected_presets, wired):
    c = Config()
    configure_hub(c, presets=presets, every=60)
    assert c.ARCCleanup.presets == expected_presets
    assert ("post_stop_hook" in c.Spawner) is wired
    services = c.JupyterHub.services if "services" in c.JupyterHub else []
    assert [s["name"] for s in services] == ([SERVICE_NAME] if wired else [])
    if wired:
        command = services[0]["command"]
        assert [command[i + 1] for i, a in enumerate(command) if a == "--preset"] == expected_presets
