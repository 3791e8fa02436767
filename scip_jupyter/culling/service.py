"""The `scip-gpu` hub service: GPU-aware idle culler, budget watcher, notices.

One process (`python -m scip_jupyter.culling.service`, started by the hub as a
managed service, see culling/hub.py) runs on one tornado loop:

* **jupyterhub-idle-culler** (`IdleCuller` from the PyPI package, 2.x) with
  `cull_arbiter_hook = GpuArbiter(...)`: the culler lists servers, asks the
  arbiter, stops what it says;
* the **budget watcher** (`BudgetWatch.step` every `BudgetWatcher.every` s);
* a small HTTP API under the service prefix (hub tokens or the hub's OAuth):
  `GET api/notices` (the caller's open notices; `?user=` for admins and services
  that may read users), `GET api/status` (admins: the arbiter's decisions per
  server and the watcher's counts) and `GET api/gpu` (the caller's servers'
  GPU readings, for the monitor widget).

Settings come from `$SCIP_GPU_SETTINGS` (JSON of the traitlets, written by the
hub config); files from `$SCIP_GPU_CATALOG`, `$SCIP_GPU_ALLOCATIONS`,
`$SCIP_GPU_COURSES` and `$SCIP_GPU_LEDGER` (the ledger's SQLAlchemy URL).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from typing import Iterable
from urllib.parse import quote, urlparse

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.ioloop import IOLoop, PeriodicCallback

from ..i18n import _, negotiate, use_locale
from .arbiter import GpuArbiter, ProfileInfo
from .budget import BudgetWatch, CompressedClock
from .notices import notice_json
from .records import Records
from .settings import from_json
from .sources import make_source

log = logging.getLogger("scip.gpu")

SERVICE_NAME = "scip-gpu"
ENV_SETTINGS, ENV_CATALOG, ENV_ALLOCATIONS, ENV_COURSES, ENV_LEDGER = (
    "SCIP_GPU_SETTINGS", "SCIP_GPU_CATALOG", "SCIP_GPU_ALLOCATIONS", "SCIP_GPU_COURSES", "SCIP_GPU_LEDGER",
)


# --- edges -----------------------------------------------------------------------------------------


def profiles_loader(catalog_path: str):
    """ProfileInfo from the catalog, reloaded when the file changes."""
    from ..catalog import load_catalog
    from ..config import cached_load

    memo: dict[int, ProfileInfo] = {}

    def load() -> ProfileInfo:
        catalog = cached_load(load_catalog, catalog_path)  # the same object until the file changes
        info = memo.get(id(catalog))
        if info is None:
            memo.clear()
            info = memo[id(catalog)] = ProfileInfo.from_catalog(catalog)
        return info

    return load


def accounts_loader(allocations_path: str, courses_path: str):
    """`accounts_for(keys, now)`: the Account of each ledger key (group from allocations.yaml, course from courses.yaml)."""
    from ..allocations.policy import course_account, group_account
    from ..allocations.quotas import cached_allocations

    def accounts_for(keys: Iterable[str], now: dt.datetime):
        out = []
        allocations = cached_allocations(allocations_path) if allocations_path else None
        registry = None
        for key in keys:
            kind, _, name = key.partition(":")
            if kind == "group" and allocations is not None and name in allocations.groups:
                out.append(group_account(name, allocations.groups[name], allocations.period, now))
            elif kind == "course" and courses_path:
                if registry is None:
                    from ..courses.registry import cached_registry

                    registry = cached_registry(courses_path)
                course = registry.get(name)
                if course is not None:
                    out.append(course_account(course))
        return out

    return accounts_for


class HubClient:
    """The hub REST calls of the service, with its own token."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url.rstrip("/"), token

    async def stop_server(self, user: str, server: str) -> None:
        path = f"/users/{quote(user)}/server" + (f"s/{quote(server)}" if server else "")
        req = HTTPRequest(self.url + path, method="DELETE", headers={"Authorization": f"token {self.token}"})
        try:
            await AsyncHTTPClient().fetch(req)
        except HTTPClientError as exc:
            if exc.code not in (400, 404):  # 400/404: already stopped or stopping
                raise


