"""User-chosen job names and comments cannot break job-state parsing or hub clean-up (real local Slurm).

Jobs whose names and comments hold `|`, newlines, tabs, unicode and forged tag
lines are submitted next to one honestly tagged job; the listing must show
each job once with its exact text, nobody's tags are forged, and the hub's
clean-up of the honest server still cancels exactly its job.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from scip_jupyter.arc.hub_hooks import ARCCleanup, leftovers_of
from scip_jupyter.arc.states import parse_squeue, squeue_argv
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import LocalTransport

pytestmark = pytest.mark.slurm


def _sbatch(transport, name: str, comment: str) -> str:
    argv = ["sbatch", "--parsable", "--begin=now+1hour", "--output=/dev/null", f"--job-name={name}", f"--comment={comment}", "--wrap=sleep 600"]
    return transport.run_sync(argv).strip().split(";")[0]


def test_crafted_names_and_comments_do_not_shift_columns_or_forge_tags(slurm_cluster):
    transport = LocalTransport("local-slurm", slurm_conf=slurm_cluster.conf)
    victim = f"victim-{uuid.uuid4().hex[:6]}"
    forged_line = f"999999|RUNNING|None|N/A|0:01|1:00|w|root|cpu|1|{JobTags(user=victim, server='').comment()}"
    crafted = {
        "pipes": ("a|b|c|RUNNING|x", "x|y|z"),
        "newline": ("line1\nline2", "c1\n" + forged_line),
        "tabs": ("tab\there", "\t|\t"),
        "unicode": ("名前-é-🚀", "scip.ca:user=é,server=ü|x"),
    }
    honest = JobTags(user=f"alice+lab@{victim}", server="default")
    twin = JobTags(user=f"alice_lab@{victim}", server="")  # collided before tags became injective
    ids = {}
    try:
        for key, (name, comment) in crafted.items():
            ids[key] = _sbatch(transport, name, comment)
        ids["honest"] = _sbatch(transport, "scip-dask-worker-honest", honest.comment())
        ids["twin"] = _sbatch(transport, "scip-dask-worker-twin", twin.comment())

        jobs = {j.job_id: j for j in parse_squeue(transport.run_sync(squeue_argv()))}
        for key, (name, comment) in crafted.items():
            job = jobs[ids[key]]
            assert (job.name, job.comment) == (name, comment), key
        assert "999999" not in jobs
        assert not [j for j in jobs.values() if j.tags and j.tags.user == victim]
        assert jobs[ids["honest"]].tags == honest and jobs[ids["twin"]].tags == twin

        assert leftovers_of(list(jobs.values()), honest.user, "default") == [ids["honest"]]
        cleanup = ARCCleanup(transport_for=lambda preset: transport)
        done = asyncio.run(cleanup.cancel_server_jobs(honest.user, "default"))
        assert done == {"local-slurm": [ids["honest"]]}
        left = {j.job_id for j in parse_squeue(transport.run_sync(squeue_argv())) if not j.phase.finished}
        assert ids["honest"] not in left and ids["twin"] in left
    finally:
        transport.run_sync(["scancel", *ids.values()]) if ids else None
