"""Before `sbatch`: may this Slurm scale-up's GPUs × walltime still be paid for?

`check_gpu_hours(preset, request, new_jobs)` is called by `ARCCluster.scale` before
anything is submitted. The allocation that pays is the allocations.yaml group whose
`slurm_account` is the request's account; what it has left this period is its
`gpu_hours` minus what the ledger holds for it (notebook servers and Slurm jobs from
sacct). A scale-up asking for more than is left (each new job × GPUs × the GPU's
share × walltime, the most it can use) is refused with HTTP 403-style
`ARCRequestError` on `workers`, naming the allocation, what is left and what was asked.

The check runs where the allocation file and the ledger are readable:
`$SCIP_ALLOCATIONS_FILE` and `$SCIP_LEDGER_URL` (the hub's services, tests, a
deployment that gives notebook servers a read-only ledger URL). Without them it
allows, and Slurm's own limits (GrpTRES from `arc accounts sync`) still apply.
"""

from __future__ import annotations

import datetime as dt
import os

from ..i18n import _
from .ledger import ledger_for, utcnow
from .policy import _num, group_account
from .quotas import cached_allocations
from .usage_sacct import flavour_share

ALLOCATIONS_ENV = "SCIP_ALLOCATIONS_FILE"
LEDGER_ENV = "SCIP_LEDGER_URL"
_EPS = 1e-9


def gpu_hours_asked(request, new_jobs: int) -> float:
    """The most GPU-hours `new_jobs` jobs of this request can use: jobs × GPUs × share × walltime."""
    share = flavour_share(request.gpu_type or "")
    return new_jobs * request.gpus * share * request.walltime_seconds / 3600


def check_gpu_hours(preset, request, new_jobs: int, *, allocations=None, ledger=None,
                    now: dt.datetime | None = None) -> None:
    """Raise ARCRequestError('workers', ..., status=403) when the allocation cannot cover the scale-up."""
    if new_jobs <= 0 or not getattr(request, "gpus", 0):
        return
    if allocations is None:
        path = os.environ.get(ALLOCATIONS_ENV)
        if not path:
            return
        allocations = cached_allocations(path)
    group = allocations.group_for_slurm_account(request.account)
    if group is None or allocations.groups[group].gpu_hours is None:
        return
    if ledger is None:
        url = os.environ.get(LEDGER_ENV)
        if not url:
            return
        ledger = ledger_for(url)
    now = now or utcnow()
    account = group_account(group, allocations.groups[group], allocations.period, now)
    used = sum(h.gpu_hours(account.window, now) for h in ledger.holdings([account.key], account.window[0]))
    limit = float(account.gpu_hours)
    left = max(limit - used, 0.0)
    asked = gpu_hours_asked(request, new_jobs)
    if asked <= left + _EPS:
        return
    from ..arc.presets import ARCRequestError

    per_job = gpu_hours_asked(request, 1)
    fits = int((left + _EPS) // per_job) if per_job > 0 else 0
    message = _(
        "the allocation of {label} (Slurm account {slurm_account}) has {left} of {limit} GPU-hours left "
        "{window}; these {jobs} jobs ask for up to {asked} GPU-hours ({gpus} × {gpu_type} × {walltime} h each). "
        "Ask for fewer workers or a shorter walltime, or ask your project lead for more GPU-hours"
    ).format(
        label=account.label, slurm_account=request.account, left=_num(left), limit=_num(limit),
        window=account.window_label, jobs=new_jobs, asked=_num(asked), gpus=request.gpus,
        gpu_type=request.gpu_type or "gpu", walltime=_num(request.walltime_seconds / 3600),
    )
    raise ARCRequestError("workers", message, [_("at most {n} more jobs of this size").format(n=fits)], status=403)
