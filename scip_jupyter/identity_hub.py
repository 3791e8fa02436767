"""Hub side of "each person is themselves": the hub mints each person's short-lived credentials.

`configure_identity(c, setup, wiring)` (a `hub_setup.FEATURES` entry, both hubs) adds

    GET  /hub/api/scip/credentials/slurm  -> {"user": <Slurm account>, "token": <JWT>, "expires": <epoch s>}
    POST /hub/api/scip/credentials/ssh    {"public_key": "ssh-ed25519 ...", "preset": "<name>"}
                                          -> {"certificate": "...", "principal": ..., "expires": ...}

    GET  /hub/api/scip/accounts?user=NAME...  -> {"accounts": {NAME: <Slurm account>}}   (list:users, unfiltered)

A notebook server calls them with its own JupyterHub API token; the hub
answers for the person that token belongs to, never for anyone else (the
account comes from the person's spawner, `slurm_account`, or from
`SCIPCredentials.account_template`). A credential lives `slurm_token_lifespan`
(`ssh_cert_validity`) seconds, never longer than `max_lifespan` and never past
the end of the server whose token asked: its start + `max_server_age` (when
known) and the token's own expiry (`credential_lifespan`). Past that end the
hub refuses (403). The server's transport asks again before expiry
(scip_jupyter/arc/rest.py, arc/transport.py), so renewal keeps working until
the server's end, with ever shorter credentials at the end.

The accounts endpoint is the same mapping for the `scip-arc-reconcile` service:
a tagged job is only cancelled when it runs as its tagged person's account.

The signing material stays in the hub: `scontrol token` (the hub is root or
SlurmUser on the embedded platform), or the HS256 key file
(`slurm_jwt_key_file`, root-only) that slurmctld's `AuthAltParameters` names;
the SSH CA private key (`ssh_ca_key_file`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shlex
import time

from traitlets import Float, Unicode, default
from traitlets.config import LoggingConfigurable

from .i18n import N_, _
from .identity import ACCOUNTS_PATH, SLURM_TOKEN_PATH, SSH_CERT_PATH, mint_slurm_jwt, mint_slurm_token_scontrol

#: The ends of a server the hub may know (message ids: they name the end in a refusal).
SERVER_AGE_END = N_("the server's maximum age")
TOKEN_END = N_("the server's API token expiry")
#: The note JupyterHub gives a server's own API token (jupyterhub/user.py): "Server at <base_url>".
SERVER_TOKEN_NOTE = "Server at "


class ServerEnded(Exception):
    """The server asking for a credential is past its end; the message says which end."""


#: Seconds short of a server's end a capped credential stops: minting happens just after the
#: decision (and `scontrol token` counts from its own clock), so the credential still ends first.
MINT_SLACK = 2


def credential_lifespan(
    wanted: float, max_lifespan: float, now: float, ends: dict[str, float | None] | None = None
) -> int:
    """Whole seconds a credential minted `now` may live: `wanted`, at most `max_lifespan`, and
    never past any known end of the server (`ends`: what -> epoch s, None when unknown; it stops
    MINT_SLACK s before). Raises ServerEnded when an end leaves less than a second.

    >>> credential_lifespan(3600, 43200, now=1000)
    3600
    >>> credential_lifespan(3600, 43200, now=1000, ends={SERVER_AGE_END: 1600.5, TOKEN_END: None})
    598
    >>> credential_lifespan(3600, 600, now=1000, ends={TOKEN_END: 90000})
    600
    >>> credential_lifespan(3600, 43200, now=1000, ends={SERVER_AGE_END: 1002.5})
    Traceback (most recent call last):
    ...
    scip_jupyter.identity_hub.ServerEnded: the server's maximum age has been reached
    """
    lifespan = max(1, int(min(wanted, max_lifespan)))
    for what, end in (ends or {}).items():
        if end is None:
            continue
        left = math.floor(end - now - MINT_SLACK)
        if left < 1:  # Slurm and SSH count whole seconds: nothing shorter is a credential
            raise ServerEnded(_("{what} has been reached").format(what=_(what)))
        lifespan = min(lifespan, left)
    return lifespan


def culler_max_age(services: list | None) -> float:
    """The `--max-age` of a jupyterhub-idle-culler hub service (z2jh `cull.maxAge`), seconds; 0 when none.

    >>> culler_max_age([{"name": "cull", "command": ["python3", "-m", "jupyterhub_idle_culler", "--max-age=3600"]}])
    3600.0
    >>> culler_max_age([{"name": "x", "command": "python -m jupyterhub_idle_culler --max-age 60 --timeout 10"}])
    60.0
    >>> culler_max_age([{"name": "cull", "command": ["jupyterhub_idle_culler", "--max-age=0"]}]), culler_max_age(None)
    (0.0, 0.0)
    """
    for service in services or []:
        command = service.get("command") if isinstance(service, dict) else None
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command or []]
        if not any("jupyterhub_idle_culler" in a or "jupyterhub-idle-culler" in a for a in argv):
            continue
        for i, arg in enumerate(argv):
            value = arg.split("=", 1)[1] if arg.startswith("--max-age=") else (argv[i + 1] if arg == "--max-age" and i + 1 < len(argv) else None)
            if value is not None:
                try:
                    return max(0.0, float(value))
                except ValueError:
                    return 0.0
    return 0.0


def _epoch(value: dt.datetime | None) -> float | None:
    """JupyterHub's naive-UTC database times as epoch seconds."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp()


