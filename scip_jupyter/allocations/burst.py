"""Before `sbatch`: may this Slurm scale-up's GPUs × walltime still be paid for?

`check_gpu_hours(preset, request, new_jobs)` is called by `ARCCluster.scale` before
anything is submitted. The allocation that pays is the allocations.yaml group whose
`slurm_account` is the request's account; what it has left this period is its
`gpu_hours` minus what the ledger holds for it (notebook servers and Slurm jobs from
sacct). A scale-up asking for more than is left (each new job × GPUs × the GPU's
share × walltime, the most it can use) is refused with HTTP 403-style
`ARCRequestError` on `workers`, naming the allocation, what is left and what was asked.

Who decides, in this order (`burst_mode`):

1. **the hub** (`"hub"`), in a person's notebook server: `$JUPYTERHUB_API_URL` and
   `$JUPYTERHUB_API_TOKEN` are set and the process is not a hub service. The server
   asks `POST /hub/api/scip/allocations/burst` with its own token (hub_api.py); the
   hub decides against its ledger for the person that token belongs to. A server
   never holds the ledger's URL (docs/security.md). When the hub cannot be asked
   (down, no answer within `HUB_TIMEOUT`, an answer we cannot read) a GPU scale-up
   is refused (fail closed, HTTP 503-style, naming the hub and what to do); a
   CPU-only one never asks.
2. **the ledger** (`"ledger"`): `$SCIP_ALLOCATIONS_FILE` and `$SCIP_LEDGER_URL`
   are set (the hub's services, tests).
3. otherwise nothing is checked here, and Slurm's own limits (GrpTRES from
   `arc accounts sync`) still apply.

The pure parts: `gpu_hours_asked`, `decide_burst` (account + hours used → a
`BurstDecision`), `BurstDecision.error()` and its JSON form, which the hub sends.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..i18n import _, current
from .ledger import ledger_for, utcnow
from .policy import Account, _num, group_account
from .quotas import cached_allocations
from .usage_sacct import flavour_share

ALLOCATIONS_ENV = "SCIP_ALLOCATIONS_FILE"
LEDGER_ENV = "SCIP_LEDGER_URL"
#: Hub API path of the check (relative to JUPYTERHUB_API_URL).
BURST_PATH = "/scip/allocations/burst"
#: Seconds a notebook waits for the hub's answer (the kernel, or the cluster's loop when adaptive, waits).
HUB_TIMEOUT = 15.0
_EPS = 1e-9

logger = logging.getLogger(__name__)


def gpu_hours_asked(request, new_jobs: int) -> float:
    """The most GPU-hours `new_jobs` jobs of this request can use: jobs × GPUs × share × walltime.

    >>> from types import SimpleNamespace as R
    >>> gpu_hours_asked(R(gpu_type="h100", gpus=2, walltime_seconds=1800), 3)
    3.0
    >>> round(gpu_hours_asked(R(gpu_type="h100_1g.10gb", gpus=1, walltime_seconds=7 * 3600), 1), 6)
    1.0
    """
    share = flavour_share(request.gpu_type or "")
    return new_jobs * request.gpus * share * request.walltime_seconds / 3600


@dataclass(frozen=True)
class BurstDecision:
    """The answer to one scale-up: allowed or not, and the figures the message names.

    `allocation` is the paying account's label (`group lab`), empty when the Slurm
    account is paid by no metered allocation (`metered` False); `left`/`limit` are
    GPU-hours of the period, `asked` what the new jobs may use, `fits` how many jobs
    of this size still fit.
    """

    allowed: bool
    metered: bool = False
    allocation: str = ""
    slurm_account: str = ""
    left: float | None = None
    limit: float | None = None
    asked: float = 0.0
    fits: int | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "BurstDecision":
        """Read the hub's answer; raises ValueError when it is not one."""
        if not isinstance(data, Mapping) or not isinstance(data.get("allowed"), bool):
            raise ValueError("no boolean 'allowed' in the answer")
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def error(self):
        """The ARCRequestError a refusal raises (on `workers`, 403, with how many jobs would fit)."""
        from ..arc.presets import ARCRequestError

        allowed = [_("at most {n} more jobs of this size").format(n=self.fits)] if self.fits is not None else []
        error = ARCRequestError("workers", self.message, allowed, status=403)
        error.decision = self  # the figures, for whoever reports it (ARCAdaptive's one line per answer)
        return error


