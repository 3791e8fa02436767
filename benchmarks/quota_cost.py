"""The cost of one allocation decision, as a share of the local spawn path measured in the same run.

Ledger: 10,000 users in 100 project groups, 100,000 reservation rows (this month's
history, 1% still held) plus Slurm job rows, on SQLite (a file) and on PostgreSQL
(scripts/postgres-local, a throw-away database). One decision is one
`Ledger.reserve` (lock the accounts, read their holdings and Slurm jobs, `decide`,
record); each is followed by a release so the ledger stays the same size.

Anchor: spawn-to-ready of SCIPLocalSpawner through the embedded hub
(`scip-jupyter up`, REST API, profile cpu-small), the path a person's start takes,
timed in this run (benchmarks/hub_spawn.py's method).

    sqlite: decision p50=... p99=... ms
    postgresql: decision p50=... p99=... ms
    spawn path: median ... s
    quota_share=<slower backend's p50 / spawn median> decision_p99_ms=<slower backend's p99>

Run: .venv/bin/python benchmarks/quota_cost.py [decisions] [spawn rounds]   (as root: the hub spawns scip-user)
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from scip_jupyter.allocations.ledger import Ledger, Reservation, SlurmUsage  # noqa: E402
from scip_jupyter.allocations.policy import Request, accounts_for  # noqa: E402
from scip_jupyter.allocations.quotas import Allocations  # noqa: E402

USERS, GROUPS, ROWS, SLURM_ROWS = 10_000, 100, 100_000, 10_000
NOW = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
ALLOCATIONS = Allocations.model_validate({
    "groups": {f"g{i:03d}": {"max_gpus": {"h100": 10_000, "h100_1g.10gb": 10_000}, "gpu_hours": 10_000_000,
                             "slurm_account": f"def-g{i:03d}"} for i in range(GROUPS)},
})


def groups_of(user: int) -> list[str]:
    return [f"g{user % GROUPS:03d}"]


def fill(ledger: Ledger) -> None:
    rng = random.Random(7)
    month = dt.datetime(NOW.year, NOW.month, 1)
    span = max((NOW - month).total_seconds(), 3600.0)
    rows = []
    for i in range(ROWS):
        user = rng.randrange(USERS)
        start = month + dt.timedelta(seconds=rng.uniform(0, span - 60))
        end = None if i % 100 == 0 else min(start + dt.timedelta(hours=rng.uniform(0.1, 8)), NOW)
        mig = rng.random() < 0.5
        rows.append(dict(user=f"u{user}", server="", profile="mig-1g-10gb" if mig else "h100-full",
                         account=f"group:{groups_of(user)[0]}", flavour="h100_1g.10gb" if mig else "h100", units=1,
                         gpu_weight=1 / 7 if mig else 1.0, started_at=start, released_at=end, hub=""))
    jobs = []
    for i in range(SLURM_ROWS):
        user = rng.randrange(USERS)
        start = month + dt.timedelta(seconds=rng.uniform(0, span - 60))
        jobs.append(dict(cluster="local-slurm", job_id=str(i), user=f"u{user}", server="", slurm_user="scip-user",
                         slurm_account=f"def-{groups_of(user)[0]}", account=f"group:{groups_of(user)[0]}",
                         flavour="h100", gpus=1, gpu_weight=1.0, state="COMPLETED", started_at=start,
                         ended_at=min(start + dt.timedelta(hours=1), NOW), updated_at=NOW))
    with ledger.engine.begin() as conn:
        for chunk in range(0, len(rows), 5000):
            conn.execute(insert(Reservation), rows[chunk:chunk + 5000])
        for chunk in range(0, len(jobs), 5000):
            conn.execute(insert(SlurmUsage), jobs[chunk:chunk + 5000])


def decisions(url: str, count: int) -> list[float]:
    ledger = Ledger(url)
    fill(ledger)
    rng = random.Random(11)
    times = []
    for i in range(count + 20):
        user = rng.randrange(USERS)
        request = Request(f"u{user}", f"bench{i}", "h100-full", "h100", 1, 1.0)
        t0 = time.perf_counter()
        decision = ledger.reserve(request, accounts_for(request, groups_of(user), ALLOCATIONS, None, ledger.clock()))
        elapsed = time.perf_counter() - t0
        assert decision.allowed, decision.message
        ledger.release(request.user, request.server)
        if i >= 20:  # the first ones warm caches and connection pools
            times.append(elapsed)
    ledger.dispose()
    return times


def postgres_url() -> tuple[str, callable]:
    proc = subprocess.run([str(ROOT / "scripts" / "postgres-local"), "start"], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        sys.exit(f"PostgreSQL did not start:\n{proc.stdout}{proc.stderr}")
    base = [line.split("=", 1)[1] for line in proc.stdout.splitlines() if line.startswith("SCIP_LEDGER_URL=")][0]
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(base)
    name = f"scip_bench_{uuid.uuid4().hex[:8]}"

    def admin(sql: str) -> None:
        with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    admin(f'CREATE DATABASE "{name}"')
    return u.set(database=name).render_as_string(hide_password=False), lambda: admin(
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def spawn_path(rounds: int) -> float:
    spec = importlib.util.spec_from_file_location("hub_spawn", ROOT / "benchmarks" / "hub_spawn.py")
    hub_spawn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub_spawn)
    (ROOT / ".state").mkdir(exist_ok=True)
    state = Path(tempfile.mkdtemp(prefix="bench-quota-", dir=ROOT / ".state"))
    os.chmod(state, 0o711)
    proc, url, token = hub_spawn.start(state, ROOT / "hub_config" / "local.py")
    try:
        hub_spawn.spawn_times(url, token, 1)  # warm-up
        return statistics.median(hub_spawn.spawn_times(url, token, rounds))
    finally:
        hub_spawn.stop(proc)
        shutil.rmtree(state, ignore_errors=True)


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    results = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    try:
        results["sqlite"] = decisions(f"sqlite:///{tmp / 'ledger.sqlite'}", count)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    url, drop = postgres_url()
    try:
        results["postgresql"] = decisions(url, count)
    finally:
        drop()
    for name, times in results.items():
        print(f"{name}: decision p50={statistics.median(times) * 1000:.2f} ms p99={p(times, 0.99) * 1000:.2f} ms "
              f"({len(times)} decisions, {USERS} users, {ROWS} reservation rows, {SLURM_ROWS} Slurm job rows)")
    spawn = spawn_path(rounds)
    print(f"spawn path (SCIPLocalSpawner through the embedded hub, spawn-to-ready): median {spawn:.2f} s")
    worst = max(results, key=lambda n: statistics.median(results[n]))
    share = statistics.median(results[worst]) / spawn
    p99 = max(p(t, 0.99) for t in results.values()) * 1000
    print(f"quota_share={share:.4f} decision_p99_ms={p99:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
