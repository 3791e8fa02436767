"""In-job mode is secured (real local Slurm): the scheduler speaks TLS only, with the run's own
temporary credentials (mutual), on the node's address, with no dashboard; the run folder and its
key are private to the account. A peer without the run's certificate cannot connect."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from scip_jupyter.arc.injob import TLS_KEY, InJobRun
from scip_jupyter.arc.presets import NetworkConfig, PresetFile, load_default_presets
from scip_jupyter.arc.registry import JobRegistry
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import LocalTransport

pytestmark = pytest.mark.slurm


def probe(client):
    """Runs inside the job (task 1): what the scheduler listens on, and whether strangers get in."""
    import distributed
    from distributed.security import Security

    address = client.scheduler.address
    def scheduler_side(dask_scheduler):
        listen = dask_scheduler.listen_address
        http = dask_scheduler.http_server
        return (list(listen) if isinstance(listen, (list, tuple)) else [listen]), (http.address, http.port)

    info = client.run_on_scheduler(scheduler_side)
    import ssl
    import urllib.request

    http_host, http_port = info[1]
    http = {}
    for scheme in ("http", "https"):
        try:
            ctx = ssl._create_unverified_context() if scheme == "https" else None
            with urllib.request.urlopen(f"{scheme}://{http_host}:{http_port}/health", timeout=5, context=ctx) as r:
                http[scheme] = r.status
        except urllib.error.HTTPError as exc:
            http[scheme] = exc.code
        except Exception as exc:
            http[scheme] = type(exc).__name__
    refused = {}
    for label, kwargs in (("plain", {}), ("other-certificate", {"security": Security.temporary()}),
                          ("tcp", {"address": address.replace("tls://", "tcp://")})):
        try:
            target = kwargs.pop("address", address)
            with distributed.Client(target, timeout=5, **kwargs):
                refused[label] = False
        except Exception:
            refused[label] = True
    workers = [w for w in client.scheduler_info()["workers"]]
    return {"address": address, "listen": info[0], "http_host": http_host, "http": http, "refused": refused, "workers": workers,
            "sum": sum(client.gather(client.map(lambda x: x + 1, range(4))))}


def test_injob_scheduler_requires_the_runs_tls_credentials(slurm_cluster, tmp_path):
    local = load_default_presets().get("local-slurm")
    presets = PresetFile(clusters=[local.model_copy(update={"name": "local-injob", "network": NetworkConfig(mode="in-job")})])
    run = InJobRun(
        probe, preset="local-injob", presets=presets, transport=LocalTransport("local-injob", slurm_conf=str(slurm_cluster.conf)),
        registry=JobRegistry(tmp_path / "jobs.sqlite"), user="h2-injob", tags=JobTags(user="h2-injob", server="tls"),
        base_dir=str(tmp_path / "runs"), walltime="00:10:00", workers=1,
        scheduler_options={"dashboard_address": ":0"},  # asking for a dashboard does not open one
    )  # fmt: skip
    try:
        run.submit()
        out = run.result(timeout=300)
    finally:
        if run.job_id:
            slurm_cluster.run("scancel", run.job_id, check=False)
    assert out["sum"] == 10
    assert out["address"].startswith("tls://") and all(a.startswith("tls://") for a in out["listen"])
    assert not any("0.0.0.0" in a or "[::]" in a for a in out["listen"])
    assert out["http_host"] not in ("0.0.0.0", "::", "")  # the node's address only
    assert out["http"]["http"] != 200 and out["http"]["https"] == 404  # TLS only, and nothing served
    assert out["refused"] == {"plain": True, "other-certificate": True, "tcp": True}
    assert all(w.startswith("tls://") for w in out["workers"])
    folder = Path(run.spec.run_dir)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / TLS_KEY).stat().st_mode) == 0o600
