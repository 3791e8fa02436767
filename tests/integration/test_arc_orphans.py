"""No orphaned Slurm jobs, on the real local Slurm with real Jupyter servers and a real hub.

* Server side: a Jupyter server (single-user style, as the unprivileged
  `scip-user`, with the scip_jupyter.server extension) whose kernel starts an
  ARCCluster on Slurm; the kernel is `kill -9`ed, the server gets SIGTERM, and
  within 60 s no job of that server remains in `squeue` — cancelled by the
  server's shutdown hook (the jobs end CANCELLED, and the server log names them).
* `/scip/api/arc/jobs`: authenticated list with states; cancel only this server's jobs.
* Hub side: the post_stop_hook cancels leftovers by tag when a server stops, and
  `scip-jupyter arc reconcile --hub` cancels jobs tagged for hub users whose server
  is not running, leaving jobs of running servers and of non-hub users alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from scip_jupyter.arc.tags import JobTags
from tests.fixtures.common import ROOT, VENV_BIN, free_port, is_root, wait_for_port

pytestmark = pytest.mark.slurm
RUN_AS = "scip-user"
GONE_WITHIN = 60  # seconds: the bound for "no job of that server remains"


# ------------------------------------------------------------------ a Jupyter server as scip-user


@dataclass
class Server:
    url: str
    token: str
    user: str
    name: str
    home: Path
    proc: subprocess.Popen
    log: Path

    def api(self, method: str, path: str, auth: bool = True, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"} if auth else {}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM (runuser forwards it to the server), as a hub or systemd would stop it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                pytest.fail(f"jupyter server did not stop within {timeout}s of SIGTERM:\n{self.log_text()[-3000:]}")
        return self.proc.returncode


def _as_user(argv: list[str], account: str = RUN_AS) -> list[str]:
    return ["runuser", "-u", account, "--", *argv] if is_root() else argv


@pytest.fixture
def jupyter_server(slurm_cluster):
    """A factory: start_server(user, server) -> Server (stopped and cleaned up at the end)."""
    started: list[Server] = []
    parent = ROOT / ".state"
    parent.mkdir(exist_ok=True)

    def start(user: str, name: str, *extra: str) -> Server:
        home = Path(tempfile.mkdtemp(prefix="test-arc-orphans-", dir=parent))
        os.chmod(home, 0o755)
        if is_root():
            shutil.chown(home, RUN_AS, RUN_AS)
        port, token = free_port(), uuid.uuid4().hex
        env = {
            "PATH": f"{VENV_BIN}:/usr/bin:/bin",
            "HOME": str(home),
            "SLURM_CONF": str(slurm_cluster.conf),
            "SCIP_ARC_REGISTRY": str(home / "arc-jobs.sqlite"),
            # what JupyterHub sets in a single-user server: the tags of every job come from these
            "JUPYTERHUB_USER": user,
            "JUPYTERHUB_SERVER_NAME": name,
        }
        cmd = _as_user(["env", *(f"{k}={v}" for k, v in env.items()), str(VENV_BIN / "jupyter"), "server",
                        "--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
                        f"--ServerApp.root_dir={home}", "--SCIPServerExtension.shutdown_timeout=30", *extra])  # fmt: skip
        log = home.parent / f"{home.name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=home, start_new_session=True)
        server = Server(f"http://127.0.0.1:{port}", token, user, name, home, proc, log)
        started.append(server)
        try:
            wait_for_port(port, timeout=60, what="jupyter server")
        except BaseException:
            print(server.log_text())
            raise
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.stop()
        for job_id in slurm_cluster.job_ids(comment_contains=f"user={server.user},server={server.name}"):
            slurm_cluster.run("scancel", job_id, check=False)
        if (ROOT / "test-artifacts").is_dir():
            shutil.copy(server.log, ROOT / "test-artifacts" / f"jupyter-{server.user}-{server.name}.log")
        shutil.rmtree(server.home, ignore_errors=True)
        server.log.unlink(missing_ok=True)


# ------------------------------------------------------------------ kernel messaging over the websocket


async def execute(server: Server, kernel_id: str, code: str, timeout: float = 240) -> str:
    """Run code in a kernel through the server's websocket; returns its stdout (fails on an error)."""
    ws_url = server.url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    conn = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {server.token}"}))
    msg_id, out, error = uuid.uuid4().hex, [], None
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            while True:
                raw = await conn.read_message()
                if raw is None:
                    pytest.fail(f"kernel websocket closed:\n{server.log_text()[-2000:]}")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    error = "\n".join(msg["content"]["traceback"])
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    break
    finally:
        conn.close()
    if error:
        pytest.fail(f"kernel code failed:\n{error}\n{''.join(out)}")
    return "".join(out)