def account_lookup(ledger, ttl: float = 2.0):
    """`account_of(user, server)`: who pays for a running server, from the ledger's active holdings
    (read once per `ttl` seconds, so a round that warns hundreds of servers reads them once)."""
    import time

    cache: dict = {"at": -1e9, "map": {}}

    def account_of(user: str, server: str) -> str:
        if time.monotonic() - cache["at"] > ttl:
            cache["map"] = {(h.user, h.server): h.account for h in ledger.active()}
            cache["at"] = time.monotonic()
        return cache["map"].get((user, server), "")

    return account_of


# --- HTTP ------------------------------------------------------------------------------------------


class _Base(HubOAuthenticated, web.RequestHandler):
    def prepare(self):
        if self.settings.get("arbiter") is None:
            # still waiting for the ledger (main: build retried until its database answers)
            with use_locale(negotiate(self.request.headers.get("Accept-Language"), self.get_argument("lang", None))):
                message = _("The GPU service is starting: the allocation ledger is not available yet.")
            self.set_status(503)
            self.set_header("Retry-After", "10")
            self.reply({"status": 503, "message": message})  # finishing in prepare ends the request here
            return None
        return super().prepare()

    def who(self) -> dict:
        user = self.get_current_user()
        if not user:
            raise web.HTTPError(403)
        return user

    def may_read_others(self, who: dict) -> bool:
        scopes = set(who.get("scopes") or [])
        return bool(scopes & {"admin:users", "read:users", "admin:servers", "read:servers"})

    def reply(self, data) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))


class NoticesHandler(_Base):
    @web.authenticated
    def get(self):
        who = self.who()
        user = self.get_argument("user", None) or who.get("name")
        if user != who.get("name") and not self.may_read_others(who):
            raise web.HTTPError(403, "user: you may read only your own notices")
        records: Records = self.settings["records"]
        lang = negotiate(self.request.headers.get("Accept-Language"), self.get_argument("lang", None))
        with use_locale(lang):
            self.reply({"user": user, "notices": [notice_json(n) for n in records.notices(user=user, open_only=True)]})


class StatusHandler(_Base):
    @web.authenticated
    def get(self):
        if not self.may_read_others(self.who()):
            raise web.HTTPError(403, "status: admins only")
        arbiter: GpuArbiter = self.settings["arbiter"]
        watch: BudgetWatch | None = self.settings["watch"]
        self.reply({
            "culler": arbiter.status(),
            "budget": {"steps": watch.steps, "stops": watch.stops} if watch else None,
        })


class GpuHandler(_Base):
    """The caller's GPU servers as the source sees them now (the monitor widget reads this)."""

    @web.authenticated
    async def get(self):
        who = self.who()
        arbiter: GpuArbiter = self.settings["arbiter"]
        user = self.get_argument("user", None) or who.get("name")
        if user != who.get("name") and not self.may_read_others(who):
            raise web.HTTPError(403, "user: you may read only your own servers")
        servers = {}
        for key, (profile, weight, mig, r) in arbiter.readings.items():
            if key.split("/", 1)[0] != user:
                continue
            servers[key] = {"profile": profile, "gpu_share": weight, "mig_profile": mig,
                            "gpu_model": arbiter.profiles.models.get(profile) if weight else None,
                            "utilisation": r.now if r else None, "peak": r.peak if r else None,
                            "memory_used": r.memory_used if r else None, "memory_total": r.memory_total if r else None,
                            "history": list(arbiter.history.get(key, ()))}
        self.reply({"source": getattr(arbiter.source, "name", "none"), "servers": servers})


def make_app(records: Records, arbiter: GpuArbiter, watch: BudgetWatch | None) -> web.Application:
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
    return web.Application(
        [
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
            (url_path_join(prefix, "api/notices"), NoticesHandler),
            (url_path_join(prefix, "api/status"), StatusHandler),
            (url_path_join(prefix, "api/gpu"), GpuHandler),
        ],
        hub_auth=HubOAuth(), cookie_secret=os.urandom(32), records=records, arbiter=arbiter, watch=watch,
    )


# --- main ------------------------------------------------------------------------------------------


