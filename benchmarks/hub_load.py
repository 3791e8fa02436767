"""Hub under load (in the spirit of hubtraf): our hub vs stock JupyterHub with the stock spawner, same run.

N simulated people arrive at `--rate` per second. Each logs in through the login
form, spawns through the spawn form with a profile, calls their server's API
through the proxy, and stops it; every step has a deadline (`--deadline`).
Traffic goes only to 127.0.0.1; counts and time are bounded.

Two modes, each against both hubs (ours first, then stock, same machine, same run):

(a) `--people` people with a minimal single-user stand-in (benchmarks/standin_server.py:
    a small HTTP process that answers the hub's server check and `/api/status`), so
    the hub is what is measured: throughput, p50/p95 step latency, failures;
(b) `--real` people with real JupyterLab servers end to end, each running one
    cell in a kernel (token from the hub API, kernel over the server's REST and
    websocket API).

Ours is `scip-jupyter up` (hub_config/local.py: SCIPLocalSpawner with catalog
validation, allocation ledger, courses), with every server run as `scip-user`
(no per-person accounts for hundreds of simulated people). Stock is `jupyterhub`
with LocalProcessSpawner (also as `scip-user`), SharedPasswordAuthenticator and
no options form. The hub processes' CPU seconds and peak memory are sampled
from /proc. The last line is the summary:

    slowdown_500=<ours/stock wall, mode a> failures_500=<ours> p95_ms_500=<ours> slowdown_real=<ours/stock, mode b> failures_real=<ours>

Run: .venv/bin/python benchmarks/hub_load.py [--people 500] [--rate 10] [--real 20] [--real-rate 0.5]
(needs root, so the hub can run servers as scip-user; smaller N for a busy machine)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from scip_jupyter.embedded import free_port  # one place picks a free local port

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
PY = BIN / "python"
STANDIN = ROOT / "benchmarks" / "standin_server.py"
RUN_AS = "scip-user"
STEPS = ("login", "spawn", "api", "stop")

OURS_CONFIG = """\
load_subconfig({local!r})
c.Authenticator.allowed_users = set()
c.Authenticator.allow_all = True
c.SCIPLocalSpawner.run_as = {run_as!r}
c.SCIPLocalSpawner.create_accounts = False
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.last_activity_interval = 3600
# the simulated people are students (the catalog's cpu-small is theirs), as a course's would be
_students = c.JupyterHub.load_groups.setdefault("students", {{"users": []}})
_students["users"] = sorted(set(_students.get("users", [])) | {{f"{prefix}{{i}}" for i in range({people})}})
{standin}
"""
STOCK_CONFIG = """\
import os, pwd
from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid

