"""sacct read two ways: `--json` and `--parsable` (named fields, a fresh delimiter per read) give
the same jobs, and text a job's owner chose (comments with `|`, newlines, tabs, unicode, a
forged record) never shifts a column or makes a record. The real-Slurm half of this is
tests/integration/test_slurm_accounting.py."""

from __future__ import annotations

import datetime as dt
import doctest
import json

import pytest

from scip_jupyter.allocations import usage_sacct
from scip_jupyter.allocations.usage_sacct import (
    SACCT_FIELDS, _local, lacks_json, new_delimiter, parse_sacct_json, parse_sacct_parsable, parse_squeue_comments,
    sacct_parsable_argv, squeue_comments_argv,
)
from scip_jupyter.arc.transport import SlurmCommandError

T0 = dt.datetime(2026, 12, 1, 9)
TAGS = "scip.ca:user=ana,server=gpu"
# A comment forging a whole record after a newline, with the `|` of --parsable2 and a guessed delimiter.
FORGED = "x|y\n99|root|def-other|COMPLETED|2026-12-01T09:00:00|2026-12-01T19:00:00|36000|gres/gpu:h100=8|" + TAGS
COMMENTS = [TAGS, "", "a|b\tc\nd", "ünïcødé 名前 ✓", FORGED, "|x|\n|y|", " spaces kept "]


def job(job_id: int, comment: str, *, task: int | None = None, state: str = "COMPLETED", start: int = 0,
        elapsed: int = 3600, tres: list[tuple[str, int]] = (("gpu", 1), ("gpu:h100", 1)), user: str = "ana",
        account: str = "def-lab") -> dict:
    """One job as `sacct --json` (Slurm 22.05) prints it."""
    begin = int(T0.replace(tzinfo=dt.timezone.utc).timestamp()) + start
    running = state == "RUNNING"
    return {
        "job_id": job_id + (task or 0), "array": {"job_id": job_id if task is not None else 0, "task_id": task},
        "user": user, "account": account, "comment": {"job": comment}, "state": {"current": state},
        "time": {"start": begin, "end": 0 if running else begin + elapsed, "elapsed": elapsed},
        "tres": {"allocated": [{"type": "gres", "name": n, "count": c} for n, c in tres]},
    }


def as_parsable(doc: dict, delimiter: str) -> str:
    """The same jobs as `sacct_parsable_argv(..., delimiter)` prints them (local times, `State` words)."""
    out = []
    for j in doc["jobs"]:
        t = j["time"]
        array = j["array"]
        job_id = f"{array['job_id']}_{array['task_id']}" if array["job_id"] else str(j["job_id"])
        start = dt.datetime.fromtimestamp(t["start"], dt.timezone.utc).replace(tzinfo=None)
        end = dt.datetime.fromtimestamp(t["end"], dt.timezone.utc).replace(tzinfo=None) if t["end"] else None
        state = j["state"]["current"]
        tres = ",".join(["billing=1", "cpu=1"] + [f"gres/{x['name']}={x['count']}" for x in j["tres"]["allocated"]]
                        + ["mem=256M", "node=1"])
        fields = [job_id, j["user"], j["account"], "CANCELLED by 0" if state == "CANCELLED" else state,
                  _local(start), _local(end) if end else "Unknown", str(t["elapsed"]), tres,
                  j["comment"]["job"] or ""]
        assert len(fields) == len(SACCT_FIELDS)
        out.append(delimiter.join(fields) + delimiter + "\n")
    return "".join(out)


DOC = {"jobs": [
    *(job(100 + i, c, start=60 * i) for i, c in enumerate(COMMENTS)),
    job(200, TAGS, task=0, tres=[("gpu", 2), ("gpu:h100_1g.10gb", 2)]),
    job(200, TAGS, task=1, state="CANCELLED", elapsed=120),
    job(300, TAGS, state="RUNNING", elapsed=30),
    job(301, TAGS, tres=[("gpu", 1)]),
    job(302, TAGS, tres=[]),
]}


