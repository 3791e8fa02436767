"""Running Slurm commands: on this host, on a login/automation node over SSH, or through slurmrestd.

The `rest` backend (scip_jupyter/arc/rest.py) speaks the same argv over the
Slurm REST API with the person's own hub-minted JWT.

One base, small backends. Every caller (the ARC cluster, the job poller, the
server extension, the hub hooks) runs Slurm through `Transport.run(argv, stdin)`:

- `argv` is a list, never a shell string: the local backend executes it
  directly, and the SSH backend quotes it with `shlex.join` for the remote
  forced command, which splits it again without a shell.
- A job script goes on standard input (`sbatch --parsable` reads it there), so
  nothing is written to a shared filesystem and the automation node's forced
  command (only sbatch, squeue, scontrol, scancel) suffices.
- Nothing hangs: every call has a timeout. When the controller (or the SSH
  node) does not answer, `SlurmUnavailable` names the cluster and what to check.
  A command Slurm answers with an error (bad option, unknown job) raises
  `SlurmCommandError` with Slurm's own message.

Each transport counts its calls per command (`calls`), which the tests and the
benchmark read to count submissions.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Mapping, Sequence, TypeVar

from ..i18n import _

#: Commands the Alliance automation nodes allow (the Slurm four, plus `cat` to read
#: files a job wrote); the SSH transport refuses anything else locally, before
#: a connection is made.
ALLOWED_REMOTE_COMMANDS = ("sbatch", "squeue", "scontrol", "scancel", "cat")

DEFAULT_TIMEOUT = 30.0
T = TypeVar("T")

#: Slurm client messages that mean "the controller did not answer" (not "your request is wrong").
_UNAVAILABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|"
    r"Zero Bytes were transmitted|Communication connection failure|"
    r"backup controller in standby|Munge (?:encode|decode) failed|"
    r"Could not establish a configuration source|Unable to establish controller",
    re.IGNORECASE,
)

#: Environment variables never handed to sbatch: Slurm copies the submitting
#: environment into the job (--export=ALL), and a hub token there would leak.
_SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSW|API_KEY|PRIVATE|CREDENTIAL|JWT", re.IGNORECASE)


class SlurmError(RuntimeError):
    """Base of transport errors. A RuntimeError, as dask-jobqueue expects from its `_call`."""


class SlurmUnavailable(SlurmError):
    """The Slurm controller (or the node we reach it through) did not answer."""

    def __init__(self, cluster: str, command: str, detail: str, hint: str = ""):
        self.cluster = cluster
        self.command = command
        self.detail = detail.strip()
        self.hint = hint
        msg = _("Slurm on cluster {cluster} is not answering ({command}: {detail}).").format(
            cluster=repr(cluster), command=command, detail=self.detail)
        if hint:
            msg += " " + _("Check: {hint}").format(hint=hint)
        super().__init__(msg)


class SlurmCommandError(SlurmError):
    """Slurm answered, but refused the command (non-zero exit)."""

    def __init__(self, cluster: str, argv: Sequence[str], returncode: int, stderr: str):
        self.cluster = cluster
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(_("{command} on cluster {cluster} failed (exit {returncode}): {stderr}").format(
            command=argv[0], cluster=repr(cluster), returncode=returncode, stderr=self.stderr or _("(no message)")))


def json_load_failure(text: str) -> str | None:
    """What a Slurm `--json` answer says went wrong when it holds errors and no data, else None.

    >>> json_load_failure('{"errors": [{"description": "Failed while looking for jobs", "source": "slurm_load_jobs"}], "jobs": []}')
    'Failed while looking for jobs (slurm_load_jobs)'
    >>> json_load_failure('{"errors": [], "jobs": []}') is None, json_load_failure('not json') is None
    (True, True)
    """
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
    if not errors or any(data.get(key) for key in ("jobs", "nodes", "partitions")):
        return None
    return "; ".join(
        f"{e.get('description') or e.get('error') or 'error'} ({e.get('source', 'slurm')})" for e in errors
    )


def is_unavailable_message(text: str) -> bool:
    """Does Slurm's error text mean the controller could not be reached?

    >>> is_unavailable_message("slurm_load_jobs error: Unable to contact slurm controller (connect failure)")
    True
    >>> is_unavailable_message("sbatch: error: invalid partition specified: nope")
    False
    """
    return bool(_UNAVAILABLE.search(text or ""))


def clean_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for Slurm commands, without secrets.

    >>> sorted(clean_environment({"PATH": "/bin", "JUPYTERHUB_API_TOKEN": "x", "SLURM_CONF": "/c"}))
    ['PATH', 'SLURM_CONF']
    """
    return {k: v for k, v in env.items() if not _SECRET_ENV.search(k)}


