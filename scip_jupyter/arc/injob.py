"""In-job network mode: the whole Dask cluster runs inside ONE Slurm job.

For clusters whose compute nodes cannot reach the notebook (Rorqual, Narval,
Trillium), the scheduler, the workers and the driving code all run inside one
multi-task job, started with `srun` and wired by dask-jobqueue's `SLURMRunner`
(task 0 = scheduler, task 1 = the client running your function, tasks 2+ =
workers). The notebook only submits (job script on stdin, so an automation
node's forced `sbatch` suffices), monitors (`squeue`, through the shared
poller), cancels (`scancel`), and reads back files the job writes into its run
folder — never `sacct`, which automation nodes forbid:

    run folder (~/.scip/injob/<run id>/ on the cluster)
      driver.py     the per-task program (written by the job script)
      payload.b64   your function and arguments (cloudpickle, base64)
      status.json   {"phase": ..., "workers": n, "time": ...}, updated by the client task
      result.b64    the return value (cloudpickle, base64)     -> completed
      error.json    {"type", "message", "traceback"}           -> failed
      exit_code     srun's exit status, written by the job script
      job.log       everything the tasks printed

    run = InJobRun(total, preset="rorqual", args=(10,), workers=2, walltime="01:00:00")
    run.submit()            # -> job id
    run.status()            # InJobStatus(phase=pending, reason="Priority", start=...)
    run.result(timeout=600) # the value func returned, or InJobFailed
    run.cancel()

The job needs the same Python environment as the notebook (dask, distributed,
dask-jobqueue, cloudpickle) at `python` on the cluster.

Every transport works: local (the same files), ssh (the automation node's
`cat`), and rest (slurmrestd cannot read files, so the run folder is on storage
this server shares with the cluster, and a handshake proves it before anything
runs: injob_folder.py says where and how).

Secured (issue 9): compute nodes are shared with other people, so the batch
step first makes temporary TLS credentials (`Security.temporary()`, one
self-signed certificate per run) in the run folder, which only the person's
account can read (umask 077: folder 0700, key 0600). The scheduler, workers and
client all require TLS with those credentials (mutual: a peer without the
run's certificate cannot connect), listen on the node's own address only (not
every interface), and there is no dashboard: Dask's HTTP servers get no routes
at all, TLS, and the node's address (nobody could reach a dashboard from the
notebook in this mode; on a shared node it would be open to everyone).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shlex
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..i18n import _
from .injob_folder import HANDSHAKE, UNSHARED_EXIT, RunFolder
from .poller import JobPoller
from .registry import JobRegistry
from .states import JobState, Phase, scancel_argv
from .tags import JobTags
from .transport import run_blocking

#: File names in the run folder (see the module docstring).
STATUS, RESULT, ERROR, EXIT_CODE, SIGNALLED, LOG = "status.json", "result.b64", "error.json", "exit_code", "signalled", "job.log"
TLS_CERT, TLS_KEY = "tls-cert.pem", "tls-key.pem"
_WALLTIME = re.compile(r"^(\d+-)?\d{1,2}:\d{2}(:\d{2})?$")
_SAFE_DIRECTIVE = re.compile(r"^[A-Za-z0-9_.:,=@%/+-]*$")
_HEX = re.compile(r"^[0-9a-f]*$")


def _not_allowed(field: str, value: Any, allowed: str) -> str:
    return _("{field}: {value} is not allowed; allowed: {allowed}").format(field=field, value=value, allowed=allowed)


class InJobFailed(RuntimeError):
    """The in-job run ended without a result; the message says how and where to look."""


# ------------------------------------------------------------------ the program every task runs

DRIVER = r'''
"""Per-task program of a SCIP in-job Dask run (written by the job script)."""
import base64, inspect, json, os, sys, time, traceback
from pathlib import Path

RUN = Path(os.environ["SCIP_INJOB_DIR"])
RANK = int(os.environ.get("SLURM_PROCID", "0"))


def write(name, text):
    tmp = RUN / f".{name}.{RANK}.tmp"
    tmp.write_text(text)
    tmp.replace(RUN / name)  # atomic: the notebook never reads half a file


def status(phase, **extra):
    write("status.json", json.dumps(dict(extra, phase=phase, time=time.time())))


def make_tls():
    """Temporary TLS credentials of this run, readable by this account only (batch step, once)."""
    from distributed.security import Security

    sec = Security.temporary()
    old = os.umask(0o077)
    try:
        (RUN / "tls-cert.pem").write_text(sec.tls_ca_file)  # one self-signed certificate: its own CA
        (RUN / "tls-key.pem").write_text(sec.tls_scheduler_key)
    finally:
        os.umask(old)


def security():
    from distributed.security import Security

    cert, key = str(RUN / "tls-cert.pem"), str(RUN / "tls-key.pem")
    return Security(
        require_encryption=True, tls_ca_file=cert,
        tls_scheduler_cert=cert, tls_scheduler_key=key,
        tls_worker_cert=cert, tls_worker_key=key,
        tls_client_cert=cert, tls_client_key=key,
    )


def node_address():
    """This node's own address (listen there, not on every interface)."""
    import socket

    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def main():
    import cloudpickle
    import dask
    from dask_jobqueue.slurm import SLURMRunner
    from distributed import Client

    sec = security()
    host = node_address()
    cert, key = str(RUN / "tls-cert.pem"), str(RUN / "tls-key.pem")
    # Dask's HTTP servers (dashboard, metrics, health): no routes at all, TLS, node address only
    dask.config.set({
        "distributed.scheduler.http.routes": [], "distributed.worker.http.routes": [],
        "distributed.scheduler.dashboard.tls.cert": cert, "distributed.scheduler.dashboard.tls.key": key,
        "distributed.scheduler.dashboard.tls.ca-file": cert,
    })
    cpus = int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))
    worker_options = {"nthreads": cpus, "local_directory": os.environ.get("SLURM_TMPDIR") or str(RUN / "dask-tmp"),
                      "security": sec, "protocol": "tls", "host": host, "dashboard_address": f"{host}:0"}
    if os.environ.get("SLURM_MEM_PER_CPU"):
        worker_options["memory_limit"] = int(os.environ["SLURM_MEM_PER_CPU"]) * cpus * 2**20
    scheduler_options = json.loads(os.environ.get("SCIP_INJOB_SCHEDULER_OPTIONS") or "{}")
    scheduler_options.pop("dashboard_address", None)
    # TLS with this run's credentials only, on this node's address only, and no dashboard
    scheduler_options.update(security=sec, protocol="tls", host=host, dashboard=False, dashboard_address=f"{host}:0")
    with SLURMRunner(
        scheduler_file=str(RUN / "scheduler-{job_id}.json"),
        scheduler_options=scheduler_options,
        worker_options=worker_options,
    ) as runner:
        # only task 1 (the client) gets here; the scheduler and workers return when it closes
        from distributed.core import rpc

        # dask-jobqueue's runner ends the scheduler through an rpc without credentials: give it ours
        runner.scheduler_comm = rpc(runner.scheduler_address, connection_args=sec.get_connection_args("client"))
        status("starting", workers=runner.n_workers)
        with Client(runner, security=sec) as client:
            client.wait_for_workers(runner.n_workers, timeout=float(os.environ.get("SCIP_INJOB_WORKER_TIMEOUT", "600")))
            status("running", workers=runner.n_workers)
            try:
                payload = cloudpickle.loads(base64.b64decode((RUN / "payload.b64").read_bytes()))
                if payload.get("script") is not None:
                    scope = {"client": client, "__name__": "__scip_injob__"}
                    exec(compile(payload["script"], "<in-job script>", "exec"), scope)
                    value = scope.get("result")
                else:
                    func, args, kwargs = payload["func"], payload["args"], payload["kwargs"]
                    try:
                        wants_client = "client" in inspect.signature(func).parameters
                    except (TypeError, ValueError):
                        wants_client = False
                    if wants_client and "client" not in kwargs:
                        kwargs = dict(kwargs, client=client)
                    value = func(*args, **kwargs)
                write("result.b64", base64.b64encode(cloudpickle.dumps(value)).decode())
                status("completed", workers=runner.n_workers)
            except BaseException as exc:
                write("error.json", json.dumps({"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}))
                status("failed", workers=runner.n_workers)


if __name__ == "__main__":
    if sys.argv[1:] == ["--make-tls"]:
        make_tls()
        sys.exit(0)
    try:
        main()
    except SystemExit:
        raise
    except BaseException as exc:  # a task that cannot even start (import error, too few tasks)
        if RANK in (0, 1) and not (RUN / "error.json").exists():
            write("error.json", json.dumps({"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc(), "rank": RANK}))
        raise
'''


# ------------------------------------------------------------------ pure builders


@dataclass(frozen=True)
class InJobSpec:
    """What one in-job run asks Slurm for. Validated on construction."""

    run_dir: str  # absolute, or relative to $HOME on the cluster
    tags: JobTags
    workers: int = 1
    cpus_per_task: int = 1
    mem_per_cpu_mb: int = 1024
    walltime: str = "01:00:00"
    python: str = sys.executable
    partition: str = ""
    account: str = ""
    extra_directives: tuple[str, ...] = ()
    prologue: tuple[str, ...] = ()  # the preset's job_script_prologue (module loads, ...)
    scheduler_options: dict = field(default_factory=dict)
    handshake: str = ""  # shared run folders (rest): what the job must find in it before it runs anything

    def __post_init__(self):
        if not 1 <= self.workers <= 1000:
            raise ValueError(_not_allowed("workers", self.workers, "1 to 1000"))
        if not 1 <= self.cpus_per_task <= 256:
            raise ValueError(_not_allowed("cpus_per_task", self.cpus_per_task, "1 to 256"))
        if not 64 <= self.mem_per_cpu_mb <= 1_000_000:
            raise ValueError(_not_allowed("mem_per_cpu_mb", self.mem_per_cpu_mb, "64 to 1000000"))
        if not _WALLTIME.match(self.walltime):
            raise ValueError(_not_allowed("walltime", repr(self.walltime), _("[D-]HH:MM[:SS], e.g. 01:00:00")))
        for name in ("partition", "account"):
            if not _SAFE_DIRECTIVE.match(getattr(self, name)):
                raise ValueError(_("{field}: {value} has characters Slurm names do not use").format(
                    field=name, value=repr(getattr(self, name))))
        for d in self.extra_directives:
            if not d.startswith("--") or "\n" in d:
                raise ValueError(_("extra_directives: {value} is not a single --option[=value]").format(value=repr(d)))
        if "\n" in self.run_dir or "'" in self.run_dir:
            raise ValueError(_("run_dir: {value} may not contain newlines or quotes").format(value=repr(self.run_dir)))
        if not _HEX.match(self.handshake):
            raise ValueError(_not_allowed("handshake", repr(self.handshake), _("lowercase hexadecimal digits")))

    @property
    def ntasks(self) -> int:
        return self.workers + 2  # + scheduler + client (SLURMRunner's ranks 0 and 1)


def injob_script(spec: InJobSpec, payload_b64: str, driver: str = DRIVER) -> str:
    """The job script (sent to `sbatch` on stdin). Pure: snapshot-tested."""
    directives = [
        f"--job-name={spec.tags.job_name('injob')}",
        f"--comment={spec.tags.comment()}",
        f"--ntasks={spec.ntasks}",
        f"--cpus-per-task={spec.cpus_per_task}",
        f"--mem-per-cpu={spec.mem_per_cpu_mb}M",
        f"--time={spec.walltime}",
        "--output=/dev/null",  # the run folder may not exist yet; the script logs to job.log itself
    ]
    if spec.partition:
        directives.append(f"--partition={spec.partition}")
    if spec.account:
        directives.append(f"--account={spec.account}")
    directives += list(spec.extra_directives)
    header = "\n".join(f"#SBATCH {d}" for d in directives)
    options = json.dumps(spec.scheduler_options)
    prologue = "".join(line + "\n" for line in spec.prologue)
    handshake = (  # a folder the notebook cannot see would never bring results back: run nothing
        f"""[ "$(cat "$RUN/{HANDSHAKE}" 2>/dev/null)" = '{spec.handshake}' ] || exit {UNSHARED_EXIT}  # not the notebook's folder\n"""
        if spec.handshake else "")
    return f"""#!/bin/bash
{header}
# SCIP in-job Dask run: task 0 scheduler, task 1 client (your code), tasks 2+ workers.
RUN='{spec.run_dir}'
case "$RUN" in /*) ;; *) RUN="$HOME/$RUN" ;; esac
{handshake}umask 077  # the run folder, its TLS key and results: this account only
mkdir -p "$RUN" && chmod 700 "$RUN" && cd "$RUN" || exit 3
exec >>"$RUN/{LOG}" 2>&1
trap 'echo "$(date -Is) stopped by a signal" > "$RUN/{SIGNALLED}"' TERM
echo "$(date -Is) job $SLURM_JOB_ID on $(hostname): {spec.ntasks} tasks"
cat > "$RUN/driver.py" <<'SCIP_DRIVER_EOF'
{driver.strip()}
SCIP_DRIVER_EOF
cat > "$RUN/payload.b64" <<'SCIP_PAYLOAD_EOF'
{payload_b64}
SCIP_PAYLOAD_EOF
{prologue}export SCIP_INJOB_DIR="$RUN"
export SCIP_INJOB_SCHEDULER_OPTIONS={shlex.quote(options)}
{shlex.quote(spec.python)} "$RUN/driver.py" --make-tls || {{ echo "could not make the run's TLS credentials"; echo 4 > "$RUN/{EXIT_CODE}"; exit 4; }}
srun --ntasks={spec.ntasks} --kill-on-bad-exit=1 {shlex.quote(spec.python)} "$RUN/driver.py" &
wait $!
code=$?
echo $code > "$RUN/{EXIT_CODE}"
exit $code
"""


def encode_payload(func: Callable | None = None, args: tuple = (), kwargs: dict | None = None, script: str | None = None) -> str:
    import cloudpickle

    if (func is None) == (script is None):
        raise ValueError(_("give exactly one of func (a callable) or script (Python source setting `result`)"))
    if func is not None and not callable(func):
        raise ValueError(_("func: {value} is not callable").format(value=repr(func)))
    data = {"func": func, "args": tuple(args), "kwargs": dict(kwargs or {}), "script": script}
    module = _local_module(func)
    if module is not None:  # the user's own module is not installed on the cluster: ship its code
        cloudpickle.register_pickle_by_value(module)
    try:
        return base64.b64encode(cloudpickle.dumps(data)).decode()
    finally:
        if module is not None:
            cloudpickle.unregister_pickle_by_value(module)


def _local_module(func):
    """The module of `func` when it is the user's own code (not __main__, not installed), else None."""
    import sysconfig

    module = sys.modules.get(getattr(func, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    if module is None or module.__name__ == "__main__" or not path:
        return None
    installed = {sysconfig.get_path(k) for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    if any(str(Path(path).resolve()).startswith(str(Path(p).resolve())) for p in installed if p):
        return None
    if module.__name__.split(".")[0] in ("scip_jupyter", "scip_widgets"):
        return None  # our own package: present wherever the bridge runs
    return module


@dataclass(frozen=True)
class InJobStatus:
    phase: Phase
    job_id: str = ""
    reason: str = ""  # pending reason, or how it ended
    start: datetime | None = None  # start (estimated while pending)
    progress: str = ""  # from status.json: starting / running / completed / failed
    workers: int | None = None
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.phase.finished


def decide_status(job_id: str, queued: JobState | None, files: dict[str, str | None], cancelled: bool,
                  unshared: str = "") -> InJobStatus:
    """The run's status from Slurm's view (None when not in squeue) and the files it wrote. Pure.

    `unshared` (shared run folders): the reason given when the job ended without touching its
    folder at all (not even `job.log`), i.e. it did not find the notebook's handshake there."""
    progress = {}
    if files.get(STATUS):
        try:
            progress = json.loads(files[STATUS])
        except ValueError:
            progress = {}
    common = dict(job_id=job_id, progress=progress.get("phase", ""), workers=progress.get("workers"))
    if files.get(ERROR):
        try:
            err = json.loads(files[ERROR])
            message = f"{err.get('type', 'Error')}: {err.get('message', '')}"
        except ValueError:
            message = files[ERROR].strip()
        return InJobStatus(Phase.FAILED, reason="the code raised an exception", message=message, **common)
    if files.get(RESULT) is not None:
        return InJobStatus(Phase.COMPLETED, **common)
    if queued is not None and queued.phase is Phase.PENDING and common["progress"] in ("starting", "running"):
        return InJobStatus(Phase.RUNNING, start=queued.start, **common)  # the cached squeue is older than the files
    if queued is not None and not queued.phase.finished:
        return InJobStatus(queued.phase, reason=queued.reason_text if queued.phase is Phase.PENDING else "", start=queued.start, **common)
    if cancelled:
        return InJobStatus(Phase.CANCELLED, reason="cancelled from the notebook", **common)
    touched = any(files.get(name) is not None for name in (STATUS, EXIT_CODE, SIGNALLED, LOG))
    if unshared and not touched and (queued is None or queued.phase in (Phase.FAILED, Phase.COMPLETED)):
        return InJobStatus(Phase.FAILED, reason=unshared, **common)
    if queued is not None and queued.phase in (Phase.CANCELLED, Phase.TIMEOUT, Phase.FAILED):
        return InJobStatus(queued.phase, reason=f"Slurm: {queued.slurm_state} {queued.reason}".strip(), **common)
    if files.get(SIGNALLED):
        return InJobStatus(Phase.CANCELLED, reason="stopped by Slurm (time limit or scancel) before a result", message=files[SIGNALLED].strip(), **common)
    code = (files.get(EXIT_CODE) or "").strip()
    if code:
        return InJobStatus(Phase.FAILED, reason=f"the tasks exited with status {code} without a result", message=f"see {LOG} in the run folder", **common)
    if queued is not None:  # COMPLETED in squeue, but no file yet: results are being written
        return InJobStatus(Phase.RUNNING, reason="finishing", **common)
    return InJobStatus(Phase.UNKNOWN, reason="left the queue without writing its files (run folder not writable, or cancelled outside the notebook)", **common)


# ------------------------------------------------------------------ I/O


class InJobRun:
    """One function (or script) run on a Dask cluster living inside one Slurm job.

    The request (account, partition, walltime, cores and memory per task,
    workers) is checked against the preset exactly as ARCCluster checks it
    (`validate_request`), before anything is submitted.
    """

    def __init__(
        self,
        func: Callable | None = None,
        *,
        preset: str = "local-slurm",
        args: tuple = (),
        kwargs: dict | None = None,
        script: str | None = None,
        workers: int = 1,
        account: str | None = None,
        partition: str | None = None,
        walltime: str | None = None,
        cores: int | None = None,
        memory: str | None = None,
        presets=None,
        user: str | None = None,
        user_accounts: list[str] | None = None,
        tags: JobTags | None = None,
        transport=None,
        python: str | None = None,
        base_dir: str | None = None,
        registry: JobRegistry | None = None,
        poller: JobPoller | None = None,
        scheduler_options: dict | None = None,
    ):
        from dataclasses import replace

        from .cluster import _current_user, held_data, resolve_accounts
        from .presets import (ARCRequestError, PresetFile, check_data_jurisdiction, load_default_presets, load_presets,
                              validate_request)
        from .transport import transport_for

        preset_file = presets if isinstance(presets, PresetFile) else (load_presets(presets) if presets else load_default_presets())
        self.preset = p = preset_file.get(preset)
        check_data_jurisdiction(p, held_data(), preset_file.clusters)  # ARCCluster's rule, before any sbatch
        self.transport = transport or transport_for(p)
        user = user or _current_user()
        accounts = list(user_accounts) if user_accounts is not None else resolve_accounts(p, user, self.transport)
        raw = dict(account=account, partition=partition, walltime=walltime, cores=cores, memory=memory, workers=workers)
        self.request = req = validate_request(p, {k: v for k, v in raw.items() if v is not None}, accounts)
        if req.workers < 1:
            raise ARCRequestError("workers", _("an in-job run needs at least one worker"), ["1.."])
        self.payload = encode_payload(func, args, kwargs, script)
        self.run_id = uuid.uuid4().hex[:12]
        # where the job writes and how this server reads it back (rest: a shared folder, or refused here)
        self.folder = RunFolder.for_run(p, self.transport, user, self.run_id, base_dir)
        tags = tags or replace(
            JobTags.from_environment(project=req.account, site=p.site, jurisdiction=p.jurisdiction), user=user
        )
        self.spec = InJobSpec(
            run_dir=self.folder.path,
            tags=tags,
            workers=req.workers,
            cpus_per_task=req.cores,
            mem_per_cpu_mb=max(64, req.memory // req.cores // 2**20),
            walltime=req.walltime,
            python=python or sys.executable,
            partition=req.partition or "",
            account=req.account,
            prologue=tuple(p.job_script_prologue),
            scheduler_options=dict(scheduler_options or {}),
            handshake=self.folder.handshake,
        )
        self.registry = registry if registry is not None else JobRegistry.default()
        self.poller = poller or JobPoller(self.transport, cluster=p.name)
        self.job_id: str | None = None
        self.submitted_at: datetime | None = None
        self._cancelled = False

    # -------------------------------------------------------------- async API

    async def asubmit(self) -> str:
        if self.job_id is not None:
            raise RuntimeError(_("already submitted as job {job_id}").format(job_id=self.job_id))
        self.folder.prepare()  # a shared folder: the handshake the job checks first
        self.submitted_at = datetime.now(timezone.utc)
        out = await self.transport.run(["sbatch", "--parsable"], stdin=injob_script(self.spec, self.payload))
        self.job_id = out.strip().split(";")[0]  # "--parsable" prints "id" or "id;cluster"
        self.registry.record(
            self.job_id, self.preset.name, self.spec.tags, preset=self.preset.name, account=getattr(self.transport, "account", "") or ""
        )
        self.poller.invalidate()
        return self.job_id

    async def astatus(self) -> InJobStatus:
        self._need_job()
        files = {name: await self._read(name) for name in (STATUS, RESULT, ERROR, EXIT_CODE, SIGNALLED)}
        if self.folder.exists(LOG):  # the job reached its folder (shared folders: checked for free)
            files[LOG] = ""
        queued = None
        if files[RESULT] is None and files[ERROR] is None:
            jobs = await self.poller.jobs()
            queued = next((j for j in jobs if j.job_id == self.job_id), None)
            if queued is None and self.poller.listed_at() < self.submitted_at:
                queued = JobState(job_id=self.job_id, phase=Phase.PENDING, reason="submitted")
        unshared = self.folder.unshared_reason() if self.folder.access == "shared" else ""
        status = decide_status(self.job_id, queued, files, self._cancelled, unshared)
        if status.finished:
            self.registry.forget(self.job_id)
        return status

    async def aresult(self, timeout: float | None = None, poll: float = 1.0) -> Any:
        """Wait for the run to end; its return value, or InJobFailed naming what happened."""
        import cloudpickle

        self._need_job()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = await self.astatus()
            if status.phase is Phase.COMPLETED:
                return cloudpickle.loads(base64.b64decode(await self._read(RESULT)))
            if status.finished or status.phase is Phase.UNKNOWN:
                raise InJobFailed(_(
                    "in-job run {run} (job {job_id} on {cluster}) {phase}: {reason} (run folder {folder})"
                ).format(run=self.run_id, job_id=self.job_id, cluster=self.preset.name, phase=status.phase.value,
                         reason=status.reason + (" — " + status.message if status.message else ""),
                         folder=self.spec.run_dir))
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(_(
                    "in-job run {run} (job {job_id}) still {phase} after {timeout}s{reason}; it keeps running: "
                    ".result() again, or .cancel()"
                ).format(run=self.run_id, job_id=self.job_id, phase=status.phase.value, timeout=f"{timeout:g}",
                         reason=f" ({status.reason})" if status.reason else ""))
            await asyncio.sleep(poll)

    async def acancel(self) -> None:
        self._need_job()
        self._cancelled = True
        await self.transport.run(scancel_argv([self.job_id]))
        self.poller.note_cancelled({self.job_id})
        self.registry.forget(self.job_id)

    # -------------------------------------------------------------- sync API (notebooks)

    def submit(self) -> str:
        return run_blocking(self.asubmit())

    def status(self) -> InJobStatus:
        return run_blocking(self.astatus())

    def result(self, timeout: float | None = None) -> Any:
        return run_blocking(self.aresult(timeout))

    def cancel(self) -> None:
        return run_blocking(self.acancel())

    # -------------------------------------------------------------- helpers

    def _need_job(self):
        if self.job_id is None:
            raise RuntimeError(_("not submitted yet: call .submit() first"))

    def path(self, name: str) -> str:
        return self.folder.file(name)

    async def _read(self, name: str) -> str | None:
        """A run-folder file's text, or None when it does not exist (yet)."""
        return await self.folder.read(name)

    def __repr__(self) -> str:
        return f"<InJobRun {self.run_id} preset={self.preset.name} job={self.job_id or '-'} workers={self.spec.workers}>"
