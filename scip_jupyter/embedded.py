"""`scip-jupyter up`: the embedded platform (JupyterHub + configurable-http-proxy) on one machine.

This verb prepares the state folder (SQLite DB, cookie secret, proxy token and the
demo password, each readable by its owner only), prints the demo accounts and the
URL, and runs JupyterHub in this process with `hub_config/local.py`. The hub
starts configurable-http-proxy from the project's node_modules and stops it (and
every single-user server) when it exits.

Settings travel to `hub_config/local.py` through `SCIP_HUB_*` environment
variables, read back by `HubSettings.from_env()`: one place for both sides.

State folder layout (default `.state/hub`)::

    .state/hub/          0711 when root (servers run as scip-user must traverse it), else 0700
      private/           0700: jupyterhub.sqlite, jupyterhub_cookie_secret, proxy-token,
                         demo-password, proxy.pid
      home/<username>/   working directory (HOME) of each hub user's server
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .i18n import _

#: Demo accounts: username -> demo group. Course groups and roles are added by hub_config/local.py blocks.
DEMO_ACCOUNTS = {"student1": "students", "researcher1": "researchers", "instructor1": "instructors"}
ADMIN_SERVICE = "scip-admin"
MIN_TOKEN_LENGTH = 16

ENV_STATE = "SCIP_HUB_STATE_DIR"
ENV_IP = "SCIP_HUB_IP"
ENV_PORT = "SCIP_HUB_PORT"
ENV_CATALOG = "SCIP_CATALOG"
ENV_HUB_PORT = "SCIP_HUB_INTERNAL_PORT"
ENV_PROXY_API_PORT = "SCIP_PROXY_API_PORT"
ENV_ADMIN_TOKEN = "SCIP_ADMIN_TOKEN"


def project_root() -> Path:
    """The checkout this package runs from (editable install): holds hub_config/, notebooks/, node_modules/."""
    return Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class HubSettings:
    """Everything hub_config/local.py needs, from the environment `scip-jupyter up` sets."""

    state_dir: Path
    ip: str = "127.0.0.1"
    port: int = 8000
    catalog: Path = field(default_factory=lambda: project_root() / "hub_config" / "catalog.yaml")
    hub_port: int = 0
    proxy_api_port: int = 0
    admin_token: str = ""
    root: Path = field(default_factory=project_root)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "HubSettings":
        env = os.environ if env is None else env
        root = project_root()
        return cls(
            state_dir=Path(env.get(ENV_STATE) or root / ".state" / "hub").resolve(),
            ip=env.get(ENV_IP) or "127.0.0.1",
            port=int(env.get(ENV_PORT) or 8000),
            catalog=Path(env.get(ENV_CATALOG) or root / "hub_config" / "catalog.yaml").resolve(),
            hub_port=int(env.get(ENV_HUB_PORT) or free_port()),
            proxy_api_port=int(env.get(ENV_PROXY_API_PORT) or free_port()),
            admin_token=env.get(ENV_ADMIN_TOKEN, ""),
            root=root,
        )

    @property
    def private(self) -> Path:
        return self.state_dir / "private"

    @property
    def homes(self) -> Path:
        return self.state_dir / "home"

    @property
    def password_file(self) -> Path:
        return self.private / "demo-password"

    @property
    def proxy_command(self) -> Path:
        return self.root / "node_modules" / ".bin" / "configurable-http-proxy"

    @property
    def venv_bin(self) -> Path:
        return Path(sys.executable).parent

    @property
    def public_url(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"http://{host}:{self.port}/"


# --- state folder and secrets ----------------------------------------------------------------------


def read_or_create_secret(path: Path, make=lambda: secrets.token_urlsafe(12)) -> tuple[str, bool]:
    """The secret in `path`, creating it (mode 0600, never overwritten) on first use.

    Returns (secret, created).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return path.read_text().strip(), False
    value = make()
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value, True


def prepare_state(settings: HubSettings) -> None:
    """Create the state folder layout with the permissions described in the module docstring."""
    shared = 0o711 if os.geteuid() == 0 else 0o700
    for folder, mode in ((settings.state_dir, shared), (settings.private, 0o700), (settings.homes, shared)):
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, mode)


def banner(settings: HubSettings, password: str | None, password_file: Path) -> str:
    """What `up` prints: the URL, the demo accounts, and the password only when just generated."""
    lines = [
        _("SCIP Jupyter (embedded) on %(url)s") % {"url": settings.public_url},
        _("Home page (after login): %(url)s") % {"url": settings.public_url + "hub/scip/home"},
        _("Demo accounts (group): %(accounts)s") % {"accounts": ", ".join(f"{u} ({g})" for u, g in DEMO_ACCOUNTS.items())},
    ]
    if password is not None:
        lines.append(_("Demo password (shown once; kept in %(file)s, mode 0600): %(password)s") % {
            "file": password_file, "password": password})
    else:
        lines.append(_("Demo password: shown at first start; it is in %(file)s (mode 0600)") % {"file": password_file})
    if settings.admin_token:
        lines.append(_("Automation: service %(name)s with the admin role, token from $%(env)s") % {
            "name": repr(ADMIN_SERVICE), "env": ENV_ADMIN_TOKEN})
    lines.append(_("State: %(dir)s   Stop with Ctrl-C.") % {"dir": settings.state_dir})
    return "\n".join(lines)


