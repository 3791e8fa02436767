"""Where an in-job run's files live, and how the notebook reads them back, per transport.

An in-job run (injob.py) writes its status, result and errors into its run
folder on the cluster; the notebook reads them there, never with `sacct`:

- **local**: the same host, so the same files (`~/.scip/injob/<run id>`).
- **ssh**: the automation node's `cat` (its forced command allows it), in the
  cluster home (`.scip/injob/<run id>`, relative: the job resolves it).
- **rest**: slurmrestd runs sbatch, squeue and scancel and nothing else: it cannot
  read a file. So the run folder is on storage this server shares with the cluster,
  at the same path, and the notebook reads it directly: `base_dir` when given, else
  the preset's scratch (`storage.scratch`, which notebook pods mount at the
  cluster's own path: scip_jupyter.storage), else the home folder (the same on the
  local cluster and at sites whose notebooks mount the cluster's home).

Whether the folder really is shared is checked, not assumed: before it submits,
the notebook writes a random handshake into the folder (private: 0700, 0600),
and the job script checks it before anything else. A job that does not find it
(the notebook wrote somewhere the cluster does not see) exits at once and runs
nothing, and the run's status says the folder is not shared and what to use
instead, rather than waiting for files that can never arrive.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..i18n import _

#: The handshake file (shared folders only) and the exit status of a job that does not find it.
HANDSHAKE, UNSHARED_EXIT = "handshake", 5
#: How the notebook reads the run folder, by transport kind (anything else: through the transport's `cat`).
ACCESS = {"local": "local", "ssh": "cat", "rest": "shared"}


def access_for(transport: Any) -> str:
    """'local', 'cat' or 'shared' for a transport (a Transport, or anything with `kind`).

    >>> from types import SimpleNamespace as T
    >>> [access_for(T(kind=k)) for k in ("local", "ssh", "rest", "other")]
    ['local', 'cat', 'shared', 'cat']
    """
    return ACCESS.get(getattr(transport, "kind", ""), "cat")


def shared_base(preset: Any, user: str, home: str | None = None) -> str:
    """The folder of in-job runs on storage this server shares with the cluster (rest transport).

    The preset's scratch when it declares one (it must be mounted here: notebook pods mount
    it at the cluster's path), else the home folder. Raises ARCRequestError (field base_dir)
    naming the scratch that is not mounted and what to use instead.

    >>> from scip_jupyter.arc.presets import example_preset
    >>> shared_base(example_preset(), "alice", home="/home/alice")
    '/home/alice/.scip/injob'
    >>> shared_base(example_preset(storage={"scratch": "/nowhere/{user}"}), "alice")
    Traceback (most recent call last):
    ...
    scip_jupyter.arc.presets.ARCRequestError: base_dir: an in-job run over the rest transport reads its results from storage this server shares with cluster 'demo', and its scratch /nowhere/alice is not mounted here; allowed values: base_dir= a folder this server and the cluster both see, a preset with transport ssh
    """
    template = preset.storage.get("scratch")
    if not template:
        return str(PurePosixPath(home or os.path.expanduser("~")) / ".scip" / "injob")
    scratch = template.format(user=user, group="", course="")
    if not Path(scratch).is_dir():
        raise _refuse(_("an in-job run over the rest transport reads its results from storage this server shares "
                        "with cluster {cluster!r}, and its scratch {path} is not mounted here")
                      .format(cluster=preset.name, path=scratch))
    return str(PurePosixPath(scratch) / ".scip" / "injob")


def _refuse(problem: str):
    from .presets import ARCRequestError

    return ARCRequestError("base_dir", problem, [_("base_dir= a folder this server and the cluster both see"),
                                                 _("a preset with transport ssh")])


@dataclass
class RunFolder:
    """One run's folder: its path as the job sees it, and how this server reads it."""

    path: str
    access: str  # local | cat | shared
    cluster: str
    transport: Any = None
    handshake: str = ""  # shared folders: the secret-free token the job must find first

    @classmethod
    def for_run(cls, preset: Any, transport: Any, user: str, run_id: str, base_dir: str | None = None) -> "RunFolder":
        access = access_for(transport)
        if access == "shared":
            base = base_dir or shared_base(preset, user)
            if not os.path.isabs(os.path.expanduser(base)):
                raise _refuse(_("{path} is relative; over the rest transport the run folder is read here at the path "
                                "the job writes it, so it must be absolute").format(path=base))
            base = os.path.expanduser(base)
        else:
            base = base_dir or (str(Path.home() / ".scip" / "injob") if access == "local" else ".scip/injob")
        return cls(str(PurePosixPath(base) / run_id), access, preset.name, transport,
                   secrets.token_hex(16) if access == "shared" else "")

    def file(self, name: str) -> str:
        return str(PurePosixPath(self.path) / name)

    def prepare(self) -> None:
        """Before sbatch: a shared folder gets the handshake the job looks for (private to this account)."""
        if self.access != "shared":
            return
        old = os.umask(0o077)
        try:
            Path(self.path).mkdir(parents=True, exist_ok=True, mode=0o700)
            Path(self.file(HANDSHAKE)).write_text(self.handshake + "\n")
        except OSError as exc:
            raise _refuse(_("cannot write the run folder {path} here: {error}").format(path=self.path, error=exc)) from None
        finally:
            os.umask(old)

    async def read(self, name: str) -> str | None:
        """A file's text, or None when it does not exist (yet)."""
        if self.access != "cat":
            try:
                return Path(self.file(name)).expanduser().read_text()
            except FileNotFoundError:
                return None
        from .transport import SlurmCommandError

        try:  # remote: automation nodes allow `cat`; a missing file is a failed command
            return await self.transport.run(["cat", self.file(name)])
        except SlurmCommandError as exc:
            if "No such file" in str(exc):
                return None
            raise

    def exists(self, name: str) -> bool | None:
        """Whether a file exists, where that costs nothing (None through `cat`: not asked)."""
        return None if self.access == "cat" else Path(self.file(name)).expanduser().exists()

    def unshared_reason(self) -> str:
        """Why a job that ended without touching its shared folder ran nothing, and what to do."""
        return _("the job did not find the run folder this server wrote ({path}), so nothing ran: this server and "
                 "cluster {cluster!r} do not share it. Over the rest transport an in-job run reads its results from "
                 "storage both see: give base_dir= a folder there (the cluster's scratch or project storage, mounted "
                 "here at the same path), or use a preset with transport ssh").format(path=self.path, cluster=self.cluster)
