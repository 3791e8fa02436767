"""Scale-up benchmark: ARCCluster (one `sbatch --array`) vs vanilla SLURMCluster (one `sbatch` per worker).

Same worker settings for both (nanny, 1 core, 256 MiB, 1 process, TLS, walltime
20 min), the same local Slurm (scripts/slurm-local), one run each, through both
transports:

- local: Slurm commands on this host;
- ssh: through scripts/sshd-local, a real sshd set up like an automation node
  (forced command, Debian's default MaxStartups). ARCCluster uses its SSH
  transport (one connection, one channel per command); vanilla uses the usual
  workaround, an `sbatch` (and `scancel`) wrapper on PATH that forwards to ssh,
  the job script on standard input. The harness logs in with the key and the
  certificate scripts/sshd-local signs for it (no bare shared key is accepted);
- rest (ARCCluster only): slurmrestd with the person's own JWT, minted as the
  hub mints it (scip_jupyter/identity_hub.py), through the `rest` transport.

Figures per run: (a) submission latency, from `scale(N)` until Slurm has
accepted every worker's job (every job id known), the number of `sbatch`
calls and of submit RPCs in `sdiag` (cluster-wide: other users' submissions in
the same seconds count too); (b) time until N workers are connected; (c) failed
submissions, with the first error and what sshd logged about MaxStartups.

    .venv/bin/python benchmarks/arc_scaleup.py [--workers 32]

The last line is the summary, key=value:
    submit_ratio=<ours/vanilla, ssh> workers_ratio=<ours/vanilla, local>
    sbatch_ours=<n> sbatch_vanilla=<n> failed_ours=<n> failed_vanilla=<n>
    rest_submit_ratio=<ARCCluster over REST / vanilla SLURMCluster over ssh, submission latency>
(sbatch_* = sbatch calls for one scale(N); failed_* = both transports together.)
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dask_jobqueue import SLURMCluster  # noqa: E402
from distributed.security import Security  # noqa: E402

from scip_jupyter.arc.cluster import ARCCluster, private_dir  # noqa: E402
from scip_jupyter.arc.presets import load_presets  # noqa: E402
from scip_jupyter.arc.tags import JobTags  # noqa: E402
from scip_jupyter.arc.rest import RestTransport, SlurmToken  # noqa: E402
from scip_jupyter.arc.transport import SSHTarget, SSHTransport  # noqa: E402
from scip_jupyter.identity_hub import SCIPCredentials  # noqa: E402

WALLTIME = "00:20:00"
MEMORY = "256MiB"
CORES = 1
PROCESSES = 1


@dataclass
class Run:
    name: str
    transport: str
    workers: int
    submit_latency: float | None = None
    time_to_workers: float | None = None
    connected: int = 0
    sbatch_calls: int = 0
    submit_rpcs: int | None = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def sh(argv: list[str], env=None, check=True) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {proc.stdout}{proc.stderr}")
    return proc.stdout


def submit_rpcs() -> int | None:
    """Submit RPCs slurmctld has counted (None when sdiag fails; the counters restart with slurmctld)."""
    m = re.search(r"REQUEST_SUBMIT_BATCH_JOB\s+\(\s*\d+\)\s+count:(\d+)", sh(["sdiag"], check=False))
    return int(m.group(1)) if m else None


def squeue_count(needle: str) -> int:
    out = sh(["squeue", "-h", "-r", "-o", "%j|%k"], check=False)
    return sum(1 for line in out.splitlines() if needle in line)


def wait_gone(needle: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while squeue_count(needle) and time.monotonic() < deadline:
        time.sleep(0.5)
    if squeue_count(needle):
        sh(["scancel", f"--name={needle}"], check=False)


def write_wrappers(bindir: Path, log: Path, ssh: dict | None) -> None:
    """sbatch/scancel on PATH: log each call, then run the real command locally or through ssh.

    Through ssh, the script goes on stdin: dask-jobqueue passes a local file name
    as the last argument, which the login node cannot read (the usual workaround).
    Failed calls are logged with ssh's exit code and first error line.
    """
    bindir.mkdir(parents=True, exist_ok=True)
    for cmd in ("sbatch", "scancel"):
        real = shutil.which(cmd, path="/usr/bin:/bin")
        if ssh is None:
            run = f'"{real}" "$@"'
        else:
            target = ('ssh -i "{key}" -o UserKnownHostsFile="{known_hosts}" -o BatchMode=yes '
                      '-o IdentitiesOnly=yes -p {port} {user}@{host}').format(**ssh)
            if cmd == "sbatch":
                run = f'{target} sbatch "${{args[@]}}" < "$script"'
            else:
                run = f'{target} scancel "$@"'
        path = bindir / cmd
        path.write_text(f"""#!/bin/bash