class StockAsOneAccount(LocalProcessSpawner):
    # the stock spawner, with every server run as one existing account (no accounts for simulated people)
    def make_preexec_fn(self, name):
        return set_user_setuid({run_as!r}) if os.geteuid() == 0 else None

    def user_env(self, env):
        home = os.path.join({homes!r}, self.user.name)
        os.makedirs(home, exist_ok=True)
        acct = pwd.getpwnam({run_as!r})
        os.chown(home, acct.pw_uid, acct.pw_gid)
        env.update(USER=acct.pw_name, HOME=home)
        return env

    def get_env(self):
        env = super().get_env()
        self.notebook_dir = os.path.join({homes!r}, self.user.name)
        return env

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {password!r}
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = StockAsOneAccount
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.last_activity_interval = 3600
c.JupyterHub.cleanup_servers = True
c.JupyterHub.services = [{{"name": "bench", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["bench"]}}]
{standin}
"""
STANDIN_OURS = f"c.SCIPLocalSpawner.cmd = [{str(PY)!r}, \"-S\", {str(STANDIN)!r}]"
STANDIN_STOCK = f"c.Spawner.cmd = [{str(PY)!r}, \"-S\", {str(STANDIN)!r}]"


@dataclass
class Hub:
    name: str
    proc: subprocess.Popen
    url: str
    token: str
    password: str
    state: Path
    samples: list[tuple[float, int]] = field(default_factory=list)  # (cpu seconds, rss bytes)


def _cpu_rss(pid: int) -> tuple[float, int]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return (int(stat[11]) + int(stat[12])) / ticks, rss
    except (OSError, IndexError, ValueError):
        return 0.0, 0


def start_hub(kind: str, real: bool, workdir: Path, prefix: str, people: int) -> Hub:
    state = Path(tempfile.mkdtemp(prefix=f"load-{kind}-", dir=workdir))
    os.chmod(state, 0o755)
    port, token = free_port(), secrets.token_hex(24)
    env = {**os.environ, "SCIP_ADMIN_TOKEN": token}
    if kind == "ours":
        config = state / "bench_config.py"
        config.write_text(OURS_CONFIG.format(local=str(ROOT / "hub_config" / "local.py"), run_as=RUN_AS,
                                             standin="" if real else STANDIN_OURS, prefix=prefix, people=people))
        cmd = [str(BIN / "scip-jupyter"), "up", "--port", str(port), "--state-dir", str(state / "hub"),
               "--config", str(config), "--slurm", "off"]
        password = None
    else:
        password = secrets.token_urlsafe(12)
        homes = state / "homes"
        homes.mkdir()
        os.chmod(homes, 0o755)
        config = state / "stock_config.py"
        config.write_text(STOCK_CONFIG.format(
            run_as=RUN_AS, homes=str(homes), port=port, hub_port=free_port(), proxy_port=free_port(),
            chp=str(ROOT / "node_modules" / ".bin" / "configurable-http-proxy"), state=str(state),
            password=password, token=token,
            standin=f"c.Spawner.cmd = [{str(BIN / 'jupyterhub-singleuser')!r}]" if real else STANDIN_STOCK,
        ))
        cmd = [str(BIN / "jupyterhub"), "-f", str(config)]
    log = open(state / "hub.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=state, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"{kind} hub exited: see {state / 'hub.log'}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
            import urllib.request

            with urllib.request.urlopen(url + "/hub/api/", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        sys.exit(f"{kind} hub did not answer: see {state / 'hub.log'}")
    if password is None:
        password = (state / "hub" / "private" / "demo-password").read_text().strip()
    return Hub(kind, proc, url, token, password, state)


def stop_hub(hub: Hub) -> None:
    if hub.proc.poll() is None:
        hub.proc.send_signal(signal.SIGTERM)
        try:
            hub.proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(hub.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    hub.proc.wait(10)


class StepFailed(Exception):
    pass


async def _person(hub: Hub, name: str, real: bool, deadline: float, times: dict[str, list[float]]) -> str | None:
    """One person's visit; returns None, or what failed ("spawn: 500 ...")."""
    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=deadline)
    step = "login"
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as s:
        try:
            t0 = time.monotonic()
            async with s.get(hub.url + "/hub/login") as r:
                await r.read()
            xsrf = next((c.value for c in jar if c.key == "_xsrf"), "")
            async with s.post(hub.url + "/hub/login", data={"username": name, "password": hub.password, "_xsrf": xsrf},
                              allow_redirects=False) as r:
                if r.status != 302:
                    raise StepFailed(f"{r.status}")
            times["login"].append(time.monotonic() - t0)
            xsrf = next((c.value for c in jar if c.key == "_xsrf"), xsrf)
            api_headers = {"X-XSRFToken": xsrf}

            step = "spawn"
            t0 = time.monotonic()
            # open the spawn page: ours shows the form (then it is posted with a profile); stock
            # JupyterHub has no form and starts the server on this GET, as a person would see it
            async with s.get(f"{hub.url}/hub/spawn/{name}", allow_redirects=False) as r:
                form = r.status == 200
                await r.read()
            if form:
                xsrf = next((c.value for c in jar if c.key == "_xsrf"), xsrf)
                api_headers = {"X-XSRFToken": xsrf}
                async with s.post(f"{hub.url}/hub/spawn/{name}", data={"profile": "cpu-small", "_xsrf": xsrf},
                                  allow_redirects=False) as r:
                    if r.status not in (302, 303):
                        raise StepFailed(f"{r.status} {(await r.text())[:120]}")
            while True:
                async with s.get(f"{hub.url}/hub/api/users/{name}", headers=api_headers) as r:
                    model = await r.json()
                server = (model.get("servers") or {}).get("", {})
                if server.get("ready"):
                    break
                if model.get("pending") is None and not server:
                    raise StepFailed("spawn failed (see the hub log)")
                if time.monotonic() - t0 > deadline:
                    raise StepFailed(f"not ready within the {deadline:g} s deadline")
                await asyncio.sleep(0.2)
            times["spawn"].append(time.monotonic() - t0)

            step = "api"
            t0 = time.monotonic()
            if real:
                await _run_a_cell(s, hub, name, api_headers)
            else:
                async with s.get(f"{hub.url}/user/{name}/api/status") as r:
                    if r.status != 200:
                        raise StepFailed(f"{r.status}")
                    await r.read()
            times["api"].append(time.monotonic() - t0)

            step = "stop"
            t0 = time.monotonic()
            async with s.delete(f"{hub.url}/hub/api/users/{name}/server", headers=api_headers) as r:
                if r.status not in (202, 204):
                    raise StepFailed(f"{r.status}")
            while True:
                async with s.get(f"{hub.url}/hub/api/users/{name}", headers=api_headers) as r:
                    model = await r.json()
                if not model.get("servers") and model.get("pending") is None:
                    break
                if time.monotonic() - t0 > deadline:
                    raise StepFailed(f"not stopped within the {deadline:g} s deadline")
                await asyncio.sleep(0.2)
            times["stop"].append(time.monotonic() - t0)
            return None
        except StepFailed as exc:
            return f"{step}: {exc}"
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            return f"{step}: {type(exc).__name__} {exc}"[:200]


