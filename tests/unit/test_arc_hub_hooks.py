"""Hub-side decisions: which tagged jobs are leftovers of a stopped server, which are orphans."""

from pathlib import Path

import pytest
from traitlets.config import Config

from scip_jupyter.arc.hub_hooks import SERVICE_NAME, configure_hub, hub_service, leftovers_of, orphans_of, server_key
from scip_jupyter.arc.hub_hooks import ARCCleanup, reconcile_plan
from scip_jupyter.arc.states import JobState, Phase, parse_squeue
from scip_jupyter.arc.tags import JobTags

DATA = Path(__file__).resolve().parents[1] / "data" / "slurm"
CAPTURED = parse_squeue((DATA / "squeue_format_all.txt").read_text())
EDGE = parse_squeue((DATA / "squeue_edge_cases.txt").read_text())


def job(job_id: str, tags: "JobTags | str", account: str = "jupyter-alice", phase: Phase = Phase.PENDING) -> JobState:
    """One queue entry: tags (or a raw comment) and the Slurm account it runs as."""
    comment = tags if isinstance(tags, str) else tags.comment()
    return JobState.from_slurm(job_id=job_id, phase=phase, user=account, reason="None", comment=comment)


ACCOUNTS = {"alice": "jupyter-alice", "bob": "jupyter-bob", "alice+lab": "jupyter-alice-lab-0123456789ab"}


def test_leftovers_are_whole_arrays_of_that_server_only():
    # the captured queue is tagged by the legacy format: `server=default` is the unnamed server
    # or a server named "default", so the stop of either cancels them while the other one is not running
    assert leftovers_of(CAPTURED, "alice", "default") == ["1", "2"]
    assert leftovers_of(CAPTURED, "alice", "") == ["1", "2"]
    assert leftovers_of(CAPTURED, "alice", "gpu") == []
    assert leftovers_of(CAPTURED, "bob", "default") == []


def test_legacy_default_is_kept_while_the_other_server_it_may_be_runs():
    assert leftovers_of(CAPTURED, "alice", "", others=["default"]) == []
    assert leftovers_of(CAPTURED, "alice", "default", others=[""]) == []
    assert leftovers_of(CAPTURED, "alice", "", others=["gpu"]) == ["1", "2"]


def test_todays_tags_name_exactly_one_server():
    unnamed, named = job("7", JobTags(user="alice", server="")), job("8", JobTags(user="alice", server="default"))
    assert leftovers_of([unnamed, named], "alice", "") == ["7"]
    assert leftovers_of([unnamed, named], "alice", "default") == ["8"]
    assert leftovers_of([unnamed, named], "alice", "", others=["default"]) == ["7"]


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
        ({("alice", "")}, {}),  # legacy `server=default`: maybe the unnamed server, which runs
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


# ---------------------------------------------------------------- reconcile checks the owning account


def test_reconcile_never_cancels_a_job_that_runs_as_another_persons_account():
    genuine = job("10", JobTags(user="alice", server=""), account="jupyter-alice")
    crafted = job("11", JobTags(user="alice", server=""), account="jupyter-bob")  # bob wrote alice's tags
    plan = reconcile_plan([genuine, crafted], set(), {"alice", "bob"}, ACCOUNTS.get)
    assert plan.cancel == {("alice", ""): ["10"]}
    assert [job_id for job_id, _ in plan.skipped] == ["11"]
    assert "jupyter-bob" in plan.skipped[0][1] and "jupyter-alice" in plan.skipped[0][1]


@pytest.mark.parametrize(
    "account_of, expected",
    [
        (ACCOUNTS.get, {}),  # nobody's account maps: skipped, never cancelled
        (lambda person: None, {}),
        (lambda person: "", {}),
    ],
)
def test_reconcile_without_the_persons_account_cancels_nothing(account_of, expected):
    orphan = job("12", JobTags(user="carol", server=""), account="jupyter-carol")
    plan = reconcile_plan([orphan], set(), {"carol"}, account_of)
    assert plan.cancel == expected and [j for j, _ in plan.skipped] == ["12"]


def test_reconcile_keeps_jobs_of_running_servers_and_of_people_not_on_the_hub():
    mine = job("20", JobTags(user="alice", server="gpu"))
    stranger = job("21", JobTags(user="zed", server=""), account="jupyter-zed")
    plan = reconcile_plan([mine, stranger], {("alice", "gpu")}, {"alice", "bob"}, ACCOUNTS.get)
    assert plan.cancel == {} and plan.skipped == []


