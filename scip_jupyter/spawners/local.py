"""SCIPLocalSpawner: the embedded default, one local single-user server per hub user.

Same profile choice and validation as the Kubernetes spawner (`SCIPSpawnerMixin`).
What a profile means on one machine:

- environment: `SCIP_PROFILE`, `SCIP_PROFILE_KIND`, `SCIP_SITE`, `SCIP_JURISDICTION`,
  one `SCIP_LABEL_<NAME>` per label (the same labels pods and Slurm jobs carry),
  `SCIP_COURSE` when the options name a course;
- CPU/memory: `cpu_limit`/`mem_limit` (and guarantees) are set from the profile.
  LocalProcessSpawner does not enforce them; the server sees them as
  `CPU_LIMIT`/`MEM_LIMIT` (read by jupyter-resource-usage);
- GPUs: `CUDA_VISIBLE_DEVICES` lists real devices only where `/dev/nvidia<N>`
  exist. Without any, it is empty and `SCIP_GPU=none` (with `SCIP_GPU_NOTE`)
  tells the server it runs on CPU only.

The spawn form shows, per GPU profile, what is free on the local Slurm
(`sinfo` GRES configured vs in use, `slurm_conf`), cached for
`availability_ttl` and never waited for longer than `availability_timeout`.

Running as root: each person is themselves (The Littlest JupyterHub's
convention). Hub user NAME runs as the Unix account `jupyter-NAME`
(`account_prefix`; naming rule `identity.system_username`), created with
`useradd` on first spawn, in the working directory `<workdir_root>/<username>`
(mode 0700, owned by that account): two people never share an account, a
file or a process owner. Never with `--allow-root`. When the hub is not root,
servers run as the hub's own account; the log and the spawn form say so once.
See docs/hub.md and docs/security.md.

Pure helpers (`local_env.profile_environment`, `homes.workdir_name`,
`homes.unreachable_dirs`) are tested without a hub; the spawner methods are the thin I/O around them.
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from tornado import web
from traitlets import Any as AnyTrait
from traitlets import Bool, Unicode, default

from ..availability import SlurmAvailability, profile_availability, slurm_resource
from ..catalog import Profile, ProfileKind, parse_quantity
from ..homes import unreachable_dirs, workdir_name
from ..i18n import _
from ..identity import DEFAULT_PREFIX, AccountError, ensure_account, system_username
from .base import SCIPSpawnerMixin
from .local_env import GPU_DEVICE_GLOB, detect_gpus, profile_environment

_SEED_IGNORE = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc", ".git")


def leftover_servers(uid: int, user: str, server: str, exclude: int = 0, proc: Path = Path("/proc"),
                     hub_api_url: str = "") -> list[int]:
    """Processes of `user`'s server `server` running as `uid`: what a spawn cut short left behind.

    A process counts only when all of these match: its owner (per-person account `jupyter-NAME`
    when the hub is root), and `JUPYTERHUB_USER`, `JUPYTERHUB_SERVER_NAME` and (given)
    `JUPYTERHUB_API_URL` in the environment the hub gave it (its kernels inherit them). Another
    person's process never matches: a different owner, and a different `JUPYTERHUB_USER`; nor
    does a server another hub on the machine started for the same account (another API URL).
    """
    want = {f"JUPYTERHUB_USER={user}".encode(), f"JUPYTERHUB_SERVER_NAME={server}".encode()}
    if hub_api_url:
        want.add(f"JUPYTERHUB_API_URL={hub_api_url}".encode())
    out = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in (exclude, os.getpid()):
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            env = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if want <= env:
            out.append(int(entry.name))
    return sorted(out)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _apply_hook(spawner: "SCIPLocalSpawner", user_options: Any) -> None:
    spawner.scip_apply(user_options)


# --- the spawner -----------------------------------------------------------------------------------


class SCIPLocalSpawner(SCIPSpawnerMixin, LocalProcessSpawner):
    """A local single-user server per hub user, configured from the SCIP catalog."""

    account_prefix = Unicode(
        DEFAULT_PREFIX,
        config=True,
        help="""Prefix of the per-person Unix accounts when the hub runs as root: hub user NAME
        runs as `<prefix>NAME` (TLJH's convention), created with useradd on first spawn.

        c.SCIPLocalSpawner.account_prefix = "jupyter-"
        """,
    )

    run_as = Unicode(
        "",
        config=True,
        help="""Template of the Unix account servers run as when the hub runs as root; empty (the
        default): one account per person, `<account_prefix><username>`.

        Never root. `{username}` is the hub user name, so "{username}" maps each hub user
        to the Unix account of the same name (classic LocalProcessSpawner; such accounts
        are not created). Ignored when the hub is not root: servers then run as the hub's
        own account.

        c.SCIPLocalSpawner.run_as = "{username}"
        """,
    )

    slurm_association = Unicode(
        "",
        config=True,
        help="""Slurm account a newly created per-person account is associated with (`sacctmgr add user`),
        so its jobs are accepted where accounting enforces associations. Empty: none (the site's
        account sync does it, e.g. `scip-jupyter arc accounts sync`).

        c.SCIPLocalSpawner.slurm_association = "def-demo"
        """,
    )

    create_accounts = Bool(
        True,
        config=True,
        help="""Create a missing per-person account (useradd, own group, home 0700) at first spawn
        when the hub is root. False: the account must exist already.""",
    )

    workdir_root = Unicode(
        "",
        config=True,
        help="""Folder holding one working directory per hub user (`<workdir_root>/<username>`).

        The working directory is HOME and the JupyterLab root of the server, owned by
        the account the server runs as. Default: `scip-hub` in that account's home.

        c.SCIPLocalSpawner.workdir_root = "/srv/scip/home"
        """,
    )

    seed_dir = Unicode(
        "",
        config=True,
        help="""Folder copied into a new working directory at its first spawn (demo course material).

        Copied as `<workdir>/<basename of seed_dir>`; never copied again, so the user's
        edits are kept. Empty: nothing is copied.

        c.SCIPLocalSpawner.seed_dir = "/opt/scip/notebooks"
        """,
    )

    gpu_device_glob = Unicode(
        GPU_DEVICE_GLOB,
        config=True,
        help="""Glob of the NVIDIA device files whose presence means a real GPU is here.""",
    )

    slurm_availability = Bool(
        True,
        config=True,
        help="""Show in the spawn form how many GPUs of each flavour are free on the Slurm cluster
        (`sinfo` GRES configured vs in use). False: the form shows no free counts.""",
    )

    slurm_conf = Unicode(
        "",
        config=True,
        help="""SLURM_CONF for the `sinfo` behind the form's free counts; empty: the hub's environment.

        c.SCIPLocalSpawner.slurm_conf = "/etc/slurm/slurm.conf"
        """,
    )

    _scip_slurm: dict[tuple, SlurmAvailability] = {}

    scip_profile = AnyTrait(None, allow_none=True, help="The validated profile of the current spawn (read-only for hooks).")
    scip_options = AnyTrait(None, allow_none=True, help="The validated, normalised user_options of the current spawn.")

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return _apply_hook

    # Validate, then apply. Nothing changes on the spawner unless validation passed.
    def scip_apply(self, user_options: Any) -> Profile:
        """Validate user_options (4xx HTTPError naming the field) and apply the profile."""
        try:
            profile, options = self.scip_validate(user_options)
        except web.HTTPError:
            self._scip_forget_refused(user_options)
            raise
        self.scip_profile, self.scip_options = profile, options
        # Record the effective choice (the default profile made explicit) in the server model.
        self.user_options = dict(options)
        if self.orm_spawner is not None and self.orm_spawner.user_options != options:
            self.orm_spawner.user_options = dict(options)
        self.cpu_limit = profile.cpu_limit
        self.cpu_guarantee = profile.cpu_guarantee
        self.mem_limit = int(parse_quantity(profile.mem_limit))
        self.mem_guarantee = int(parse_quantity(profile.mem_guarantee))
        return profile

    def _scip_forget_refused(self, user_options: Any) -> None:
        # JupyterHub saves options as this server's defaults *before* the spawner sees
        # them; a refused choice must not become the default of the next implicit spawn.
        orm = self.orm_spawner
        if orm is not None and orm.user_options == user_options:
            orm.user_options = {}

    async def get_options_form(self):
        if self.options_form:  # a deployment's own form wins
            return await super().get_options_form()
        return await self.scip_options_form()

    def scip_host_note(self, allowed):
        notes = []
        if os.geteuid() != 0:
            notes.append(self.shared_account_note())
        if not detect_gpus(self.gpu_device_glob) and any(p.kind is not ProfileKind.cpu for p in allowed):
            notes.append(_("This host has no GPU: GPU and MIG profiles start on CPU only, and the server is told so."))
        return " ".join(notes)

    _told_not_root = False

    def shared_account_note(self) -> str:
        """Said once in the log, and on every spawn form, when the hub is not root."""
        me = pwd.getpwuid(os.geteuid()).pw_name
        if not SCIPLocalSpawner._told_not_root:
            SCIPLocalSpawner._told_not_root = True
            self.log.warning(
                "The hub is not root: every server runs as the hub's own account %s (no per-person accounts)", me
            )
        return _(
            "This hub does not run as root: your server runs as the hub's account {account}, "
            "shared with everyone on this hub."
        ).format(account=me)

    def scip_slurm(self) -> SlurmAvailability:
        """The shared `sinfo` reader for this configuration (one read per TTL for every user)."""
        key = (self.slurm_conf, self.availability_ttl, self.availability_timeout)
        reader = self._scip_slurm.get(key)
        if reader is None:
            # The form stops waiting after availability_timeout; sinfo may go on a little
            # longer in the background (up to its own timeout) and fill the cache.
            reader = self._scip_slurm[key] = SlurmAvailability(
                self.slurm_conf, ttl=self.availability_ttl, timeout=max(self.availability_timeout, 5.0)
            )
        return reader

    async def scip_cluster_availability(self, profiles):
        if not self.slurm_availability or not any(p.kind is not ProfileKind.cpu for p in profiles):
            return None
        flavours = await self.scip_slurm().flavours()
        return None if flavours is None else profile_availability(profiles, flavours, slurm_resource)

    # --- who the server runs as, and where ---------------------------------------------------------

    def scip_account_name(self) -> str:
        """The name of the Unix account this person's server runs as (see `account_prefix`, `run_as`)."""
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid()).pw_name
        if self.run_as:
            return self.run_as.format(username=self.user.name)
        return system_username(self.user.name, self.account_prefix)

    @property
    def slurm_account(self) -> str:
        """The account this person's Slurm jobs run as (the hub's clean-up checks it)."""
        return self.scip_account_name()

    def scip_account(self) -> pwd.struct_passwd:
        """The Unix account the server runs as (see `run_as`)."""
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid())
        name = self.scip_account_name()
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            raise web.HTTPError(
                500,
                f"run_as: Unix account {name!r} does not exist; create it, "
                "or let the hub create per-person accounts (c.SCIPLocalSpawner.create_accounts = True, run_as empty)",
            ) from None
        if account.pw_uid == 0:
            raise web.HTTPError(500, f"run_as: {name!r} is root; single-user servers never run as root")
        return account

    def scip_workdir(self) -> Path:
        return self.scip_workdir_path()

    def scip_workdir_path(self, account: pwd.struct_passwd | None = None) -> Path:
        if self.workdir_root:
            return Path(self.workdir_root) / workdir_name(self.user.name)
        if os.geteuid() == 0 and not self.run_as:  # per-person account: its home is the working directory
            return Path("/home") / self.scip_account_name()
        return Path((account or self.scip_account()).pw_dir) / "scip-hub" / workdir_name(self.user.name)

    def _prepare_workdir(self) -> Path:
        account = self.scip_account()
        workdir = self.scip_workdir()
        as_root = os.geteuid() == 0
        if not workdir.parent.exists():
            workdir.parent.mkdir(parents=True, mode=0o711)
            if as_root:
                os.chmod(workdir.parent, 0o711)  # mkdir's mode is masked by the umask
        blocked = unreachable_dirs(workdir.parent, account.pw_uid, os.getgrouplist(account.pw_name, account.pw_gid))
        if blocked:
            raise web.HTTPError(
                500,
                f"{account.pw_name} cannot reach {workdir}: {blocked[0]} lacks search permission (chmod o+x it)",
            )
        new = not workdir.exists()
        workdir.mkdir(mode=0o700, exist_ok=True)
        if as_root:
            os.chmod(workdir, 0o700)  # a home only its person enters
        if new and self.seed_dir and Path(self.seed_dir).is_dir():
            target = workdir / Path(self.seed_dir).name
            shutil.copytree(self.seed_dir, target, ignore=_SEED_IGNORE)
            self.log.info("Copied %s into the new working directory of %s", self.seed_dir, self.user.name)
        if as_root and (new or workdir.stat().st_uid != account.pw_uid):
            for folder, dirs, files in os.walk(workdir):
                for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                    os.chown(name, account.pw_uid, account.pw_gid, follow_symlinks=False)
        return workdir

    _associated: set = set()

    async def _associate(self, account: str) -> None:
        """Give the person's account its Slurm association (once per hub process; failures are logged)."""
        if account in SCIPLocalSpawner._associated:
            return
        import asyncio

        env = dict(os.environ)
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        argv = ["sacctmgr", "-i", "add", "user", account, f"Account={self.slurm_association}"]
        try:
            proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        except (OSError, asyncio.TimeoutError) as exc:
            self.log.warning("Slurm association of %s with %s failed: %s", account, self.slurm_association, exc)
            return
        if proc.returncode == 0 or b"Nothing new added" in out + err:
            SCIPLocalSpawner._associated.add(account)
        else:
            self.log.warning("sacctmgr add user %s: %s", account, (err or out).decode(errors="replace").strip())

    def make_preexec_fn(self, name):
        # `name` is the hub user; the server runs as scip_account() in its working directory.
        account = self.scip_account()
        workdir = str(self.scip_workdir())
        drop = set_user_setuid(account.pw_name, chdir=False) if os.geteuid() == 0 else None

        def preexec():
            if drop is not None:
                drop()
            os.chdir(workdir)

        return preexec

    def user_env(self, env):
        account = self.scip_account()
        env["USER"] = env["LOGNAME"] = account.pw_name
        env["HOME"] = str(self.scip_workdir())
        env["SHELL"] = account.pw_shell or "/bin/bash"
        return env

    def get_env(self):
        env = super().get_env()
        if self.scip_profile is not None:
            labels = self.scip_labels(self.scip_profile)
            env.update(profile_environment(self.scip_profile, labels, detect_gpus(self.gpu_device_glob), self.scip_options))
        return env

    async def start(self):
        # Validate again: the apply_user_options hook may have been replaced by configuration,
        # and nothing may start from unvalidated options.
        self.scip_apply(self.user_options)
        if os.geteuid() == 0 and not self.run_as and self.create_accounts:
            try:
                await ensure_account(self.scip_account_name(), str(self.scip_workdir_path()), self.user.name)
            except AccountError as exc:
                raise web.HTTPError(500, str(exc)) from None
            if self.slurm_association:
                await self._associate(self.scip_account_name())
        await self._scip_stop_leftovers()
        workdir = self._prepare_workdir()
        self.notebook_dir = str(workdir)
        self.log.info(
            "Starting %s as %s with profile %s in %s",
            self._log_name, self.scip_account().pw_name, self.scip_profile.slug, workdir,
        )
        return await super().start()

    # --- what a killed hub left behind ------------------------------------------------------------
    # LocalProcessSpawner's pid reaches the hub's database only once start() returns: a hub killed
    # in between forgets a server process that goes on running. The restarted hub polls the
    # spawner (no pid in its state) and the next start looks again: both stop such leftovers.

    async def poll(self):
        if self.proc is None and not self.pid and not self._spawn_pending:
            await self._scip_stop_leftovers()
        return await super().poll()

    def _scip_hub_api_url(self) -> str:
        """`JUPYTERHUB_API_URL` as this hub gives it to its servers (Spawner.get_env's rule)."""
        from urllib.parse import urlparse

        from jupyterhub.utils import url_path_join

        if self.hub_connect_url is not None:
            return url_path_join(self.hub_connect_url, urlparse(self.hub.api_url).path)
        return self.hub.api_url

    async def _scip_stop_leftovers(self) -> None:
        import asyncio
        import signal

        try:
            uid = self.scip_account().pw_uid
        except web.HTTPError:  # no account yet: nothing of it can run
            return
        pids = leftover_servers(uid, self.user.name, self.name, exclude=self.pid, hub_api_url=self._scip_hub_api_url())
        if not pids:
            return
        self.log.warning("Stopping %d leftover process(es) of %s's server (a spawn cut short): %s", len(pids), self._log_name, pids)
        for sig, wait in ((signal.SIGTERM, self.term_timeout), (signal.SIGKILL, self.kill_timeout)):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            for _poll in range(max(1, int(wait * 10))):
                pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
                if not pids:
                    return
                await asyncio.sleep(0.1)
        self.log.error("Leftover process(es) of %s never died: %s", self._log_name, pids)