# --- the verb --------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    root = project_root()
    parser.add_argument("--ip", default="127.0.0.1", help="address the proxy listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port the proxy listens on (default 8000)")
    parser.add_argument("--state-dir", type=Path, default=root / ".state" / "hub", help="state folder (default .state/hub)")
    parser.add_argument("--catalog", type=Path, default=root / "hub_config" / "catalog.yaml", help="resource catalog YAML")
    parser.add_argument("--config", type=Path, default=root / "hub_config" / "local.py", help="JupyterHub config file")
    parser.add_argument(
        "--slurm", choices=("auto", "off"), default="auto",
        help="auto (default): start the local Slurm (scripts/slurm-local) when root and it is not running, and stop "
             "it again at exit; off: leave it alone (ARC parts show as unavailable unless it runs)",
    )


def _problems(args: argparse.Namespace, settings: HubSettings) -> list[str]:
    """Everything wrong with the request, as messages naming the option and what is allowed."""
    out = []
    if not 1 <= args.port <= 65535:
        out.append(_("--port: %(port)s is not a TCP port; allowed 1-65535") % {"port": args.port})
    try:
        ipaddress.ip_address(args.ip)
    except ValueError:
        out.append(_("--ip: %(ip)s is not an IP address; e.g. 127.0.0.1") % {"ip": repr(args.ip)})
    if not args.config.is_file():
        out.append(_("--config: %(path)s does not exist") % {"path": args.config})
    if not settings.proxy_command.exists():
        out.append(
            _("configurable-http-proxy not found at %(path)s: run `make run` (or `make node-deps`) in the "
              "project folder to install it with npm") % {"path": settings.proxy_command}
        )
    token = settings.admin_token
    if token and (len(token) < MIN_TOKEN_LENGTH or any(ch.isspace() for ch in token)):
        out.append(_("$%(env)s: must be at least %(n)s characters without spaces") % {
            "env": ENV_ADMIN_TOKEN, "n": MIN_TOKEN_LENGTH})
    try:
        from .catalog import load_catalog

        load_catalog(args.catalog)
    except FileNotFoundError:
        out.append(_("--catalog: %(path)s does not exist") % {"path": args.catalog})
    except ValueError as exc:  # config.ConfigError: file:line: field: problem lines
        out.append(str(exc))
    return out


# --- the local Slurm --------------------------------------------------------------------------------

#: Why the ARC clusters cannot be used (read by the home page; passed to the servers' kernels).
ENV_ARC_UNAVAILABLE = "SCIP_ARC_UNAVAILABLE"


@dataclass(frozen=True)
class SlurmPlan:
    """What `up` does about the local Slurm: start it, stop it again at exit, or say why ARC is unavailable."""

    start: bool = False
    stop_at_exit: bool = False
    unavailable: str = ""
    message: str = ""


def slurm_plan(mode: str, is_root: bool, running: bool, any_daemon: bool, script: Path) -> SlurmPlan:
    """Decide about the local Slurm (pure). `running`: `slurm-local status` succeeded;
    `any_daemon`: some of its daemons ran already (then `up` leaves them running at exit too).

    >>> s = slurm_script()
    >>> slurm_plan("auto", True, False, False, s).stop_at_exit, slurm_plan("auto", True, False, True, s).stop_at_exit
    (True, False)
    >>> slurm_plan("auto", True, True, True, s).start, bool(slurm_plan("auto", False, False, False, s).unavailable)
    (False, True)
    """
    if running:
        return SlurmPlan(message=_("Local Slurm: already running; it is left running when the hub stops."))
    if mode == "off":
        why = _("the local Slurm is not running (scip-jupyter up --slurm off)")
        return SlurmPlan(unavailable=why, message=_("Local Slurm: not started (--slurm off): ARC parts are unavailable."))
    if not is_root:
        why = _("the local Slurm is not running, and `scip-jupyter up` is not root so it cannot start it; "
                "run `make run` as root, or start it with `sudo scripts/slurm-local start`")
        return SlurmPlan(unavailable=why, message=_("Local Slurm: %(why)s. ARC parts show as unavailable.") % {"why": why})
    if not script.exists():
        why = _("%(script)s is missing") % {"script": script}
        return SlurmPlan(unavailable=why, message=_("Local Slurm: %(why)s.") % {"why": why})
    return SlurmPlan(start=True, stop_at_exit=not any_daemon,
                     message=_("Local Slurm: starting it (stopped again when the hub stops)."))