async def _run_a_cell(s: aiohttp.ClientSession, hub: Hub, name: str, api_headers: dict) -> None:
    async with s.post(f"{hub.url}/hub/api/users/{name}/tokens", headers=api_headers,
                      json={"note": "load test", "expires_in": 600}) as r:
        if r.status != 201:
            raise StepFailed(f"token {r.status}")
        token = (await r.json())["token"]
    auth = {"Authorization": f"token {token}"}
    base = f"{hub.url}/user/{name}/api"
    async with s.post(f"{base}/kernels", headers=auth, json={"name": "python3"}) as r:
        if r.status not in (200, 201):
            raise StepFailed(f"kernel {r.status}")
        kernel = (await r.json())["id"]
    msg_id = secrets.token_hex(8)
    request = {"header": {"msg_id": msg_id, "username": name, "session": secrets.token_hex(8), "msg_type": "execute_request",
                          "version": "5.3"}, "parent_header": {}, "metadata": {}, "channel": "shell",
               "content": {"code": "sum(range(101))", "silent": False, "store_history": False, "user_expressions": {},
                           "allow_stdin": False}}
    result, replied, idle = None, False, False
    async with s.ws_connect(f"{base.replace('http', 'ws', 1)}/kernels/{kernel}/channels", headers=auth) as ws:
        await ws.send_str(json.dumps(request))
        async for msg in ws:
            data = json.loads(msg.data)
            if data.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = data["msg_type"]
            if kind == "execute_result":
                result = data["content"]["data"]["text/plain"]
            replied |= kind == "execute_reply"
            # the reply (shell) may come before the result (iopub): done once both said so
            idle |= kind == "status" and data["content"].get("execution_state") == "idle"
            if replied and idle:
                break
    async with s.delete(f"{base}/kernels/{kernel}", headers=auth) as r:
        await r.read()
    if result != "5050":
        raise StepFailed(f"cell gave {result!r}")


async def _sample(hub: Hub, stop: asyncio.Event) -> None:
    while not stop.is_set():
        hub.samples.append(_cpu_rss(hub.proc.pid))
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass
    hub.samples.append(_cpu_rss(hub.proc.pid))


