"""The `rest` transport: Slurm commands through slurmrestd, as the person, with a hub-minted JWT.

Callers keep speaking argv (`sbatch`, `squeue`, `scancel`), exactly as with the
local and ssh transports, so ARCCluster works over it unchanged:

- `sbatch [options] < script` becomes `POST /slurm/<v>/job/submit`. slurmrestd
  does not read `#SBATCH` lines, so `sbatch_request()` (pure) reads them as
  sbatch does (before the first command; the command line wins) and turns
  every option into a job property; an option it does not know is refused
  with its name, never dropped silently. The job's environment is the caller's
  minus secrets (sbatch's `--export=ALL`, as the local transport);
- `squeue ...` becomes `GET /slurm/<v>/jobs`; its JSON is what `squeue --json`
  prints, which `states.parse_squeue` reads (filtered by user there);
- `scancel ID...` becomes one `DELETE /slurm/<v>/job/<id>` per id. Slurm itself
  refuses another person's job.

In-job runs (injob.py) work over it too. slurmrestd runs no other command, so
it cannot read the files such a run writes (the ssh transport uses the
automation node's `cat`): their run folder is on storage this server shares
with the cluster, read here directly, and a handshake in it proves it is shared
before the job runs anything (injob_folder.py).

Credentials: `credentials` is a `TokenSource` returning the person's
`SlurmToken` (user name + JWT + expiry). The transport asks again before the
token expires (`renew_margin`) and once more when slurmrestd answers 401, so a
running server gets a fresh token without the person doing anything. The token
is sent only in headers to slurmrestd and never logged or passed to jobs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

from ..i18n import _
from .transport import SlurmCommandError, SlurmUnavailable, Transport, clean_environment

API_VERSION = "v0.0.38"


@dataclass(frozen=True)
class SlurmToken:
    """A person's Slurm JWT: for `user`, valid until `expires` (epoch seconds)."""

    user: str
    token: str
    expires: float

    def __repr__(self) -> str:  # never print the token itself
        return f"SlurmToken(user={self.user!r}, expires={self.expires:.0f})"

    def fresh(self, margin: float, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) < self.expires - margin


#: A token source: called (awaited) whenever a new token is needed.
TokenSource = Callable[[], Awaitable[SlurmToken]]


# ---------------------------------------------------------------- sbatch options -> job properties

#: sbatch option (long name) -> job property of slurmrestd's v0.0.38 job description.
#: Values are passed as strings: slurmrestd parses them as sbatch parses its options.
SBATCH_OPTIONS: dict[str, str] = {
    "job-name": "name",
    "comment": "comment",
    "partition": "partition",
    "account": "account",
    "time": "time_limit",
    "time-min": "time_minimum",
    "ntasks": "tasks",
    "ntasks-per-node": "tasks_per_node",
    "nodes": "nodes",
    "cpus-per-task": "cpus_per_task",
    "cpus-per-gpu": "cpus_per_gpu",
    "mem": "memory_per_node",
    "mem-per-cpu": "memory_per_cpu",
    "mem-per-gpu": "memory_per_gpu",
    "gpus": "gpus",
    "gpus-per-node": "gpus_per_node",
    "gpus-per-task": "gpus_per_task",
    "gres": "gres",
    "array": "array",
    "output": "standard_output",
    "error": "standard_error",
    "input": "standard_input",
    "chdir": "current_working_directory",
    "begin": "begin_time",
    "qos": "qos",
    "constraint": "constraints",
    "reservation": "reservation",
    "dependency": "dependency",
    "signal": "signal",
    "nice": "nice",
    "mail-type": "mail_type",
    "mail-user": "mail_user",
    "licenses": "licenses",
    "wckey": "wckey",
    "deadline": "deadline",
    "wrap": "wrap",  # becomes the script (sbatch --wrap)
}
#: Flags (no value) -> (property, value).
SBATCH_FLAGS: dict[str, tuple[str, object]] = {
    "hold": ("hold", True),
    "requeue": ("requeue", True),
    "no-requeue": ("requeue", False),
    "exclusive": ("exclusive", "true"),
    "parsable": ("", None),  # output format only: handled by the transport
}
SHORT = {"J": "job-name", "p": "partition", "A": "account", "t": "time", "n": "ntasks", "N": "nodes",
         "c": "cpus-per-task", "G": "gpus", "a": "array", "o": "output", "e": "error", "i": "input",
         "D": "chdir", "b": "begin", "q": "qos", "C": "constraint", "d": "dependency", "H": "hold"}  # fmt: skip
#: Options accepted and ignored: the transport decides the environment (the caller's, minus secrets).
IGNORED = {"export", "get-user-env"}


class SbatchOptionError(ValueError):
    """An sbatch option the REST transport cannot pass on (its name and where it was)."""


def script_directives(script: str) -> list[str]:
    """The `#SBATCH` options of a script, in order, up to its first command (as sbatch reads them).

    >>> script_directives("#!/bin/bash\\n#SBATCH -J x\\n#SBATCH --mem=1G # note\\necho\\n#SBATCH --late")
    ['-J', 'x', '--mem=1G']
    """
    out: list[str] = []
    for line in script.splitlines()[1:] if script.startswith("#!") else script.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        if stripped.startswith("#SBATCH"):
            text = stripped[len("#SBATCH"):].split(" #", 1)[0]
            out += shlex.split(text, comments=False)
    return out