def slurm_script() -> Path:
    return project_root() / "scripts" / "slurm-local"


def _slurm_status(script: Path) -> tuple[bool, bool]:
    """(running, any of its daemons running) from `slurm-local status` (False, False when it cannot say)."""
    if not script.exists():
        return False, False
    try:
        done = subprocess.run([str(script), "status"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False, False
    return done.returncode == 0, " running (pid " in done.stdout


def _slurm(script: Path, verb: str, timeout: float) -> int:
    try:
        return subprocess.run([str(script), verb], timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        print(_("scip-jupyter up: `slurm-local %(verb)s` took longer than %(s)s s") % {"verb": verb, "s": int(timeout)},
              file=sys.stderr)
        return 124


def _stop_on_term(signum, _frame):  # before the hub has its own handlers: SIGTERM ends `up` cleanly
    raise SystemExit(128 + signum)


#: The hub's internal ports, kept in the state folder (private/ports.json).
_PORTS_FILE = "ports.json"


def _internal_ports(state_dir: Path) -> dict[str, str]:
    """The hub API and proxy API ports: from the environment, else the ones this state folder used last.

    Servers outlive a hub killed with `kill -9` and reach it on its API port: a
    restarted hub must listen where they look, or they answer 500 to everyone.
    """
    try:
        saved = json.loads((state_dir / "private" / _PORTS_FILE).read_text())
    except (OSError, ValueError):
        saved = {}
    out = {}
    for key in (ENV_HUB_PORT, ENV_PROXY_API_PORT):
        value = os.environ.get(key) or str(saved.get(key, "") if isinstance(saved, dict) else "")
        out[key] = value if value.isdigit() else str(free_port())
    return out


def _remember_ports(settings: "HubSettings") -> None:
    path = settings.private / _PORTS_FILE
    try:
        path.write_text(json.dumps({ENV_HUB_PORT: str(settings.hub_port), ENV_PROXY_API_PORT: str(settings.proxy_api_port)}))
        os.chmod(path, 0o600)
    except OSError:
        pass


def run(args: argparse.Namespace) -> int:
    env = {
        ENV_STATE: str(args.state_dir.resolve()),
        ENV_IP: args.ip,
        ENV_PORT: str(args.port),
        ENV_CATALOG: str(args.catalog.resolve()),
        **_internal_ports(args.state_dir.resolve()),
    }
    settings = HubSettings.from_env({**os.environ, **env})
    problems = _problems(args, settings)
    if problems:
        for p in problems:
            print(f"scip-jupyter up: {p}", file=sys.stderr)
        return 2
    if not ipaddress.ip_address(args.ip).is_loopback:
        print(_("scip-jupyter up: warning: listening on %(ip)s, reachable from other machines") % {"ip": args.ip},
              file=sys.stderr)
    prepare_state(settings)
    _remember_ports(settings)
    signal.signal(signal.SIGTERM, _stop_on_term)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:  # started in the background: Ctrl-C / kill -INT still stop it
        signal.signal(signal.SIGINT, signal.default_int_handler)

    script = slurm_script()
    running, any_daemon = _slurm_status(script)
    plan = slurm_plan(getattr(args, "slurm", "auto"), os.geteuid() == 0, running, any_daemon, script)
    print(plan.message, flush=True)
    unavailable = plan.unavailable
    try:
        if plan.start and _slurm(script, "start", timeout=300) != 0:
            unavailable = _("`scripts/slurm-local start` failed: see .state/slurm/log")
            print(_("Local Slurm: %(why)s; ARC parts show as unavailable.") % {"why": unavailable}, file=sys.stderr)
        conf = Path(os.environ.get("SCIP_SLURM_STATE") or project_root() / ".state" / "slurm") / "slurm.conf"
        if conf.exists() and not unavailable:
            env.setdefault("SLURM_CONF", os.environ.get("SLURM_CONF") or str(conf))
        if unavailable:
            env[ENV_ARC_UNAVAILABLE] = unavailable
        password, created = read_or_create_secret(settings.password_file)
        print(banner(settings, password if created else None, settings.password_file), flush=True)
        os.environ.update(env)

        from jupyterhub.app import JupyterHub

        from .signals import stop_services_together

        stop_services_together()  # JupyterHub stops them one by one, each waiting ~1 s
        JupyterHub.launch_instance(["-f", str(args.config.resolve())])
    except KeyboardInterrupt:
        pass
    finally:
        if plan.stop_at_exit:
            print(_("Local Slurm: stopping it (it was not running when the hub started)."), flush=True)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave half of it running
            _slurm(script, "stop", timeout=60)
    # The hub has stopped its servers, services and proxy and committed its database; tearing down
    # the interpreter (modules, collectors) takes seconds more on a busy machine, and Ctrl-C or
    # SIGTERM must end everything within 5 s: leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