def run_blocking(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from synchronous code and return its result.

    Works inside a running event loop too (a notebook kernel, a hub hook): there the
    coroutine runs on its own loop in a short-lived thread, and its exception is
    re-raised in the caller's thread.

    >>> async def two(): return 2
    >>> run_blocking(two())
    2
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: dict = {}

    def target():
        try:
            result["out"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            result["exc"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "exc" in result:
        raise result["exc"]
    return result["out"]


def _os_account() -> str | None:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return None


class Transport:
    """Runs Slurm commands for one cluster. Subclasses implement `_run`."""

    kind = "abstract"

    def __init__(self, cluster: str = "slurm", hint: str = "", timeout: float = DEFAULT_TIMEOUT):
        self.cluster = cluster
        self.hint = hint or self.default_hint()
        self.timeout = timeout
        self.calls: Counter[str] = Counter()  # command name -> calls made
        self.log: list[list[str]] = []  # argv of every call, in order (tests, benchmark)

    def default_hint(self) -> str:
        return _("that slurmctld runs (`scontrol ping`) and munge answers")

    @property
    def account(self) -> str | None:
        """The Slurm account commands run as (owner of what this transport submits); None if unknown."""
        return None

    async def run(self, argv: Sequence[str], stdin: str | None = None, timeout: float | None = None) -> str:
        """Run one Slurm command; returns its standard output.

        Raises SlurmUnavailable (controller or node unreachable, or timeout) or
        SlurmCommandError (Slurm refused the command).
        """
        argv = [str(a) for a in argv]
        if not argv:
            raise ValueError("empty command")
        self.calls[argv[0]] += 1
        self.log.append(argv)
        timeout = self.timeout if timeout is None else timeout
        try:
            returncode, out, err = await asyncio.wait_for(self._run(argv, stdin, timeout), timeout)
        except asyncio.TimeoutError:
            raise SlurmUnavailable(self.cluster, argv[0], _("no answer within {timeout}s").format(timeout=f"{timeout:g}"),
                                   self.hint) from None
        if returncode != 0:
            if is_unavailable_message(err) or is_unavailable_message(out):
                raise SlurmUnavailable(self.cluster, argv[0], (err or out).strip().splitlines()[-1], self.hint)
            raise SlurmCommandError(self.cluster, argv, returncode, err or out)
        failure = json_load_failure(out) if "--json" in argv else None
        if failure:  # squeue --json exits 0 with an "errors" list when it cannot reach slurmctld
            raise SlurmUnavailable(self.cluster, argv[0], failure, self.hint)
        return out

    def run_sync(self, argv: Sequence[str], stdin: str | None = None, timeout: float | None = None) -> str:
        """`run` for synchronous callers (CLI, hub hooks); works inside a running event loop too.

        Each call runs on its own short-lived event loop, and its connections are closed after it.
        """

        async def once() -> str:
            try:
                return await self.run(argv, stdin, timeout)
            finally:
                await self.close()

        return run_blocking(once())

    async def _run(self, argv: list[str], stdin: str | None, timeout: float) -> tuple[int, str, str]:
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections (nothing to do for local commands)."""

    def describe(self) -> str:
        return self.kind


class LocalTransport(Transport):
    """Slurm commands on this host (`sbatch` etc. on PATH).

    `slurm_conf` points the client commands at one cluster's config (it wins
    over SLURM_CONF in the environment: choosing a preset chooses its cluster);
    without it, Slurm's own lookup applies (SLURM_CONF, then /etc/slurm).
    """

    kind = "local"

    def __init__(self, cluster: str = "slurm", slurm_conf: str | os.PathLike | None = None, **kwargs):
        super().__init__(cluster, **kwargs)
        self.slurm_conf = str(slurm_conf) if slurm_conf else None

    def default_hint(self) -> str:
        return _("that slurmctld runs on this host (`scontrol ping`; for the local cluster `scripts/slurm-local status`) "
                 "and munge answers")

    @property
    def account(self) -> str | None:
        return _os_account()

    def environment(self) -> dict[str, str]:
        env = clean_environment(os.environ)
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        return env

    async def _run(self, argv, stdin, timeout):
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.environment(),
                start_new_session=True,  # a Ctrl-C in the notebook does not hit sbatch half-way
            )
        except FileNotFoundError:
            raise SlurmUnavailable(
                self.cluster, argv[0], _("{command} is not installed on this host").format(command=argv[0]),
                _("that the Slurm client commands are on PATH (Debian package slurm-client)"),
            ) from None
        try:
            out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def describe(self) -> str:
        return f"local (SLURM_CONF={self.environment().get('SLURM_CONF', 'default')})"


@dataclass(frozen=True)
class SSHTarget:
    host: str
    user: str | None = None
    port: int = 22
    key: str | None = None  # private key path
    known_hosts: str | None = None  # path; None = the user's ~/.ssh/known_hosts


class SSHTransport(Transport):
    """Slurm commands on a login or automation node, over one reused SSH connection.

    Each command is a separate SSH channel on the same connection (asyncssh),
    so scaling up never opens dozens of connections (sshd's MaxStartups). Only
    the commands automation nodes allow are sent; the command line is quoted
    for a forced command that splits it without a shell; scripts go on stdin.
    Host keys are always checked (known_hosts).
    """

    kind = "ssh"

    def __init__(
        self,
        cluster: str,
        target: SSHTarget,
        connect_timeout: float = 15.0,
        max_channels: int = 8,
        credentials=None,
        renew_margin: float = 300.0,
        **kwargs,
    ):
        super().__init__(cluster, **kwargs)
        self.target = target
        # The person's own short-lived certificate (scip_jupyter/ssh_ca.py): an async callable
        # returning an SSHCredential; asked again (and reconnected) before it expires.
        self.credentials = credentials
        self.renew_margin = renew_margin
        self._credential = None
        self.renewals = 0
        self.connect_timeout = connect_timeout
        # sshd allows MaxSessions (default 10) channels per connection: stay below it.
        self.max_channels = max_channels
        # One connection per event loop (run_sync runs its own loops): loop id -> (loop, connection, channel slots)
        self._conns: dict[int, tuple[asyncio.AbstractEventLoop, object, asyncio.Semaphore]] = {}
        self._connecting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = {}

    def default_hint(self) -> str:
        return _("that the login/automation node is reachable with your key and that slurmctld answers there "
                 "(`scontrol ping`)")

    @property
    def account(self) -> str | None:
        if self.target.user:
            return self.target.user
        return self._credential.principal if self._credential else _os_account()

    def command_line(self, argv: list[str]) -> str:
        """The remote command line; refuses commands the automation node would refuse.

        >>> SSHTransport("fir", SSHTarget("robot.fir")).command_line(["squeue", "--me", "-o", "%i %T"])
        "squeue --me -o '%i %T'"
        """
        if argv[0] not in ALLOWED_REMOTE_COMMANDS:
            raise SlurmCommandError(
                self.cluster, argv, 126,
                f"{argv[0]} is not allowed through the automation node; allowed: {', '.join(ALLOWED_REMOTE_COMMANDS)}",
            )
        return shlex.join(argv)

    async def _connection(self):
        loop = asyncio.get_running_loop()
        for table in (self._conns, self._connecting):  # forget connections of finished loops
            for key in [k for k, v in table.items() if v[0].is_closed()]:
                del table[key]
        _, lock = self._connecting.setdefault(id(loop), (loop, asyncio.Lock()))
        async with lock:  # concurrent first calls share one connection
            entry = self._conns.get(id(loop))
            stale = self.credentials is not None and (self._credential is None or not self._credential.fresh(self.renew_margin))
            if entry is not None and not entry[1].is_closed() and not stale:
                return entry[1], entry[2]
            if entry is not None and stale:
                entry[1].close()  # its certificate is about to expire: reconnect with a fresh one
            conn = await self._connect()
            self._conns[id(loop)] = (loop, conn, asyncio.Semaphore(self.max_channels))
            return conn, self._conns[id(loop)][2]

    async def _connect(self):
        import asyncssh

        t = self.target
        client_keys = [str(Path(t.key).expanduser())] if t.key else None
        if self.credentials is not None:
            if self._credential is None or not self._credential.fresh(self.renew_margin):
                try:
                    self._credential = await self.credentials()
                except Exception as exc:
                    raise SlurmUnavailable(self.cluster, "ssh", _("could not get an SSH certificate: {error}").format(
                        error=exc), self.hint) from None
                self.renewals += 1
            client_keys = [(self._credential.key, self._credential.certificate)]
        options = dict(
            host=t.host,
            port=t.port,
            username=t.user or (self._credential.principal if self._credential else None),
            known_hosts=str(Path(t.known_hosts).expanduser()) if t.known_hosts else (),
            client_keys=client_keys,
            agent_path=None,
            connect_timeout=self.connect_timeout,
        )
        if not t.known_hosts:
            options.pop("known_hosts")  # asyncssh default: ~/.ssh/known_hosts
        try:
            conn = await asyncssh.connect(**options)
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
            raise SlurmUnavailable(
                self.cluster, "ssh", _("cannot connect to {target}: {error}").format(
                    target=f"{t.user + '@' if t.user else ''}{t.host}:{t.port}", error=exc),
                self.hint,
            ) from None
        return conn

    async def _run(self, argv, stdin, timeout):
        import asyncssh

        command = self.command_line(argv)
        conn, slots = await self._connection()
        try:
            # The caller's asyncio.wait_for bounds the time; cancelling closes the channel.
            async with slots:
                result = await conn.run(command, input=stdin, check=False)
        except (OSError, asyncssh.Error) as exc:
            self._conns.pop(id(asyncio.get_running_loop()), None)
            raise SlurmUnavailable(self.cluster, argv[0], _("ssh channel failed: {error}").format(error=exc),
                                   self.hint) from None
        code = result.exit_status if result.exit_status is not None else 255
        return code, str(result.stdout or ""), str(result.stderr or "")

    async def close(self) -> None:
        entry = self._conns.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            entry[1].close()
            await entry[1].wait_closed()

    def describe(self) -> str:
        t = self.target
        return f"ssh {t.user + '@' if t.user else ''}{t.host}:{t.port}"


def transport_for(preset, timeout: float = DEFAULT_TIMEOUT) -> Transport:
    """The transport a preset (`scip_jupyter.arc.presets.ClusterPreset`) names."""
    cfg = preset.transport
    hint = preset.unavailable_hint
    if cfg.kind == "local":
        return LocalTransport(preset.name, slurm_conf=cfg.slurm_conf, hint=hint, timeout=timeout)
    if cfg.kind == "ssh":
        target = SSHTarget(host=cfg.host, user=cfg.user, port=cfg.port, key=cfg.key, known_hosts=cfg.known_hosts)
        credentials = None
        if getattr(cfg, "credentials", "key") == "hub":
            from ..ssh_ca import hub_certificate_source

            credentials = hub_certificate_source(preset.name)
        return SSHTransport(preset.name, target, hint=hint, timeout=timeout, credentials=credentials)
    if cfg.kind == "rest":
        from ..identity import env_token_source, hub_token_source
        from .rest import RestTransport

        source = hub_token_source() if cfg.credentials == "hub" else env_token_source()
        return RestTransport(preset.name, cfg.url, source, api_version=cfg.api_version, hint=hint, timeout=timeout)
    raise ValueError(f"unknown transport kind {cfg.kind!r}")