def parse_options(args: Sequence[str], where: str) -> tuple[dict[str, object], list[str]]:
    """sbatch options -> (job properties, positional arguments). Raises SbatchOptionError naming the option.

    >>> parse_options(["-J", "w", "--mem=2G", "--hold", "-n", "1", "script.sh"], "command line")
    ({'name': 'w', 'memory_per_node': '2G', 'hold': True, 'tasks': '1'}, ['script.sh'])
    """
    props: dict[str, object] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--" or not arg.startswith("-") or arg == "-":
            rest += args[i - 1:] if arg != "--" else args[i:]
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            has_value = bool(eq)
        else:
            name, value = SHORT.get(arg[1:2], arg[1:2]), arg[2:]
            has_value = bool(value)
            if not arg[1:2] in SHORT:
                raise SbatchOptionError(_("{where}: sbatch option {option} is not supported by the rest transport").format(
                    where=where, option=arg))
        if name in SBATCH_FLAGS:
            key, val = SBATCH_FLAGS[name]
            if key:
                props[key] = val
            continue
        if name in IGNORED:
            if not has_value and i < len(args) and not args[i].startswith("-") and name == "export":
                i += 1
            continue
        if name not in SBATCH_OPTIONS:
            raise SbatchOptionError(_(
                "{where}: sbatch option {option} is not supported by the rest transport (supported: {supported})"
            ).format(where=where, option=f"--{name}", supported=", ".join("--" + k for k in sorted(SBATCH_OPTIONS))))
        if not has_value:
            if i >= len(args):
                raise SbatchOptionError(_("{where}: sbatch option {option} needs a value").format(where=where, option=f"--{name}"))
            value = args[i]
            i += 1
        props[SBATCH_OPTIONS[name]] = value
    return props, rest


def sbatch_request(argv: Sequence[str], script: str | None, environment: dict[str, str], cwd: str) -> dict:
    """The body of POST /job/submit for `sbatch <argv[1:]>` with `script` on stdin (pure).

    Directives in the script first, the command line over them, as sbatch does.

    >>> body = sbatch_request(["sbatch", "--parsable", "--array=0-3"], "#!/bin/sh\\n#SBATCH -J w\\nsleep 1\\n", {"PATH": "/bin"}, "/home/a")
    >>> body["job"]["name"], body["job"]["array"], body["job"]["current_working_directory"]
    ('w', '0-3', '/home/a')
    """
    cli, positional = parse_options(list(argv[1:]), "sbatch command line")
    wrap = cli.pop("wrap", None)
    if positional:
        raise SbatchOptionError(_("sbatch command line: a script file ({path}) cannot be sent; pass the script on standard "
                                 "input").format(path=positional[0]))
    if wrap is not None:
        script = f"#!/bin/sh\n{wrap}\n"
    if script is None:
        raise SbatchOptionError(_("no script on standard input (and no --wrap)"))
    in_script, _positional = parse_options(script_directives(script), "#SBATCH line")
    job: dict[str, object] = {"current_working_directory": cwd, "environment": dict(environment)}
    job.update(in_script)
    job.update(cli)
    return {"script": script, "job": job}


def _errors(body: dict) -> list[str]:
    out = []
    for e in body.get("errors") or []:
        if isinstance(e, dict):
            text = e.get("description") or e.get("error") or ""
            if text and text not in out:
                out.append(str(text))
    return out


def _auth_failed(status: int, data: dict) -> bool:
    """Did slurmctld refuse the token? It drops the connection ("Zero Bytes..." / "Unspecified error",
    its log says `auth_p_verify: token expired`) and slurmrestd answers 500; a missing token is a 401."""
    if status == 401:
        return True
    if status < 500:
        return False
    for e in data.get("errors") or []:
        if isinstance(e, dict) and (5005 in (e.get("error_code"), e.get("error_number")) or e.get("error") == "Unspecified error"):
            return True
    return False


#: scancel of a job that already ended is not an error (as with scancel itself).
_ALREADY_DONE = re.compile(r"already (?:completing or )?completed|has already finished|already complete", re.I)


# ---------------------------------------------------------------- the transport