async def run_mode(hub: Hub, people: int, rate: float, real: bool, deadline: float, prefix: str) -> dict:
    times: dict[str, list[float]] = {s: [] for s in STEPS}
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(_sample(hub, stop))
    t0 = time.monotonic()
    tasks = []
    for i in range(people):
        tasks.append(asyncio.ensure_future(_person(hub, f"{prefix}{i}", real, deadline, times)))
        await asyncio.sleep(1 / rate)
    outcomes = await asyncio.gather(*tasks)
    wall = time.monotonic() - t0
    stop.set()
    await sampler
    failures = [o for o in outcomes if o]
    every = sorted(t for s in STEPS for t in times[s])
    cpu = hub.samples[-1][0] - hub.samples[0][0] if hub.samples else 0.0
    return {
        "wall": wall, "failures": len(failures), "failure_examples": failures[:3],
        "throughput": (people - len(failures)) / wall if wall else 0.0,
        "p50_ms": 1000 * statistics.median(every) if every else float("nan"),
        "p95_ms": 1000 * every[int(0.95 * (len(every) - 1))] if every else float("nan"),
        "steps": {s: (1000 * statistics.median(v) if v else float("nan"),
                      1000 * sorted(v)[int(0.95 * (len(v) - 1))] if v else float("nan")) for s, v in times.items()},
        "hub_cpu_s": cpu, "hub_cpu_pct": 100 * cpu / wall if wall else 0.0,
        "hub_rss_mb": max((r for _, r in hub.samples), default=0) / 1e6,
    }


def _print(mode: str, kind: str, people: int, r: dict) -> None:
    steps = " ".join(f"{s}={p50:.0f}/{p95:.0f}ms" for s, (p50, p95) in r["steps"].items())
    print(f"[{mode}] {kind:5s} people={people} wall={r['wall']:.1f}s throughput={r['throughput']:.2f}/s "
          f"p50={r['p50_ms']:.0f}ms p95={r['p95_ms']:.0f}ms failures={r['failures']} steps(p50/p95): {steps} "
          f"hub_cpu={r['hub_cpu_s']:.1f}s ({r['hub_cpu_pct']:.0f}% of one core) hub_rss_peak={r['hub_rss_mb']:.0f}MB",
          flush=True)
    for example in r["failure_examples"]:
        print(f"[{mode}] {kind:5s}   failure: {example}", flush=True)


async def compare(args, mode: str, people: int, rate: float, real: bool, workdir: Path) -> tuple[dict, dict]:
    results = {}
    for kind in ("ours", "stock"):
        prefix = f"l{mode}{kind[0]}"
        hub = start_hub(kind, real, workdir, prefix, people)
        try:
            results[kind] = await run_mode(hub, people, rate, real, args.deadline, prefix=prefix)
        finally:
            stop_hub(hub)
        _print(mode, kind, people, results[kind])
    ratio = results["ours"]["wall"] / results["stock"]["wall"]
    print(f"[{mode}] ours/stock wall = {ratio:.3f}  (p95 ours/stock = "
          f"{results['ours']['p95_ms'] / results['stock']['p95_ms']:.3f})", flush=True)
    return results["ours"], results["stock"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, default=500, help="people in mode (a), with the stand-in server (default 500)")
    p.add_argument("--rate", type=float, default=10.0, help="arrivals per second in mode (a) (default 10)")
    p.add_argument("--real", type=int, default=20, help="people in mode (b), real JupyterLab servers (default 20)")
    p.add_argument("--real-rate", type=float, default=0.5, help="arrivals per second in mode (b) (default 0.5)")
    p.add_argument("--deadline", type=float, default=120.0, help="seconds each step may take (default 120)")
    p.add_argument("--keep", action="store_true", help="keep the hubs' state folders (logs) under .state/")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("hub_load: run as root (servers run as scip-user)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="hub-load-", dir=ROOT / ".state"))
    os.chmod(workdir, 0o755)
    try:
        a_ours, a_stock = asyncio.run(compare(args, "a", args.people, args.rate, False, workdir))
        b_ours, b_stock = asyncio.run(compare(args, "b", args.real, args.real_rate, True, workdir))
    finally:
        if args.keep:
            print(f"hub states and logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"slowdown_500={a_ours['wall'] / a_stock['wall']:.3f} failures_500={a_ours['failures']} "
          f"p95_ms_500={a_ours['p95_ms']:.0f} slowdown_real={b_ours['wall'] / b_stock['wall']:.3f} "
          f"failures_real={b_ours['failures']} people_a={args.people} people_real={args.real}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