def build(env=os.environ):
    """Everything the service runs, from its environment (no loop started)."""
    from ..allocations.ledger import DEFAULT_URL, ledger_for

    culling, budget = from_json(env.get(ENV_SETTINGS, "{}"))
    ledger_url = env.get(ENV_LEDGER) or DEFAULT_URL
    records = Records(ledger_url)
    ledger = ledger_for(ledger_url)
    source = make_source(culling.source, culling.prometheus_url, culling.namespace) if culling.enabled else None
    arbiter = GpuArbiter(culling, profiles_loader(env[ENV_CATALOG]), source, records, account_lookup(ledger),
                         batch=True)
    watch = None
    hub = HubClient(env.get("JUPYTERHUB_API_URL", ""), env.get("JUPYTERHUB_API_TOKEN", ""))
    if budget.enabled and env.get(ENV_ALLOCATIONS):
        watch = BudgetWatch(
            ledger, records, accounts_loader(env[ENV_ALLOCATIONS], env.get(ENV_COURSES, "")), hub.stop_server,
            CompressedClock(budget.clock_speed), budget.warn_fraction, budget.grace,
        )
    return culling, budget, records, arbiter, watch


async def build_when_ready(env=os.environ, wait: float = 2.0, most: float = 30.0, sleep=None):
    """`build()` (in a thread), tried again, backing off up to `most` s, while the ledger's database does
    not answer: a hub exits when a managed service dies or stays unreachable, so a PostgreSQL that is down
    at the hub's start must not end this service. One log line per failure, never the database's address."""
    import asyncio

    from ..allocations.ledger import unavailable_reason

    sleep = sleep or asyncio.sleep
    while True:
        try:
            return await asyncio.to_thread(build, env)
        except Exception as exc:  # noqa: BLE001 (the database is not answering: wait and try again)
            if not _ledger_unavailable(exc):
                raise
            log.warning("ledger not available (%s); trying again in %.0f s", unavailable_reason(exc), wait)
            await sleep(wait)
            wait = min(most, wait * 2)


def _ledger_unavailable(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return isinstance(exc, (DBAPIError, PoolTimeout, ConnectionError, TimeoutError))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s scip-gpu] %(message)s")
    from jupyterhub_idle_culler import IdleCuller

    from ..signals import stop_on_signals

    stop_on_signals()  # the hub stops its services with SIGINT, then SIGTERM
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    # listen first (the hub waits for this port and exits if it stays closed), answering 503 until built
    app = make_app(None, None, None)
    app.listen(url.port, url.hostname or "127.0.0.1")
    loop = IOLoop.current()
    built = []

    async def wait_for_ledger():
        try:
            built.append(await build_when_ready())
        finally:
            loop.stop()

    loop.add_callback(wait_for_ledger)
    try:
        loop.start()  # serves 503 until the ledger answers
    except KeyboardInterrupt:
        log.info("stopping")
        return
    if not built:  # build failed for another reason: logged by the loop; exit non-zero for the hub's log
        raise SystemExit(1)
    culling, budget, records, arbiter, watch = built[0]
    app.settings.update(records=records, arbiter=arbiter, watch=watch)
    log.info("listening on %s:%s; GPU source: %s; budget watcher: %s", url.hostname, url.port,
             getattr(arbiter.source, "name", "none"), "on" if watch else "off")
    if watch is not None:
        async def budget_step():
            try:
                await watch.step()
            except Exception:  # noqa: BLE001 (log and try again next step)
                log.exception("budget step failed")

        PeriodicCallback(budget_step, budget.every * 1000).start()
    PeriodicCallback(arbiter.flush, 1000).start()  # the round's notices and cull records, one commit
    if hasattr(arbiter.source, "sample"):  # NVML knows only the present: keep a history
        PeriodicCallback(arbiter.source.sample, min(5.0, culling.cull_every) * 1000).start()
    if culling.enabled:
        culler = IdleCuller(
            timeout=culling.activity_timeout, cull_every=culling.cull_every, url=os.environ["JUPYTERHUB_API_URL"],
            config_file="", cull_users=False, concurrency=10,
        )
        culler.cull_arbiter_hook = arbiter
        culler.initialize(argv=[])
        culler.start()  # runs the loop
        return
    try:
        loop.start()
    except KeyboardInterrupt:
        log.info("stopping")


if __name__ == "__main__":
    main()
