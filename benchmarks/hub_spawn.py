"""Spawn-to-ready: SCIPLocalSpawner vs JupyterHub's stock LocalProcessSpawner, same hub config.

Starts the embedded hub twice (`scip-jupyter up`, free ports, temporary state),
once as configured (SCIPLocalSpawner) and once with `spawner_class` switched to
LocalProcessSpawner through a config file that loads hub_config/local.py first.
In each, the hub user `scip-user` (a real Unix account, so the stock spawner can
run it without root) is spawned ROUNDS times through the REST API; each round is
timed from the POST until the hub reports the server ready. Then:

    spawn_ready_ours=<median s> spawn_ready_stock=<median s> ratio=<ours/stock>

Run: .venv/bin/python benchmarks/hub_spawn.py [rounds]   (as root or as scip-user's peer)
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from scip_jupyter.embedded import free_port  # noqa: E402  (one place picks a free local port)

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
USER = "scip-user"
STOCK_CONFIG = """\
load_subconfig({local!r})
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
"""


def start(state: Path, config: Path) -> tuple[subprocess.Popen, str, str]:
    port, token = free_port(), secrets.token_hex(24)
    log = open(state / "hub.log", "wb")
    proc = subprocess.Popen(
        [str(BIN / "scip-jupyter"), "up", "--port", str(port), "--state-dir", str(state / "hub"), "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "SCIP_ADMIN_TOKEN": token}, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/hub/api"
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"hub exited: see {state / 'hub.log'}")
        try:
            if requests.get(url + "/", timeout=2).ok:
                return proc, url, token
        except requests.RequestException:
            pass
        time.sleep(0.2)
    sys.exit("hub did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def spawn_times(url: str, token: str, rounds: int) -> list[float]:
    h = {"Authorization": f"token {token}"}
    requests.post(f"{url}/users/{USER}", headers=h, timeout=30)
    requests.post(f"{url}/groups/students/users", headers=h, json={"users": [USER]}, timeout=30)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = requests.post(f"{url}/users/{USER}/server", headers=h, json={"profile": "cpu-small"}, timeout=120)
        r.raise_for_status()
        while not requests.get(f"{url}/users/{USER}", headers=h, timeout=30).json()["servers"].get("", {}).get("ready"):
            time.sleep(0.05)
        times.append(time.perf_counter() - t0)
        requests.delete(f"{url}/users/{USER}/server", headers=h, timeout=60)
        while requests.get(f"{url}/users/{USER}", headers=h, timeout=30).json()["servers"]:
            time.sleep(0.1)
    return times


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    local = ROOT / "hub_config" / "local.py"
    results = {}
    (ROOT / ".state").mkdir(exist_ok=True)
    for name in ("ours", "stock"):
        state = Path(tempfile.mkdtemp(prefix=f"bench-hub-{name}-", dir=ROOT / ".state"))
        os.chmod(state, 0o711)
        config = local
        if name == "stock":
            config = state / "stock.py"
            config.write_text(STOCK_CONFIG.format(local=str(local)))
        proc, url, token = start(state, config)
        try:
            spawn_times(url, token, 1)  # warm-up: first imports, page cache
            times = spawn_times(url, token, rounds)
        finally:
            stop(proc)
            shutil.rmtree(state, ignore_errors=True)
        results[name] = statistics.median(times)
        print(f"{name}: " + " ".join(f"{t:.2f}" for t in times) + f" s (median {results[name]:.2f} s)")
    print(
        f"spawn_ready_ours={results['ours']:.2f} spawn_ready_stock={results['stock']:.2f} "
        f"ratio={results['ours'] / results['stock']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