def decide_burst(account: Account | None, used: float, request, new_jobs: int) -> BurstDecision:
    """May `new_jobs` jobs of `request` start, with `used` GPU-hours of `account` gone? (pure)

    `account` None (or without `gpu_hours`): no metered allocation pays, allowed.
    """
    asked = gpu_hours_asked(request, new_jobs) if new_jobs > 0 else 0.0
    if account is None or account.gpu_hours is None:
        return BurstDecision(True, slurm_account=request.account, asked=asked)
    limit = float(account.gpu_hours)
    left = max(limit - used, 0.0)
    per_job = gpu_hours_asked(request, 1)
    fits = int((left + _EPS) // per_job) if per_job > 0 else None
    figures = dict(metered=True, allocation=account.label, slurm_account=request.account, left=left, limit=limit,
                   asked=asked, fits=fits)
    if asked <= left + _EPS:
        return BurstDecision(True, **figures)
    message = _(
        "the allocation of {label} (Slurm account {slurm_account}) has {left} of {limit} GPU-hours left "
        "{window}; these {jobs} jobs ask for up to {asked} GPU-hours ({gpus} × {gpu_type} × {walltime} h each). "
        "Ask for fewer workers or a shorter walltime, or ask your project lead for more GPU-hours"
    ).format(
        label=account.label, slurm_account=request.account, left=_num(left), limit=_num(limit),
        window=_(account.window_label), jobs=new_jobs, asked=_num(asked), gpus=request.gpus,
        gpu_type=request.gpu_type or "gpu", walltime=_num(request.walltime_seconds / 3600),
    )
    return BurstDecision(False, message=message, **figures)


def paying_account(allocations, slurm_account: str, now: dt.datetime) -> tuple[str | None, Account | None]:
    """The allocations.yaml group paying for `slurm_account`, and its account for the period now."""
    group = allocations.group_for_slurm_account(slurm_account)
    if group is None:
        return None, None
    return group, group_account(group, allocations.groups[group], allocations.period, now)


def decide_from_ledger(allocations, ledger, request, new_jobs: int, now: dt.datetime | None = None) -> BurstDecision:
    """The decision against a ledger (one read: the paying account's holdings of the period)."""
    now = now or utcnow()
    _group, account = paying_account(allocations, request.account, now)
    used = 0.0
    if account is not None and account.gpu_hours is not None:
        used = sum(h.gpu_hours(account.window, now) for h in ledger.holdings([account.key], account.window[0]))
    return decide_burst(account, used, request, new_jobs)


def burst_mode(env: Mapping[str, str] | None = None) -> str | None:
    """Who decides here: "hub" (a person's server), "ledger" (hub services, tests) or None.

    >>> burst_mode({"JUPYTERHUB_API_URL": "http://hub/hub/api", "JUPYTERHUB_API_TOKEN": "t"})
    'hub'
    >>> burst_mode({"JUPYTERHUB_API_URL": "u", "JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_SERVICE_NAME": "scip-usage",
    ...             "SCIP_LEDGER_URL": "sqlite://", "SCIP_ALLOCATIONS_FILE": "a.yaml"})
    'ledger'
    >>> burst_mode({"SCIP_LEDGER_URL": "sqlite://"}) is None
    True
    """
    env = os.environ if env is None else env
    if env.get("JUPYTERHUB_API_URL") and env.get("JUPYTERHUB_API_TOKEN") and not env.get("JUPYTERHUB_SERVICE_NAME"):
        return "hub"
    if env.get(ALLOCATIONS_ENV) and env.get(LEDGER_ENV):
        return "ledger"
    return None


def burst_body(request, new_jobs: int) -> dict[str, Any]:
    """What a server sends the hub for this scale-up (hub_api.BODY_FIELDS)."""
    return {"preset": request.preset, "account": request.account, "gpu_type": request.gpu_type,
            "gpus_per_job": request.gpus, "jobs": new_jobs, "walltime": request.walltime}


def _unreachable(api_url: str, detail: str):
    from ..arc.presets import ARCRequestError

    return ARCRequestError("workers", _(
        "could not ask the hub at {url} whether your allocation's GPU-hours cover this scale-up ({detail}); "
        "nothing was submitted. GPU jobs are only submitted once the hub has answered: try again in a minute, "
        "and if it keeps failing, restart your server from the hub's home page or tell the platform's administrators"
    ).format(url=api_url, detail=detail), [], status=503)


def ask_hub(request, new_jobs: int, api_url: str, api_token: str, timeout: float = HUB_TIMEOUT) -> BurstDecision:
    """Ask the hub (hub_api.py) with this server's own token; raises ARCRequestError when it cannot
    answer (503, fail closed) or refuses the request itself (its 4xx, with the field it names)."""
    import requests

    from ..arc.presets import ARCRequestError

    url = api_url.rstrip("/") + BURST_PATH
    try:
        resp = requests.post(url, json=burst_body(request, new_jobs), timeout=timeout,
                             headers={"Authorization": f"token {api_token}", "Accept-Language": current()})
    except requests.RequestException as exc:
        raise _unreachable(api_url, f"{type(exc).__name__}: {exc}") from None
    try:
        data = resp.json()
    except ValueError:
        data = None
    if resp.status_code == 200:
        try:
            return BurstDecision.from_json(data)
        except (ValueError, TypeError) as exc:
            raise _unreachable(api_url, _("unreadable answer: {error}").format(error=exc)) from None
    if 400 <= resp.status_code < 500 and resp.status_code != 404 and isinstance(data, Mapping):
        # the hub refused the question itself (hub_api.BodyError: field, problem, allowed)
        field = str(data.get("field") or "workers")
        problem = str(data.get("problem") or data.get("message") or resp.reason)
        raise ARCRequestError(field, problem, [str(a) for a in data.get("allowed") or []], status=resp.status_code)
    said = str(data.get("message") or "")[:300] if isinstance(data, Mapping) else ""
    raise _unreachable(api_url, f"HTTP {resp.status_code}" + (f": {said}" if said else ""))


def check_gpu_hours(preset, request, new_jobs: int, *, allocations=None, ledger=None,
                    now: dt.datetime | None = None, env: Mapping[str, str] | None = None) -> BurstDecision | None:
    """Raise ARCRequestError('workers', ..., status=403) when the allocation cannot cover the scale-up.

    `allocations`/`ledger` given: decide against them. Otherwise `burst_mode(env)` says
    who decides (the module docstring). Returns the decision when one was made.
    """
    if new_jobs <= 0 or not getattr(request, "gpus", 0):
        return None  # CPU-only, or a scale-down: never metered, never asks
    if allocations is None and ledger is None:
        env = os.environ if env is None else env
        mode = burst_mode(env)
        if mode == "hub":
            decision = ask_hub(request, new_jobs, env["JUPYTERHUB_API_URL"], env["JUPYTERHUB_API_TOKEN"])
            if not decision.allowed:
                raise decision.error()
            return decision
        if mode is None:
            return None
    if allocations is None:
        path = (env or os.environ).get(ALLOCATIONS_ENV)
        if not path:
            return None
        allocations = cached_allocations(path)
    if ledger is None:
        url = (env or os.environ).get(LEDGER_ENV)
        if not url:
            return None
        ledger = ledger_for(url)
    decision = decide_from_ledger(allocations, ledger, request, new_jobs, now)
    if not decision.allowed:
        raise decision.error()
    return decision
