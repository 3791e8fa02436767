"""Hub side of the pre-`sbatch` GPU-hours check, for notebook servers (issue 10).

`configure_burst(c, setup, wiring)` (a `hub_setup.FEATURES` entry, both hubs) adds

    POST /hub/api/scip/allocations/burst
         {"preset": "local-slurm", "gpus_per_job": 1, "jobs": 4, "walltime": "01:00:00",
          "gpu_type": "h100", "account": "def-demo"}          (gpu_type, account: optional)
      -> 200 {"allowed": true|false, "message": ..., "allocation": "group researchers",
              "slurm_account": ..., "left": ..., "limit": ..., "asked": ..., "fits": ..., "metered": ...}

A notebook server asks with its own JupyterHub API token (burst.py, from
`ARCCluster.scale`); the hub answers for the person that token belongs to, and
never for anyone else: the body names no person, service and anonymous requests
get 403/401. The hub decides with burst.py against its own ledger, so servers
never hold the ledger's URL (docs/security.md).

The body is validated here, once, with the preset's own rules
(`presets.validate_request`): an unknown key, a preset the hub does not know, a
GPU type, count, walltime or job count the preset does not allow, or an account
that is not the person's gets HTTP 400/403 `{"field", "problem", "allowed",
"message"}` naming the field and what is allowed. The person's accounts are the
preset's (`accounts.users`) plus the `slurm_account` of each allocations.yaml
group the person is in (the hub's groups); an account paid by a group the person
is not in is refused, so nobody reads or spends another project's GPU-hours.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Mapping

from ..i18n import _, negotiate, use_locale
from .burst import BURST_PATH, BurstDecision, decide_from_ledger

#: Keys a body may carry, in the order the docs list them.
BODY_FIELDS = ("preset", "gpus_per_job", "jobs", "walltime", "gpu_type", "account")
REQUIRED = ("preset", "gpus_per_job", "jobs", "walltime")
#: The preset rules' field names (presets.validate_request) -> the body's.
_FIELD_NAMES = {"gpus": "gpus_per_job"}


class BodyError(Exception):
    """A body the hub will not answer: `field`, `problem`, `allowed`, HTTP `status`."""

    def __init__(self, field: str, problem: str, allowed: list[str] | None = None, status: int = 400):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem, self.allowed, self.status = field, problem, list(allowed or []), status

    def to_json(self) -> dict[str, Any]:
        allowed = ", ".join(self.allowed) if self.allowed else _("(none)")
        return {"status": self.status, "field": self.field, "problem": self.problem, "allowed": self.allowed,
                "message": _("{field}: {problem}; allowed values: {allowed}").format(
                    field=self.field, problem=self.problem, allowed=allowed)}


def person_accounts(preset, username: str, groups: list[str], allocations) -> list[str]:
    """The Slurm accounts `username` may burst with on `preset`: the preset's, then their groups'."""
    accounts = list(preset.accounts.configured_for(username))
    if allocations is not None:
        for name in allocations.group_order():
            account = allocations.groups[name].slurm_account
            if name in groups and account and account not in accounts:
                accounts.append(account)
    return accounts


def parse_body(raw: bytes | str | None) -> dict[str, Any]:
    """JSON object → dict (no validation of the values yet)."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise BodyError("body", _("is not JSON"), ['{"preset": ..., "gpus_per_job": ..., "jobs": ..., "walltime": ...}']) from None
    if not isinstance(body, dict):
        raise BodyError("body", _("must be a JSON object"), list(BODY_FIELDS))
    return body


