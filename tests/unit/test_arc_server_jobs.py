"""One server's jobs: listing by registry and tags, cancelling only its own, cancelling all at shutdown.

The transport is a recording stand-in answering with text captured from the
real local Slurm; the real-Slurm path is in tests/integration/test_arc_orphans.py.
"""

from pathlib import Path

import pytest

from scip_jupyter.arc.registry import JobRegistry
from scip_jupyter.arc.server_jobs import GONE_REASON, NEW_REASON, NotThisServersJob, ServerJobs, check_job_id, summary
from scip_jupyter.arc.states import Phase
from scip_jupyter.arc.tags import JobTags

CAPTURED = (Path(__file__).resolve().parents[1] / "data" / "slurm" / "squeue_format_all.txt").read_text()


class RecordingTransport:
    kind = "local"

    def __init__(self):
        self.argvs = []

    async def run(self, argv, stdin=None, timeout=None):
        self.argvs.append(list(argv))
        return CAPTURED if argv[0] == "squeue" else ""

    def scancels(self):
        return [a[1:] for a in self.argvs if a[0] == "scancel"]


@pytest.fixture
def setup(tmp_path):
    registry = JobRegistry(tmp_path / "r.sqlite")
    transport = RecordingTransport()
    jobs = ServerJobs(JobTags(user="alice", server="default"), registry, lambda preset: transport)
    return jobs, registry, transport


async def test_lists_this_servers_tagged_jobs(setup):
    jobs, registry, transport = setup
    (view,) = [v for v in await jobs.list()] or [None]
    assert view is None  # nothing recorded, no preset configured: nowhere to look
    jobs.presets = ("local-slurm",)
    (view,) = await jobs.list()
    by_id = {j.job_id: j for j in view.jobs}
    assert {"1", "2_0", "2_5"} <= set(by_id)
    assert "4" not in by_id and "12" not in by_id  # not this server's
    assert by_id["2_5"].phase is Phase.PENDING and by_id["2_5"].reason == "JobArrayTaskLimit"


async def test_record_that_left_the_queue_is_reported_once_then_forgotten(setup):
    jobs, registry, transport = setup
    registry.record("999", "local-slurm", JobTags(user="alice", server="default"), preset="local-slurm")
    (view,) = await jobs.list()  # squeue asked after the record: 999 is not in it
    assert [(j.phase, j.reason) for j in view.jobs if j.job_id == "999"] == [(Phase.UNKNOWN, GONE_REASON)]
    assert registry.all() == []


async def test_record_newer_than_cached_listing_shows_as_submitted(setup):
    jobs, registry, transport = setup
    jobs.presets = ("local-slurm",)
    await jobs.list()
    registry.record("888", "local-slurm", JobTags(user="alice", server="default"), preset="local-slurm")
    (view,) = await jobs.list()  # cached listing, older than the record
    assert [(j.phase, j.reason) for j in view.jobs if j.job_id == "888"] == [(Phase.PENDING, NEW_REASON)]
    assert [r.job_id for r in registry.all()] == ["888"]
    assert [a[0] for a in transport.argvs] == ["squeue"]


async def test_cancel_refuses_other_servers_jobs(setup):
    jobs, registry, transport = setup
    registry.record("1", "local-slurm", JobTags(user="alice", server="default"), preset="local-slurm")
    with pytest.raises(NotThisServersJob):
        await jobs.cancel("4")  # someone else's job in the same queue
    with pytest.raises(NotThisServersJob):
        await jobs.cancel("123456")
    assert transport.scancels() == []


async def test_cancel_recorded_job_and_tagged_array_task(setup):
    jobs, registry, transport = setup
    registry.record("1", "local-slurm", JobTags(user="alice", server="default"), preset="local-slurm")
    await jobs.cancel("1")
    assert registry.all() == []
    await jobs.cancel("2_3")  # not recorded, but tagged for alice/default
    assert transport.scancels() == [["1"], ["2_3"]]


@pytest.mark.parametrize("bad", ["", "abc", "12;rm", "1_2_3", "12 13", "../1", "1_[0-3"])
def test_job_id_validation_names_the_field(bad):
    with pytest.raises(ValueError, match="job_id"):
        check_job_id(bad)


@pytest.mark.parametrize("good", ["1", "1234_5", "77_[0-31%4]"])
def test_job_id_validation_accepts_slurm_ids(good):
    assert check_job_id(good) == good


async def test_cancel_all_cancels_recorded_and_tagged_in_one_scancel(setup):
    jobs, registry, transport = setup
    registry.record("777", "local-slurm", JobTags(user="alice", server="default"), preset="local-slurm")
    done = await jobs.cancel_all()
    assert done == {"local-slurm": ["1", "2", "777"]}
    assert transport.scancels() == [["1", "2", "777"]]
    assert registry.all() == []


async def test_unreachable_cluster_is_reported_not_raised(tmp_path):
    from scip_jupyter.arc.transport import SlurmUnavailable

    class Down:
        async def run(self, argv, stdin=None, timeout=None):
            raise SlurmUnavailable("local-slurm", argv[0], "connect failure", "scripts/slurm-local status")

    registry = JobRegistry(tmp_path / "r.sqlite")
    registry.record("5", "local-slurm", JobTags(user="alice", server="default"), preset="local-slurm")
    jobs = ServerJobs(JobTags(user="alice", server="default"), registry, lambda p: Down())
    body = summary(await jobs.list())
    assert body["errors"][0]["preset"] == "local-slurm"
    assert "local-slurm" in body["errors"][0]["message"] and "slurm-local status" in body["errors"][0]["message"]
    assert [j["job_id"] for j in body["jobs"]] == ["5"]
    assert await jobs.cancel_all() == {}  # logged, not raised: shutdown goes on


async def test_tags_alone_never_make_another_accounts_job_ours(tmp_path):
    """Slurm lists alice/default's tagged jobs as running under root: a server submitting as
    another account sees none of them and cannot cancel them, even with a forged record."""
    transport = RecordingTransport()
    transport.account = "mallory"
    registry = JobRegistry(tmp_path / "r.sqlite")
    jobs = ServerJobs(JobTags(user="alice", server="default"), registry, lambda preset: transport, presets=("local-slurm",))
    (view,) = await jobs.list()
    assert view.jobs == []
    registry.record("1", "local-slurm", JobTags(user="alice", server="default"), preset="local-slurm", account="mallory")
    with pytest.raises(NotThisServersJob):
        await jobs.cancel("1")
    assert transport.scancels() == []
    transport.account = "root"  # the account Slurm says owns them: now they are this server's
    owner = ServerJobs(JobTags(user="alice", server="default"), JobRegistry(tmp_path / "o.sqlite"), lambda p: transport,
                       presets=("local-slurm",))
    assert {"1", "2_0"} <= {j.job_id for v in await owner.list() for j in v.jobs}
