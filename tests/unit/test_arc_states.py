"""Slurm output parsers, on output captured from the local Slurm and hand-written edge cases."""

from datetime import datetime, timezone
from pathlib import Path

import pytest

from scip_jupyter.arc.states import (
    Phase,
    jobs_of_server,
    jobs_with_ids,
    parse_duration,
    parse_sacct,
    parse_squeue,
    parse_squeue_json,
    parse_squeue_start,
    parse_time,
    phase_of,
    sacct_argv,
    squeue_argv,
    with_start_estimates,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "slurm"


def by_id(jobs):
    return {j.job_id: j for j in jobs}


@pytest.fixture(scope="module")
def captured():
    return by_id(parse_squeue((DATA / "squeue_format_all.txt").read_text()))


@pytest.mark.parametrize(
    "job_id, phase, reason",
    [
        ("1", Phase.RUNNING, ""),
        ("2_0", Phase.RUNNING, ""),
        ("2_3", Phase.PENDING, "JobArrayTaskLimit"),
        ("3", Phase.PENDING, "JobHeldUser"),
        ("4", Phase.PENDING, "BeginTime"),
        ("5", Phase.COMPLETED, ""),
        ("6", Phase.FAILED, "NonZeroExitCode"),
        ("8", Phase.PENDING, "Resources"),
        ("12", Phase.CANCELLED, "Priority"),
    ],
)
def test_captured_squeue_gives_phase_and_reason(captured, job_id, phase, reason):
    assert captured[job_id].phase is phase
    assert captured[job_id].reason == reason


def test_pending_job_is_never_reported_running(captured):
    """dask-jobqueue #11: a queued worker is not a running one."""
    pending = [j for j in captured.values() if j.slurm_state == "PENDING"]
    assert pending and all(j.phase is Phase.PENDING for j in pending)


def test_pending_job_carries_slurm_start_estimate(captured):
    job = captured["8"]
    assert job.start == datetime.fromisoformat("2026-11-25T06:46:41").astimezone()
    assert job.start_is_estimate
    assert captured["3"].start is None  # held: Slurm gives no estimate


def test_comment_with_pipe_stays_whole(captured):
    assert captured["4"].comment == "someone|else has a pipe"
    assert captured["4"].tags is None
    assert captured["4"].time_limit_s == 2 * 86400


def test_null_comment_is_empty(captured):
    assert captured["3"].comment == ""


def test_array_tasks_know_their_job(captured):
    task = captured["2_4"]
    assert (task.array_job_id, task.array_task) == ("2", "4")
    assert task.tags.user == "alice" and task.tags.project == "def-smith"
    assert captured["1"].array_task is None and captured["1"].array_job_id == "1"


def test_jobs_of_server_selects_by_tags(captured):
    mine = jobs_of_server(list(captured.values()), "alice", "default")
    assert {j.job_id for j in mine} == {"1", "2_0", "2_1", "2_2", "2_3", "2_4", "2_5"}
    assert jobs_of_server(list(captured.values()), "alice", "gpu") == []


def test_jobs_with_ids_matches_whole_arrays(captured):
    assert {j.job_id for j in jobs_with_ids(list(captured.values()), {"2"})} == {f"2_{i}" for i in range(6)}


def test_squeue_start_default_format():
    starts = parse_squeue_start((DATA / "squeue_start_default.txt").read_text())
    assert starts["8"] == datetime.fromisoformat("2026-11-25T06:46:41").astimezone()
    assert starts["3"] is None
    assert "2_[2-5%2]" in starts


def test_squeue_start_with_our_format_parses_like_squeue():
    jobs = parse_squeue((DATA / "squeue_start_format.txt").read_text())
    assert jobs and all(j.phase is Phase.PENDING for j in jobs)


def test_start_estimates_fill_only_missing_pending_starts():
    jobs = parse_squeue((DATA / "squeue_start_format.txt").read_text())
    soon = datetime(2030, 1, 1, tzinfo=timezone.utc)
    filled = by_id(with_start_estimates(jobs, {"3": soon, "8": soon}))
    assert filled["3"].start == soon
    assert filled["8"].start != soon  # squeue already had one


def test_squeue_json_agrees_with_text_format():
    now = datetime.fromtimestamp(1795588901 + 36, tz=timezone.utc)
    from_json = by_id(parse_squeue_json((DATA / "squeue.json").read_text(), now=now))
    from_text = by_id(parse_squeue((DATA / "squeue_format_all.txt").read_text()))
    for job_id in ("1", "2_0", "2_1", "3", "4", "5", "6", "8"):
        a, b = from_json[job_id], from_text[job_id]
        assert (a.phase, a.reason, a.start, a.time_limit_s, a.comment) == (b.phase, b.reason, b.start, b.time_limit_s, b.comment), job_id
    assert from_json["1"].elapsed_s == 36
    assert from_json["2_[2-5%2]"].phase is Phase.PENDING


def test_squeue_json_of_newer_slurm_shapes():
    text = """{"jobs": [{"job_id": 7, "array_job_id": {"set": true, "number": 7}, "array_task_id": {"set": true, "number": 3},
      "job_state": ["PENDING"], "state_reason": "Priority", "start_time": {"set": true, "number": 0},
      "time_limit": {"set": true, "number": 180}, "comment": {"job": "scip.ca:user=dan,server=x"},
      "name": "n", "user_name": "dan", "partition": "p", "node_count": {"set": true, "number": 1}}]}"""
    (job,) = parse_squeue_json(text)
    assert (job.job_id, job.phase, job.time_limit_s, job.tags.server, job.start) == ("7_3", Phase.PENDING, 10800, "x", None)


EDGE = by_id(parse_squeue((DATA / "squeue_edge_cases.txt").read_text()))


@pytest.mark.parametrize(
    "job_id, phase, reason_words, limit, elapsed",
    [
        ("101", Phase.PENDING, "down, drained or reserved", 3 * 3600, 0),
        ("102_[0-31%8]", Phase.PENDING, "higher-priority jobs", 3 * 3600, 0),
        ("103", Phase.RUNNING, "", 7 * 86400, 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        ("104", Phase.SUSPENDED, "", None, 600),
        ("105", Phase.PENDING, "", None, 0),
        ("106", Phase.FAILED, "", 3 * 3600, 3600),
        ("107", Phase.UNKNOWN, "", 3 * 3600, None),
    ],
)
def test_edge_cases(job_id, phase, reason_words, limit, elapsed):
    job = EDGE[job_id]
    assert job.phase is phase
    assert reason_words in job.reason_text
    assert (job.time_limit_s, job.elapsed_s) == (limit, elapsed)


def test_reason_with_node_list_keeps_slurm_text():
    assert EDGE["101"].reason.startswith("ReqNodeNotAvail, UnavailableNodes:fc[")


def test_to_json_is_plain_data():
    data = EDGE["102_[0-31%8]"].to_json()
    assert data["phase"] == "pending" and data["start_is_estimate"] is True
    assert data["array_job_id"] == "102" and data["tags"]["user"] == "carol"
    assert isinstance(data["start"], str)


SACCT = by_id(parse_sacct((DATA / "sacct_handwritten.txt").read_text()))


@pytest.mark.parametrize(
    "job_id, phase, exit_code",
    [
        ("41", Phase.COMPLETED, "0:0"),
        ("42_0", Phase.CANCELLED, "0:15"),
        ("42_1", Phase.TIMEOUT, "0:0"),
        ("42_[2-3]", Phase.CANCELLED, "0:0"),
        ("43", Phase.FAILED, "0:125"),
        ("44", Phase.FAILED, "1:0"),
        ("45", Phase.FAILED, "0:0"),
        ("46", Phase.PENDING, "0:0"),
        ("47", Phase.RUNNING, "0:0"),
    ],
)
def test_sacct_states(job_id, phase, exit_code):
    assert SACCT[job_id].phase is phase
    assert SACCT[job_id].exit_code == exit_code


def test_sacct_details():
    assert SACCT["42_0"].slurm_state == "CANCELLED by 3001"
    assert SACCT["41"].end - SACCT["41"].start == (datetime(2026, 1, 1, 10, 30, 40) - datetime(2026, 1, 1, 10, 0, 2))
    assert SACCT["44"].comment == "a comment | with a pipe"
    assert SACCT["46"].start is None and SACCT["46"].reason == "Priority"
    assert SACCT["45"].tags.server == "gpu"
    assert all(SACCT[i].phase.finished for i in ("41", "42_0", "42_1", "43", "44", "45"))
    assert not any(SACCT[i].phase.finished for i in ("46", "47"))


@pytest.mark.parametrize(
    "text, seconds",
    [("0:00", 0), ("5:07", 307), ("1:02:03", 3723), ("2-00:00:00", 172800), ("00:30:38", 1838),
     ("UNLIMITED", None), ("NOT_SET", None), ("INVALID", None), ("", None)],
)  # fmt: skip
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["N/A", "Unknown", "None", "", "garbage"])
def test_times_without_value(text):
    assert parse_time(text) is None


@pytest.mark.parametrize(
    "state, phase",
    [("CANCELLED by 0", Phase.CANCELLED), ("COMPLETED", Phase.COMPLETED), ("RUNNING", Phase.RUNNING),
     ("REQUEUED", Phase.PENDING), ("OUT_OF_MEMORY", Phase.FAILED), ("BOOT_FAIL", Phase.FAILED),
     ("cancelled+", Phase.CANCELLED), ("", Phase.UNKNOWN)],
)  # fmt: skip
def test_phase_of_slurm_state(state, phase):
    assert phase_of(state) is phase


def test_malformed_squeue_line_is_skipped_and_named_in_the_log(caplog):
    good = "13|RUNNING|None|N/A|0:01|1:00|w|bob|cpu|1|"
    assert [j.job_id for j in parse_squeue("12|RUNNING|None\n" + good)] == ["13"]
    assert "expected 11" in caplog.text and "%i|%T" in caplog.text


def test_command_builders():
    assert squeue_argv(me=True)[-1] == "--me"
    assert "--user=alice" in squeue_argv(user="alice")
    assert squeue_argv()[:2] == ["squeue", "--json"]
    assert squeue_argv(json=False)[:3] == ["squeue", "--noheader", "--array"]
    assert sacct_argv(["1", "2_3"])[-1] == "--jobs=1,2_3"


def test_squeue_json_skips_one_malformed_entry_and_keeps_the_rest(caplog):
    text = """{"jobs": [{"job_id": "not-a-number", "job_state": "RUNNING"},
      {"job_id": 8, "job_state": "RUNNING", "name": "a|b\\nc\\td\\u00e9", "comment": "x\\n1|RUNNING", "user_name": "dan"},
      {"job_id": 9, "job_state": "PENDING", "user_name": "eve"}]}"""
    jobs = parse_squeue(text)
    assert [(j.job_id, j.name) for j in jobs] == [("8", "a|b\nc\tdé"), ("9", "")]
    assert "not-a-number" in caplog.text
    assert [j.job_id for j in parse_squeue(text, user="eve")] == ["9"]