def server_jobs_in_queue(slurm_cluster, user: str, name: str) -> list[str]:
    return slurm_cluster.job_ids(comment_contains=f"user={user},server={name}")


def final_states(slurm_cluster, job_ids: set[str]) -> dict[str, str]:
    """State of each job (array tasks included) while Slurm still remembers it (MinJobAge)."""
    out = slurm_cluster.run("squeue", "-h", "-r", "--states=all", "-o", "%i|%A|%T")
    states = {}
    for line in out.splitlines():
        job_id, array_id, state = line.split("|")
        base = job_id.split("_")[0]
        if base in job_ids or job_id in job_ids:
            states[job_id] = state
    return states


def wait_gone(slurm_cluster, user: str, name: str, within: float = GONE_WITHIN) -> list[str]:
    deadline = time.monotonic() + within
    left = server_jobs_in_queue(slurm_cluster, user, name)
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = server_jobs_in_queue(slurm_cluster, user, name)
    return left


def sbatch_as_user(slurm_cluster, comment: str, hold: bool = True, account: str = RUN_AS) -> str:
    argv = _as_user(["sbatch", "--parsable", f"--comment={comment}", "--job-name=h2-tagged", "-o", "/dev/null",
                     "-D", "/tmp", "--time=00:05:00", *(["--hold"] if hold else []), "--wrap", "sleep 300"], account)  # fmt: skip
    return slurm_cluster.run(*argv).strip()


# ------------------------------------------------------------------ server side


KERNEL_START_CLUSTER = """
import os
from distributed import Client
from scip_jupyter.arc import ARCCluster
cluster = ARCCluster("local-slurm", walltime="00:10:00")
cluster.scale(2)
client = Client(cluster)
client.wait_for_workers(2, timeout=180)
print("WORKERS", len(client.scheduler_info()["workers"]))
print("PID", os.getpid())
"""