class SCIPCredentials(LoggingConfigurable):
    """What the hub mints for each person, and with which key."""

    slurm_token_lifespan = Float(
        3600.0,
        config=True,
        help="""Seconds a person's Slurm JWT is valid. The server renews it before it expires.
        c.SCIPCredentials.slurm_token_lifespan = 3600""",
    )
    max_lifespan = Float(
        12 * 3600.0,
        config=True,
        help="""Upper bound of every credential's lifetime, seconds: a server's lifetime (default 12 h).
        c.SCIPCredentials.max_lifespan = 43200""",
    )
    slurm_jwt_key_file = Unicode(
        "",
        config=True,
        help="""HS256 key of slurmctld's `AuthAltParameters=jwt_key=...` (readable by the hub only).
        Empty: mint with `scontrol token` (the hub must be root or SlurmUser).
        c.SCIPCredentials.slurm_jwt_key_file = "/var/spool/slurm/jwt_hs256.key\"""",
    )
    slurm_conf = Unicode("", config=True, help="SLURM_CONF for `scontrol token`; empty: the hub's environment.")
    account_template = Unicode(
        "{username}",
        config=True,
        help="""The person's Slurm/cluster account when their spawner does not name one (`slurm_account`).
        c.SCIPCredentials.account_template = "{username}\"""",
    )
    ssh_ca_key_file = Unicode(
        "",
        config=True,
        help="""The SSH certificate authority's private key (hub only); empty: no SSH certificates.
        c.SCIPCredentials.ssh_ca_key_file = "/srv/scip/ssh_ca\"""",
    )
    ssh_cert_validity = Float(12 * 3600.0, config=True, help="Seconds an SSH user certificate is valid (at most max_lifespan).")
    max_server_age = Float(
        config=True,
        help="""Longest life of a notebook server, seconds from its start; 0: not known.
        No credential outlives the asking server's start + max_server_age: near its end the
        server gets shorter ones, after it none (403). Default: the idle culler's `--max-age`
        when the hub runs jupyterhub-idle-culler as a service, else $SCIP_MAX_SERVER_AGE, else 0.
        c.SCIPCredentials.max_server_age = 8 * 3600""",
    )

    @default("max_server_age")
    def _default_max_server_age(self) -> float:
        hub = self.config.JupyterHub if "JupyterHub" in self.config else {}
        age = culler_max_age(hub.get("services") if hasattr(hub, "get") else None)
        if age:
            return age
        try:
            return max(0.0, float(os.environ.get("SCIP_MAX_SERVER_AGE") or 0))
        except ValueError:
            self.log.error("SCIP_MAX_SERVER_AGE=%r is not a number of seconds; no maximum server age", os.environ["SCIP_MAX_SERVER_AGE"])
            return 0.0

    def account_of(self, user) -> str:
        spawner = getattr(user, "spawner", None)
        account = getattr(spawner, "slurm_account", None) if spawner is not None else None
        return account or self.account_template.format(username=user.name)

    def server_ends(self, spawner, token_expires: float | None) -> dict[str, float | None]:
        """The known ends of the asking server: its start + max_server_age, its API token's expiry."""
        started = _epoch(getattr(getattr(spawner, "orm_spawner", None), "started", None)) if spawner is not None else None
        age_end = started + self.max_server_age if started is not None and self.max_server_age > 0 else None
        return {SERVER_AGE_END: age_end, TOKEN_END: token_expires}

    async def slurm_token(self, account: str, lifespan: float | None = None) -> tuple[str, float]:
        lifespan = min(self.slurm_token_lifespan, self.max_lifespan) if lifespan is None else lifespan
        if self.slurm_jwt_key_file:
            with open(self.slurm_jwt_key_file, "rb") as f:
                return mint_slurm_jwt(f.read(), account, lifespan)
        return await mint_slurm_token_scontrol(account, int(lifespan), self.slurm_conf)