echo "{cmd} $*" >> "{log}"
args=("$@"); script="${{args[-1]}}"; unset 'args[-1]'
err="$(mktemp)"
out="$({run} 2>"$err")"; rc=$?
if [ $rc -ne 0 ]; then
  echo "FAILED {cmd} rc=$rc $(head -n 2 "$err" | tr '\n' ' ')" >> "{log}"
  cat "$err" >&2
fi
rm -f "$err"
[ -n "$out" ] && echo "$out"
exit $rc
""")
        path.chmod(0o755)


def count_calls(log: Path, cmd: str) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith(cmd + " ")) if log.exists() else 0


def measure(run: Run, cluster, calls, needle: str, timeout: float) -> None:
    rpcs_before = submit_rpcs() or 0
    t0 = time.perf_counter()
    cluster.scale(run.workers)
    # (a) submission: every worker's job started (sbatch returned, with a job id or an error)
    # (SpecCluster adds the jobs to cluster.workers once every submission has returned)
    while time.perf_counter() - t0 < timeout and len(cluster.workers) < run.workers:
        time.sleep(0.005)
    run.submit_latency = time.perf_counter() - t0
    jobs = list(cluster.workers.values())
    run.failed = run.workers - sum(1 for j in jobs if j.job_id)
    # (b) workers connected
    while time.perf_counter() - t0 < timeout:
        # the scheduler runs in this process: read it directly (scheduler_info lags by its 1 s sync)
        run.connected = len(cluster.scheduler.workers)
        if run.connected >= run.workers:
            run.time_to_workers = time.perf_counter() - t0
            break
        if run.failed and run.connected >= run.workers - run.failed and squeue_count(needle) == 0:
            break
        time.sleep(0.05)
    run.sbatch_calls = calls()
    after = submit_rpcs()
    run.submit_rpcs = None if after is None or after < rpcs_before else after - rpcs_before


def rest_transport() -> RestTransport:
    """The rest transport with this account's own token, minted as the hub mints it."""
    issuer = SCIPCredentials(slurm_jwt_key_file=str(ROOT / ".state" / "slurm" / "jwt" / "jwt_hs256.key"))
    account = getpass.getuser()

    async def source():
        token, expires = await issuer.slurm_token(account)
        return SlurmToken(account, token, expires)

    return RestTransport("local-slurm", f"http://127.0.0.1:{os.environ.get('SCIP_SLURMRESTD_PORT', '6820')}", source)


def run_ours(transport_name: str, workers: int, presets, ssh: dict | None, log: Path, timeout: float) -> Run:
    run = Run("ARCCluster", transport_name, workers)
    server = f"bench{uuid.uuid4().hex[:6]}"
    transport = SSHTransport("local-slurm", SSHTarget(**ssh)) if ssh else None
    if transport_name == "rest":
        transport = rest_transport()
    cluster = ARCCluster(
        "local-slurm", presets=presets, transport=transport, user_accounts=["def-demo"],
        tags=JobTags(user=getpass.getuser(), server=server, project="def-demo", site="scip-local", jurisdiction="CA"),
        walltime=WALLTIME, memory=MEMORY, cores=CORES, processes=PROCESSES,
    )
    try:
        if transport is None:
            before = count_calls(log, "sbatch")
            measure(run, cluster, lambda: count_calls(log, "sbatch") - before, f"server={server},", timeout)
        else:
            measure(run, cluster, lambda: cluster.transport.calls["sbatch"], f"server={server},", timeout)
    except Exception as exc:  # a benchmark reports, it does not stop
        run.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        cluster.close()
        wait_gone(f"server={server},")
    return run