def test_killed_kernel_and_stopped_server_leave_no_job(jupyter_server, slurm_cluster):
    user, name = "h2-orphans", "kill9"
    server = jupyter_server(user, name)
    kernel = server.api("POST", "/api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    out = asyncio.run(execute(server, kernel.json()["id"], KERNEL_START_CLUSTER))
    assert "WORKERS 2" in out, out
    pid = int(out.split("PID", 1)[1].split()[0])

    listed = server.api("GET", "/scip/api/arc/jobs").json()
    assert {j["phase"] for j in listed["jobs"]} <= {"running", "pending"} and listed["jobs"], listed
    assert {j["tags"]["server"] for j in listed["jobs"]} == {name}
    before = set(server_jobs_in_queue(slurm_cluster, user, name))
    assert len(before) == 2, before  # two workers: two array tasks of ONE array job
    array_ids = {j.split("_")[0] for j in before}
    assert len(array_ids) == 1

    os.kill(pid, signal.SIGKILL)  # the kernel dies without closing its cluster
    assert set(server_jobs_in_queue(slurm_cluster, user, name)) == before  # ...so its jobs are still there
    server.stop()  # runuser passes SIGTERM on, then ends by the same signal

    assert wait_gone(slurm_cluster, user, name) == []
    log = server.log_text()
    assert f"cancelled 1 Slurm job(s) of {user}/{name}" in log, log[-3000:]
    assert array_ids.pop() in log.split("cancelled 1 Slurm job(s)")[1].splitlines()[0]
    states = final_states(slurm_cluster, {j.split("_")[0] for j in before})
    assert states and set(states.values()) == {"CANCELLED"}, states  # ended by us, not by the workers' own timeout


def test_jobs_endpoint_lists_and_cancels_only_this_servers_jobs(jupyter_server, slurm_cluster):
    user, name = "h2-orphans", "api"
    server = jupyter_server(user, name, "--ARCServerSettings.presets=local-slurm")
    mine = sbatch_as_user(slurm_cluster, f"scip.ca:user={user},server={name}")
    other = sbatch_as_user(slurm_cluster, f"scip.ca:user={user},server=another")
    try:
        assert server.api("GET", "/scip/api/arc/jobs", auth=False).status_code == 403
        assert server.api("DELETE", f"/scip/api/arc/jobs/{mine}", auth=False).status_code == 403

        body = server.api("GET", "/scip/api/arc/jobs").json()
        assert body["errors"] == []
        (job,) = body["jobs"]  # found by its tags; the other server's job is not listed
        assert (job["job_id"], job["phase"], job["reason"], job["preset"]) == (mine, "pending", "JobHeldUser", "local-slurm")
        assert job["reason_text"].startswith("held by its owner")

        bad = server.api("DELETE", "/scip/api/arc/jobs/12;rm")
        assert bad.status_code == 400 and "job_id" in bad.json()["message"]
        refused = server.api("DELETE", f"/scip/api/arc/jobs/{other}")
        assert refused.status_code == 404, refused.text
        bad_action = server.api("POST", f"/scip/api/arc/jobs/{mine}", json={"action": "<script>"})
        assert bad_action.status_code == 400 and "allowed: 'cancel'" in bad_action.json()["message"]
        assert {mine, other} <= set(slurm_cluster.job_ids())

        done = server.api("POST", f"/scip/api/arc/jobs/{mine}", json={"action": "cancel"})
        assert done.status_code == 200 and done.json() == {"cancelled": mine}
        assert mine not in slurm_cluster.job_ids() and other in slurm_cluster.job_ids()
        (job,) = server.api("GET", "/scip/api/arc/jobs").json()["jobs"]
        assert job["phase"] == "cancelled"
    finally:
        slurm_cluster.run("scancel", other, check=False)
        slurm_cluster.run("scancel", mine, check=False)


# ------------------------------------------------------------------ hub side


def run_reconcile_cli(hub, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JUPYTERHUB_API_URL": hub.api_url, "JUPYTERHUB_API_TOKEN": hub.token}
    return subprocess.run([str(VENV_BIN / "scip-jupyter"), "arc", "reconcile", "--hub", "--preset", "local-slurm", *args],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.hub
def test_hub_cancels_leftovers_on_stop_and_reconciles_stopped_servers(hub, slurm_cluster):
    user = "researcher1"
    deadline = time.monotonic() + 60  # the reconcile service runs once right after the hub starts
    while "reconcile local-slurm:" not in hub.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"the reconcile service did not run at hub start:\n{hub.log_tail()}"
        time.sleep(0.5)
    r = hub.api("POST", f"/users/{user}/server", json={"profile": "cpu-small"})
    assert r.status_code in (201, 202), r.text
    hub.wait_for_server(user)
    # the running (unnamed, "") server's job, submitted as the person's own account as their server would
    account = f"jupyter-{user}" if is_root() else RUN_AS
    running = sbatch_as_user(slurm_cluster, JobTags(user=user, server="").comment(), account=account)
    # a server that does not run; submitted as the person's account (reconcile checks the owner too)
    stopped = sbatch_as_user(slurm_cluster, f"scip.ca:user={user},server=h2-gone", account=account)
    outsider = sbatch_as_user(slurm_cluster, "scip.ca:user=h2-not-a-hub-user,server=")
    # someone else's job carrying researcher1's tags: stopping researcher1's server must not cancel it
    forged = sbatch_as_user(slurm_cluster, JobTags(user=user, server="").comment()) if is_root() else None
    try:
        dry = run_reconcile_cli(hub, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"would cancel {stopped} of stopped server {user}/h2-gone" in dry.stdout
        assert slurm_cluster.job_ids(comment_contains=f"user={user},server=h2-gone") == [stopped]

        done = run_reconcile_cli(hub)
        assert done.returncode == 0, done.stderr
        queue = slurm_cluster.job_ids()
        assert stopped not in queue  # its server does not run: cancelled
        assert running in queue  # its server runs: kept
        assert outsider in queue  # not one of this hub's users: not this hub's to cancel

        hub.stop_server(user)  # post_stop_hook: cancel what is tagged for researcher1/default
        deadline = time.monotonic() + GONE_WITHIN
        while running in slurm_cluster.job_ids() and time.monotonic() < deadline:
            time.sleep(1)
        assert running not in slurm_cluster.job_ids(), hub.log_tail()
        assert outsider in slurm_cluster.job_ids()
        if forged:
            assert forged in slurm_cluster.job_ids()  # tags alone never make a job researcher1's
        assert f"ARC: cancelled leftover jobs of {user}" in hub.log_path.read_text(errors="replace")
    finally:
        for job in (running, stopped, outsider, forged):
            if job is None:
                continue
            slurm_cluster.run("scancel", job, check=False)
        hub.stop_server(user)