def validate_body(body: Mapping[str, Any], presets, username: str, groups: list[str], allocations):
    """(preset, ValidRequest, jobs) from a body, or BodyError naming the field (pure)."""
    from ..arc.presets import ARCRequestError, check_scale, validate_request

    unknown = sorted(str(k) for k in body if k not in BODY_FIELDS)
    if unknown:
        raise BodyError(unknown[0], _("unknown field"), list(BODY_FIELDS))
    for key in REQUIRED:
        if body.get(key) in (None, ""):
            raise BodyError(key, _("is required"), list(REQUIRED))
    name = body["preset"]
    if not isinstance(name, str) or name not in presets.names():
        raise BodyError("preset", _("{name!r} is not a cluster preset of this hub").format(name=name), presets.names())
    preset = presets.get(name)
    jobs = body["jobs"]
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BodyError("jobs", _("{value!r} is not a whole number of at least 1").format(value=jobs),
                        [f"1..{min(preset.max_jobs_per_user, preset.max_array_size)}"])
    for key in ("walltime", "gpu_type", "account"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise BodyError(key, _("must be a string"), [])
    raw = {"gpus": body["gpus_per_job"], "walltime": body["walltime"],
           "gpu_type": body.get("gpu_type"), "account": body.get("account")}
    try:
        check_scale(preset, jobs)
        request = validate_request(preset, raw, person_accounts(preset, username, groups, allocations))
    except ARCRequestError as exc:
        field = "jobs" if exc.field == "workers" else _FIELD_NAMES.get(exc.field, exc.field)
        raise BodyError(field, exc.problem, exc.allowed, exc.status) from None
    if allocations is not None:
        group = allocations.group_for_slurm_account(request.account)
        if group is not None and group not in groups:
            raise BodyError("account", _(
                "{account!r} is paid by the allocation of group {group}, and you are not a member of it"
            ).format(account=request.account, group=group),
                [a for a in person_accounts(preset, username, groups, allocations) if a != request.account], 403)
    return preset, request, jobs


def _handler(allocations_path: str, ledger_url: str):
    from jupyterhub.apihandlers.base import APIHandler
    from tornado import web

    class BurstHandler(APIHandler):
        """POST /hub/api/scip/allocations/burst: may this person's scale-up still be paid for?"""

        def _person(self):
            user = self.current_user
            if user is None:
                raise web.HTTPError(401, "a notebook server's own API token is required")
            if getattr(user, "kind", "user") != "user":
                raise web.HTTPError(403, "allocations are checked for a person's own server token only")
            return user

        def _answer(self, status: int, data: dict) -> None:
            self.set_status(status)
            self.set_header("Content-Type", "application/json")
            self.set_header("Cache-Control", "no-store")
            self.finish(json.dumps(data))

        async def post(self):
            user = self._person()
            with use_locale(negotiate(self.request.headers.get("Accept-Language"))):
                try:
                    status, data = await self._decide(user)
                except BodyError as exc:
                    self.log.info("burst check for %s refused: %s", user.name, exc)
                    status, data = exc.status, exc.to_json()
            self._answer(status, data)

        async def _decide(self, user) -> tuple[int, dict]:
            from ..arc.presets import load_default_presets
            from .ledger import ledger_for
            from .quotas import cached_allocations

            body = parse_body(self.request.body)
            groups = sorted(g.name for g in user.groups)
            allocations = cached_allocations(allocations_path) if allocations_path else None
            preset, request, jobs = validate_body(body, load_default_presets(), user.name, groups, allocations)
            if allocations is None or not request.gpus:
                return 200, BurstDecision(True, slurm_account=request.account).to_json()
            try:
                ledger = await asyncio.to_thread(ledger_for, ledger_url)
                decision = await asyncio.to_thread(decide_from_ledger, allocations, ledger, request, jobs)
            except Exception as exc:  # noqa: BLE001 - the URL stays in the hub's log, not in the answer
                self.log.error("burst check for %s: allocation ledger not readable: %r", user.name, exc)
                raise web.HTTPError(503, "the allocation ledger cannot be read now; try again in a minute") from None
            self.log.info("burst check for %s on %s: %d × %d %s × %s -> %s%s", user.name, preset.name, jobs,
                          request.gpus, request.gpu_type, request.walltime,
                          "allowed" if decision.allowed else "refused",
                          f" ({decision.message})" if decision.message else "")
            return 200, decision.to_json()

    return BurstHandler


def configure_burst(c, setup, wiring=None) -> None:
    """The `hub_setup.FEATURES` entry: the endpoint on both hubs, with the hub's quota file and ledger."""
    from .ledger import DEFAULT_URL

    existing = c.JupyterHub.extra_handlers if "extra_handlers" in c.JupyterHub else []
    handler = _handler(setup.allocations_path or "", setup.ledger_url or DEFAULT_URL)
    c.JupyterHub.extra_handlers = [*existing, ("/api" + BURST_PATH, handler)]
