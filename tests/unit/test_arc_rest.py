"""The rest transport's pure part: sbatch options and #SBATCH lines -> slurmrestd job properties."""

import pytest

from scip_jupyter.arc.rest import SbatchOptionError, SlurmToken, parse_options, sbatch_request, script_directives

DASK_SCRIPT = """#!/usr/bin/env bash

#SBATCH -J scip-dask-worker-a-default
#SBATCH -e /logs/%x-%j.err
#SBATCH -o /logs/%x-%j.out
#SBATCH -p cpu
#SBATCH -A def-demo
#SBATCH -n 1
#SBATCH --cpus-per-task=1
#SBATCH --mem=245M
#SBATCH -t 00:20:00
#SBATCH --comment=scip.ca:user=a,server=
#SBATCH --gpus-per-node=h100:1
#SBATCH --mem-per-gpu=4G
export X=1
#SBATCH --not-read-after-a-command
python -m distributed.cli.dask_worker tls://127.0.0.1:1
"""


def test_dask_jobqueue_script_becomes_job_properties():
    body = sbatch_request(["sbatch", "--parsable", "--array=0-31%4"], DASK_SCRIPT, {"PATH": "/bin"}, "/home/a")
    job = body["job"]
    assert job == {
        "current_working_directory": "/home/a", "environment": {"PATH": "/bin"},
        "name": "scip-dask-worker-a-default", "standard_error": "/logs/%x-%j.err", "standard_output": "/logs/%x-%j.out",
        "partition": "cpu", "account": "def-demo", "tasks": "1", "cpus_per_task": "1", "memory_per_node": "245M",
        "time_limit": "00:20:00", "comment": "scip.ca:user=a,server=", "gpus_per_node": "h100:1",
        "memory_per_gpu": "4G", "array": "0-31%4",
    }  # fmt: skip
    assert body["script"] == DASK_SCRIPT


def test_command_line_wins_over_script_and_wrap_becomes_the_script():
    body = sbatch_request(["sbatch", "-J", "cli", "--wrap=sleep 1"], "#!/bin/sh\n#SBATCH -J script\n", {}, "/")
    assert body["job"]["name"] == "cli" and body["script"] == "#!/bin/sh\nsleep 1\n"


@pytest.mark.parametrize("argv, where", [(["--uid=0"], "command line"), (["-X"], "command line"), (["--mem"], "needs a value")])
def test_unknown_or_incomplete_options_are_refused_by_name(argv, where):
    with pytest.raises(SbatchOptionError, match=where):
        parse_options(argv, "sbatch command line")


def test_unknown_directive_in_script_is_refused_not_dropped():
    with pytest.raises(SbatchOptionError, match="#SBATCH line: sbatch option --uid"):
        sbatch_request(["sbatch"], "#!/bin/sh\n#SBATCH --uid=0\ntrue\n", {}, "/")


def test_directives_stop_at_the_first_command():
    assert script_directives(DASK_SCRIPT)[-1] == "--mem-per-gpu=4G"


def test_token_repr_never_shows_the_token():
    assert "secret" not in repr(SlurmToken("a", "secret", 1.0))