def _handlers():
    from jupyterhub.apihandlers.base import APIHandler
    from jupyterhub.scopes import Scope, needs_scope
    from tornado import web

    class _CredentialsHandler(APIHandler):
        def _person(self):
            user = self.current_user
            if user is None or getattr(user, "kind", "user") != "user":
                raise web.HTTPError(403, "credentials are issued to a person's own server token only")
            return user

        @property
        def issuer(self) -> SCIPCredentials:
            return SCIPCredentials(config=self.settings.get("config"), log=self.log)

        def _asking_server(self, user):
            """The spawner whose own API token made this request (None: another kind of token)."""
            token = self.get_token() if self.get_auth_token() else None
            note = getattr(token, "note", None) or ""
            if not note.startswith(SERVER_TOKEN_NOTE):
                return token, None
            base_url = note[len(SERVER_TOKEN_NOTE):]
            for spawner in list(user.spawners.values()):
                server = getattr(spawner, "server", None)
                if server is not None and server.base_url == base_url:
                    return token, spawner
            return token, None

        def _lifespan(self, user, issuer: SCIPCredentials, wanted: float) -> float:
            """`wanted`, capped at max_lifespan and at the asking server's end (403 past it)."""
            token, spawner = self._asking_server(user)
            ends = issuer.server_ends(spawner, _epoch(getattr(token, "expires_at", None)))
            try:
                return credential_lifespan(wanted, issuer.max_lifespan, time.time(), ends)
            except ServerEnded as exc:
                self.log.warning("no credential for %s: %s", user.name, exc)
                raise web.HTTPError(403, _("No new credentials for this server: {why}. Restart your server to get new ones.")
                                    .format(why=exc)) from None

    class SlurmTokenHandler(_CredentialsHandler):
        async def get(self):
            user = self._person()
            issuer = self.issuer
            account = issuer.account_of(user)
            lifespan = self._lifespan(user, issuer, issuer.slurm_token_lifespan)
            try:
                token, expires = await issuer.slurm_token(account, lifespan)
            except Exception as exc:
                self.log.error("Slurm token for %s (%s) failed: %s", user.name, account, exc)
                raise web.HTTPError(503, f"could not mint a Slurm token for {account}: {exc}") from None
            self.log.info("issued a Slurm token for %s as %s, valid until %s", user.name, account, time.ctime(expires))
            self.set_header("Cache-Control", "no-store")
            self.finish(json.dumps({"user": account, "token": token, "expires": expires}))

    class SSHCertificateHandler(_CredentialsHandler):
        async def post(self):
            from .ssh_ca import sign_user_key

            user = self._person()
            issuer = self.issuer
            if not issuer.ssh_ca_key_file:
                raise web.HTTPError(404, "this hub issues no SSH certificates (SCIPCredentials.ssh_ca_key_file is not set)")
            if not os.path.exists(issuer.ssh_ca_key_file):
                # configured but not there (yet): an operator's fix, checked per request so a CA created
                # after the hub started (scripts/sshd-local start) is used without a restart
                self.log.error("SSH CA key %s does not exist; no certificate for %s", issuer.ssh_ca_key_file, user.name)
                raise web.HTTPError(503, f"the hub's SSH CA key ({issuer.ssh_ca_key_file}) does not exist; "
                                         "ask the operators to create it (embedded hub: scripts/sshd-local start)")
            try:
                body = json.loads(self.request.body or b"{}")
                public_key = body["public_key"]
            except (ValueError, KeyError, TypeError):
                raise web.HTTPError(400, 'body: send {"public_key": "<OpenSSH public key>", "preset": "<name>"}') from None
            principal = issuer.account_of(user)
            validity = self._lifespan(user, issuer, issuer.ssh_cert_validity)
            try:
                cert, expires = sign_user_key(issuer.ssh_ca_key_file, public_key, principal, validity, key_id=f"scip:{user.name}")
            except ValueError as exc:
                raise web.HTTPError(400, f"public_key: {exc}") from None
            self.log.info("issued an SSH certificate for %s as %s, valid until %s", user.name, principal, time.ctime(expires))
            self.set_header("Cache-Control", "no-store")
            self.finish(json.dumps({"certificate": cert, "principal": principal, "expires": expires}))

    class AccountsHandler(APIHandler):
        """Each named person's Slurm account (the mapping above), for the reconcile service."""

        @needs_scope("list:users")
        async def get(self):
            if self.parsed_scopes.get("list:users") != Scope.ALL:
                raise web.HTTPError(403, "accounts: needs the unfiltered list:users scope")
            names = self.get_arguments("user")
            if not names or len(names) > MAX_ACCOUNT_NAMES:
                raise web.HTTPError(400, f"user: give 1 to {MAX_ACCOUNT_NAMES} user names (?user=NAME&user=...)")
            issuer = SCIPCredentials(config=self.settings.get("config"), log=self.log)
            accounts = {}
            for name in names:
                user = self.find_user(name)
                if user is None:
                    continue  # not a hub user: no account (reconcile leaves their jobs alone)
                try:
                    accounts[name] = issuer.account_of(user)
                except Exception as exc:  # noqa: BLE001 - no account: reconcile keeps that person's jobs
                    self.log.warning("no Slurm account for %s: %r", name, exc)
            self.set_header("Cache-Control", "no-store")
            self.finish(json.dumps({"accounts": accounts}))

    return SlurmTokenHandler, SSHCertificateHandler, AccountsHandler