def test_json_and_parsable_reads_give_the_same_jobs():
    delimiter = new_delimiter()
    from_json = parse_sacct_json(json.dumps(DOC))
    from_parsable = parse_sacct_parsable(as_parsable(DOC, delimiter), delimiter)
    assert len(from_json) == len(DOC["jobs"]) == 12
    assert from_parsable == from_json  # every field of every job, comments to the byte
    by_id = {j.job_id: j for j in from_parsable}
    assert by_id["200_0"].gpus == {"h100_1g.10gb": 2} and by_id["301"].gpus == {"": 1} and by_id["302"].gpus == {}
    assert by_id["300"].end is None and by_id["300"].open and by_id["200_1"].state == "CANCELLED"
    assert by_id["104"].comment == FORGED and "99" not in by_id  # the forged record is a comment, not a job


@pytest.mark.parametrize("comment", COMMENTS)
def test_a_crafted_comment_stays_in_its_own_column(comment):
    doc = {"jobs": [job(1, TAGS), job(2, comment, user="bob", account="def-bob"), job(3, TAGS, user="cy")]}
    delimiter = new_delimiter()
    jobs = parse_sacct_parsable(as_parsable(doc, delimiter), delimiter)
    assert [(j.job_id, j.user, j.account, j.comment) for j in jobs] == [
        ("1", "ana", "def-lab", TAGS), ("2", "bob", "def-bob", comment), ("3", "cy", "def-lab", TAGS)]


def test_a_record_of_another_width_is_skipped_and_the_others_kept():
    delimiter = new_delimiter()
    good = as_parsable({"jobs": [job(1, TAGS), job(4, TAGS)]}, delimiter).split("\n")
    text = good[0] + "\n" + f"2{delimiter}cut short{delimiter}\n" + "\n".join(good[1:])
    assert [j.job_id for j in parse_sacct_parsable(text, delimiter)] == ["1", "4"]


def test_each_read_has_its_own_delimiter_and_asks_for_no_job_name():
    delimiters = {new_delimiter() for _ in range(50)}
    assert len(delimiters) == 50 and all(len(d) == 18 for d in delimiters)
    argv = sacct_parsable_argv(T0, T0 + dt.timedelta(days=1), "|d|")
    assert "--parsable" in argv and "--noheader" in argv and "--json" not in argv
    assert "--format=" + ",".join(SACCT_FIELDS) in argv and not any("JobName" in a for a in argv)
    assert SACCT_FIELDS[-1] == "Comment"


def test_squeue_comments_keep_newlines_and_bars():
    delimiter = new_delimiter()
    assert squeue_comments_argv(delimiter)[-1] == f"%i{delimiter}%k{delimiter}"
    text = "".join(f"{i}{delimiter}{c}{delimiter}\n" for i, c in (("5_1", TAGS), ("6", FORGED), ("7", "(null)")))
    assert parse_squeue_comments(text, delimiter) == {"5_1": TAGS, "6": FORGED, "7": ""}


@pytest.mark.parametrize("failure, no_json", [
    (SlurmCommandError("c", ["sacct", "--json"], 1, "sacct: unrecognized option '--json'\nTry \"sacct --help\""), True),
    (SlurmCommandError("c", ["sacct", "--json"], 1, "sacct: fatal: JSON plugin loading failed: Plugin not found"), True),
    (SlurmCommandError("c", ["sacct", "--json"], 1, "sacct: error: Unable to load serializer plugin"), True),
    (SlurmCommandError("c", ["sacct", "--json"], 1, "sacct: error: Problem talking to the database"), False),
    (SlurmCommandError("c", ["sacct", "--json"], 1, "sacct: error: Invalid user id: 4321"), False),
    (ValueError("sacct --json did not print a JSON document with 'jobs'"), True),
])
def test_which_failures_mean_sacct_has_no_json(failure, no_json):
    assert lacks_json(failure) is no_json


def test_usage_sacct_doctests_pass():
    result = doctest.testmod(usage_sacct)
    assert result.attempted >= 10 and result.failed == 0
