"""Each person is themselves: per-person accounts and short-lived, hub-minted credentials.

Accounts (embedded hub, The Littlest JupyterHub's convention): hub user NAME
runs as the Unix account `jupyter-NAME` (prefix configurable), created by the
hub with `useradd` on first spawn when the hub is root, with its own group
and a home folder of mode 0700. Nothing is shared between two people's
accounts. `system_username` is the one naming rule (pure).

Credentials (both hubs): the hub holds the signing material (access to
`scontrol token` as Slurm's root/SlurmUser, the SSH CA key); a person's server
holds only that person's short-lived credentials, fetched from the hub with
the server's own JupyterHub API token (`identity_hub.py` on the hub,
`HubCredentials` in the server). See docs/security.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

#: TLJH's prefix; configurable (c.SCIPLocalSpawner.account_prefix).
DEFAULT_PREFIX = "jupyter-"
#: Linux account names: at most 32 characters (useradd), portable characters only.
MAX_NAME = 32
_PORTABLE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_HASHED = re.compile(r"(^|-)[0-9a-f]{12}$")


def system_username(hub_name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The Unix account of hub user `hub_name`: `prefix + name` when that is a portable
    account name, else a readable part plus a hash of the exact name (never two people, one account).

    >>> system_username("student1")
    'jupyter-student1'
    >>> system_username("Alice+lab@uni.ca") == system_username("alice_lab@uni.ca")
    False
    >>> len(system_username("x" * 100)) <= 32
    True
    """
    candidate = prefix + hub_name
    # a portable name that looks like a hashed one is hashed too, so nobody can pick another's account name
    if _PORTABLE.match(hub_name) and len(candidate) <= MAX_NAME and not _HASHED.search(hub_name):
        return candidate
    digest = hashlib.sha256(hub_name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    readable = re.sub(r"[^a-z0-9]+", "-", hub_name.lower()).strip("-")[: MAX_NAME - len(prefix) - len(digest) - 1].strip("-")
    return f"{prefix}{readable + '-' if readable else ''}{digest}"


class AccountError(RuntimeError):
    """An account could not be created or is not usable (the message says what to do)."""




def useradd_argv(account: str, home: str, hub_name: str) -> list[str]:
    """The `useradd` of a new per-person account: own group, no password, home given (created by us).

    >>> useradd_argv("jupyter-a", "/srv/home/a", "a")[:4]
    ['useradd', '--no-create-home', '--home-dir', '/srv/home/a']
    """
    return [
        "useradd", "--no-create-home", "--home-dir", home, "--shell", "/bin/bash",
        "--user-group", "--comment", f"SCIP Jupyter user {hub_name}"[:200].replace(":", " "), account,
    ]  # fmt: skip


async def ensure_account(account: str, home: str, hub_name: str) -> pwd.struct_passwd:
    """The account, created with `useradd` if it does not exist (root only). Never root."""
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        entry = None
    if entry is None:
        if os.geteuid() != 0:
            raise AccountError(f"Unix account {account!r} does not exist and the hub is not root to create it")
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        argv = useradd_argv(account, home, hub_name)
        argv[0] = useradd
        async with _lock():  # useradd locks /etc/passwd: one at a time
            try:
                entry = pwd.getpwnam(account)
            except KeyError:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                out, err = await proc.communicate()
                if proc.returncode not in (0, 9):  # 9: created meanwhile by someone else
                    raise AccountError(f"useradd {account} failed (exit {proc.returncode}): {err.decode(errors='replace').strip()}")
                log.info("created Unix account %s for hub user %s (home %s)", account, hub_name, home)
                entry = pwd.getpwnam(account)
    if entry.pw_uid == 0:
        raise AccountError(f"{account!r} is root; single-user servers never run as root")
    return entry


_LOCKS: dict[int, asyncio.Lock] = {}


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    return _LOCKS.setdefault(id(loop), asyncio.Lock())


def private_home(path: Path, uid: int, gid: int) -> None:
    """Make `path` a home only its owner enters (mode 0700, owned by uid:gid)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid, follow_symlinks=False)
    os.chmod(path, 0o700)


# ---------------------------------------------------------------- Slurm JWT (hub side: mint)


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_slurm_jwt(key: bytes, account: str, lifespan: float, now: float | None = None) -> tuple[str, float]:
    """A Slurm JWT for `account` signed with the HS256 key of `AuthAltParameters=jwt_key=` (pure).

    Same claims as `scontrol token`: `sun` (Slurm user name), `iat`, `exp`. Returns (token, expiry).

    >>> token, exp = mint_slurm_jwt(b"k" * 32, "jupyter-a", 60, now=1000)
    >>> token.count("."), exp
    (2, 1060)
    """
    import hmac
    import json
    import time

    now = time.time() if now is None else now
    exp = int(now + lifespan)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = _b64(json.dumps({"exp": exp, "iat": int(now), "sun": account}, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{_b64(signature)}", exp


async def mint_slurm_token_scontrol(account: str, lifespan: int, slurm_conf: str = "", timeout: float = 30) -> tuple[str, float]:
    """A token from `scontrol token username=<account> lifespan=<s>` (root or SlurmUser only)."""
    import time

    env = dict(os.environ)
    if slurm_conf:
        env["SLURM_CONF"] = slurm_conf
    started = time.time()
    proc = await asyncio.create_subprocess_exec(
        "scontrol", "token", f"username={account}", f"lifespan={int(lifespan)}",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        raise RuntimeError(f"scontrol token did not answer within {timeout:g}s") from None
    text = out.decode().strip()
    if proc.returncode != 0 or not text.startswith("SLURM_JWT="):
        raise RuntimeError(f"scontrol token for {account} failed (exit {proc.returncode}): {err.decode(errors='replace').strip()}")
    return text.split("=", 1)[1], started + int(lifespan)


# ---------------------------------------------------------------- Slurm JWT (server side: fetch)

#: Hub API path of a person's Slurm token (relative to JUPYTERHUB_API_URL).
SLURM_TOKEN_PATH = "/scip/credentials/slurm"
#: Hub API path that signs a person's SSH public key.
SSH_CERT_PATH = "/scip/credentials/ssh"
#: Hub API path mapping hub user names to their Slurm accounts (for reconcile; list:users scope).
ACCOUNTS_PATH = "/scip/accounts"


def hub_token_source(api_url: str | None = None, api_token: str | None = None, timeout: float = 30):
    """A `rest.TokenSource` fetching this server's person's Slurm token from the hub.

    Authenticated with the server's own JupyterHub API token ($JUPYTERHUB_API_TOKEN):
    the hub answers with the token of the person that server belongs to, nobody else's.
    """

    async def fetch():
        import httpx

        from .arc.rest import SlurmToken

        url = (api_url or os.environ.get("JUPYTERHUB_API_URL", "")).rstrip("/")
        token = api_token or os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not url or not token:
            raise RuntimeError("no hub to ask for a Slurm token: JUPYTERHUB_API_URL/JUPYTERHUB_API_TOKEN are not set")
        async with httpx.AsyncClient(timeout=timeout) as client:
            resp = await client.get(url + SLURM_TOKEN_PATH, headers={"Authorization": f"token {token}"})
        if resp.status_code != 200:
            raise RuntimeError(f"the hub refused a Slurm token (HTTP {resp.status_code}): {resp.text[:300]}")
        body = resp.json()
        return SlurmToken(user=body["user"], token=body["token"], expires=float(body["expires"]))

    return fetch


def env_token_source(user: str | None = None):
    """A `rest.TokenSource` reading `SLURM_JWT` (as `scontrol token` prints it) for the current account.

    For command-line use and tests; notebook servers use `hub_token_source`, which renews.
    """

    async def read():
        import time

        from .arc.rest import SlurmToken

        token = os.environ.get("SLURM_JWT", "")
        if not token:
            raise RuntimeError("SLURM_JWT is not set")
        return SlurmToken(user=user or pwd.getpwuid(os.geteuid()).pw_name, token=token, expires=_jwt_expiry(token) or time.time() + 300)

    return read


def _jwt_expiry(token: str) -> float | None:
    import base64
    import json

    try:
        claims = token.split(".")[1]
        return float(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
