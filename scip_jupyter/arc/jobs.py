"""Slurm jobs for Dask workers: correct directives, and many workers in one `sbatch --array`.

`job_settings()` is the pure builder: from a preset, a validated request and
the job tags it returns the keyword arguments of dask-jobqueue's `SLURMJob`, so
the script itself is written by dask-jobqueue (subclass, don't fork):

- GPUs as `--gpus-per-node=<type>:<n>` (or `--gres=gpu:<type>:<n>` where the
  preset says so); with `--mem-per-gpu` the `--mem` line is skipped, since
  Slurm refuses both together (dask-jobqueue #698);
- the worker's `--lifetime` a few minutes below the walltime, with a stagger,
  so workers leave cleanly instead of being killed (#122);
- the spill directory on `$SLURM_TMPDIR` when the job has one (#292);
- every job tagged: `--job-name` readable in `squeue`, `--comment` parsed by
  `JobTags` (user, notebook server, project, site, jurisdiction).
No secrets go in the script: TLS material is referenced by file path only.

`ARCJob` is one Dask worker job. In array mode it is one *task* of an array:
its worker name ends in the array index (`<cluster>-<i>`), and the script names
the worker from `$SLURM_ARRAY_TASK_ID`, so the same script serves every task.
`ArrayBatcher` collects the tasks the cluster starts together and submits them
with ONE `sbatch --array=<indices>`; it cancels single tasks (`scancel <job>_<i>`),
batched the same way, and keeps the job registry up to date.
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import suppress

import dask.config
from typing import Any, Callable, Iterable

from dask.utils import format_bytes
from dask_jobqueue.slurm import SLURMJob
from distributed.deploy.spec import ProcessInterface

from ..i18n import _
from .presets import ClusterPreset, ValidRequest
from .tags import JobTags
from .transport import SlurmCommandError, SlurmUnavailable, Transport

logger = logging.getLogger(__name__)

ARRAY_TASK_VAR = "${SLURM_ARRAY_TASK_ID}"


# ---------------------------------------------------------------- pure builders


def gpu_directive(style: str, gpu_type: str, count: int) -> str:
    """The GPU request line for one worker job.

    >>> gpu_directive("gpus-per-node", "h100", 2)
    '--gpus-per-node=h100:2'
    >>> gpu_directive("gres", "h100_1g.10gb", 1)
    '--gres=gpu:h100_1g.10gb:1'
    """
    if style == "gres":
        return f"--gres=gpu:{gpu_type}:{count}"
    return f"--gpus-per-node={gpu_type}:{count}"


#: `#SBATCH` options that say what the request says: read into the request instead of bypassing it.
DIRECTIVE_FIELDS = {
    "-p": "queue", "--partition": "queue",
    "-A": "account", "--account": "account",
    "-t": "walltime", "--time": "walltime",
    "--mem-per-gpu": "memory_per_gpu",
    "--mem": "job_mem",
    "-c": "job_cpu", "--cpus-per-task": "job_cpu",
    "-J": "job_name", "--job-name": "job_name",
}
GPU_OPTIONS = ("--gres", "--gpus-per-node", "--gpus", "-G")


def split_directive(line: str) -> tuple[str, str]:
    """An `#SBATCH` option and its value, from the forms users write.

    >>> split_directive("--time 0-00:01:00"), split_directive("-p gpu"), split_directive("--gres=gpu:h100:2")
    (('--time', '0-00:01:00'), ('-p', 'gpu'), ('--gres', 'gpu:h100:2'))
    >>> split_directive("-pgpu"), split_directive("--exclusive")
    (('-p', 'gpu'), ('--exclusive', ''))
    """
    text = line.strip()
    if text.startswith("#SBATCH"):
        text = text[len("#SBATCH"):].strip()
    if text.startswith("--"):
        option, sep, value = text.partition("=")
        if not sep:
            option, _sep, value = text.partition(" ")
        return option.strip(), value.strip()
    if text.startswith("-") and len(text) >= 2:
        return text[:2], text[2:].strip().lstrip("=").strip()
    return text, ""


def parse_gpu_directive(option: str, value: str) -> tuple[str | None, int] | None:
    """(GPU type or None, count) of a GPU request line; None when it asks for no GPU.

    >>> parse_gpu_directive("--gres", "gpu:h100:2"), parse_gpu_directive("--gres", "gpu:1")
    (('h100', 2), (None, 1))
    >>> parse_gpu_directive("--gpus-per-node", "h100_1g.10gb:1"), parse_gpu_directive("--gpus", "2")
    (('h100_1g.10gb', 1), (None, 2))
    >>> parse_gpu_directive("--gres", "lscratch:10") is None
    True
    """
    if option == "--gres":
        if not value.startswith("gpu"):
            return None
        parts = value.split(":")[1:]
    else:
        parts = value.split(":")
    parts = [p for p in parts if p]
    if not parts:
        return None, 1
    if parts[-1].isdigit():
        count, kind = int(parts[-1]), parts[:-1]
    else:
        count, kind = 1, parts
    return (kind[-1] if kind else None), count


def lifetime_args(walltime_seconds: int) -> list[str]:
    """Worker `--lifetime`/`--lifetime-stagger` ending the worker before Slurm's walltime.

    The margin is 5 minutes (a fifth of short walltimes); the stagger, a fifth
    of the margin, spreads the workers' departures, and lifetime + stagger
    still ends before the walltime.

    >>> lifetime_args(3600)
    ['--lifetime', '3300s', '--lifetime-stagger', '60s']
    >>> lifetime_args(600)
    ['--lifetime', '480s', '--lifetime-stagger', '24s']
    """
    margin = min(300, max(walltime_seconds // 5, min(30, walltime_seconds // 2)))
    stagger = max(margin // 5, 1)
    return ["--lifetime", f"{walltime_seconds - margin}s", "--lifetime-stagger", f"{stagger}s"]


def job_settings(
    preset: ClusterPreset,
    request: ValidRequest,
    tags: JobTags,
    *,
    log_directory: str | None = None,
    role: str = "dask-worker",
) -> dict[str, Any]:
    """Keyword arguments of SLURMJob for this request (pure)."""
    directives = [f"--comment={tags.comment()}"]
    skip: list[str] = []
    if request.gpus:
        directives.append(gpu_directive(preset.gpu_directive, request.gpu_type, request.gpus))
    if request.memory_per_gpu:
        directives.append(f"--mem-per-gpu={request.memory_per_gpu}")
        skip.append("--mem=")  # Slurm refuses --mem together with --mem-per-gpu
    if log_directory:
        directives += [f"--output={log_directory}/%x-%j.out", f"--error={log_directory}/%x-%j.err"]
    return dict(
        queue=request.partition,
        account=request.account,
        walltime=request.walltime,
        cores=request.cores,
        memory=format_bytes(request.memory).replace(" ", ""),
        processes=request.processes,
        job_name=tags.job_name(role),
        job_extra_directives=directives,
        job_directives_skip=skip,
        local_directory=preset.local_directory,
        worker_extra_args=lifetime_args(request.walltime_seconds),
        job_script_prologue=list(preset.job_script_prologue),
        log_directory=None,  # ours go in directives, named per array task
    )


def array_spec(indices: Iterable[int]) -> str:
    """Slurm's --array value for a set of indices, runs compressed.

    >>> array_spec([5, 0, 1, 2, 7, 8])
    '0-2,5,7-8'
    >>> array_spec([3])
    '3'
    """
    out, run = [], []
    for i in sorted(set(indices)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def array_script(script: str, spec: str) -> str:
    r"""The script with its `#SBATCH --array=` line, after the other directives (pure).

    The same value goes on sbatch's command line; in the script it makes the
    script alone say what is submitted (`ARCCluster.job_script()` shows it).

    >>> print(array_script("#!/bin/sh\n\n#SBATCH -J w\n#SBATCH -t 10\nexport X=1\npython w.py\n", "0-3"))
    #!/bin/sh
    <BLANKLINE>
    #SBATCH -J w
    #SBATCH -t 10
    #SBATCH --array=0-3
    export X=1
    python w.py
    <BLANKLINE>
    """
    lines = script.split("\n")
    last = max((i for i, line in enumerate(lines) if line.startswith("#SBATCH")), default=0)
    lines.insert(last + 1, f"#SBATCH --array={spec}")
    return "\n".join(lines)


def parse_job_id(parsable: str) -> str:
    """The job id from `sbatch --parsable` output (`<id>` or `<id>;<cluster>`).

    >>> parse_job_id("1234\\n"), parse_job_id("1234;fir")
    ('1234', '1234')
    """
    m = re.match(r"\s*(\d+)", parsable)
    if not m:
        raise SlurmCommandError("?", ["sbatch"], 0, _("could not read a job id from sbatch output {output}").format(
            output=repr(parsable)))
    return m.group(1)


def array_index(name: str, prefix: str) -> int | None:
    """The array index in a worker name `<prefix>-<i>`; None for other names.

    >>> array_index("ARCCluster-12", "ARCCluster"), array_index("dummy-name", "ARCCluster")
    (12, None)
    """
    head, _, tail = str(name).rpartition("-")
    return int(tail) if head == prefix and tail.isdigit() else None


# ---------------------------------------------------------------- batching


class ArrayBatcher:
    """Turns the worker jobs started together into one `sbatch --array`, and their cancels into one `scancel`.

    `window` (seconds) is how long the first request waits for others; the
    cluster starts all new workers in the same event-loop turn, so a few tens
    of milliseconds catch them all.
    """

    def __init__(
        self,
        transport: Transport,
        window: float = 0.02,
        throttle: int | None = None,
        on_submitted: Callable[[str, list[int]], None] | None = None,
        on_finished: Callable[[str], None] | None = None,
    ):
        self.transport = transport
        self.window = window
        self.throttle = throttle
        self.on_submitted = on_submitted
        self.on_finished = on_finished
        self.submissions = 0  # sbatch calls made
        self.last_error: BaseException | None = None  # the last failed submission (shown by widgets)
        self._submit_queue: dict[int, tuple[asyncio.Future, str]] = {}
        self._cancel_queue: dict[str, asyncio.Future] = {}
        self._submit_task: asyncio.Task | None = None
        self._cancel_task: asyncio.Task | None = None
        self._live: dict[str, set[int]] = {}  # array job id -> indices not yet closed

    def spec(self, indices: Iterable[int]) -> str:
        """The --array value for these indices (with the throttle, if any)."""
        return array_spec(indices) + (f"%{self.throttle}" if self.throttle else "")

    async def submit(self, index: int, script: str) -> str:
        """Submit (batched) one array task; returns its id `<job>_<index>`."""
        future = asyncio.get_running_loop().create_future()
        if index in self._submit_queue:
            raise ValueError(f"array index {index} requested twice in one batch")
        self._submit_queue[index] = (future, script)
        if self._submit_task is None:
            self._submit_task = asyncio.ensure_future(self._flush_submits())
        return await future

    async def _flush_submits(self) -> None:
        await asyncio.sleep(self.window)
        batch, self._submit_queue, self._submit_task = self._submit_queue, {}, None
        by_script: dict[str, list[int]] = {}
        for index, (_, script) in batch.items():
            by_script.setdefault(script, []).append(index)
        for script, indices in by_script.items():
            spec = self.spec(indices)
            try:
                self.submissions += 1
                out = await self.transport.run(["sbatch", "--parsable", f"--array={spec}"],
                                               stdin=array_script(script, spec))
                job_id = parse_job_id(out)
            except Exception as exc:
                self.last_error = exc
                logger.error("submitting array tasks %s failed: %s", spec, exc)
                for i in indices:
                    if not batch[i][0].done():
                        batch[i][0].set_exception(exc)
                continue
            self.last_error = None
            self._live.setdefault(job_id, set()).update(indices)
            if self.on_submitted:
                try:
                    self.on_submitted(job_id, sorted(indices))
                except Exception:  # never lose the job ids because bookkeeping failed
                    logger.exception("could not record array job %s", job_id)
            for i in indices:
                if not batch[i][0].done():
                    batch[i][0].set_result(f"{job_id}_{i}")

    async def cancel(self, task_id: str) -> None:
        """Cancel (batched) one array task `<job>_<index>` or a plain job id; a gone job is not an error."""
        if task_id in self._cancel_queue:
            return await asyncio.shield(self._cancel_queue[task_id])
        future = asyncio.get_running_loop().create_future()
        self._cancel_queue[task_id] = future
        if self._cancel_task is None:
            self._cancel_task = asyncio.ensure_future(self._flush_cancels())
        await asyncio.shield(future)

    async def _flush_cancels(self) -> None:
        await asyncio.sleep(self.window)
        batch, self._cancel_queue, self._cancel_task = self._cancel_queue, {}, None
        error: BaseException | None = None
        try:
            await self.transport.run(["scancel", *sorted(batch)])
        except SlurmCommandError as exc:  # e.g. some tasks already finished: scancel says so, the rest are cancelled
            logger.debug("scancel reported: %s", exc)
        except SlurmUnavailable as exc:
            error = exc
        for task_id, future in batch.items():
            if error is None:
                self._closed(task_id)
            if not future.done():
                future.set_exception(error) if error else future.set_result(None)

    def _closed(self, task_id: str) -> None:
        job_id, _, index = task_id.partition("_")
        live = self._live.get(job_id)
        if live is None:
            return
        live.discard(int(index)) if index.isdigit() else live.clear()
        if not live:
            del self._live[job_id]
            if self.on_finished:
                try:
                    self.on_finished(job_id)
                except Exception:
                    logger.exception("could not forget array job %s", job_id)

    @property
    def live_jobs(self) -> dict[str, set[int]]:
        return {k: set(v) for k, v in self._live.items()}


# ---------------------------------------------------------------- the job


class ARCJob(SLURMJob):
    """One Dask worker job (or array task) on an ARC cluster.

    Extra keyword arguments (given by ARCCluster):
    transport: where Slurm commands run; batcher: an ArrayBatcher (array mode)
    or None (one sbatch per job); worker_prefix: the cluster's worker-name prefix.

    The dask-jobqueue configuration keys ARCCluster resolves itself
    (`compat.RESOLVED_CONFIG`: queue, account, walltime, interface, log folder,
    deprecated names, ...) are hidden from SLURMJob while it builds the script,
    so a configured value the preset did not accept cannot come back through
    dask-jobqueue's own lookups.
    """

    config_name = "slurm"

    def __init__(
        self,
        scheduler=None,
        name=None,
        *,
        transport: Transport | None = None,
        batcher: ArrayBatcher | None = None,
        worker_prefix: str | None = None,
        **kwargs,
    ):
        self.transport = transport
        self.batcher = batcher
        self.array_index = array_index(name, worker_prefix) if (batcher and worker_prefix) else None
        worker_name = name
        if batcher is not None and worker_prefix:
            # One script for every task: the worker takes its name from the array index.
            worker_name = f"{worker_prefix}-{ARRAY_TASK_VAR}"
        from .compat import RESOLVED_CONFIG

        section = kwargs.get("config_name") or self.default_config_name()
        with dask.config.set({f"jobqueue.{section}.{key}": None for key in RESOLVED_CONFIG}):
            super().__init__(scheduler=scheduler, name=worker_name, **kwargs)
        self.name = name

    async def start(self):
        script = self.job_script()
        if self.batcher is not None and self.array_index is not None:
            self.job_id = await self.batcher.submit(self.array_index, script)
        else:
            out = await self.transport.run(["sbatch", "--parsable"], stdin=script)
            self.job_id = parse_job_id(out)
        logger.debug("worker %s is Slurm job %s", self.name, self.job_id)
        await ProcessInterface.start(self)

    async def close(self):
        try:
            if not self.job_id:
                return
            if self.batcher is not None:
                await self.batcher.cancel(self.job_id)
            else:
                with suppress(SlurmCommandError):  # already gone
                    await self.transport.run(["scancel", self.job_id])
        except SlurmUnavailable as exc:
            # The job stays recorded in the registry; the server's shutdown hook
            # and the hub's reconcile cancel it once Slurm answers again.
            logger.warning("could not cancel Slurm job %s: %s", self.job_id, exc)
        finally:
            await ProcessInterface.close(self)
