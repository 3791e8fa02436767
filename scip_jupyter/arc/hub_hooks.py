"""Hub side of "no orphaned jobs": cancel Slurm jobs by their tags and owning account.

The server extension cancels its own jobs when it stops cleanly. This module
covers the rest, without trusting any registry file (a `kill -9` can lose it):

* `post_stop_hook(spawner)` (set as `c.Spawner.post_stop_hook`): when a server
  stops, dies or is culled, cancel every job whose `--comment` tags name that
  user and server and that runs as the person's account (`slurm_account`).
* `reconcile(running, only_users, account_of)`: cancel every tagged job whose
  server is not running and that runs as its tagged person's account
  (`account_of`: the hub's mapping, `HubAccounts`); a job whose tags name alice
  but which runs as bob's account is logged and kept. Run at hub start-up (and
  periodically) by the `scip-arc-reconcile` hub service (`scip-jupyter arc
  reconcile --hub`), which asks the hub API which servers run and whose account
  is whose. Only jobs of users the hub knows are considered: jobs tagged for
  anyone else (another hub, a notebook outside any hub) are not this hub's to cancel.

Legacy tags (tags.py) name every server they may have come from; a job is
cancelled only when none of them runs.

The hub reaches each cluster through the preset's transport. This only works
where the hub's account may cancel users' jobs: the local Slurm (hub as root or
Slurm operator), or a site that gives the hub such a transport. Elsewhere the
server-side hook is the line of defence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Iterable

from traitlets import Float, List, Unicode
from traitlets.config import LoggingConfigurable

from .states import JobState, parse_squeue, scancel_argv, squeue_argv
from .tags import may_be_legacy, names_server, tagged_person, tagged_user

log = logging.getLogger(__name__)

#: JupyterHub's default server has the name "" (and so do its tags: a server *named* "default" is another server).
DEFAULT_SERVER = ""
SERVICE_NAME = "scip-arc-reconcile"


def server_key(user: str, server_name: str | None) -> tuple[str, str]:
    """(user, server) exactly as the tags carry them (tags are injective: no cleaning)."""
    return (user, server_name or DEFAULT_SERVER)


# ---------------------------------------------------------------- pure decisions


def _ours(j: JobState) -> bool:
    """An unfinished job whose comment is our tags, today's or the legacy format's (tags.py)."""
    return not j.phase.finished and (j.tags is not None or may_be_legacy(j.comment))


def leftovers_of(
    jobs: list[JobState], user: str, server: str, account: str | None = None, others: Iterable[str] = ()
) -> list[str]:
    """Ids to scancel so that no job tagged for user/server remains (whole arrays by their job id).

    With `account` (the Slurm account the person's server submits as), only jobs
    running as that account count: tags in someone else's job never make us cancel it.
    `others`: the person's other servers still running; a legacy-tagged job that may
    be theirs too (legacy `server=default`: unnamed or named "default") is kept.
    """
    server = server or DEFAULT_SERVER
    others = [o for o in others if (o or DEFAULT_SERVER) != server]
    return sorted(
        {
            j.array_job_id
            for j in jobs
            if _ours(j)
            # no account to check: a legacy cleaned name (alice_lab for alice+lab) may be someone else's
            and (j.user == account if account else tagged_user(j.comment) == user)
            and names_server(j.comment, user, server)
            and not any(names_server(j.comment, user, o) for o in others)
        }
    )


@dataclass
class ReconcilePlan:
    """What reconcile decided: ids to cancel per (person, tagged server), and jobs it left alone."""

    cancel: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: (job id, why) of tagged jobs not cancelled although no running server of theirs was found
    skipped: list[tuple[str, str]] = field(default_factory=list)


def reconcile_plan(
    jobs: list[JobState],
    running: set[tuple[str, str]],
    only_users: set[str] | None = None,
    account_of: Callable[[str], str | None] | None = None,
) -> ReconcilePlan:
    """Tagged, unfinished jobs whose server is not in `running`, and that really are that person's.

    A job belongs to the person its tags name only when Slurm runs it as the account
    that person's servers submit as (`account_of(person)`, the hub's account mapping,
    identity_hub.SCIPCredentials.account_of); a job whose tags name alice but which runs
    as bob's account is skipped (and said so), never cancelled because alice's server
    stopped. `account_of` None: tags alone decide (no mapping known; callers avoid it).
    `only_users` limits the decision to those people (this hub's users); legacy tags
    (cleaned names) are matched against them. A job is an orphan when no running
    server of its person could have tagged it (tags.names_server).
    """
    running = {server_key(u, s) for u, s in running}
    plan = ReconcilePlan()
    out: dict[tuple[str, str], set[str]] = {}
    for j in jobs:
        if not _ours(j):
            continue
        tagged, people = tagged_user(j.comment), _people(j, only_users)
        if not people:
            continue  # not one of this hub's people: not ours to cancel
        if account_of is not None:
            accounts = {p: account_of(p) for p in people}
            owners = [p for p in people if accounts[p] and accounts[p] == j.user]
            if not owners:
                wanted = ", ".join(f"{p!r}: {accounts[p] or 'no account'}" for p in people)
                plan.skipped.append((j.job_id, f"tagged for {tagged!r} but runs as {j.user or '?'} ({wanted})"))
                continue
            people = owners
        else:  # tags alone: only the exact name (a legacy cleaned one may be several people)
            people = [p for p in people if p == tagged]
            if not people:
                continue
        if any(names_server(j.comment, p, s) for p in people for (u, s) in running if u == p):
            continue
        server = j.tags.server if j.tags is not None else "default"
        out.setdefault((people[0], server), set()).add(j.array_job_id)
    plan.cancel = {k: sorted(v) for k, v in sorted(out.items())}
    return plan


def people_tagged(jobs: list[JobState], only_users: set[str] | None = None) -> set[str]:
    """The people (of `only_users`, when given) the unfinished jobs' tags may name."""
    return {p for j in jobs if _ours(j) for p in _people(j, only_users)}


def _people(j: JobState, only_users: set[str] | None) -> list[str]:
    """Who a job's tags may name: the tagged name itself, or those of `only_users` it may be (legacy)."""
    if only_users is None:
        tagged = tagged_user(j.comment)
        return [tagged] if tagged else []
    return sorted(p for p in only_users if tagged_person(j.comment, p))


def orphans_of(
    jobs: list[JobState],
    running: set[tuple[str, str]],
    only_users: set[str] | None = None,
    account_of: Callable[[str], str | None] | None = None,
) -> dict[tuple[str, str], list[str]]:
    """`reconcile_plan(...).cancel`: {(user, server): ids} of orphaned jobs."""
    return reconcile_plan(jobs, running, only_users, account_of).cancel


# ---------------------------------------------------------------- I/O


class ARCCleanup(LoggingConfigurable):
    """Cancels leftover ARC jobs by tag, on the clusters of `presets`."""

    presets = List(
        Unicode(),
        default_value=["local-slurm"],
        config=True,
        help="""ARC presets whose clusters the hub can reach and may cancel users' jobs on.
        Example: c.ARCCleanup.presets = ["local-slurm"]""",
    )
    timeout = Float(30.0, config=True, help="Seconds one Slurm command may take before the hook gives up on that cluster.")
    coalesce = Float(
        0.05,
        config=True,
        help="""Seconds a server stop's clean-up waits for other stops to share its `squeue` of each cluster.

        A burst of N stops (a course ending, the idle culler) then lists each cluster's
        queue about once instead of N times; cancelling stays one `scancel` per server.
        A stop is only ever served by a listing that began after its hook was called,
        and at most one such listing per cluster runs at a time (stops arriving meanwhile
        share the next one). The wait is added to every stop, so it stays short: one
        listing costs the hub a few ms of CPU, a person polling their stopping server
        costs more. 0: share only with stops arriving in the same instant or while a
        listing runs. Example: c.ARCCleanup.coalesce = 0.2""",
    )

    def __init__(self, transport_for: Callable[[str], object] | None = None, **kwargs):
        super().__init__(**kwargs)
        self._transport_for = transport_for
        self._next: dict[str, asyncio.Future] = {}  # preset -> the listing stops are joining (not begun)
        self._running: dict[str, asyncio.Future] = {}  # preset -> the listing under way
        self._tasks: set[asyncio.Task] = set()  # keeps the listing tasks referenced until they end

    def transport_for(self, preset: str):
        if self._transport_for is not None:
            return self._transport_for(preset)
        from .server_jobs import preset_transport

        return preset_transport(preset)

    async def queue(self, preset: str) -> list[JobState]:
        """Every user's jobs on the preset's cluster."""
        text = await self.transport_for(preset).run(squeue_argv(), timeout=self.timeout)
        return parse_squeue(text)

    async def shared_queue(self, preset: str) -> list[JobState]:
        """`queue(preset)`, shared with the other stops that ask within `coalesce` s.

        The listing returned always began after this call (jobs a stopped server
        submitted before its hook ran are in it); nothing is kept afterwards, so
        the next caller (and every `reconcile`) lists the queue again.
        """
        loop = asyncio.get_running_loop()
        batch = self._next.get(preset)
        if batch is None or batch.get_loop() is not loop:
            batch = self._next[preset] = loop.create_future()
            batch.add_done_callback(_retrieved)
            task = loop.create_task(self._list_for(preset, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(batch)  # one stop cancelled (hook timeout) leaves the others their listing

    async def _list_for(self, preset: str, batch: asyncio.Future) -> None:
        try:
            await asyncio.sleep(self.coalesce)
            previous = self._running.get(preset)
            if previous is not None and previous.get_loop() is batch.get_loop():
                await asyncio.wait([previous])  # one listing per cluster at a time; joiners gather meanwhile
            # the listing begins now: stops from here on form the next batch
            if self._next.get(preset) is batch:
                del self._next[preset]
            self._running[preset] = batch
            jobs = await self.queue(preset)
        except asyncio.CancelledError:
            batch.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - every stop waiting on it logs it (_each_preset)
            if not batch.done():
                batch.set_exception(exc)
        else:
            if not batch.done():
                batch.set_result(jobs)
        finally:
            for table in (self._next, self._running):
                if table.get(preset) is batch:
                    del table[preset]

    async def scancel(self, preset: str, ids: list[str]) -> None:
        if ids:
            await self.transport_for(preset).run(scancel_argv(ids), timeout=self.timeout)

    async def cancel_server_jobs(
        self, user: str, server: str | None, account: str | None = None, others: Iterable[str] = ()
    ) -> dict[str, list[str]]:
        """Cancel the jobs tagged for one server (and running as `account`, when given) on every cluster.

        `others`: the person's servers still running (legacy tags that may be theirs are kept).
        The queue listing is shared with stops in the same burst (`shared_queue`); the `scancel` is this server's own.
        """
        others = list(others)
        return await self._each_preset(
            lambda jobs: {None: leftovers_of(jobs, user, server or DEFAULT_SERVER, account, others)}, listing=self.shared_queue
        )

    async def reconcile(
        self,
        running: Iterable[tuple[str, str]],
        only_users: set[str] | None = None,
        account_of: Callable[[str], str | None] | None = None,
    ) -> dict[str, list[str]]:
        """Cancel tagged jobs of servers not in `running` ((user, server name) pairs) that run as
        their tagged person's account (`account_of`, see `reconcile_plan`); mismatches are logged, kept."""
        running = set(running)

        def decide(jobs):
            if hasattr(account_of, "prefetch"):  # one request for every person the queue's tags may name
                account_of.prefetch(people_tagged(jobs, only_users))
            plan = reconcile_plan(jobs, running, only_users, account_of)
            for job_id, why in plan.skipped:
                self.log.warning("ARC: reconcile keeps job %s: %s (tags alone never make a job someone's)", job_id, why)
            return plan.cancel

        return await self._each_preset(decide)

    async def _each_preset(self, decide, listing=None) -> dict[str, list[str]]:
        listing = listing or self.queue

        async def one(preset):
            by_server = decide(await listing(preset))
            ids = sorted({i for v in by_server.values() for i in v})
            for key, v in by_server.items():
                if v:
                    self.log.info("ARC: cancelling %s on %s (server %s)", ",".join(v), preset, key or "stopped")
            await self.scancel(preset, ids)
            return ids

        results = await asyncio.gather(*(one(p) for p in self.presets), return_exceptions=True)
        done = {}
        for preset, result in zip(self.presets, results, strict=True):
            if isinstance(result, BaseException):
                self.log.error("ARC: cleaning up jobs on %s failed: %s", preset, result)
            else:
                done[preset] = result
        return done


def _retrieved(future: asyncio.Future) -> None:
    # a failed listing whose every waiter was cancelled is not "never retrieved"
    if not future.cancelled():
        future.exception()


def _other_active(spawner) -> list[str]:
    """Names of the person's other servers that still run (or start)."""
    spawners = getattr(getattr(spawner, "user", None), "spawners", None) or {}
    try:
        return sorted(name for name, other in dict(spawners).items() if other is not spawner and getattr(other, "active", False))
    except Exception:  # noqa: BLE001 - a hub whose user model differs: no others known
        return []


def post_stop_hook_for(cleanup: ARCCleanup | None = None, chain: Callable | None = None):
    """A `Spawner.post_stop_hook` that cancels the stopped server's leftover jobs (then runs `chain`)."""

    async def post_stop_hook(spawner):
        nonlocal cleanup
        if cleanup is None:
            cleanup = ARCCleanup(parent=spawner)
        try:
            account = getattr(spawner, "slurm_account", None)  # the person's own account (identity.py)
            done = await cleanup.cancel_server_jobs(spawner.user.name, spawner.name, account, _other_active(spawner))
            if any(done.values()):
                spawner.log.info("ARC: cancelled leftover jobs of %s: %s", spawner._log_name, done)
        finally:
            if chain is not None:
                result = chain(spawner)
                if asyncio.iscoroutine(result):
                    await result

    return post_stop_hook


# ---------------------------------------------------------------- hub start-up


def servers_from_hub(api_url: str, token: str, timeout: float = 30) -> tuple[set[tuple[str, str]], set[str]]:
    """What the hub knows: ((user, server) pairs running or starting, every user name), paging GET /users."""
    running: set[tuple[str, str]] = set()
    users: set[str] = set()
    offset, limit = 0, 200
    while True:
        query = urllib.parse.urlencode({"offset": offset, "limit": limit})
        req = urllib.request.Request(
            f"{api_url.rstrip('/')}/users?{query}",
            headers={"Authorization": f"token {token}", "Accept": "application/jupyterhub-pagination+json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (hub URL from config)
            page = json.load(resp)
        items = page["items"] if isinstance(page, dict) else page
        for user in items:
            users.add(user["name"])
            for name in (user.get("servers") or {}):  # active servers only (ready or pending)
                running.add(server_key(user["name"], name))
        nxt = page.get("_pagination", {}).get("next") if isinstance(page, dict) else None
        if not nxt:
            return running, users
        offset = nxt["offset"]


class HubAccounts:
    """`account_of(person)` from the hub (GET /hub/api/scip/accounts, identity_hub.py): the
    account mapping the hub mints credentials with, asked once per person and kept for one round."""

    def __init__(self, api_url: str, token: str, timeout: float = 30):
        from ..identity import ACCOUNTS_PATH

        self.url = api_url.rstrip("/") + ACCOUNTS_PATH
        self.token, self.timeout = token, timeout
        self._known: dict[str, str | None] = {}
        self.requests = 0

    def prefetch(self, names: Iterable[str]) -> None:
        from ..identity_hub import MAX_ACCOUNT_NAMES

        missing = sorted(set(names) - set(self._known))
        for i in range(0, len(missing), MAX_ACCOUNT_NAMES):
            chunk = missing[i : i + MAX_ACCOUNT_NAMES]
            query = urllib.parse.urlencode([("user", n) for n in chunk])
            req = urllib.request.Request(f"{self.url}?{query}", headers={"Authorization": f"token {self.token}"})
            self.requests += 1
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (hub URL from config)
                accounts = json.load(resp)["accounts"]
            for name in chunk:
                self._known[name] = accounts.get(name)  # None: the hub has no account for them

    def __call__(self, name: str) -> str | None:
        if name not in self._known:
            self.prefetch([name])
        return self._known[name]


def hub_service(presets: list[str], every: float = 300.0, python: str | None = None) -> tuple[dict, dict]:
    """The managed hub service and its role that reconcile at hub start-up and every `every` s."""
    import sys

    command = [python or sys.executable, "-m", "scip_jupyter.cli", "arc", "reconcile", "--hub", "--every", str(every)]
    for p in presets:
        command += ["--preset", p]
    service = {"name": SERVICE_NAME, "command": command, "display": False, "environment": _passthrough_env()}
    role = {"name": SERVICE_NAME, "scopes": ["list:users", "read:users:name", "read:servers"], "services": [SERVICE_NAME]}
    return service, role


def _passthrough_env() -> dict[str, str]:
    # managed services get a clean environment: keep what Slurm clients and presets need
    keep = ("SLURM_CONF", "SCIP_ARC_PRESETS", "PATH")
    return {k: os.environ[k] for k in keep if k in os.environ}


def configure_hub(c, presets: list[str] | None = None, every: float = 300.0) -> None:
    """Wire the hub side into a JupyterHub config `c` (one call, from hub_setup.configure).

    `presets` None: `ARCCleanup.presets`' default. An empty list: the hub reaches no
    cluster (only servers cancel their own jobs), so no post-stop hook and no reconcile
    service, which without `--preset` would look on every preset's cluster.
    """
    presets = list(ARCCleanup.presets.default() if presets is None else presets)
    c.ARCCleanup.presets = presets
    if not presets:
        return
    previous = c.Spawner.post_stop_hook if "post_stop_hook" in c.Spawner else None
    c.Spawner.post_stop_hook = post_stop_hook_for(chain=previous)
    service, role = hub_service(presets, every=every)
    # append in place: hub_config/local.py keeps references to these lists
    for key, item in (("services", service), ("load_roles", role)):
        if key in c.JupyterHub:
            getattr(c.JupyterHub, key).append(item)
        else:
            setattr(c.JupyterHub, key, [item])