def test_reconcile_finds_the_legacy_cleaned_name_by_its_account():
    legacy = job("30", "scip.ca:user=alice_lab,server=default,project=def-x", account=ACCOUNTS["alice+lab"])
    people = {"alice+lab", "alice_lab"}
    accounts = {**ACCOUNTS, "alice_lab": "jupyter-alice_lab"}
    assert reconcile_plan([legacy], set(), people, accounts.get).cancel == {("alice+lab", "default"): ["30"]}
    # its person's unnamed server (legacy `default`) runs: kept
    assert reconcile_plan([legacy], {("alice+lab", "")}, people, accounts.get).cancel == {}
    # the other candidate's server running does not keep it: the account says whose it is
    assert reconcile_plan([legacy], {("alice_lab", "")}, people, accounts.get).cancel == {("alice+lab", "default"): ["30"]}


def test_reconcile_logs_what_it_keeps_and_cancels_the_rest(caplog):
    genuine = job("40", JobTags(user="alice", server=""), account="jupyter-alice")
    crafted = job("41", JobTags(user="alice", server=""), account="jupyter-bob")
    calls = []

    class Transport:
        async def run(self, argv, timeout=None):
            calls.append(argv)
            return "" if argv[0] == "scancel" else "{}"

    cleanup = ARCCleanup(transport_for=lambda preset: Transport(), presets=["p"])
    cleanup.queue = lambda preset: _async([genuine, crafted])
    import asyncio
    import logging

    with caplog.at_level(logging.WARNING):
        done = asyncio.run(cleanup.reconcile(set(), {"alice"}, ACCOUNTS.get))
    assert done == {"p": ["40"]}
    assert [a for a in calls if a[0] == "scancel"] == [["scancel", "40"]]
    assert "keeps job 41" in caplog.text and "jupyter-bob" in caplog.text


async def _async(value):
    return value


def test_reconcile_cli_account_mapping_follows_its_options():
    import argparse

    from scip_jupyter.arc.jobs_cli import _account_mapping

    args = argparse.Namespace(account_template="", account_prefix="jupyter-", hub=False)
    assert _account_mapping(args)("student1") == "jupyter-student1"
    assert _account_mapping(args)("Alice+lab@uni.ca") != _account_mapping(args)("alice_lab@uni.ca")  # identity.system_username
    args.account_template = "{username}"
    assert _account_mapping(args)("student1") == "student1"


def test_hub_accounts_asks_once_per_person_in_chunks():
    import http.server
    import json
    import threading
    import urllib.parse

    from scip_jupyter.arc.hub_hooks import HubAccounts
    from scip_jupyter.identity_hub import MAX_ACCOUNT_NAMES

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            url = urllib.parse.urlparse(self.path)
            names = urllib.parse.parse_qs(url.query).get("user", [])
            seen.append((url.path, self.headers.get("Authorization"), len(names)))
            body = json.dumps({"accounts": {n: f"jupyter-{n}" for n in names if n != "ghost"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        accounts = HubAccounts(f"http://127.0.0.1:{server.server_port}/hub/api", "tok")
        people = [f"p{i}" for i in range(MAX_ACCOUNT_NAMES + 5)] + ["ghost"]
        accounts.prefetch(people)
        assert accounts.requests == 2 and [n for _, _, n in seen] == [MAX_ACCOUNT_NAMES, 6]
        assert {p for p, _, _ in seen} == {"/hub/api/scip/accounts"} and {a for _, a, _ in seen} == {"token tok"}
        assert accounts("p3") == "jupyter-p3" and accounts("ghost") is None
        accounts.prefetch(people)
        assert accounts.requests == 2  # known: not asked again
        assert accounts("new") == "jupyter-new" and accounts.requests == 3
    finally:
        server.shutdown()


def test_without_an_account_a_legacy_cleaned_name_never_stands_for_another_person():
    legacy = job("50", "scip.ca:user=alice_lab,server=gpu", account="root")
    assert leftovers_of([legacy], "alice+lab", "gpu") == []  # may be alice_lab's: no account says otherwise
    assert leftovers_of([legacy], "alice_lab", "gpu") == ["50"]
    assert leftovers_of([legacy], "alice+lab", "gpu", account="root") == ["50"]  # the account says whose
    assert orphans_of([legacy], set(), {"alice+lab"}) == {}
    assert orphans_of([legacy], set(), {"alice+lab", "alice_lab"}) == {("alice_lab", "gpu"): ["50"]}