def run_vanilla(transport_name: str, workers: int, log: Path, timeout: float) -> Run:
    run = Run("SLURMCluster", transport_name, workers)
    name = f"bench-vanilla-{uuid.uuid4().hex[:6]}"
    before = count_calls(log, "sbatch")
    cluster = SLURMCluster(
        queue="cpu", account="def-demo", walltime=WALLTIME, memory=MEMORY, cores=CORES, processes=PROCESSES,
        job_name=name, local_directory="/tmp", log_directory=str(private_dir("arc-logs")),
        security=Security.temporary(), shared_temp_directory=str(private_dir("arc-tls")),
        scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
    )
    try:
        measure(run, cluster, lambda: count_calls(log, "sbatch") - before, name, timeout)
        run.errors += _vanilla_errors(cluster)
    except Exception as exc:
        run.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        try:
            cluster.close()
        except AssertionError as exc:  # SpecCluster checks job states dask-jobqueue's Job.close never sets
            run.errors.append(f"SLURMCluster.close: AssertionError {exc}")
        wait_gone(name)
    return run


def _vanilla_errors(cluster) -> list[str]:
    missing = [n for n, j in cluster.workers.items() if not j.job_id]
    return [f"{len(missing)} workers without a job id (sbatch failed)"] if missing else []


def failed_calls(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("FAILED ")] if log.exists() else []


def sshd_drops(since: int) -> list[str]:
    log = ROOT / ".state" / "sshd" / "sshd.log"
    if not log.exists():
        return []
    lines = log.read_text(errors="replace").splitlines()[since:]
    return [line for line in lines if "MaxStartups" in line]


def sshd_log_lines() -> int:
    log = ROOT / ".state" / "sshd" / "sshd.log"
    return len(log.read_text(errors="replace").splitlines()) if log.exists() else 0


def fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=240, help="seconds per run before giving up")
    parser.add_argument("--rounds", type=int, default=3,
                        help="local rounds, alternating which cluster goes first; time-to-workers is their median")
    args = parser.parse_args()

    print(sh([str(ROOT / "scripts" / "slurm-local"), "start"]).strip().splitlines()[-1])
    sshd_out = sh([str(ROOT / "scripts" / "sshd-local"), "start"])
    settings = dict(line.split("=", 1) for line in sshd_out.splitlines() if line.startswith("SCIP_SSHD_"))
    os.environ["SLURM_CONF"] = str(ROOT / ".state" / "slurm" / "slurm.conf")
    tmp = Path(tempfile.mkdtemp(prefix="arc-bench-"))
    os.environ["SCIP_ARC_REGISTRY"] = str(tmp / "arc-jobs.sqlite")
    presets = load_presets(ROOT / "hub_config" / "arc.yaml")
    ssh = dict(host=settings["SCIP_SSHD_HOST"], port=int(settings["SCIP_SSHD_PORT"]), user=getpass.getuser(),
               key=settings["SCIP_SSHD_KEY"], known_hosts=settings["SCIP_SSHD_KNOWN_HOSTS"])
    base_path = os.environ["PATH"]
    log = tmp / "calls.log"
    runs: list[Run] = []
    print(f"benchmark: {args.workers} workers per run; worker: nanny, {CORES} core, {MEMORY}, {PROCESSES} process, TLS")

    # warm-up (not measured, same size): page cache, imports and Slurm state, so the first measured run is not penalised
    os.environ["PATH"] = f"{tmp / 'bin-local'}:{base_path}"
    write_wrappers(tmp / "bin-local", tmp / "warmup.log", None)
    run_ours("local", args.workers, presets, None, tmp / "warmup.log", args.timeout)

    # local: several rounds, alternating which goes first, so neither profits from the order;
    # ssh: one round (vanilla's dropped connections make it slow, and one round shows them)
    for transport_name in ("local", "ssh"):
        bindir = tmp / f"bin-{transport_name}"
        write_wrappers(bindir, log, ssh if transport_name == "ssh" else None)
        os.environ["PATH"] = f"{bindir}:{base_path}"
        for i in range(args.rounds if transport_name == "local" else 1):
            pair = [("ours", transport_name), ("vanilla", transport_name)]
            for which, _ in (pair if i % 2 == 0 else pair[::-1]):
                if which == "ours":
                    runs.append(run_ours(transport_name, args.workers, presets,
                                         ssh if transport_name == "ssh" else None, log, args.timeout))
                    continue
                mark, failed_before = sshd_log_lines(), len(failed_calls(log))
                vanilla = run_vanilla(transport_name, args.workers, log, args.timeout)
                failures = failed_calls(log)[failed_before:]
                if failures:
                    vanilla.errors.append(f"{len(failures)} failed sbatch/scancel calls, e.g. {failures[0]}")
                if transport_name == "ssh":
                    ssh_mark, ssh_vanilla = mark, vanilla
                runs.append(vanilla)
        os.environ["PATH"] = base_path

    # rest: ARCCluster only (vanilla dask-jobqueue has no REST backend); its own token, no wrappers
    runs.append(run_ours("rest", args.workers, presets, None, log, args.timeout))

    # sshd writes some log lines late: read its MaxStartups lines once it is stopped (or at the end)
    if "already running" not in sshd_out:
        sh([str(ROOT / "scripts" / "sshd-local"), "stop"], check=False)
        time.sleep(0.5)
    # a fresh sshd-local start begins a fresh log: then every MaxStartups line is this run's
    drops = sshd_drops(0 if "already running" not in sshd_out else ssh_mark)
    if drops:
        ssh_vanilla.errors.append(f"sshd log: {' / '.join(d.strip() for d in drops[:3])}")

    print()
    for r in runs:
        print(f"{r.name:13s} {r.transport:5s}: submit_latency={fmt(r.submit_latency)} sbatch_calls={r.sbatch_calls} "
              f"sdiag_submit_rpcs={r.submit_rpcs} time_to_{r.workers}_workers={fmt(r.time_to_workers)} "
              f"connected={r.connected} failed_submissions={r.failed}")
        for e in r.errors:
            print(f"    {e}")

    def get(name, transport):
        """The run, or for several rounds the median one by time to workers (unfinished runs sort last)."""
        some = sorted((r for r in runs if r.name == name and r.transport == transport),
                      key=lambda r: (r.time_to_workers is None, r.time_to_workers or 0))
        return some[(len(some) - 1) // 2]

    def ratio(a, b):
        return "n/a" if a is None or not b else f"{a / b:.3f}"

    ours_ssh, van_ssh = get("ARCCluster", "ssh"), get("SLURMCluster", "ssh")
    ours_loc, van_loc = get("ARCCluster", "local"), get("SLURMCluster", "local")
    ours_rest = get("ARCCluster", "rest")
    print()
    print(f"local medians over {args.rounds} round(s): time_to_workers ours={fmt(ours_loc.time_to_workers)} "
          f"vanilla={fmt(van_loc.time_to_workers)}")
    print(
        f"submit_ratio={ratio(ours_ssh.submit_latency, van_ssh.submit_latency)} "
        f"workers_ratio={ratio(ours_loc.time_to_workers, van_loc.time_to_workers)} "
        f"sbatch_ours={max(ours_ssh.sbatch_calls, ours_loc.sbatch_calls)} "
        f"sbatch_vanilla={max(van_ssh.sbatch_calls, van_loc.sbatch_calls)} "
        f"failed_ours={ours_ssh.failed + ours_loc.failed} failed_vanilla={van_ssh.failed + van_loc.failed} "
        f"rest_submit_ratio={ratio(ours_rest.submit_latency, van_ssh.submit_latency)}"
    )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
