"""Hub side of "each person is themselves": the hub mints each person's short-lived credentials.

`configure_identity(c, setup, wiring)` (a `hub_setup.FEATURES` entry, both hubs) adds

    GET  /hub/api/scip/credentials/slurm  -> {"user": <Slurm account>, "token": <JWT>, "expires": <epoch s>}
    POST /hub/api/scip/credentials/ssh    {"public_key": "ssh-ed25519 ...", "preset": "<name>"}
                                          -> {"certificate": "...", "principal": ..., "expires": ...}

A notebook server calls them with its own JupyterHub API token; the hub
answers for the person that token belongs to, never for anyone else (the
account comes from the person's spawner, `slurm_account`, or from
`SCIPCredentials.account_template`). Tokens live `slurm_token_lifespan`
seconds (never longer than `max_lifespan`, the server's lifetime); the
server's transport asks again before expiry (scip_jupyter/arc/rest.py).

The signing material stays in the hub: `scontrol token` (the hub is root or
SlurmUser on the embedded platform), or the HS256 key file
(`slurm_jwt_key_file`, root-only) that slurmctld's `AuthAltParameters` names;
the SSH CA private key (`ssh_ca_key_file`).
"""

from __future__ import annotations

import json
import os
import time

from traitlets import Float, Unicode
from traitlets.config import LoggingConfigurable

from .identity import SLURM_TOKEN_PATH, SSH_CERT_PATH, mint_slurm_jwt, mint_slurm_token_scontrol


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

    def account_of(self, user) -> str:
        spawner = getattr(user, "spawner", None)
        account = getattr(spawner, "slurm_account", None) if spawner is not None else None
        return account or self.account_template.format(username=user.name)

    async def slurm_token(self, account: str) -> tuple[str, float]:
        lifespan = min(self.slurm_token_lifespan, self.max_lifespan)
        if self.slurm_jwt_key_file:
            with open(self.slurm_jwt_key_file, "rb") as f:
                return mint_slurm_jwt(f.read(), account, lifespan)
        return await mint_slurm_token_scontrol(account, int(lifespan), self.slurm_conf)


def _handlers():
    from jupyterhub.apihandlers.base import APIHandler
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

    class SlurmTokenHandler(_CredentialsHandler):
        async def get(self):
            user = self._person()
            issuer = self.issuer
            account = issuer.account_of(user)
            try:
                token, expires = await issuer.slurm_token(account)
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
            validity = min(issuer.ssh_cert_validity, issuer.max_lifespan)
            try:
                cert, expires = sign_user_key(issuer.ssh_ca_key_file, public_key, principal, validity, key_id=f"scip:{user.name}")
            except ValueError as exc:
                raise web.HTTPError(400, f"public_key: {exc}") from None
            self.log.info("issued an SSH certificate for %s as %s, valid until %s", user.name, principal, time.ctime(expires))
            self.set_header("Cache-Control", "no-store")
            self.finish(json.dumps({"certificate": cert, "principal": principal, "expires": expires}))

    return SlurmTokenHandler, SSHCertificateHandler


def configure_identity(c, setup=None, wiring=None) -> None:
    """The `hub_setup.FEATURES` entry: credential endpoints on both hubs."""
    slurm, ssh = _handlers()
    existing = c.JupyterHub.extra_handlers if "extra_handlers" in c.JupyterHub else []
    c.JupyterHub.extra_handlers = [
        *existing,
        ("/api" + SLURM_TOKEN_PATH, slurm),
        ("/api" + SSH_CERT_PATH, ssh),
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