#: Names per accounts request (the reconcile service asks in chunks of this many).
MAX_ACCOUNT_NAMES = 100


def configure_identity(c, setup=None, wiring=None) -> None:
    """The `hub_setup.FEATURES` entry: credential endpoints on both hubs."""
    slurm, ssh, accounts = _handlers()
    existing = c.JupyterHub.extra_handlers if "extra_handlers" in c.JupyterHub else []
    c.JupyterHub.extra_handlers = [
        *existing,
        ("/api" + SLURM_TOKEN_PATH, slurm),
        ("/api" + SSH_CERT_PATH, ssh),
        ("/api" + ACCOUNTS_PATH, accounts),
    ]
    if setup is not None and getattr(setup, "backend", "") == "local" and "slurm_conf" not in c.SCIPCredentials:
        # the embedded hub mints with `scontrol token` against the local Slurm (scripts/slurm-local)
        from pathlib import Path

        state = Path(os.environ.get("SCIP_SLURM_STATE") or Path(__file__).resolve().parents[1] / ".state" / "slurm")
        if not os.environ.get("SLURM_CONF") and (state / "slurm.conf").exists():
            c.SCIPCredentials.slurm_conf = str(state / "slurm.conf")
    if setup is not None and getattr(setup, "backend", "") == "local" and "ssh_ca_key_file" not in c.SCIPCredentials:
        # the embedded hub signs with the user CA scripts/sshd-local trusts, when it is set up
        from pathlib import Path

        sshd = Path(os.environ.get("SCIP_SSHD_STATE") or Path(__file__).resolve().parents[1] / ".state" / "sshd")
        # set even before scripts/sshd-local has made it: the handler checks the file per request
        c.SCIPCredentials.ssh_ca_key_file = str(sshd / "hub_ca" / "user_ca")
