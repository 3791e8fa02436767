"""The job registry: one SQLite file shared by a server and its kernels."""

import multiprocessing
import os

from scip_jupyter.arc.registry import ENV_PATH, JobRegistry
from scip_jupyter.arc.tags import JobTags


def _writer(path, prefix, n):
    reg = JobRegistry(path)
    for i in range(n):
        reg.record(f"{prefix}{i}", "local-slurm", JobTags(user="alice", server=f"s{prefix}"), preset="local-slurm")
        if i % 3 == 0:
            reg.forget(f"{prefix}{i}")


def test_records_are_kept_per_server(tmp_path):
    reg = JobRegistry(tmp_path / "jobs.sqlite")
    reg.record("10", "fir", JobTags(user="alice", server="default", project="def-smith"), preset="fir")
    reg.record("11_[0-31]", "local-slurm", JobTags(user="alice", server="gpu"), preset="local-slurm")
    reg.record("12", "local-slurm", JobTags(user="bob", server="default"), preset="local-slurm")
    (rec,) = reg.jobs_for("alice", "default")
    assert (rec.job_id, rec.cluster, rec.preset, rec.tags.project) == ("10", "fir", "fir", "def-smith")
    assert [r.job_id for r in reg.jobs_for("alice", "gpu")] == ["11_[0-31]"]
    assert [r.job_id for r in reg.all()] == ["10", "11_[0-31]", "12"]


def test_recording_again_updates_and_forget_is_idempotent(tmp_path):
    reg = JobRegistry(tmp_path / "jobs.sqlite")
    reg.record("10", "a", JobTags(user="alice"), preset="a")
    reg.record("10", "a", JobTags(user="alice", server="x"), preset="a", account="jupyter-alice")
    assert [(r.job_id, r.cluster, r.server, r.account) for r in reg.all()] == [("10", "a", "x", "jupyter-alice")]
    reg.record("10", "b", JobTags(user="alice"), preset="b")  # same id on another cluster: another job
    assert [(r.cluster, r.job_id) for r in reg.all()] == [("a", "10"), ("b", "10")]
    reg.forget("10", cluster="a")
    assert [(r.cluster, r.job_id) for r in reg.all()] == [("b", "10")]
    reg.forget("10")
    reg.forget("10")
    reg.forget("never-recorded")
    assert reg.all() == []


def test_server_names_are_compared_exactly(tmp_path):
    reg = JobRegistry(tmp_path / "jobs.sqlite")
    reg.record("1", "c", JobTags(user="alice", server="my server"), preset="c")
    reg.record("2", "c", JobTags(user="alice", server="my_server"), preset="c")
    reg.record("3", "c", JobTags(user="alice", server="default"), preset="c")
    reg.record("4", "c", JobTags(user="alice"), preset="c")
    assert [r.job_id for r in reg.jobs_for("alice", "my server")] == ["1"]
    assert [r.job_id for r in reg.jobs_for("alice", "")] == ["4"]


def test_survives_reopening(tmp_path):
    JobRegistry(tmp_path / "jobs.sqlite").record("1", "c", JobTags(user="alice"), preset="c")
    assert [r.job_id for r in JobRegistry(tmp_path / "jobs.sqlite").all()] == ["1"]


def test_several_processes_write_at_once(tmp_path):
    path = str(tmp_path / "jobs.sqlite")
    JobRegistry(path)  # create the schema once, as the server does
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, p, 40)) for p in "abcd"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    kept = {r.job_id for r in JobRegistry(path).all()}
    assert kept == {f"{p}{i}" for p in "abcd" for i in range(40) if i % 3}


def test_default_path_comes_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_PATH, str(tmp_path / "sub" / "r.sqlite"))
    reg = JobRegistry.default()
    assert reg.path == tmp_path / "sub" / "r.sqlite" and reg.path.exists()
    assert JobRegistry.default() is reg
    assert oct(os.stat(reg.path).st_mode & 0o777) == "0o600"


def test_default_path_without_environment_is_in_home(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_PATH, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert JobRegistry.default().path == tmp_path / ".local/share/scip/arc-jobs.sqlite"