class RestTransport(Transport):
    """Slurm through slurmrestd (JWT), as the person the credentials belong to."""

    kind = "rest"

    def __init__(
        self,
        cluster: str,
        url: str,
        credentials: TokenSource,
        api_version: str = API_VERSION,
        renew_margin: float = 120.0,
        workdir: str | None = None,
        **kwargs,
    ):
        super().__init__(cluster, **kwargs)
        self.url = url.rstrip("/")
        self.credentials = credentials
        self.api_version = api_version
        self.renew_margin = renew_margin
        self.workdir = workdir
        self._token: SlurmToken | None = None
        self._token_lock: dict[int, asyncio.Lock] = {}
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, object]] = {}
        self.renewals = 0  # tokens fetched (tests read it)

    def default_hint(self) -> str:
        return _("that slurmrestd answers at the preset's url (`scripts/slurm-local status` for the local cluster) "
                 "and that the hub can mint your Slurm token")

    @property
    def account(self) -> str | None:
        return self._token.user if self._token else None

    def describe(self) -> str:
        return f"rest {self.url} ({self.api_version})"

    # ------------------------------------------------------------ credentials

    async def token(self, force: bool = False) -> SlurmToken:
        """The current token, renewed when it expires within `renew_margin` (or when forced)."""
        loop = asyncio.get_running_loop()
        lock = self._token_lock.setdefault(id(loop), asyncio.Lock())
        async with lock:
            if force or self._token is None or not self._token.fresh(self.renew_margin):
                try:
                    self._token = await self.credentials()
                except SlurmUnavailable:
                    raise
                except Exception as exc:
                    raise SlurmUnavailable(self.cluster, "token", _("could not get a Slurm token: {error}").format(
                        error=exc), self.hint) from None
                self.renewals += 1
            return self._token

    # ------------------------------------------------------------ HTTP

    def _client(self):
        import httpx

        loop = asyncio.get_running_loop()
        for key in [k for k, v in self._clients.items() if v[0].is_closed()]:
            del self._clients[key]
        entry = self._clients.get(id(loop))
        if entry is None:
            entry = self._clients[id(loop)] = (loop, httpx.AsyncClient(timeout=self.timeout))
        return entry[1]

    async def _request(self, command: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        import httpx

        url = f"{self.url}/slurm/{self.api_version}{path}"
        for attempt in (0, 1):
            tok = await self.token(force=attempt == 1)
            headers = {"X-SLURM-USER-NAME": tok.user, "X-SLURM-USER-TOKEN": tok.token}
            try:
                resp = await self._client().request(method, url, headers=headers, json=body)
            except httpx.HTTPError as exc:
                raise SlurmUnavailable(self.cluster, command, f"slurmrestd at {self.url}: {type(exc).__name__}: {exc}", self.hint) from None
            try:
                data = resp.json()
            except ValueError:
                data = {"errors": [{"description": resp.text.strip()[:500] or f"HTTP {resp.status_code}"}]}
            data = data if isinstance(data, dict) else {}
            if _auth_failed(resp.status_code, data):
                if attempt == 0:
                    continue  # expired or revoked: one fresh token, one retry
                return 401, {"errors": [{"description": (
                    f"slurmrestd refused the Slurm token of {tok.user} (expired, revoked, or not signed by this cluster's key)"
                )}]}  # fmt: skip
            return resp.status_code, data
        raise AssertionError("unreachable")

    async def _run(self, argv: list[str], stdin: str | None, timeout: float) -> tuple[int, str, str]:
        command = argv[0]
        if command == "sbatch":
            return await self._sbatch(argv, stdin)
        if command == "squeue":
            status, data = await self._request(command, "GET", "/jobs")
            errors = _errors(data)
            if status >= 400 or (errors and "jobs" not in data):
                return 1, "", f"squeue: error: {'; '.join(errors) or f'HTTP {status}'}"
            return 0, json.dumps({"jobs": data.get("jobs", [])}), ""
        if command == "scancel":
            return await self._scancel([a for a in argv[1:] if not a.startswith("-")])
        raise SlurmCommandError(
            self.cluster, argv, 126,
            _("{command} is not available through slurmrestd; the rest transport runs sbatch, squeue and scancel").format(
                command=command)
        )

    async def _sbatch(self, argv: list[str], stdin: str | None) -> tuple[int, str, str]:
        cwd = self.workdir or os.path.expanduser("~")
        try:
            body = sbatch_request(argv, stdin, clean_environment(os.environ), cwd)
        except SbatchOptionError as exc:
            raise SlurmCommandError(self.cluster, argv, 2, f"sbatch: error: {exc}") from None
        status, data = await self._request("sbatch", "POST", "/job/submit", body)
        errors = _errors(data)
        job_id = data.get("job_id")
        if status >= 400 or job_id is None or errors:
            return 1, "", f"sbatch: error: {'; '.join(errors) or f'HTTP {status}'}"
        return 0, (f"{job_id}\n" if "--parsable" in argv else f"Submitted batch job {job_id}\n"), ""

    async def _scancel(self, ids: list[str]) -> tuple[int, str, str]:
        async def one(job_id: str) -> str:
            status, data = await self._request("scancel", "DELETE", f"/job/{job_id}")
            errors = [e for e in _errors(data) if not _ALREADY_DONE.search(e)]
            if status >= 400 and not errors:
                errors = [f"HTTP {status}"] if not _errors(data) else []
            return f"scancel: error: job {job_id}: {'; '.join(errors)}" if errors else ""

        messages = [m for m in await asyncio.gather(*(one(i) for i in ids)) if m]
        return (1 if messages else 0), "", "\n".join(messages)

    async def close(self) -> None:
        entry = self._clients.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry[1].aclose()


__all__ = ["RestTransport", "SlurmToken", "TokenSource", "sbatch_request", "script_directives", "parse_options", "SbatchOptionError"]
