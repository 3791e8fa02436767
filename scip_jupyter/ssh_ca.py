"""SSH user certificates: the hub signs, each person's server holds only its own short-lived one.

Hub side: `sign_user_key(ca_key_file, public_key, principal, validity)` signs a
person's public key for ONE principal (their cluster account), valid from a
few minutes ago (clock skew) for `validity` seconds, with no forwarding, no pty
and no user rc. Clusters trust the CA (`TrustedUserCAKeys`) and map principals
to accounts; an expired certificate is refused by sshd itself.

Server side: `hub_certificate_source()` makes a fresh key pair in memory,
sends only the public key to the hub (`POST /hub/api/scip/credentials/ssh`,
with the server's own API token) and gets its certificate back; the private
key never leaves the server process and is never written to disk.
`SSHTransport(credentials=...)` calls it again before the certificate expires.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

#: Clock skew allowed between hub and cluster, seconds (the certificate starts this long ago).
SKEW = 300


@dataclass(frozen=True)
class SSHCredential:
    """A private key (asyncssh key object, in memory) and its certificate, valid until `expires`."""

    key: object
    certificate: object
    principal: str
    expires: float

    def __repr__(self) -> str:
        return f"SSHCredential(principal={self.principal!r}, expires={self.expires:.0f})"

    def fresh(self, margin: float, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) < self.expires - margin


def sign_user_key(
    ca_key_file: str, public_key: str, principal: str, validity: float, key_id: str = "", now: float | None = None
) -> tuple[str, float]:
    """Sign an OpenSSH public key for `principal`; returns (certificate in OpenSSH format, expiry)."""
    import asyncssh

    now = time.time() if now is None else now
    try:
        user_key = asyncssh.import_public_key(public_key)
    except (asyncssh.KeyImportError, ValueError, TypeError) as exc:
        raise ValueError(f"not an OpenSSH public key ({exc})") from None
    ca = asyncssh.read_private_key(ca_key_file)
    expires = int(now + validity)
    cert = ca.generate_user_certificate(
        user_key, key_id or principal, principals=[principal],
        valid_after=int(now - SKEW), valid_before=expires,
        permit_x11_forwarding=False, permit_agent_forwarding=False, permit_port_forwarding=False,
        permit_pty=False, permit_user_rc=False,
    )  # fmt: skip
    return cert.export_certificate().decode(), expires


def local_credential(ca_key_file: str, principal: str, validity: float, now: float | None = None) -> SSHCredential:
    """A fresh key pair signed directly with the CA (the hub's own use, and tests)."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519")
    cert_text, expires = sign_user_key(ca_key_file, key.export_public_key().decode(), principal, validity, now=now)
    return SSHCredential(key, asyncssh.import_certificate(cert_text), principal, expires)


def hub_certificate_source(preset: str = "", api_url: str | None = None, api_token: str | None = None, timeout: float = 30):
    """An async callable returning this server's person's SSHCredential, signed by the hub."""

    async def fetch() -> SSHCredential:
        import asyncssh
        import httpx

        from .identity import SSH_CERT_PATH

        url = (api_url or os.environ.get("JUPYTERHUB_API_URL", "")).rstrip("/")
        token = api_token or os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not url or not token:
            raise RuntimeError("no hub to ask for an SSH certificate: JUPYTERHUB_API_URL/JUPYTERHUB_API_TOKEN are not set")
        key = asyncssh.generate_private_key("ssh-ed25519")
        async with httpx.AsyncClient(timeout=timeout) as client:
            resp = await client.post(
                url + SSH_CERT_PATH,
                headers={"Authorization": f"token {token}"},
                json={"public_key": key.export_public_key().decode(), "preset": preset},
            )
        if resp.status_code != 200:
            raise RuntimeError(f"the hub refused an SSH certificate (HTTP {resp.status_code}): {resp.text[:300]}")
        body = resp.json()
        return SSHCredential(key, asyncssh.import_certificate(body["certificate"]), body["principal"], float(body["expires"]))

    return fetch
